//! The optional `[generation]` table of serve.toml: the model the service generates with, the
//! key it watermarks with, and the policy a request cannot override.
//!
//! ```toml
//! [generation]
//! model = "default"             # the embedded SmolLM2-135M-Instruct, or a .gguf path
//! key = "current.key"           # one of `keys`, so the service detects what it generates
//! allow_unwatermarked = false   # may a request ask for "watermark": false?
//! max_tokens = 512              # the most new tokens a request may ask for
//! default_max_tokens = 256      # new tokens when a request names none
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ServeError;

/// Which model generates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelChoice {
    /// The embedded default model (`greenmark_lm::Lm::load_default`), fetched on first use.
    Default,
    /// A llama-architecture GGUF file.
    Path(PathBuf),
}

/// The `[generation]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationConfig {
    /// `"default"` or the path of a GGUF file (relative to the config file).
    #[serde(default = "default_model", deserialize_with = "model_choice")]
    pub model: ModelChoice,
    /// The key file to watermark with; it must be one of the service's `keys`.
    pub key: PathBuf,
    /// Whether a request may switch the watermark off with `"watermark": false` (default no).
    #[serde(default)]
    pub allow_unwatermarked: bool,
    /// The most new tokens one request may ask for (default 512).
    #[serde(default = "default_cap")]
    pub max_tokens: usize,
    /// New tokens for a request that names no `max_tokens` (at most `max_tokens`; default 256,
    /// or `max_tokens` when that is less): see [`GenerationConfig::default_tokens`].
    #[serde(default)]
    pub default_max_tokens: Option<usize>,
}

fn default_model() -> ModelChoice {
    ModelChoice::Default
}

fn default_cap() -> usize {
    512
}

/// `default_max_tokens` when the table names none (and `max_tokens` is larger).
const DEFAULT_TOKENS: usize = 256;

fn model_choice<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ModelChoice, D::Error> {
    let name = String::deserialize(d)?;
    Ok(match name.as_str() {
        "default" => ModelChoice::Default,
        _ => ModelChoice::Path(PathBuf::from(name)),
    })
}

impl GenerationConfig {
    /// Resolves relative paths against `base` (the config file's folder) and checks the
    /// numbers and that `key` is one of `keys` (already resolved).
    pub fn resolve(&mut self, base: &Path, keys: &[PathBuf]) -> Result<(), ServeError> {
        self.key = base.join(&self.key);
        if let ModelChoice::Path(path) = &mut self.model {
            *path = base.join(&*path);
        }
        if !keys.contains(&self.key) {
            return Err(ServeError::Config(format!(
                "generation.key {} is not one of keys: the service must detect what it generates, \
                 so list the key file there too (spelled the same way)",
                self.key.display()
            )));
        }
        if self.max_tokens == 0 || self.default_max_tokens == Some(0) {
            return Err(ServeError::Config(
                "generation.max_tokens and generation.default_max_tokens must be at least 1".into(),
            ));
        }
        if let Some(n) = self.default_max_tokens.filter(|&n| n > self.max_tokens) {
            return Err(ServeError::Config(format!(
                "generation.default_max_tokens ({n}) is over generation.max_tokens ({})",
                self.max_tokens
            )));
        }
        Ok(())
    }

    /// New tokens for a request that names no `max_tokens`.
    pub fn default_tokens(&self) -> usize {
        self.default_max_tokens
            .unwrap_or(DEFAULT_TOKENS.min(self.max_tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GenerationConfig, ServeError> {
        let mut config: GenerationConfig =
            toml::from_str(text).map_err(|e| ServeError::Config(e.message().to_string()))?;
        config.resolve(Path::new("/etc/gm"), &[PathBuf::from("/etc/gm/k.json")])?;
        Ok(config)
    }

    #[test]
    fn defaults_and_paths_resolve_against_the_config_folder() {
        let config = parse("key = \"k.json\"\n").unwrap();
        assert_eq!(config.model, ModelChoice::Default);
        assert_eq!(config.key, PathBuf::from("/etc/gm/k.json"));
        assert!(!config.allow_unwatermarked);
        assert_eq!((config.max_tokens, config.default_tokens()), (512, 256));
        assert_eq!(
            parse("key = \"k.json\"\nmax_tokens = 100\n")
                .unwrap()
                .default_tokens(),
            100
        );
        let config = parse("key = \"k.json\"\nmodel = \"m/x.gguf\"\nmax_tokens = 64\ndefault_max_tokens = 8\nallow_unwatermarked = true\n").unwrap();
        assert_eq!(
            config.model,
            ModelChoice::Path(PathBuf::from("/etc/gm/m/x.gguf"))
        );
        assert!(config.allow_unwatermarked);
    }

    #[test]
    fn bad_tables_say_what_to_fix() {
        for (text, needle) in [
            ("key = \"other.json\"\n", "not one of keys"),
            ("key = \"k.json\"\nmax_tokens = 0\n", "at least 1"),
            (
                "key = \"k.json\"\nmax_tokens = 8\ndefault_max_tokens = 9\n",
                "over generation.max_tokens",
            ),
            ("key = \"k.json\"\nwatermark = false\n", "watermark"),
            ("model = \"default\"\n", "key"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }
}
