//! Checks `greenmark::stats` against 60-digit mpmath references in
//! `tests/vectors/stats_tails.json` (regenerate with `scripts/gen_stats_vectors.py`).
#![cfg(feature = "serde")] // serde_json reads the vectors

use greenmark::stats::{binomial_pmf_ln, binomial_tail_ln, gamma_upper_tail_ln, normal_tail_ln};
use serde_json::Value;

/// `|Δ ln p| <= TOL · max(1, |ln p|)`; the measured worst case is reported by each test
/// (about 1e-12 for the binomial tail at n = 1e7, 1.5e-13 for the pmf, 5e-14 for gamma).
const TOL: f64 = 5e-12;
/// Near the mean the continued fraction's rounding grows like `sqrt(n)`: at n = 1e9 the
/// measured worst case is 8e-12.
const TOL_HUGE_N: f64 = 5e-11;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/stats_tails.json"
    );
    let text = std::fs::read_to_string(path).expect("read stats_tails.json");
    serde_json::from_str(&text).expect("parse stats_tails.json")
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {v}"))
        .parse()
        .unwrap_or_else(|e| panic!("{key} in {v}: {e}"))
}

fn int(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// The tolerance for one entry.
fn tol(e: &Value) -> f64 {
    match e.get("n").and_then(Value::as_u64) {
        Some(n) if n > 10_000_000 => TOL_HUGE_N,
        _ => TOL,
    }
}

/// Compares every entry of `section`, returns the worst scaled error and the count.
fn check(section: &str, eval: impl Fn(&Value) -> f64) -> (f64, usize) {
    let doc = vectors();
    let entries = doc[section].as_array().expect("section array");
    assert!(!entries.is_empty(), "{section} is empty");
    let mut worst = 0.0f64;
    let mut failures = Vec::new();
    for e in entries {
        let want = num(e, "ln");
        let got = eval(e);
        let err = (got - want).abs() / want.abs().max(1.0);
        if err.is_nan() || err > tol(e) {
            failures.push(format!(
                "{e}: got {got:e}, want {want:e}, scaled err {err:e}"
            ));
        }
        if err.is_finite() {
            worst = worst.max(err);
        }
    }
    println!(
        "{section}: {} entries, worst scaled error {worst:e}",
        entries.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    (worst, entries.len())
}

#[test]
fn stats_vectors_binomial_tail() {
    let (_, count) = check("binomial_tail", |e| {
        binomial_tail_ln(int(e, "k"), int(e, "n"), num(e, "p"))
    });
    assert!(count > 300);
    // The grid reaches p-values below 1e-1000 (ln < -2302.6), which must stay finite.
    let doc = vectors();
    let deep = doc["binomial_tail"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| num(e, "ln") < -2302.6)
        .count();
    assert!(deep > 20, "only {deep} entries below 1e-1000");
}

#[test]
fn stats_vectors_binomial_pmf() {
    check("binomial_pmf", |e| {
        binomial_pmf_ln(int(e, "k"), int(e, "n"), num(e, "p"))
    });
}

#[test]
fn stats_vectors_gamma_upper() {
    check("gamma_upper", |e| {
        gamma_upper_tail_ln(num(e, "a"), num(e, "x"))
    });
}

#[test]
fn stats_vectors_normal_upper() {
    check("normal_upper", |e| normal_tail_ln(num(e, "z")));
}
