//! `greenmark detect`: is this text watermarked? Plain text (streamed) or JSON Lines; with
//! `--vllm-config`, vLLM's native Gumbel watermark on token ids (see [`gumbel`]).

mod gumbel;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use greenmark::text::{TextDetection, TextDetector};

use super::{
    describe_normalizations, detection_config, load_key_file, normalizations_json, parse_threshold,
    TokenizerArgs,
};
use crate::table::{format_p, format_threshold, is_watermarked, verdict};

/// Arguments of `greenmark detect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The key file (from `greenmark keygen`).
    #[arg(long, value_name = "FILE", required_unless_present = "vllm_config")]
    key_file: Option<PathBuf>,
    /// Detect vLLM's native watermark instead: the JSON given to `vllm serve
    /// --watermark-config` (key, algorithm, context width). Input: token-id JSON Lines (the
    /// served ids), or text with --tokenizer/--model (re-tokenized text can differ from the
    /// served ids).
    #[arg(long, value_name = "FILE", conflicts_with = "key_file")]
    vllm_config: Option<PathBuf>,
    /// With --vllm-config: the field of each JSON line that holds the token ids (a line may
    /// also be a bare JSON array).
    #[arg(
        long,
        default_value = "token_ids",
        requires = "vllm_config",
        value_name = "NAME"
    )]
    ids_field: String,
    #[command(flatten)]
    tokenizer: TokenizerArgs,
    /// Read JSON Lines: one object per line, the text in --field.
    #[arg(long)]
    jsonl: bool,
    /// The field of each JSON line that holds the text.
    #[arg(long, default_value = "text", requires = "jsonl", value_name = "NAME")]
    field: String,
    /// Print JSON (one object; with --jsonl, one object per input line) instead of a table.
    #[arg(long)]
    json: bool,
    /// The p-value below which a text is called watermarked.
    #[arg(long, default_value = "1e-6", value_parser = parse_threshold, value_name = "P")]
    threshold: f64,
    /// Exit with status 10 when a watermark is detected (with --jsonl: in any line).
    #[arg(long)]
    exit_code: bool,
    /// The text to check; `-` reads stdin.
    #[arg(value_name = "FILE", default_value = "-")]
    input: String,
}

/// Runs `greenmark detect`; returns whether a watermark was found (and `--exit-code` was given).
pub fn run(args: Args) -> Result<bool> {
    if let Some(config) = &args.vllm_config {
        return gumbel::run(&args, config);
    }
    let key_path = args
        .key_file
        .as_ref()
        .context("give --key-file (or --vllm-config for vLLM's watermark)")?;
    let key_file = load_key_file(key_path)?;
    let (tokenizer, source) = args.tokenizer.load()?;
    let vocab = tokenizer.get_vocab_size(true) as u32;
    let config = detection_config(&key_file, key_path, vocab, &source)?;
    let detector = TextDetector::new(tokenizer, &key_file.key, config)?;
    let name = if args.input == "-" {
        "stdin".to_string()
    } else {
        args.input.clone()
    };
    let reader = open_input(&args.input, &name)?;
    let found = if args.jsonl {
        detect_jsonl(&detector, reader, &name, &args)?
    } else {
        detect_text(&detector, reader, &name, &args)?
    };
    Ok(found && args.exit_code)
}

/// The input (`-` is stdin), buffered.
fn open_input(input: &str, name: &str) -> Result<Box<dyn BufRead>> {
    if input == "-" {
        return Ok(Box::new(io::stdin().lock()));
    }
    let file = File::open(input).with_context(|| {
        format!("cannot open input {name}: give a readable file or `-` for stdin")
    })?;
    Ok(Box::new(BufReader::with_capacity(1 << 16, file)))
}

fn detect_text(
    detector: &TextDetector,
    reader: Box<dyn BufRead>,
    name: &str,
    args: &Args,
) -> Result<bool> {
    let result = detector
        .detect_reader(reader)
        .map_err(|e| text_error(e, name))?;
    let found = is_watermarked(&result.detection, args.threshold);
    let mut out = io::stdout().lock();
    if args.json {
        let value = detection_json(&result, args.threshold, None)?;
        writeln!(out, "{value}")?;
    } else {
        let d = &result.detection;
        let t = format_threshold(args.threshold);
        let lines = [
            ("input", name.to_string()),
            ("key id", d.key_id.to_string()),
            (
                "scheme",
                format!(
                    "{} (gamma {}, delta {})",
                    d.scheme,
                    d.gamma,
                    detector.detector().config().delta()
                ),
            ),
            ("tokens", d.n_tokens.to_string()),
            (
                "scored",
                format!(
                    "{} ({} green, fraction {:.3})",
                    d.n_scored, d.n_green, d.green_fraction
                ),
            ),
            ("z-score", format!("{:.2}", d.z_score)),
            (
                "p-value",
                format!("{} (log10 {:.2})", format_p(d), d.log10_p_value),
            ),
            (
                "normalized",
                describe_normalizations(&result.normalizations),
            ),
            (
                "verdict",
                format!("{} (p < {t})", verdict(d, args.threshold)),
            ),
        ];
        for (label, value) in lines {
            writeln!(out, "{label:<11} {value}")?;
        }
    }
    Ok(found)
}

fn detect_jsonl(
    detector: &TextDetector,
    mut reader: Box<dyn BufRead>,
    name: &str,
    args: &Args,
) -> Result<bool> {
    let mut out = io::stdout().lock();
    // Rows are printed as they come (fixed widths), so memory stays bounded by one line.
    if !args.json {
        writeln!(
            out,
            "{:>7}  {:>8}  {:>8}  {:>6}  {:>8}  {:>9}  verdict (p < {})",
            "line",
            "tokens",
            "scored",
            "green",
            "z",
            "log10 p",
            format_threshold(args.threshold)
        )?;
    }
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    let mut found = 0usize;
    let mut texts = 0usize;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("cannot read {name} (after line {line_no})"))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let line = std::str::from_utf8(&buf).map_err(|e| {
            anyhow::anyhow!(
                "{name} line {line_no}: not UTF-8 text (invalid byte at column {}): JSON Lines \
                 input must be UTF-8",
                e.valid_up_to() + 1
            )
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            anyhow::anyhow!(
                "{name} line {line_no}: not valid JSON ({e}); each line must be one JSON object"
            )
        })?;
        let text = match value.get(&args.field) {
            Some(serde_json::Value::String(text)) => text,
            Some(_) => bail!(
                "{name} line {line_no}: field {:?} is not a string; point --field at the text",
                args.field
            ),
            None => bail!(
                "{name} line {line_no}: no field {:?}; name the field holding the text with \
                 --field",
                args.field
            ),
        };
        let result = detector
            .detect(text)
            .map_err(|e| text_error(e, &format!("{name} line {line_no}")))?;
        texts += 1;
        found += usize::from(is_watermarked(&result.detection, args.threshold));
        if args.json {
            let value = detection_json(&result, args.threshold, Some(line_no))?;
            writeln!(out, "{value}")?;
        } else {
            let d = &result.detection;
            writeln!(
                out,
                "{line_no:>7}  {:>8}  {:>8}  {:>6.3}  {:>8.2}  {:>9.2}  {}",
                d.n_tokens,
                d.n_scored,
                d.green_fraction,
                d.z_score,
                d.log10_p_value,
                verdict(d, args.threshold)
            )?;
        }
    }
    if texts == 0 {
        bail!(
            "{name} has no JSON lines (it is empty or blank): give one JSON object per line, with the text in field {:?}",
            args.field
        );
    }
    if !args.json {
        writeln!(
            out,
            "{found} of {texts} texts watermarked at p < {}",
            format_threshold(args.threshold)
        )?;
    }
    Ok(found > 0)
}

/// One detection as a JSON object: the detection's fields, the normalizations, the verdict.
pub fn detection_json(
    result: &TextDetection,
    threshold: f64,
    line: Option<usize>,
) -> Result<serde_json::Value> {
    let mut value = serde_json::to_value(&result.detection)?;
    let object = value
        .as_object_mut()
        .expect("a detection serializes as an object");
    if let Some(line) = line {
        object.insert("line".into(), line.into());
    }
    object.insert(
        "normalizations".into(),
        normalizations_json(&result.normalizations),
    );
    object.insert("threshold".into(), threshold.into());
    object.insert(
        "watermarked".into(),
        is_watermarked(&result.detection, threshold).into(),
    );
    Ok(value)
}

/// A text-detection error as a one-line message naming the input.
pub fn text_error(error: greenmark::Error, name: &str) -> anyhow::Error {
    match error {
        greenmark::Error::EmptyText => anyhow::anyhow!(
            "{name} is empty (no text after normalization): nothing to detect; give a text"
        ),
        other => anyhow::Error::new(other).context(format!("cannot detect in {name}")),
    }
}
