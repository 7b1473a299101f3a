//! Detection without a trained classifier: the mean and weighted mean g-value scores of
//! google-deepmind/synthid-text, each with an exact-or-conservative p-value in log space.

use std::sync::{Arc, OnceLock};

use super::config::SynthIdConfig;
use super::null::{base_index, ShiftNull, Spectrum, SynthIdNull};
use super::table::{hash_tokens, ContextHistory, SynthIdTable};
use crate::error::{Error, Result};
use crate::stats::{self, TailMethod};

/// The default budget of the exact lattice convolution of the weighted score, in
/// multiply-adds (tens of milliseconds); above it the Chernoff bound is used.
pub const DEFAULT_MAX_LATTICE_WORK: u64 = 20_000_000;

/// One score and its p-value.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SynthIdScore {
    /// The score as synthid-text normalises it: the (weighted) mean of the scored g-values.
    pub score: f64,
    /// The integer statistic the p-value is computed from: the number of ones (mean score),
    /// or `sum_d c_d * ones_d` with the integer weights `c_d = 10(D-1) - 9d` (weighted).
    pub statistic: u64,
    /// `P(statistic >= observed)` under the null; underflows to 0 below ~1e-308.
    pub p_value: f64,
    /// Its natural log, finite far below 1e-308.
    pub ln_p_value: f64,
    /// Its base-10 log.
    pub log10_p_value: f64,
    /// Exact, or the (conservative) Chernoff bound.
    pub method: TailMethod,
}

impl SynthIdScore {
    fn new(score: f64, statistic: u64, (ln_p, method): (f64, TailMethod)) -> SynthIdScore {
        SynthIdScore {
            score,
            statistic,
            p_value: ln_p.exp(),
            ln_p_value: ln_p,
            log10_p_value: stats::ln_to_log10(ln_p),
            method,
        }
    }
}

/// The result of scoring one token sequence for a SynthID Text watermark.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SynthIdDetection {
    /// Tokens given.
    pub n_tokens: usize,
    /// Ngrams in the text (`n_tokens - ngram_len + 1`, or 0).
    pub n_ngrams: usize,
    /// Ngrams with at least one g-value scored.
    pub n_scored: u64,
    /// Ngrams at or after the first EOS (transformers' EOS mask).
    pub n_skipped_eos: u64,
    /// Ngrams whose context was among the last `context_history_size` contexts
    /// (transformers' context repetition mask).
    pub n_skipped_repeated_context: u64,
    /// Ngrams that passed both masks but whose every g-value reads a table entry already
    /// scored at its depth (a repeated ngram, or one whose hash lands on the same entries):
    /// its g-values are copies, not new evidence.
    pub n_skipped_duplicate: u64,
    /// G-values scored, over all depths.
    pub n_g_values: u64,
    /// G-values scored per depth.
    pub scored_per_depth: Vec<u64>,
    /// Ones among them, per depth.
    pub ones_per_depth: Vec<u64>,
    /// The fraction of ones in the sampling table (the null probability of a one, and the
    /// binomial null's rate).
    pub p0: f64,
    /// The null the p-values are computed under: [`SynthIdNull::ShiftExact`] (power-of-two
    /// tables: the exact law over the keys, see [`ShiftNull`]) or [`SynthIdNull::Binomial`].
    pub null: SynthIdNull,
    /// synthid-text's `mean_score`, with its exact tail (or, for very long texts under the
    /// shift null, the Chernoff bound).
    pub mean: SynthIdScore,
    /// synthid-text's `weighted_mean_score` (weights `linspace(10, 1, D)` normalised to sum to
    /// `D`), with the exact lattice tail or the Chernoff bound. It decides `is_watermarked`.
    pub weighted: SynthIdScore,
    /// Whether the weighted score's p-value is at most `threshold`.
    pub is_watermarked: bool,
    /// The threshold used.
    pub threshold: f64,
}

/// Reusable scratch of [`SynthIdDetector::detect_with`]: the table entries scored per depth.
#[derive(Debug, Clone, Default)]
pub struct SynthIdCache {
    seen: Vec<u64>,
    touched: Vec<usize>,
    /// Used instead of the bitset when `depth * table size` bits would exceed
    /// [`MAX_BITSET_BITS`].
    seen_set: hashbrown::HashSet<u64, super::table::MixState>,
    /// Base indices of the scored ngrams (power-of-two tables).
    bases: Vec<u32>,
}

/// The largest bitset of scored table entries a cache allocates (`depth * table size` bits,
/// 64 MiB); larger configs use a hash set of the entries scored.
const MAX_BITSET_BITS: usize = 1 << 29;

impl SynthIdCache {
    /// An empty cache.
    pub fn new() -> SynthIdCache {
        SynthIdCache::default()
    }
}

/// Scores token ids for a SynthID Text config, with p-values that need no trained detector.
///
/// The g-values are transformers' (`compute_g_values`): for the ngram ending at each token
/// from the `ngram_len`-th on, one per depth. A position is scored when it passes
/// transformers' masks (no EOS at or before its last token, when an EOS id is set; a context
/// not among the last `context_history_size`), and then each of its g-values is scored unless
/// the same table entry was already scored at that depth (then it is a copy of a g-value
/// already counted: always the case for a repeated ngram).
///
/// **The null, power-of-two tables** (the default 2^16): exact over uniformly random keys. A
/// key only shifts the table (index `(a + s_d) mod N`), so the ones at a depth are, for the
/// fixed text, the count `C(s)` at one uniform shift; depths are iid copies, and both scores'
/// tails are computed from the exact law of `C` over all `N` shifts ([`ShiftNull`]; the result
/// says [`SynthIdNull::ShiftExact`]). The mean score's tail is then exact or (very long and
/// deep texts) the Chernoff bound, like the weighted one.
///
/// **The null, other sizes** ([`SynthIdNull::Binomial`]). For text written without the keys,
/// each scored g-value is modelled as an
/// independent Bernoulli(`p0`), where `p0` is the fraction of ones in the sampling table: the
/// keys make the hash land on an entry of the table that the text's author cannot predict, and
/// the table itself is public and fixed by its seed, so `P(g = 1)` is the table's realized
/// fraction of ones, not 1/2 (with a 2^16 table it differs from 1/2 by about 0.002; testing
/// against 1/2 would be anti-conservative whenever the table has more ones than zeros). Repeated
/// entries are skipped because they are certain copies.
///
/// * Mean score: the number of ones among the `N` scored g-values is Binomial(`N`, `p0`); the
///   p-value is its exact upper tail.
/// * Weighted mean score: synthid-text's weights `linspace(10, 1, D)` are proportional to the
///   integers `c_d = 10(D-1) - 9d`, so the statistic `sum_d c_d ones_d` lives on a lattice; its
///   tail is exact by convolution when that is cheap ([`DEFAULT_MAX_LATTICE_WORK`]), otherwise
///   the Chernoff bound, which is never below the true tail. The result says which.
///
/// The model is an idealisation of the hash: transformers' hash is an LCG, not a PRF, so the
/// g-values of different ngrams are not truly independent draws; `tests/synthid_calibration.rs`
/// measures the false-positive rate on real text with random keys.
///
/// ```
/// use greenmark::synthid::{SynthIdConfig, SynthIdDetector};
/// let detector = SynthIdDetector::new(SynthIdConfig::new(5, vec![654, 400, 836, 123])?)?;
/// let text: Vec<u32> = (0..300).map(|i| (i * 7919) % 50_000).collect();
/// let d = detector.detect(&text)?;
/// assert_eq!(d.n_ngrams, 296);
/// assert!(d.weighted.p_value > 1e-4 && !d.is_watermarked);
/// # Ok::<(), greenmark::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SynthIdDetector {
    table: SynthIdTable,
    weights: Vec<u64>,
    eos: Option<u32>,
    vocab_size: Option<u32>,
    threshold: f64,
    max_work: u64,
    /// The table's DFT for the shift null's correlation, built on first use.
    spectrum: Arc<OnceLock<Spectrum>>,
}

impl SynthIdDetector {
    /// A detector for `config` (validated; its keys must be distinct), with no EOS id, no vocab
    /// check and threshold 0.01.
    pub fn new(config: SynthIdConfig) -> Result<SynthIdDetector> {
        SynthIdDetector::from_table(SynthIdTable::new(config)?)
    }

    /// A detector over an already-built table.
    pub fn from_table(table: SynthIdTable) -> Result<SynthIdDetector> {
        let keys = &table.config().keys;
        for (i, k) in keys.iter().enumerate() {
            if let Some(j) = keys[..i].iter().position(|x| x == k) {
                return Err(Error::InvalidKeys(format!(
                    "keys[{j}] and keys[{i}] are both {k}: equal keys give equal g-values at \
                     their depths, which detection cannot count as independent evidence; use \
                     distinct keys"
                )));
            }
        }
        let d = keys.len() as u64;
        let weights = if d == 1 {
            vec![1]
        } else {
            (0..d).map(|i| 10 * (d - 1) - 9 * i).collect()
        };
        Ok(SynthIdDetector {
            table,
            weights,
            eos: None,
            vocab_size: None,
            threshold: 0.01,
            max_work: DEFAULT_MAX_LATTICE_WORK,
            spectrum: Arc::new(OnceLock::new()),
        })
    }

    /// Masks every ngram at or after the first `eos` (transformers' detector passes the
    /// tokenizer's `eos_token_id`).
    pub fn with_eos(mut self, eos: Option<u32>) -> SynthIdDetector {
        self.eos = eos;
        self
    }

    /// Refuses token ids `>= vocab_size` (a text from another tokenizer).
    pub fn with_vocab_size(mut self, vocab_size: u32) -> Result<SynthIdDetector> {
        if vocab_size == 0 {
            return Err(Error::InvalidVocabSize(0));
        }
        self.vocab_size = Some(vocab_size);
        Ok(self)
    }

    /// Sets the p-value threshold of `is_watermarked`, in `(0, 1)` (default 0.01).
    pub fn with_threshold(mut self, threshold: f64) -> Result<SynthIdDetector> {
        self.threshold = stats::check_threshold(threshold)?;
        Ok(self)
    }

    /// Sets the budget of the exact lattice tail of the weighted score (0: always Chernoff).
    pub fn with_max_lattice_work(mut self, max_work: u64) -> SynthIdDetector {
        self.max_work = max_work;
        self
    }

    /// The table, keys and hash.
    pub fn table(&self) -> &SynthIdTable {
        &self.table
    }

    /// The config.
    pub fn config(&self) -> &SynthIdConfig {
        self.table.config()
    }

    /// The integer weights `c_d` of the weighted score.
    pub fn weights(&self) -> &[u64] {
        &self.weights
    }

    /// Scores `ids` (the text's token ids; generated ids only for text from transformers).
    pub fn detect(&self, ids: &[u32]) -> Result<SynthIdDetection> {
        self.detect_with(ids, &mut SynthIdCache::new())
    }

    /// Scores many sequences, each on its own, in parallel with the `rayon` feature.
    pub fn detect_batch<T: AsRef<[u32]> + Sync>(
        &self,
        texts: &[T],
    ) -> Result<Vec<SynthIdDetection>> {
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            texts
                .par_iter()
                .map_init(SynthIdCache::new, |c, t| self.detect_with(t.as_ref(), c))
                .collect()
        }
        #[cfg(not(feature = "rayon"))]
        {
            let mut cache = SynthIdCache::new();
            texts
                .iter()
                .map(|t| self.detect_with(t.as_ref(), &mut cache))
                .collect()
        }
    }

    /// [`detect`](Self::detect) reusing `cache`.
    pub fn detect_with(&self, ids: &[u32], cache: &mut SynthIdCache) -> Result<SynthIdDetection> {
        if let Some(v) = self.vocab_size {
            if let Some(position) = ids.iter().position(|&t| t >= v) {
                return Err(Error::TokenOutOfRange {
                    position,
                    token: ids[position],
                    vocab_size: v,
                    sequence: "text",
                });
            }
        }
        let config = self.table.config();
        let n = config.ngram_len;
        let depth = self.table.depth();
        let size = self.table.table().len();
        let use_bitset = depth.saturating_mul(size) <= MAX_BITSET_BITS;
        let words = if use_bitset {
            (depth * size).div_ceil(64)
        } else {
            0
        };
        if cache.seen.len() != words {
            cache.seen = vec![0; words];
            cache.touched.clear();
        }
        cache.seen_set.clear();
        cache.bases.clear();
        let shift_null = size.is_power_of_two();
        let first_eos = self
            .eos
            .and_then(|eos| ids.iter().position(|&t| t == eos))
            .unwrap_or(usize::MAX);
        let mut history = ContextHistory::new(config.context_history_size);
        let mut d = SynthIdDetection {
            n_tokens: ids.len(),
            n_ngrams: ids.len().saturating_sub(n - 1),
            n_scored: 0,
            n_skipped_eos: 0,
            n_skipped_repeated_context: 0,
            n_skipped_duplicate: 0,
            n_g_values: 0,
            scored_per_depth: vec![0; depth],
            ones_per_depth: vec![0; depth],
            p0: self.table.p0(),
            null: if shift_null {
                SynthIdNull::ShiftExact
            } else {
                SynthIdNull::Binomial
            },
            mean: SynthIdScore::new(0.0, 0, (0.0, TailMethod::Exact)),
            weighted: SynthIdScore::new(0.0, 0, (0.0, TailMethod::Exact)),
            is_watermarked: false,
            threshold: self.threshold,
        };
        let table = self.table.table();
        for (start, ngram) in ids.windows(n).enumerate() {
            let context_hash = hash_tokens(&ngram[..n - 1]);
            let repeated = history.contains(context_hash);
            history.push(context_hash);
            if start + n > first_eos {
                d.n_skipped_eos += 1;
                continue;
            }
            if repeated {
                d.n_skipped_repeated_context += 1;
                continue;
            }
            let h = hash_tokens(ngram);
            let mut any = false;
            for k in 0..depth {
                let index = self.table.index_at(h, k);
                let bit = k * size + index;
                if use_bitset {
                    let (word, mask) = (bit / 64, 1u64 << (bit % 64));
                    if cache.seen[word] & mask != 0 {
                        continue;
                    }
                    cache.seen[word] |= mask;
                    cache.touched.push(word);
                } else if !cache.seen_set.insert(bit as u64) {
                    continue;
                }
                any = true;
                d.scored_per_depth[k] += 1;
                d.ones_per_depth[k] += u64::from(table[index]);
            }
            if any {
                if shift_null {
                    // A power-of-two table reads entry (a + shift_k) at depth k, so an entry
                    // is new at one depth exactly when it is new at every depth, and the scored
                    // ngrams are those of distinct base index a.
                    cache.bases.push(base_index(h, size)?);
                }
                d.n_scored += 1;
            } else {
                d.n_skipped_duplicate += 1;
            }
        }
        for &w in &cache.touched {
            cache.seen[w] = 0;
        }
        cache.touched.clear();
        self.finish(d, shift_null.then_some(&cache.bases[..]))
    }

    /// The two scores of `d`'s counts, each with its tail under the null that applies: the
    /// shift null over the scored `bases` (a power-of-two table), or the binomial.
    fn finish(&self, mut d: SynthIdDetection, bases: Option<&[u32]>) -> Result<SynthIdDetection> {
        let depth = self.weights.len();
        let total: u64 = d.scored_per_depth.iter().sum();
        let ones: u64 = d.ones_per_depth.iter().sum();
        d.n_g_values = total;
        let statistic: u64 = self
            .weights
            .iter()
            .zip(&d.ones_per_depth)
            .map(|(c, o)| c * o)
            .sum();
        let sum_c: u64 = self.weights.iter().sum();
        let (mean, weighted) = if total == 0 {
            (0.0, 0.0)
        } else {
            (
                ones as f64 / total as f64,
                statistic as f64 * depth as f64 / sum_c as f64 / total as f64,
            )
        };
        let (mean_tail, weighted_tail) = match bases {
            Some(bases) => {
                // The per-depth counts are iid copies of the count over a uniformly random
                // shift of the table (see [`ShiftNull`]).
                let table = self.table.table();
                let spectrum = self.spectrum.get_or_init(|| Spectrum::new(table));
                let null = ShiftNull::with_spectrum(table, bases, spectrum);
                debug_assert!(d.scored_per_depth.iter().all(|&n| n == bases.len() as u64));
                (
                    null.tail_ln(&vec![1; depth], ones, self.max_work)?,
                    null.tail_ln(&self.weights, statistic, self.max_work)?,
                )
            }
            None => {
                let terms: Vec<(u64, u64)> = self
                    .weights
                    .iter()
                    .copied()
                    .zip(d.scored_per_depth.iter().copied())
                    .collect();
                (
                    (
                        stats::binomial_tail_ln(ones, total, d.p0),
                        TailMethod::Exact,
                    ),
                    stats::weighted_binomial_tail_ln(&terms, d.p0, statistic, self.max_work),
                )
            }
        };
        d.mean = SynthIdScore::new(mean, ones, mean_tail);
        d.weighted = SynthIdScore::new(weighted, statistic, weighted_tail);
        d.is_watermarked = d.weighted.ln_p_value <= self.threshold.ln();
        Ok(d)
    }
}
