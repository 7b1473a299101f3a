//! The shift null of SynthID detection (power-of-two tables) against independent computations.
//!
//! * Brute force over the keys themselves: on a 2^6 table, every key tuple `k_1..k_D` in
//!   `0..64` (the key matters only modulo the table size, so this is the exact law over
//!   uniformly random int64 keys) is run through transformers' hash as the colleague's
//!   [`hash_tokens`] / [`accumulate_hash`] compute it, the detector's dedup rule applied, and the
//!   fraction of tuples at or above the observed statistic counted: the detector's p-values
//!   must equal it.
//! * On the default 2^16 table: the per-depth count for every key residue `0..2^16` through
//!   the same hash, its histogram convolved D times in exact big-integer arithmetic
//!   (`num-bigint`), the tail divided by `2^(16 D)` as an exact rational: the mean score's
//!   p-value must match, far into the tail (e^-180 at depth 64).
//! * Calibration on human text (this repository's docs, the SmolLM2 tokenizer) with random
//!   int64 keys: the fraction of p <= α is at most α (plus the binomial slack of
//!   `common/rate.rs`) at α = 1e-2 and 1e-3, for both scores.
//! * Watermarked text is still detected.

#[path = "common/rate.rs"]
mod rate;
#[path = "common/trials.rs"]
mod trials;

use greenmark::stats::TailMethod;
use greenmark::synthetic::{sample, ZipfLm};
use greenmark::synthid::{
    accumulate_hash, hash_tokens, SynthIdConfig, SynthIdDetector, SynthIdNull, SynthIdTable,
    SynthIdWatermarker,
};
use num_bigint::BigUint;
use num_traits::{ToPrimitive, Zero};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rate::{RateTest, MIN_POWER};
use trials::trials;

fn table(size: usize, seed: u64, ngram_len: usize, keys: Vec<i64>) -> SynthIdTable {
    let mut c = SynthIdConfig::new(ngram_len, keys).unwrap();
    c.sampling_table_size = size;
    c.sampling_table_seed = seed;
    SynthIdTable::new(c).unwrap()
}

/// The ones the detector counts at a depth keyed `key` (no EOS; the context repetition mask
/// and the dedup by table entry applied as detect.rs documents them), through the hash only.
fn ones_with_key(t: &SynthIdTable, ids: &[u32], key: i64) -> u64 {
    let n = t.config().ngram_len;
    let size = t.table().len() as i64;
    let rep = t.context_repetition_mask(ids);
    let mut seen = std::collections::HashSet::new();
    let mut ones = 0;
    for (j, ngram) in ids.windows(n).enumerate() {
        if !rep[j] {
            continue;
        }
        let index = accumulate_hash(hash_tokens(ngram), key).rem_euclid(size) as usize;
        if seen.insert(index) {
            ones += u64::from(t.table()[index]);
        }
    }
    ones
}

fn weights(depth: usize) -> Vec<u64> {
    let d = depth as u64;
    if d == 1 {
        vec![1]
    } else {
        (0..d).map(|i| 10 * (d - 1) - 9 * i).collect()
    }
}

fn distinct_keys(depth: usize, rng: &mut ChaCha8Rng) -> Vec<i64> {
    let mut keys: Vec<i64> = Vec::new();
    while keys.len() < depth {
        let k: i64 = rng.gen();
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

#[test]
fn p_values_equal_the_fraction_of_key_tuples_brute_force() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let size = 64usize;
    let mut checked = 0;
    for trial in 0..40 {
        let depth = 1 + trial % 3;
        let n = 2 + trial % 4;
        let keys = distinct_keys(depth, &mut rng);
        let t = table(size, trial as u64, n, keys);
        let len = rng.gen_range(n..40);
        let ids: Vec<u32> = (0..len).map(|_| rng.gen_range(0..30)).collect();
        let d = SynthIdDetector::from_table(t.clone())
            .unwrap()
            .with_max_lattice_work(u64::MAX)
            .detect(&ids)
            .unwrap();
        assert_eq!(d.null, SynthIdNull::ShiftExact);
        // The detector's own counts are those of its keys through the hash.
        for (k, &key) in t.config().keys.iter().enumerate() {
            assert_eq!(d.ones_per_depth[k], ones_with_key(&t, &ids, key));
        }
        let per_key: Vec<u64> = (0..size as i64)
            .map(|k| ones_with_key(&t, &ids, k))
            .collect();
        let w = weights(depth);
        let (mut ge_mean, mut ge_weighted) = (0u64, 0u64);
        let total = (size as u64).pow(depth as u32);
        let mut idx = vec![0usize; depth];
        for _ in 0..total {
            let mean: u64 = idx.iter().map(|&i| per_key[i]).sum();
            let weighted: u64 = idx.iter().zip(&w).map(|(&i, c)| c * per_key[i]).sum();
            ge_mean += u64::from(mean >= d.mean.statistic);
            ge_weighted += u64::from(weighted >= d.weighted.statistic);
            for x in idx.iter_mut() {
                *x += 1;
                if *x < size {
                    break;
                }
                *x = 0;
            }
        }
        let exact_mean = (ge_mean as f64 / total as f64).ln();
        let exact_weighted = (ge_weighted as f64 / total as f64).ln();
        assert_eq!(d.mean.method, TailMethod::Exact);
        assert_eq!(d.weighted.method, TailMethod::Exact);
        assert!(
            (d.mean.ln_p_value - exact_mean).abs() <= 1e-9 * exact_mean.abs().max(1.0),
            "trial {trial}: mean {} vs {exact_mean}",
            d.mean.ln_p_value
        );
        assert!(
            (d.weighted.ln_p_value - exact_weighted).abs() <= 1e-9 * exact_weighted.abs().max(1.0),
            "trial {trial}: weighted {} vs {exact_weighted}",
            d.weighted.ln_p_value
        );
        // The Chernoff fallback never undercuts the exact value.
        let bound = SynthIdDetector::from_table(t)
            .unwrap()
            .with_max_lattice_work(0)
            .detect(&ids)
            .unwrap();
        assert!(bound.weighted.ln_p_value >= exact_weighted - 1e-12);
        assert!(bound.mean.ln_p_value >= exact_mean - 1e-12);
        checked += u64::from(ge_mean < total);
    }
    assert!(checked >= 20, "too few informative trials: {checked}");
}

fn ln_big(x: &BigUint) -> f64 {
    if x.is_zero() {
        return f64::NEG_INFINITY;
    }
    let bits = x.bits();
    let shift = bits.saturating_sub(60);
    let top = (x >> shift).to_f64().unwrap();
    top.ln() + shift as f64 * std::f64::consts::LN_2
}

#[test]
fn mean_score_matches_exact_big_integer_convolution_on_the_default_table() {
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let size = 1usize << 16;
    for (trial, &(depth, len, watermark_like)) in [
        (1usize, 60usize, false),
        (4, 200, false),
        (9, 120, true),
        (30, 80, true),
        (64, 60, true),
    ]
    .iter()
    .enumerate()
    {
        let keys = distinct_keys(depth, &mut rng);
        let t = table(size, trial as u64, 3, keys.clone());
        let mut ids: Vec<u32> = (0..len).map(|_| rng.gen_range(0..5000)).collect();
        if watermark_like {
            // Push the observed statistic into the far tail: keep each token only if its
            // g-values under the real keys are mostly ones (a greedy "watermark").
            for i in 2..len {
                let mut best = (0u64, ids[i]);
                for cand in 0..200u32 {
                    ids[i] = cand;
                    let h = hash_tokens(&ids[i - 2..=i]);
                    let g: u64 = (0..depth).map(|k| u64::from(t.g(h, k))).sum();
                    if g > best.0 {
                        best = (g, cand);
                    }
                }
                ids[i] = best.1;
            }
        }
        let d = SynthIdDetector::from_table(t.clone())
            .unwrap()
            .with_max_lattice_work(u64::MAX)
            .detect(&ids)
            .unwrap();
        // The histogram over every key residue, through the hash.
        let mut hist: Vec<u64> = Vec::new();
        for k in 0..size as i64 {
            let c = ones_with_key(&t, &ids, k) as usize;
            if hist.len() <= c {
                hist.resize(c + 1, 0);
            }
            hist[c] += 1;
        }
        let mut poly = vec![BigUint::from(1u32)];
        for _ in 0..depth {
            let mut next = vec![BigUint::zero(); poly.len() + hist.len() - 1];
            for (u, a) in poly.iter().enumerate() {
                if a.is_zero() {
                    continue;
                }
                for (j, &h) in hist.iter().enumerate() {
                    if h > 0 {
                        next[u + j] += a * BigUint::from(h);
                    }
                }
            }
            poly = next;
        }
        let ge: BigUint = poly
            .iter()
            .skip(d.mean.statistic as usize)
            .fold(BigUint::zero(), |a, b| a + b);
        let exact = ln_big(&ge) - (16 * depth) as f64 * std::f64::consts::LN_2;
        eprintln!(
            "depth {depth} len {len}: statistic {} ln p {} (exact {exact}), binomial-free",
            d.mean.statistic, d.mean.ln_p_value
        );
        assert_eq!(d.mean.method, TailMethod::Exact);
        assert!(
            (d.mean.ln_p_value - exact).abs() <= 1e-9 * exact.abs().max(1.0),
            "depth {depth}: {} vs {exact}",
            d.mean.ln_p_value
        );
        if watermark_like {
            // Far in the tail (below 1e-308 is checked in null.rs's unit tests against a
            // log-space convolution).
            assert!(exact < -60.0, "not in the far tail: {exact}");
        }
    }
}

fn human_tokens() -> Vec<u32> {
    let text = [
        include_str!("../../../README.md"),
        include_str!("../../../docs/statistics.md"),
        include_str!("../../../docs/detection.md"),
        include_str!("../../../docs/radioactivity.md"),
    ]
    .join("\n\n");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/smollm2-tokenizer.json"
    );
    let tokenizer = greenmark::text::load_tokenizer_json(std::path::Path::new(path)).unwrap();
    tokenizer
        .encode(text.as_str(), false)
        .unwrap()
        .get_ids()
        .to_vec()
}

const TRIALS: u64 = 12_000;

#[test]
fn false_positive_rate_on_human_text_is_at_most_the_level() {
    let ids = human_tokens();
    assert!(ids.len() > 10_000);
    // Tables of seeds 0 and 1 for each ngram_len 2..=5 (index: 4 * seed + ngram_len - 2).
    let tables: Vec<SynthIdTable> = (0..2u64)
        .flat_map(|seed| (2..=5).map(move |n| table(1 << 16, seed, n, vec![1])))
        .collect();
    let outcomes: Vec<(f64, f64, bool)> = trials(TRIALS as usize, 2025, |i, rng| {
        let len = rng.gen_range(50..=400);
        let start = rng.gen_range(0..ids.len() - len);
        let depth = rng.gen_range(1..=30);
        let n = rng.gen_range(2..=5usize);
        let keys = distinct_keys(depth, rng);
        let t = tables[4 * (i % 2) + n - 2].with_keys(keys).unwrap();
        let d = SynthIdDetector::from_table(t)
            .unwrap()
            .detect(&ids[start..start + len])
            .unwrap();
        assert_eq!(d.null, SynthIdNull::ShiftExact);
        (
            d.mean.ln_p_value,
            d.weighted.ln_p_value,
            d.weighted.method == TailMethod::Chernoff,
        )
    });
    let chernoff = outcomes.iter().filter(|o| o.2).count();
    for level in [1e-2, 1e-3] {
        let test = RateTest::new(TRIALS, level);
        let mean = outcomes.iter().filter(|o| o.0 <= level.ln()).count() as u64;
        let weighted = outcomes.iter().filter(|o| o.1 <= level.ln()).count() as u64;
        eprintln!(
            "{TRIALS} trials at level {level:e}: allowed <= {} (expected {:.0}; power vs a \
             doubled rate {:.4}); mean score {mean}, weighted {weighted} ({chernoff} weighted \
             tails by Chernoff)",
            test.hi,
            TRIALS as f64 * level,
            test.rejects_with(2.0 * level)
        );
        if level == 1e-2 {
            assert!(test.rejects_with(2.0 * level) >= MIN_POWER);
        }
        assert!(mean <= test.hi, "mean: {mean} > {}", test.hi);
        assert!(weighted <= test.hi, "weighted: {weighted} > {}", test.hi);
    }
}

#[test]
fn watermarked_text_is_still_detected() {
    let lm = ZipfLm::new(5000, 1.05).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let c = SynthIdConfig::new(4, vec![654, 400, 836, 123, 340, 443, 597, 160, 57]).unwrap();
    let wm = SynthIdWatermarker::new(c.clone()).unwrap();
    let detector = SynthIdDetector::new(c).unwrap();
    let mut logits = vec![0.0f32; 5000];
    let mut probs = vec![0.0f64; 5000];
    for len in [100usize, 300] {
        let mut request = wm.request();
        let mut context = vec![1u32];
        for _ in 0..len {
            lm.logits(&context, &mut logits);
            request.watermark(&mut logits).unwrap();
            let tok = sample(&logits, &mut probs, &mut rng);
            request.push(tok);
            context.push(tok);
        }
        let d = detector.detect(request.generated()).unwrap();
        eprintln!(
            "watermarked, {len} tokens: mean log10 p {:.2} ({:?}), weighted log10 p {:.2} ({:?})",
            d.mean.log10_p_value, d.mean.method, d.weighted.log10_p_value, d.weighted.method
        );
        assert_eq!(d.null, SynthIdNull::ShiftExact);
        assert!(d.is_watermarked && d.weighted.log10_p_value < -4.0);
        let plain = lm.generate_plain(1, len, &mut rng);
        let d = detector.detect(&plain).unwrap();
        assert!(!d.is_watermarked && d.mean.p_value > 1e-3, "{d:?}");
    }
}

/// Goldens from the Python test's independent brute force over every key residue
/// (`shift_null_tails` in `bindings/python/tests/test_synthid.py`: transformers' hash in Python
/// integers, the table from torch, exact integer convolution, mpmath logs), for the test's
/// configs `n2` (default 2^16 table) and `n5-table64-history16` at `sample_ids(0, ...)`.
#[test]
fn p_values_match_the_python_brute_force_goldens() {
    let ids40: [u32; 40] = [
        2732, 27183, 9845, 3264, 13123, 21243, 30403, 48487, 25609, 40659, 4373, 38642, 46884,
        47703, 15430, 32216, 6744, 3468, 31034, 705, 48614, 18983, 26711, 2222, 24152, 2897, 42661,
        33305, 11085, 6216, 23305, 6036, 34931, 21456, 21235, 24261, 18430, 1871, 40367, 18880,
    ];
    let d = SynthIdDetector::new(SynthIdConfig::new(2, vec![5, 77, 1000003]).unwrap())
        .unwrap()
        .detect(&ids40)
        .unwrap();
    assert_eq!((d.mean.statistic, d.weighted.statistic), (60, 624));
    assert!((d.mean.ln_p_value - -0.8593122260353554).abs() < 1e-12);
    assert_eq!(d.weighted.method, TailMethod::Exact);
    assert!((d.weighted.ln_p_value - -0.49948998110255277).abs() < 1e-12);
    let mut c = SynthIdConfig::new(5, (1..=30).collect()).unwrap();
    c.sampling_table_size = 64;
    c.sampling_table_seed = 7;
    c.context_history_size = 16;
    let d = SynthIdDetector::new(c)
        .unwrap()
        .detect(&ids40[..12])
        .unwrap();
    assert_eq!((d.mean.statistic, d.weighted.statistic), (97, 15890));
    assert!((d.mean.ln_p_value - -0.48188695026179784).abs() < 1e-12);
}
