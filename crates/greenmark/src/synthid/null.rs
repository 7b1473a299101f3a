//! The exact null of SynthID detection over the keys: for a power-of-two sampling table the
//! key only *shifts* the table.
//!
//! transformers' g-value at depth `d` reads `table[((h + k_d) * M + 1) mod N]`, where `h` is the
//! ngram's hash, `M` = [`LCG_MULTIPLIER`] and the arithmetic wraps in 64 bits. When `N = 2^b`, `N`
//! divides `2^64`, so the index is `(a + s_d) mod N` with the *base index* `a = (h M + 1) mod N`
//! (a function of the ngram alone) and the *key shift* `s_d = (k_d M) mod N` (a function of the
//! key alone; `M` is odd, so a uniformly random key gives a uniformly random shift). For a fixed
//! text written without the keys, the number of ones scored at one depth is therefore
//! `C(s) = sum_i table[(a_i + s) mod N]` for one uniformly random shift `s`: its exact null law is
//! the histogram of `C` over all `N` shifts, not a binomial (the g-values of one text are *not*
//! independent Bernoulli draws: they move together with the shift). Depths have independent
//! keys and the same bases, so the per-depth counts are iid copies of `C`, and any statistic
//! `sum_d c_d C_d` has the exact null of the convolution of the scaled copies.
//!
//! [`ShiftNull`] computes the histogram (`C` for every shift by `n` vectorised passes over the
//! table, or by one FFT correlation checked to round to integers exactly) and the upper tail of
//! `sum_d c_d C_d` in log space by an exponentially tilted lattice convolution (exact, never
//! underflowing: the tilt centres the lattice on the observed value), or, when that lattice is
//! too large, the Chernoff bound `inf_λ e^{-λt} prod_d E[e^{λ c_d C}]` from the exact per-depth
//! moment generating function, which is never below the exact tail.

use crate::error::{Error, Result};
use crate::stats::TailMethod;

use super::table::LCG_MULTIPLIER;

/// The null model behind a [`SynthIdDetection`](super::SynthIdDetection)'s p-values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[non_exhaustive]
pub enum SynthIdNull {
    /// Power-of-two table: the exact law over uniformly random keys of the fixed text's counts
    /// (each key shifts the table; see [`ShiftNull`]).
    ShiftExact,
    /// Other table sizes: each scored g-value an independent Bernoulli(`p0`), the model of a
    /// table read at independent uniformly random places (an idealisation of the hash).
    Binomial,
}

impl SynthIdNull {
    /// `"shift-exact"` or `"binomial"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SynthIdNull::ShiftExact => "shift-exact",
            SynthIdNull::Binomial => "binomial",
        }
    }
}

fn power_of_two_mask(size: usize) -> Result<u64> {
    if size == 0 || !size.is_power_of_two() || size > super::config::MAX_SAMPLING_TABLE_SIZE {
        return Err(Error::scheme(
            "synthid",
            format!(
                "the shift null needs a power-of-two sampling table of at most 2^24 entries, got \
                 {size}"
            ),
        ));
    }
    Ok(size as u64 - 1)
}

/// The base index `a = (h M + 1) mod size` of the ngram with hash `ngram_hash`
/// ([`hash_tokens`](super::hash_tokens) of context and token): its table index at a depth with
/// key `k` is `(a + key_shift(k)) mod size`. Errors unless `size` is a power of two (at most
/// 2^24).
///
/// ```
/// use greenmark::synthid::{base_index, hash_tokens, key_shift, SynthIdConfig, SynthIdTable};
/// let table = SynthIdTable::new(SynthIdConfig::new(3, vec![17, -5])?)?;
/// let h = hash_tokens(&[4, 5, 6]);
/// let (size, a) = (65536, base_index(h, 65536)?);
/// for (d, &k) in [17i64, -5].iter().enumerate() {
///     assert_eq!(table.index_at(h, d), ((a + key_shift(k, size)?) % 65536) as usize);
/// }
/// assert!(base_index(h, 1000).is_err());
/// # Ok::<(), greenmark::Error>(())
/// ```
pub fn base_index(ngram_hash: i64, size: usize) -> Result<u32> {
    let mask = power_of_two_mask(size)?;
    Ok((ngram_hash.wrapping_mul(LCG_MULTIPLIER).wrapping_add(1) as u64 & mask) as u32)
}

/// The shift `s = (k M) mod size` a key applies to every base index. Errors unless `size` is a
/// power of two (at most 2^24).
pub fn key_shift(key: i64, size: usize) -> Result<u32> {
    let mask = power_of_two_mask(size)?;
    Ok((key.wrapping_mul(LCG_MULTIPLIER) as u64 & mask) as u32)
}

/// Bases per pass of `u8` counters before they are flushed into `u32` totals.
const U8_CHUNK: usize = 255;

/// `C(s)` for every shift by `n` passes of `u8` adds over the (rotated) table.
fn counts_direct(table: &[u8], bases: &[u32]) -> Vec<u32> {
    let size = table.len();
    let mut total = vec![0u32; size];
    let mut buf = vec![0u8; size];
    for chunk in bases.chunks(U8_CHUNK) {
        for &a in chunk {
            let a = a as usize;
            let (head, tail) = buf.split_at_mut(size - a);
            for (c, &g) in head.iter_mut().zip(&table[a..]) {
                *c += g;
            }
            for (c, &g) in tail.iter_mut().zip(&table[..a]) {
                *c += g;
            }
        }
        for (t, b) in total.iter_mut().zip(buf.iter_mut()) {
            *t += u32::from(*b);
            *b = 0;
        }
    }
    total
}

/// The forward DFT of a power-of-two table, with its twiddles: reused across texts.
#[derive(Clone)]
pub(crate) struct Spectrum {
    /// `exp(-2πi k / N)` for `k < N / 2`, each from `sin_cos` (no recurrence drift).
    twiddles: Vec<(f64, f64)>,
    /// The DFT of the table.
    table_hat: Vec<(f64, f64)>,
}

impl std::fmt::Debug for Spectrum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spectrum")
            .field("size", &self.table_hat.len())
            .finish_non_exhaustive()
    }
}

/// In-place iterative radix-2 DFT (`X_k = sum_j x_j e^{-2πi jk/N}`), `N` a power of two.
fn fft(x: &mut [(f64, f64)], twiddles: &[(f64, f64)]) {
    let n = x.len();
    if n <= 1 {
        return;
    }
    let bits = n.trailing_zeros();
    for i in 0..n {
        let j = i.reverse_bits() >> (usize::BITS - bits);
        if i < j {
            x.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let step = n / len;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (wr, wi) = twiddles[k * step];
                let (ur, ui) = x[start + k];
                let (vr, vi) = x[start + k + len / 2];
                let (tr, ti) = (vr * wr - vi * wi, vr * wi + vi * wr);
                x[start + k] = (ur + tr, ui + ti);
                x[start + k + len / 2] = (ur - tr, ui - ti);
            }
        }
        len *= 2;
    }
}

impl Spectrum {
    pub(crate) fn new(table: &[u8]) -> Spectrum {
        let n = table.len();
        let twiddles = (0..n / 2)
            .map(|k| {
                let (s, c) = (-2.0 * std::f64::consts::PI * k as f64 / n as f64).sin_cos();
                (c, s)
            })
            .collect::<Vec<_>>();
        let mut table_hat: Vec<(f64, f64)> = table.iter().map(|&g| (f64::from(g), 0.0)).collect();
        fft(&mut table_hat, &twiddles);
        Spectrum {
            twiddles,
            table_hat,
        }
    }

    /// `C(s) = sum_j x_j table[(j + s) mod N]` as `Re DFT(X conj(T)) / N`, rounded; `None`
    /// unless every value lies within 0.25 of an integer in `[0, n]` and they sum exactly to
    /// `n * ones` (then rounding error, bounded far below 0.25 for these sizes, cannot have
    /// moved any value to a wrong integer).
    fn counts(&self, bases: &[u32], ones: u64) -> Option<Vec<u32>> {
        let size = self.table_hat.len();
        let mut x = vec![(0.0f64, 0.0f64); size];
        for &a in bases {
            x[a as usize].0 += 1.0;
        }
        fft(&mut x, &self.twiddles);
        for (v, &(tr, ti)) in x.iter_mut().zip(&self.table_hat) {
            let (xr, xi) = *v;
            // X * conj(T).
            *v = (xr * tr + xi * ti, xi * tr - xr * ti);
        }
        fft(&mut x, &self.twiddles);
        let n = bases.len() as f64;
        let mut sum = 0u64;
        let mut out = Vec::with_capacity(size);
        for &(re, _) in &x {
            let c = re / size as f64;
            let r = c.round();
            if !((c - r).abs() <= 0.25 && (0.0..=n).contains(&r)) {
                return None;
            }
            sum += r as u64;
            out.push(r as u32);
        }
        (sum == bases.len() as u64 * ones).then_some(out)
    }
}

/// `C(s)` for every shift `s < N`: `C(s) = sum_i table[(bases[i] + s) mod N]` (bases may
/// repeat; each counts). Errors unless the table's size is a power of two (at most 2^24), its
/// entries are 0 or 1, and every base is below its size.
///
/// ```
/// use greenmark::synthid::shift_counts;
/// let table = [1u8, 0, 0, 1];
/// assert_eq!(shift_counts(&table, &[0, 1])?, vec![1, 0, 1, 2]);
/// assert!(shift_counts(&table, &[4]).is_err());
/// # Ok::<(), greenmark::Error>(())
/// ```
pub fn shift_counts(table: &[u8], bases: &[u32]) -> Result<Vec<u32>> {
    check_inputs(table, bases)?;
    Ok(counts_auto(table, bases, None))
}

fn check_inputs(table: &[u8], bases: &[u32]) -> Result<()> {
    power_of_two_mask(table.len())?;
    if let Some(i) = table.iter().position(|&g| g > 1) {
        return Err(Error::scheme(
            "synthid",
            format!("table entries must be 0 or 1, entry {i} is {}", table[i]),
        ));
    }
    if let Some(&a) = bases.iter().find(|&&a| a as usize >= table.len()) {
        return Err(Error::scheme(
            "synthid",
            format!("base index {a} is not below the table size {}", table.len()),
        ));
    }
    Ok(())
}

/// Whether `n` direct passes cost more than two FFTs of the table (measured: one pass of
/// `u8` adds over 2^16 entries is about as costly as 1/300 of the FFT route).
fn prefer_fft(size: usize, n: usize) -> bool {
    let log2 = size.trailing_zeros() as usize;
    n > 16 * log2.max(1)
}

fn counts_auto(table: &[u8], bases: &[u32], spectrum: Option<&Spectrum>) -> Vec<u32> {
    if prefer_fft(table.len(), bases.len()) {
        let ones = table.iter().map(|&g| u64::from(g)).sum();
        let counts = match spectrum {
            Some(s) => s.counts(bases, ones),
            None => Spectrum::new(table).counts(bases, ones),
        };
        if let Some(c) = counts {
            return c;
        }
    }
    counts_direct(table, bases)
}

/// The exact law of the ones counted at one depth over the `N` key shifts, for a fixed text
/// (its scored base indices), and the tails of weighted sums of independent copies.
///
/// ```
/// use greenmark::stats::TailMethod;
/// use greenmark::synthid::ShiftNull;
/// // Table 1,0,0,1 and bases {0, 1}: C over the 4 shifts is 1, 0, 1, 2.
/// let null = ShiftNull::new(&[1, 0, 0, 1], &[0, 1])?;
/// assert_eq!((null.min(), null.histogram()), (0, &[1u64, 2, 1][..]));
/// // Two depths: P(C1 + C2 >= 4) = (1/4)^2.
/// let (ln_p, method) = null.tail_ln(&[1, 1], 4, u64::MAX)?;
/// assert!((ln_p - (1.0f64 / 16.0).ln()).abs() < 1e-12 && method == TailMethod::Exact);
/// # Ok::<(), greenmark::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ShiftNull {
    size: u64,
    n: u64,
    min: u64,
    /// `hist[j]`: the number of shifts with `C = min + j`.
    hist: Vec<u64>,
}

impl ShiftNull {
    /// The null of the text whose scored ngrams have base indices `bases` (see
    /// [`base_index`]), for `table`. Errors as [`shift_counts`].
    pub fn new(table: &[u8], bases: &[u32]) -> Result<ShiftNull> {
        check_inputs(table, bases)?;
        Ok(ShiftNull::from_counts(
            &counts_auto(table, bases, None),
            bases.len() as u64,
        ))
    }

    pub(crate) fn with_spectrum(table: &[u8], bases: &[u32], spectrum: &Spectrum) -> ShiftNull {
        ShiftNull::from_counts(
            &counts_auto(table, bases, Some(spectrum)),
            bases.len() as u64,
        )
    }

    fn from_counts(counts: &[u32], n: u64) -> ShiftNull {
        let min = counts.iter().copied().min().unwrap_or(0);
        let max = counts.iter().copied().max().unwrap_or(0);
        let mut hist = vec![0u64; (max - min) as usize + 1];
        for &c in counts {
            hist[(c - min) as usize] += 1;
        }
        ShiftNull {
            size: counts.len() as u64,
            n,
            min: u64::from(min),
            hist,
        }
    }

    /// The number of shifts (the table size).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The number of bases (scored ngrams).
    pub fn n(&self) -> u64 {
        self.n
    }

    /// The smallest count over the shifts.
    pub fn min(&self) -> u64 {
        self.min
    }

    /// The largest count over the shifts.
    pub fn max(&self) -> u64 {
        self.min + self.hist.len() as u64 - 1
    }

    /// `histogram()[j]`: the number of shifts whose count is `min() + j`.
    pub fn histogram(&self) -> &[u64] {
        &self.hist
    }

    /// The mean count over the shifts (`n * ones / N`).
    pub fn mean(&self) -> f64 {
        let s: f64 = self
            .hist
            .iter()
            .enumerate()
            .map(|(j, &h)| (self.min + j as u64) as f64 * h as f64)
            .sum();
        s / self.size as f64
    }

    fn pmf_ln(&self) -> Vec<f64> {
        let ln_n = (self.size as f64).ln();
        self.hist
            .iter()
            .map(|&h| {
                if h == 0 {
                    f64::NEG_INFINITY
                } else {
                    (h as f64).ln() - ln_n
                }
            })
            .collect()
    }

    /// `ln P(sum_d weights[d] * C_d >= t)` for independent copies `C_d` of the count (one per
    /// depth, independent keys): exact by a tilted lattice convolution when it costs at most
    /// `max_work` multiply-adds, otherwise the Chernoff bound (never below the exact value).
    /// Errors when the weights' largest possible sum overflows `u64`.
    pub fn tail_ln(&self, weights: &[u64], t: u64, max_work: u64) -> Result<(f64, TailMethod)> {
        let Some(p) = self.prepare(weights, t)? else {
            return Ok((0.0, TailMethod::Exact));
        };
        match p {
            Prepared::Done(ln) => Ok((ln, TailMethod::Exact)),
            Prepared::Tilt(tilt) => {
                if tilt.work() <= max_work {
                    Ok((tilt.exact_ln(), TailMethod::Exact))
                } else {
                    Ok((tilt.chernoff_ln(), TailMethod::Chernoff))
                }
            }
        }
    }

    /// The Chernoff bound on `ln P(sum_d weights[d] * C_d >= t)` at the tilt that minimises it
    /// (exact in the trivial cases: `t` at or below the smallest or above the largest value).
    pub fn chernoff_ln(&self, weights: &[u64], t: u64) -> Result<f64> {
        Ok(match self.prepare(weights, t)? {
            None => 0.0,
            Some(Prepared::Done(ln)) => ln,
            Some(Prepared::Tilt(tilt)) => tilt.chernoff_ln(),
        })
    }

    /// Reduces to `sum_d c_d J_d >= t` with `J_d = C_d - min` on `0..w`, the weights divided by
    /// their gcd; `None` when the tail is certainly 1.
    fn prepare(&self, weights: &[u64], t: u64) -> Result<Option<Prepared>> {
        let overflow = || {
            Error::scheme(
                "synthid",
                "the weighted statistic's range overflows u64".to_string(),
            )
        };
        let mut sum_c = 0u64;
        for &c in weights {
            sum_c = sum_c.checked_add(c).ok_or_else(overflow)?;
        }
        let base = sum_c.checked_mul(self.min).ok_or_else(overflow)?;
        if t <= base {
            return Ok(None);
        }
        let t = t - base;
        let w = self.hist.len() as u64;
        let cs: Vec<u64> = weights.iter().copied().filter(|&c| c > 0).collect();
        let g = cs.iter().fold(0, |g, &c| gcd(g, c));
        let top = sum_c.checked_mul(w - 1).ok_or_else(overflow)?;
        if g == 0 || t > top {
            return Ok(Some(Prepared::Done(f64::NEG_INFINITY)));
        }
        let cs: Vec<u64> = cs.iter().map(|c| c / g).collect();
        let t = t.div_ceil(g);
        let top = top / g;
        let lp = self.pmf_ln();
        if t == top {
            // Only every depth at its largest count reaches it.
            return Ok(Some(Prepared::Done(cs.len() as f64 * lp[w as usize - 1])));
        }
        Ok(Some(Prepared::Tilt(Tilt::new(lp, cs, t))))
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

enum Prepared {
    Done(f64),
    Tilt(Tilt),
}

/// `ln M(θ)`, the tilted mean and variance of `J` with log-pmf `lp`, at `θ`.
fn tilt_moments(lp: &[f64], theta: f64) -> (f64, f64, f64) {
    let top = lp
        .iter()
        .enumerate()
        .map(|(j, &l)| l + theta * j as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    let (mut z, mut m1, mut m2) = (0.0, 0.0, 0.0);
    for (j, &l) in lp.iter().enumerate() {
        let e = (l + theta * j as f64 - top).exp();
        let x = j as f64;
        z += e;
        m1 += e * x;
        m2 += e * x * x;
    }
    let mean = m1 / z;
    (top + z.ln(), mean, (m2 / z - mean * mean).max(0.0))
}

/// `sum_d c_d J_d >= t` with `0 < t < sum_d c_d (w - 1)` and the tilt `λ` at which the tilted
/// mean of the sum is `t` (0 when the untilted mean already reaches it).
struct Tilt {
    lp: Vec<f64>,
    cs: Vec<u64>,
    t: u64,
    lambda: f64,
}

impl Tilt {
    fn new(lp: Vec<f64>, cs: Vec<u64>, t: u64) -> Tilt {
        let target = t as f64;
        // f(λ) = sum_d c_d mean(λ c_d) - t is increasing; f' = sum_d c_d^2 var(λ c_d).
        let f = |lambda: f64| -> (f64, f64) {
            let (mut m, mut v) = (0.0, 0.0);
            for &c in &cs {
                let c = c as f64;
                let (_, mean, var) = tilt_moments(&lp, lambda * c);
                m += c * mean;
                v += c * c * var;
            }
            (m - target, v)
        };
        let mut lambda = 0.0;
        let (f0, _) = f(0.0);
        if f0 < 0.0 {
            // Bracket [lo, hi], then Newton steps kept inside it, else bisection.
            let c_max = cs.iter().copied().max().unwrap_or(1) as f64;
            let (mut lo, mut hi) = (0.0f64, 1.0 / c_max);
            for _ in 0..200 {
                if f(hi).0 >= 0.0 {
                    break;
                }
                lo = hi;
                hi *= 2.0;
            }
            lambda = 0.5 * (lo + hi);
            for _ in 0..100 {
                let (val, der) = f(lambda);
                if val == 0.0 {
                    break;
                }
                if val < 0.0 {
                    lo = lambda;
                } else {
                    hi = lambda;
                }
                let newton = lambda - val / der;
                let next = if der > 0.0 && newton > lo && newton < hi {
                    newton
                } else {
                    0.5 * (lo + hi)
                };
                if (next - lambda).abs() <= 1e-13 * lambda.abs().max(1e-300) || hi - lo <= 0.0 {
                    lambda = next;
                    break;
                }
                lambda = next;
            }
        }
        Tilt { lp, cs, t, lambda }
    }

    /// Multiply-adds of the lattice convolution.
    fn work(&self) -> u64 {
        let w = self.lp.len() as u64;
        let mut len = 1u64;
        let mut work = 0u64;
        for &c in &self.cs {
            work = work.saturating_add(len.saturating_mul(w));
            len = len.saturating_add(c.saturating_mul(w - 1));
        }
        work
    }

    /// `sum_d ln M(λ c_d) - λ t`.
    fn chernoff_ln(&self) -> f64 {
        let s: f64 = self
            .cs
            .iter()
            .map(|&c| tilt_moments(&self.lp, self.lambda * c as f64).0)
            .sum();
        (s - self.lambda * self.t as f64).min(0.0)
    }

    /// `P(S >= t) = prod_d M_d e^{-λt} sum_{u >= t} q(u) e^{-λ(u - t)}` with `q` the law of
    /// `S` under the tilted per-depth laws `p(j) e^{λ c_d j} / M_d`: every term is at most 1
    /// and those near `t` are not small, so nothing that matters underflows.
    fn exact_ln(&self) -> f64 {
        let w = self.lp.len();
        let mut ln_m_total = 0.0;
        let mut cur = vec![1.0f64];
        for &c in &self.cs {
            let theta = self.lambda * c as f64;
            let (ln_m, _, _) = tilt_moments(&self.lp, theta);
            ln_m_total += ln_m;
            let q: Vec<f64> = self
                .lp
                .iter()
                .enumerate()
                .map(|(j, &l)| (l + theta * j as f64 - ln_m).exp())
                .collect();
            let c = c as usize;
            let mut next = vec![0.0f64; cur.len() + c * (w - 1)];
            for (u, &x) in cur.iter().enumerate() {
                if x == 0.0 {
                    continue;
                }
                for (j, &qj) in q.iter().enumerate() {
                    next[u + c * j] += x * qj;
                }
            }
            cur = next;
        }
        let t = self.t as usize;
        let s: f64 = cur[t..]
            .iter()
            .enumerate()
            .map(|(i, &x)| x * (-self.lambda * i as f64).exp())
            .sum();
        (ln_m_total - self.lambda * self.t as f64 + s.ln()).min(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_table(size: usize, rng: &mut ChaCha8Rng) -> Vec<u8> {
        (0..size).map(|_| rng.gen_range(0..2u8)).collect()
    }

    fn naive_counts(table: &[u8], bases: &[u32]) -> Vec<u32> {
        let n = table.len();
        (0..n)
            .map(|s| {
                bases
                    .iter()
                    .map(|&a| u32::from(table[(a as usize + s) % n]))
                    .sum()
            })
            .collect()
    }

    #[test]
    fn counts_match_the_naive_loop_by_both_routes() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for &(size, n) in &[
            (1usize, 3usize),
            (2, 5),
            (64, 0),
            (64, 1),
            (64, 700),
            (1 << 10, 300),
            (1 << 12, 1000),
            (1 << 16, 40),
        ] {
            let table = random_table(size, &mut rng);
            let bases: Vec<u32> = (0..n).map(|_| rng.gen_range(0..size as u32)).collect();
            let naive = naive_counts(&table, &bases);
            assert_eq!(counts_direct(&table, &bases), naive, "direct {size} {n}");
            let ones = table.iter().map(|&g| u64::from(g)).sum();
            assert_eq!(
                Spectrum::new(&table).counts(&bases, ones),
                Some(naive.clone()),
                "fft {size} {n}"
            );
            assert_eq!(shift_counts(&table, &bases).unwrap(), naive);
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(shift_counts(&[0, 1, 1], &[0]).is_err());
        assert!(shift_counts(&[], &[]).is_err());
        assert!(shift_counts(&[0, 2], &[0]).is_err());
        assert!(shift_counts(&[0, 1], &[2]).is_err());
        let null = ShiftNull::new(&[0, 1, 1, 0], &[0, 1, 2]).unwrap();
        assert!(null.tail_ln(&[u64::MAX, 2], 5, 100).is_err());
        assert!(key_shift(3, 100).is_err());
    }

    /// `ln P(sum_d c_d C(s_d) >= t)` by enumerating every shift tuple.
    fn brute_tail(counts: &[u32], weights: &[u64], t: u64) -> f64 {
        let n = counts.len();
        let d = weights.len();
        let total = (n as u64).pow(d as u32);
        let mut hits = 0u64;
        let mut idx = vec![0usize; d];
        for _ in 0..total {
            let s: u64 = idx
                .iter()
                .zip(weights)
                .map(|(&i, &c)| c * u64::from(counts[i]))
                .sum();
            hits += u64::from(s >= t);
            for x in idx.iter_mut() {
                *x += 1;
                if *x < n {
                    break;
                }
                *x = 0;
            }
        }
        (hits as f64 / total as f64).ln()
    }

    #[test]
    fn tails_match_brute_force_and_chernoff_bounds_them() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for trial in 0..60 {
            let size = [16usize, 32, 64][trial % 3];
            let table = random_table(size, &mut rng);
            let n = rng.gen_range(1..12);
            let bases: Vec<u32> = (0..n).map(|_| rng.gen_range(0..size as u32)).collect();
            let counts = naive_counts(&table, &bases);
            let null = ShiftNull::new(&table, &bases).unwrap();
            let depth = rng.gen_range(1..=3);
            let weights: Vec<u64> = match trial % 2 {
                0 => vec![1; depth],
                _ => (0..depth as u64)
                    .map(|i| 10 * (depth as u64 - 1) - 9 * i)
                    .map(|c| c.max(1))
                    .collect(),
            };
            let top: u64 = weights.iter().sum::<u64>() * n as u64;
            for t in 0..=top + 1 {
                let exact = brute_tail(&counts, &weights, t);
                let (ln, m) = null.tail_ln(&weights, t, u64::MAX).unwrap();
                assert_eq!(m, TailMethod::Exact);
                assert!(
                    (ln - exact).abs() <= 1e-9 * exact.abs().max(1.0)
                        || (ln == exact && exact == f64::NEG_INFINITY),
                    "trial {trial} t {t}: {ln} vs {exact}"
                );
                let bound = null.chernoff_ln(&weights, t).unwrap();
                assert!(bound >= exact - 1e-12, "chernoff {bound} < {exact}");
                let (fallback, m) = null.tail_ln(&weights, t, 0).unwrap();
                assert!(fallback >= exact - 1e-12);
                assert!(m == TailMethod::Chernoff || fallback == ln);
            }
        }
    }

    /// Deep statistics far in the tail (p far below 1e-308) stay finite, agree with an
    /// independent log-space convolution, and sit below their Chernoff bound.
    #[test]
    fn deep_tails_do_not_underflow() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let table = random_table(1 << 16, &mut rng);
        let bases: Vec<u32> = (0..200).map(|_| rng.gen_range(0..1 << 16)).collect();
        let null = ShiftNull::new(&table, &bases).unwrap();
        let lp = null.pmf_ln();
        let depth = 80usize;
        // Independent: the convolution in log space, term by term.
        let mut cur = vec![0.0f64];
        for _ in 0..depth {
            let mut next = vec![f64::NEG_INFINITY; cur.len() + lp.len() - 1];
            for (u, &x) in cur.iter().enumerate() {
                for (j, &l) in lp.iter().enumerate() {
                    let v = x + l;
                    let a = next[u + j];
                    let (hi, lo) = if a >= v { (a, v) } else { (v, a) };
                    next[u + j] = if hi == f64::NEG_INFINITY {
                        hi
                    } else {
                        hi + (lo - hi).exp().ln_1p()
                    };
                }
            }
            cur = next;
        }
        let weights = vec![1u64; depth];
        let base = depth as u64 * null.min();
        for off in [
            cur.len() as u64 / 2,
            cur.len() as u64 * 3 / 4,
            cur.len() as u64 - 2,
        ] {
            let t = base + off;
            let tail = cur[off as usize..].iter().fold(f64::NEG_INFINITY, |a, &v| {
                let (hi, lo) = if a >= v { (a, v) } else { (v, a) };
                if hi == f64::NEG_INFINITY {
                    hi
                } else {
                    hi + (lo - hi).exp().ln_1p()
                }
            });
            let (ln, m) = null.tail_ln(&weights, t, u64::MAX).unwrap();
            assert_eq!(m, TailMethod::Exact);
            assert!((ln - tail).abs() <= 1e-9 * tail.abs(), "{ln} vs {tail}");
            assert!(null.chernoff_ln(&weights, t).unwrap() >= ln);
        }
        // The deepest one is far below f64's range.
        let t = base + cur.len() as u64 - 2;
        assert!(null.tail_ln(&weights, t, u64::MAX).unwrap().0 < -800.0);
    }
}
