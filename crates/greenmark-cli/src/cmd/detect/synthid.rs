//! `greenmark detect --synthid-config cfg.json`: detect SynthID Text as transformers applies it
//! (`model.generate(..., watermarking_config=SynthIDTextWatermarkingConfig(...))`).
//!
//! The config is the JSON of `SynthIDTextWatermarkingConfig.to_dict()` (or `to_json_file`).
//! Input as for `--vllm-config`: the generated token ids as JSON Lines (default field
//! `token_ids`), or text re-tokenized with `--tokenizer`/`--model`.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use greenmark::synthid::{SynthIdConfig, SynthIdDetection, SynthIdDetector};

use super::gumbel::{each_answer, write_record};
use super::Args;
use crate::table::format_threshold;

const NOTE: &str = "note: re-tokenized text can differ from the token ids the model generated, \
which weakens (never inflates) the evidence; detect on the generated ids when you have them";

/// Runs the SynthID path of `greenmark detect`.
pub fn run(args: &Args, config_path: &Path) -> Result<bool> {
    if !config_path.is_file() {
        bail!(
            "SynthID config {} does not exist: give the JSON of transformers' \
             SynthIDTextWatermarkingConfig(...).to_dict(), e.g. {{\"ngram_len\": 5, \"keys\": \
             [654, 400, 836]}}",
            config_path.display()
        );
    }
    let config = SynthIdConfig::load(config_path)
        .with_context(|| format!("cannot use SynthID config {}", config_path.display()))?;
    let mut detector = SynthIdDetector::new(config.clone())?
        .with_threshold(args.threshold)?
        .with_eos(args.eos_id);
    if args.tokenizer.is_given() {
        let vocab = args.tokenizer.load()?.0.get_vocab_size(true);
        detector = detector.with_vocab_size(u32::try_from(vocab).unwrap_or(u32::MAX))?;
    }
    let mut out = std::io::stdout().lock();
    if !args.json {
        writeln!(
            out,
            "SynthID Text (transformers): ngram_len {}, depth {}, sampling table {} entries \
             ({:.4} ones); g-values deduplicated by table entry",
            config.ngram_len,
            config.depth(),
            config.sampling_table_size,
            detector.table().p0()
        )?;
    }
    let mut found = 0usize;
    let answers = each_answer(args, "token_ids", NOTE, |ids, line| {
        let d = detector.detect(ids)?;
        found += usize::from(d.is_watermarked);
        print_detection(&mut out, &d, line, args)
    })?;
    if !args.json {
        writeln!(
            out,
            "{found} of {answers} answers watermarked at p < {} (weighted mean score)",
            format_threshold(args.threshold)
        )?;
    }
    Ok(found > 0 && args.exit_code)
}

fn print_detection(
    out: &mut dyn Write,
    d: &SynthIdDetection,
    line: Option<usize>,
    args: &Args,
) -> Result<()> {
    if args.json {
        return write_record(out, d, line, &[]);
    }
    let verdict = if d.is_watermarked {
        "WATERMARKED"
    } else {
        "not watermarked"
    };
    let bound = match d.weighted.method {
        greenmark::stats::TailMethod::Exact => "",
        _ => " (Chernoff bound)",
    };
    let label = line.map_or_else(|| "text".to_string(), |l| format!("line {l}"));
    writeln!(
        out,
        "{label}: tokens {}, ngrams scored {} (skipped: {} repeated context, {} duplicate, {} \
         after EOS), weighted score {:.4} log10 p {:.2}{bound}, mean score {:.4} log10 p {:.2}: \
         {verdict}",
        d.n_tokens,
        d.n_scored,
        d.n_skipped_repeated_context,
        d.n_skipped_duplicate,
        d.n_skipped_eos,
        d.weighted.score,
        d.weighted.log10_p_value,
        d.mean.score,
        d.mean.log10_p_value,
    )?;
    Ok(())
}
