//! `greenmark generate`: one answer from a model, watermarked with a key file's key (or with
//! SynthID Text from a transformers config). The text streams to stdout as it is generated
//! (with `--json`, one object at the end).

use std::io::{Read, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;

use anyhow::{Context, Result};
use greenmark::Watermarker;
use greenmark_lm::{GenerateOptions, Request, TextStream};

use super::{load_key_file, load_model};
use crate::progress;

/// Arguments of `greenmark generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The key file (from `greenmark keygen`); not needed with --no-watermark.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present_any = ["no_watermark", "synthid_config"]
    )]
    key_file: Option<PathBuf>,
    /// Watermark with SynthID Text instead, as transformers applies it: the JSON of
    /// `SynthIDTextWatermarkingConfig(...).to_dict()`. Detect with `greenmark detect
    /// --synthid-config` on the generated ids (--json prints them).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["key_file", "no_watermark"])]
    synthid_config: Option<PathBuf>,
    /// Print one JSON object {"text", "token_ids"} (the generated ids, for detection) instead
    /// of the text.
    #[arg(long)]
    json: bool,
    /// The user's message (sent through the model's chat template); `-` reads it from stdin.
    #[arg(long)]
    prompt: String,
    /// Most new tokens.
    #[arg(long, default_value_t = 200)]
    max_new_tokens: usize,
    /// Sampling temperature (0 is greedy).
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// Sample only from the k most likely tokens.
    #[arg(long)]
    top_k: Option<usize>,
    /// Sample only from the most likely tokens whose probability reaches p.
    #[arg(long)]
    top_p: Option<f32>,
    /// Sampler seed, for reproducible answers [default: random].
    #[arg(long)]
    seed: Option<u64>,
    /// A llama-architecture GGUF model [default: the embedded SmolLM2-135M-Instruct, fetched on
    /// first use].
    #[arg(long, value_name = "FILE.gguf")]
    model: Option<PathBuf>,
    /// Generate without the watermark (for comparison).
    #[arg(long)]
    no_watermark: bool,
}

/// Runs `greenmark generate`.
pub fn run(args: Args) -> Result<()> {
    let key_file = match &args.key_file {
        Some(path) if !args.no_watermark => Some((load_key_file(path)?, path.clone())),
        _ => None,
    };
    let synthid = match &args.synthid_config {
        Some(path) => Some(greenmark::synthid::SynthIdWatermarker::new(
            greenmark::synthid::SynthIdConfig::load(path)
                .with_context(|| format!("cannot use SynthID config {}", path.display()))?,
        )?),
        None => None,
    };
    let (path, mut lm) = load_model(args.model.as_ref())?;
    let watermarker = match &key_file {
        None => None,
        Some((key_file, key_path)) => {
            let config = key_file
                .config_for_model(u64::from(lm.vocab_size()))
                .with_context(|| {
                    format!(
                        "key file {} does not fit the model {}",
                        key_path.display(),
                        path.display()
                    )
                })?;
            Some(Watermarker::new(&key_file.key, config))
        }
    };
    let options = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed.unwrap_or_else(rand::random),
        ..GenerateOptions::default()
    };
    let user = if args.prompt == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the prompt from stdin (`--prompt -`): give UTF-8 text")?;
        text
    } else {
        args.prompt.clone()
    };
    let prompt = lm.chat_prompt(&user)?;
    let request = match &synthid {
        Some(wm) => Request::synthid(prompt, wm),
        None => Request::new(prompt, watermarker.as_ref()),
    };
    let answer = if args.json {
        let bar = progress::bar(args.max_new_tokens as u64, "generating", "tokens");
        let (answers, _timings) = lm.generate(&[request], &options, &mut |n| bar.inc(n as u64))?;
        bar.finish_and_clear();
        let answer = answers.into_iter().next().expect("one answer per prompt");
        println!(
            "{}",
            serde_json::json!({"text": answer.text, "token_ids": answer.tokens})
        );
        answer
    } else {
        stream(&mut lm, request, &options)?
    };
    eprintln!(
        "{} tokens{}, seed {}, {}",
        answer.tokens.len(),
        if answer.stopped {
            ""
        } else {
            " (stopped at --max-new-tokens)"
        },
        options.seed,
        match (&watermarker, &synthid) {
            (_, Some(wm)) => format!(
                "watermarked with SynthID Text (ngram_len {}, depth {})",
                wm.config().ngram_len,
                wm.config().depth()
            ),
            (Some(wm), None) => format!(
                "watermarked with key {} ({})",
                wm_key_id(&key_file),
                wm.config().scheme().id()
            ),
            (None, None) => "no watermark".to_string(),
        }
    );
    Ok(())
}

/// Generates `request`, writing its text to stdout as each token completes some (flushed
/// every time, so a reader sees the answer grow), then a line break.
fn stream(
    lm: &mut greenmark_lm::Lm,
    request: Request<'_>,
    options: &GenerateOptions,
) -> Result<greenmark_lm::Generation> {
    let tokenizer = lm.tokenizer().clone();
    let mut text = TextStream::new(&tokenizer);
    let mut out = std::io::stdout().lock();
    let mut failed: Option<anyhow::Error> = None;
    let (answers, _timings) = lm.generate_streaming(&[request], options, &mut |_, id| {
        let written = text
            .push(id)
            .map_err(anyhow::Error::new)
            .and_then(|piece| Ok(write_flushed(&mut out, &piece)?));
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(error) = failed {
        return Err(error);
    }
    let rest = text.finish()?;
    write_flushed(&mut out, &format!("{rest}\n"))?;
    Ok(answers.into_iter().next().expect("one answer per prompt"))
}

fn write_flushed(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    if !text.is_empty() {
        out.write_all(text.as_bytes())?;
        out.flush()?;
    }
    Ok(())
}

fn wm_key_id(key_file: &Option<(greenmark::KeyFile, PathBuf)>) -> String {
    key_file
        .as_ref()
        .map(|(k, _)| k.key.id().to_string())
        .unwrap_or_default()
}
