//! Screening: its statistics against independent computations (SciPy reference values, naive
//! oracles), its counts against a plain per-chunk loop, its errors, and a key that is bad on
//! its corpus by construction.

use super::*;
use crate::scheme::{mix32, Seeder};
use crate::synthetic::ZipfLm;
use crate::{Key, Scheme, WatermarkConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const VOCAB: u32 = 4096;

fn zipf_documents(n_docs: usize, len: usize, seed: u64) -> Vec<Vec<u32>> {
    let lm = ZipfLm::new(VOCAB, 1.1).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n_docs)
        .map(|i| lm.generate_plain(i as u32, len, &mut rng))
        .collect()
}

fn detector(seed: u8, dedup: bool) -> Detector {
    Detector::new(
        &Key::from_bytes([seed; 32]),
        WatermarkConfig::new(u64::from(VOCAB)).unwrap(),
    )
    .with_dedup(dedup)
}

// ---------------------------------------------------------------------------------------
// Statistics against independent computations
// ---------------------------------------------------------------------------------------

/// `ln P(D+_m > d)` from SciPy 1.17.1, `scipy.stats.ksone.logsf(d, m)` (an independent
/// implementation: SciPy's `smirnov` in C, by its own recurrences).
const SCIPY_KSONE_LOGSF: [(f64, u64, f64); 6] = [
    (0.3, 10, -1.999052637200868),
    (0.1, 100, -2.066796559859593),
    (0.05, 1000, -5.03502470386093),
    (0.2, 1000, -80.84352516267575),
    (0.02, 5000, -4.013512526549865),
    (0.9, 3, -6.907755278982138),
];

#[test]
fn ks_tail_matches_scipy() {
    for (d, m, want) in SCIPY_KSONE_LOGSF {
        let got = stats::ks_plus_tail_ln(d, m);
        assert!(
            (got - want).abs() <= 1e-10 * want.abs().max(1.0),
            "d {d} m {m}: got {got}, scipy {want}"
        );
    }
    assert!(stats::ks_plus_tail_ln(f64::NAN, 3).is_nan());
    assert!(stats::ks_plus_tail_ln(0.5, 0).is_nan());
    assert_eq!(stats::ks_plus_tail_ln(1.5, 3), f64::NEG_INFINITY);
    // P(D+ >= 1) = P(U_(m) <= 0) = 0 for continuous values.
    assert_eq!(stats::ks_plus_tail_ln(1.0, 4), f64::NEG_INFINITY);
}

/// The statistic against its definition, sup over t of F(t) - t, evaluated on a fine grid
/// and just right of every value.
#[test]
fn ks_statistic_matches_its_definition() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for m in [1usize, 2, 7, 50] {
        let p: Vec<f64> = (0..m).map(|_| rng.gen::<f64>().powi(2)).collect();
        let ecdf = |t: f64| p.iter().filter(|&&x| x <= t).count() as f64 / m as f64;
        let mut naive = 0.0f64;
        for t in p
            .iter()
            .copied()
            .chain((0..=10_000).map(|i| i as f64 / 10_000.0))
        {
            naive = naive.max(ecdf(t) - t);
        }
        let got = stats::ks_plus_statistic(&p);
        assert!((got - naive).abs() < 1e-12, "m {m}: {got} vs {naive}");
    }
    assert_eq!(stats::ks_plus_statistic(&[]), 0.0);
}

/// Monte Carlo size of the KS tail: with uniform values, P(tail <= 0.05) is about 0.05;
/// with super-uniform discrete binomial p-values it is below (the coupling argument).
#[test]
fn ks_tail_is_calibrated_and_conservative_for_discrete_p_values() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (trials, m) = (4000, 40usize);
    let (mut uniform_hits, mut discrete_hits) = (0u32, 0u32);
    for _ in 0..trials {
        let u: Vec<f64> = (0..m).map(|_| rng.gen()).collect();
        if stats::ks_plus_tail_ln(stats::ks_plus_statistic(&u), m as u64) <= 0.05f64.ln() {
            uniform_hits += 1;
        }
        // Exact binomial p-values of 30 tuples at gamma 0.25: discrete.
        let p: Vec<f64> = (0..m)
            .map(|_| {
                let g = (0..30).filter(|_| rng.gen::<f64>() < 0.25).count() as u64;
                stats::binomial_tail_ln(g, 30, 0.25).exp()
            })
            .collect();
        if stats::ks_plus_tail_ln(stats::ks_plus_statistic(&p), m as u64) <= 0.05f64.ln() {
            discrete_hits += 1;
        }
    }
    let rate = f64::from(uniform_hits) / f64::from(trials);
    // Binomial(4000, 0.05): sd 0.0034; a 5-sd band.
    assert!((rate - 0.05).abs() < 0.018, "uniform size {rate}");
    let rate = f64::from(discrete_hits) / f64::from(trials);
    assert!(rate < 0.05 + 0.018, "discrete size {rate}");
}

/// Poisson-binomial tail against a plain convolution of the full distribution.
#[test]
fn poisson_binomial_tail_matches_a_convolution() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for len in [1usize, 5, 60, 300] {
        let probs: Vec<f64> = (0..len).map(|_| rng.gen::<f64>() * 0.3).collect();
        let mut pmf = vec![1.0f64];
        for &p in &probs {
            let mut next = vec![0.0; pmf.len() + 1];
            for (j, &q) in pmf.iter().enumerate() {
                next[j] += q * (1.0 - p);
                next[j + 1] += q * p;
            }
            pmf = next;
        }
        for k in [0usize, 1, len / 4, len / 2, len] {
            let want: f64 = pmf[k..].iter().sum();
            let got = stats::poisson_binomial_tail_ln(&probs, k as u64).exp();
            assert!(
                (got - want).abs() <= 1e-12 * want.max(1e-300) + 1e-300,
                "len {len} k {k}: {got:e} vs {want:e}"
            );
        }
    }
    // Far below f64's range it stays finite: 400 successes of probability 1e-3.
    let tiny = stats::poisson_binomial_tail_ln(&[1e-3; 400], 400);
    assert!((tiny - 400.0 * 1e-3f64.ln()).abs() < 1e-9, "{tiny}");
    assert_eq!(
        stats::poisson_binomial_tail_ln(&[0.5; 3], 4),
        f64::NEG_INFINITY
    );
    assert!(stats::poisson_binomial_tail_ln(&[1.5], 1).is_nan());
}

// ---------------------------------------------------------------------------------------
// The screen itself
// ---------------------------------------------------------------------------------------

#[test]
fn bad_input_is_a_typed_error() {
    for n in [0, 1] {
        let err = ScreenCorpus::new(n).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidOption {
                    option: "chunk_tokens",
                    ..
                }
            ),
            "{err}"
        );
    }
    let mut corpus = ScreenCorpus::new(100).unwrap();
    let err = corpus
        .screen(&detector(1, true), &ScreenOptions::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                option: "corpus",
                ..
            }
        ),
        "{err}"
    );
    let err = corpus.add_genre::<Vec<u32>>("empty", &[]).unwrap_err();
    assert!(err.to_string().contains("no documents"), "{err}");
    let err = corpus.add_genre("short", &[vec![1u32; 99]]).unwrap_err();
    assert!(err.to_string().contains("the longest has 99"), "{err}");
    let err = corpus.add_genre(" ", &[vec![1u32; 100]]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                option: "genre",
                ..
            }
        ),
        "{err}"
    );
    corpus.add_genre("a", &[vec![1u32; 250]]).unwrap();
    assert_eq!(corpus.genres(), vec![("a", 2)]);
    assert_eq!(corpus.dropped_tokens(), 50);
    let err = corpus.add_genre("a", &[vec![1u32; 100]]).unwrap_err();
    assert!(err.to_string().contains("added twice"), "{err}");
    corpus
        .add_genre("b", &[vec![5u32; 150], vec![VOCAB; 100]])
        .unwrap();
    let err = corpus
        .screen(&detector(1, true), &ScreenOptions::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::TokenOutOfRange {
                token: VOCAB,
                position: 100,
                sequence: "corpus",
                ..
            }
        ),
        "{err}"
    );
    for (level, tail) in [(0.0, 1e-3), (1.0, 1e-3), (0.01, f64::NAN), (0.01, 2.0)] {
        assert!(ScreenOptions::new(level, tail).is_err());
    }
}

/// Every count, expectation and test in a report, recomputed by a plain loop over the
/// chunks with `Detector::detect`.
#[test]
fn report_matches_a_per_chunk_recomputation() {
    let docs = zipf_documents(6, 1700, 21);
    let mut corpus = ScreenCorpus::new(200).unwrap();
    corpus.add_genre("zipf", &docs[..3]).unwrap();
    corpus.add_genre("zipf2", &docs[3..]).unwrap();
    let options = ScreenOptions::new(0.05, 1e-2).unwrap();
    for dedup in [true, false] {
        let det = detector(9, dedup);
        let report = corpus.screen(&det, &options).unwrap();
        assert_eq!(report.n_tests, 4);
        assert!((report.per_test_level - 0.05 / 4.0).abs() < 1e-18);
        assert_eq!(report.dedup, dedup);
        for (g, docs) in report.genres.iter().zip([&docs[..3], &docs[3..]]) {
            let detections: Vec<Detection> = docs
                .iter()
                .flat_map(|d| d.chunks_exact(200))
                .map(|c| det.detect(c, &[]).unwrap())
                .collect();
            assert_eq!(g.n_chunks, 24);
            assert_eq!(g.n_documents, 3);
            let ln_p: Vec<f64> = detections.iter().map(|d| d.ln_p_value).collect();
            assert_eq!(g.ln_p_values, ln_p);
            for f in &g.fpr {
                let count = ln_p.iter().filter(|&&l| l < f.threshold.ln()).count() as u64;
                assert_eq!(f.count, count);
                // Naive null rate: sum the pmf over the green counts whose p-value is
                // below the threshold.
                let expected: f64 = detections
                    .iter()
                    .map(|d| {
                        (0..=d.n_scored)
                            .filter(|&k| {
                                stats::binomial_tail_ln(k, d.n_scored, d.gamma) < f.threshold.ln()
                            })
                            .map(|k| stats::binomial_pmf_ln(k, d.n_scored, d.gamma).exp())
                            .sum::<f64>()
                    })
                    .sum();
                assert!(
                    (f.expected - expected).abs() < 1e-9 * expected.max(1e-12),
                    "{f:?} vs {expected}"
                );
                assert!(f.expected <= f.threshold * 24.0);
            }
            let p: Vec<f64> = ln_p.iter().map(|l| l.exp()).collect();
            assert_eq!(g.ks.d_plus, stats::ks_plus_statistic(&p));
            assert_eq!(g.tail.count, g.fpr[0].count);
            assert!((g.tail.expected - g.fpr[0].expected).abs() < 1e-12);
            assert_eq!(
                g.passed,
                g.ks.ln_p_value >= (0.05f64 / 4.0).ln()
                    && g.tail.ln_p_value >= (0.05f64 / 4.0).ln()
            );
        }
        let total: u64 = report.genres.iter().map(|g| g.fpr[1].count).sum();
        assert_eq!(report.overall[1].count, total);
        assert_eq!(report.passed, report.genres.iter().all(|g| g.passed));
    }
}

/// A path of `len` tokens whose every `lefthash` tuple is green under `key`: boilerplate
/// that this key happens to colour green, the extreme of the issue's "common tuples that
/// happen to be 32% green".
fn green_path(key: &Key, config: &WatermarkConfig, len: usize) -> Vec<u32> {
    let seeder = Seeder::new(key, config.scheme());
    let mut path = vec![17u32];
    let mut candidate = 1000u32;
    while path.len() < len {
        let seed = seeder.context_seed(&path[path.len() - 1..]);
        candidate = (candidate * 31 + 7) % VOCAB;
        if mix32(seed, candidate) < config.threshold() && !path.contains(&candidate) {
            path.push(candidate);
        }
    }
    path
}

/// A corpus where every chunk carries the same 60-token boilerplate, green under one key:
/// that key is rejected (both tests, with and without dedup), while keys that did not make
/// the boilerplate pass about as often as on plain text.
#[test]
fn a_key_that_colours_common_tuples_green_is_rejected() {
    let config = WatermarkConfig::new(u64::from(VOCAB)).unwrap();
    let bad = Key::from_bytes([200; 32]);
    let boilerplate = green_path(&bad, &config, 60);
    let docs = zipf_documents(1, 40 * 140, 8);
    let chunks: Vec<Vec<u32>> = docs[0]
        .chunks_exact(140)
        .map(|c| boilerplate.iter().chain(c).copied().collect())
        .collect();
    let mut corpus = ScreenCorpus::new(200).unwrap();
    corpus.add_genre("boilerplate", &chunks).unwrap();
    for dedup in [true, false] {
        let d = Detector::new(&bad, config.clone()).with_dedup(dedup);
        let report = corpus.screen(&d, &ScreenOptions::default()).unwrap();
        let g = &report.genres[0];
        assert!(
            !report.passed && !g.ks.passed && !g.tail.passed,
            "{:?}",
            report.failures()
        );
        assert_eq!(
            g.fpr[1].count, 40,
            "every chunk is a false positive at 1e-3"
        );
        assert_eq!(report.failures().len(), 2);
    }
    let passed = (1..=20u8)
        .filter(|&s| {
            corpus
                .screen(&detector(s, true), &ScreenOptions::default())
                .unwrap()
                .passed
        })
        .count();
    assert!(passed >= 14, "{passed} of 20 other keys passed");
}

/// Repeated text without dedup: one phrase repeated fills every chunk with copies of the
/// same tuples, so one key's colouring of 30 tuples decides every chunk. A key that colours
/// 12 of them green is rejected without dedup; with dedup each chunk scores 29 tuples and
/// the p-values are valid (if coarse), so the same corpus is not held against the key.
#[test]
fn repeated_text_without_dedup_rejects_a_key_dedup_does_not() {
    let config = WatermarkConfig::new(u64::from(VOCAB)).unwrap();
    let phrase: Vec<u32> = (0..30u32).map(|i| (i * 997 + 11) % VOCAB).collect();
    let text: Vec<u32> = phrase.iter().copied().cycle().take(30 * 200).collect();
    let mut corpus = ScreenCorpus::new(300).unwrap();
    corpus.add_genre("repeated", &[text]).unwrap();
    // A key under which the phrase's 30 cyclic tuples are at least 40% green.
    let green_share = |key: &Key| {
        let seeder = Seeder::new(key, Scheme::default());
        (0..30)
            .filter(|&i| {
                let seed = seeder.context_seed(&[phrase[(i + 29) % 30]]);
                mix32(seed, phrase[i]) < config.threshold()
            })
            .count()
    };
    let key = (0..=255u8)
        .map(|b| Key::from_bytes([b; 32]))
        .find(|k| green_share(k) >= 12)
        .expect("some key colours 12 of 30 tuples green");
    let plain = Detector::new(&key, config.clone()).with_dedup(false);
    let report = corpus.screen(&plain, &ScreenOptions::default()).unwrap();
    assert!(
        !report.passed,
        "no dedup: every chunk is ~40% green over 299 positions"
    );
    assert_eq!(report.genres[0].fpr[1].count, 20);
    let dedup = Detector::new(&key, config);
    let report = corpus.screen(&dedup, &ScreenOptions::default()).unwrap();
    assert!(report.genres[0].mean_scored <= 30.0);
    assert_eq!(
        report.genres[0].fpr[1].count, 0,
        "29 tuples cannot reach 1e-3 at 12 green"
    );
}

#[test]
fn random_keys_mostly_pass_on_independent_text() {
    let docs = zipf_documents(8, 4000, 99);
    let mut corpus = ScreenCorpus::new(200).unwrap();
    corpus.add_genre("zipf-a", &docs[..4]).unwrap();
    corpus.add_genre("zipf-b", &docs[4..]).unwrap();
    let passed = (1..=20u8)
        .filter(|&s| {
            corpus
                .screen(&detector(s, true), &ScreenOptions::default())
                .unwrap()
                .passed
        })
        .count();
    assert!(passed >= 17, "{passed} of 20 keys passed");
}

#[cfg(feature = "serde")]
#[test]
fn report_serializes_without_the_per_chunk_values() {
    let docs = zipf_documents(1, 1000, 2);
    let mut corpus = ScreenCorpus::new(500).unwrap();
    corpus.add_genre("z", &docs).unwrap();
    let report = corpus
        .screen(&detector(4, true), &ScreenOptions::default())
        .unwrap();
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["genres"][0]["n_chunks"], 2);
    assert!(json["genres"][0].get("ln_p_values").is_none());
    assert_eq!(json["key_id"], report.key_id.to_string());
    assert!(json["genres"][0]["ks"]["log10_p_value"].is_number());
}
