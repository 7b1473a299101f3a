//! Whether two groups of per-text values differ: the gap in perplexity between watermarked and
//! plain texts, with the uncertainty a few dozen texts leave.
//!
//! A median perplexity of 16 texts per side moves by several points from one draw of texts to
//! the next; [`mean_gap`] says whether a gap is more than that. The test statistic is the
//! difference of the two means (of per-text log-perplexities, in nats: each text weighs the
//! same, and the log makes the scale additive). Its two-sided **permutation p-value** is exact
//! when the number of ways to split the pooled values is at most the resample budget (every
//! split is enumerated), and otherwise the Monte Carlo estimate `(1 + hits) / (1 + B)`, which
//! is itself a valid p-value (`P(p <= α) <= α` under exchangeability, for any `B`): never
//! anti-conservative. The **95% interval** is the percentile bootstrap (each group resampled
//! with replacement): approximate, as bootstrap intervals are, and reported as such.

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The gap between two groups' means, with its permutation p-value and bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MeanGap {
    /// `mean(a) - mean(b)`.
    pub diff: f64,
    /// Two-sided permutation p-value of `diff` (exact when `exact`, else a valid Monte Carlo
    /// p-value).
    pub p_value: f64,
    /// Whether every split of the pooled values was enumerated.
    pub exact: bool,
    /// Percentile-bootstrap 95% interval of `diff` (approximate).
    pub ci95: (f64, f64),
    /// Permutations (or splits) and bootstrap resamples drawn.
    pub resamples: usize,
}

/// Relative slack when comparing a permuted statistic with the observed one, so that a split
/// equal to the observed one up to rounding counts as a hit (conservative).
const TIE_SLACK: f64 = 1e-12;

/// The gap `mean(a) - mean(b)` with a two-sided permutation p-value and a bootstrap 95%
/// interval, from `resamples` draws of a ChaCha8 stream seeded by `seed`. `None` when a group
/// is empty, a value is not finite, or `resamples` is 0.
///
/// ```
/// use greenmark::eval::gap::mean_gap;
/// let plain = [2.9, 3.1, 3.0, 3.2, 2.8, 3.0];
/// let watermarked = [3.4, 3.6, 3.5, 3.3, 3.7, 3.5];
/// let gap = mean_gap(&watermarked, &plain, 10_000, 0).unwrap();
/// assert!((gap.diff - 0.5).abs() < 1e-12);
/// // 924 splits of 12 values into 6 + 6: enumerated, so the p-value is exact (2 of 924).
/// assert!(gap.exact && (gap.p_value - 2.0 / 924.0).abs() < 1e-15);
/// assert!(gap.ci95.0 > 0.0 && gap.ci95.1 < 1.0);
/// ```
pub fn mean_gap(a: &[f64], b: &[f64], resamples: usize, seed: u64) -> Option<MeanGap> {
    if a.is_empty() || b.is_empty() || resamples == 0 {
        return None;
    }
    if a.iter().chain(b).any(|v| !v.is_finite()) {
        return None;
    }
    let diff = mean(a) - mean(b);
    let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let total: f64 = pooled.iter().sum();
    let (na, nb) = (a.len(), b.len());
    // The statistic of a split from the sum of its first group.
    let stat = |sum_a: f64| sum_a / na as f64 - (total - sum_a) / nb as f64;
    let cut = diff.abs() * (1.0 - TIE_SLACK);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    let (p_value, exact) = match splits(na + nb, na) {
        Some(n) if n <= resamples as u128 => {
            let mut hits = 0u128;
            for_each_subset_sum(&pooled, na, &mut |sum_a| {
                if stat(sum_a).abs() >= cut {
                    hits += 1;
                }
            });
            (hits as f64 / n as f64, true)
        }
        _ => {
            let mut order: Vec<usize> = (0..pooled.len()).collect();
            let mut hits = 0usize;
            for _ in 0..resamples {
                // Partial Fisher–Yates: the first `na` places are a uniform random subset.
                for i in 0..na {
                    let j = rng.gen_range(i..order.len());
                    order.swap(i, j);
                }
                let sum_a: f64 = order[..na].iter().map(|&i| pooled[i]).sum();
                if stat(sum_a).abs() >= cut {
                    hits += 1;
                }
            }
            ((1 + hits) as f64 / (1 + resamples) as f64, false)
        }
    };

    let mut boots: Vec<f64> = (0..resamples)
        .map(|_| resampled_mean(a, &mut rng) - resampled_mean(b, &mut rng))
        .collect();
    boots.sort_by(f64::total_cmp);
    let at = |q: f64| boots[((q * (boots.len() - 1) as f64).round() as usize).min(boots.len() - 1)];
    Some(MeanGap {
        diff,
        p_value,
        exact,
        ci95: (at(0.025), at(0.975)),
        resamples,
    })
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn resampled_mean(values: &[f64], rng: &mut ChaCha8Rng) -> f64 {
    let n = values.len();
    (0..n).map(|_| values[rng.gen_range(0..n)]).sum::<f64>() / n as f64
}

/// `C(n, k)`, or `None` past `u128`.
fn splits(n: usize, k: usize) -> Option<u128> {
    let k = k.min(n - k);
    let mut c: u128 = 1;
    for i in 0..k {
        c = c.checked_mul((n - i) as u128)? / (i as u128 + 1);
    }
    Some(c)
}

/// Calls `f` with the sum of every `k`-subset of `values` (in lexicographic order of indices).
fn for_each_subset_sum(values: &[f64], k: usize, f: &mut impl FnMut(f64)) {
    fn go(values: &[f64], start: usize, k: usize, sum: f64, f: &mut impl FnMut(f64)) {
        if k == 0 {
            f(sum);
            return;
        }
        for i in start..=values.len() - k {
            go(values, i + 1, k - 1, sum + values[i], f);
        }
    }
    go(values, 0, k, 0.0, f);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Monte Carlo p-value agrees with the exact enumeration (an independent count over
    /// all 3,432 splits) within its binomial error, and the exact path is taken when allowed.
    #[test]
    fn monte_carlo_matches_the_enumeration() {
        let a = [3.1, 2.7, 3.9, 3.3, 2.9, 3.6, 3.0];
        let b = [2.8, 3.0, 2.6, 3.2, 2.5, 3.1, 2.9];
        let exact = mean_gap(&a, &b, 3432, 1).unwrap();
        assert!(exact.exact);
        // Independent count: bitmasks of 14 choose 7.
        let pooled: Vec<f64> = a.iter().chain(&b).copied().collect();
        let obs = (mean(&a) - mean(&b)).abs();
        let (mut hits, mut n) = (0u32, 0u32);
        for mask in 0u32..(1 << 14) {
            if mask.count_ones() != 7 {
                continue;
            }
            n += 1;
            let (mut sa, mut sb) = (0.0, 0.0);
            for (i, v) in pooled.iter().enumerate() {
                if mask >> i & 1 == 1 {
                    sa += v;
                } else {
                    sb += v;
                }
            }
            if ((sa - sb) / 7.0f64).abs() >= obs * (1.0 - 1e-12) {
                hits += 1;
            }
        }
        assert_eq!(n, 3432);
        assert_eq!(exact.p_value, f64::from(hits) / 3432.0);
        assert!(
            exact.p_value > 0.001 && exact.p_value < 0.2,
            "{}",
            exact.p_value
        );
        // Fewer resamples than splits: the Monte Carlo path.
        let mc = mean_gap(&a, &b, 3000, 2).unwrap();
        assert!(!mc.exact);
        let se = (exact.p_value * (1.0 - exact.p_value) / 3000.0).sqrt();
        assert!(
            (mc.p_value - exact.p_value).abs() < 5.0 * se,
            "{mc:?} {exact:?}"
        );
    }

    /// Under the null (both groups from one distribution), P(p <= 0.05) <= 0.05: the Monte
    /// Carlo p-value is valid, not merely consistent.
    #[test]
    fn null_rejection_rate_is_at_most_the_level() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let trials = 2000;
        let mut rejections = 0;
        for t in 0..trials {
            let a: Vec<f64> = (0..16).map(|_| rng.gen::<f64>().ln()).collect();
            let b: Vec<f64> = (0..16).map(|_| rng.gen::<f64>().ln()).collect();
            if mean_gap(&a, &b, 199, t).unwrap().p_value <= 0.05 {
                rejections += 1;
            }
        }
        // Binomial(2000, 0.05): mean 100, sd 9.7; 135 is 3.6 sd above.
        assert!(rejections <= 135, "{rejections} of {trials}");
        assert!(
            rejections >= 60,
            "{rejections} of {trials}: the test has lost its power"
        );
    }

    #[test]
    fn a_shift_is_found_and_covered() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let b: Vec<f64> = (0..32).map(|_| rng.gen::<f64>()).collect();
        let a: Vec<f64> = b
            .iter()
            .map(|v| v + 0.3 + 0.05 * rng.gen::<f64>())
            .collect();
        let gap = mean_gap(&a, &b, 20_000, 3).unwrap();
        assert!(gap.p_value < 1e-3, "{gap:?}");
        assert!(gap.ci95.0 < gap.diff && gap.diff < gap.ci95.1);
        assert!(gap.ci95.0 > 0.1 && gap.ci95.1 < 0.55, "{gap:?}");
    }

    #[test]
    fn bad_input_is_none() {
        assert!(mean_gap(&[], &[1.0], 10, 0).is_none());
        assert!(mean_gap(&[1.0], &[f64::NAN], 10, 0).is_none());
        assert!(mean_gap(&[1.0], &[2.0], 0, 0).is_none());
        assert_eq!(splits(32, 16), Some(601_080_390));
        assert_eq!(splits(4, 0), Some(1));
    }
}
