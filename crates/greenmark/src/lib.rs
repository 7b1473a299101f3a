//! # greenmark
//!
//! Keyed green-list watermarking for language-model output (Kirchenbauer et al. 2023, "KGW"):
//! bias each sampling step toward a pseudo-random, keyed "green" part of the vocabulary, then
//! prove where a text came from with an exact, calibrated p-value.
//!
//! - [`Watermarker`] biases logits in place, one row or a batch, or hands out green masks.
//! - [`Detector`] scores token ids: exact binomial p-values in log space, deduplicated tuples,
//!   per-token annotations, and a search for a watermarked span inside longer text.
//! - [`stats`] has the log-space tail probabilities behind them.
//! - [`screen`] checks a fixed key on reference human text of several genres before use.
//!
//! # Example
//! ```
//! use greenmark::{Detector, Key, WatermarkConfig, Watermarker};
//!
//! let key = Key::generate()?;
//! let config = WatermarkConfig::new(1000)?; // vocab 1000, gamma 0.25, delta 2, lefthash
//! let watermarker = Watermarker::new(&key, config.clone());
//!
//! // A toy "model" whose logits are pseudo-random numbers in [0, 4); greedy decoding.
//! let mut tokens = vec![1u32];
//! for step in 0..100u32 {
//!     let mut logits: Vec<f32> = (0..1000u32)
//!         .map(|v| ((v ^ step).wrapping_mul(2654435761) >> 22) as f32 / 256.0)
//!         .collect();
//!     watermarker.bias(&mut logits, &tokens)?;
//!     let next = (0..1000).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap();
//!     tokens.push(next as u32);
//! }
//! let detection = Detector::new(&key, config).detect(&tokens[1..], &tokens[..1])?;
//! assert!(detection.log10_p_value < -6.0);
//! # Ok::<(), greenmark::Error>(())
//! ```
//!
//! The semantics (seeding, membership, statistics) are documented on [`scheme`], [`detect`]
//! and [`stats`]; every scheme's bits are pinned by committed test vectors.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod bias;
pub mod config;
pub mod detect;
mod error;
#[cfg(feature = "tokenizers")]
pub mod eval;
pub mod files;
pub mod gumbel;
#[cfg(feature = "serde")]
mod json;
pub mod key;
mod prf;
pub mod radioactivity;
pub mod scheme;
pub mod screen;
pub mod stats;
pub mod synthetic;
pub mod synthid;
#[cfg(feature = "tokenizers")]
pub mod text;
mod tuple;

pub use bias::{BiasOutcome, SkipReason, Watermarker};
pub use config::{ConfigBuilder, Scheme, WatermarkConfig};
pub use detect::{
    DetectCache, DetectStream, Detection, Detector, Keyring, KeyringDetection, SpanDetection,
    SpanOptions, TokenScore,
};
pub use error::{Document, Error, FileProblem, Result};
pub use gumbel::{GumbelDetector, GumbelKey, GumbelWatermarker, VllmWatermarkConfig};
pub use key::{Key, KeyFile, KeyId};
pub use radioactivity::{Radioactivity, RadioactivityTest, TestOptions};
pub use screen::{ScreenCorpus, ScreenOptions, ScreenReport};

#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
