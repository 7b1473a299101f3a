//! Exact tail probabilities in log space, for detection p-values.
//!
//! A watermark detector counts `k` green tokens out of `n` scored ones; under the null
//! hypothesis (text written without the key) each token is green with probability `γ`, so
//! the p-value is `P(X >= k)` for `X ~ Binomial(n, γ)`. Long watermarked texts have p-values
//! far below the smallest `f64` (1e-308), so everything here returns **natural logs** and
//! never underflows: a p-value of 1e-100000 comes out as about `-230258.5`.
//!
//! * [`binomial_tail_ln`]: `ln P(X >= k)`, exact (regularized incomplete beta by its
//!   continued fraction, prefactor from [`binomial_pmf_ln`]); no normal approximation
//!   anywhere. Note `>=`: SciPy's `binom.sf(k)` is `P(X > k)`, so
//!   `binomial_tail_ln(k, ..)` equals `ln binom.sf(k - 1, ..)`.
//! * [`binomial_pmf_ln`]: `ln P(X = k)` by Loader's saddle-point formula.
//! * [`gamma_upper_tail_ln`]: `ln Q(a, x)`; a sum of `n` independent `Exp(1)` scores (the
//!   Gumbel / Aaronson detector) is `Gamma(n, 1)`, so its p-value is `Q(n, s)`.
//! * [`normal_tail_ln`]: `ln P(Z >= z)` for a z-score, accurate far into the tail.
//! * [`ln_to_log10`]: for reports (`log10 p`).
//! * [`ks_plus_statistic`], [`ks_plus_tail_ln`] and [`poisson_binomial_tail_ln`]: whether
//!   a set of p-values is too small to be valid (key screening, [`crate::screen`]).
//!
//! The functions take plain numbers that callers have validated. They never panic: an
//! input outside the documented domain (`p` outside `[0, 1]`, `a <= 0`, NaN, ...) gives
//! `f64::NAN`.
//!
//! Accuracy, checked against 60-digit references (`tests/vectors/stats_tails.json`, made
//! by `scripts/gen_stats_vectors.py`) and exact rational arithmetic, as the error of the
//! returned log scaled by `max(1, |ln p|)` (so relative error of the p-value where it is
//! not tiny): binomial tail below 5e-15 for `n <= 400`, below 1e-12 for `n <= 1e7` (the
//! worst case is at the mean; the rounding of the continued fraction grows like
//! `sqrt(n)`), about 1e-11 at `n = 1e9`; pmf below 2e-13; gamma tail below 1e-13 for `a`
//! from 1e-5 to 1e7; normal tail below 1e-15.
//!
//! # Example
//! ```
//! use greenmark::stats::{binomial_tail_ln, gamma_upper_tail_ln, ln_to_log10, normal_tail_ln};
//!
//! // 10 heads out of 10 fair coin flips: p = 2^-10.
//! let ln_p = binomial_tail_ln(10, 10, 0.5);
//! assert!((ln_p - (-10.0 * 2f64.ln())).abs() < 1e-12);
//!
//! // 900 green tokens out of 1000 with gamma = 0.25: far below f64's range, still finite.
//! let ln_p = binomial_tail_ln(900, 1000, 0.25);
//! assert!(ln_p.is_finite() && ln_to_log10(ln_p) < -400.0);
//!
//! // P(X >= 0) = 1, and k > n is impossible.
//! assert_eq!(binomial_tail_ln(0, 10, 0.25), 0.0);
//! assert_eq!(binomial_tail_ln(11, 10, 0.25), f64::NEG_INFINITY);
//!
//! // Q(1, x) = e^-x and the normal tail at z = 40.
//! assert!((gamma_upper_tail_ln(1.0, 30.0) + 30.0).abs() < 1e-12);
//! assert!((normal_tail_ln(40.0) + 804.6084420137538).abs() < 1e-9);
//!
//! // Out-of-domain inputs give NaN instead of panicking.
//! assert!(binomial_tail_ln(3, 10, 1.5).is_nan());
//! ```

mod binomial;
mod gamma;
mod goodness;
mod normal;
pub(crate) mod special;
mod weighted;

pub use weighted::TailMethod;

#[cfg(test)]
mod tests;

/// `ln P(X >= k)` for `X ~ Binomial(n, p)`: the exact one-sided upper tail.
///
/// Note `>=`, not `>`: SciPy's `binom.sf(k, n, p)` is `P(X > k)`, so this equals
/// `ln(binom.sf(k - 1, n, p))`.
///
/// * `k == 0` gives `0.0` and `k > n` gives `f64::NEG_INFINITY`;
/// * `p == 0` gives `NEG_INFINITY` (unless `k == 0`), `p == 1` gives `0.0` (for `k <= n`);
/// * `p` outside `[0, 1]` or NaN gives `f64::NAN`.
///
/// Computed as the regularized incomplete beta `I_p(k, n-k+1)` with Lentz's continued
/// fraction (prefactor `pmf(k) · (1 - p)`), or as `ln(1 - I_{1-p}(n-k+1, k))` when `k` is
/// below the mean, where that side converges (a direct sum of pmf ratios replaces the
/// fraction whose argument would exceed ½). `|Δ ln p| <= 1e-12 · max(1, |ln p|)` for
/// `n <= 1e7` (see the module docs). Cost `O(sqrt(n p (1-p)))` steps at worst, near the
/// mean: a few microseconds for `n <= 1e5`, ~20 µs at `n = 1e7`, ~0.3 ms at `n = 1e9`. `n`
/// is used as an `f64`, so it is exact up to `2^53`.
///
/// ```
/// use greenmark::stats::binomial_tail_ln;
/// // P(X >= 5), X ~ Bin(10, 1/2) = 638/1024; SciPy's binom.sf(5, 10, 0.5) = 386/1024 is P(X > 5).
/// assert!((binomial_tail_ln(5, 10, 0.5) - (638.0f64 / 1024.0).ln()).abs() < 1e-14);
/// assert!((binomial_tail_ln(6, 10, 0.5) - (386.0f64 / 1024.0).ln()).abs() < 1e-14);
/// ```
pub fn binomial_tail_ln(k: u64, n: u64, p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if k == 0 {
        return 0.0;
    }
    if k > n {
        return f64::NEG_INFINITY;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return 0.0;
    }
    binomial::tail_ln(k, n, p)
}

/// `ln P(X = k)` for `X ~ Binomial(n, p)`.
///
/// Loader's saddle-point form (`stirlerr` plus the `bd0` deviance), so there is no
/// cancellation between huge log-factorials: accurate to ~1e-15 relative for `n` up to 1e9
/// and beyond. `k > n` gives `f64::NEG_INFINITY`; `p == 0` / `p == 1` give `0.0` at
/// `k == 0` / `k == n` and `NEG_INFINITY` elsewhere; `p` outside `[0, 1]` or NaN gives
/// `f64::NAN`.
///
/// ```
/// use greenmark::stats::binomial_pmf_ln;
/// // P(X = 2), X ~ Bin(4, 1/2) = 6/16.
/// assert!((binomial_pmf_ln(2, 4, 0.5) - (6.0f64 / 16.0).ln()).abs() < 1e-14);
/// ```
pub fn binomial_pmf_ln(k: u64, n: u64, p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if k > n {
        return f64::NEG_INFINITY;
    }
    if p == 0.0 {
        return if k == 0 { 0.0 } else { f64::NEG_INFINITY };
    }
    if p == 1.0 {
        return if k == n { 0.0 } else { f64::NEG_INFINITY };
    }
    binomial::pmf_ln(k, n, &binomial::Probs::new(p))
}

/// `ln P(S >= s)` for `S = sum_i w_i X_i`, independent `X_i ~ Binomial(n_i, p)` with integer
/// weights `w_i` (`terms` is `[(w_i, n_i)]`), and how it was computed.
///
/// Exact when the lattice of values of `S` (weights divided by their gcd, equal weights merged)
/// costs at most `max_work` multiply-adds to convolve: the convolution runs under the
/// exponential tilt that centres `S` on `s`, `P(S >= s) = M(λ) e^{-λs} E_λ[e^{-λ(S-s)}; S >= s]`,
/// so it stays in linear space without losing the far tail to underflow. Otherwise the
/// Chernoff bound `M(λ) e^{-λs}` at the same `λ`, which is never below the true tail
/// ([`TailMethod::Chernoff`]). A single weight class is the exact binomial tail. `p` outside
/// `[0, 1]` gives NaN.
///
/// ```
/// use greenmark::stats::{weighted_binomial_tail_ln, TailMethod};
/// // S = 2 X + Y, X ~ Bin(1, 1/2), Y ~ Bin(1, 1/2): P(S >= 2) = 1/2, P(S >= 3) = 1/4.
/// let (ln_p, method) = weighted_binomial_tail_ln(&[(2, 1), (1, 1)], 0.5, 2, 1_000_000);
/// assert!((ln_p - 0.5f64.ln()).abs() < 1e-12 && method == TailMethod::Exact);
/// let (ln_p, _) = weighted_binomial_tail_ln(&[(2, 1), (1, 1)], 0.5, 3, 1_000_000);
/// assert!((ln_p - 0.25f64.ln()).abs() < 1e-12);
/// // With no budget for the lattice: the Chernoff bound, above the exact value.
/// let (bound, method) = weighted_binomial_tail_ln(&[(2, 50), (1, 50)], 0.5, 120, 0);
/// let (exact, _) = weighted_binomial_tail_ln(&[(2, 50), (1, 50)], 0.5, 120, u64::MAX);
/// assert!(method == TailMethod::Chernoff && bound >= exact);
/// ```
pub fn weighted_binomial_tail_ln(
    terms: &[(u64, u64)],
    p: f64,
    s: u64,
    max_work: u64,
) -> (f64, TailMethod) {
    if !(0.0..=1.0).contains(&p) {
        return (f64::NAN, TailMethod::Exact);
    }
    weighted::tail_ln(terms, p, s, max_work)
}

/// `ln Q(a, x)`, the regularized upper incomplete gamma function `Γ(a, x) / Γ(a)`.
///
/// `Q(a, x) = P(G >= x)` for `G ~ Gamma(a, 1)`; a sum of `n` independent `Exp(1)` variables
/// is `Gamma(n, 1)`. Requires finite `a > 0` and `x >= 0`, otherwise (or for NaN) returns
/// `f64::NAN`. `x == 0` gives `0.0`, `x == +∞` gives `NEG_INFINITY`.
///
/// Series for `P` (then `ln(1 - P)`) when `x < a + 1`, Legendre's continued fraction when
/// `x >= a + 1`, with the prefactor `x^a e^{-x} / Γ(a)` in Loader's `stirlerr` / `bd0` form;
/// a cancellation-free expansion for `a < 1`, `x < 1`. Tested for `a` up to 1e7; the cost is
/// `O(sqrt(a))` steps near `x = a`.
///
/// ```
/// use greenmark::stats::gamma_upper_tail_ln;
/// // Q(2, x) = (1 + x) e^-x.
/// assert!((gamma_upper_tail_ln(2.0, 3.0) - (4.0f64.ln() - 3.0)).abs() < 1e-14);
/// ```
pub fn gamma_upper_tail_ln(a: f64, x: f64) -> f64 {
    if !(a > 0.0 && a.is_finite() && x >= 0.0) {
        return f64::NAN;
    }
    if x == 0.0 {
        return 0.0;
    }
    gamma::upper_tail_ln(a, x)
}

/// `ln P(Z >= z)` for a standard normal `Z`.
///
/// Accurate far into the tail (`z = 40` gives about `-804.6`; the exponent `-z²/2` is kept
/// exact) and for negative `z` (`ln(1 - P(Z >= |z|))` without cancellation). `+∞` gives
/// `NEG_INFINITY`, `-∞` gives `0.0`, NaN gives NaN.
///
/// ```
/// use greenmark::stats::normal_tail_ln;
/// assert!((normal_tail_ln(0.0) - 0.5f64.ln()).abs() < 1e-15);
/// ```
pub fn normal_tail_ln(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    normal::upper_tail_ln(z)
}

/// Checks a significance threshold (a p-value strictly between 0 and 1) and returns it: the one
/// rule for every threshold a user gives (CLI flags, Python arguments, service configs).
///
/// ```
/// use greenmark::stats::check_threshold;
/// assert_eq!(check_threshold(1e-6)?, 1e-6);
/// assert!(check_threshold(1.0).is_err() && check_threshold(f64::NAN).is_err());
/// # Ok::<(), greenmark::Error>(())
/// ```
pub fn check_threshold(threshold: f64) -> crate::Result<f64> {
    if threshold > 0.0 && threshold < 1.0 {
        Ok(threshold)
    } else {
        Err(crate::Error::InvalidThreshold(threshold))
    }
}

/// `log10` of a probability given by its natural log (`ln / ln 10`), for reports.
///
/// ```
/// use greenmark::stats::ln_to_log10;
/// assert!((ln_to_log10(1e-5f64.ln()) + 5.0).abs() < 1e-12);
/// ```
pub fn ln_to_log10(ln: f64) -> f64 {
    ln * std::f64::consts::LOG10_E
}

/// The smallest green count `g` whose exact tail `P(X >= g)`, `X ~ Binomial(n, p)`, is below
/// `e^ln_threshold`: the critical value of the one-sided test at `n` scored tokens. `None`
/// when even `g = n` (all green) is not significant, i.e. `n` is too few tokens for that
/// threshold, or when an input is outside its domain.
///
/// Found by bisection on [`binomial_tail_ln`] (decreasing in `g`), so it agrees with the
/// detector's p-value exactly: `p < threshold` iff `n_green >= critical value`.
///
/// ```
/// use greenmark::stats::{binomial_critical_value, binomial_tail_ln};
/// let ln_t = 1e-6f64.ln();
/// let g = binomial_critical_value(200, 0.25, ln_t).unwrap();
/// assert!(binomial_tail_ln(g, 200, 0.25) < ln_t && binomial_tail_ln(g - 1, 200, 0.25) >= ln_t);
/// assert_eq!(binomial_critical_value(9, 0.25, ln_t), None); // 0.25^9 > 1e-6
/// ```
pub fn binomial_critical_value(n: u64, p: f64, ln_threshold: f64) -> Option<u64> {
    let tail = |g| binomial_tail_ln(g, n, p);
    if ln_threshold.is_nan() || tail(n).is_nan() || tail(n) >= ln_threshold {
        return None;
    }
    // Invariant: tail(hi) < threshold <= tail(lo) (tail(0) = 1 > any threshold below 1).
    let (mut lo, mut hi) = (0u64, n);
    if tail(lo) < ln_threshold {
        return Some(0);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if tail(mid) < ln_threshold {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// `ln min(1, K p)`: the Bonferroni correction of the smallest of `k` p-values, in log space.
/// Valid whatever the dependence between the tests.
///
/// ```
/// use greenmark::stats::bonferroni_ln;
/// assert!((bonferroni_ln(1e-8f64.ln(), 10) - 1e-7f64.ln()).abs() < 1e-12);
/// assert_eq!(bonferroni_ln(0.5f64.ln(), 4), 0.0);
/// ```
pub fn bonferroni_ln(ln_p_min: f64, k: usize) -> f64 {
    (ln_p_min + (k.max(1) as f64).ln()).min(0.0)
}

/// `ln(1 - (1 - p)^K)`: the Šidák correction of the smallest of `k` independent p-values, in
/// log space, accurate for `p` far below `f64`'s range (where it tends to `ln K + ln p`).
///
/// ```
/// use greenmark::stats::sidak_ln;
/// let exact = (1.0f64 - 0.99f64.powi(3)).ln();
/// assert!((sidak_ln(0.01f64.ln(), 3) - exact).abs() < 1e-12);
/// assert!((sidak_ln(-2000.0, 10) - (-2000.0 + 10f64.ln())).abs() < 1e-9);
/// ```
pub fn sidak_ln(ln_p_min: f64, k: usize) -> f64 {
    let k = k.max(1) as f64;
    if ln_p_min.is_nan() {
        return f64::NAN;
    }
    if ln_p_min + k.ln() < -30.0 {
        // 1 - (1 - p)^K = K p (1 - (K - 1) p / 2 + O((K p)^2)), K p < 1e-13.
        return ln_p_min + k.ln() + (-(k - 1.0) * ln_p_min.exp() / 2.0).ln_1p();
    }
    // ln (1 - p)^K = K ln(1 - p) = K log1mexp(ln p); then ln(1 - e^that).
    let ln_keep = k * special::log1mexp(ln_p_min);
    special::log1mexp(ln_keep).min(0.0)
}

/// The one-sided Kolmogorov–Smirnov statistic `D+ = sup_t (F_m(t) - t)` of `p_values`
/// against Uniform(0, 1), where `F_m` is their empirical cdf: how far the p-values are
/// *smaller* than uniform ones. 0 for an empty slice.
///
/// ```
/// use greenmark::stats::ks_plus_statistic;
/// assert!((ks_plus_statistic(&[0.1, 0.9]) - 0.4).abs() < 1e-15); // F(0.1) = 1/2
/// assert_eq!(ks_plus_statistic(&[1.0]), 0.0);
/// ```
pub fn ks_plus_statistic(p_values: &[f64]) -> f64 {
    goodness::ks_plus_statistic(p_values)
}

/// `ln P(D+_m >= d)` for `m` independent Uniform(0, 1) values: the exact one-sided KS tail
/// (Birnbaum & Tingey 1951), summed in log space over at most `m + 1` positive terms (no
/// cancellation). `d <= 0` gives `0.0`, `d > 1` gives `-∞`; `m == 0` or NaN gives NaN.
///
/// **Discrete p-values.** Exact binomial p-values are *super-uniform* (`P(p <= t) <= t`), so
/// each can be coupled with a uniform `U <= p`; `D+` only decreases when a value grows, so
/// `D+(p) <= D+(U)` and this tail is a valid, conservative p-value for them too. (The
/// two-sided statistic has no such guarantee, which is why screening uses `D+`.)
///
/// ```
/// use greenmark::stats::ks_plus_tail_ln;
/// // m = 1: D+ = 1 - U, so P(D+ >= d) = 1 - d.
/// assert!((ks_plus_tail_ln(0.3, 1) - 0.7f64.ln()).abs() < 1e-14);
/// // m = 2, d = 1/2: D+ >= 1/2 iff both values are <= 1/2, probability 1/4.
/// assert!((ks_plus_tail_ln(0.5, 2) - 0.25f64.ln()).abs() < 1e-14);
/// assert_eq!(ks_plus_tail_ln(0.0, 10), 0.0);
/// ```
pub fn ks_plus_tail_ln(d: f64, m: u64) -> f64 {
    goodness::ks_plus_tail_ln(d, m)
}

/// `ln P(S >= k)` for `S` the number of successes of independent Bernoulli trials with the
/// given `probabilities` (a Poisson-binomial variable); exact, by dynamic programming over
/// `P(S_i = j)`, `j < k`, in log space (`O(len · k)`). With all probabilities equal it is the
/// binomial tail. `k == 0` gives `0.0`, `k` above the number of trials `-∞`, a probability
/// outside `[0, 1]` NaN.
///
/// ```
/// use greenmark::stats::{binomial_tail_ln, poisson_binomial_tail_ln};
/// let same = poisson_binomial_tail_ln(&[0.25; 40], 20);
/// assert!((same - binomial_tail_ln(20, 40, 0.25)).abs() < 1e-12);
/// assert!((poisson_binomial_tail_ln(&[0.5, 0.1], 2) - 0.05f64.ln()).abs() < 1e-15);
/// ```
pub fn poisson_binomial_tail_ln(probabilities: &[f64], k: u64) -> f64 {
    goodness::poisson_binomial_tail_ln(probabilities, k)
}
