//! Windowed search for a watermarked span inside longer text (a watermarked paragraph pasted
//! into human writing).
//!
//! Windows of `min_tokens`, `2 min_tokens`, `4 min_tokens`, ... tokens (and the whole text) are
//! slid over the text with a stride of a quarter of their length. Each window's count uses the
//! whole-text annotations, where a tuple counts only at its first occurrence, so the scored
//! tuples inside any window are distinct and its count is exactly Binomial under the null.
//! The best window's exact p-value is then multiplied by the number of windows tried
//! (Bonferroni): `P(min_w p_w <= a) <= sum_w P(p_w <= a) <= m a`, so the reported p-value is
//! conservative whatever the dependence between overlapping windows.

use super::{Detection, Detector, TokenScore};
use crate::error::{Error, Result};
use crate::stats;

/// The shortest window [`SpanOptions::min_tokens`] accepts.
pub const MIN_SPAN_TOKENS: usize = 2;

/// Options of [`Detector::find_span`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpanOptions {
    /// The shortest window, in tokens (default 50; at least 2).
    pub min_tokens: usize,
}

impl Default for SpanOptions {
    fn default() -> Self {
        SpanOptions { min_tokens: 50 }
    }
}

impl SpanOptions {
    /// Options with windows of at least `min_tokens` tokens.
    pub fn with_min_tokens(min_tokens: usize) -> SpanOptions {
        SpanOptions { min_tokens }
    }
}

/// The most significant window found by [`Detector::find_span`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SpanDetection {
    /// First token of the span (index into the text).
    pub start: usize,
    /// One past the span's last token.
    pub end: usize,
    /// The span's own statistics (its `p_value` is *not* corrected; serialized as
    /// `uncorrected_p_value` and so on).
    #[cfg_attr(feature = "serde", serde(serialize_with = "serialize_uncorrected"))]
    pub span: Detection,
    /// How many windows were tried.
    pub windows_tried: u64,
    /// The corrected p-value: `min(1, windows_tried * span.p_value)`.
    pub p_value: f64,
    /// Natural log of the corrected p-value.
    pub ln_p_value: f64,
    /// Base-10 log of the corrected p-value.
    pub log10_p_value: f64,
}

#[cfg(feature = "serde")]
fn serialize_uncorrected<S: serde::Serializer>(
    span: &Detection,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::Serialize;
    super::uncorrected_value(span)
        .map_err(serde::ser::Error::custom)?
        .serialize(s)
}

impl SpanDetection {
    /// Whether a watermarked span is detected at `threshold`, on the corrected p-value
    /// (compared in log space).
    pub fn is_significant(&self, threshold: f64) -> bool {
        self.span.n_scored > 0 && self.ln_p_value < threshold.ln()
    }
}

impl Detector {
    /// Searches `tokens` for the window with the strongest watermark and returns it with a
    /// p-value corrected for every window tried (see the module docs). Texts shorter than
    /// `min_tokens` are tried as one window.
    pub fn find_span(
        &self,
        tokens: &[u32],
        prompt: &[u32],
        options: SpanOptions,
    ) -> Result<SpanDetection> {
        if options.min_tokens < MIN_SPAN_TOKENS {
            return Err(Error::option(
                "min_tokens",
                format!(
                    "span search needs min_tokens >= {MIN_SPAN_TOKENS}, got {}",
                    options.min_tokens
                ),
            ));
        }
        let (_, scores) = self.annotate(tokens, prompt)?;
        // prefix[i] = (scored, green) among the first i tokens.
        let mut prefix = Vec::with_capacity(scores.len() + 1);
        let (mut s, mut g) = (0u64, 0u64);
        prefix.push((0, 0));
        for score in &scores {
            s += u64::from(score.is_scored());
            g += u64::from(*score == TokenScore::Green);
            prefix.push((s, g));
        }
        let n = tokens.len();
        let gamma = self.config.effective_gamma();
        let mut best = (0.0f64, 0usize, n);
        let mut tried = 0u64;
        let mut consider = |start: usize, end: usize| {
            tried += 1;
            let (s, g) = (
                prefix[end].0 - prefix[start].0,
                prefix[end].1 - prefix[start].1,
            );
            let ln_p = stats::binomial_tail_ln(g, s, gamma);
            if ln_p < best.0 {
                best = (ln_p, start, end);
            }
        };
        let mut len = options.min_tokens;
        while len < n {
            let stride = (len / 4).max(1);
            let mut start = 0;
            while start + len <= n {
                consider(start, start + len);
                start += stride;
            }
            if start - stride + len < n {
                consider(n - len, n); // the tail the stride stepped over
            }
            len *= 2;
        }
        consider(0, n);
        let (_, start, end) = best;
        let (s, g) = (
            prefix[end].0 - prefix[start].0,
            prefix[end].1 - prefix[start].1,
        );
        let span = self.summarize(end - start, s, g);
        let ln_p = (span.ln_p_value + (tried as f64).ln()).min(0.0);
        Ok(SpanDetection {
            start,
            end,
            span,
            windows_tried: tried,
            p_value: ln_p.exp(),
            ln_p_value: ln_p,
            log10_p_value: stats::ln_to_log10(ln_p),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Key, WatermarkConfig};

    #[test]
    fn rejects_tiny_windows_and_handles_short_text() {
        let d = Detector::new(&Key::from_bytes([5; 32]), WatermarkConfig::new(50).unwrap());
        assert!(d
            .find_span(&[1, 2, 3], &[], SpanOptions::with_min_tokens(1))
            .is_err());
        let r = d
            .find_span(&[1, 2, 3], &[], SpanOptions::default())
            .unwrap();
        assert_eq!((r.start, r.end, r.windows_tried), (0, 3, 1));
        let r = d.find_span(&[], &[], SpanOptions::default()).unwrap();
        assert_eq!(r.p_value, 1.0);
    }
}
