//! TEMPORARY PLACEHOLDER written by the lead so the crate compiles; helper-1 replaces this whole
//! file (or deletes it in favour of src/stats/mod.rs). Not the real implementation.
#![allow(missing_docs)]
pub fn binomial_tail_ln(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 { return 0.0; }
    if k > n { return f64::NEG_INFINITY; }
    let lg = |x: f64| -> f64 { (1..=(x as u64)).map(|i| (i as f64).ln()).sum() };
    let terms: Vec<f64> = (k..=n).map(|j| lg(n as f64) - lg(j as f64) - lg((n - j) as f64) + j as f64 * p.ln() + (n - j) as f64 * (1.0 - p).ln()).collect();
    let m = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln()
}
pub fn ln_to_log10(ln: f64) -> f64 { ln / std::f64::consts::LN_10 }
