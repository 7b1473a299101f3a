//! Regularized upper incomplete gamma `Q(a, x)` in log space.

use super::special::{bd0, lentz_step, lgamma1p, ln_gamma, log1mexp, stirlerr, LN_2PI, TINY};

/// Convergence threshold on each Lentz factor / series term.
const EPS: f64 = 2.0 * f64::EPSILON;
/// Safety cap on series / continued-fraction steps (about `9 sqrt(a)` are needed at most).
const MAX_STEPS: u32 = 100_000_000;

/// `ln(x^a e^{-x} / Γ(a + 1))` for `a >= 1` (Loader's Poisson-pmf form, no cancellation
/// for large `a`): `-stirlerr(a) - bd0(a, x) - ½ ln(2π a)`.
fn ln_poisson_like(a: f64, x: f64) -> f64 {
    -stirlerr(a) - bd0(a, x) - 0.5 * (LN_2PI + a.ln())
}

/// `S = Σ_{j>=0} x^j / ((a+1)(a+2)...(a+j))`, so that `P(a, x) = x^a e^{-x} / Γ(a+1) · S`.
fn lower_series(a: f64, x: f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut ap = a;
    for _ in 0..MAX_STEPS {
        ap += 1.0;
        term *= x / ap;
        sum += term;
        if term < sum * EPS * 0.25 {
            break;
        }
    }
    sum
}

/// Legendre's continued fraction
/// `Q(a, x) = x^a e^{-x} / Γ(a) · 1/(x+1-a- 1(1-a)/(x+3-a- 2(2-a)/(x+5-a- ...)))`,
/// by the modified Lentz method; returns the fraction. Used for `x >= a + 1` (and `x >= 1`
/// when `a < 1`).
pub(super) fn upper_cf(a: f64, x: f64) -> f64 {
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / TINY;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..MAX_STEPS {
        let fi = f64::from(i);
        let an = -fi * (fi - a);
        b += 2.0;
        let del = lentz_step(an, b, &mut c, &mut d);
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// `Q(a, x)` for `0 < a < 1`, `0 < x < 1`, written so that nothing cancels as `a -> 0`:
/// with `u = a ln x - ln Γ(1 + a)`,
/// `Q = -expm1(u) - e^u · a · Σ_{j>=1} (-x)^j / (j! (a + j))`.
fn upper_small_a(a: f64, x: f64) -> f64 {
    let u = a * x.ln() - lgamma1p(a);
    let mut t = 1.0;
    let mut sum = 0.0;
    for j in 1..200u32 {
        let fj = f64::from(j);
        t *= -x / fj;
        let term = t / (a + fj);
        sum += term;
        if term.abs() <= sum.abs() * EPS * 0.25 {
            break;
        }
    }
    -u.exp_m1() - u.exp() * a * sum
}

/// `ln Q(a, x)`; the caller has checked `a > 0` finite, `x > 0`.
pub(super) fn upper_tail_ln(a: f64, x: f64) -> f64 {
    if x == f64::INFINITY {
        return f64::NEG_INFINITY;
    }
    if a < 1.0 {
        if x < 1.0 {
            return upper_small_a(a, x).ln();
        }
        // ln(x^a e^{-x} / Γ(a)): small `a` leaves nothing to cancel.
        let pre = a * x.ln() - x - ln_gamma(a);
        return pre + upper_cf(a, x).ln();
    }
    if x < a + 1.0 {
        let ln_p = ln_poisson_like(a, x) + lower_series(a, x).ln();
        log1mexp(ln_p)
    } else {
        // x^a e^{-x} / Γ(a) = a · x^a e^{-x} / Γ(a + 1).
        a.ln() + ln_poisson_like(a, x) + upper_cf(a, x).ln()
    }
}
