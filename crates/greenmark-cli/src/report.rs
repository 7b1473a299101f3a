//! The self-contained HTML report: inline CSS and inline SVG, no scripts, no external resources.
//!
//! Each section shows one text: its verdict and statistics, the normalizations applied before
//! tokenizing, the running z-score along the text against the exact threshold curve, and the
//! text itself with every token coloured green, red or grey (not scored). Everything taken
//! from the text or the config is HTML-escaped. The key never appears; its public id does.

use std::fmt::Write as _;

use greenmark::text::TextAnnotation;
use greenmark::{stats, SkipReason, TokenScore, WatermarkConfig};

use crate::table::{format_p, format_threshold};
use crate::verdict::Facts;

/// Most points drawn per polyline; longer texts are sampled evenly (the last point is kept).
const MAX_POINTS: usize = 600;

/// One text in a report.
#[derive(Debug)]
pub struct Section<'a> {
    /// The heading, e.g. `watermarked answer 3`.
    pub title: String,
    /// An optional line under the heading (e.g. the prompt that produced the text).
    pub subtitle: Option<String>,
    /// The text, its tokens and their scores.
    pub annotation: &'a TextAnnotation,
    /// When the annotation covers only the start of a long text: the whole text's detection
    /// (its verdict and statistics are shown; the colours and the plot are of the start).
    pub whole: Option<&'a Whole>,
}

/// The detection of a whole text of which a report colours only the start.
#[derive(Debug)]
pub struct Whole {
    /// The whole text's detection (streamed) and normalizations.
    pub detection: greenmark::text::TextDetection,
    /// The whole text's size in bytes.
    pub bytes: u64,
}

impl Section<'_> {
    /// The detection the verdict is on: the whole text's.
    fn detection(&self) -> &greenmark::Detection {
        match self.whole {
            Some(whole) => &whole.detection.detection,
            None => &self.annotation.detection,
        }
    }

    /// The normalizations of the whole text.
    fn normalizations(&self) -> &[greenmark::text::Applied] {
        match self.whole {
            Some(whole) => &whole.detection.normalizations,
            None => &self.annotation.normalizations,
        }
    }
}

/// What a report is about: the shared config, threshold and notes, then its sections.
#[derive(Debug)]
pub struct Report<'a> {
    /// The page title.
    pub title: String,
    /// The watermark config used for detection.
    pub config: &'a WatermarkConfig,
    /// The significance threshold of the verdicts.
    pub threshold: f64,
    /// Lines shown under the title (e.g. "this is a demo key").
    pub notes: Vec<String>,
    /// The texts.
    pub sections: Vec<Section<'a>>,
}

/// A report of several texts (one section each), with a summary table when there is more than
/// one.
pub fn render_report(report: &Report) -> String {
    let mut out = String::with_capacity(
        4096 + report
            .sections
            .iter()
            .map(|s| s.annotation.normalized.len() * 2 + s.annotation.tokens.len() * 64)
            .sum::<usize>(),
    );
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(out, "<title>{}</title>", escape(&report.title));
    out.push_str("<style>\n");
    out.push_str(CSS);
    out.push_str("</style>\n</head>\n<body>\n<header>\n");
    let _ = writeln!(out, "<h1>{}</h1>", escape(&report.title));
    for note in &report.notes {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(note));
    }
    write_config(&mut out, report);
    out.push_str(
        "<p class=\"legend\">Tokens: <span class=\"tok green\">green</span> \
         <span class=\"tok red\">red</span> \
         <span class=\"tok skip\">not scored</span> \
         (hover over a token for its id and why it was not scored).</p>\n",
    );
    if report.sections.len() > 1 {
        write_summary(&mut out, report);
    }
    out.push_str("</header>\n<main>\n");
    for (i, section) in report.sections.iter().enumerate() {
        write_section(&mut out, report, i, section);
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

/// The report's stylesheet (also used by the radioactivity report).
pub(crate) const CSS: &str = "\
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto; \
max-width: 62em; padding: 0 1em; color: #1d1d1f; background: #fff; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin: 0 0 0.3em 0; }
.note { color: #8a4b00; background: #fff6e0; border-left: 4px solid #e0a030; padding: 0.3em 0.7em; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { padding: 0.15em 0.8em 0.15em 0; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.summary th, table.summary td { border-bottom: 1px solid #e5e5e5; }
table.config th { font-weight: 600; color: #555; }
code { font-family: ui-monospace, 'DejaVu Sans Mono', monospace; font-size: 0.92em; }
section.answer { border: 1px solid #ddd; border-radius: 6px; padding: 1em 1.2em; margin: 1.5em 0; }
.subtitle { color: #555; margin: 0 0 0.5em 0; font-style: italic; }
.verdict { font-weight: 700; padding: 0.2em 0.6em; border-radius: 4px; display: inline-block; }
.verdict.detected { background: #1e7b34; color: #fff; }
.verdict.clean { background: #e8e8e8; color: #333; }
.normalizations { color: #444; font-size: 0.95em; }
svg.plot { width: 100%; height: auto; display: block; margin: 0.6em 0; background: #fbfbfb; \
border: 1px solid #eee; }
svg.plot text { font-family: system-ui, sans-serif; font-size: 11px; fill: #555; }
svg.plot .zline { fill: none; stroke: #2257c7; stroke-width: 1.6; }
svg.plot .threshold { fill: none; stroke: #d2691e; stroke-width: 1.2; stroke-dasharray: 5 4; }
svg.plot .axis { stroke: #999; stroke-width: 1; }
svg.plot .zero { stroke: #bbb; stroke-width: 1; stroke-dasharray: 2 3; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; font-family: ui-monospace, \
'DejaVu Sans Mono', monospace; font-size: 0.9em; line-height: 1.7; border-top: 1px solid #eee; \
padding-top: 0.6em; }
.tok { border-radius: 2px; }
.tok.green { background: #b7ebc0; }
.tok.red { background: #f7c6c6; }
.tok.skip { background: #ececec; color: #777; }
.legend .tok { padding: 0 0.3em; }
";

fn write_config(out: &mut String, report: &Report) {
    let config = report.config;
    let scheme = config.scheme();
    let key_ids: Vec<String> = {
        let mut ids: Vec<String> = report
            .sections
            .iter()
            .map(|s| s.detection().key_id.to_string())
            .collect();
        ids.dedup();
        ids
    };
    out.push_str("<table class=\"config\">\n");
    let rows: [(&str, String); 7] = [
        ("scheme", format!("<code>{}</code>", escape(scheme.id()))),
        ("window", scheme_window(config)),
        (
            "gamma",
            format!(
                "{} (green fraction under the null: {})",
                config.gamma(),
                config.effective_gamma()
            ),
        ),
        ("delta", config.delta().to_string()),
        ("vocab size", config.vocab_size().to_string()),
        (
            "key id",
            format!(
                "<code>{}</code> (the public id; the key itself is not in this report)",
                escape(&key_ids.join(", "))
            ),
        ),
        (
            "threshold",
            format!(
                "p &lt; {} (exact one-sided binomial test)",
                escape(&format_threshold(report.threshold))
            ),
        ),
    ];
    for (name, value) in rows {
        let _ = writeln!(out, "<tr><th>{name}</th><td>{value}</td></tr>");
    }
    out.push_str("</table>\n");
}

fn scheme_window(config: &WatermarkConfig) -> String {
    let scheme = config.scheme();
    match scheme {
        greenmark::Scheme::SelfHash { window, top_k } => {
            format!("{window} (candidate included), top-k {top_k}")
        }
        greenmark::Scheme::Unigram => "0 (one fixed green list)".into(),
        _ => scheme.window().to_string(),
    }
}

fn write_summary(out: &mut String, report: &Report) {
    out.push_str(
        "<table class=\"summary\">\n<tr><th>text</th><th class=\"num\">tokens scored</th>\
         <th class=\"num\">green fraction</th><th class=\"num\">z</th>\
         <th class=\"num\">log10 p</th><th>verdict</th></tr>\n",
    );
    for (i, section) in report.sections.iter().enumerate() {
        let d = section.detection();
        let _ = writeln!(
            out,
            "<tr><td><a href=\"#s{i}\">{}</a></td><td class=\"num\">{}</td>\
             <td class=\"num\">{:.3}</td><td class=\"num\">{:.2}</td><td class=\"num\">{:.2}</td>\
             <td>{}</td></tr>",
            escape(&section.title),
            d.n_scored,
            d.green_fraction,
            d.z_score,
            d.log10_p_value,
            escape(&Facts::of(d, report.threshold, report.config.delta()).short())
        );
    }
    out.push_str("</table>\n");
}

fn write_section(out: &mut String, report: &Report, index: usize, section: &Section) {
    let a = section.annotation;
    let d = section.detection();
    let detected = d.is_significant(report.threshold);
    let _ = writeln!(out, "<section class=\"answer\" id=\"s{index}\">");
    let _ = writeln!(out, "<h2>{}</h2>", escape(&section.title));
    if let Some(subtitle) = &section.subtitle {
        let _ = writeln!(out, "<p class=\"subtitle\">{}</p>", escape(subtitle));
    }
    let facts = Facts::of(d, report.threshold, report.config.delta());
    let _ = writeln!(
        out,
        "<p><span class=\"verdict {}\">{}</span></p>",
        if detected { "detected" } else { "clean" },
        escape(&format!(
            "{} at the {} threshold (p = {})",
            crate::verdict::word(detected),
            format_threshold(report.threshold),
            format_p(d)
        ))
    );
    if let Some(note) = facts.too_few() {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(&note));
    }
    let _ = writeln!(
        out,
        "<table class=\"stats\"><tr><th>tokens</th><td class=\"num\">{}</td>\
         <th>scored</th><td class=\"num\">{}</td><th>green</th><td class=\"num\">{} ({:.3})</td>\
         <th>z</th><td class=\"num\">{:.2}</td><th>p</th><td class=\"num\">{}</td>\
         <th>log10 p</th><td class=\"num\">{:.2}</td></tr></table>",
        d.n_tokens,
        d.n_scored,
        d.n_green,
        d.green_fraction,
        d.z_score,
        escape(&format_p(d)),
        d.log10_p_value
    );
    let applied: Vec<String> = section
        .normalizations()
        .iter()
        .filter(|n| n.count > 0)
        .map(|n| format!("{} ({})", n.what, n.count))
        .collect();
    let _ = writeln!(
        out,
        "<p class=\"normalizations\">Normalizations applied before tokenizing: {}</p>",
        if applied.is_empty() {
            "none (the text was already normal)".to_string()
        } else {
            escape(&applied.join(", "))
        }
    );
    if let Some(whole) = section.whole {
        let _ = writeln!(
            out,
            "<p class=\"note\">{}</p>",
            escape(&format!(
                "This text is {} long: the colours and the plot below show its first {} tokens \
                 only; the verdict and the statistics above are of the whole text ({} tokens).",
                crate::input::format_size(whole.bytes),
                a.tokens.len(),
                d.n_tokens
            ))
        );
    }
    write_plot(out, a, report.config.effective_gamma(), report.threshold);
    write_tokens(out, a);
    out.push_str("</section>\n");
}

/// The running z-score after each scored token, at that token's index.
fn running_z(annotation: &TextAnnotation, gamma: f64) -> Vec<(usize, u64, f64)> {
    let (mut n, mut g) = (0u64, 0u64);
    let mut points = Vec::new();
    for (i, token) in annotation.tokens.iter().enumerate() {
        match token.score {
            TokenScore::Green => g += 1,
            TokenScore::Red => {}
            _ => continue,
        }
        n += 1;
        let sd = (n as f64 * gamma * (1.0 - gamma)).sqrt();
        points.push((i, n, (g as f64 - gamma * n as f64) / sd));
    }
    points
}

/// The z-score the exact test needs at `n` scored tokens: `z` of the smallest green count whose
/// tail probability is below `threshold`, or `None` when even all-green is not enough.
fn threshold_z(n: u64, gamma: f64, ln_threshold: f64) -> Option<f64> {
    let g = stats::binomial_critical_value(n, gamma, ln_threshold)?;
    let sd = (n as f64 * gamma * (1.0 - gamma)).sqrt();
    Some((g as f64 - gamma * n as f64) / sd)
}

/// Evenly spaced picks of at most `MAX_POINTS` items, always keeping the last.
fn sample<T: Copy>(items: &[T]) -> Vec<T> {
    if items.len() <= MAX_POINTS {
        return items.to_vec();
    }
    let step = items.len().div_ceil(MAX_POINTS);
    let mut picked: Vec<T> = items.iter().step_by(step).copied().collect();
    if !(items.len() - 1).is_multiple_of(step) {
        picked.push(items[items.len() - 1]);
    }
    picked
}

fn write_plot(out: &mut String, annotation: &TextAnnotation, gamma: f64, threshold: f64) {
    const W: f64 = 900.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 48.0;
    const RIGHT: f64 = 12.0;
    const TOP: f64 = 14.0;
    const BOTTOM: f64 = 30.0;
    let points = sample(&running_z(annotation, gamma));
    let ln_threshold = threshold.ln();
    let curve: Vec<(usize, f64)> = points
        .iter()
        .filter_map(|&(i, n, _)| threshold_z(n, gamma, ln_threshold).map(|z| (i, z)))
        .collect();
    let n_tokens = annotation.tokens.len().max(2);
    let zs = points.iter().map(|p| p.2).chain(curve.iter().map(|c| c.1));
    let (mut zmin, mut zmax) = zs.fold((-1.0f64, 5.0f64), |(lo, hi), z| (lo.min(z), hi.max(z)));
    // Leave a margin, and keep the threshold's tail (its first, high points) from flattening
    // the plot: clip the y range at twice the largest z actually reached (or 8).
    let reached = points.iter().map(|p| p.2).fold(5.0f64, f64::max);
    zmax = zmax.min(2.0 * reached.max(4.0)) + 0.5;
    zmin -= 0.5;
    let x = |i: usize| LEFT + (W - LEFT - RIGHT) * i as f64 / (n_tokens - 1) as f64;
    let y = |z: f64| {
        let z = z.clamp(zmin, zmax);
        TOP + (H - TOP - BOTTOM) * (zmax - z) / (zmax - zmin)
    };
    let frame = Frame {
        width: W,
        height: H,
        left: LEFT,
        right: RIGHT,
        top: TOP,
        bottom: BOTTOM,
    };
    frame.open(
        out,
        "running z-score along the text",
        &format!(
            "Running z-score after each scored token (blue); dashed: the z the exact test \
             needs for p &lt; {}",
            escape(&format_threshold(threshold))
        ),
    );
    frame.rule(out, "zero", y(0.0));
    for tick in z_ticks(zmin, zmax) {
        frame.y_tick(out, tick, y(tick as f64));
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" \
         transform=\"rotate(-90 {:.1} {:.1})\">z</text>",
        14.0,
        TOP + (H - TOP - BOTTOM) / 2.0,
        14.0,
        TOP + (H - TOP - BOTTOM) / 2.0
    );
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"{:.1}\">token 0</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">token {}</text>",
        H - 10.0,
        W - RIGHT,
        H - 10.0,
        annotation.tokens.len()
    );
    if !curve.is_empty() {
        out.push_str("<polyline class=\"threshold\" points=\"");
        for &(i, z) in &curve {
            let _ = write!(out, "{:.1},{:.1} ", x(i), y(z));
        }
        out.push_str("\"/>\n");
        let &(_, last) = curve.last().expect("not empty");
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#d2691e\">p = {}</text>",
            W - RIGHT - 4.0,
            y(last) - 5.0,
            escape(&format_threshold(threshold))
        );
    }
    if points.is_empty() {
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">no token was scored</text>",
            W / 2.0,
            H / 2.0
        );
    } else {
        out.push_str("<polyline class=\"zline\" points=\"");
        for &(i, _, z) in &points {
            let _ = write!(out, "{:.1},{:.1} ", x(i), y(z));
        }
        out.push_str("\"/>\n");
    }
    out.push_str("</svg>\n");
}

/// The frame of an SVG plot in a report: its size and margins (in viewBox units), and the
/// pieces every plot draws (the `<svg>` with its label and title, the axes, rules, y ticks).
pub(crate) struct Frame {
    pub(crate) width: f64,
    pub(crate) height: f64,
    pub(crate) left: f64,
    pub(crate) right: f64,
    pub(crate) top: f64,
    pub(crate) bottom: f64,
}

impl Frame {
    /// Opens the `<svg>` (closed by the caller with `</svg>`) with an accessible `label`, a
    /// `title` (already HTML-escaped), and the two axes.
    pub(crate) fn open(&self, out: &mut String, label: &str, title: &str) {
        let Frame {
            width: w,
            height: h,
            left: l,
            right: r,
            top: t,
            bottom: b,
        } = *self;
        let _ = writeln!(
            out,
            "<svg class=\"plot\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\" \
             role=\"img\" aria-label=\"{}\">\n<title>{title}</title>\n\
             <line class=\"axis\" x1=\"{l}\" y1=\"{t}\" x2=\"{l}\" y2=\"{:.1}\"/>\
             <line class=\"axis\" x1=\"{l}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>",
            escape(label),
            h - b,
            h - b,
            w - r,
            h - b,
        );
    }

    /// A horizontal line across the plot at height `y` (the zero line, a threshold).
    pub(crate) fn rule(&self, out: &mut String, class: &str, y: f64) {
        let _ = writeln!(
            out,
            "<line class=\"{class}\" x1=\"{}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>",
            self.left,
            self.width - self.right,
        );
    }

    /// A tick label left of the y axis, centred on height `y`.
    pub(crate) fn y_tick(&self, out: &mut String, label: impl std::fmt::Display, y: f64) {
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
            self.left - 6.0,
            y + 4.0
        );
    }
}

/// Integer ticks for the z axis: about five, at a round step.
fn z_ticks(zmin: f64, zmax: f64) -> Vec<i64> {
    let span = zmax - zmin;
    let step = [1i64, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
        .into_iter()
        .find(|&s| span / s as f64 <= 6.0)
        .unwrap_or(2000);
    let first = (zmin / step as f64).ceil() as i64 * step;
    (0..)
        .map(|k| first + k * step)
        .take_while(|&t| t as f64 <= zmax)
        .collect()
}

fn write_tokens(out: &mut String, annotation: &TextAnnotation) {
    let text = annotation.normalized.as_str();
    out.push_str("<div class=\"text\">");
    let mut cursor = 0usize;
    for token in &annotation.tokens {
        // Byte-level BPE can split one character over two tokens, whose offsets then overlap:
        // clamp each token to start where the previous ended, on character boundaries.
        let start = floor_boundary(text, token.start.max(cursor));
        let end = ceil_boundary(text, token.end.max(start));
        if start > cursor {
            out.push_str(&escape(&text[cursor..start]));
        }
        let (class, why) = match token.score {
            TokenScore::Green => ("green", "green".to_string()),
            TokenScore::Red => ("red", "red".to_string()),
            TokenScore::Skipped(reason) => ("skip", format!("not scored: {}", skip_reason(reason))),
            _ => ("skip", "not scored".to_string()),
        };
        let _ = write!(
            out,
            "<span class=\"tok {class}\" title=\"token {}: {}\">{}</span>",
            token.id,
            escape(&why),
            escape(&text[start..end])
        );
        cursor = end;
    }
    if cursor < text.len() {
        out.push_str(&escape(&text[cursor..]));
    }
    out.push_str("</div>\n");
}

fn skip_reason(reason: SkipReason) -> &'static str {
    match reason {
        SkipReason::NoWindow => "no full window (too few tokens before it)",
        SkipReason::Repeated => "repeats a (context, token) pair already scored",
        _ => "not scored",
    }
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// `text` with `& < > " '` replaced by entities, safe in element content and in quoted
/// attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("plain é"), "plain é");
    }

    #[test]
    fn threshold_z_is_the_exact_tests_boundary() {
        let gamma = 0.25;
        let ln_t = 1e-6f64.ln();
        // Too few tokens: even all green is not significant (0.25^9 > 1e-6).
        assert_eq!(threshold_z(9, gamma, ln_t), None);
        for n in [10u64, 50, 200, 1000] {
            let z = threshold_z(n, gamma, ln_t).unwrap();
            let sd = (n as f64 * gamma * (1.0 - gamma)).sqrt();
            let g = (z * sd + gamma * n as f64).round() as u64;
            assert!(stats::binomial_tail_ln(g, n, gamma) < ln_t, "n={n}");
            assert!(stats::binomial_tail_ln(g - 1, n, gamma) >= ln_t, "n={n}");
        }
    }

    #[test]
    fn sampling_keeps_ends_and_bounds_points() {
        let items: Vec<usize> = (0..10_001).collect();
        let s = sample(&items);
        assert!(s.len() <= MAX_POINTS + 1);
        assert_eq!(s[0], 0);
        assert_eq!(*s.last().unwrap(), 10_000);
        assert_eq!(sample(&items[..5]), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn ticks_are_round_and_in_range() {
        assert_eq!(z_ticks(-1.5, 4.0), vec![-1, 0, 1, 2, 3, 4]);
        assert_eq!(z_ticks(-1.5, 5.5), vec![0, 2, 4]);
        let t = z_ticks(-1.0, 40.0);
        assert!(t.iter().all(|&v| v % 10 == 0), "{t:?}");
    }

    #[test]
    fn boundaries_snap_to_characters() {
        let s = "aé b"; // 'é' is bytes 1..3
        assert_eq!(floor_boundary(s, 2), 1);
        assert_eq!(ceil_boundary(s, 2), 3);
        assert_eq!(ceil_boundary(s, 99), s.len());
    }
}
