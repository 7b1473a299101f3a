//! The subcommands, and what they share: key files, tokenizers, configs.

pub mod demo;
pub mod detect;
pub mod eval;
pub mod generate;
pub mod keygen;
pub mod radioactivity;
pub mod report;
pub mod screen;
pub mod serve;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use greenmark::{KeyFile, WatermarkConfig};
use tokenizers::Tokenizer;

use crate::progress::FetchProgress;

/// A usage error found after parsing (a flag that does not apply to the chosen mode): the
/// binary prints it like clap's own and exits with status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Fails with a [`UsageError`] saying `message`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// Where the tokenizer comes from: a tokenizer.json, a GGUF model, or the default model.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenizerArgs {
    /// A Hugging Face tokenizer.json (or a .gguf) to tokenize with.
    #[arg(long, value_name = "FILE", conflicts_with = "model")]
    pub tokenizer: Option<PathBuf>,
    /// Tokenize with the tokenizer embedded in this GGUF model file.
    #[arg(long, value_name = "FILE.gguf")]
    pub model: Option<PathBuf>,
}

impl TokenizerArgs {
    /// Whether a tokenizer or model was named (else the default model's tokenizer is used).
    pub fn is_given(&self) -> bool {
        self.tokenizer.is_some() || self.model.is_some()
    }

    /// Loads the tokenizer, fetching the default model when neither option is given.
    pub fn load(&self) -> Result<(Tokenizer, String)> {
        let path = match (&self.tokenizer, &self.model) {
            (Some(path), _) | (None, Some(path)) => path.clone(),
            (None, None) => default_model_path()?,
        };
        if !path.is_file() {
            bail!(
                "tokenizer file {} does not exist: give a tokenizer.json or .gguf file that \
                 exists, or leave out --tokenizer/--model to use the default model",
                path.display()
            );
        }
        let tokenizer = greenmark_lm::tokenizer::load_tokenizer(&path)
            .with_context(|| format!("cannot load a tokenizer from {}", path.display()))?;
        Ok((tokenizer, path.display().to_string()))
    }
}

/// The default model's path, fetching it (with progress on stderr) on first use.
pub fn default_model_path() -> Result<PathBuf> {
    let mut progress = FetchProgress::new();
    let path = greenmark_lm::default_model(&mut |event| progress.event(event))?;
    Ok(path)
}

/// Loads the model at `path`, or the default one (fetched on first use), with a spinner.
pub fn load_model(path: Option<&PathBuf>) -> Result<(PathBuf, greenmark_lm::Lm)> {
    let path = match path {
        Some(path) => path.clone(),
        None => default_model_path()?,
    };
    let spinner = crate::progress::spinner("loading the model");
    let lm = greenmark_lm::Lm::load(&path)?;
    spinner.finish_and_clear();
    Ok((path, lm))
}

/// Warns on stderr when users other than its owner may read the key file at `path`.
pub fn warn_if_readable(path: &Path) {
    if let Some(loose) = greenmark::files::loose_permissions(path) {
        eprintln!("warning: {loose}");
    }
}

/// Reads a key file, with messages that say how to get a good one; warns on stderr when users
/// other than its owner may read it.
pub fn load_key_file(path: &Path) -> Result<KeyFile> {
    warn_if_readable(path);
    if !path.exists() {
        bail!(
            "key file {} does not exist: create one with `greenmark keygen -o {}`",
            path.display(),
            path.display()
        );
    }
    KeyFile::load(path).with_context(|| {
        format!(
            "cannot use key file {}: make one with `greenmark keygen -o FILE`",
            path.display()
        )
    })
}

/// The config to detect with: the key file's, checked against the tokenizer's vocabulary, or
/// the defaults for the tokenizer's vocabulary when the key file carries none
/// ([`KeyFile::config_for_tokenizer`]: the rule and its error text live in the core).
pub fn detection_config(
    key_file: &KeyFile,
    key_path: &Path,
    tokenizer_vocab: u32,
    tokenizer_source: &str,
) -> Result<WatermarkConfig> {
    if key_file.config.is_none() {
        eprintln!(
            "note: key file {} carries no config; using the defaults (gamma 0.25, delta 2, \
             lefthash) for the tokenizer's {tokenizer_vocab} tokens",
            key_path.display()
        );
    }
    key_file
        .config_for_tokenizer(tokenizer_vocab as usize)
        .with_context(|| {
            format!(
                "key file {} does not fit the tokenizer {tokenizer_source}",
                key_path.display()
            )
        })
}

/// A threshold p-value from the command line: strictly between 0 and 1
/// ([`greenmark::stats::check_threshold`]).
pub fn parse_threshold(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number; give a p-value such as 1e-6"))?;
    greenmark::stats::check_threshold(value).map_err(|e| e.to_string())
}

/// Describes the normalizations applied as `what (count), ...`, or `none`.
pub fn describe_normalizations(applied: &[greenmark::text::Applied]) -> String {
    let parts: Vec<String> = applied
        .iter()
        .filter(|a| a.count > 0)
        .map(|a| format!("{} ({})", a.what, a.count))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}
