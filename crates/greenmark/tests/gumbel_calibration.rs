//! False-positive calibration of the Gumbel detector on text written without the key.
//!
//! With dedup, every scored position has a context not seen before in the text, so under the
//! null (the text does not depend on the key) its uniform is a fresh draw and its score
//! `-ln(1 - u)` is `Exp(1)`; the sum of `n` is `Gamma(n, 1)` and the test `p = Q(n, S)` has
//! size exactly its level (the statistic is continuous, up to the 2^-24 grid of vLLM's
//! uniforms). With a fresh key per text the rejections are independent Bernoulli trials, so
//! the count of rejections among `N` texts must fall inside the exact bounds of
//! Binomial(`N`, level) (`common/rate.rs`: each side fails a correct detector with
//! probability at most 1e-6).
//!
//! The design: at level 1e-3, `N = 71,000` texts is the smallest multiple of 1000 for which a
//! doubled rate (every p-value reported half its size) exceeds the upper bound (114
//! rejections, expected 71) with probability >= 0.99; the power is computed from the exact
//! binomial and asserted, and `halved_p_values_fail_the_same_harness` shows the harness
//! rejecting `p / 2` on every case.
//!
//! Sources: uniform tokens, the synthetic Zipf language model, and a repetitive source (a
//! short cycle with 10% noise) on which the detector *without* dedup is shown to be far off.
//! Run with `--nocapture` to see the rates.

#[path = "common/rate.rs"]
mod rate;

use greenmark::gumbel::{Algorithm, GumbelConfig, GumbelDetector, GumbelKey};
use greenmark::synthetic::ZipfLm;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rate::{RateTest, MIN_POWER};

#[path = "common/trials.rs"]
mod trials;
use trials::trials;

const VOCAB: u32 = 49152;
/// Null texts per case.
const TEXTS: u64 = 71_000;
/// The level the design is sized for; `is_watermarked` is computed at this threshold.
const LEVEL: f64 = 1e-3;
/// A second level, checked with the same bounds (its power is higher still).
const LEVEL_2: f64 = 1e-2;

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

/// What the tests read from one detection.
#[derive(Clone, Copy)]
struct Outcome {
    /// vLLM's p-value (`ln_p_value`).
    ln_p: f64,
    /// The exact-or-conservative one (`ln_p_value_bound`).
    ln_bound: f64,
    /// The verdict at threshold LEVEL.
    watermarked: bool,
}

/// One detection per text of `texts` texts of `source`, a fresh key per text.
fn outcomes(
    source: Source,
    config: GumbelConfig,
    dedup: bool,
    seed: u64,
    texts: u64,
) -> Vec<Outcome> {
    let lm = ZipfLm::new(VOCAB, 1.1).unwrap();
    trials(texts as usize, seed, |_, rng| {
        let key = GumbelKey::vllm(rng.gen());
        let tokens = text(source, &lm, rng);
        let d = GumbelDetector::new(key, config)
            .unwrap()
            .with_dedup(dedup)
            .with_threshold(LEVEL)
            .unwrap()
            .detect(&tokens)
            .unwrap();
        Outcome {
            ln_p: d.ln_p_value,
            ln_bound: d.ln_p_value_bound,
            watermarked: d.is_watermarked,
        }
    })
}

fn count(outcomes: &[Outcome], reject: impl Fn(&Outcome) -> bool) -> u64 {
    outcomes.iter().filter(|o| reject(o)).count() as u64
}

/// The rate test at `level` for TEXTS trials, with its power against a doubled rate asserted.
fn design(level: f64) -> RateTest {
    let test = RateTest::new(TEXTS, level);
    let power = test.rejects_with(2.0 * level);
    eprintln!(
        "design: {TEXTS} texts at level {level:e}: pass range [{}, {}] (expected {:.0}); \
         power against a doubled rate {power:.4}",
        test.lo,
        test.hi,
        TEXTS as f64 * level
    );
    assert!(power >= MIN_POWER, "power {power} at level {level}");
    test
}

fn exact_configs() -> [(&'static str, GumbelConfig); 2] {
    [
        ("gumbel", GumbelConfig::default()),
        ("dual alpha 0.5", {
            let mut c = GumbelConfig::new(Algorithm::DualKeyGumbel);
            c.alpha = 0.5;
            c
        }),
    ]
}

const SOURCES: [Source; 3] = [Source::Uniform, Source::ZipfLm, Source::Cycle];

/// The exact cases (gumbel, dual-key alpha 0.5) on every source: the verdict at 1e-3 and
/// `p <= 1e-2` are rejected at their nominal rates; and `p / 2` (a p-value twice too small) is
/// caught by the same bounds on every case.
#[test]
fn gamma_tail_test_has_its_nominal_size_and_halved_p_values_fail() {
    let (test, test_2) = (design(LEVEL), design(LEVEL_2));
    let mut seed = 100;
    for (name, config) in exact_configs() {
        for source in SOURCES {
            seed += 1;
            let runs = outcomes(source, config, true, seed, TEXTS);
            let at_level = count(&runs, |o| o.watermarked);
            assert_eq!(at_level, count(&runs, |o| o.ln_p <= LEVEL.ln()));
            let at_level_2 = count(&runs, |o| o.ln_p <= LEVEL_2.ln());
            let halved = count(&runs, |o| o.ln_p - 2f64.ln() <= LEVEL.ln());
            eprintln!(
                "{name:<15} {source:<8?} is_watermarked at {LEVEL:e}: {at_level:>4}/{TEXTS} \
                 (rate {:.2e}, pass [{}, {}]); p <= {LEVEL_2:e}: {at_level_2:>5} (pass [{}, {}]); \
                 p/2 <= {LEVEL:e}: {halved} (must fail)",
                at_level as f64 / TEXTS as f64,
                test.lo,
                test.hi,
                test_2.lo,
                test_2.hi,
            );
            assert!(
                test.passes(at_level),
                "{name} on {source:?}: {at_level} rejections at {LEVEL}, outside [{}, {}]",
                test.lo,
                test.hi
            );
            assert!(
                test_2.passes(at_level_2),
                "{name} on {source:?}: {at_level_2} rejections at {LEVEL_2}, outside [{}, {}]",
                test_2.lo,
                test_2.hi
            );
            // The harness can fail: the same bounds reject a p-value reported at half its size.
            assert!(
                halved > test.hi,
                "{name} on {source:?}: p/2 gave {halved} rejections, not above {}",
                test.hi
            );
        }
    }
}

/// Dual-key with alpha 0.1 on token text: vLLM's moment-matched p-value (reported) is an
/// approximation; the verdict, on the Chernoff bound, must not exceed the level's bound.
#[test]
fn dual_key_verdict_is_conservative_on_text() {
    let test = design(LEVEL);
    let mut config = GumbelConfig::new(Algorithm::DualKeyGumbel);
    config.alpha = 0.1;
    for (i, source) in [Source::Uniform, Source::ZipfLm].into_iter().enumerate() {
        let runs = outcomes(source, config, true, 200 + i as u64, TEXTS);
        let verdicts = count(&runs, |o| o.watermarked);
        assert_eq!(verdicts, count(&runs, |o| o.ln_bound <= LEVEL.ln()));
        let matched = count(&runs, |o| o.ln_p <= LEVEL.ln());
        eprintln!(
            "dual alpha 0.1 {source:<8?} at {LEVEL:e}: is_watermarked {verdicts:>4}/{TEXTS} \
             (rate {:.2e}), vLLM's moment-matched p {matched:>4}/{TEXTS}; upper bound {}",
            verdicts as f64 / TEXTS as f64,
            test.hi
        );
        assert!(
            verdicts <= test.hi && verdicts <= matched,
            "{source:?}: {verdicts} verdicts (bound {}, moment-matched {matched})",
            test.hi
        );
    }
}

/// The dual-key verdict at alpha 0.3 and small n, straight from the null distribution: two
/// `Exp(1)` scores per token (`-ln(1 - u)`, `u` uniform), `S = 0.7 S_A + 0.3 S_B`, decided by
/// [`GumbelDetector::summarize`]. The rate of `is_watermarked` at 1e-3 must stay within the
/// upper bound of Binomial(71,000, 1e-3) (power 0.99 against 2e-3). Its real size, by
/// numerical integration of the exact law, is 7.1e-5 at n = 10 and 9.0e-5 at n = 100 (vLLM's
/// moment-matched p: 1.19e-3 and 1.07e-3).
#[test]
fn dual_key_verdict_is_conservative_under_the_null() {
    let test = design(LEVEL);
    let mut config = GumbelConfig::new(Algorithm::DualKeyGumbel);
    config.alpha = 0.3;
    let detector = GumbelDetector::new(GumbelKey::vllm(0), config)
        .unwrap()
        .with_threshold(LEVEL)
        .unwrap();
    for (i, n) in [10u64, 100].into_iter().enumerate() {
        let runs = trials(TEXTS as usize, 300 + i as u64, |_, rng| {
            let exp = |rng: &mut ChaCha8Rng| -(-rng.gen::<f64>()).ln_1p();
            let score: f64 = (0..n).map(|_| 0.7 * exp(rng) + 0.3 * exp(rng)).sum();
            let d = detector.summarize(n as usize, n, score);
            assert!(!d.exact && d.ln_p_value_bound >= d.ln_p_value);
            Outcome {
                ln_p: d.ln_p_value,
                ln_bound: d.ln_p_value_bound,
                watermarked: d.is_watermarked,
            }
        });
        let verdicts = count(&runs, |o| o.watermarked);
        assert_eq!(verdicts, count(&runs, |o| o.ln_bound <= LEVEL.ln()));
        let matched = count(&runs, |o| o.ln_p <= LEVEL.ln());
        eprintln!(
            "dual alpha 0.3 n={n:<4} null scores at {LEVEL:e}: is_watermarked {verdicts:>3}/{TEXTS} \
             (rate {:.2e}; upper bound {}), vLLM's moment-matched p {matched}/{TEXTS} (rate {:.2e})",
            verdicts as f64 / TEXTS as f64,
            test.hi,
            matched as f64 / TEXTS as f64,
        );
        assert!(verdicts <= test.hi, "n={n}: {verdicts} > {}", test.hi);
    }
}

/// The contrast: without dedup, repetitive text repeats its contexts' scores and the test is
/// far above its nominal size.
#[test]
fn without_dedup_repetitive_text_is_miscalibrated() {
    let texts = 3000;
    let test = RateTest::new(texts, LEVEL_2);
    let runs = outcomes(Source::Cycle, GumbelConfig::default(), false, 400, texts);
    let rejected = count(&runs, |o| o.ln_p <= LEVEL_2.ln());
    eprintln!(
        "no dedup, Cycle: rejected {rejected}/{texts} at {LEVEL_2:e} (upper bound {})",
        test.hi
    );
    assert!(rejected > 5 * test.hi, "{rejected} rejections");
}
