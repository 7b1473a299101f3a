//! The upper tail of a weighted sum of independent binomials with integer weights, exactly by
//! an exponentially tilted lattice convolution, or by the Chernoff bound when the lattice is too
//! large.

use super::binomial_pmf_ln;
use super::binomial_tail_ln;

/// How a tail probability was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum TailMethod {
    /// Exact (up to floating-point rounding, about 1e-12 relative).
    Exact,
    /// The Chernoff bound `min_λ E[e^{λS}] e^{-λs}`: never below the true tail (provably
    /// conservative), but larger than it by a factor that grows slowly with the sample size.
    Chernoff,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// `ln(1 - p + p e^x)` for `x >= 0`, `0 < p < 1`, without overflow.
fn ln_mgf(p: f64, x: f64) -> f64 {
    x + (p + (1.0 - p) * (-x).exp()).ln()
}

/// The tilted success probability `p e^x / (1 - p + p e^x)`.
fn tilted(p: f64, x: f64) -> f64 {
    1.0 / (1.0 + (1.0 - p) / p * (-x).exp())
}

pub(super) fn tail_ln(terms: &[(u64, u64)], p: f64, s: u64, max_work: u64) -> (f64, TailMethod) {
    // One class per distinct positive weight, with the counts of equal weights added (a sum
    // of independent Bin(n_i, p) is Bin(sum n_i, p)).
    let mut classes: Vec<(u64, u64)> = Vec::new();
    for &(w, n) in terms {
        if w == 0 || n == 0 {
            continue;
        }
        match classes.iter_mut().find(|c| c.0 == w) {
            Some(c) => c.1 += n,
            None => classes.push((w, n)),
        }
    }
    if s == 0 {
        return (0.0, TailMethod::Exact);
    }
    let g = classes.iter().fold(0, |g, c| gcd(g, c.0));
    if g == 0 {
        // Nothing can be positive.
        return (f64::NEG_INFINITY, TailMethod::Exact);
    }
    for c in &mut classes {
        c.0 /= g;
    }
    // S is a multiple of g: S >= s iff S/g >= ceil(s/g).
    let s = s.div_ceil(g);
    let max: u128 = classes.iter().map(|&(w, n)| w as u128 * n as u128).sum();
    if s as u128 > max || p == 0.0 {
        return (f64::NEG_INFINITY, TailMethod::Exact);
    }
    let total_n: u64 = classes.iter().map(|c| c.1).sum();
    if p == 1.0 {
        return (0.0, TailMethod::Exact);
    }
    if s as u128 == max {
        // Every trial a success.
        return (total_n as f64 * p.ln(), TailMethod::Exact);
    }
    if let [(w, n)] = classes[..] {
        return (binomial_tail_ln(s.div_ceil(w), n, p), TailMethod::Exact);
    }
    let sf = s as f64;
    let mean_at = |lambda: f64| -> f64 {
        classes
            .iter()
            .map(|&(w, n)| n as f64 * w as f64 * tilted(p, lambda * w as f64))
            .sum()
    };
    // The tilt that centres the sum on s (any lambda >= 0 gives a valid bound and an exact
    // identity below; the root only makes them tight).
    let mut lambda = 0.0;
    if mean_at(0.0) < sf {
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        while mean_at(hi) < sf && hi < 1e300 {
            lo = hi;
            hi *= 2.0;
        }
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if mid <= lo || mid >= hi {
                break;
            }
            if mean_at(mid) < sf {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lambda = lo;
    }
    let ln_chernoff: f64 = -lambda * sf
        + classes
            .iter()
            .map(|&(w, n)| n as f64 * ln_mgf(p, lambda * w as f64))
            .sum::<f64>();
    let ln_chernoff = ln_chernoff.min(0.0);
    // Cost of the lattice convolution, in multiply-adds.
    let mut work: u128 = 0;
    let mut range: u128 = 0;
    for &(w, n) in &classes {
        work += (range + 1) * (n as u128 + 1);
        range += w as u128 * n as u128;
    }
    if work > max_work as u128 {
        return (ln_chernoff, TailMethod::Chernoff);
    }
    // P(S >= s) = M(λ) e^{-λ s} E_λ[e^{-λ (S - s)} 1{S >= s}]: under the tilted law each class
    // is Bin(n, p_λ) and the mass sits near s, so the convolution in linear space loses
    // nothing that matters to underflow.
    let mut dp = vec![1.0f64];
    let mut pmf = Vec::new();
    for &(w, n) in &classes {
        let q = tilted(p, lambda * w as f64);
        pmf.clear();
        pmf.extend((0..=n).map(|k| {
            if q >= 1.0 {
                if k == n {
                    1.0
                } else {
                    0.0
                }
            } else {
                binomial_pmf_ln(k, n, q).exp()
            }
        }));
        let w = w as usize;
        let mut next = vec![0.0f64; dp.len() + w * n as usize];
        for (x, &a) in dp.iter().enumerate() {
            if a == 0.0 {
                continue;
            }
            for (k, &b) in pmf.iter().enumerate() {
                next[x + w * k] += a * b;
            }
        }
        dp = next;
    }
    let sum: f64 = dp[s as usize..]
        .iter()
        .enumerate()
        .map(|(j, &m)| m * (-lambda * j as f64).exp())
        .sum();
    ((ln_chernoff + sum.ln()).min(0.0), TailMethod::Exact)
}

#[cfg(test)]
mod tests {
    use super::super::weighted_binomial_tail_ln;
    use super::*;
    use num_bigint::BigUint;
    use num_traits::{One, ToPrimitive, Zero};

    fn ln_big(x: &BigUint) -> f64 {
        let shift = x.bits().saturating_sub(64);
        let top = (x >> shift).to_u64().unwrap() as f64;
        top.ln() + shift as f64 * std::f64::consts::LN_2
    }

    /// Exact `ln P(sum_i w_i X_i >= s)`, `X_i ~ Bin(n_i, a/b)`, by big-integer polynomials.
    fn oracle(terms: &[(u64, u64)], a: u64, b: u64, s: u64) -> f64 {
        let mut poly = vec![BigUint::one()];
        let mut total_n = 0u32;
        for &(w, n) in terms {
            total_n += n as u32;
            let mut next = vec![BigUint::zero(); poly.len() + (w * n) as usize];
            let mut binom = BigUint::one();
            for k in 0..=n {
                if k > 0 {
                    binom = binom * BigUint::from(n - k + 1) / BigUint::from(k);
                }
                let term = &binom
                    * BigUint::from(a).pow(k as u32)
                    * BigUint::from(b - a).pow((n - k) as u32);
                for (x, c) in poly.iter().enumerate() {
                    if !c.is_zero() {
                        next[x + (w * k) as usize] += c * &term;
                    }
                }
            }
            poly = next;
        }
        let num: BigUint = poly.iter().skip(s as usize).sum();
        if num.is_zero() {
            return f64::NEG_INFINITY;
        }
        ln_big(&num) - ln_big(&BigUint::from(b).pow(total_n))
    }

    #[test]
    fn exact_lattice_matches_big_rational_oracle() {
        // SynthID-like weights (10(D-1) - 9d), odd success rates (a realized table fraction).
        type Case<'a> = (&'a [(u64, u64)], u64, u64);
        let cases: &[Case] = &[
            (&[(30, 20), (21, 20), (12, 20), (3, 20)], 32801, 65536),
            (
                &[
                    (80, 12),
                    (71, 12),
                    (62, 12),
                    (53, 12),
                    (44, 12),
                    (35, 12),
                    (26, 12),
                    (17, 12),
                    (8, 12),
                ],
                507,
                1000,
            ),
            (&[(2, 5), (3, 7)], 1, 3),
            (&[(1, 40), (1, 10), (5, 3)], 9, 16),
        ];
        for &(terms, a, b) in cases {
            let max: u64 = terms.iter().map(|&(w, n)| w * n).sum();
            let p = a as f64 / b as f64;
            for s in (0..=max + 1)
                .step_by(((max / 60) as usize).max(1))
                .chain([max, max - 1])
            {
                let want = oracle(terms, a, b, s);
                let (got, method) = weighted_binomial_tail_ln(terms, p, s, u64::MAX);
                assert_eq!(method, TailMethod::Exact);
                let err = (got - want).abs() / want.abs().max(1.0);
                assert!(
                    got == want || err < 1e-10,
                    "{terms:?} p {a}/{b} s {s}: got {got} want {want}"
                );
                // The Chernoff bound is never below the exact tail.
                let (bound, method) = weighted_binomial_tail_ln(terms, p, s, 0);
                if method == TailMethod::Chernoff {
                    assert!(
                        bound >= want - 1e-9 * want.abs().max(1.0),
                        "s {s}: {bound} < {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn far_tail_is_finite_in_log_space() {
        // 300 ngrams x 4 depths all ones at p ~ 1/2: about 2^-1200, far below f64.
        let terms = [(30, 300), (21, 300), (12, 300), (3, 300)];
        let max = 300 * 66;
        let (ln_p, m) = weighted_binomial_tail_ln(&terms, 0.5, max, u64::MAX);
        assert_eq!(m, TailMethod::Exact);
        assert!((ln_p - 1200.0 * 0.5f64.ln()).abs() < 1e-9);
        let (ln_p2, _) = weighted_binomial_tail_ln(&terms, 0.5, max * 9 / 10, u64::MAX);
        assert!(ln_p2.is_finite() && ln_p2 < -300.0 && ln_p2 > ln_p);
        let (bound, m) = weighted_binomial_tail_ln(&terms, 0.5, max * 9 / 10, 0);
        assert_eq!(m, TailMethod::Chernoff);
        assert!(bound >= ln_p2 && bound - ln_p2 < 10.0);
    }

    #[test]
    fn degenerate_inputs() {
        assert!(weighted_binomial_tail_ln(&[(1, 3)], 1.5, 1, 10).0.is_nan());
        assert_eq!(weighted_binomial_tail_ln(&[], 0.5, 0, 10).0, 0.0);
        assert_eq!(
            weighted_binomial_tail_ln(&[], 0.5, 1, 10).0,
            f64::NEG_INFINITY
        );
        assert_eq!(
            weighted_binomial_tail_ln(&[(2, 3)], 0.5, 7, 10).0,
            f64::NEG_INFINITY
        );
        assert_eq!(
            weighted_binomial_tail_ln(&[(2, 3), (1, 1)], 0.0, 1, 10).0,
            f64::NEG_INFINITY
        );
        assert_eq!(
            weighted_binomial_tail_ln(&[(2, 3), (1, 1)], 1.0, 7, 10).0,
            0.0
        );
    }
}
