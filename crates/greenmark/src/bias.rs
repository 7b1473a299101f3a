//! In-place logit biasing: `logits[v] += delta` for every green `v`.
//!
//! A [`Watermarker`] is built once from a key and a config; each call takes one logits row (or
//! a batch) and the tokens that precede it. Nothing is allocated per call.
//!
//! # Example
//! ```
//! use greenmark::{Key, WatermarkConfig, Watermarker, BiasOutcome};
//! let config = WatermarkConfig::new(1000)?;
//! let wm = Watermarker::new(&Key::from_bytes([9; 32]), config);
//! let mut logits = vec![0.0f32; 1000];
//! let outcome = wm.bias(&mut logits, &[5, 17, 42])?;
//! assert!(matches!(outcome, BiasOutcome::Biased));
//! let green = logits.iter().filter(|&&l| l == 2.0).count();
//! assert!(green > 150 && green < 350); // about gamma * V = 250
//! # Ok::<(), greenmark::Error>(())
//! ```
//!
//! # Performance notes
//! The non-selfhash path is one pass of [`mix32`] and a select per float. Written as a plain
//! loop, it is compiled three times (portable, AVX2, AVX-512F) and the widest one the CPU
//! supports is picked at run time, as `memchr` does: a portable x86-64 build has no 32-bit
//! vector multiply (`pmulld` is SSE4.1), so without dispatch the loop runs scalar. The select
//! (`if green { l + delta } else { l }`) rather than `l += delta * green as f32` keeps `-0.0`,
//! NaN payloads and infinities exactly as they were on red tokens. Figures: docs/benchmarks.md.

use crate::config::{Scheme, WatermarkConfig, MAX_TOP_K};
use crate::error::{Error, Result};
use crate::key::{Key, KeyId};
use crate::scheme::{mix32, Seeder};

/// What [`Watermarker::bias`] did to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BiasOutcome {
    /// Green logits were raised by delta.
    Biased,
    /// The row was left as it was, for the reason given.
    Skipped(SkipReason),
}

/// Why a position was not biased (or, in detection, not scored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// Fewer tokens precede the position than the scheme's window needs.
    NoWindow,
    /// The same window already occurred earlier in the context (biasing) or the same
    /// (seed, token) tuple was already scored (detection).
    Repeated,
}

/// Applies the watermark to logits. Cheap to share across threads (`Sync`).
#[derive(Debug, Clone)]
pub struct Watermarker {
    config: WatermarkConfig,
    seeder: Seeder,
    threshold: u32,
    delta: f32,
    key_id: KeyId,
}

impl Watermarker {
    /// A watermarker for `key` and `config`.
    pub fn new(key: &Key, config: WatermarkConfig) -> Watermarker {
        Watermarker {
            seeder: Seeder::new(key, config.scheme()),
            threshold: config.threshold(),
            delta: config.delta() as f32,
            key_id: key.id(),
            config,
        }
    }

    /// The config this watermarker applies.
    pub fn config(&self) -> &WatermarkConfig {
        &self.config
    }

    /// The public id of the key.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Biases one row of logits (length = vocab size) for the next token after `context` (the
    /// prompt and everything generated so far, in order).
    ///
    /// Returns [`BiasOutcome::Skipped`] and leaves the row as it is when `context` is shorter
    /// than the window, or, with `skip_repeated_windows` (off by default), when the current
    /// window already occurred earlier in `context` (prompt included): re-biasing a repeated
    /// context reinforces loops. The cost is detectability: a repeated window followed by a new
    /// token is scored by the deduplicating detector as an unbiased coin. At window 1 that is a
    /// large share of positions once the context is long (30-40% after a 1,500-token prompt at
    /// ~3 nats/token, taking log10 p from about -25 to -8; see `docs/statistics.md`), which is
    /// why it is off unless asked for.
    /// `unigram` has no window and is never skipped.
    ///
    /// NaN and infinite logits stay as they are. Errors (row length, a window token out of
    /// range) leave the row unchanged.
    pub fn bias(&self, logits: &mut [f32], context: &[u32]) -> Result<BiasOutcome> {
        self.check_row(logits.len(), 0)?;
        let outcome = self.check_context(context)?;
        if outcome == BiasOutcome::Biased {
            self.apply(logits, context);
        }
        Ok(outcome)
    }

    /// Biases a batch: `logits` holds `contexts.len()` rows of vocab-size floats, row-major.
    /// Rows run in parallel with the `rayon` feature. Every row is checked before any is
    /// changed, so an error leaves the whole batch as it was.
    pub fn bias_batch<C>(&self, logits: &mut [f32], contexts: &[C]) -> Result<()>
    where
        C: AsRef<[u32]> + Sync,
    {
        let vocab = self.config.vocab_size() as usize;
        if logits.len() != contexts.len() * vocab {
            return Err(Error::BatchShape(format!(
                "{} logits do not make {} rows of vocab size {vocab}",
                logits.len(),
                contexts.len()
            )));
        }
        for context in contexts {
            self.check_context(context.as_ref())?;
        }
        let row = |(logits, context): (&mut [f32], &C)| {
            let context = context.as_ref();
            if self.outcome(context) == BiasOutcome::Biased {
                self.apply(logits, context);
            }
        };
        #[cfg(feature = "rayon")]
        if contexts.len() > 1 {
            use rayon::prelude::*;
            logits
                .par_chunks_mut(vocab)
                .zip(contexts.par_iter())
                .for_each(row);
            return Ok(());
        }
        logits.chunks_mut(vocab).zip(contexts.iter()).for_each(row);
        Ok(())
    }

    /// Writes the green list for the next token after `context` as a bitset: bit `v % 64` of
    /// word `v / 64` is set iff token `v` is green. For callers whose logits live on a GPU:
    /// upload the `ceil(V / 64)` words (16 KiB at V = 128k) instead of copying logits to the
    /// host. For `selfhash` every token is evaluated as a candidate (one PRF call per token).
    ///
    /// When the position would be skipped (see [`Watermarker::bias`]) the mask is all zeros.
    pub fn green_mask(&self, context: &[u32], mask: &mut [u64]) -> Result<BiasOutcome> {
        let vocab = self.config.vocab_size();
        let expected = (vocab as usize).div_ceil(64);
        if mask.len() != expected {
            return Err(Error::MaskLength {
                expected,
                got: mask.len(),
                vocab_size: vocab,
            });
        }
        let outcome = self.check_context(context)?;
        mask.fill(0);
        if outcome != BiasOutcome::Biased {
            return Ok(outcome);
        }
        let window = &context[context.len() - self.config.scheme().context_len()..];
        let t = self.threshold;
        match self.config.scheme() {
            Scheme::SelfHash { .. } => {
                let ctx = self.seeder.self_context(window);
                fill_mask(mask, vocab, |v| mix32(self.seeder.self_seed(ctx, v), v) < t);
            }
            _ => green_words(mask, vocab, self.seeder.context_seed(window), t),
        }
        Ok(outcome)
    }

    fn check_row(&self, len: usize, row: usize) -> Result<()> {
        let expected = self.config.vocab_size() as usize;
        if len != expected {
            return Err(Error::RowLength {
                row,
                expected,
                got: len,
            });
        }
        Ok(())
    }

    /// Validates the window's tokens and says whether the position is biased.
    fn check_context(&self, context: &[u32]) -> Result<BiasOutcome> {
        let h = self.config.scheme().context_len();
        if context.len() >= h {
            let start = context.len() - h;
            let vocab = self.config.vocab_size();
            if let Some(i) = context[start..].iter().position(|&t| t >= vocab) {
                return Err(Error::TokenOutOfRange {
                    position: start + i,
                    token: context[start + i],
                    vocab_size: vocab,
                    sequence: "context",
                });
            }
        }
        Ok(self.outcome(context))
    }

    fn outcome(&self, context: &[u32]) -> BiasOutcome {
        let h = self.config.scheme().context_len();
        if context.len() < h {
            BiasOutcome::Skipped(SkipReason::NoWindow)
        } else if h > 0 && self.config.skip_repeated_windows() && window_repeats(context, h) {
            BiasOutcome::Skipped(SkipReason::Repeated)
        } else {
            BiasOutcome::Biased
        }
    }

    fn apply(&self, logits: &mut [f32], context: &[u32]) {
        let window = &context[context.len() - self.config.scheme().context_len()..];
        match self.config.scheme() {
            Scheme::SelfHash { top_k, .. } => self.apply_selfhash(logits, window, top_k),
            _ => add_green(
                logits,
                self.seeder.context_seed(window),
                self.threshold,
                self.delta,
            ),
        }
    }

    /// selfhash: a candidate's seed depends on the candidate itself, so only the `top_k` most
    /// likely candidates (by the unbiased logits) are evaluated.
    fn apply_selfhash(&self, logits: &mut [f32], window: &[u32], top_k: usize) {
        let mut top = TopK::new(top_k);
        for (v, &l) in logits.iter().enumerate() {
            top.offer(l, v as u32);
        }
        let ctx = self.seeder.self_context(window);
        for &v in top.tokens() {
            if mix32(self.seeder.self_seed(ctx, v), v) < self.threshold {
                logits[v as usize] += self.delta;
            }
        }
    }
}

/// Whether the last `h` tokens of `context` also stand, in order, right before an earlier
/// position of `context`.
fn window_repeats(context: &[u32], h: usize) -> bool {
    let n = context.len();
    let window = &context[n - h..];
    let last = window[h - 1];
    (h..n).any(|j| context[j - 1] == last && context[j - h..j] == *window)
}

/// The `k` largest finite-or-infinite (never NaN) logits, ties to the lower token id.
struct TopK {
    k: usize,
    len: usize,
    logits: [f32; MAX_TOP_K],
    tokens: [u32; MAX_TOP_K],
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK {
            k: k.min(MAX_TOP_K),
            len: 0,
            logits: [0.0; MAX_TOP_K],
            tokens: [0; MAX_TOP_K],
        }
    }

    #[inline]
    fn offer(&mut self, logit: f32, token: u32) {
        if logit.is_nan() || (self.len == self.k && logit <= self.logits[self.len - 1]) {
            return;
        }
        // Insertion into the sorted prefix; rare after the first few hundred tokens.
        let mut i = if self.len < self.k {
            self.len
        } else {
            self.k - 1
        };
        while i > 0 && self.logits[i - 1] < logit {
            self.logits[i] = self.logits[i - 1];
            self.tokens[i] = self.tokens[i - 1];
            i -= 1;
        }
        self.logits[i] = logit;
        self.tokens[i] = token;
        self.len = (self.len + 1).min(self.k);
    }

    fn tokens(&self) -> &[u32] {
        &self.tokens[..self.len]
    }
}

fn fill_mask(mask: &mut [u64], vocab: u32, green: impl Fn(u32) -> bool) {
    for (w, word) in mask.iter_mut().enumerate() {
        let base = (w * 64) as u32;
        let end = (base + 64).min(vocab);
        let mut bits = 0u64;
        for v in base..end {
            bits |= u64::from(green(v)) << (v - base);
        }
        *word = bits;
    }
}

/// The bitset of `v < vocab` with `mix32(seed, v) < threshold`, with the widest vector unit the
/// CPU has.
fn green_words(mask: &mut [u64], vocab: u32, seed: u64, threshold: u32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            return unsafe { green_words_avx512(mask, vocab, seed, threshold) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { green_words_avx2(mask, vocab, seed, threshold) };
        }
    }
    green_words_portable(mask, vocab, seed, threshold)
}

#[inline(always)]
fn green_words_portable(mask: &mut [u64], vocab: u32, seed: u64, threshold: u32) {
    for (w, word) in mask.iter_mut().enumerate() {
        let base = (w as u32) * 64;
        // A fixed 64-lane body the compiler turns into vector compares.
        let mut bits = 0u64;
        for i in 0..64u32 {
            bits |= u64::from(mix32(seed, base.wrapping_add(i)) < threshold) << i;
        }
        let valid = vocab - base;
        *word = if valid >= 64 {
            bits
        } else {
            bits & ((1u64 << valid) - 1)
        };
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn green_words_avx2(mask: &mut [u64], vocab: u32, seed: u64, threshold: u32) {
    green_words_portable(mask, vocab, seed, threshold)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn green_words_avx512(mask: &mut [u64], vocab: u32, seed: u64, threshold: u32) {
    green_words_portable(mask, vocab, seed, threshold)
}

/// `logits[v] += delta` where `mix32(seed, v) < threshold`, with the widest vector unit the CPU
/// has.
fn add_green(logits: &mut [f32], seed: u64, threshold: u32, delta: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            return unsafe { add_green_avx512(logits, seed, threshold, delta) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { add_green_avx2(logits, seed, threshold, delta) };
        }
    }
    add_green_portable(logits, seed, threshold, delta)
}

#[inline(always)]
fn add_green_portable(logits: &mut [f32], seed: u64, threshold: u32, delta: f32) {
    for (v, l) in logits.iter_mut().enumerate() {
        let green = mix32(seed, v as u32) < threshold;
        *l = if green { *l + delta } else { *l };
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_green_avx2(logits: &mut [f32], seed: u64, threshold: u32, delta: f32) {
    add_green_portable(logits, seed, threshold, delta)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn add_green_avx512(logits: &mut [f32], seed: u64, threshold: u32, delta: f32) {
    add_green_portable(logits, seed, threshold, delta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wm(scheme: Scheme) -> Watermarker {
        let config = WatermarkConfig::builder(300)
            .scheme(scheme)
            .build()
            .unwrap();
        Watermarker::new(&Key::from_bytes([1; 32]), config)
    }

    #[test]
    fn every_dispatch_path_agrees() {
        let mut a: Vec<f32> = (0..1003).map(|i| i as f32 * 0.5 - 100.0).collect();
        a[3] = f32::NAN;
        a[5] = f32::NEG_INFINITY;
        a[7] = -0.0;
        let mut b = a.clone();
        add_green(&mut a, 77, 1 << 30, 2.0);
        add_green_portable(&mut b, 77, 1 << 30, 2.0);
        assert_eq!(
            a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn green_words_match_the_definition_on_every_path() {
        for vocab in [1u32, 63, 64, 65, 1003, 1024] {
            let words = (vocab as usize).div_ceil(64);
            let mut expected = vec![0u64; words];
            fill_mask(&mut expected, vocab, |v| mix32(77, v) < 1 << 30);
            let mut fast = vec![u64::MAX; words];
            green_words(&mut fast, vocab, 77, 1 << 30);
            assert_eq!(fast, expected, "dispatched, V={vocab}");
            let mut portable = vec![u64::MAX; words];
            green_words_portable(&mut portable, vocab, 77, 1 << 30);
            assert_eq!(portable, expected, "portable, V={vocab}");
        }
    }

    #[test]
    fn repeated_windows_are_skipped_only_when_asked() {
        let plain = wm(Scheme::LeftHash { window: 2 });
        assert!(!plain.config().skip_repeated_windows());
        let config = plain.config().to_builder().skip_repeated_windows(true);
        let w = Watermarker::new(&Key::from_bytes([1; 32]), config.build().unwrap());
        let mut row = vec![0.0; 300];
        assert_eq!(
            w.bias(&mut row, &[1, 2, 3, 1, 2]).unwrap(),
            BiasOutcome::Skipped(SkipReason::Repeated)
        );
        assert!(row.iter().all(|&x| x == 0.0));
        assert_eq!(
            w.bias(&mut row, &[1, 2, 3, 2, 1]).unwrap(),
            BiasOutcome::Biased
        );
        assert_eq!(
            w.bias(&mut row, &[1]).unwrap(),
            BiasOutcome::Skipped(SkipReason::NoWindow)
        );
        assert_eq!(
            plain.bias(&mut row, &[1, 2, 3, 1, 2]).unwrap(),
            BiasOutcome::Biased
        );
    }

    #[test]
    fn topk_keeps_the_largest_and_ignores_nan() {
        let mut t = TopK::new(3);
        for (i, l) in [1.0, f32::NAN, 5.0, 3.0, 5.0, -1.0, 4.0]
            .into_iter()
            .enumerate()
        {
            t.offer(l, i as u32);
        }
        assert_eq!(t.tokens(), &[2, 4, 6]);
    }

    #[test]
    fn selfhash_biases_only_top_k_candidates() {
        let w = wm(Scheme::SelfHash {
            window: 3,
            top_k: 10,
        });
        let mut row: Vec<f32> = (0..300).map(|i| -(i as f32)).collect();
        let before = row.clone();
        w.bias(&mut row, &[4, 5]).unwrap();
        let changed: Vec<usize> = (0..300).filter(|&i| row[i] != before[i]).collect();
        assert!(changed.iter().all(|&i| i < 10), "{changed:?}");
    }
}
