//! `greenmark radioactivity`: was a suspect model trained on our watermarked text?
//!
//! `closed` scores the suspect's outputs (text, re-tokenized with the watermarking tokenizer);
//! `open` feeds watermarked texts to a suspect GGUF model (or takes its predictions from a
//! file) and scores its top-1 predictions. Both pool every text into one tape with one exact
//! p-value (see `greenmark::radioactivity`), print a summary or JSON, and can write an HTML
//! report with the curve of log10 p against tuples scored.
//!
//! The watermark is KGW (`--key-file`, one or more) or vLLM's Gumbel (`--vllm-config`, the
//! server's `--watermark-config` JSON): the Gumbel tape scores `-ln(1 - u)` per distinct
//! (context, token) tuple and pools them with the exact `Gamma(n, 1)` tail.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use greenmark::gumbel::VllmWatermarkConfig;
use greenmark::radioactivity::{ClosedTest, Radioactivity, RadioactivityTest, TestOptions};
use greenmark::{Key, WatermarkConfig};
use greenmark_lm::ReadingOptions;

use super::{detection_config, load_key_file, load_model, parse_threshold, TokenizerArgs};
use crate::report::{escape, Frame, CSS};
use crate::table::{format_p_value, format_threshold};

/// Arguments of `greenmark radioactivity`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, clap::Subcommand)]
enum Mode {
    /// Closed model: score the suspect's generated texts (JSON Lines), re-tokenized with the
    /// watermarking tokenizer, so a suspect with any tokenizer can be tested.
    Closed(ClosedArgs),
    /// Open model ("reading mode"): feed watermarked texts to the suspect and score its top-1
    /// next-token prediction at each position, the window taken from the text.
    Open(OpenArgs),
}

/// What both modes share: keys, budget, output.
#[derive(Debug, clap::Args)]
struct Common {
    /// A key file (from `greenmark keygen`); repeat for several keys (p-values are corrected
    /// for their number). The first key file's config is used and the others must agree.
    #[arg(
        long = "key-file",
        value_name = "FILE",
        required_unless_present = "vllm_config"
    )]
    key_files: Vec<PathBuf>,
    /// Instead of --key-file: test for vLLM's Gumbel watermark, with the server's
    /// --watermark-config JSON (algorithm `gumbel`).
    #[arg(long, value_name = "FILE.json", conflicts_with = "key_files")]
    vllm_config: Option<PathBuf>,
    /// Score exactly this many tuples (per key), fixed before looking at the data. Without
    /// it, everything is scored and the result is labeled exploratory.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_tuples: Option<u64>,
    /// Score repeated tuples again (miscalibrated: only to show why dedup is on).
    #[arg(long)]
    no_dedup: bool,
    /// The p-value below which the suspect is called radioactive.
    #[arg(long, default_value = "1e-6", value_parser = parse_threshold, value_name = "P")]
    threshold: f64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Write an HTML report with the curve of log10 p against tuples scored.
    #[arg(
        short = 'o',
        long = "output",
        alias = "report",
        value_name = "FILE.html"
    )]
    report: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ClosedArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    tokenizer: TokenizerArgs,
    /// The suspect's outputs: JSON Lines, the text in --field (`-`: stdin).
    #[arg(long, value_name = "FILE.jsonl")]
    outputs: PathBuf,
    /// The prompts the outputs answer (JSON Lines, text in --prompt-field): their windows are
    /// never scored.
    #[arg(long, value_name = "FILE.jsonl")]
    prompts: Option<PathBuf>,
    /// The watermarked corpus the suspect may have trained on (JSON Lines, text in --field):
    /// only windows that occur in it are scored.
    #[arg(long, value_name = "FILE.jsonl")]
    filter: Option<PathBuf>,
    /// The field holding the text in --outputs and --filter.
    #[arg(long, default_value = "text", value_name = "NAME")]
    field: String,
    /// The field holding the prompt in --prompts.
    #[arg(long, default_value = "prompt", value_name = "NAME")]
    prompt_field: String,
}

#[derive(Debug, clap::Args)]
struct OpenArgs {
    #[command(flatten)]
    common: Common,
    /// The suspect model (a llama-architecture GGUF with the watermarking tokenizer; default:
    /// the embedded model, fetched on first use).
    #[arg(long, value_name = "FILE.gguf")]
    model: Option<PathBuf>,
    /// The watermarked texts to feed it (JSON Lines, text in --field).
    #[arg(
        long,
        value_name = "FILE.jsonl",
        required_unless_present = "predictions"
    )]
    texts: Option<PathBuf>,
    /// Instead of --model/--texts: predictions made elsewhere, JSON Lines with "ids" (a
    /// watermarked text's token ids) and "predictions" (the suspect's top-1 next token after
    /// each prefix, one per id).
    #[arg(long, value_name = "FILE.jsonl", conflicts_with_all = ["model", "texts"])]
    predictions: Option<PathBuf>,
    /// The field holding the text in --texts.
    #[arg(long, default_value = "text", value_name = "NAME")]
    field: String,
    /// Texts run through the model together.
    #[arg(long, default_value_t = 8, value_name = "N")]
    batch: usize,
    /// Tokens read from each text at most.
    #[arg(long, default_value_t = 512, value_name = "N")]
    max_tokens_per_text: usize,
    /// With --predictions and --vllm-config: the model's vocabulary size (ids are checked
    /// against it; a KGW key file carries it in its config).
    #[arg(long, value_name = "N", requires = "predictions")]
    vocab_size: Option<u32>,
}

/// Runs `greenmark radioactivity`.
pub fn run(args: Args) -> Result<()> {
    match args.mode {
        Mode::Closed(a) => closed(a),
        Mode::Open(a) => open(a),
    }
}

/// The keys and the config of the first key file (checked against the tokenizer's size).
/// Every other key file must be for the same detection: the same green lists
/// ([`WatermarkConfig::check_same_detection`]); delta, which only sets how strongly
/// generation favoured them, may differ.
fn keys_and_config(
    common: &Common,
    vocab: u32,
    source: &str,
) -> Result<(Vec<Key>, WatermarkConfig)> {
    let mut keys = Vec::new();
    let mut config: Option<WatermarkConfig> = None;
    for path in &common.key_files {
        let file = load_key_file(path)?;
        let this = detection_config(&file, path, vocab, source)?;
        match &config {
            None => config = Some(this),
            Some(first) => match first.check_same_detection(&this) {
                Ok(()) => {}
                Err(greenmark::Error::ConfigMismatch {
                    field,
                    stored,
                    given,
                }) => bail!(
                    "key file {} has {field} {given} but key file {} has {field} {stored}: \
                     their watermarks make different tokens green, so test one watermark \
                     config at a time (keys that differ only in delta can be tested together)",
                    path.display(),
                    common.key_files[0].display()
                ),
                Err(err) => return Err(err.into()),
            },
        }
        keys.push(file.key);
    }
    let Some(config) = config else {
        bail!("give at least one --key-file (or --vllm-config)");
    };
    Ok((keys, config))
}

/// The test the arguments ask for, its ids checked against `vocab`, and a line that describes
/// the watermark for the report.
fn build_test(common: &Common, vocab: u32, source: &str) -> Result<(RadioactivityTest, String)> {
    if let Some(path) = &common.vllm_config {
        let vllm = VllmWatermarkConfig::load(path)
            .with_context(|| format!("cannot use the vLLM watermark config {}", path.display()))?;
        let width = vllm.config.context_width;
        let test = RadioactivityTest::gumbel(&[vllm.key], vllm.config, vocab, options(common))?;
        return Ok((
            test,
            format!("vLLM Gumbel watermark, context width {width}"),
        ));
    }
    let (keys, config) = keys_and_config(common, vocab, source)?;
    let describe = format!("gamma {}, delta {}", config.gamma(), config.delta());
    Ok((
        RadioactivityTest::new(&keys, config, options(common))?,
        describe,
    ))
}

fn options(common: &Common) -> TestOptions {
    let mut options = TestOptions::default().dedup(!common.no_dedup);
    if let Some(n) = common.max_tuples {
        options = options.max_tuples(n);
    }
    options
}

fn closed(args: ClosedArgs) -> Result<()> {
    let (tokenizer, source) = args.tokenizer.load()?;
    let vocab = tokenizer.get_vocab_size(true) as u32;
    let (test, describe) = build_test(&args.common, vocab, &source)?;
    let mut closed = ClosedTest::from_tokenizer(tokenizer, test);
    if let Some(path) = &args.prompts {
        for_each_text(path, &args.prompt_field, |text, line| {
            closed
                .exclude_prompt(text)
                .with_context(|| format!("{} line {line}", path.display()))
        })?;
    }
    if let Some(path) = &args.filter {
        for_each_text(path, &args.field, |text, line| {
            closed
                .add_filter_text(text)
                .with_context(|| format!("{} line {line}", path.display()))
        })?;
    }
    // Counting reads the input once more: not for stdin, which can be read only once.
    let lines = if args.outputs.as_os_str() == "-" {
        0
    } else {
        count_lines(&args.outputs)?
    };
    let bar = crate::progress::bar(lines, "scoring", "texts");
    let path = &args.outputs;
    for_each_text(path, &args.field, |text, line| {
        bar.inc(1);
        closed
            .score(text)
            .with_context(|| format!("{} line {line}", path.display()))
    })?;
    bar.finish_and_clear();
    let mode = format!("closed: {} (tokenizer {source})", path.display());
    finish(&args.common, &describe, &closed.finish(), &mode)
}

fn open(args: OpenArgs) -> Result<()> {
    if let Some(path) = &args.predictions {
        return open_predictions(&args, path);
    }
    let (model_path, mut lm) = load_model(args.model.as_ref())?;
    let source = model_path.display().to_string();
    let (mut test, describe) = build_test(&args.common, lm.vocab_size(), &source)?;
    let texts_path = args.texts.as_ref().context("give --texts")?;
    let mut texts = Vec::new();
    for_each_text(texts_path, &args.field, |text, line| {
        let ids = lm
            .encode(&greenmark::text::normalize(text).text)
            .with_context(|| format!("{} line {line}", texts_path.display()))?;
        texts.push(ids);
        Ok(())
    })?;
    let total: usize = texts
        .iter()
        .map(|t| t.len().min(args.max_tokens_per_text))
        .sum();
    let bar = crate::progress::bar(total as u64, "reading", "tokens");
    let mut reading = ReadingOptions::default();
    reading.max_batch = args.batch;
    reading.max_tokens_per_text = args.max_tokens_per_text;
    lm.read_into(&mut test, &texts, &reading, &mut |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    let mode = format!(
        "open: {} read by {}",
        texts_path.display(),
        model_path.display()
    );
    finish(&args.common, &describe, &test.finish(), &mode)
}

/// The vocabulary size for --predictions: --vocab-size, or the first key file's config.
fn predictions_vocab(args: &OpenArgs) -> Result<u32> {
    if let Some(v) = args.vocab_size {
        return Ok(v);
    }
    if args.common.vllm_config.is_some() {
        bail!("with --predictions and --vllm-config, give the model's --vocab-size (ids are checked against it)");
    }
    let first = load_key_file(&args.common.key_files[0])?;
    match &first.config {
        Some(stored) => Ok(stored.vocab_size()),
        None => bail!(
            "key file {} carries no config, and with --predictions there is no tokenizer to \
             take the vocabulary from: use a key file from `greenmark keygen`, or give --vocab-size",
            args.common.key_files[0].display()
        ),
    }
}

/// Open mode with predictions from a file (any model that gives logits).
fn open_predictions(args: &OpenArgs, path: &Path) -> Result<()> {
    let vocab = predictions_vocab(args)?;
    let (mut test, describe) = build_test(&args.common, vocab, "--vocab-size / the key file")?;
    for_each_line(path, |value, line| {
        let hint = "each line needs \"ids\" and \"predictions\" arrays of token ids";
        let ids = crate::input::token_ids_field(value, "ids", hint)
            .with_context(|| format!("{} line {line}", path.display()))?;
        let preds = crate::input::token_ids_field(value, "predictions", hint)
            .with_context(|| format!("{} line {line}", path.display()))?;
        test.score_predictions(&ids, &preds)
            .with_context(|| format!("{} line {line}", path.display()))
    })?;
    let mode = format!("open: predictions from {}", path.display());
    finish(&args.common, &describe, &test.finish(), &mode)
}

/// Calls `f(value, line_number)` for each non-blank JSON line of `path` (gzip or not). A
/// pooled test must not drop a line silently: the first bad one is an error naming it.
fn for_each_line(
    path: &Path,
    mut f: impl FnMut(&serde_json::Value, usize) -> Result<()>,
) -> Result<()> {
    let mut input = crate::input::open(&path.to_string_lossy())?;
    let (mut line_no, mut n) = (0usize, 0usize);
    loop {
        let lines = crate::input::read_json_chunk(&mut input, &mut line_no, 1024)?;
        if lines.is_empty() {
            break;
        }
        for (line, value) in lines {
            let value =
                value.map_err(|e| anyhow::anyhow!("{} line {line}: {e}", path.display()))?;
            f(&value, line)?;
            n += 1;
        }
    }
    if n == 0 {
        bail!(
            "{} has no JSON lines: give one JSON object per line",
            path.display()
        );
    }
    Ok(())
}

/// Calls `f(text, line_number)` with the string `field` of each JSON line of `path`.
fn for_each_text(
    path: &Path,
    field: &str,
    mut f: impl FnMut(&str, usize) -> Result<()>,
) -> Result<()> {
    for_each_line(path, |value, line| match value.get(field) {
        Some(serde_json::Value::String(text)) => f(text, line),
        Some(_) => bail!(
            "{} line {line}: field {field:?} is not a string; point the field option at the text",
            path.display()
        ),
        None => bail!(
            "{} line {line}: no field {field:?}; name the field holding the text",
            path.display()
        ),
    })
}

fn count_lines(path: &Path) -> Result<u64> {
    let mut input = crate::input::open(&path.to_string_lossy())?;
    crate::input::count_lines(&mut input)
}

fn finish(common: &Common, describe: &str, result: &Radioactivity, mode: &str) -> Result<()> {
    if let Some(path) = &common.report {
        std::fs::write(path, render(result, describe, common.threshold, mode))
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    if common.json {
        println!("{}", serde_json::to_string_pretty(result)?);
    } else {
        print!("{}", summary(result, common.threshold, mode));
    }
    Ok(())
}

/// The verdict at `threshold`, with the (corrected) p-value it rests on.
fn verdict(result: &Radioactivity, threshold: f64) -> String {
    let t = format_threshold(threshold);
    let ln_p = result.ln_p_bonferroni.min(0.0);
    let p = format_p_value(ln_p.exp(), greenmark::stats::ln_to_log10(ln_p));
    if ln_p < threshold.ln() {
        format!("RADIOACTIVE at the {t} threshold (p = {p})")
    } else {
        format!("not radioactive at the {t} threshold (p = {p})")
    }
}

fn summary(result: &Radioactivity, threshold: f64, mode: &str) -> String {
    let mut out = format!("mode      {mode}\nscheme    {}\n", result.scheme);
    let gumbel = result.scheme.contains("gumbel");
    for (i, k) in result.keys.iter().enumerate() {
        let statistic = if gumbel {
            format!("score {:.1} (expected {:.1})", k.score, k.expected_score)
        } else {
            format!(
                "green {} ({:.4}, expected {:.4})",
                k.n_green, k.green_fraction, k.expected_green_fraction
            )
        };
        out.push_str(&format!(
            "key {}  seen {}  excluded {}  filtered {}  copied {}  repeated {}  over budget {}  \
             scored {}  {statistic}  log10 p {:.2}{}\n",
            k.key_id,
            k.n_seen,
            k.n_excluded,
            k.n_filtered,
            k.n_copied,
            k.n_repeated,
            k.n_over_budget,
            k.n_scored,
            k.log10_p_value,
            if result.keys.len() > 1 && i == result.strongest_key {
                "  <- strongest"
            } else {
                ""
            }
        ));
    }
    if result.keys.len() > 1 {
        out.push_str(&format!(
            "corrected for {} keys: log10 p Bonferroni {:.2}, Sidak {:.2}\n",
            result.keys.len(),
            greenmark::stats::ln_to_log10(result.ln_p_bonferroni),
            greenmark::stats::ln_to_log10(result.ln_p_sidak)
        ));
    }
    let budget = match result.max_tuples {
        Some(n) if result.budget_reached => {
            format!("budget fixed up front: {n} tuples, budget_reached yes")
        }
        Some(n) => {
            let scored = result.keys.iter().map(|k| k.n_scored).min().unwrap_or(0);
            format!(
                "budget fixed up front: {n} tuples, budget_reached NO (only {scored} scored: \
                 the corpus has fewer eligible tuples, so the test is weaker than planned)"
            )
        }
        None => "no budget fixed up front (--max-tuples): EXPLORATORY, budget_reached no".into(),
    };
    out.push_str(&format!(
        "verdict   {}\nbudget    {budget}\n",
        verdict(result, threshold)
    ));
    out
}

/// The HTML report: the summary and an SVG plot of log10 p against tuples scored (log x).
fn render(result: &Radioactivity, describe: &str, threshold: f64, mode: &str) -> String {
    let title = "greenmark radioactivity test";
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    if result.exploratory {
        out.push_str(
            "<p class=\"note\">EXPLORATORY: no number of tuples was fixed up front \
             (--max-tuples). Stopping when the curve looks good is optional stopping; the \
             p-values below are not a confirmatory test.</p>\n",
        );
    }
    out.push_str(&format!(
        "<p>{} &middot; <code>{}</code></p>\n<pre>{}</pre>\n",
        escape(describe),
        escape(result.scheme),
        escape(&summary(result, threshold, mode))
    ));
    out.push_str(&plot(result, threshold));
    out.push_str("</body>\n</html>\n");
    out
}

fn plot(result: &Radioactivity, threshold: f64) -> String {
    const W: f64 = 900.0;
    const H: f64 = 300.0;
    const L: f64 = 56.0;
    const R: f64 = 12.0;
    const T: f64 = 14.0;
    const B: f64 = 34.0;
    let max_n = result
        .keys
        .iter()
        .flat_map(|k| k.curve.iter().map(|p| p.n_scored))
        .max()
        .unwrap_or(1)
        .max(10) as f64;
    let log_t = threshold.log10();
    let min_p = result
        .keys
        .iter()
        .flat_map(|k| k.curve.iter().map(|p| p.log10_p_value))
        .fold(log_t - 1.0, f64::min)
        .floor();
    let x = |n: f64| L + (W - L - R) * n.max(1.0).log10() / max_n.log10();
    let y = |lp: f64| T + (H - T - B) * (lp / min_p).clamp(0.0, 1.0);
    let frame = Frame {
        width: W,
        height: H,
        left: L,
        right: R,
        top: T,
        bottom: B,
    };
    let mut s = String::new();
    frame.open(
        &mut s,
        "log10 p against tuples scored",
        "log10 p-value against tuples scored (log scale); dashed: the threshold",
    );
    frame.rule(&mut s, "threshold", y(log_t));
    let mut decade = 1.0;
    while decade <= max_n {
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            x(decade),
            H - B + 16.0,
            decade
        ));
        decade *= 10.0;
    }
    let step = ((-min_p) / 5.0).ceil().max(1.0);
    let mut tick = 0.0;
    while tick >= min_p {
        frame.y_tick(&mut s, tick, y(tick));
        tick -= step;
    }
    s.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">tuples scored</text>\n",
        (L + W) / 2.0,
        H - 4.0
    ));
    for k in &result.keys {
        if k.curve.is_empty() {
            continue;
        }
        s.push_str("<polyline class=\"zline\" points=\"");
        for p in &k.curve {
            s.push_str(&format!(
                "{:.1},{:.1} ",
                x(p.n_scored as f64),
                y(p.log10_p_value)
            ));
        }
        s.push_str(&format!("\"><title>key {}</title></polyline>\n", k.key_id));
    }
    s.push_str("</svg>\n");
    s
}
