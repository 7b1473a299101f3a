//! `greenmark detect --vllm-config cfg.json`: detect vLLM's native (Gumbel) watermark.
//!
//! Input: token ids as JSON Lines (one line per answer: a JSON array of ids, or an object
//! with the ids in `--ids-field`, default `token_ids` as in vLLM's outputs), or, with
//! `--tokenizer`/`--model`, text that is re-tokenized first. Re-tokenized text can differ
//! from the ids the server generated (a tokenizer does not always split a decoded text back
//! into the same tokens), so ids are the reliable input; the text path says so.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use greenmark::gumbel::{GumbelDetection, GumbelDetector, VllmWatermarkConfig};

use super::Args;
use crate::table::format_threshold;

/// The note shown whenever text is re-tokenized.
pub(super) const RETOKENIZED_NOTE: &str =
    "note: re-tokenized text can differ from the token ids the vLLM \
server generated, which weakens (never inflates) the evidence; detect on the served \
`token_ids` when you have them";

/// Runs the Gumbel path of `greenmark detect`.
pub fn run(args: &Args, config_path: &Path) -> Result<bool> {
    if !config_path.is_file() {
        bail!(
            "vLLM watermark config {} does not exist: give the JSON passed to `vllm serve \
             --watermark-config`, e.g. {{\"key\": 42, \"algorithm\": \"gumbel\"}}",
            config_path.display()
        );
    }
    let vllm = VllmWatermarkConfig::load(config_path)
        .with_context(|| format!("cannot use vLLM watermark config {}", config_path.display()))?;
    let detector = GumbelDetector::new(vllm.key, vllm.config)?.with_threshold(args.threshold)?;
    let text_mode = args.tokenizer.is_given();
    let mut out = std::io::stdout().lock();
    if !args.json {
        writeln!(
            out,
            "scheme {} (context width {}, alpha {}), dedup of repeated contexts on",
            detector.scheme(),
            vllm.config.context_width,
            vllm.config.alpha
        )?;
    }
    let mut found = 0usize;
    let answers = each_answer(args, "token_ids", RETOKENIZED_NOTE, |ids, line| {
        let d = detector.detect(ids)?;
        found += usize::from(d.is_watermarked);
        print_detection(&mut out, &d, line, text_mode, args)
    })?;
    if !args.json {
        writeln!(
            out,
            "{found} of {answers} answers watermarked at p < {}",
            format_threshold(args.threshold)
        )?;
    }
    Ok(found > 0 && args.exit_code)
}

/// Reads the answers of `args.input` for a token-id detector (`--vllm-config`,
/// `--synthid-config`) and calls `report(ids, line)` on each: token-id JSON Lines (a JSON array
/// per line, or an object with the ids in `--ids-field`, default `default_ids_field`), or with
/// `--tokenizer`/`--model` text re-tokenized first (`note` is printed then). Returns the number
/// of answers.
pub(super) fn each_answer(
    args: &Args,
    default_ids_field: &str,
    note: &str,
    mut report: impl FnMut(&[u32], Option<usize>) -> Result<()>,
) -> Result<usize> {
    let mut input = crate::input::open(&args.input)?;
    let text_mode = args.tokenizer.is_given();
    let ids_field = args.ids_field.as_deref().unwrap_or(default_ids_field);
    let tokenizer = if text_mode {
        eprintln!("{note}");
        Some(args.tokenizer.load()?.0)
    } else {
        None
    };
    let encode = |text: &str, what: &str| -> Result<Vec<u32>> {
        let tokenizer = tokenizer.as_ref().expect("text mode has a tokenizer");
        let encoding = tokenizer
            .encode(text, false)
            .map_err(|e| anyhow::anyhow!("cannot tokenize {what}: {e}"))?;
        Ok(encoding.get_ids().to_vec())
    };
    let mut answers = 0usize;
    if !args.jsonl && text_mode {
        let mut text = String::new();
        let name = &input.name;
        input
            .reader
            .read_to_string(&mut text)
            .with_context(|| format!("cannot read {name} as UTF-8 text"))?;
        if text.trim().is_empty() {
            bail!("{name} is empty: nothing to detect; give a text");
        }
        report(&encode(&text, name)?, None)?;
        answers += 1;
    } else {
        let mut line_no = 0usize;
        loop {
            let lines = crate::input::read_json_chunk(&mut input, &mut line_no, 256)?;
            if lines.is_empty() {
                break;
            }
            for (line, value) in lines {
                let what = format!("{} line {line}", input.name);
                let value = value.map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
                let ids = if text_mode {
                    let text = crate::input::string_field(&value, args.text_field(), "--field")
                        .with_context(|| what.clone())?;
                    encode(text, &what)?
                } else {
                    crate::input::token_ids(
                        &value,
                        ids_field,
                        "name the field holding the ids with --ids-field (or give a plain JSON \
                         array)",
                    )
                    .with_context(|| what.clone())?
                };
                report(&ids, Some(line))?;
                answers += 1;
            }
        }
        if answers == 0 {
            bail!(
                "{} has no JSON lines: give one line per answer, a JSON array of token ids \
                 or an object with them in {ids_field:?}",
                input.name
            );
        }
    }
    Ok(answers)
}

fn print_detection(
    out: &mut dyn Write,
    d: &GumbelDetection,
    line: Option<usize>,
    retokenized: bool,
    args: &Args,
) -> Result<()> {
    if args.json {
        return write_record(out, d, line, &[("retokenized", retokenized.into())]);
    }
    let verdict = format!(
        "{} at the {} threshold",
        crate::verdict::word(d.is_watermarked),
        crate::table::format_threshold(args.threshold)
    );
    // The verdict is on the exact-or-conservative p-value: show that one, and vLLM's
    // moment-matched p-value beside it where they differ.
    let log10_p = greenmark::stats::ln_to_log10(d.ln_p_value_bound);
    let vllm = if d.exact {
        String::new()
    } else {
        format!(
            " (conservative bound; vLLM's moment-matched log10 p {:.2})",
            d.log10_p_value
        )
    };
    let label = line.map_or_else(|| "text".to_string(), |l| format!("line {l}"));
    writeln!(
        out,
        "{label}: tokens {}, scored {}, score {:.3}, log10 p {log10_p:.2}{vllm}: {verdict}",
        d.n_tokens, d.n_scored, d.score
    )?;
    Ok(())
}

/// One `--json` answer: the detection's record, with its input line (JSON Lines input) and
/// `extra` fields.
pub(super) fn write_record(
    out: &mut dyn Write,
    detection: &impl serde::Serialize,
    line: Option<usize>,
    extra: &[(&str, serde_json::Value)],
) -> Result<()> {
    let mut value = serde_json::to_value(detection)?;
    if let Some(object) = value.as_object_mut() {
        if let Some(line) = line {
            object.insert("line".into(), line.into());
        }
        for (field, v) in extra {
            object.insert((*field).into(), v.clone());
        }
    }
    writeln!(out, "{value}")?;
    Ok(())
}
