//! The design of a false-positive rate test: how many null trials, which bounds, what power.
//!
//! A test that counts rejections among `n` independent null trials, each rejected with
//! probability `rate`, fails when the count leaves `[lo, hi]`: `hi` is the smallest count with
//! `P(X > hi) <= CONFIDENCE` and `lo` the largest with `P(X < lo) <= CONFIDENCE`,
//! `X ~ Binomial(n, rate)`, computed exactly (`greenmark::stats`, log space). A correct
//! detector therefore fails at most `2 CONFIDENCE` of the time (the runs are seeded, so a
//! passing run passes forever). The power of the test is the probability that `hi` is
//! exceeded when the true rate is twice `rate`, as it is when every p-value is reported at half
//! its true size ([`RateTest::rejects_with`]): the tests choose `n` so that it is at least
//! [`MIN_POWER`] and assert it.
#![allow(dead_code)]

use greenmark::stats::binomial_tail_ln;

/// Each side of the interval holds at most this probability under a correct detector.
pub const CONFIDENCE: f64 = 1e-6;
/// The power a rate test must have against a doubled rate.
pub const MIN_POWER: f64 = 0.99;

/// An exact two-sided rate test for `n` Bernoulli(`rate`) trials.
#[derive(Debug, Clone, Copy)]
pub struct RateTest {
    pub n: u64,
    pub rate: f64,
    pub lo: u64,
    pub hi: u64,
}

impl RateTest {
    /// The bounds for `n` trials at `rate` (see the module docs).
    pub fn new(n: u64, rate: f64) -> RateTest {
        RateTest::between(n, rate, rate)
    }

    /// The bounds when the rate is only known to lie in `[rate_lo, rate_hi]`: `lo` from
    /// `rate_lo`, `hi` from `rate_hi`; `rate` is `rate_hi`.
    pub fn between(n: u64, rate_lo: f64, rate_hi: f64) -> RateTest {
        let ln_conf = CONFIDENCE.ln();
        let mean = |p: f64| (n as f64 * p).floor() as u64;
        // hi: the smallest c with P(X >= c + 1) <= CONFIDENCE (P(X >= c) falls with c).
        let mut hi = mean(rate_hi);
        while hi < n && binomial_tail_ln(hi + 1, n, rate_hi) > ln_conf {
            hi += 1;
        }
        // lo: the largest c with P(X <= c - 1) = 1 - P(X >= c) <= CONFIDENCE.
        let below = |c: u64| -binomial_tail_ln(c, n, rate_lo).exp_m1();
        let mut lo = mean(rate_lo);
        while lo > 0 && below(lo) > CONFIDENCE {
            lo -= 1;
        }
        RateTest {
            n,
            rate: rate_hi,
            lo,
            hi,
        }
    }

    /// `P(count > hi)` when each trial is rejected with probability `rate`.
    pub fn rejects_with(&self, rate: f64) -> f64 {
        binomial_tail_ln(self.hi + 1, self.n, rate.min(1.0)).exp()
    }

    /// Whether `count` is inside `[lo, hi]`.
    pub fn passes(&self, count: u64) -> bool {
        (self.lo..=self.hi).contains(&count)
    }
}

/// An exact (Clopper-Pearson) interval for a rate from `count` successes in `n` trials, each
/// side failing with probability at most `CONFIDENCE`: `[lo, hi]` with
/// `P(Binomial(n, hi) <= count) = CONFIDENCE` and `P(Binomial(n, lo) >= count) = CONFIDENCE`
/// (bisection on the exact tails).
pub fn rate_interval(count: u64, n: u64) -> (f64, f64) {
    let ln_conf = CONFIDENCE.ln();
    let bisect = |mut a: f64, mut b: f64, too_low: &dyn Fn(f64) -> bool| {
        for _ in 0..100 {
            let mid = 0.5 * (a + b);
            if too_low(mid) {
                a = mid;
            } else {
                b = mid;
            }
        }
        (a, b)
    };
    // hi: P(X <= count) = 1 - P(X >= count + 1) falls as the rate grows.
    let (_, hi) = bisect(0.0, 1.0, &|p| {
        -binomial_tail_ln(count + 1, n, p).exp_m1() > CONFIDENCE
    });
    // lo: P(X >= count) rises with the rate.
    let (lo, _) = if count == 0 {
        (0.0, 0.0)
    } else {
        bisect(0.0, 1.0, &|p| binomial_tail_ln(count, n, p) < ln_conf)
    };
    (lo, hi)
}
