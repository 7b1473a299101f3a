//! The sampling table, the ngram hash and the g-values, bit for bit as transformers computes
//! them (`SynthIDTextWatermarkLogitsProcessor`).

use std::hash::{BuildHasherDefault, Hasher};

use hashbrown::HashMap;

use super::config::SynthIdConfig;
use super::mt19937::Mt19937;
use crate::error::Result;

/// The multiplier of transformers' `accumulate_hash` (an LCG with the newlib/musl constants).
pub const LCG_MULTIPLIER: i64 = 6_364_136_223_846_793_005;

/// One step of transformers' `accumulate_hash`: `(h + x) * 6364136223846793005 + 1` in
/// wrapping `int64` arithmetic, as torch computes it.
///
/// ```
/// use greenmark::synthid::accumulate_hash;
/// assert_eq!(accumulate_hash(1, 0), 6364136223846793006);
/// assert_eq!(accumulate_hash(1, 1), 6364136223846793005i64.wrapping_mul(2).wrapping_add(1));
/// ```
#[inline]
pub fn accumulate_hash(h: i64, x: i64) -> i64 {
    h.wrapping_add(x)
        .wrapping_mul(LCG_MULTIPLIER)
        .wrapping_add(1)
}

/// The hash of a sequence of token ids, starting from `1` as transformers does (an empty
/// sequence hashes to 1).
///
/// ```
/// use greenmark::synthid::{accumulate_hash, hash_tokens};
/// assert_eq!(hash_tokens(&[]), 1);
/// assert_eq!(hash_tokens(&[7, 8]), accumulate_hash(accumulate_hash(1, 7), 8));
/// ```
#[inline]
pub fn hash_tokens(tokens: &[u32]) -> i64 {
    tokens
        .iter()
        .fold(1i64, |h, &t| accumulate_hash(h, i64::from(t)))
}

/// The sampling table, the keys and the hash of one SynthID config: g-values of any ngram,
/// built once (the table costs one MT19937 draw per entry).
///
/// `g(ngram, depth) = table[hash(ngram ++ [key_depth]) mod table_size]`, where `hash` starts at
/// 1 and applies [`accumulate_hash`] per id, and `mod` is Python's (non-negative) modulo of the
/// signed 64-bit hash. The table is `torch.randint(0, 2, (size,), generator=g)` on the CPU with
/// `g = torch.Generator().manual_seed(seed)`: torch draws one 32-bit MT19937 output per entry and
/// keeps it modulo 2, its lowest bit.
///
/// ```
/// use greenmark::synthid::{SynthIdConfig, SynthIdTable};
/// let table = SynthIdTable::new(SynthIdConfig::new(3, vec![10, 20])?)?;
/// let g = table.g_values(&[5, 6, 7, 8]); // 2 ngrams x 2 depths
/// assert_eq!(g.len(), 4);
/// assert!(g.iter().all(|&v| v <= 1));
/// // About half the table is ones; detection uses the exact fraction as the null rate.
/// assert!((table.p0() - 0.5).abs() < 0.01);
/// # Ok::<(), greenmark::Error>(())
/// ```
#[derive(Clone)]
pub struct SynthIdTable {
    config: SynthIdConfig,
    table: Vec<u8>,
    ones: u64,
    /// `size - 1` when the size is a power of two (Python's modulo is then the low bits).
    mask: Option<u64>,
}

impl std::fmt::Debug for SynthIdTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never prints the keys.
        f.debug_struct("SynthIdTable")
            .field("ngram_len", &self.config.ngram_len)
            .field("depth", &self.config.depth())
            .field("sampling_table_size", &self.table.len())
            .field("ones", &self.ones)
            .finish_non_exhaustive()
    }
}

impl SynthIdTable {
    /// The table of `config` (validated).
    pub fn new(config: SynthIdConfig) -> Result<SynthIdTable> {
        config.validate()?;
        let size = config.sampling_table_size;
        let mut mt = Mt19937::new(config.sampling_table_seed);
        let table: Vec<u8> = (0..size).map(|_| (mt.next_u32() % 2) as u8).collect();
        let ones = table.iter().map(|&g| u64::from(g)).sum();
        let mask = size.is_power_of_two().then(|| size as u64 - 1);
        Ok(SynthIdTable {
            config,
            table,
            ones,
            mask,
        })
    }

    /// The same table (same size and seed) with other keys: no second MT19937 pass.
    ///
    /// ```
    /// use greenmark::synthid::{SynthIdConfig, SynthIdTable};
    /// let a = SynthIdTable::new(SynthIdConfig::new(3, vec![1, 2])?)?;
    /// let b = a.with_keys(vec![3, 4, 5])?;
    /// assert_eq!(b.config().keys, [3, 4, 5]);
    /// assert_eq!(a.table(), b.table());
    /// assert!(a.with_keys(vec![]).is_err());
    /// # Ok::<(), greenmark::Error>(())
    /// ```
    pub fn with_keys(&self, keys: Vec<i64>) -> Result<SynthIdTable> {
        let config = SynthIdConfig {
            keys,
            ..self.config.clone()
        };
        config.validate()?;
        Ok(SynthIdTable {
            config,
            ..self.clone()
        })
    }

    /// The config.
    pub fn config(&self) -> &SynthIdConfig {
        &self.config
    }

    /// The sampling table (each entry 0 or 1).
    pub fn table(&self) -> &[u8] {
        &self.table
    }

    /// The number of ones in the table.
    pub fn ones(&self) -> u64 {
        self.ones
    }

    /// The fraction of ones in the table: the probability that a g-value is 1 when the hash
    /// lands on a uniformly random entry (the null rate of detection).
    pub fn p0(&self) -> f64 {
        self.ones as f64 / self.table.len() as f64
    }

    /// The number of depths.
    pub fn depth(&self) -> usize {
        self.config.keys.len()
    }

    /// The table index of a full hash: Python's `h % size` (non-negative).
    #[inline]
    pub fn index(&self, hash: i64) -> usize {
        match self.mask {
            // For a power of two, floor modulo of a two's-complement value is its low bits.
            Some(mask) => (hash as u64 & mask) as usize,
            None => hash.rem_euclid(self.table.len() as i64) as usize,
        }
    }

    /// The table index of the ngram whose hash (context and token, see [`hash_tokens`]) is
    /// `ngram_hash`, at `depth` (`< depth()`).
    #[inline]
    pub fn index_at(&self, ngram_hash: i64, depth: usize) -> usize {
        self.index(accumulate_hash(ngram_hash, self.config.keys[depth]))
    }

    /// The g-value of the ngram with hash `ngram_hash` at `depth` (`< depth()`).
    #[inline]
    pub fn g(&self, ngram_hash: i64, depth: usize) -> u8 {
        self.table[self.index_at(ngram_hash, depth)]
    }

    /// transformers' `compute_g_values` for one sequence: the g-values of every ngram of `ids`
    /// (`ids.len() - ngram_len + 1` of them, none when `ids` is shorter), `depth()` per ngram,
    /// ngram-major.
    pub fn g_values(&self, ids: &[u32]) -> Vec<u8> {
        let n = self.config.ngram_len;
        let depth = self.depth();
        let mut out = Vec::with_capacity(ids.len().saturating_sub(n - 1) * depth);
        for ngram in ids.windows(n) {
            let h = hash_tokens(ngram);
            out.extend((0..depth).map(|d| self.g(h, d)));
        }
        out
    }

    /// transformers' `compute_context_repetition_mask` for one sequence: for each ngram of
    /// `ids`, `true` when its context (the `ngram_len - 1` ids before its last) is not among
    /// the last `context_history_size` contexts (the history starts full of zero hashes).
    pub fn context_repetition_mask(&self, ids: &[u32]) -> Vec<bool> {
        let n = self.config.ngram_len;
        let mut history = ContextHistory::new(self.config.context_history_size);
        ids.windows(n)
            .map(|ngram| {
                let h = hash_tokens(&ngram[..n - 1]);
                let repeated = history.contains(h);
                history.push(h);
                !repeated
            })
            .collect()
    }
}

/// transformers' `compute_eos_token_mask` for one sequence: `true` before the first `eos`,
/// `false` from it on.
///
/// ```
/// assert_eq!(greenmark::synthid::eos_mask(&[1, 2, 0, 3], 0), [true, true, false, false]);
/// ```
pub fn eos_mask(ids: &[u32], eos: u32) -> Vec<bool> {
    let first = ids.iter().position(|&t| t == eos).unwrap_or(ids.len());
    (0..ids.len()).map(|i| i < first).collect()
}

/// A hasher for `i64`/`u64` keys: murmur3's 64-bit finalizer (the LCG hashes' low bits are
/// weak, and hashbrown buckets by the low bits).
#[derive(Default)]
pub(crate) struct Mix(u64);

impl Hasher for Mix {
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x;
    }
}

pub(crate) type MixState = BuildHasherDefault<Mix>;

/// The last `size` context hashes, oldest dropped first, initially `size` zeros (as
/// transformers' `context_history` tensor): membership in O(1) by a count per hash.
#[derive(Debug, Clone)]
pub(crate) struct ContextHistory {
    ring: Vec<i64>,
    next: usize,
    counts: HashMap<i64, u32, MixState>,
}

impl ContextHistory {
    pub(crate) fn new(size: usize) -> ContextHistory {
        let mut counts = HashMap::default();
        if size > 0 {
            counts.insert(0, size as u32);
        }
        ContextHistory {
            ring: vec![0; size],
            next: 0,
            counts,
        }
    }

    pub(crate) fn contains(&self, hash: i64) -> bool {
        self.counts.get(&hash).is_some_and(|&c| c > 0)
    }

    /// Adds `hash` as the newest entry, dropping the oldest.
    pub(crate) fn push(&mut self, hash: i64) {
        if self.ring.is_empty() {
            return;
        }
        let old = std::mem::replace(&mut self.ring[self.next], hash);
        if let Some(c) = self.counts.get_mut(&old) {
            *c -= 1;
            if *c == 0 {
                self.counts.remove(&old);
            }
        }
        *self.counts.entry(hash).or_insert(0) += 1;
        self.next = (self.next + 1) % self.ring.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// transformers' history as it is written: a list, newest first, truncated to `size`.
    #[test]
    fn history_matches_a_plain_fifo() {
        for size in [0usize, 1, 3, 8] {
            let mut fast = ContextHistory::new(size);
            let mut naive = vec![0i64; size];
            let mut x = 12345u64;
            for _ in 0..500 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let h = (x >> 61) as i64; // few distinct values, so repeats happen
                assert_eq!(fast.contains(h), naive.contains(&h));
                fast.push(h);
                naive.insert(0, h);
                naive.truncate(size);
            }
        }
    }

    #[test]
    fn python_modulo_on_negative_hashes() {
        for size in [1usize, 7, 1000, 1 << 16] {
            let mut config = SynthIdConfig::new(2, vec![1]).unwrap();
            config.sampling_table_size = size;
            let t = SynthIdTable::new(config).unwrap();
            for h in [-1i64, i64::MIN, i64::MAX, -123456789, 0, 5] {
                let want = (((h as i128) % size as i128 + size as i128) % size as i128) as usize;
                assert_eq!(t.index(h), want, "h {h} size {size}");
            }
        }
    }
}
