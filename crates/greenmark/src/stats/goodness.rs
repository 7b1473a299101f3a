//! Goodness-of-fit tails for a set of p-values: the one-sided Kolmogorov–Smirnov statistic
//! `D+` against Uniform(0, 1) and the Poisson-binomial upper tail. Used by key screening
//! ([`crate::screen`]) to ask whether a key's p-values on human text look like valid ones.

use super::special::ln_gamma;

/// `ln(e^a + e^b)` without overflow; `-∞` is the identity.
fn ln_add(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if hi == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

fn ln_choose(m: u64, j: u64) -> f64 {
    let (m, j) = (m as f64, j as f64);
    ln_gamma(m + 1.0) - ln_gamma(j + 1.0) - ln_gamma(m - j + 1.0)
}

/// See [`super::ks_plus_statistic`].
pub(super) fn ks_plus_statistic(p_values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = p_values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let m = sorted.len() as f64;
    // F_m jumps to (i + 1) / m at the i-th smallest value; the supremum of F_m(t) - t is
    // approached from the right of a jump, where t equals the value.
    sorted
        .iter()
        .enumerate()
        .map(|(i, &p)| (i + 1) as f64 / m - p)
        .fold(0.0, f64::max)
}

/// See [`super::ks_plus_tail_ln`].
pub(super) fn ks_plus_tail_ln(d: f64, m: u64) -> f64 {
    if d.is_nan() || m == 0 {
        return f64::NAN;
    }
    if d <= 0.0 {
        return 0.0;
    }
    if d > 1.0 {
        return f64::NEG_INFINITY;
    }
    // Birnbaum & Tingey (1951): P(D+ >= d) = d Σ_{j=0}^{⌊m(1-d)⌋} C(m, j)
    // (1 - d - j/m)^(m-j) (d + j/m)^(j-1). Every term is positive: a log-sum, no
    // cancellation.
    let mf = m as f64;
    let last = (mf * (1.0 - d)).floor().min(mf) as u64;
    let mut total = f64::NEG_INFINITY;
    for j in 0..=last {
        let jf = j as f64;
        let a = 1.0 - d - jf / mf;
        if a <= 0.0 {
            // The j = m(1 - d) term is 0^(m - j) = 0 (m - j > 0 since d > 0).
            continue;
        }
        let term = ln_choose(m, j) + (mf - jf) * a.ln() + (jf - 1.0) * (d + jf / mf).ln();
        total = ln_add(total, term);
    }
    (d.ln() + total).min(0.0)
}

/// See [`super::poisson_binomial_tail_ln`].
pub(super) fn poisson_binomial_tail_ln(probabilities: &[f64], k: u64) -> f64 {
    if probabilities.iter().any(|p| !(0.0..=1.0).contains(p)) {
        return f64::NAN;
    }
    if k == 0 {
        return 0.0;
    }
    if k > probabilities.len() as u64 {
        return f64::NEG_INFINITY;
    }
    let k = k as usize;
    // ln P(S_i = j) for j < k, and ln P(S_i >= k) absorbed; all in logs so that a tail far
    // below f64's range stays finite.
    let mut below = vec![f64::NEG_INFINITY; k];
    below[0] = 0.0;
    let mut tail = f64::NEG_INFINITY;
    for &p in probabilities {
        let (ln_p, ln_q) = (p.ln(), (-p).ln_1p());
        tail = ln_add(tail, below[k - 1] + ln_p);
        for j in (1..k).rev() {
            below[j] = ln_add(below[j] + ln_q, below[j - 1] + ln_p);
        }
        below[0] += ln_q;
    }
    tail.min(0.0)
}
