//! SynthID Text (Dathathri et al., Nature 2024) as transformers 5.24 implements it
//! (`SynthIDTextWatermarkLogitsProcessor`, `SynthIDTextWatermarkingConfig`): generation bit for
//! bit in the hash and the g-values, and detection with exact-or-conservative p-values that need
//! no trained classifier.
//!
//! - [`SynthIdConfig`]: transformers' config and its `to_dict()` JSON.
//! - [`SynthIdTable`]: the sampling table (torch's CPU `randint` from MT19937), the LCG hash
//!   and the g-values (`compute_g_values`, `compute_context_repetition_mask`).
//! - [`SynthIdWatermarker`]: the tournament update of a logits row with the per-row state
//!   transformers keeps (contexts of generated ids only, zero-padded; a history of recent
//!   contexts; `skip_first_ngram_calls`), one row or a batch; [`SynthIdRequest`] for
//!   greenmark's samplers.
//! - [`SynthIdDetector`]: synthid-text's mean and weighted mean scores with p-values in log
//!   space, over deduplicated g-values: for power-of-two tables exact over the keys
//!   ([`ShiftNull`]: a key only shifts the table), otherwise binomial.
//! - [`ShiftNull`]: the exact law over the keys of a fixed text's counts.
//!
//! transformers' hash differs from the one used to watermark the Gemini app, so neither this
//! nor transformers detects Gemini's watermark.
//!
//! # Example
//! ```
//! use greenmark::synthid::{SynthIdConfig, SynthIdDetector, SynthIdWatermarker};
//! // The JSON of transformers' SynthIDTextWatermarkingConfig(...).to_dict().
//! let config = SynthIdConfig::from_json(
//!     r#"{"ngram_len": 5, "keys": [654, 400, 836, 123, 340, 443, 597, 160, 57],
//!         "sampling_table_size": 65536, "sampling_table_seed": 0,
//!         "context_history_size": 1024, "skip_first_ngram_calls": false, "debug_mode": false}"#,
//! )?;
//! let wm = SynthIdWatermarker::new(config.clone())?;
//! let mut request = wm.request();
//! for step in 0..150u32 {
//!     // A toy model: pseudo-random logits over 5000 tokens, greedy on the watermarked row.
//!     let mut row: Vec<f32> = (0..5000u32)
//!         .map(|t| ((t ^ step).wrapping_mul(2654435761) >> 28) as f32 / 4.0)
//!         .collect();
//!     request.watermark(&mut row)?;
//!     let next = (0..5000).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap() as u32;
//!     request.push(next);
//! }
//! let detection = SynthIdDetector::new(config)?.detect(request.generated())?;
//! assert!(detection.is_watermarked && detection.weighted.log10_p_value < -6.0);
//! # Ok::<(), greenmark::Error>(())
//! ```

/// The scheme id SynthID detections report (transformers' tournament watermark, its hash and
/// g-values as transformers 5 computes them).
pub const SCHEME_ID: &str = "synthid-text-transformers-v1";

mod config;
mod detect;
mod logits;
mod mt19937;
mod null;
mod table;

pub use config::{SynthIdConfig, MAX_CONTEXT_HISTORY_SIZE, MAX_NGRAM_LEN, MAX_SAMPLING_TABLE_SIZE};
pub use detect::{
    SynthIdCache, SynthIdDetection, SynthIdDetector, SynthIdScore, DEFAULT_MAX_LATTICE_WORK,
};
pub use logits::{SynthIdRequest, SynthIdScratch, SynthIdState, SynthIdStep, SynthIdWatermarker};
pub use null::{base_index, key_shift, shift_counts, ShiftNull, SynthIdNull};
pub use table::{accumulate_hash, eos_mask, hash_tokens, SynthIdTable, LCG_MULTIPLIER};
