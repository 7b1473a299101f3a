//! Unit tests for `stats`: an exact big-rational oracle for the binomial tail, identities,
//! edge cases and property tests. High-precision references for large `n` live in
//! `tests/stats_vectors.rs`.

use super::special::{lgamma1p, ln_gamma, logsumexp, stirlerr};
use super::*;
use num_bigint::BigUint;
use num_traits::{One, ToPrimitive};
use proptest::prelude::*;
use std::f64::consts::LN_2;

/// `a <= b`, up to `tol · max(1, |b|)` of rounding (and with `-∞ <= -∞`).
fn le(a: f64, b: f64, tol: f64) -> bool {
    a <= b || close(a, b, tol)
}

/// `|got - want| <= tol · max(1, |want|)`, with equal infinities accepted.
fn close(got: f64, want: f64, tol: f64) -> bool {
    if got == want {
        return true;
    }
    (got - want).abs() <= tol * want.abs().max(1.0)
}

#[track_caller]
fn assert_close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        close(got, want, tol),
        "{what}: got {got:e}, want {want:e}, scaled error {:e}",
        (got - want).abs() / want.abs().max(1.0)
    );
}

// ---------------------------------------------------------------------------------------
// Exact oracle: P(X >= k) as a big rational for p = num / den.
// ---------------------------------------------------------------------------------------

/// The top 64 bits of `x > 0` as an `f64`, and how far they were shifted.
fn top_bits(x: &BigUint) -> (f64, i64) {
    let shift = x.bits().saturating_sub(64);
    let top = (x >> shift).to_u64().expect("64 bits fit");
    (top as f64, shift as i64)
}

/// `ln(num / den)` for positive big integers, to ~1e-16 relative (from the leading bits and
/// the difference of bit lengths).
fn ln_big_ratio(num: &BigUint, den: &BigUint) -> f64 {
    let (mn, en) = top_bits(num);
    let (md, ed) = top_bits(den);
    (mn / md).ln() + (en - ed) as f64 * LN_2
}

/// Exact `ln P(X >= k)` for every `k` in `0..=n`, `X ~ Bin(n, a/b)`:
/// `P(X >= k) = Σ_{j>=k} C(n, j) a^j (b-a)^(n-j) / b^n`.
fn exact_tails_ln(n: usize, a: u64, b: u64) -> Vec<f64> {
    let a = BigUint::from(a);
    let c = BigUint::from(b) - &a;
    let den = BigUint::from(b).pow(n as u32);
    let mut pow_a = vec![BigUint::one()];
    let mut pow_c = vec![BigUint::one()];
    for j in 1..=n {
        pow_a.push(&pow_a[j - 1] * &a);
        pow_c.push(&pow_c[j - 1] * &c);
    }
    let mut binom = BigUint::one();
    let mut terms = Vec::with_capacity(n + 1);
    for j in 0..=n {
        terms.push(&binom * &pow_a[j] * &pow_c[n - j]);
        binom = binom * BigUint::from(n - j) / BigUint::from(j + 1);
    }
    let mut tails = vec![0.0; n + 1];
    let mut acc = BigUint::from(0u32);
    for j in (0..=n).rev() {
        acc += &terms[j];
        tails[j] = ln_big_ratio(&acc, &den);
    }
    tails
}

#[test]
fn stats_binomial_tail_matches_exact_rationals() {
    const TWO32: u64 = 1 << 32;
    // (numerator, denominator, p as the f64 the library sees).
    let mut ps: Vec<(u64, u64, f64)> = vec![(1, 4, 0.25), (1, 2, 0.5), (3, 10, 0.3)];
    // Dyadic gammas T / 2^32, as the library's green fraction is represented.
    for t in [
        1u64,
        4295,          // ~1e-6
        TWO32 / 10,    // ~0.1
        TWO32 / 4,     // 0.25
        1_234_567_891, // ~0.287
        TWO32 / 2 + 1, // just above 1/2
        3_865_470_566, // ~0.9
        4_290_672_329, // ~0.999
        TWO32 - 4295,  // ~1 - 1e-6
        TWO32 - 1,     // 1 - 2^-32
    ] {
        ps.push((t, TWO32, t as f64 / TWO32 as f64));
    }
    let ns = [1usize, 2, 3, 5, 10, 17, 64, 100, 257, 400];
    let mut worst = 0.0f64;
    let mut checked = 0;
    for &(a, b, p) in &ps {
        for &n in &ns {
            let exact = exact_tails_ln(n, a, b);
            for (k, &want) in exact.iter().enumerate() {
                let got = binomial_tail_ln(k as u64, n as u64, p);
                let err = (got - want).abs() / want.abs().max(1.0);
                assert!(
                    err <= 1e-12,
                    "P(X >= {k}), n = {n}, p = {a}/{b}: got {got:e}, exact {want:e}, err {err:e}"
                );
                worst = worst.max(err);
                checked += 1;
            }
            assert_eq!(
                binomial_tail_ln(n as u64 + 1, n as u64, p),
                f64::NEG_INFINITY
            );
            // log10 of the same exact value, the way reports print it.
            let want10 = ln_to_log10(exact[n]);
            assert_close(
                ln_to_log10(binomial_tail_ln(n as u64, n as u64, p)),
                want10,
                1e-12,
                "log10",
            );
        }
    }
    assert!(checked > 10_000);
    println!("exact oracle: {checked} tails, worst scaled error {worst:e}");
}

#[test]
fn stats_pmf_matches_exact_rationals() {
    // pmf(k) = tail(k) - tail(k+1) in exact arithmetic, for p = 1/4 and n = 300.
    let n = 300usize;
    let a = BigUint::from(1u32);
    let den = BigUint::from(4u32).pow(n as u32);
    let mut binom = BigUint::one();
    for k in 0..=n {
        let term = &binom * &a * BigUint::from(3u32).pow((n - k) as u32);
        let want = ln_big_ratio(&term, &den);
        assert_close(
            binomial_pmf_ln(k as u64, n as u64, 0.25),
            want,
            1e-13,
            "pmf",
        );
        binom = binom * BigUint::from(n - k) / BigUint::from(k + 1);
    }
}

// ---------------------------------------------------------------------------------------
// The SciPy off-by-one.
// ---------------------------------------------------------------------------------------

#[test]
fn stats_tail_is_at_least_k_not_more_than_k() {
    // X ~ Bin(10, 1/2): P(X >= 5) = 638/1024, P(X > 5) = 386/1024.
    // SciPy: binom.sf(4, 10, 0.5) = 0.623046875, binom.sf(5, 10, 0.5) = 0.376953125.
    let ge5 = binomial_tail_ln(5, 10, 0.5);
    assert_close(ge5, 0.623046875f64.ln(), 1e-15, "P(X >= 5) = sf(4)");
    assert_close(
        binomial_tail_ln(6, 10, 0.5),
        0.376953125f64.ln(),
        1e-15,
        "P(X > 5) = sf(5)",
    );
    assert!(
        (ge5 - 0.376953125f64.ln()).abs() > 0.4,
        "P(X >= k) must not be P(X > k)"
    );

    // In general binomial_tail_ln(k) = ln P(X > k - 1) = ln(P(X = k) + P(X > k)).
    for (k, n, p) in [
        (7u64, 20u64, 0.25f64),
        (30, 100, 0.25),
        (1, 5, 0.1),
        (5, 5, 0.5),
    ] {
        let gt_k = binomial_tail_ln(k + 1, n, p);
        let ge_k = binomial_tail_ln(k, n, p);
        assert_close(
            ge_k,
            logsumexp(binomial_pmf_ln(k, n, p), gt_k),
            1e-13,
            "ge = pmf + gt",
        );
        assert!(ge_k > gt_k + 1e-3);
    }
}

// ---------------------------------------------------------------------------------------
// Edge cases and domain.
// ---------------------------------------------------------------------------------------

#[test]
fn stats_binomial_edges() {
    assert_eq!(binomial_tail_ln(0, 10, 0.3), 0.0);
    assert_eq!(binomial_tail_ln(0, 0, 0.3), 0.0);
    assert_eq!(binomial_tail_ln(1, 0, 0.3), f64::NEG_INFINITY);
    assert_eq!(binomial_tail_ln(11, 10, 0.3), f64::NEG_INFINITY);
    assert_eq!(binomial_tail_ln(u64::MAX, 10, 0.3), f64::NEG_INFINITY);
    assert_eq!(binomial_tail_ln(0, 10, 0.0), 0.0);
    assert_eq!(binomial_tail_ln(1, 10, 0.0), f64::NEG_INFINITY);
    assert_eq!(binomial_tail_ln(10, 10, 1.0), 0.0);
    assert_eq!(binomial_tail_ln(3, 10, 1.0), 0.0);
    for bad in [f64::NAN, -0.1, 1.1, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(binomial_tail_ln(3, 10, bad).is_nan(), "tail p = {bad}");
        assert!(
            binomial_tail_ln(0, 10, bad).is_nan(),
            "tail k = 0, p = {bad}"
        );
        assert!(binomial_pmf_ln(3, 10, bad).is_nan(), "pmf p = {bad}");
    }
    // k = n and k = 1 closed forms.
    assert_close(
        binomial_tail_ln(10, 10, 0.3),
        10.0 * 0.3f64.ln(),
        1e-15,
        "p^n",
    );
    assert_close(
        binomial_tail_ln(1, 10, 0.3),
        (1.0 - 0.7f64.powi(10)).ln(),
        1e-15,
        "1-q^n",
    );
    // 1 - q^n for tiny p keeps full relative accuracy.
    assert_close(
        binomial_tail_ln(1, 1000, 1e-300),
        (1000.0 * 1e-300f64).ln(),
        1e-14,
        "tiny p",
    );

    assert_eq!(binomial_pmf_ln(11, 10, 0.3), f64::NEG_INFINITY);
    assert_eq!(binomial_pmf_ln(0, 10, 0.0), 0.0);
    assert_eq!(binomial_pmf_ln(1, 10, 0.0), f64::NEG_INFINITY);
    assert_eq!(binomial_pmf_ln(10, 10, 1.0), 0.0);
    assert_eq!(binomial_pmf_ln(9, 10, 1.0), f64::NEG_INFINITY);
    assert_eq!(binomial_pmf_ln(0, 0, 0.5), 0.0);
}

#[test]
fn stats_no_underflow_far_tail() {
    // p-values of 1e-1000 and 1e-100000 and beyond are finite logs.
    let a = binomial_tail_ln(900, 1000, 0.25);
    assert!(a.is_finite() && ln_to_log10(a) < -300.0, "{a}");
    let b = binomial_tail_ln(600_000, 1_000_000, 0.25);
    assert!(b.is_finite() && ln_to_log10(b) < -100_000.0, "{b}");
    let c = binomial_tail_ln(1_000_000_000, 1_000_000_000, 1e-6);
    assert_close(c, 1e9 * 1e-6f64.ln(), 1e-15, "p^n, n = 1e9");
    // One below n: n p^(n-1) q + p^n.
    let n = 1_000_000u64;
    let p = 0.25f64;
    let want = logsumexp(
        (n as f64).ln() + (n - 1) as f64 * p.ln() + (1.0 - p).ln(),
        n as f64 * p.ln(),
    );
    assert_close(binomial_tail_ln(n - 1, n, p), want, 1e-14, "k = n - 1");
    let g = gamma_upper_tail_ln(10.0, 1e6);
    assert!(g.is_finite() && g < -9e5);
    assert!(normal_tail_ln(1e5).is_finite());
}

#[test]
fn stats_works_for_huge_n() {
    // n = 1e9 near the mean: exact (continued fraction), and consistent with its complement.
    let n = 1_000_000_000u64;
    let p = 0.25; // 1 - p exact
    for k in [249_990_000u64, 250_000_000, 250_000_001, 250_020_000] {
        let up = binomial_tail_ln(k, n, p);
        let low = binomial_tail_ln(n - k + 1, n, 1.0 - p);
        assert!(up.is_finite() && low.is_finite());
        assert!(logsumexp(up, low).abs() < 1e-11, "k = {k}: {up} {low}");
    }
}

#[test]
fn stats_gamma_edges_and_closed_forms() {
    assert_eq!(gamma_upper_tail_ln(3.0, 0.0), 0.0);
    assert_eq!(gamma_upper_tail_ln(3.0, f64::INFINITY), f64::NEG_INFINITY);
    for (a, x) in [
        (0.0, 1.0),
        (-1.0, 1.0),
        (f64::NAN, 1.0),
        (f64::INFINITY, 1.0),
        (1.0, -1.0),
        (1.0, f64::NAN),
    ] {
        assert!(gamma_upper_tail_ln(a, x).is_nan(), "a = {a}, x = {x}");
    }
    // Q(1, x) = e^-x, Q(2, x) = (1 + x) e^-x, Q(1/2, x) = erfc(sqrt x).
    for x in [1e-300, 1e-8, 0.1, 0.9, 1.0, 1.5, 2.0, 7.0, 50.0, 1e4, 1e12] {
        assert_close(gamma_upper_tail_ln(1.0, x), -x, 1e-14, "Q(1, x)");
        assert_close(gamma_upper_tail_ln(2.0, x), x.ln_1p() - x, 1e-14, "Q(2, x)");
    }
    // Integer a: Q(a, x) = P(Poisson(x) <= a - 1).
    for a in [3u32, 7, 20] {
        for x in [0.5, 2.0, 6.9, 19.0, 35.0] {
            let mut term = 1.0;
            let mut sum = 1.0;
            for j in 1..a {
                term *= x / f64::from(j);
                sum += term;
            }
            let want = sum.ln() - x;
            assert_close(gamma_upper_tail_ln(f64::from(a), x), want, 1e-13, "Poisson");
        }
    }
    // Tiny shape: Q(a, x) ~ a E1(x) as a -> 0 (E1(1) = 0.21938393439552...).
    let a = 1e-12;
    assert_close(
        gamma_upper_tail_ln(a, 1.0),
        (a * 0.219_383_934_395_520_3).ln(),
        1e-10,
        "a -> 0",
    );
    assert_close(
        gamma_upper_tail_ln(a, 0.999),
        (a * 0.219_752_182_022_944_54).ln(),
        1e-10,
        "a -> 0, x < 1",
    );
    // mpmath: ln Q(1e-12, 0.999) = -29.14627592882396077830...
    assert_close(
        gamma_upper_tail_ln(a, 0.999),
        -29.146_275_928_823_96,
        1e-15,
        "a = 1e-12, mpmath",
    );
}

#[test]
fn stats_normal_edges() {
    assert!(normal_tail_ln(f64::NAN).is_nan());
    assert_eq!(normal_tail_ln(f64::INFINITY), f64::NEG_INFINITY);
    assert_eq!(normal_tail_ln(f64::NEG_INFINITY), 0.0);
    assert_close(normal_tail_ln(0.0), -LN_2, 1e-16, "z = 0");
    // Φ(-1) = 0.15865525393145705, P(Z >= 40) = 3.655893540915e-350.
    assert_close(
        normal_tail_ln(1.0),
        0.158_655_253_931_457_05f64.ln(),
        1e-15,
        "z = 1",
    );
    assert_close(
        normal_tail_ln(40.0),
        -804.608_442_013_753_8,
        1e-15,
        "z = 40",
    );
    // Symmetry: P(Z >= z) + P(Z >= -z) = 1, also deep in the tail (ln ~ -P(Z >= 40)).
    for z in [0.1, 1.0, 1.41, 1.42, 3.0, 8.0, 40.0] {
        assert_close(
            logsumexp(normal_tail_ln(z), normal_tail_ln(-z)),
            0.0,
            1e-15,
            "symmetry",
        );
    }
    // ln(1 - 3.7e-350) rounds to (negative) zero.
    assert!(normal_tail_ln(-40.0) <= 0.0 && normal_tail_ln(-40.0) > -1e-300);
    assert!(normal_tail_ln(1e150).is_finite());
}

#[test]
fn stats_special_functions() {
    // stirlerr: table, series and recurrence agree where they meet.
    for n in 1..15u32 {
        let x = f64::from(n);
        let rec = stirlerr(x + 1.0) + (x + 0.5) * (1.0 / x).ln_1p() - 1.0;
        assert!((stirlerr(x) - rec).abs() < 2e-16, "stirlerr({n})");
        // Non-integers next to the integers are continuous.
        assert!(
            (stirlerr(x + 1e-9) - stirlerr(x)).abs() < 1e-9,
            "stirlerr near {n}"
        );
    }
    // The series takes over at 15 (table value there: mpmath).
    assert!((stirlerr(15.0) - 0.005_554_733_551_962_801).abs() < 3e-16);
    // ln Γ against factorials and known values.
    let mut fact = 1.0f64;
    for n in 1..=20u32 {
        assert_close(ln_gamma(f64::from(n)), fact.ln(), 4e-16, "ln Γ(n)");
        fact *= f64::from(n);
    }
    assert_close(
        ln_gamma(0.5),
        0.5 * std::f64::consts::PI.ln(),
        1e-16,
        "ln Γ(1/2)",
    );
    assert_close(ln_gamma(1e-300), -(1e-300f64.ln()), 1e-16, "ln Γ(tiny)");
    for x in [0.3, 0.7, 1.2, 1.9, 2.4, 3.3, 9.7, 14.9, 15.1, 123.4] {
        let scale = ln_gamma(x + 1.0).abs().max(1.0);
        let err = (ln_gamma(x + 1.0) - ln_gamma(x) - x.ln()).abs() / scale;
        assert!(err < 5e-16, "recurrence {x}: {err:e}");
    }
    // lnΓ(1 + a) keeps relative accuracy for tiny a (≈ -γ a).
    let a = 1e-10;
    assert!((lgamma1p(a) / (-0.577_215_664_901_532_9 * a) - 1.0).abs() < 1e-9);
    assert_close(lgamma1p(1.0), 0.0, 1e-16, "ln Γ(2)");
    assert_close(lgamma1p(0.5), ln_gamma(1.5), 1e-16, "ln Γ(1.5)");
}

#[test]
fn stats_pmf_sums_to_one_and_builds_the_tail() {
    for (n, p) in [(1u64, 0.3f64), (37, 0.25), (300, 0.9), (1000, 1e-3)] {
        let total = (0..=n)
            .map(|k| binomial_pmf_ln(k, n, p))
            .fold(f64::NEG_INFINITY, logsumexp);
        assert!(
            total.abs() < 1e-13,
            "n = {n}, p = {p}: ln Σ pmf = {total:e}"
        );
        for k in 0..=n {
            let rebuilt = logsumexp(binomial_pmf_ln(k, n, p), binomial_tail_ln(k + 1, n, p));
            assert_close(
                binomial_tail_ln(k, n, p),
                rebuilt,
                1e-13,
                "tail = pmf + tail",
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Property tests.
// ---------------------------------------------------------------------------------------

/// A dyadic green fraction `T / 2^32`, so that `1 - p` is exact too.
fn dyadic_p() -> impl Strategy<Value = f64> {
    (1u64..(1u64 << 32)).prop_map(|t| t as f64 / (1u64 << 32) as f64)
}

/// `(k, n)` with `n` spread over many magnitudes and `k` anywhere in `0..=n+1`.
fn k_n() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![1u64..64, 64u64..5_000, 5_000u64..2_000_000].prop_flat_map(|n| (0..=n + 1, Just(n)))
}

/// `(k, n)` with `1 <= k <= n`.
fn k_n_inside() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![1u64..64, 64u64..5_000, 5_000u64..2_000_000].prop_flat_map(|n| (1..=n, Just(n)))
}

/// `(k, n, p)` with `k` within a few standard deviations of the mean (where the continued
/// fractions are slowest and both tails matter), `n` up to 1e7, `p` dyadic.
fn near_mean() -> impl Strategy<Value = (u64, u64, f64)> {
    (1.0f64..7.0, dyadic_p(), -6.0f64..6.0).prop_map(|(log_n, p, z)| {
        let n = 10f64.powf(log_n).round() as u64;
        let mean = n as f64 * p;
        let sd = (mean * (1.0 - p)).sqrt();
        let k = (mean + z * sd).round().clamp(1.0, n as f64) as u64;
        (k, n, p)
    })
}

/// 300 cases per property unless `PROPTEST_CASES` asks for more.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn stats_prop_tail_in_range((k, n) in k_n(), p in 0.0f64..=1.0) {
        let t = binomial_tail_ln(k, n, p);
        prop_assert!(t <= 0.0 && !t.is_nan(), "{}", t);
        if k == 0 {
            prop_assert_eq!(t, 0.0);
        }
        if k > n {
            prop_assert_eq!(t, f64::NEG_INFINITY);
        }
        if k <= n && p > 0.0 {
            prop_assert!(t.is_finite());
        }
    }

    #[test]
    fn stats_prop_tail_nonincreasing_in_k((k, n) in k_n(), p in 1e-9f64..1.0) {
        let a = binomial_tail_ln(k, n, p);
        let b = binomial_tail_ln(k + 1, n, p);
        prop_assert!(le(b, a, 1e-13), "k = {}: {} then {}", k, a, b);
    }

    #[test]
    fn stats_prop_tail_nondecreasing_in_p((k, n) in k_n(), p1 in 1e-9f64..1.0, p2 in 1e-9f64..1.0) {
        let (lo, hi) = if p1 <= p2 { (p1, p2) } else { (p2, p1) };
        let a = binomial_tail_ln(k, n, lo);
        let b = binomial_tail_ln(k, n, hi);
        prop_assert!(le(a, b, 1e-13), "p {} -> {}, p {} -> {}", lo, a, hi, b);
    }

    #[test]
    fn stats_prop_upper_and_lower_tails_sum_to_one((k, n) in k_n_inside(), p in dyadic_p()) {
        // P(X >= k) + P(X <= k-1) = 1, with P(X <= k-1) = P(n - X >= n-k+1), n - X ~ Bin(n, 1-p).
        let up = binomial_tail_ln(k, n, p);
        let low = binomial_tail_ln(n - k + 1, n, 1.0 - p);
        prop_assert!(logsumexp(up, low).abs() < 1e-12, "{} {} {}", up, low, logsumexp(up, low));
    }

    #[test]
    fn stats_prop_near_mean_consistency((k, n, p) in near_mean()) {
        // Rounding in the continued fractions grows like sqrt(n): ~1e-12 at n = 1e7.
        let up = binomial_tail_ln(k, n, p);
        let low = binomial_tail_ln(n - k + 1, n, 1.0 - p);
        prop_assert!(logsumexp(up, low).abs() < 5e-12, "{} {} {}", up, low, logsumexp(up, low));
        let next = binomial_tail_ln(k + 1, n, p);
        prop_assert!(le(next, up, 1e-13), "{} then {}", up, next);
        let rebuilt = logsumexp(binomial_pmf_ln(k, n, p), next);
        prop_assert!(close(up, rebuilt, 5e-12), "{} vs {}", up, rebuilt);
    }

    #[test]
    fn stats_prop_tail_recursion((k, n) in k_n_inside(), p in 1e-6f64..0.999_999) {
        // P(X >= k) = P(X = k) + P(X >= k+1).
        let t = binomial_tail_ln(k, n, p);
        let rebuilt = logsumexp(binomial_pmf_ln(k, n, p), binomial_tail_ln(k + 1, n, p));
        prop_assert!(close(t, rebuilt, 1e-12), "{} vs {}", t, rebuilt);
    }

    #[test]
    fn stats_prop_never_panics(k in any::<u32>(), n in any::<u32>(), p in any::<f64>()) {
        let (k, n) = (u64::from(k % 10_000_000), u64::from(n % 10_000_000));
        let t = binomial_tail_ln(k, n, p);
        let f = binomial_pmf_ln(k, n, p);
        if (0.0..=1.0).contains(&p) {
            prop_assert!(t <= 0.0 && f <= 0.0);
        } else {
            prop_assert!(t.is_nan() && f.is_nan());
        }
        let g = gamma_upper_tail_ln(p.abs().min(1e8), k as f64);
        prop_assert!(g.is_nan() || g <= 0.0);
        prop_assert!(normal_tail_ln(p).is_nan() || normal_tail_ln(p) <= 0.0);
    }

    #[test]
    fn stats_prop_gamma_monotone(a in 1e-3f64..1e6, x1 in 0.0f64..2e6, x2 in 0.0f64..2e6) {
        let (lo, hi) = if x1 <= x2 { (x1, x2) } else { (x2, x1) };
        let q_lo = gamma_upper_tail_ln(a, lo);
        let q_hi = gamma_upper_tail_ln(a, hi);
        prop_assert!(q_lo <= 0.0 && q_hi.is_finite());
        prop_assert!(le(q_hi, q_lo, 1e-13), "{} {}", q_lo, q_hi);
        // Increasing in the shape.
        let q_a2 = gamma_upper_tail_ln(a * 1.5, hi);
        prop_assert!(le(q_hi, q_a2, 1e-13), "{} {}", q_hi, q_a2);
    }

    #[test]
    fn stats_prop_normal_is_half_gamma(z in 0.0f64..60.0) {
        // P(Z >= z) = Q(1/2, z²/2) / 2 (the two code paths differ; z² is rounded here).
        let want = gamma_upper_tail_ln(0.5, z * z / 2.0) - LN_2;
        prop_assert!(close(normal_tail_ln(z), want, 1e-13), "{} vs {}", normal_tail_ln(z), want);
        prop_assert!(logsumexp(normal_tail_ln(z), normal_tail_ln(-z)).abs() < 1e-15);
    }
}
