//! Standard normal upper tail in log space.

use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI, LN_2, SQRT_2};

use super::gamma::upper_cf;
use super::special::{log1mexp, LN_SQRT_2PI, LN_SQRT_PI};

/// `ln P(Z >= z)` for `z >= √2` (including `+∞`), through `P(Z >= z) = Q(½, z²/2) / 2`
/// with `z²` kept as an exact double-double in the exponent.
fn upper_far(z: f64) -> f64 {
    if z > 1e150 {
        // Beyond any continued-fraction correction: ln P = -z²/2 - ln z - ln √(2π) + O(z^-2).
        return -(0.5 * z) * z - z.ln() - LN_SQRT_2PI;
    }
    let hi = z * z;
    let lo = z.mul_add(z, -hi);
    let x = 0.5 * hi;
    // Q(½, x) = x^½ e^{-x} / Γ(½) · CF, with ½ ln x = ln z - ½ ln 2, and P = Q / 2.
    -1.5 * LN_2 + z.ln() - 0.5 * hi - 0.5 * lo - LN_SQRT_PI + upper_cf(0.5, x).ln()
}

/// `erf(t)` for `0 <= t < 1` by the positive series
/// `erf(t) = 2/√π · t e^{-t²} Σ_{j>=0} (2t²)^j / (1·3···(2j+1))`.
fn erf_small(t: f64) -> f64 {
    let w = 2.0 * t * t;
    let mut term = 1.0;
    let mut sum = 1.0;
    for j in 1..200u32 {
        term *= w / f64::from(2 * j + 1);
        sum += term;
        if term < sum * f64::EPSILON * 0.25 {
            break;
        }
    }
    FRAC_2_SQRT_PI * t * (-t * t).exp() * sum
}

/// `ln P(Z >= z)`; the caller has rejected NaN.
pub(super) fn upper_tail_ln(z: f64) -> f64 {
    if z >= SQRT_2 {
        upper_far(z)
    } else if z > -SQRT_2 {
        let e = erf_small(z.abs() * FRAC_1_SQRT_2);
        let half = if z >= 0.0 { (-e).ln_1p() } else { e.ln_1p() };
        half - LN_2
    } else {
        log1mexp(upper_far(-z))
    }
}
