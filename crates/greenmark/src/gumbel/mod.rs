//! The Gumbel-max watermark family, bit-compatible with vLLM's native watermark (0.33 and
//! 0.34: `vllm serve --watermark-config`, algorithms `gumbel` and `dual_key_gumbel`).
//!
//! Where KGW biases a green list, Gumbel-max watermarking (Aaronson 2022) *chooses* the token
//! with keyed randomness: every token `t` gets a uniform `u_t` from a keyed PRF of the
//! context, and the sampler picks `argmax(logits - ln(-ln u_t))`. Over random keys that is
//! an exact sample from `softmax(logits)` (distortion-free), yet given the key, the chosen
//! token's `u` is biased toward 1, which detection measures with `-ln(1 - u)`.
//!
//! - [`philox`]: Philox4x32-10, context compression and per-token words as vLLM defines them.
//! - [`GumbelWatermarker`] / [`GumbelRequest`]: the sampling rule over a logits row, dual-key
//!   routing, vLLM's generation-time context dedup (`none`, `single_turn`, `all`, with a
//!   history bound), and its handling of the first positions ([`PartialContexts`]).
//! - [`GumbelDetector`]: per-token scores, dedup of repeated contexts, and the `Gamma(n, 1)`
//!   tail in log space, so `log10 p` is reported where vLLM's float p-value underflows to 0.
//! - [`VllmWatermarkConfig`]: reads vLLM's `--watermark-config` JSON.
//!
//! Keys: [`GumbelKey::vllm`] takes vLLM's `u64`; [`GumbelKey::from_key`] derives one from a
//! greenmark [`Key`](crate::Key). The scheme ids (`greenmark/gumbel-vllm/v1`,
//! `greenmark/gumbel/v1`, and the `dual-key-` ones) say which.
//!
//! # Example: detect text a vLLM server watermarked
//! ```
//! use greenmark::gumbel::{GumbelDetector, GumbelWatermarker, VllmWatermarkConfig};
//! let vllm = VllmWatermarkConfig::from_json(r#"{"key": 42, "context_width": 4}"#)?;
//! // Stand-in for the server: sample 100 tokens from a toy model with the same rule.
//! let wm = GumbelWatermarker::new(vllm.key, vllm.config)?;
//! let mut request = wm.request(&[]);
//! for step in 0..100u32 {
//!     let logits: Vec<f32> = (0..1000u32).map(|t| ((t ^ step).wrapping_mul(2654435761) >> 24) as f32 / 64.0).collect();
//!     request.next(&logits, 0.5, greenmark::gumbel::argmax)?;
//! }
//! let detection = GumbelDetector::new(vllm.key, vllm.config)?.detect(request.generated())?;
//! assert!(detection.is_watermarked && detection.log10_p_value < -6.0);
//! # Ok::<(), greenmark::Error>(())
//! ```

mod config;
mod detect;
pub mod philox;
mod sample;

pub use config::{
    dual_subkey, Algorithm, ContextDedup, GumbelConfig, GumbelKey, PartialContexts,
    VllmWatermarkConfig, MAX_CONTEXT_WIDTH, MIN_RECOMMENDED_HISTORY, SCHEME_DUAL_KEY_GUMBEL,
    SCHEME_DUAL_KEY_GUMBEL_VLLM, SCHEME_GUMBEL, SCHEME_GUMBEL_VLLM,
};
pub(crate) use detect::gamma_tail_ln;
pub use detect::{GumbelCache, GumbelDetection, GumbelDetector};
pub use philox::PAD;
pub use sample::{argmax, GumbelRequest, GumbelWatermarker, KeyChoice};

use crate::error::{Error, Result};

/// Refuses token ids equal to [`PAD`] (`u32::MAX`, vLLM's `-1`), which stands for "before the
/// first generated token" in every context: such an id in a text would collide with padding.
///
/// ```
/// use greenmark::gumbel::{check_tokens, PAD};
/// assert!(check_tokens(&[1, 2, 3]).is_ok());
/// assert!(check_tokens(&[1, PAD]).is_err());
/// ```
pub fn check_tokens(tokens: &[u32]) -> Result<()> {
    match tokens.iter().position(|&t| t == PAD) {
        Some(position) => Err(Error::ReservedToken { position }),
        None => Ok(()),
    }
}

/// The context of the position after `generated`: its last `width` tokens, oldest first,
/// [`PAD`] before the first generated token (as vLLM pads). Errors when those tokens hold
/// [`PAD`] itself ([`check_tokens`]).
///
/// ```
/// use greenmark::gumbel::{padded_context, PAD};
/// assert_eq!(padded_context(&[5, 6], 4)?, [PAD, PAD, 5, 6]);
/// assert_eq!(padded_context(&[1, 2, 3, 4, 5], 4)?, [2, 3, 4, 5]);
/// # Ok::<(), greenmark::Error>(())
/// ```
pub fn padded_context(generated: &[u32], width: usize) -> Result<Vec<u32>> {
    let last = &generated[generated.len() - generated.len().min(width)..];
    check_tokens(last)?;
    let mut context = vec![PAD; width - last.len()];
    context.extend_from_slice(last);
    Ok(context)
}
