//! The service's configuration file (`serve.toml`).
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! tokenizer = "tokenizer.json"        # the watermarked model's tokenizer
//! keys = ["current.key", "previous.key"]
//! threshold = 1e-6
//!
//! [[tokens]]                          # bearer tokens, stored as SHA-256 hex, never in clear
//! sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! role = "trusted"                    # or "public": the verdict and p-value only
//! requests_per_second = 50            # this holder's rate (default: unlimited)
//! burst = 100                         # requests allowed at once (default: one second's)
//!
//! [limits]
//! max_body_bytes = 1048576
//! max_batch = 256
//! request_timeout_secs = 30
//! max_radioactivity_body_bytes = 16777216
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ServeError;

/// What a bearer token may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The verdict and the p-value only. Per-token detail would make the service an oracle
    /// for stealing the watermark (learning the green lists one query at a time).
    Public,
    /// Every field `greenmark detect --json` prints.
    Trusted,
}

/// One accepted bearer token: the SHA-256 of the token (hex), and its role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// SHA-256 of the token, 64 hex digits (`printf %s TOKEN | sha256sum`).
    pub sha256: String,
    /// What the token may see.
    pub role: Role,
    /// Requests per second this holder may make on average (default: no limit); more get
    /// 429 with `Retry-After`.
    pub requests_per_second: Option<f64>,
    /// Requests this holder may make at once before the rate applies (default: one second's
    /// worth, at least 1).
    pub burst: Option<u32>,
}

/// A vLLM Gumbel watermark the service detects: the JSON its server was started with
/// (`vllm serve --watermark-config`), and a public label that names it in answers. A vLLM key
/// is a number people choose, so answers never carry anything derived from it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VllmEntry {
    /// The `--watermark-config` JSON file.
    pub config: PathBuf,
    /// The label answers name it by (`key_id`): letters, digits, `.`, `_`, `-`.
    pub name: String,
}

/// A SynthID Text watermark the service detects: the JSON of transformers'
/// `SynthIDTextWatermarkingConfig(...).to_dict()`, and a public label that names it in answers
/// (never anything derived from its keys).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthIdEntry {
    /// The config JSON file.
    pub config: PathBuf,
    /// The label answers name it by (`key_id`): letters, digits, `.`, `_`, `-`.
    pub name: String,
    /// The model's EOS id: ngrams at or after the first EOS are not scored, as transformers'
    /// detector masks them (default: none).
    #[serde(default)]
    pub eos_token_id: Option<u32>,
}

/// Request limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body in bytes (default 1 MiB); larger ones get 413.
    pub max_body_bytes: usize,
    /// Most inputs in one batch request (default 256).
    pub max_batch: usize,
    /// Longest a request may take, from its first byte to the answer, in seconds (default
    /// 30); slower ones get 408. A client that sends its body slowly cannot hold the
    /// service: others are served meanwhile. For `/v1/chat/completions` only the body's
    /// reading is bounded: an answer takes as long as its `max_tokens` asks (under the
    /// operator's cap), and stops when its client leaves.
    pub request_timeout_secs: f64,
    /// Largest body of a `POST /v1/radioactivity` in bytes (default 16 MiB): a corpus of
    /// outputs is larger than a text.
    pub max_radioactivity_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_batch: 256,
            request_timeout_secs: 30.0,
            max_radioactivity_body_bytes: 16 << 20,
        }
    }
}

impl Limits {
    /// The request timeout.
    pub fn request_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.request_timeout_secs)
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on (default `127.0.0.1:8080`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The watermarked model's tokenizer: a `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// Key files (with their configs), tested together with a corrected p-value.
    pub keys: Vec<PathBuf>,
    /// The p-value below which a text is called watermarked (default 1e-6).
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// vLLM Gumbel watermarks to detect beside the keys (`[[vllm]]` tables), each tested
    /// with the keys under one correction.
    #[serde(default)]
    pub vllm: Vec<VllmEntry>,
    /// SynthID Text watermarks to detect beside the keys (`[[synthid]]` tables), each tested
    /// with the keys under one correction.
    #[serde(default)]
    pub synthid: Vec<SynthIdEntry>,
    /// Accepted bearer tokens. None: every request is refused (401).
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
    /// Request limits.
    #[serde(default)]
    pub limits: Limits,
    /// `POST /v1/chat/completions`: the model and key to generate with (none: not served).
    #[serde(default)]
    pub generation: Option<crate::generation::GenerationConfig>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_threshold() -> f64 {
    1e-6
}

impl ServeConfig {
    /// Parses a config's TOML text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<ServeConfig, ServeError> {
        let mut config: ServeConfig =
            toml::from_str(text).map_err(|e| ServeError::Config(e.message().to_string()))?;
        config.tokenizer = base.join(&config.tokenizer);
        for key in &mut config.keys {
            *key = base.join(&*key);
        }
        for entry in &mut config.vllm {
            entry.config = base.join(&entry.config);
        }
        for entry in &mut config.synthid {
            entry.config = base.join(&entry.config);
        }
        if let Some(generation) = &mut config.generation {
            generation.resolve(base, &config.keys)?;
        }
        if config.keys.is_empty() {
            return Err(ServeError::Config(
                "keys is empty: list the key files to detect with".into(),
            ));
        }
        let limits = &config.limits;
        if limits.max_batch == 0
            || limits.max_body_bytes == 0
            || limits.max_radioactivity_body_bytes == 0
        {
            return Err(ServeError::Config(
                "limits.max_batch, limits.max_body_bytes and limits.max_radioactivity_body_bytes \
                 must be at least 1"
                    .into(),
            ));
        }
        let timeout = limits.request_timeout_secs;
        if !(timeout.is_finite() && (0.001..=86_400.0).contains(&timeout)) {
            return Err(ServeError::Config(format!(
                "limits.request_timeout_secs must be between 0.001 and 86400, got {timeout}"
            )));
        }
        for (i, token) in config.tokens.iter().enumerate() {
            if let Some(rate) = token.requests_per_second {
                if !(rate.is_finite() && rate > 0.0 && rate <= 1e9) {
                    return Err(ServeError::Config(format!(
                        "tokens[{i}].requests_per_second must be above 0 (and at most 1e9), \
                         got {rate}"
                    )));
                }
            }
            if token.burst == Some(0) {
                return Err(ServeError::Config(format!(
                    "tokens[{i}].burst must be at least 1"
                )));
            }
            if token.burst.is_some() && token.requests_per_second.is_none() {
                return Err(ServeError::Config(format!(
                    "tokens[{i}].burst needs requests_per_second"
                )));
            }
        }
        greenmark::stats::check_threshold(config.threshold)?;
        Ok(config)
    }

    /// Reads and parses a config file: a regular file of at most 1 MiB (greenmark's bounded
    /// reader, as for key files), so a wrong path cannot hang or exhaust the server at start.
    pub fn load(path: &Path) -> Result<ServeConfig, ServeError> {
        let bytes = greenmark::files::read_limited(path, "read the serve config", 1 << 20)
            .map_err(|e| ServeError::Config(e.to_string()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ServeError::Config(format!("{} is not UTF-8 text", path.display())))?;
        ServeConfig::parse(&text, path.parent().unwrap_or(Path::new(".")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_path_that_is_not_a_small_regular_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("serve.toml");
        std::fs::write(&big, vec![b'#'; (1 << 20) + 1]).unwrap();
        for (path, needle) in [
            (dir.path().to_owned(), "is a directory, not a regular file"),
            (big, "larger than 1 MiB"),
        ] {
            let err = ServeConfig::load(&path).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
            assert!(err.contains("cannot read the serve config"), "{err}");
        }
    }
}
