//! Log-space building blocks shared by the tail functions: Loader's `stirlerr` and `bd0`,
//! an accurate `ln Γ`, and `ln(1 - e^x)` / `ln(e^a + e^b)`.

use std::f64::consts::LN_2;

/// `ln(2π)`.
/// Floor of the modified Lentz method's partial values (keeps them off zero).
pub(super) const TINY: f64 = 1e-300;

/// One step of the modified Lentz method for a continued fraction `... a/(b + ...)`: updates
/// the running ratios `c` and `d` and returns the factor `c·d` that the value is multiplied by.
#[inline]
pub(super) fn lentz_step(a: f64, b: f64, c: &mut f64, d: &mut f64) -> f64 {
    *d = b + a * *d;
    if d.abs() < TINY {
        *d = TINY;
    }
    *c = b + a / *c;
    if c.abs() < TINY {
        *c = TINY;
    }
    *d = 1.0 / *d;
    *d * *c
}

pub(super) const LN_2PI: f64 = 1.8378770664093456;
/// `ln √(2π)`.
pub(super) const LN_SQRT_2PI: f64 = 0.9189385332046728;
/// `ln √π`.
pub(super) const LN_SQRT_PI: f64 = 0.5723649429247001;
/// Euler–Mascheroni constant γ.
const EULER_GAMMA: f64 = 0.5772156649015329;

/// `stirlerr(n)` for the integers `0..=15` (`stirlerr(0)` is defined as 0, as in Loader's code).
const STIRLERR_INT: [f64; 16] = [
    0.0,
    0.08106146679532726,
    0.0413406959554093,
    0.02767792568499834,
    0.020790672103765093,
    0.016644691189821193,
    0.013876128823070748,
    0.01189670994589177,
    0.010411265261972096,
    0.009255462182712733,
    0.00833056343336287,
    0.007573675487951841,
    0.00694284010720953,
    0.006408994188004207,
    0.0059513701127588475,
    0.005554733551962801,
];

/// `ζ(k) - 1` for `k = 2..=40`, used by [`lgamma1p`].
const ZETA_MINUS_ONE: [f64; 39] = [
    0.6449340668482264,
    0.2020569031595943,
    0.08232323371113819,
    0.03692775514336993,
    0.01734306198444914,
    0.008349277381922827,
    0.00407735619794434,
    0.0020083928260822143,
    0.0009945751278180853,
    0.0004941886041194645,
    0.0002460865533080483,
    0.00012271334757848915,
    6.124813505870483e-05,
    3.058823630702049e-05,
    1.528225940865187e-05,
    7.637197637899763e-06,
    3.81729326499984e-06,
    1.908212716553939e-06,
    9.539620338727962e-07,
    4.769329867878064e-07,
    2.38450502727733e-07,
    1.1921992596531106e-07,
    5.960818905125948e-08,
    2.980350351465228e-08,
    1.4901554828365043e-08,
    7.45071178983543e-09,
    3.725334024788457e-09,
    1.862659723513049e-09,
    9.313274324196682e-10,
    4.656629065033784e-10,
    2.3283118336765053e-10,
    1.164155017270052e-10,
    5.820772087902701e-11,
    2.9103850444971e-11,
    1.4551921891041985e-11,
    7.275959835057482e-12,
    3.637979547378651e-12,
    1.818989650307066e-12,
    9.094947840263888e-13,
];

/// Stirling's error term `stirlerr(x) = ln Γ(x+1) - [(x + ½) ln x - x + ln √(2π)]`.
///
/// Exact table for integers below 15, the asymptotic series from 15 on, and for other
/// `x < 15` the upward recurrence `stirlerr(x) = stirlerr(x+1) + (x + ½) ln(1 + 1/x) - 1`
/// (absolute error ~1e-15). Defined as 0 for `x <= 0`; meant for `x >= 1` or integers.
pub(super) fn stirlerr(x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 15.0 {
        return stirlerr_series(x);
    }
    if x.fract() == 0.0 {
        return STIRLERR_INT[x as usize];
    }
    let mut acc = 0.0;
    let mut y = x;
    while y < 15.0 {
        acc += (y + 0.5) * (1.0 / y).ln_1p() - 1.0;
        y += 1.0;
    }
    acc + stirlerr_series(y)
}

/// The asymptotic series of `stirlerr` (truncation error below 3e-16 for `x >= 15`).
fn stirlerr_series(x: f64) -> f64 {
    const S0: f64 = 1.0 / 12.0;
    const S1: f64 = 1.0 / 360.0;
    const S2: f64 = 1.0 / 1260.0;
    const S3: f64 = 1.0 / 1680.0;
    const S4: f64 = 1.0 / 1188.0;
    let xx = x * x;
    if x > 500.0 {
        (S0 - S1 / xx) / x
    } else if x > 80.0 {
        (S0 - (S1 - S2 / xx) / xx) / x
    } else if x > 35.0 {
        (S0 - (S1 - (S2 - S3 / xx) / xx) / xx) / x
    } else {
        (S0 - (S1 - (S2 - (S3 - S4 / xx) / xx) / xx) / xx) / x
    }
}

/// `ln(a / b)` for positive `a`, `b`, without overflow or underflow of the ratio.
fn ln_ratio(a: f64, b: f64) -> f64 {
    let r = a / b;
    if r.is_normal() {
        r.ln()
    } else {
        a.ln() - b.ln()
    }
}

/// Loader's deviance term `bd0(x, m) = x ln(x/m) + m - x >= 0`, computed without
/// cancellation when `x` is close to `m` (series in `v = (x-m)/(x+m)`).
pub(super) fn bd0(x: f64, m: f64) -> f64 {
    if x == 0.0 {
        return m;
    }
    let d = x - m;
    if d.abs() < 0.1 * (x + m) {
        let v = d / (x + m);
        let v2 = v * v;
        let mut s = d * v;
        let mut ej = 2.0 * x * v;
        // |v| < 0.1, so each term shrinks by 100x: this ends within ~10 steps.
        for j in 1..200u32 {
            ej *= v2;
            let s1 = s + ej / f64::from(2 * j + 1);
            if s1 == s {
                return s1;
            }
            s = s1;
        }
        return s;
    }
    x * ln_ratio(x, m) - d
}

/// `ln Γ(1 + a)` for `-0.5 <= a <= 0.5` by its Taylor series around 1, with the `ζ(k) = 1`
/// part summed in closed form (`a - ln(1 + a)`), so it is accurate to a few ulps, also
/// relatively for tiny `a`.
fn lgamma1p_small(a: f64) -> f64 {
    // ln Γ(1 + a) = -γ a + Σ_{k>=2} (-a)^k ζ(k) / k
    //             = -γ a + (a - ln(1 + a)) + Σ_{k>=2} (-a)^k (ζ(k) - 1) / k.
    let mut sum = 0.0;
    let mut pow = -a;
    for (i, z) in ZETA_MINUS_ONE.iter().enumerate() {
        pow *= -a;
        let term = z * pow / (i + 2) as f64;
        sum += term;
        if term.abs() <= 1e-18 * sum.abs() {
            break;
        }
    }
    -EULER_GAMMA * a + (a - a.ln_1p()) + sum
}

/// `ln Γ(1 + a)` for `-0.5 <= a <= 1.5`, accurate relatively also for tiny `a`.
pub(super) fn lgamma1p(a: f64) -> f64 {
    if a <= 0.5 {
        lgamma1p_small(a)
    } else {
        // Γ(1 + a) = a Γ(a) = a Γ(1 + (a - 1)), with a - 1 in (-0.5, 0.5].
        a.ln() + lgamma1p_small(a - 1.0)
    }
}

/// `ln Γ(x)` for `x > 0` (absolute error about 1e-15 below 15, relative ~1e-16 beyond).
pub(super) fn ln_gamma(x: f64) -> f64 {
    if x < 0.5 {
        lgamma1p_small(x) - x.ln()
    } else if x < 1.5 {
        lgamma1p_small(x - 1.0)
    } else if x < 2.5 {
        (x - 1.0).ln() + lgamma1p_small(x - 2.0)
    } else {
        stirlerr(x) + (x - 0.5) * x.ln() - x + LN_SQRT_2PI
    }
}

/// `ln(1 - e^l)` for `l <= 0`, accurate on both sides of `-ln 2`.
pub(crate) fn log1mexp(l: f64) -> f64 {
    if l > -LN_2 {
        (-l.exp_m1()).ln()
    } else {
        (-l.exp()).ln_1p()
    }
}

/// `ln(e^a + e^b)` without overflow.
#[cfg(test)]
pub(super) fn logsumexp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if hi == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}
