//! The SynthID Text configuration, read from and written as the JSON of transformers'
//! `SynthIDTextWatermarkingConfig.to_dict()`.

use crate::error::{Error, Result};

/// The largest sampling table transformers accepts (`SynthIDTextWatermarkingConfig.validate`).
pub const MAX_SAMPLING_TABLE_SIZE: usize = 1 << 24;
/// The longest ngram accepted (transformers sets no bound; a context this long is already far
/// beyond any use, and bounding it keeps the per-row state small).
pub const MAX_NGRAM_LEN: usize = 1024;
/// The largest context history accepted (transformers sets no bound; it stores one `int64` per
/// entry per batch row).
pub const MAX_CONTEXT_HISTORY_SIZE: usize = 1 << 24;

/// The parameters of a SynthID Text watermark as transformers 5.24 defines them
/// (`SynthIDTextWatermarkingConfig`): the same field names, defaults and JSON, so the dict a
/// transformers user has (`config.to_dict()`, or `to_json_file`) loads here as it is.
///
/// * `ngram_len`: a token is keyed by the `ngram_len - 1` tokens before it and itself.
/// * `keys`: one key per *depth* (tournament layer); the secret. `int64` each, as torch holds
///   them.
/// * `sampling_table_size` (default 2^16, at most 2^24) and `sampling_table_seed` (default 0):
///   the public table of g-values, `torch.randint(0, 2, (size,))` from a CPU generator seeded
///   with the seed.
/// * `context_history_size` (default 1024): how many recent contexts generation remembers; a
///   context seen among them is not watermarked again.
/// * `skip_first_ngram_calls` (default false): do not watermark the first `ngram_len - 1`
///   generation steps.
/// * `debug_mode` (default false): transformers' test mode, which replaces the model's scores by
///   ones before watermarking.
///
/// ```
/// use greenmark::synthid::SynthIdConfig;
/// let config = SynthIdConfig::from_json(r#"{"ngram_len": 5, "keys": [654, 400, 836, 123, 340]}"#)?;
/// assert_eq!(config.sampling_table_size, 65536);
/// assert_eq!(config.context_history_size, 1024);
/// assert_eq!(config.depth(), 5);
/// // The JSON round-trips, with every field transformers writes.
/// assert_eq!(SynthIdConfig::from_json(&config.to_json())?, config);
/// // Bad values are refused with a message that says what to fix.
/// let err = SynthIdConfig::from_json(r#"{"ngram_len": 5, "keys": []}"#).unwrap_err();
/// assert!(err.to_string().contains("keys"));
/// // Debug shows how many keys there are, never their values (they are the secret).
/// assert!(format!("{config:?}").contains("[5 keys, not shown]"));
/// assert!(!format!("{config:?}").contains("836"));
/// # Ok::<(), greenmark::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SynthIdConfig {
    /// Ngram length, `>= 1`.
    pub ngram_len: usize,
    /// One key per depth, at least one.
    pub keys: Vec<i64>,
    /// Size of the sampling table, `1 ..= 2^24`.
    pub sampling_table_size: usize,
    /// Seed of the sampling table's generator (only its low 32 bits matter, as in torch).
    pub sampling_table_seed: u64,
    /// Contexts remembered by generation's repetition check, `0 ..= 2^24`.
    pub context_history_size: usize,
    /// Whether generation leaves its first `ngram_len - 1` steps unwatermarked.
    pub skip_first_ngram_calls: bool,
    /// transformers' debug mode (scores replaced by ones before watermarking).
    pub debug_mode: bool,
}

impl std::fmt::Debug for SynthIdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SynthIdConfig")
            .field("ngram_len", &self.ngram_len)
            .field(
                "keys",
                &format_args!("[{} keys, not shown]", self.keys.len()),
            )
            .field("sampling_table_size", &self.sampling_table_size)
            .field("sampling_table_seed", &self.sampling_table_seed)
            .field("context_history_size", &self.context_history_size)
            .field("skip_first_ngram_calls", &self.skip_first_ngram_calls)
            .field("debug_mode", &self.debug_mode)
            .finish()
    }
}

impl SynthIdConfig {
    /// A config with transformers' defaults for everything but `ngram_len` and `keys`
    /// (validated).
    ///
    /// ```
    /// use greenmark::synthid::SynthIdConfig;
    /// assert!(SynthIdConfig::new(5, vec![1, 2, 3]).is_ok());
    /// assert!(SynthIdConfig::new(0, vec![1, 2, 3]).is_err());
    /// ```
    pub fn new(ngram_len: usize, keys: Vec<i64>) -> Result<SynthIdConfig> {
        let config = SynthIdConfig {
            ngram_len,
            keys,
            sampling_table_size: 1 << 16,
            sampling_table_seed: 0,
            context_history_size: 1024,
            skip_first_ngram_calls: false,
            debug_mode: false,
        };
        config.validate()?;
        Ok(config)
    }

    /// The number of depths (keys).
    pub fn depth(&self) -> usize {
        self.keys.len()
    }

    /// Checks every field, saying which is wrong and what is allowed.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::scheme("synthid", reason));
        if self.ngram_len == 0 || self.ngram_len > MAX_NGRAM_LEN {
            return bad(format!(
                "ngram_len must be from 1 to {MAX_NGRAM_LEN} (transformers' examples use 5), got {}",
                self.ngram_len
            ));
        }
        if self.keys.is_empty() {
            return bad(
                "keys must hold at least one key (one per depth, e.g. [654, 400, 836])".into(),
            );
        }
        if self.sampling_table_size == 0 || self.sampling_table_size > MAX_SAMPLING_TABLE_SIZE {
            return bad(format!(
                "sampling_table_size must be from 1 to 2^24 = {MAX_SAMPLING_TABLE_SIZE} (default \
                 65536), got {}",
                self.sampling_table_size
            ));
        }
        if self.context_history_size > MAX_CONTEXT_HISTORY_SIZE {
            return bad(format!(
                "context_history_size must be at most 2^24 = {MAX_CONTEXT_HISTORY_SIZE} (default \
                 1024), got {}",
                self.context_history_size
            ));
        }
        Ok(())
    }

    /// Parses the JSON of transformers' `SynthIDTextWatermarkingConfig.to_dict()` (required:
    /// `ngram_len`, `keys`; the other fields default as in transformers). Unknown fields are
    /// refused, so a typo does not silently fall back to a default. Errors name the field and
    /// what it must be, and never quote a value: the keys are the secret.
    #[cfg(feature = "serde")]
    pub fn from_json(text: &str) -> Result<SynthIdConfig> {
        use crate::json::Object;
        let what = crate::error::Document::SynthIdConfig;
        let value = crate::json::parse(what, text)?;
        let o = Object::new(what, "", &value)?;
        o.only(&[
            "ngram_len",
            "keys",
            "sampling_table_size",
            "sampling_table_seed",
            "context_history_size",
            "skip_first_ngram_calls",
            "debug_mode",
        ])?;
        let ngram = format!("an integer from 1 to {MAX_NGRAM_LEN} (transformers' examples use 5)");
        let ngram_len = match o.int("ngram_len", 1, MAX_NGRAM_LEN as i128, &ngram)? {
            Some(n) => n as usize,
            None => return Err(o.error("ngram_len", format!("is missing: it must be {ngram}"))),
        };
        const KEYS: &str =
            "an array of integers that fit in int64, one per depth (e.g. [654, 400, 836])";
        let keys = match o.require("keys", KEYS)? {
            serde_json::Value::Array(items) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    crate::json::int_value(k, i128::from(i64::MIN), i128::from(i64::MAX))
                        .map(|k| k as i64)
                        .map_err(|got| {
                            o.error(
                                &format!("keys[{i}]"),
                                format!(
                                    "must be an integer that fits in int64 (as torch holds the \
                                     keys), got {got}"
                                ),
                            )
                        })
                })
                .collect::<Result<Vec<i64>>>()?,
            serde_json::Value::Array(_) => {
                return Err(o.error("keys", format!("must be {KEYS}, got an empty array")))
            }
            other => return Err(o.wrong("keys", KEYS, other)),
        };
        let table =
            format!("an integer from 1 to 2^24 = {MAX_SAMPLING_TABLE_SIZE} (default 65536)");
        let history =
            format!("an integer from 0 to 2^24 = {MAX_CONTEXT_HISTORY_SIZE} (default 1024)");
        let config = SynthIdConfig {
            ngram_len,
            keys,
            sampling_table_size: o
                .int(
                    "sampling_table_size",
                    1,
                    MAX_SAMPLING_TABLE_SIZE as i128,
                    &table,
                )?
                .map_or(1 << 16, |n| n as usize),
            sampling_table_seed: o
                .int(
                    "sampling_table_seed",
                    0,
                    i128::from(u64::MAX),
                    "an integer from 0 to 2^64 - 1",
                )?
                .map_or(0, |n| n as u64),
            context_history_size: o
                .int(
                    "context_history_size",
                    0,
                    MAX_CONTEXT_HISTORY_SIZE as i128,
                    &history,
                )?
                .map_or(1024, |n| n as usize),
            skip_first_ngram_calls: o.bool("skip_first_ngram_calls")?.unwrap_or(false),
            debug_mode: o.bool("debug_mode")?.unwrap_or(false),
        };
        config.validate()?;
        Ok(config)
    }

    /// The config as transformers' `to_dict()` JSON (every field, sorted as `to_json_string`
    /// sorts them).
    #[cfg(feature = "serde")]
    pub fn to_json(&self) -> String {
        // A struct of numbers, bools and a list of numbers always serializes.
        serde_json::to_string(&serde_json::to_value(self).unwrap_or_default()).unwrap_or_default()
    }

    /// Reads a config JSON file (e.g. written by `SynthIDTextWatermarkingConfig.to_json_file`):
    /// a regular file of at most [`crate::files::KEY_FILE_LIMIT`] bytes, as it holds the keys.
    #[cfg(feature = "serde")]
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<SynthIdConfig> {
        let path = path.as_ref();
        let text = crate::files::read_limited_text(
            path,
            "read SynthID config",
            crate::files::KEY_FILE_LIMIT,
            crate::error::Document::SynthIdConfig,
        )?;
        SynthIdConfig::from_json(&text)
    }
}
