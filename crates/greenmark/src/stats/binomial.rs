//! Binomial pmf (Loader's saddle-point form) and the exact upper tail through the
//! continued fraction of the regularized incomplete beta function.

use super::special::{bd0, lentz_step, log1mexp, stirlerr, LN_2PI, TINY};

/// Convergence threshold on each Lentz factor.
const CF_EPS: f64 = 2.0 * f64::EPSILON;
/// Safety cap on continued-fraction steps (about `sqrt(n p q)` are needed; this covers
/// `n p q` up to ~1e13).
const CF_MAX_STEPS: u64 = 20_000_000;

/// A success probability strictly inside `(0, 1)` with its complement and their logs, kept
/// as a unit so that the roles of `p` and `q` can be swapped without losing accuracy.
#[derive(Debug, Clone, Copy)]
pub(super) struct Probs {
    p: f64,
    q: f64,
    ln_p: f64,
    ln_q: f64,
}

impl Probs {
    /// Requires `0 < p < 1`.
    pub(super) fn new(p: f64) -> Self {
        Probs {
            p,
            q: 1.0 - p,
            ln_p: p.ln(),
            ln_q: (-p).ln_1p(),
        }
    }

    /// The same distribution seen from the failures' side (`p <-> q`).
    fn swapped(self) -> Self {
        Probs {
            p: self.q,
            q: self.p,
            ln_p: self.ln_q,
            ln_q: self.ln_p,
        }
    }
}

/// `ln P(X = k)`, `X ~ Bin(n, p)`, for `k <= n` and `0 < p < 1` (Loader 2000):
/// `ln pmf = stirlerr(n) - stirlerr(k) - stirlerr(n-k) - bd0(k, np) - bd0(n-k, nq)
///           - ½ ln(2π k (n-k) / n)`.
pub(super) fn pmf_ln(k: u64, n: u64, pr: &Probs) -> f64 {
    debug_assert!(k <= n);
    if k == 0 {
        return n as f64 * pr.ln_q;
    }
    if k == n {
        return n as f64 * pr.ln_p;
    }
    let nf = n as f64;
    let x = k as f64;
    let y = (n - k) as f64;
    let lc = stirlerr(nf) - stirlerr(x) - stirlerr(y) - bd0(x, nf * pr.p) - bd0(y, nf * pr.q);
    // ln((n - k) / n) without cancellation from either side.
    let ln_y_over_n = if x <= y {
        (-x / nf).ln_1p()
    } else {
        (y / nf).ln()
    };
    lc - 0.5 * (LN_2PI + x.ln() + ln_y_over_n)
}

/// The continued fraction of `I_x(a, b)`:
/// `I_x(a, b) = x^a (1-x)^b / (a B(a, b)) · 1/(1+ d1/(1+ d2/(1+ ...)))` with
/// `d_{2m+1} = -(a+m)(a+b+m) x / ((a+2m)(a+2m+1))`, `d_{2m} = m(b-m) x / ((a+2m-1)(a+2m))`,
/// evaluated by the modified Lentz method. Converges for `x < (a+1)/(a+b+2)`, in about
/// `sqrt(a b / (a + b))` steps at worst (near that boundary).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    let qab = a + b;
    let qap = a + 1.0;
    let qam = a - 1.0;
    let mut c = 1.0;
    // 1 - (a+b) x / (a+1), with the cancellation near the boundary done exactly.
    let mut d = (-qab).mul_add(x, qap) / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    let mut m = 1u64;
    while m <= CF_MAX_STEPS {
        let mf = m as f64;
        let m2 = 2.0 * mf;
        // Even step.
        let aa = mf * (b - mf) * x / ((qam + m2) * (a + m2));
        h *= lentz_step(aa, 1.0, &mut c, &mut d);
        // Odd step.
        let aa = -(a + mf) * (qab + mf) * x / ((a + m2) * (qap + m2));
        let del = lentz_step(aa, 1.0, &mut c, &mut d);
        h *= del;
        if (del - 1.0).abs() < CF_EPS {
            break;
        }
        m += 1;
    }
    h
}

/// `ln P(X >= k)` for `2 <= k <= n - 1` on the convergent side of the continued fraction.
///
/// With `a = k`, `b = n - k + 1`: `k B(k, n-k+1) = 1 / C(n, k)`, so the prefactor
/// `x^a (1-x)^b / (a B(a, b))` is exactly `pmf(k) · q`, and
/// `P(X >= k) = I_p(k, n-k+1) = pmf(k) · q · CF`.
fn upper_cf_ln(k: u64, n: u64, pr: &Probs) -> f64 {
    let h = beta_cf(k as f64, (n - k + 1) as f64, pr.p);
    pmf_ln(k, n, pr) + pr.ln_q + h.ln()
}

/// `ln(Σ_{j>=k} P(X = j))` by summing pmf ratios upward from `pmf(k)`, for `k` at or above
/// `n p + p - 1`, where the terms decrease. Used instead of the continued fraction when
/// `p > ½`: that fraction's leading denominators `1 + d_{2m+1}` then cancel like
/// `(1 - p)`, amplifying rounding by `p / (1 - p)`.
fn upper_sum_ln(k: u64, n: u64, pr: &Probs) -> f64 {
    ratio_sum_ln(pmf_ln(k, n, pr), |j| {
        // pmf(j+1) / pmf(j), for j = k, k+1, ...
        let jj = k + j;
        if jj >= n {
            0.0
        } else {
            (n - jj) as f64 / (jj + 1) as f64 * (pr.p / pr.q)
        }
    })
}

/// `ln(Σ_{j<=m} P(X = j))` by summing pmf ratios downward from `pmf(m)`, for `m` below
/// `(n+1) p`, where the terms decrease. Used instead of the continued fraction in `1 - p`
/// when `p < ½` (same cancellation as in [`upper_sum_ln`]).
fn lower_sum_ln(m: u64, n: u64, pr: &Probs) -> f64 {
    ratio_sum_ln(pmf_ln(m, n, pr), |j| {
        // pmf(i-1) / pmf(i), for i = m, m-1, ...
        match m.checked_sub(j) {
            Some(i) if i > 0 => i as f64 / (n - i + 1) as f64 * (pr.q / pr.p),
            _ => 0.0,
        }
    })
}

/// `ln_first + ln(1 + r_0 + r_0 r_1 + ...)` for decreasing ratios `r_j = ratio(j) < 1`,
/// stopped once the geometric bound on what is left, `t r / (1 - r)`, is below a quarter
/// ulp of the sum.
fn ratio_sum_ln(ln_first: f64, ratio: impl Fn(u64) -> f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut j = 0u64;
    loop {
        let r = ratio(j);
        if r <= 0.0 {
            break;
        }
        term *= r;
        sum += term;
        j += 1;
        if term * r < sum * (1.0 - r) * (0.25 * f64::EPSILON) || j > CF_MAX_STEPS * 16 {
            break;
        }
    }
    ln_first + sum.ln()
}

/// `ln P(X >= k)` for `0 < p < 1`, any `k`, `n`.
pub(super) fn tail_ln(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 0.0;
    }
    if k > n {
        return f64::NEG_INFINITY;
    }
    let pr = Probs::new(p);
    if k == n {
        // P(X = n) = p^n.
        return n as f64 * pr.ln_p;
    }
    if k == 1 {
        // 1 - q^n.
        return (-(n as f64 * pr.ln_q).exp_m1()).ln();
    }
    // The continued fraction for I_p(k, n-k+1) converges when p < (k+1)/(n+3); the one for
    // the complement I_q(n-k+1, k) when q < (n-k+2)/(n+3). Both meet at k = p(n+3) - 1,
    // which is within 2 of the mean, so below it the lower tail P(X <= k-1) is at most
    // about one half and ln(1 - lower) loses nothing. Whichever side is needed, a fraction
    // whose argument would exceed 1/2 is replaced by the direct sum of pmf ratios (same
    // O(sqrt(n p q)) cost, no cancellation).
    let threshold = p * (n as f64 + 3.0) - 1.0;
    if k as f64 >= threshold {
        if p <= 0.5 {
            upper_cf_ln(k, n, &pr)
        } else {
            upper_sum_ln(k, n, &pr)
        }
    } else {
        // P(X <= k-1) = P(n - X >= n-k+1) with n - X ~ Bin(n, q).
        let lower = if p >= 0.5 {
            upper_cf_ln(n - k + 1, n, &pr.swapped())
        } else {
            lower_sum_ln(k - 1, n, &pr)
        };
        log1mexp(lower)
    }
}
