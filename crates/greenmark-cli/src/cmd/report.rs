//! `greenmark report`: one self-contained HTML page showing where the watermark is.

use std::path::PathBuf;

use anyhow::{Context, Result};
use greenmark::text::TextDetector;

use super::{detection_config, load_key_file, parse_threshold, TokenizerArgs};
use crate::cmd::detect::text_error;
use crate::report::{render_report, Report, Section};
use crate::verdict::Facts;

/// Arguments of `greenmark report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The key file (from `greenmark keygen`).
    #[arg(long, value_name = "FILE")]
    key_file: PathBuf,
    #[command(flatten)]
    tokenizer: TokenizerArgs,
    /// Where to write the HTML report (overwritten if it exists).
    #[arg(long, value_name = "OUT.html")]
    html: PathBuf,
    /// The p-value below which the text is called watermarked.
    #[arg(long, default_value = "1e-6", value_parser = parse_threshold, value_name = "P")]
    threshold: f64,
    /// The text to annotate (UTF-8; read whole, so keep it to report size).
    #[arg(value_name = "FILE")]
    input: PathBuf,
}

/// Runs `greenmark report`.
pub fn run(args: Args) -> Result<()> {
    let key_file = load_key_file(&args.key_file)?;
    let bytes = std::fs::read(&args.input).with_context(|| {
        format!(
            "cannot read {}: give a readable UTF-8 text file",
            args.input.display()
        )
    })?;
    let name = args.input.display().to_string();
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{name} is not UTF-8 text (invalid byte at offset {}): give a text file",
            e.utf8_error().valid_up_to()
        )
    })?;
    let (tokenizer, source) = args.tokenizer.load()?;
    let vocab = tokenizer.get_vocab_size(true) as u32;
    let config = detection_config(&key_file, &args.key_file, vocab, &source)?;
    let detector = TextDetector::new(tokenizer, &key_file.key, config.clone())?;
    let annotation = detector.annotate(&text).map_err(|e| text_error(e, &name))?;
    let html = render_report(&Report {
        title: format!("greenmark report: {name}"),
        config: &config,
        threshold: args.threshold,
        notes: Vec::new(),
        sections: vec![Section {
            title: name.clone(),
            subtitle: None,
            annotation: &annotation,
        }],
    });
    std::fs::write(&args.html, html)
        .with_context(|| format!("cannot write the report to {}", args.html.display()))?;
    let d = &annotation.detection;
    println!(
        "wrote {}: {} tokens, {} scored, z {:.2}, log10 p {:.2}: {}",
        args.html.display(),
        d.n_tokens,
        d.n_scored,
        d.z_score,
        d.log10_p_value,
        Facts::of(d, args.threshold, config.delta()).sentence()
    );
    Ok(())
}
