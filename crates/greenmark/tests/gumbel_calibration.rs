//! False-positive calibration of the Gumbel detector on text written without the key.
//!
//! With dedup, every scored position has a context not seen before in the text, so under the
//! null (the text does not depend on the key) its uniform is a fresh draw and its score
//! `-ln(1 - u)` is `Exp(1)`; the sum of `n` is `Gamma(n, 1)` and the test `p = Q(n, S)` has
//! size exactly `alpha` (the statistic is continuous, up to the 2^-24 grid of vLLM's
//! uniforms). With a fresh key per text the rejections are independent Bernoulli(`alpha`)
//! trials, so the count of rejections among `N` texts must fall inside the central 99.9%
//! interval of Binomial(`N`, `alpha`), computed exactly with `greenmark::stats`.
//!
//! Sources: uniform tokens, the synthetic Zipf language model, and a repetitive source (a
//! short cycle with 10% noise) on which the detector *without* dedup is shown to be far off:
//! the contrast proves the check can fail. Run with `--nocapture` to see the rates.

use greenmark::gumbel::{Algorithm, GumbelConfig, GumbelDetector, GumbelKey};
use greenmark::stats::binomial_tail_ln;
use greenmark::synthetic::ZipfLm;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const VOCAB: u32 = 49152;
const TEXTS: usize = 3000;
const ALPHAS: [f64; 2] = [1e-2, 1e-3];
/// Each tail of the interval holds at most this probability (two-sided 99.9%).
const TAIL: f64 = 0.0005;

#[derive(Clone, Copy, Debug)]
enum Source {
    Uniform,
    ZipfLm,
    Cycle,
}

fn text(source: Source, lm: &ZipfLm, rng: &mut ChaCha8Rng) -> Vec<u32> {
    let n = rng.gen_range(20..=300);
    match source {
        Source::Uniform => (0..n).map(|_| rng.gen_range(0..VOCAB)).collect(),
        Source::ZipfLm => lm.generate_plain(rng.gen_range(0..VOCAB), n, rng),
        Source::Cycle => {
            let cycle: Vec<u32> = (0..rng.gen_range(3..=10))
                .map(|_| rng.gen_range(0..VOCAB))
                .collect();
            (0..n)
                .map(|i| {
                    if rng.gen_bool(0.1) {
                        rng.gen_range(0..VOCAB)
                    } else {
                        cycle[i % cycle.len()]
                    }
                })
                .collect()
        }
    }
}

/// The central `1 - 2 TAIL` interval `[lo, hi]` of Binomial(`n`, `p`), exactly.
fn binomial_interval(n: u64, p: f64) -> (u64, u64) {
    let ln_tail = TAIL.ln();
    // hi: the smallest c with P(X >= c + 1) <= TAIL.
    let hi = (0..=n)
        .find(|&c| binomial_tail_ln(c + 1, n, p) <= ln_tail)
        .unwrap_or(n);
    // lo: the largest c with P(X <= c - 1) = 1 - P(X >= c) <= TAIL.
    let lo = (0..=n)
        .take_while(|&c| c == 0 || -(binomial_tail_ln(c, n, p).exp_m1()) <= TAIL)
        .last()
        .unwrap_or(0);
    (lo, hi)
}

/// Rejections at each alpha over `TEXTS` texts of `source`, a fresh key per text; with
/// `bound`, the conservative `ln_p_value_bound` is tested instead of `ln_p_value`.
fn rejections(
    source: Source,
    config: GumbelConfig,
    dedup: bool,
    bound: bool,
    seed: u64,
) -> [u64; 2] {
    let lm = ZipfLm::new(VOCAB, 1.1).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut counts = [0u64; 2];
    for _ in 0..TEXTS {
        let key = GumbelKey::vllm(rng.gen());
        let tokens = text(source, &lm, &mut rng);
        let d = GumbelDetector::new(key, config)
            .unwrap()
            .with_dedup(dedup)
            .detect(&tokens)
            .unwrap();
        let ln_p = if bound {
            d.ln_p_value_bound
        } else {
            d.ln_p_value
        };
        for (count, alpha) in counts.iter_mut().zip(ALPHAS) {
            *count += u64::from(ln_p <= alpha.ln());
        }
    }
    counts
}

#[test]
fn gamma_tail_test_has_its_nominal_size() {
    let configs = [
        ("gumbel", GumbelConfig::default()),
        ("dual alpha 0.5", {
            let mut c = GumbelConfig::new(Algorithm::DualKeyGumbel);
            c.alpha = 0.5;
            c
        }),
    ];
    for (name, config) in configs {
        for (i, source) in [Source::Uniform, Source::ZipfLm, Source::Cycle]
            .into_iter()
            .enumerate()
        {
            let counts = rejections(source, config, true, false, 100 + i as u64);
            for (count, alpha) in counts.into_iter().zip(ALPHAS) {
                let (lo, hi) = binomial_interval(TEXTS as u64, alpha);
                eprintln!(
                    "{name:<15} {source:<8?} alpha {alpha:<6} rejected {count:>4}/{TEXTS} \
                     (rate {:.4}; exact 99.9% interval [{lo}, {hi}])",
                    count as f64 / TEXTS as f64
                );
                assert!(
                    (lo..=hi).contains(&count),
                    "{name} on {source:?}: {count} rejections at alpha {alpha}, outside [{lo}, {hi}]"
                );
            }
        }
    }
}

/// Dual-key with alpha 0.1: vLLM's moment-matched p-value is an approximation, reported; the
/// Chernoff bound greenmark adds is provably conservative: its rate must not exceed alpha's
/// upper bound.
#[test]
fn dual_key_bound_is_conservative() {
    let mut config = GumbelConfig::new(Algorithm::DualKeyGumbel);
    config.alpha = 0.1;
    for (i, source) in [Source::Uniform, Source::ZipfLm].into_iter().enumerate() {
        let matched = rejections(source, config, true, false, 200 + i as u64);
        let bound = rejections(source, config, true, true, 200 + i as u64);
        for ((m, b), alpha) in matched.into_iter().zip(bound).zip(ALPHAS) {
            let (_, hi) = binomial_interval(TEXTS as u64, alpha);
            eprintln!(
                "dual alpha 0.1 {source:<8?} alpha {alpha:<6} moment-matched {m:>4}/{TEXTS}, \
                 Chernoff bound {b:>4}/{TEXTS} (upper limit {hi})"
            );
            assert!(
                b <= hi && b <= m,
                "{source:?}: bound rejected {b} (limit {hi}, matched {m})"
            );
        }
    }
}

/// The contrast: without dedup, repetitive text repeats its contexts' scores and the test is
/// far above its nominal size.
#[test]
fn without_dedup_repetitive_text_is_miscalibrated() {
    let counts = rejections(Source::Cycle, GumbelConfig::default(), false, false, 300);
    let (_, hi) = binomial_interval(TEXTS as u64, ALPHAS[0]);
    eprintln!(
        "no dedup, Cycle: rejected {}/{TEXTS} at alpha 0.01 (upper limit {hi})",
        counts[0]
    );
    assert!(counts[0] > 5 * hi, "{} rejections", counts[0]);
}
