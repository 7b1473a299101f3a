//! Keys and configuration of the Gumbel family, and the vLLM `--watermark-config` JSON.

use sha2::{Digest, Sha256};

use super::philox::PhiloxPrf;
use crate::error::{Error, Result};
use crate::key::{Key, KeyId};

/// Scheme id of single-key Gumbel with a vLLM `u64` key (bit-compatible with vLLM 0.33 and 0.34).
pub const SCHEME_GUMBEL_VLLM: &str = "greenmark/gumbel-vllm/v1";
/// Scheme id of dual-key Gumbel with a vLLM `u64` key (bit-compatible with vLLM 0.33 and 0.34).
pub const SCHEME_DUAL_KEY_GUMBEL_VLLM: &str = "greenmark/dual-key-gumbel-vllm/v1";
/// Scheme id of single-key Gumbel keyed by a greenmark [`Key`].
pub const SCHEME_GUMBEL: &str = "greenmark/gumbel/v1";
/// Scheme id of dual-key Gumbel keyed by a greenmark [`Key`].
pub const SCHEME_DUAL_KEY_GUMBEL: &str = "greenmark/dual-key-gumbel/v1";

/// The subkey purpose a greenmark [`Key`] derives its Philox key from.
const NATIVE_PURPOSE: &str = "gumbel-philox/v1";

/// The widest context accepted (vLLM warns above 16; wider contexts only cost memory).
pub const MAX_CONTEXT_WIDTH: usize = 1024;

/// The smallest dedup history vLLM recommends (it warns below this).
pub const MIN_RECOMMENDED_HISTORY: usize = 1024;

/// The secret of a Gumbel watermark: a 64-bit Philox key, either vLLM's own (`--watermark-config
/// '{"key": ...}'`) or derived from a greenmark [`Key`]. The scheme id records which, so a
/// report says how to reproduce it. `Debug` never prints the key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GumbelKey {
    key: u64,
    native: bool,
}

impl std::fmt::Debug for GumbelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = if self.native { "greenmark" } else { "vllm" };
        write!(f, "GumbelKey({source}, ..)")
    }
}

impl GumbelKey {
    /// vLLM's `u64` key, for text served by vLLM with `--watermark-config`.
    pub fn vllm(key: u64) -> GumbelKey {
        GumbelKey { key, native: false }
    }

    /// A key derived from a greenmark [`Key`] (domain-separated SHA-256 subkey
    /// `gumbel-philox/v1`, first 8 bytes big-endian), for greenmark's own generation paths.
    pub fn from_key(key: &Key) -> GumbelKey {
        let subkey = key.derive(NATIVE_PURPOSE);
        GumbelKey {
            key: u64::from_be_bytes(subkey[..8].try_into().expect("8 bytes")),
            native: true,
        }
    }

    /// The key's public id (safe to show in reports): a domain-separated SHA-256 of the key
    /// and its kind, so a vLLM key and a derived key never share an id.
    pub fn id(&self) -> KeyId {
        KeyId::of(
            b"gumbel-key-id\0",
            &[&[u8::from(self.native)], &self.key.to_be_bytes()],
        )
    }

    /// Whether the key was derived from a greenmark [`Key`] (not a vLLM `u64`).
    pub fn is_native(&self) -> bool {
        self.native
    }

    /// The scheme id for `algorithm` with this key.
    pub fn scheme_id(&self, algorithm: Algorithm) -> &'static str {
        match (algorithm, self.native) {
            (Algorithm::Gumbel, false) => SCHEME_GUMBEL_VLLM,
            (Algorithm::DualKeyGumbel, false) => SCHEME_DUAL_KEY_GUMBEL_VLLM,
            (Algorithm::Gumbel, true) => SCHEME_GUMBEL,
            (Algorithm::DualKeyGumbel, true) => SCHEME_DUAL_KEY_GUMBEL,
        }
    }

    /// The PRFs of `algorithm`: one key, or vLLM's key pair A / B
    /// (`sha256(b"key_a" | key as 8 big-endian bytes)[..8]`, big-endian).
    pub(crate) fn prfs(&self, algorithm: Algorithm) -> [PhiloxPrf; 2] {
        match algorithm {
            Algorithm::Gumbel => [PhiloxPrf::new(self.key); 2],
            Algorithm::DualKeyGumbel => [
                PhiloxPrf::new(dual_subkey(self.key, b"key_a")),
                PhiloxPrf::new(dual_subkey(self.key, b"key_b")),
            ],
        }
    }
}

/// vLLM's `derive_watermark_key`: `sha256(domain | key.to_bytes(8, "big"))[:8]`, big-endian.
pub fn dual_subkey(key: u64, domain: &[u8]) -> u64 {
    let digest = Sha256::new()
        .chain_update(domain)
        .chain_update(key.to_be_bytes())
        .finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Which Gumbel variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Algorithm {
    /// Gumbel-max sampling with one key (Aaronson 2022; vLLM `gumbel`).
    Gumbel,
    /// Two derived keys; each step uses key B with probability `alpha`, else key A (vLLM
    /// `dual_key_gumbel`, for speculative decoding).
    DualKeyGumbel,
}

impl std::str::FromStr for Algorithm {
    type Err = Error;
    /// The algorithm by vLLM's name: `gumbel` or `dual_key_gumbel` (`sbw` is refused with a
    /// pointer to greenmark's KGW schemes).
    fn from_str(name: &str) -> Result<Algorithm> {
        match name {
            "gumbel" => Ok(Algorithm::Gumbel),
            "dual_key_gumbel" => Ok(Algorithm::DualKeyGumbel),
            "sbw" => Err(Error::Unsupported(
                "algorithm \"sbw\" (use greenmark's KGW schemes); expected \"gumbel\" or \"dual_key_gumbel\""
                    .into(),
            )),
            other => Err(Error::option(
                "algorithm",
                format!("algorithm must be \"gumbel\" or \"dual_key_gumbel\", got {other:?}"),
            )),
        }
    }
}

/// Which history generation searches for a repeated context before it watermarks a token
/// (vLLM `deduplicate_contexts`). A repeated context reuses the same keyed uniforms, so
/// watermarking it again would bias the text toward repeating itself; such a position is
/// sampled normally instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum ContextDedup {
    /// No search: every position is watermarked (repetition loops become likelier).
    None,
    /// Search the tokens generated for this request (vLLM's default): distortion-free within
    /// one answer.
    #[default]
    SingleTurn,
    /// Search the prompt too, and never watermark the first `context_width` generated
    /// tokens: distortion-free across turns, at the cost of fewer watermarked tokens.
    All,
}

impl std::str::FromStr for ContextDedup {
    type Err = Error;
    /// The mode by vLLM's name: `none`, `single_turn` or `all`.
    fn from_str(name: &str) -> Result<ContextDedup> {
        match name {
            "none" => Ok(ContextDedup::None),
            "single_turn" => Ok(ContextDedup::SingleTurn),
            "all" => Ok(ContextDedup::All),
            other => Err(Error::option(
                "deduplicate_contexts",
                format!(
                    "deduplicate_contexts must be \"none\", \"single_turn\" or \"all\", got {other:?}"
                ),
            )),
        }
    }
}

/// What generation does at a position whose context still holds padding: the first
/// `context_width` tokens of an answer, keyed by [`PAD`](super::PAD) plus the few tokens
/// generated so far.
///
/// Such contexts are the same for every answer, so watermarking them draws every answer's
/// first tokens with the same keyed uniforms: given the same prompt, every answer starts the
/// same way. vLLM 0.34's serving sampler therefore samples them normally (`contexts < 0`
/// joins its skip mask); vLLM 0.33 watermarked them (except under `all` dedup), and vLLM's
/// CPU reference path and its published goldens still do. Detection is unaffected: vLLM's
/// detector, and greenmark's, score every position either way (an unwatermarked token scores
/// as under the null, so skipping costs at most `context_width` tokens of evidence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum PartialContexts {
    /// Sample them normally, as vLLM 0.34 serves (the default).
    #[default]
    Skip,
    /// Watermark them, as vLLM 0.33 served and vLLM's reference goldens are written.
    Watermark,
}

impl std::str::FromStr for PartialContexts {
    type Err = Error;
    /// `skip` or `watermark`.
    fn from_str(name: &str) -> Result<PartialContexts> {
        match name {
            "skip" => Ok(PartialContexts::Skip),
            "watermark" => Ok(PartialContexts::Watermark),
            other => Err(Error::option(
                "partial_contexts",
                format!(
                    "partial_contexts must be \"skip\" (vLLM 0.34) or \"watermark\" (vLLM 0.33), got {other:?}"
                ),
            )),
        }
    }
}

/// The generation and detection parameters of a Gumbel watermark (the key aside).
///
/// The defaults are vLLM 0.34's: `gumbel`, alpha 0.1, context width 4, `single_turn` dedup over
/// the last 8192 positions, and the first `context_width` positions not watermarked
/// ([`PartialContexts::Skip`]).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct GumbelConfig {
    /// The variant.
    pub algorithm: Algorithm,
    /// Probability of key B at each step (dual-key only), in `[0, 1]`.
    pub alpha: f64,
    /// Generated tokens before a position that key its uniforms, `>= 1`.
    pub context_width: usize,
    /// Generation-time context dedup.
    pub dedup: ContextDedup,
    /// Most recent positions the dedup search covers, `>= 1`; `None` is the whole scope.
    pub max_history: Option<usize>,
    /// Whether generation watermarks the positions whose context holds padding.
    pub partial_contexts: PartialContexts,
}

impl Default for GumbelConfig {
    fn default() -> Self {
        GumbelConfig {
            algorithm: Algorithm::Gumbel,
            alpha: 0.1,
            context_width: 4,
            dedup: ContextDedup::SingleTurn,
            max_history: Some(8192),
            partial_contexts: PartialContexts::Skip,
        }
    }
}

impl GumbelConfig {
    /// vLLM's defaults with `algorithm`.
    pub fn new(algorithm: Algorithm) -> GumbelConfig {
        GumbelConfig {
            algorithm,
            ..GumbelConfig::default()
        }
    }

    /// Checks every field, saying which is wrong and what is allowed.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(Error::scheme(
                "gumbel",
                format!(
                    "alpha must be between 0 and 1 (the probability of key B), got {}",
                    self.alpha
                ),
            ));
        }
        if self.context_width == 0 || self.context_width > MAX_CONTEXT_WIDTH {
            return Err(Error::scheme(
                "gumbel",
                format!(
                    "context_width must be from 1 to {MAX_CONTEXT_WIDTH} (vLLM's default is 4; it \
                     warns above 16), got {}",
                    self.context_width
                ),
            ));
        }
        if self.max_history == Some(0) {
            return Err(Error::scheme(
                "gumbel",
                "deduplicate_contexts_max_history must be at least 1, or null for the whole history",
            ));
        }
        Ok(())
    }
}

/// A vLLM `--watermark-config` JSON: the key and the [`GumbelConfig`] it describes.
///
/// Reads the fields of vLLM's `WatermarkConfig` (0.33 and 0.34): `key` (required,
/// `0 ..= 2^64-1`), `algorithm` (`gumbel` | `dual_key_gumbel`; `sbw` is refused), `alpha`,
/// `context_width` (null = 4), `deduplicate_contexts`, `deduplicate_contexts_max_history`
/// (null = unbounded), `prf` (`philox`), and accepts and ignores the fields that only steer
/// vLLM's server: `allow_target_only_watermarking`, `enforce` (0.34: requests cannot opt out)
/// and the `sbw_*` fields of vLLM's development branch. Unknown fields are refused, so a typo
/// does not silently fall back to a default. Generation follows vLLM 0.34 at the first
/// positions ([`PartialContexts::Skip`]); set `config.partial_contexts` to reproduce 0.33.
///
/// ```
/// use greenmark::gumbel::{Algorithm, VllmWatermarkConfig};
/// let cfg = VllmWatermarkConfig::from_json(r#"{"key": 42, "algorithm": "dual_key_gumbel", "alpha": 0.2}"#)?;
/// assert_eq!(cfg.config.algorithm, Algorithm::DualKeyGumbel);
/// assert_eq!(cfg.config.context_width, 4);
/// assert_eq!(cfg.scheme_id(), "greenmark/dual-key-gumbel-vllm/v1");
/// assert!(VllmWatermarkConfig::from_json(r#"{"key": -1}"#).is_err());
/// # Ok::<(), greenmark::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct VllmWatermarkConfig {
    /// vLLM's key.
    pub key: GumbelKey,
    /// The parameters.
    pub config: GumbelConfig,
}

#[cfg(feature = "serde")]
fn parse_error(message: impl Into<String>) -> Error {
    Error::Parse {
        what: crate::error::Document::VllmConfig,
        message: message.into(),
    }
}

impl VllmWatermarkConfig {
    /// The scheme id of this config (always a `-vllm` id).
    pub fn scheme_id(&self) -> &'static str {
        self.key.scheme_id(self.config.algorithm)
    }

    /// Parses the JSON given to `vllm serve --watermark-config`. Errors name the field and
    /// what it must be, and never quote a value: `key` is the secret, and any field may hold
    /// it by mistake.
    #[cfg(feature = "serde")]
    pub fn from_json(text: &str) -> Result<VllmWatermarkConfig> {
        use crate::json::Object;
        let what = crate::error::Document::VllmConfig;
        let value = crate::json::parse(what, text)?;
        let o = Object::new(what, "", &value)?;
        o.only(&[
            "key",
            "algorithm",
            "alpha",
            "context_width",
            "deduplicate_contexts",
            "deduplicate_contexts_max_history",
            "prf",
            "allow_target_only_watermarking",
            "enforce",
            "sbw_scheme",
            "sbw_gamma",
            "sbw_delta",
        ])?;
        const KEY: &str =
            "an integer from 0 to 18446744073709551615 (a Philox key fits in 64 bits)";
        let key = o.require("key", KEY)?;
        let key = crate::json::int_value(key, 0, i128::from(u64::MAX))
            .map_err(|got| o.error("key", format!("must be {KEY}, got {got}")))?
            as u64;
        const ALGORITHM: &str = "\"gumbel\" or \"dual_key_gumbel\"";
        let algorithm = match o.str("algorithm", ALGORITHM)? {
            None | Some("gumbel") => Algorithm::Gumbel,
            Some("dual_key_gumbel") => Algorithm::DualKeyGumbel,
            // vLLM's third algorithm: say where greenmark has it.
            Some("sbw") => return Err(parse_error(
                "algorithm \"sbw\" is not supported here (use greenmark's KGW schemes); expected \"gumbel\" or \"dual_key_gumbel\"",
            )),
            Some(_) => {
                return Err(o.error("algorithm", format!("must be {ALGORITHM}, got another string")))
            }
        };
        const ALPHA: &str = "a number from 0 to 1 (the probability of key B)";
        let alpha = o.f64("alpha", ALPHA)?.unwrap_or(0.1);
        if !(0.0..=1.0).contains(&alpha) {
            return Err(o.error("alpha", format!("must be {ALPHA}")));
        }
        let width = format!(
            "an integer from 1 to {MAX_CONTEXT_WIDTH} or null (vLLM's default is 4; it warns above 16)"
        );
        let context_width = o
            .int("context_width", 1, MAX_CONTEXT_WIDTH as i128, &width)?
            .map_or(4, |w| w as usize);
        const DEDUP: &str = "\"none\", \"single_turn\" or \"all\"";
        let dedup = match o.str("deduplicate_contexts", DEDUP)? {
            None | Some("single_turn") => ContextDedup::SingleTurn,
            Some("none") => ContextDedup::None,
            Some("all") => ContextDedup::All,
            Some(_) => {
                return Err(o.error(
                    "deduplicate_contexts",
                    format!("must be {DEDUP}, got another string"),
                ))
            }
        };
        // Absent: vLLM's default 8192; null: the whole history.
        let max_history = match o.raw("deduplicate_contexts_max_history") {
            None => Some(8192),
            Some(serde_json::Value::Null) => None,
            Some(_) => o
                .int(
                    "deduplicate_contexts_max_history",
                    1,
                    i128::from(u64::MAX),
                    "an integer of at least 1, or null for the whole history",
                )?
                .map(|h| usize::try_from(h).unwrap_or(usize::MAX)),
        };
        match o.str("prf", "\"philox\"")? {
            None | Some("philox") => {}
            Some(_) => {
                return Err(o.error(
                    "prf",
                    "must be \"philox\" (the only PRF vLLM has), got another string",
                ))
            }
        }
        // Accepted (vLLM has them) and unused, but still of the right type.
        o.bool("allow_target_only_watermarking")?;
        o.bool("enforce")?;
        o.str("sbw_scheme", "a string")?;
        o.f64("sbw_gamma", "a number")?;
        o.f64("sbw_delta", "a number")?;
        let config = GumbelConfig {
            algorithm,
            alpha,
            context_width,
            dedup,
            max_history,
            partial_contexts: PartialContexts::Skip,
        };
        config.validate()?;
        Ok(VllmWatermarkConfig {
            key: GumbelKey::vllm(key),
            config,
        })
    }

    /// Reads a `--watermark-config` JSON file (a regular file of at most
    /// [`crate::files::KEY_FILE_LIMIT`] bytes: it holds the key).
    #[cfg(feature = "serde")]
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<VllmWatermarkConfig> {
        let path = path.as_ref();
        let text = crate::files::read_limited_text(
            path,
            "read vLLM watermark config",
            crate::files::KEY_FILE_LIMIT,
            crate::error::Document::VllmConfig,
        )?;
        VllmWatermarkConfig::from_json(&text)
    }
}
