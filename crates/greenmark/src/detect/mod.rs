//! Scoring token sequences: counts, deduplication, exact p-values, per-token annotations.
//!
//! Every position with a full window is *scored*: its token is green or red for the seed of its
//! window. Under the null hypothesis (text written without the key) each distinct
//! `(seed, token)` tuple is green with probability `gamma` independently, so the number of green
//! tuples among `n` distinct ones is Binomial(n, gamma) and the p-value `P(X >= g)` is exact.
//!
//! **Deduplication (on by default).** A repeated tuple is not new evidence: its colour is a
//! copy of the first one. Counting repeats makes repetitive human text look watermarked (one
//! green bigram repeated 50 times). The detector therefore scores each distinct `(seed, token)`
//! once. This is slightly stronger than deduplicating `(window, token)` (Fernandez et al.,
//! "Three Bricks", 2023): for `minhash`, `sumhash` and `lefthash` with `h > 1`, different
//! windows can share a seed, and their tuples are just as dependent.
//!
//! # Example
//! ```
//! use greenmark::{Detector, Key, WatermarkConfig};
//! let detector = Detector::new(&Key::from_bytes([9; 32]), WatermarkConfig::new(1000)?);
//! let tokens: Vec<u32> = (0..200).map(|i| (i * 7919) % 1000).collect();
//! let d = detector.detect(&tokens, &[])?;
//! assert_eq!(d.n_tokens, 200);
//! assert!(d.p_value > 1e-6); // text that was never watermarked
//! # Ok::<(), greenmark::Error>(())
//! ```

mod keyring;
mod mixed;
mod scored;
mod span;

pub use keyring::{Keyring, KeyringDetection};
pub use mixed::{AnyDetection, Engine};
pub use scored::Scored;
pub use span::{SpanDetection, SpanOptions, MIN_SPAN_TOKENS};

use std::hash::BuildHasherDefault;

use crate::bias::SkipReason;
use crate::config::{Scheme, WatermarkConfig};
use crate::error::{Error, Result};
use crate::key::{Key, KeyId};
use crate::scheme::{mix32, Seeder};
use crate::stats;
use crate::tuple::{fingerprint, PassThrough};

/// How one token fared in detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenScore {
    /// Scored, and green.
    Green,
    /// Scored, and red.
    Red,
    /// Not scored, for the reason given.
    Skipped(SkipReason),
}

impl TokenScore {
    /// Whether the token counts in the statistic.
    pub fn is_scored(self) -> bool {
        matches!(self, TokenScore::Green | TokenScore::Red)
    }
}

/// The result of scoring one sequence.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Detection {
    /// Tokens in the text (the prompt not included).
    pub n_tokens: usize,
    /// Tokens that counted: a full window and, with dedup, a tuple not seen before.
    pub n_scored: u64,
    /// Scored tokens that were green.
    pub n_green: u64,
    /// `n_green / n_scored` (0 when nothing was scored).
    pub green_fraction: f64,
    /// `(n_green - gamma n) / sqrt(n gamma (1 - gamma))`, for orientation only (0 when nothing
    /// was scored): the p-value below is the exact test, the z-test is anti-conservative on
    /// short texts.
    pub z_score: f64,
    /// The exact one-sided binomial tail `P(X >= n_green)`, `X ~ Binomial(n_scored, gamma)`.
    /// Underflows to 0 below ~1e-308: use the log fields.
    pub p_value: f64,
    /// Natural log of the p-value; finite far below 1e-308.
    pub ln_p_value: f64,
    /// Base-10 log of the p-value (`-400.0` for p = 1e-400).
    pub log10_p_value: f64,
    /// The exact null probability of green used (`threshold / 2^32`).
    pub gamma: f64,
    /// Whether repeated tuples were skipped.
    pub dedup: bool,
    /// The scheme's versioned id.
    pub scheme: &'static str,
    /// The key's public id (serialized as 16 hex digits).
    pub key_id: KeyId,
}

impl Detection {
    /// Whether the watermark is detected at `threshold`: `p < threshold`, compared in log
    /// space, so p-values far below `f64`'s range count. The one verdict rule of the CLI, the
    /// Python package and reports. Nothing scored is never significant.
    ///
    /// ```
    /// use greenmark::{Detector, Key, WatermarkConfig};
    /// let d = Detector::new(&Key::from_bytes([3; 32]), WatermarkConfig::new(100)?);
    /// assert!(!d.detect(&[], &[])?.is_significant(0.5));
    /// # Ok::<(), greenmark::Error>(())
    /// ```
    pub fn is_significant(&self, threshold: f64) -> bool {
        self.n_scored > 0 && self.ln_p_value < threshold.ln()
    }
}

/// A result serialized as a JSON object whose p-value fields are renamed `uncorrected_*`: it
/// is nested inside a result whose own p-value is the corrected one.
#[cfg(feature = "serde")]
pub(crate) fn uncorrected_value<T: serde::Serialize>(
    value: &T,
) -> serde_json::Result<serde_json::Value> {
    let mut value = serde_json::to_value(value)?;
    if let Some(object) = value.as_object_mut() {
        for field in ["p_value", "ln_p_value", "log10_p_value"] {
            if let Some(v) = object.remove(field) {
                object.insert(format!("uncorrected_{field}"), v);
            }
        }
    }
    Ok(value)
}

/// Reusable scratch for [`Detector::detect_with`]: the dedup set and a context buffer. Reusing
/// one across calls makes detection allocation-free once it has grown to the largest input.
#[derive(Debug, Default, Clone)]
pub struct DetectCache {
    seen: hashbrown::HashSet<u64, BuildHasherDefault<PassThrough>>,
    context: Vec<u32>,
}

impl DetectCache {
    /// An empty cache.
    pub fn new() -> DetectCache {
        DetectCache::default()
    }
}

/// Scores token sequences for one key and config. Cheap to share across threads.
#[derive(Debug, Clone)]
pub struct Detector {
    config: WatermarkConfig,
    seeder: Seeder,
    threshold: u32,
    key_id: KeyId,
    dedup: bool,
}

impl Detector {
    /// A detector for `key` and `config`, deduplicating tuples.
    pub fn new(key: &Key, config: WatermarkConfig) -> Detector {
        Detector {
            seeder: Seeder::new(key, config.scheme()),
            threshold: config.threshold(),
            key_id: key.id(),
            dedup: true,
            config,
        }
    }

    /// Turns deduplication of repeated `(seed, token)` tuples on (default) or off. Off counts
    /// every position and is miscalibrated on repetitive text; it exists for comparison.
    pub fn with_dedup(mut self, on: bool) -> Detector {
        self.dedup = on;
        self
    }

    /// Whether repeated `(seed, token)` tuples are scored once ([`Detector::with_dedup`]).
    pub fn dedups(&self) -> bool {
        self.dedup
    }

    /// The config this detector scores for.
    pub fn config(&self) -> &WatermarkConfig {
        &self.config
    }

    /// The public id of the key scored for.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Whether `other` makes exactly the same calls on every input: the same key and dedup,
    /// and configs that score alike ([`WatermarkConfig::check_same_detection`]: `delta` and
    /// `skip_repeated_windows` only matter to generation).
    pub fn scores_like(&self, other: &Detector) -> bool {
        self.key_id == other.key_id
            && self.dedup == other.dedup
            && self.config.check_same_detection(&other.config).is_ok()
    }

    /// Scores `tokens`. `prompt` (possibly empty) is the text that preceded them: it provides
    /// the windows of the first tokens and is not scored itself.
    pub fn detect(&self, tokens: &[u32], prompt: &[u32]) -> Result<Detection> {
        self.detect_with(&mut DetectCache::new(), tokens, prompt)
    }

    /// [`Detector::detect`] with caller-owned scratch, allocation-free in steady state.
    pub fn detect_with(
        &self,
        cache: &mut DetectCache,
        tokens: &[u32],
        prompt: &[u32],
    ) -> Result<Detection> {
        let (scored, green) = self.score(cache, tokens, prompt, true, |_, _| {})?;
        Ok(self.summarize(tokens.len(), scored, green))
    }

    /// [`Detector::detect`] plus one [`TokenScore`] per token, for visual reports.
    pub fn annotate(&self, tokens: &[u32], prompt: &[u32]) -> Result<(Detection, Vec<TokenScore>)> {
        let mut scores = Vec::with_capacity(tokens.len());
        let (scored, green) =
            self.score(&mut DetectCache::new(), tokens, prompt, true, |_, s| {
                scores.push(s)
            })?;
        Ok((self.summarize(tokens.len(), scored, green), scores))
    }

    /// Detects many sequences (each with its own dedup set), in parallel with `rayon`.
    pub fn detect_batch<T>(&self, texts: &[T]) -> Result<Vec<Detection>>
    where
        T: AsRef<[u32]> + Sync,
    {
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            texts
                .par_iter()
                .map_init(DetectCache::new, |cache, t| {
                    self.detect_with(cache, t.as_ref(), &[])
                })
                .collect()
        }
        #[cfg(not(feature = "rayon"))]
        {
            let mut cache = DetectCache::new();
            texts
                .iter()
                .map(|t| self.detect_with(&mut cache, t.as_ref(), &[]))
                .collect()
        }
    }

    /// The summary of `n_scored` tuples of which `n_green` are green.
    pub fn summarize(&self, n_tokens: usize, n_scored: u64, n_green: u64) -> Detection {
        let gamma = self.config.effective_gamma();
        let (fraction, z) = if n_scored == 0 {
            (0.0, 0.0)
        } else {
            let n = n_scored as f64;
            let g = n_green as f64;
            (g / n, (g - gamma * n) / (n * gamma * (1.0 - gamma)).sqrt())
        };
        let ln_p = stats::binomial_tail_ln(n_green, n_scored, gamma);
        Detection {
            n_tokens,
            n_scored,
            n_green,
            green_fraction: fraction,
            z_score: z,
            p_value: ln_p.exp(),
            ln_p_value: ln_p,
            log10_p_value: stats::ln_to_log10(ln_p),
            gamma,
            dedup: self.dedup,
            scheme: self.config.scheme().id(),
            key_id: self.key_id,
        }
    }

    /// A streaming detection: feed a long text in pieces, get the detection of the whole.
    ///
    /// ```
    /// use greenmark::{Detector, Key, WatermarkConfig};
    /// let detector = Detector::new(&Key::from_bytes([1; 32]), WatermarkConfig::new(100)?);
    /// let tokens: Vec<u32> = (0..500).map(|i| (i * 37 % 100) as u32).collect();
    /// let mut stream = detector.stream();
    /// for piece in tokens.chunks(64) {
    ///     stream.feed(piece)?;
    /// }
    /// assert_eq!(stream.finish(), detector.detect(&tokens, &[])?);
    /// # Ok::<(), greenmark::Error>(())
    /// ```
    pub fn stream(&self) -> DetectStream<'_> {
        DetectStream {
            detector: self,
            cache: DetectCache::new(),
            tail: Vec::new(),
            n_tokens: 0,
            n_scored: 0,
            n_green: 0,
        }
    }

    /// The scoring loop shared by every entry point: calls `sink(i, score)` for each token in
    /// order and returns `(n_scored, n_green)`. `fresh` starts a new dedup set; a stream keeps
    /// its set across calls.
    fn score(
        &self,
        cache: &mut DetectCache,
        tokens: &[u32],
        prompt: &[u32],
        fresh: bool,
        mut sink: impl FnMut(usize, TokenScore),
    ) -> Result<(u64, u64)> {
        let vocab = self.config.vocab_size();
        for (sequence, seq) in [("prompt", prompt), ("text", tokens)] {
            if let Some(position) = seq.iter().position(|&t| t >= vocab) {
                return Err(Error::TokenOutOfRange {
                    position,
                    token: seq[position],
                    vocab_size: vocab,
                    sequence,
                });
            }
        }
        let h = self.config.scheme().context_len();
        // The windows of the first tokens may reach into the prompt: score over
        // `prompt tail ++ tokens`, copied into the cache only when there is a prompt.
        let keep = prompt.len().min(h);
        let all: &[u32] = if keep == 0 {
            tokens
        } else {
            cache.context.clear();
            cache
                .context
                .extend_from_slice(&prompt[prompt.len() - keep..]);
            cache.context.extend_from_slice(tokens);
            &cache.context
        };
        let seen = &mut cache.seen;
        if fresh {
            seen.clear();
        }
        if self.dedup {
            seen.reserve(tokens.len());
        }
        let (mut scored, mut green) = (0u64, 0u64);
        let selfhash = matches!(self.config.scheme(), Scheme::SelfHash { .. });
        for (i, &token) in tokens.iter().enumerate() {
            let p = keep + i;
            if p < h {
                sink(i, TokenScore::Skipped(SkipReason::NoWindow));
                continue;
            }
            let window = &all[p - h..p];
            let seed = if selfhash {
                self.seeder
                    .self_seed(self.seeder.self_context(window), token)
            } else {
                self.seeder.context_seed(window)
            };
            if self.dedup && !seen.insert(fingerprint(seed, token)) {
                sink(i, TokenScore::Skipped(SkipReason::Repeated));
                continue;
            }
            let is_green = mix32(seed, token) < self.threshold;
            scored += 1;
            green += u64::from(is_green);
            sink(
                i,
                if is_green {
                    TokenScore::Green
                } else {
                    TokenScore::Red
                },
            );
        }
        Ok((scored, green))
    }
}

/// A detection fed in pieces ([`Detector::stream`]): windows continue across pieces and one
/// dedup set covers the whole stream, so the result equals [`Detector::detect`] of the
/// concatenation. Memory grows with the number of distinct tuples (8 bytes each), not with
/// the text.
#[derive(Debug)]
pub struct DetectStream<'a> {
    detector: &'a Detector,
    cache: DetectCache,
    /// The last `h` tokens fed: the windows of the next piece's first tokens.
    tail: Vec<u32>,
    n_tokens: usize,
    n_scored: u64,
    n_green: u64,
}

impl DetectStream<'_> {
    /// Scores the next piece of the text. A token out of range is an error naming its position
    /// in the whole stream; the stream is unchanged by a failed call.
    pub fn feed(&mut self, tokens: &[u32]) -> Result<()> {
        let tail = std::mem::take(&mut self.tail);
        let scored = self
            .detector
            .score(&mut self.cache, tokens, &tail, false, |_, _| {});
        let (scored, green) = match scored {
            Ok(counts) => counts,
            Err(Error::TokenOutOfRange {
                position,
                token,
                vocab_size,
                ..
            }) => {
                self.tail = tail;
                return Err(Error::TokenOutOfRange {
                    position: self.n_tokens + position,
                    token,
                    vocab_size,
                    sequence: "text",
                });
            }
            Err(e) => {
                self.tail = tail;
                return Err(e);
            }
        };
        let h = self.detector.config.scheme().context_len();
        let mut next = tail;
        next.extend_from_slice(tokens);
        let drop = next.len().saturating_sub(h);
        next.drain(..drop);
        self.tail = next;
        self.n_tokens += tokens.len();
        self.n_scored += scored;
        self.n_green += green;
        Ok(())
    }

    /// Tokens fed so far.
    pub fn n_tokens(&self) -> usize {
        self.n_tokens
    }

    /// The detection of everything fed.
    pub fn finish(self) -> Detection {
        self.detector
            .summarize(self.n_tokens, self.n_scored, self.n_green)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector(vocab: u64) -> Detector {
        Detector::new(
            &Key::from_bytes([2; 32]),
            WatermarkConfig::new(vocab).unwrap(),
        )
    }

    #[test]
    fn empty_and_unscorable_inputs_give_p_one() {
        let d = detector(100);
        for (tokens, prompt) in [(&[][..], &[][..]), (&[5][..], &[][..])] {
            let r = d.detect(tokens, prompt).unwrap();
            assert_eq!((r.n_scored, r.p_value, r.z_score), (0, 1.0, 0.0));
            assert_eq!(r.log10_p_value, 0.0);
        }
        let r = d.detect(&[5], &[4]).unwrap();
        assert_eq!(r.n_scored, 1);
    }

    #[test]
    fn out_of_range_tokens_name_their_position() {
        let d = detector(100);
        let err = d.detect(&[1, 2, 100, 3], &[]).unwrap_err();
        assert!(matches!(
            err,
            Error::TokenOutOfRange {
                position: 2,
                token: 100,
                sequence: "text",
                ..
            }
        ));
        assert!(err.to_string().contains("text position 2"), "{err}");
        let err = d.detect(&[1], &[7, 4000]).unwrap_err();
        assert!(err.to_string().contains("prompt position 1"), "{err}");
    }

    #[test]
    fn repeats_are_scored_once_with_dedup() {
        let d = detector(100);
        let tokens: Vec<u32> = [5u32, 6].repeat(200);
        let (r, scores) = d.annotate(&tokens, &[]).unwrap();
        assert_eq!(r.n_scored, 2); // (5 -> 6) and (6 -> 5)
        assert_eq!(scores[0], TokenScore::Skipped(SkipReason::NoWindow));
        assert_eq!(scores[3], TokenScore::Skipped(SkipReason::Repeated));
        let r = d.clone().with_dedup(false).detect(&tokens, &[]).unwrap();
        assert_eq!(r.n_scored, 399);
    }

    #[test]
    fn prompt_supplies_the_first_window() {
        let d = detector(100);
        let with = d.detect(&[1, 2, 3], &[9, 8]).unwrap();
        let joined = d.detect(&[8, 1, 2, 3], &[]).unwrap();
        assert_eq!(with.n_scored, 3);
        assert_eq!(
            (with.n_scored, with.n_green),
            (joined.n_scored, joined.n_green)
        );
    }

    /// Any split of a sequence, fed to a stream, gives exactly the detection of the whole, for
    /// every scheme, with and without dedup.
    #[test]
    fn a_stream_equals_the_whole_for_any_split() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
        let schemes = [
            Scheme::LeftHash { window: 1 },
            Scheme::LeftHash { window: 3 },
            Scheme::MinHash { window: 4 },
            Scheme::SumHash { window: 2 },
            Scheme::SelfHash {
                window: 3,
                top_k: 8,
            },
            Scheme::Unigram,
        ];
        for scheme in schemes {
            for dedup in [true, false] {
                let config = WatermarkConfig::builder(50).scheme(scheme).build().unwrap();
                let d = Detector::new(&Key::from_bytes([4; 32]), config).with_dedup(dedup);
                for _ in 0..20 {
                    // A small vocabulary: many repeats, so dedup across pieces matters.
                    let n = rng.gen_range(0..300);
                    let tokens: Vec<u32> = (0..n).map(|_| rng.gen_range(0..50)).collect();
                    let mut stream = d.stream();
                    let mut rest = &tokens[..];
                    while !rest.is_empty() {
                        let k = rng.gen_range(0..=rest.len().min(7));
                        stream.feed(&rest[..k]).unwrap();
                        rest = &rest[k..];
                    }
                    assert_eq!(
                        stream.finish(),
                        d.detect(&tokens, &[]).unwrap(),
                        "{scheme:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_stream_names_the_position_in_the_whole_stream() {
        let d = detector(100);
        let mut stream = d.stream();
        stream.feed(&[1, 2, 3]).unwrap();
        let err = stream.feed(&[4, 100]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::TokenOutOfRange {
                    position: 4,
                    token: 100,
                    ..
                }
            ),
            "{err}"
        );
        stream.feed(&[5]).unwrap();
        assert_eq!(stream.finish(), d.detect(&[1, 2, 3, 5], &[]).unwrap());
    }
}
