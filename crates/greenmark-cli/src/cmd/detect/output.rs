//! How `greenmark detect` prints a result: a table row, a labelled block, or a JSON record.
//! Only the corrected p-value (for several keys, for span search) is printed as *the*
//! p-value; per-key and per-window values are labelled uncorrected.

use std::io::Write;

use anyhow::Result;
use greenmark::detect::Scored;
use greenmark::text::Applied;

use super::Setup;
use crate::cmd::describe_normalizations;
use crate::table::{format_p_value, format_threshold};
use crate::verdict::Facts;
use greenmark::text::normalizations_json;

/// What every printed result shares: the threshold and which columns apply.
#[derive(Debug)]
pub struct Scoring {
    /// The p-value below which a text is called watermarked.
    pub threshold: f64,
    /// More than one key: the p-value is corrected and the key that fired named.
    pub several_keys: bool,
    /// Span search.
    pub span: bool,
    /// JSON output.
    pub json: bool,
}

/// The facts behind the worded verdict: the corrected p-value, the strongest key's counts and
/// config; "too few tokens" advice for the threshold corrected for the keys (none with span
/// search, whose correction depends on the windows tried).
fn facts(scored: &Scored, threshold: f64, setup: &Setup) -> Facts {
    let d = scored.counts();
    let keys = setup.keyring.detectors();
    Facts {
        significant: scored.is_significant(threshold),
        p_value: scored.p_value(),
        log10_p: scored.log10_p_value(),
        threshold,
        n_scored: d.n_scored,
        gamma: d.gamma,
        delta: keys[scored.strongest_key()].config().delta(),
        tests: scored.span().is_none().then_some(keys.len() as u64),
    }
}

impl Scoring {
    /// One result as a JSON object: the core's fields ([`Scored::to_json`]), with `line` and
    /// `normalizations` where they apply.
    pub fn json_record(
        &self,
        scored: &Scored,
        n_tokens: usize,
        normalizations: Option<&[Applied]>,
        line: Option<usize>,
    ) -> Result<serde_json::Value> {
        let mut value = scored.to_json(n_tokens, self.threshold);
        let object = value
            .as_object_mut()
            .expect("a result serializes as an object");
        if let Some(line) = line {
            object.insert("line".into(), line.into());
        }
        if let Some(applied) = normalizations {
            object.insert("normalizations".into(), normalizations_json(applied));
        }
        Ok(value)
    }

    /// The column header of the JSON Lines table.
    pub fn print_header(&self, out: &mut dyn Write) -> Result<()> {
        write!(
            out,
            "{:>7}  {:>8}  {:>8}  {:>6}  {:>8}  {:>9}  ",
            "line", "tokens", "scored", "green", "z", "log10 p"
        )?;
        if self.span {
            write!(out, "{:>13}  ", "span")?;
        }
        if self.several_keys {
            write!(out, "{:<16}  ", "key")?;
        }
        writeln!(out, "verdict (p < {})", format_threshold(self.threshold))?;
        Ok(())
    }

    /// One line's row of the JSON Lines table (counts of the strongest key, in its span).
    pub fn print_row(
        &self,
        out: &mut dyn Write,
        line: usize,
        scored: &Scored,
        n_tokens: usize,
        setup: &Setup,
    ) -> Result<()> {
        let d = scored.counts();
        write!(
            out,
            "{line:>7}  {:>8}  {:>8}  {:>6.3}  {:>8.2}  {:>9.2}  ",
            n_tokens,
            d.n_scored,
            d.green_fraction,
            d.z_score,
            scored.log10_p_value()
        )?;
        if let Some(span) = scored.span() {
            write!(out, "{:>13}  ", format!("{}-{}", span.start, span.end))?;
        }
        if self.several_keys {
            write!(out, "{:<16}  ", d.key_id.to_string())?;
        }
        writeln!(out, "{}", facts(scored, self.threshold, setup).short())?;
        Ok(())
    }

    /// One text's result as labelled lines.
    pub fn print_one(
        &self,
        out: &mut dyn Write,
        name: &str,
        scored: &Scored,
        n_tokens: usize,
        normalizations: &[Applied],
        setup: &Setup,
    ) -> Result<()> {
        let d = scored.counts();
        let config = setup.keyring.detectors()[scored.strongest_key()].config();
        let (p, log10) = (scored.p_value(), scored.log10_p_value());
        let mut lines = vec![("input", name.to_string())];
        let keys = setup.keyring.detectors().len();
        if keys > 1 {
            lines.push((
                "keys",
                format!(
                    "{keys}; the strongest is {} (p corrected for {keys} keys)",
                    d.key_id
                ),
            ));
        } else {
            lines.push(("key id", d.key_id.to_string()));
        }
        lines.push((
            "scheme",
            format!("{} (gamma {}, delta {})", d.scheme, d.gamma, config.delta()),
        ));
        lines.push(("tokens", n_tokens.to_string()));
        let mut corrected = Vec::new();
        if let Some(span) = scored.span() {
            lines.push((
                "span",
                format!(
                    "tokens {}..{} of {n_tokens} ({} windows tried)",
                    span.start, span.end, span.windows_tried
                ),
            ));
            corrected.push(format!("{} windows", span.windows_tried));
        }
        if keys > 1 {
            corrected.push(format!("{keys} keys"));
        }
        let within = if scored.span().is_some() {
            " in the span"
        } else {
            ""
        };
        lines.push((
            "scored",
            format!(
                "{} ({} green, fraction {:.3}){within}",
                d.n_scored, d.n_green, d.green_fraction
            ),
        ));
        lines.push(("z-score", format!("{:.2}", d.z_score)));
        let note = if corrected.is_empty() {
            String::new()
        } else {
            format!(", corrected for {}", corrected.join(" and "))
        };
        lines.push((
            "p-value",
            format!("{} (log10 {log10:.2}{note})", format_p_value(p, log10)),
        ));
        if keys > 1 {
            for (id, log10) in scored.per_key() {
                lines.push((
                    "  key",
                    format!("{id}: log10 p {log10:.2} (this key alone)"),
                ));
            }
        }
        lines.push(("normalized", describe_normalizations(normalizations)));
        lines.push(("verdict", facts(scored, self.threshold, setup).sentence()));
        for (label, value) in lines {
            writeln!(out, "{label:<11} {value}")?;
        }
        Ok(())
    }
}
