//! The watermark's configuration: vocabulary size, green fraction, bias, seeding scheme.
//!
//! A [`WatermarkConfig`] is validated when it is built (and when it is read from JSON), so every
//! `Watermarker` and `Detector` can rely on it.
//!
//! # Example
//! ```
//! use greenmark::{Scheme, WatermarkConfig};
//! let config = WatermarkConfig::builder(49152)
//!     .gamma(0.25)
//!     .delta(2.0)
//!     .scheme(Scheme::LeftHash { window: 1 })
//!     .build()?;
//! assert_eq!(config.scheme().id(), "greenmark/kgw-lefthash/v1");
//! assert!(WatermarkConfig::builder(49152).gamma(1.5).build().is_err());
//! # Ok::<(), greenmark::Error>(())
//! ```

use crate::error::{Error, Result};

/// Largest window (context width) any scheme accepts.
pub const MAX_WINDOW: usize = 16;
/// Largest number of candidates `selfhash` evaluates per step.
pub const MAX_TOP_K: usize = 256;

/// How the green list at a position is seeded from the tokens before it.
///
/// Named as in Kirchenbauer et al., "On the Reliability of Watermarks for Large Language
/// Models" (2023). With window `h`, the window at position `i` is the `h` tokens before `i`.
/// Each variant's bits are pinned by committed test vectors under its [`Scheme::id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)
)]
#[non_exhaustive]
pub enum Scheme {
    /// Seed from the leftmost token of the window (`h = 1`: the previous token). The most
    /// robust to edits: changing one token changes its own score and one seed.
    #[cfg_attr(feature = "serde", serde(rename = "lefthash"))]
    LeftHash {
        /// Window size `h >= 1`.
        window: usize,
    },
    /// Seed = the minimum of a keyed hash over the window's tokens.
    #[cfg_attr(feature = "serde", serde(rename = "minhash"))]
    MinHash {
        /// Window size `h >= 1`.
        window: usize,
    },
    /// Seed from the (wrapping) sum of the window's tokens ("additive").
    #[cfg_attr(feature = "serde", serde(rename = "sumhash"))]
    SumHash {
        /// Window size `h >= 1`.
        window: usize,
    },
    /// Anchored minhash whose window includes the candidate token itself: the `h - 1` tokens
    /// before `i` plus the token at `i`, anchored on the window's leftmost token. Biasing
    /// evaluates the `top_k` most likely candidates one by one.
    #[cfg_attr(feature = "serde", serde(rename = "selfhash"))]
    SelfHash {
        /// Window size `h >= 1`, the candidate included.
        window: usize,
        /// How many top candidates biasing evaluates (1 ..= [`MAX_TOP_K`]).
        top_k: usize,
    },
    /// One fixed green list for every position (`h = 0`; Zhao et al. 2023).
    #[cfg_attr(feature = "serde", serde(rename = "unigram"))]
    Unigram,
}

impl Default for Scheme {
    fn default() -> Self {
        Scheme::LeftHash { window: 1 }
    }
}

impl Scheme {
    /// `selfhash` with the reference parameters (window 4, top 40 candidates).
    pub const SELFHASH_DEFAULT: Scheme = Scheme::SelfHash {
        window: 4,
        top_k: 40,
    };

    /// The scheme's short name (`lefthash`, `minhash`, `sumhash`, `selfhash`, `unigram`).
    pub fn name(&self) -> &'static str {
        match self {
            Scheme::LeftHash { .. } => "lefthash",
            Scheme::MinHash { .. } => "minhash",
            Scheme::SumHash { .. } => "sumhash",
            Scheme::SelfHash { .. } => "selfhash",
            Scheme::Unigram => "unigram",
        }
    }

    /// Every scheme name [`Scheme::from_name`] accepts, in the order the docs list them.
    pub const NAMES: [&'static str; 5] = ["lefthash", "minhash", "sumhash", "selfhash", "unigram"];

    /// The scheme called `name`, with `window` and `top_k` where given and the defaults
    /// elsewhere: window 1 for `lefthash`; 4 for `minhash`, `sumhash` and `selfhash` (the
    /// reference's `minhash` and `selfhash` settings; a window of 1 would make them `lefthash`
    /// in all but bits); `top_k` 40 for `selfhash`. The one place a scheme name becomes a
    /// scheme: the CLI, the Python package and config files all go through it, so the same name
    /// always gives the same watermark.
    ///
    /// `top_k` applies to `selfhash` only and `unigram` takes no window (or window 0): anything
    /// else is an [`Error::InvalidScheme`] naming what to leave out.
    ///
    /// ```
    /// use greenmark::Scheme;
    /// assert_eq!(Scheme::from_name("minhash", None, None)?, Scheme::MinHash { window: 4 });
    /// assert_eq!("lefthash".parse::<Scheme>()?, Scheme::LeftHash { window: 1 });
    /// assert_eq!(
    ///     Scheme::from_name("selfhash", Some(3), Some(8))?,
    ///     Scheme::SelfHash { window: 3, top_k: 8 }
    /// );
    /// assert!(Scheme::from_name("lefthash", None, Some(8)).is_err());
    /// assert!(Scheme::from_name("left-hash", None, None).is_err());
    /// # Ok::<(), greenmark::Error>(())
    /// ```
    pub fn from_name(name: &str, window: Option<usize>, top_k: Option<usize>) -> Result<Scheme> {
        let scheme = match name {
            "lefthash" => Scheme::LeftHash {
                window: window.unwrap_or(1),
            },
            "minhash" => Scheme::MinHash {
                window: window.unwrap_or(4),
            },
            "sumhash" => Scheme::SumHash {
                window: window.unwrap_or(4),
            },
            "selfhash" => Scheme::SelfHash {
                window: window.unwrap_or(4),
                top_k: top_k.unwrap_or(40),
            },
            "unigram" => match window {
                None | Some(0) => Scheme::Unigram,
                Some(w) => {
                    return Err(Error::scheme(
                        "unigram",
                        format!("unigram has no window (leave it out, or give 0), got {w}"),
                    ))
                }
            },
            other => {
                return Err(Error::UnknownScheme {
                    name: other.to_string(),
                })
            }
        };
        if let (Some(k), false) = (top_k, matches!(scheme, Scheme::SelfHash { .. })) {
            return Err(Error::scheme(
                scheme.name(),
                format!("top_k applies to selfhash only, got top_k {k}: leave it out"),
            ));
        }
        scheme.validate()?;
        Ok(scheme)
    }

    /// The stable, versioned id recorded in configs and reports. Changing any output bit of a
    /// scheme requires a new id.
    pub fn id(&self) -> &'static str {
        match self {
            Scheme::LeftHash { .. } => "greenmark/kgw-lefthash/v1",
            Scheme::MinHash { .. } => "greenmark/kgw-minhash/v1",
            Scheme::SumHash { .. } => "greenmark/kgw-sumhash/v1",
            Scheme::SelfHash { .. } => "greenmark/kgw-selfhash/v1",
            Scheme::Unigram => "greenmark/kgw-unigram/v1",
        }
    }

    /// The window size `h` (0 for `unigram`). For `selfhash` it counts the candidate token.
    pub fn window(&self) -> usize {
        match *self {
            Scheme::LeftHash { window }
            | Scheme::MinHash { window }
            | Scheme::SumHash { window }
            | Scheme::SelfHash { window, .. } => window,
            Scheme::Unigram => 0,
        }
    }

    /// How many tokens before a position must exist for it to have a full window.
    pub fn context_len(&self) -> usize {
        match *self {
            Scheme::SelfHash { window, .. } => window - 1,
            _ => self.window(),
        }
    }

    /// Checks the scheme's parameters.
    pub fn validate(&self) -> Result<()> {
        let window = self.window();
        if !matches!(self, Scheme::Unigram) && !(1..=MAX_WINDOW).contains(&window) {
            return Err(Error::scheme(
                self.name(),
                format!("window must be between 1 and {MAX_WINDOW}, got {window}"),
            ));
        }
        if let Scheme::SelfHash { top_k, .. } = *self {
            if !(1..=MAX_TOP_K).contains(&top_k) {
                return Err(Error::scheme(
                    "selfhash",
                    format!("top_k must be between 1 and {MAX_TOP_K}, got {top_k}"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(feature = "serde")]
impl Scheme {
    /// The scheme in a JSON object `{"type": NAME, "window": h, "top_k": k}`, through
    /// [`Scheme::from_name`] (absent parameters take its defaults), with errors that name the
    /// field and its range but never quote a value.
    pub(crate) fn from_object(o: &crate::json::Object<'_>) -> Result<Scheme> {
        o.only(&["type", "window", "top_k"])?;
        let names = Scheme::NAMES.join(", ");
        let expected = format!("one of {names}");
        let name = match o.str("type", &expected)? {
            Some(name) if Scheme::NAMES.contains(&name) => name,
            Some(_) => {
                return Err(o.error("type", format!("must be {expected}, got another string")))
            }
            None => return Err(o.error("type", format!("is missing: it must be {expected}"))),
        };
        let unigram = name == "unigram";
        let window_range = if unigram {
            "0 or absent (unigram has no window)".to_string()
        } else {
            format!("an integer from 1 to {MAX_WINDOW}")
        };
        let window = o.int(
            "window",
            i128::from(!unigram),
            if unigram { 0 } else { MAX_WINDOW as i128 },
            &window_range,
        )?;
        let top_k = if name == "selfhash" {
            o.int(
                "top_k",
                1,
                MAX_TOP_K as i128,
                &format!("an integer from 1 to {MAX_TOP_K}"),
            )?
        } else {
            match o.get("top_k") {
                None => None,
                Some(_) => {
                    return Err(o.error("top_k", "applies to selfhash only: leave it out"));
                }
            }
        };
        Scheme::from_name(name, window.map(|w| w as usize), top_k.map(|k| k as usize))
            .map_err(|_| o.error("", "is not a valid scheme"))
    }
}

/// A scheme from its name alone, with the default parameters ([`Scheme::from_name`]).
impl std::str::FromStr for Scheme {
    type Err = Error;
    fn from_str(name: &str) -> Result<Scheme> {
        Scheme::from_name(name, None, None)
    }
}

/// A validated watermark configuration.
///
/// Build one with [`WatermarkConfig::builder`] or read one from JSON (the `serde` feature):
/// `{"vocab_size": 49152, "gamma": 0.25, "delta": 2.0, "scheme": {"type": "lefthash", "window": 1},
/// "skip_repeated_windows": false}`.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "ConfigBuilder"))]
pub struct WatermarkConfig {
    vocab_size: u32,
    gamma: f64,
    delta: f64,
    scheme: Scheme,
    skip_repeated_windows: bool,
}

/// Builds a [`WatermarkConfig`]; every value is checked in [`ConfigBuilder::build`].
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct ConfigBuilder {
    vocab_size: u64,
    #[cfg_attr(feature = "serde", serde(default = "default_gamma"))]
    gamma: f64,
    #[cfg_attr(feature = "serde", serde(default = "default_delta"))]
    delta: f64,
    #[cfg_attr(feature = "serde", serde(default))]
    scheme: Scheme,
    #[cfg_attr(feature = "serde", serde(default))]
    skip_repeated_windows: bool,
}

/// The default green fraction.
pub const DEFAULT_GAMMA: f64 = 0.25;
/// The default logit bias.
pub const DEFAULT_DELTA: f64 = 2.0;

/// The largest logit bias a config accepts; `delta` must be above 0 and at most this.
///
/// Logits are log-odds, so `delta` multiplies a green token's odds by `e^delta`. At 20 that is
/// about 5e8: a green token is chosen whenever one holds more than about a billionth of the
/// probability mass, which is already as strong as a watermark gets (the published KGW
/// settings use 0.5 to 10). Larger values change nothing for detection and only push the
/// biased logits towards overflow: `1e308` made every green logit infinite and generation
/// returned empty text. `delta = 0` is refused too: it adds nothing, so text generated with
/// it carries no watermark and detection would never find one.
pub const MAX_DELTA: f64 = 20.0;

#[cfg(feature = "serde")]
fn default_gamma() -> f64 {
    DEFAULT_GAMMA
}
#[cfg(feature = "serde")]
fn default_delta() -> f64 {
    DEFAULT_DELTA
}

impl ConfigBuilder {
    /// The green fraction gamma, strictly between 0 and 1 (default 0.25).
    pub fn gamma(mut self, gamma: f64) -> Self {
        self.gamma = gamma;
        self
    }

    /// The bias added to green logits, above 0 and at most [`MAX_DELTA`] (default 2.0).
    pub fn delta(mut self, delta: f64) -> Self {
        self.delta = delta;
        self
    }

    /// The seeding scheme (default `lefthash` with window 1).
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// Whether biasing skips a position whose window already occurred earlier in the same
    /// context (default off; see [`crate::Watermarker::bias`] for what it costs).
    pub fn skip_repeated_windows(mut self, on: bool) -> Self {
        self.skip_repeated_windows = on;
        self
    }

    /// Validates and builds the config.
    pub fn build(self) -> Result<WatermarkConfig> {
        if self.vocab_size < 2 || self.vocab_size > u64::from(u32::MAX) {
            return Err(Error::InvalidVocabSize(self.vocab_size));
        }
        // The threshold must leave both colours possible at 32-bit resolution.
        let threshold = (self.gamma * 4294967296.0).floor();
        let valid =
            self.gamma > 0.0 && self.gamma < 1.0 && (1.0..4294967296.0).contains(&threshold);
        if !valid {
            return Err(Error::InvalidGamma(self.gamma));
        }
        if !(self.delta > 0.0 && self.delta <= MAX_DELTA) {
            return Err(Error::InvalidDelta(self.delta));
        }
        self.scheme.validate()?;
        Ok(WatermarkConfig {
            vocab_size: self.vocab_size as u32,
            gamma: self.gamma,
            delta: self.delta,
            scheme: self.scheme,
            skip_repeated_windows: self.skip_repeated_windows,
        })
    }
}

#[cfg(feature = "serde")]
impl TryFrom<ConfigBuilder> for WatermarkConfig {
    type Error = Error;
    fn try_from(builder: ConfigBuilder) -> Result<Self> {
        builder.build()
    }
}

impl WatermarkConfig {
    /// A builder with the defaults (gamma 0.25, delta 2.0, lefthash window 1, skip repeated
    /// windows) for a vocabulary of `vocab_size` tokens.
    pub fn builder(vocab_size: u64) -> ConfigBuilder {
        ConfigBuilder {
            vocab_size,
            gamma: DEFAULT_GAMMA,
            delta: DEFAULT_DELTA,
            scheme: Scheme::default(),
            skip_repeated_windows: false,
        }
    }

    /// The defaults for a vocabulary of `vocab_size` tokens.
    pub fn new(vocab_size: u64) -> Result<WatermarkConfig> {
        Self::builder(vocab_size).build()
    }

    /// A builder holding this config's values, to change some of them.
    pub fn to_builder(&self) -> ConfigBuilder {
        ConfigBuilder {
            vocab_size: u64::from(self.vocab_size),
            gamma: self.gamma,
            delta: self.delta,
            scheme: self.scheme,
            skip_repeated_windows: self.skip_repeated_windows,
        }
    }

    /// Number of tokens in the vocabulary (the length of a logits row).
    pub fn vocab_size(&self) -> u32 {
        self.vocab_size
    }

    /// The requested green fraction.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// The 32-bit membership threshold: token `v` is green for seed `s` iff `G(s, v) < threshold`.
    pub fn threshold(&self) -> u32 {
        (self.gamma * 4294967296.0).floor() as u32
    }

    /// The exact probability that a token is green under the null: `threshold / 2^32`. The
    /// detector's statistics use this value, not the rounded `gamma`.
    pub fn effective_gamma(&self) -> f64 {
        f64::from(self.threshold()) / 4294967296.0
    }

    /// The logit bias added to green tokens.
    pub fn delta(&self) -> f64 {
        self.delta
    }

    /// The seeding scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Whether biasing skips windows already seen earlier in the context.
    pub fn skip_repeated_windows(&self) -> bool {
        self.skip_repeated_windows
    }

    /// How many of the latest tokens a bias step reads: the scheme's context
    /// ([`Scheme::context_len`]), or `None` (the whole history) when repeated windows are
    /// skipped, which needs every earlier window. Callers that keep a request's history (the
    /// vLLM and llama.cpp adapters) keep this many tokens and pass them to `bias`.
    ///
    /// ```
    /// use greenmark::{Scheme, WatermarkConfig};
    /// let c = WatermarkConfig::builder(100).scheme(Scheme::MinHash { window: 3 }).build()?;
    /// assert_eq!(c.history_len(), Some(3));
    /// assert_eq!(c.to_builder().skip_repeated_windows(true).build()?.history_len(), None);
    /// # Ok::<(), greenmark::Error>(())
    /// ```
    pub fn history_len(&self) -> Option<usize> {
        (!self.skip_repeated_windows).then(|| self.scheme.context_len())
    }

    /// The config as JSON.
    #[cfg(feature = "serde")]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a config always serializes")
    }

    /// Reads and validates a config from JSON. An error names the field and what it must be,
    /// and never quotes a value (the same reader parses the config inside a key file).
    #[cfg(feature = "serde")]
    pub fn from_json(text: &str) -> Result<WatermarkConfig> {
        let what = crate::error::Document::Config;
        let value = crate::json::parse(what, text)?;
        Self::from_object(&crate::json::Object::new(what, "", &value)?)
    }

    /// The config in a JSON object (a config file, or a key file's `config`).
    #[cfg(feature = "serde")]
    pub(crate) fn from_object(o: &crate::json::Object<'_>) -> Result<WatermarkConfig> {
        o.only(&[
            "vocab_size",
            "gamma",
            "delta",
            "scheme",
            "skip_repeated_windows",
        ])?;
        const VOCAB: &str = "an integer from 2 to 4294967295 (the model's vocabulary size)";
        const GAMMA: &str =
            "a number strictly between 0 and 1, at least 2^-32 from each end (e.g. 0.25)";
        const DELTA: &str = "a number above 0 and at most 20 (e.g. 2.0)";
        let vocab = match o.int("vocab_size", 2, i128::from(u32::MAX), VOCAB)? {
            Some(v) => v as u64,
            None => return Err(o.error("vocab_size", format!("is missing: it must be {VOCAB}"))),
        };
        let scheme = match o.get("scheme") {
            None => Scheme::default(),
            Some(v) => Scheme::from_object(&o.child("scheme", v)?)?,
        };
        let builder = WatermarkConfig::builder(vocab)
            .gamma(o.f64("gamma", GAMMA)?.unwrap_or(DEFAULT_GAMMA))
            .delta(o.f64("delta", DELTA)?.unwrap_or(DEFAULT_DELTA))
            .scheme(scheme)
            .skip_repeated_windows(o.bool("skip_repeated_windows")?.unwrap_or(false));
        // The builder's errors quote the value; these name the field and its range only.
        builder.build().map_err(|e| match e {
            Error::InvalidGamma(_) => o.error("gamma", format!("must be {GAMMA}")),
            Error::InvalidDelta(_) => o.error("delta", format!("must be {DELTA}")),
            Error::InvalidVocabSize(_) => o.error("vocab_size", format!("must be {VOCAB}")),
            _ => o.error("", "is not a valid watermark config"),
        })
    }

    /// Checks that a model whose logits rows have `width` entries can be watermarked with this
    /// config: the widths must be equal (biasing reads one entry per vocabulary token, and a
    /// model with a padded embedding has the padded width). The one rule for "key config vs
    /// model", with one error text, [`Error::ModelVocab`].
    ///
    /// ```
    /// use greenmark::WatermarkConfig;
    /// let config = WatermarkConfig::new(49152)?;
    /// assert!(config.check_logits_width(49152).is_ok());
    /// assert!(config.check_logits_width(32000).is_err());
    /// # Ok::<(), greenmark::Error>(())
    /// ```
    pub fn check_logits_width(&self, width: u64) -> Result<()> {
        if width != u64::from(self.vocab_size) {
            return Err(Error::ModelVocab {
                model: width,
                vocab_size: self.vocab_size,
            });
        }
        Ok(())
    }

    /// Checks that a tokenizer of `tokens` tokens (added tokens included) can be the one this
    /// config was made for: it may have fewer tokens than the vocabulary (models pad their
    /// embedding), never more. The one rule for "key config vs tokenizer",
    /// [`Error::TokenizerVocab`].
    ///
    /// ```
    /// use greenmark::WatermarkConfig;
    /// let config = WatermarkConfig::new(49152)?;
    /// assert!(config.check_tokenizer_vocab(49152).is_ok());
    /// assert!(config.check_tokenizer_vocab(128256).is_err());
    /// # Ok::<(), greenmark::Error>(())
    /// ```
    pub fn check_tokenizer_vocab(&self, tokens: usize) -> Result<()> {
        if tokens as u64 > u64::from(self.vocab_size) {
            return Err(Error::TokenizerVocab {
                tokenizer: tokens,
                vocab_size: self.vocab_size,
            });
        }
        Ok(())
    }

    /// `Ok` when `other` makes the same tokens green with the same strength: the same vocab
    /// size, gamma threshold, delta and scheme. `skip_repeated_windows` may differ.
    pub fn check_same_watermark(&self, other: &WatermarkConfig) -> Result<()> {
        let mismatch = |field, stored: String, given: String| {
            Err(Error::ConfigMismatch {
                field,
                stored,
                given,
            })
        };
        if self.vocab_size != other.vocab_size {
            return mismatch(
                "vocab_size",
                self.vocab_size.to_string(),
                other.vocab_size.to_string(),
            );
        }
        if self.threshold() != other.threshold() {
            return mismatch("gamma", self.gamma.to_string(), other.gamma.to_string());
        }
        if self.delta != other.delta {
            return mismatch("delta", self.delta.to_string(), other.delta.to_string());
        }
        if self.scheme != other.scheme {
            return mismatch(
                "scheme",
                format!("{:?}", self.scheme),
                format!("{:?}", other.scheme),
            );
        }
        Ok(())
    }

    /// `Ok` when `other` makes the same tokens green, so a detector (or a radioactivity test)
    /// scores text the same way under both: the same vocab size, gamma threshold and scheme.
    /// `delta` only sets how strongly generation favours green tokens and never enters a
    /// score, so it may differ, as may `skip_repeated_windows`. On a mismatch the error's
    /// `stored` value is `self`'s and `given` is `other`'s.
    ///
    /// ```
    /// use greenmark::WatermarkConfig;
    /// let strong = WatermarkConfig::builder(1000).delta(4.0).build()?;
    /// let weak = WatermarkConfig::builder(1000).delta(1.0).build()?;
    /// assert!(strong.check_same_detection(&weak).is_ok());
    /// assert!(strong.check_same_watermark(&weak).is_err());
    /// let other = WatermarkConfig::builder(1000).gamma(0.5).build()?;
    /// assert!(strong.check_same_detection(&other).is_err());
    /// # Ok::<(), greenmark::Error>(())
    /// ```
    pub fn check_same_detection(&self, other: &WatermarkConfig) -> Result<()> {
        let same_delta = WatermarkConfig {
            delta: self.delta,
            ..other.clone()
        };
        self.check_same_watermark(&same_delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_values_with_the_value_in_the_message() {
        for gamma in [0.0, 1.0, -0.1, 1.5, f64::NAN, f64::INFINITY, 1e-12] {
            let err = WatermarkConfig::builder(100)
                .gamma(gamma)
                .build()
                .unwrap_err();
            assert!(matches!(err, Error::InvalidGamma(_)), "{gamma}: {err}");
        }
        for delta in [-1.0, 0.0, -0.0, 20.000001, 1e308, f64::NAN, f64::INFINITY] {
            let err = WatermarkConfig::builder(100)
                .delta(delta)
                .build()
                .unwrap_err();
            assert!(matches!(err, Error::InvalidDelta(_)), "{err}");
            assert!(err.to_string().contains("delta must be"), "{err}");
        }
        for vocab in [0, 1, 1 << 33] {
            let err = WatermarkConfig::new(vocab).unwrap_err();
            assert!(matches!(err, Error::InvalidVocabSize(v) if v == vocab));
        }
        for scheme in [
            Scheme::LeftHash { window: 0 },
            Scheme::MinHash {
                window: MAX_WINDOW + 1,
            },
            Scheme::SelfHash {
                window: 4,
                top_k: 0,
            },
            Scheme::SelfHash {
                window: 4,
                top_k: MAX_TOP_K + 1,
            },
        ] {
            let err = WatermarkConfig::builder(100)
                .scheme(scheme)
                .build()
                .unwrap_err();
            assert!(matches!(err, Error::InvalidScheme { .. }), "{err}");
        }
        for delta in [f64::MIN_POSITIVE, 0.5, 2.0, MAX_DELTA] {
            assert!(WatermarkConfig::builder(100)
                .delta(delta)
                .scheme(Scheme::Unigram)
                .build()
                .is_ok());
        }
    }

    #[test]
    fn every_scheme_name_builds_its_scheme_with_the_documented_defaults() {
        let defaults = [
            Scheme::LeftHash { window: 1 },
            Scheme::MinHash { window: 4 },
            Scheme::SumHash { window: 4 },
            Scheme::SELFHASH_DEFAULT,
            Scheme::Unigram,
        ];
        let unknown = Scheme::from_name("nope", None, None)
            .unwrap_err()
            .to_string();
        for (name, expected) in Scheme::NAMES.iter().zip(defaults) {
            let scheme: Scheme = name.parse().unwrap();
            assert_eq!(scheme, expected, "{name}");
            assert_eq!(scheme.name(), *name);
            assert!(unknown.contains(name), "{unknown}");
        }
        assert_eq!(
            Scheme::from_name("unigram", Some(0), None).unwrap(),
            Scheme::Unigram
        );
        for (name, window, top_k, needle) in [
            ("unigram", Some(2), None, "no window"),
            ("minhash", None, Some(3), "top_k applies to selfhash only"),
            ("lefthash", Some(0), None, "window must be between"),
            ("selfhash", None, Some(0), "top_k must be between"),
            ("Lefthash", None, None, "unknown scheme"),
        ] {
            let err = Scheme::from_name(name, window, top_k).unwrap_err();
            assert!(err.to_string().contains(needle), "{name}: {err}");
        }
    }

    #[test]
    fn effective_gamma_is_exact() {
        let c = WatermarkConfig::new(10).unwrap();
        assert_eq!(c.threshold(), 1 << 30);
        assert_eq!(c.effective_gamma(), 0.25);
        let c = WatermarkConfig::builder(10).gamma(0.1).build().unwrap();
        assert!((c.effective_gamma() - 0.1).abs() < 1e-9);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn json_round_trip_and_validation() {
        let c = WatermarkConfig::builder(49152)
            .scheme(Scheme::SELFHASH_DEFAULT)
            .gamma(0.5)
            .build()
            .unwrap();
        let json = c.to_json();
        assert!(json.contains(r#""type":"selfhash""#), "{json}");
        assert_eq!(WatermarkConfig::from_json(&json).unwrap(), c);
        let minimal = WatermarkConfig::from_json(r#"{"vocab_size": 32000}"#).unwrap();
        assert_eq!(minimal, WatermarkConfig::new(32000).unwrap());
        let err = WatermarkConfig::from_json(r#"{"vocab_size": 32000, "gamma": 2}"#).unwrap_err();
        assert!(err.to_string().contains("gamma must be"), "{err}");
        let err = WatermarkConfig::from_json(r#"{"vocab_size": 32000, "gama": 0.5}"#).unwrap_err();
        assert!(err.to_string().contains("gama"), "{err}");
    }

    /// Found by `fuzz/watermark_config`: serde_json's default float parser read the 17-digit
    /// gamma `to_json` wrote one ulp off, so a key file's config did not read back equal (and
    /// a detector could refuse the very config it was made with). Needs `float_roundtrip`.
    #[cfg(feature = "serde")]
    #[test]
    fn floats_round_trip_exactly_through_json() {
        let c = WatermarkConfig::builder(52)
            .gamma(0.11115555555555555)
            .delta(2.0000000000000004)
            .build()
            .unwrap();
        let again = WatermarkConfig::from_json(&c.to_json()).unwrap();
        assert_eq!(again.gamma().to_bits(), c.gamma().to_bits());
        assert_eq!(again.delta().to_bits(), c.delta().to_bits());
        let text = r#"{"vocab_size": 52, "gamma": 0.11115555555555555555555555555555555555555555555555555555555555111111111111}"#;
        let c = WatermarkConfig::from_json(text).unwrap();
        assert_eq!(WatermarkConfig::from_json(&c.to_json()).unwrap(), c);
    }

    #[test]
    fn mismatch_names_the_field() {
        let a = WatermarkConfig::new(100).unwrap();
        let b = a.to_builder().gamma(0.5).build().unwrap();
        let err = a.check_same_watermark(&b).unwrap_err();
        assert!(
            matches!(err, Error::ConfigMismatch { field: "gamma", .. }),
            "{err}"
        );
        let c = a.to_builder().skip_repeated_windows(false).build().unwrap();
        assert!(a.check_same_watermark(&c).is_ok());
    }
}
