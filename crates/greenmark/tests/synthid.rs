//! SynthID Text against plain, obviously-correct oracles: i128 arithmetic for the hash and the
//! g-values, an f64 re-derivation of the tournament update and of transformers' per-row state,
//! a direct recount of detection's masks and dedup, numpy's MT19937 for the table's first
//! bits; plus typed errors for every bad input and the watermark's power on a synthetic model.
//! (The bit-for-bit comparison with transformers itself is in the Python tests,
//! `bindings/python/tests/test_synthid.py`.)

use greenmark::stats::{binomial_tail_ln, weighted_binomial_tail_ln, TailMethod};
use greenmark::synthetic::{sample, ZipfLm};
use greenmark::synthid::{
    SynthIdConfig, SynthIdDetector, SynthIdNull, SynthIdScratch, SynthIdStep, SynthIdTable,
    SynthIdWatermarker,
};
use greenmark::{Document, Error};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const M: i128 = 6_364_136_223_846_793_005;

/// transformers' hash in i128, wrapped to int64 after each op as torch does.
fn wrap(x: i128) -> i128 {
    let m = x.rem_euclid(1 << 64);
    if m >= 1 << 63 {
        m - (1 << 64)
    } else {
        m
    }
}

fn naive_hash(ids: impl IntoIterator<Item = i128>) -> i128 {
    ids.into_iter()
        .fold(1, |h, x| wrap(wrap(wrap(h + x) * M) + 1))
}

fn naive_g(table: &[u8], ngram: &[u32], key: i64) -> u8 {
    let h = naive_hash(ngram.iter().map(|&t| t as i128).chain([key as i128]));
    table[h.rem_euclid(table.len() as i128) as usize]
}

fn config(ngram_len: usize, keys: Vec<i64>, size: usize, seed: u64) -> SynthIdConfig {
    let mut c = SynthIdConfig::new(ngram_len, keys).unwrap();
    c.sampling_table_size = size;
    c.sampling_table_seed = seed;
    c
}

#[test]
fn table_matches_numpy_mt19937_low_bits() {
    // numpy: bg = MT19937(); bg._legacy_seeding(seed); bg.random_raw(48) % 2
    let want = [
        (0u64, "011011111110010000010110011110101011011001011111"),
        (42, "010001000100001011101011111111001110100000111110"),
        // torch keeps the low 32 bits of the seed.
        (
            5 + (1 << 32),
            "101100010010100010111101011110001001101101010010",
        ),
    ];
    for (seed, bits) in want {
        let t = SynthIdTable::new(config(2, vec![1], 48, seed)).unwrap();
        let got: String = t.table().iter().map(|&g| char::from(b'0' + g)).collect();
        assert_eq!(got, bits, "seed {seed}");
        assert_eq!(t.ones(), bits.bytes().filter(|&b| b == b'1').count() as u64);
    }
}

#[test]
fn g_values_match_the_i128_oracle() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (n, size) in [
        (1, 1 << 16),
        (2, 1 << 16),
        (3, 1000),
        (5, 1 << 16),
        (4, 7),
        (2, 1 << 20),
    ] {
        let keys: Vec<i64> = (0..rng.gen_range(1..12))
            .map(|i| {
                if i % 3 == 0 {
                    rng.gen()
                } else {
                    rng.gen_range(0..1000)
                }
            })
            .collect();
        let t = SynthIdTable::new(config(n, keys.clone(), size, rng.gen())).unwrap();
        let ids: Vec<u32> = (0..200).map(|_| rng.gen_range(0..=u32::MAX)).collect();
        let got = t.g_values(&ids);
        let want: Vec<u8> = ids
            .windows(n)
            .flat_map(|w| {
                keys.iter()
                    .map(|&k| naive_g(t.table(), w, k))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(got, want, "ngram_len {n} size {size}");
        assert!(t.g_values(&ids[..n - 1]).is_empty());
    }
}

#[test]
fn context_repetition_mask_is_a_fifo_of_context_hashes() {
    let t = SynthIdTable::new(config(3, vec![1, 2], 1 << 16, 0)).unwrap();
    let mut c = t.config().clone();
    c.context_history_size = 2;
    let t2 = SynthIdTable::new(c).unwrap();
    //            ctx: (1,2) (2,1) (1,2) (2,3) (3,4) (1,2) ...
    let ids = [1, 2, 1, 2, 3, 4, 1, 2, 9];
    assert_eq!(
        t.context_repetition_mask(&ids),
        [true, true, false, true, true, true, false]
    );
    // Only the last 2 contexts are remembered: (1,2) at ngram 5 was 3 contexts ago.
    assert_eq!(
        t2.context_repetition_mask(&ids),
        [true, true, false, true, true, true, true]
    );
}

/// The tournament update in f64, written from the formula.
fn naive_update(row: &[f32], g: &[Vec<u8>]) -> Vec<f64> {
    let max = row.iter().fold(f64::NEG_INFINITY, |m, &l| m.max(l as f64));
    let e: Vec<f64> = row.iter().map(|&l| (l as f64 - max).exp()).collect();
    let z: f64 = e.iter().sum();
    let mut p: Vec<f64> = e.iter().map(|x| x / z).collect();
    for gd in g {
        let mass: f64 = p.iter().zip(gd).map(|(p, &g)| p * g as f64).sum();
        for (p, &g) in p.iter_mut().zip(gd) {
            *p *= 1.0 + g as f64 - mass;
        }
    }
    p.iter().map(|p| p.ln()).collect()
}

/// The state transformers keeps, re-derived: context = last n-1 generated ids, zero-padded.
#[test]
fn logits_step_matches_the_f64_oracle_over_a_generation() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for (n, skip, history) in [
        (2, false, 1024),
        (4, true, 1024),
        (5, false, 3),
        (3, false, 0),
    ] {
        let keys: Vec<i64> = (0..6).map(|_| rng.gen_range(-1000..100_000)).collect();
        let mut c = config(n, keys.clone(), 1 << 16, 7);
        c.skip_first_ngram_calls = skip;
        c.context_history_size = history;
        let wm = SynthIdWatermarker::new(c).unwrap();
        let vocab = 500;
        let mut state = wm.state();
        let mut scratch = SynthIdScratch::new();
        let mut generated: Vec<u32> = Vec::new();
        let mut seen: Vec<i64> = vec![0; history]; // hashes, newest first
        for call in 1..=40u64 {
            let row: Vec<f32> = (0..vocab).map(|_| rng.gen_range(-8.0..8.0)).collect();
            let mut got = row.clone();
            // A repetitive stretch so that contexts repeat.
            let last = generated.last().copied().unwrap_or(12345);
            let step = wm.apply(&mut state, last, &mut got, &mut scratch).unwrap();
            let mut ctx = vec![0u32; n - 1];
            let tail = &generated[generated.len().saturating_sub(n - 1)..];
            ctx[n - 1 - tail.len()..].copy_from_slice(tail);
            assert_eq!(state.context(), &ctx[..]);
            let want_step = if skip && call < n as u64 {
                SynthIdStep::SkippedFirstNgram
            } else {
                let h = naive_hash(ctx.iter().map(|&x| x as i128)) as i64;
                let repeated = seen.contains(&h);
                seen.insert(0, h);
                seen.truncate(history);
                if repeated {
                    SynthIdStep::RepeatedContext
                } else {
                    SynthIdStep::Watermarked
                }
            };
            assert_eq!(step, want_step, "call {call}");
            if step == SynthIdStep::Watermarked {
                let g: Vec<Vec<u8>> = keys
                    .iter()
                    .map(|&k| {
                        (0..vocab as u32)
                            .map(|v| {
                                let mut ngram = ctx.clone();
                                ngram.push(v);
                                naive_g(wm.table().table(), &ngram, k)
                            })
                            .collect()
                    })
                    .collect();
                let want = naive_update(&row, &g);
                for (a, b) in got.iter().zip(&want) {
                    assert!((*a as f64 - b).abs() < 1e-4, "{a} vs {b}");
                }
            } else {
                assert_eq!(got, row);
            }
            let next = if call % 7 < 3 {
                3
            } else {
                rng.gen_range(0..vocab as u32)
            };
            generated.push(next);
        }
    }
}

#[test]
fn zero_probabilities_become_f32_min_and_batches_equal_rows() {
    let wm = SynthIdWatermarker::new(config(3, vec![4, 5, 6], 1 << 16, 0)).unwrap();
    let mut row = vec![0.0f32; 64];
    row[..10].fill(f32::NEG_INFINITY); // e.g. cut by top-k
    let mut state = wm.state();
    wm.apply(&mut state, 0, &mut row, &mut SynthIdScratch::new())
        .unwrap();
    assert!(row[..10].iter().all(|&l| l == f32::MIN));
    assert!(row[10..].iter().all(|l| l.is_finite() && *l > -20.0));

    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let b = 4;
    let mut states: Vec<_> = (0..b).map(|_| wm.state()).collect();
    let mut singles = states.clone();
    for _ in 0..5 {
        let logits: Vec<f32> = (0..b * 300).map(|_| rng.gen_range(-5.0..5.0)).collect();
        let ids: Vec<u32> = (0..b).map(|_| rng.gen_range(0..300)).collect();
        let mut batch = logits.clone();
        let steps = wm.apply_batch(&mut states, &ids, &mut batch).unwrap();
        for (i, row) in logits.chunks(300).enumerate() {
            let mut one = row.to_vec();
            let s = wm
                .apply(
                    &mut singles[i],
                    ids[i],
                    &mut one,
                    &mut SynthIdScratch::new(),
                )
                .unwrap();
            assert_eq!(s, steps[i]);
            assert_eq!(&batch[i * 300..(i + 1) * 300], &one[..]);
        }
    }
}

/// Detection's counts, recomputed from transformers' g-values and masks plus the dedup rule
/// (a g-value counts once per table entry and depth).
#[test]
fn detection_counts_and_p_values_match_a_recount() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for (n, size, eos) in [
        (2, 1 << 16, None),
        (4, 1000, Some(7u32)),
        (3, 64, None),
        (5, 1 << 16, Some(3)),
    ] {
        let keys: Vec<i64> = (0..5).map(|_| rng.gen()).collect();
        let t = SynthIdTable::new(config(n, keys.clone(), size, rng.gen())).unwrap();
        let detector = SynthIdDetector::from_table(t.clone())
            .unwrap()
            .with_eos(eos);
        for _ in 0..20 {
            let len = rng.gen_range(0..300);
            let ids: Vec<u32> = (0..len)
                .map(|i| {
                    if i % 11 < 4 {
                        (i % 3) as u32
                    } else {
                        rng.gen_range(0..60)
                    }
                })
                .collect();
            let d = detector.detect(&ids).unwrap();
            let g = t.g_values(&ids);
            let rep = t.context_repetition_mask(&ids);
            let eos_mask = eos.map(|e| greenmark::synthid::eos_mask(&ids, e));
            let mut seen = std::collections::HashSet::new();
            let (mut scored, mut dup, mut skip_eos, mut skip_rep) = (0, 0, 0, 0);
            let mut per = vec![(0u64, 0u64); keys.len()];
            for (j, ngram) in ids.windows(n).enumerate() {
                if eos_mask.as_ref().is_some_and(|m| !m[j + n - 1]) {
                    skip_eos += 1;
                    continue;
                }
                if !rep[j] {
                    skip_rep += 1;
                    continue;
                }
                let mut any = false;
                for (k, &key) in keys.iter().enumerate() {
                    let h = naive_hash(ngram.iter().map(|&x| x as i128).chain([key as i128]));
                    if seen.insert((k, h.rem_euclid(size as i128))) {
                        any = true;
                        per[k].0 += 1;
                        per[k].1 += g[j * keys.len() + k] as u64;
                    }
                }
                if any {
                    scored += 1;
                } else {
                    dup += 1;
                }
            }
            assert_eq!(
                (
                    d.n_scored,
                    d.n_skipped_duplicate,
                    d.n_skipped_eos,
                    d.n_skipped_repeated_context
                ),
                (scored, dup, skip_eos, skip_rep)
            );
            let ns: Vec<u64> = per.iter().map(|p| p.0).collect();
            let ones: Vec<u64> = per.iter().map(|p| p.1).collect();
            assert_eq!((&d.scored_per_depth, &d.ones_per_depth), (&ns, &ones));
            let total: u64 = ns.iter().sum();
            let all_ones: u64 = ones.iter().sum();
            if d.null == SynthIdNull::ShiftExact {
                // Power-of-two tables: the exact null over the keys, checked against brute
                // force over the keys in tests/synthid_null.rs.
                assert!(size.is_power_of_two());
                continue;
            }
            assert_eq!(d.mean.ln_p_value, binomial_tail_ln(all_ones, total, t.p0()));
            let c = [40u64, 31, 22, 13, 4]; // 10(D-1) - 9d, D = 5
            let stat: u64 = c.iter().zip(&ones).map(|(c, o)| c * o).sum();
            assert_eq!(d.weighted.statistic, stat);
            let terms: Vec<(u64, u64)> = c.iter().copied().zip(ns.iter().copied()).collect();
            let (ln_p, method) = weighted_binomial_tail_ln(&terms, t.p0(), stat, u64::MAX);
            assert_eq!(method, TailMethod::Exact);
            if d.weighted.method == TailMethod::Exact {
                assert!((d.weighted.ln_p_value - ln_p).abs() <= 1e-12 * ln_p.abs().max(1.0));
            } else {
                assert!(d.weighted.ln_p_value >= ln_p);
            }
            if total > 0 {
                let w: f64 = stat as f64 * 5.0 / c.iter().sum::<u64>() as f64 / total as f64;
                assert!((d.weighted.score - w).abs() < 1e-12);
            }
        }
    }
}

#[test]
fn watermarked_samples_are_detected_and_plain_ones_are_not() {
    let lm = ZipfLm::new(5000, 1.05).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let c = SynthIdConfig::new(4, vec![654, 400, 836, 123, 340, 443, 597, 160, 57]).unwrap();
    let wm = SynthIdWatermarker::new(c.clone()).unwrap();
    let detector = SynthIdDetector::new(c).unwrap();
    let mut logits = vec![0.0f32; 5000];
    let mut probs = vec![0.0f64; 5000];
    let mut request = wm.request();
    let mut context = vec![1u32];
    for _ in 0..300 {
        lm.logits(&context, &mut logits);
        request.watermark(&mut logits).unwrap();
        let t = sample(&logits, &mut probs, &mut rng);
        request.push(t);
        context.push(t);
    }
    let d = detector.detect(request.generated()).unwrap();
    eprintln!("watermarked: {d:?}");
    assert!(d.is_watermarked && d.weighted.log10_p_value < -10.0 && d.mean.log10_p_value < -5.0);
    let plain = lm.generate_plain(1, 300, &mut rng);
    let d = detector.detect(&plain).unwrap();
    assert!(!d.is_watermarked && d.mean.p_value > 1e-3, "{d:?}");
}

#[test]
fn bad_configs_and_inputs_are_typed_errors() {
    let parse = |json: &str| SynthIdConfig::from_json(json).unwrap_err();
    for (json, needle) in [
        (r#"{"ngram_len": 5, "keys": []}"#, "keys"),
        (r#"{"ngram_len": 0, "keys": [1]}"#, "ngram_len"),
        (
            r#"{"ngram_len": 5, "keys": [1], "sampling_table_size": 0}"#,
            "sampling_table_size",
        ),
        (
            r#"{"ngram_len": 5, "keys": [1], "sampling_table_size": 16777217}"#,
            "sampling_table_size",
        ),
        (r#"{"ngram_len": 5, "keys": [1.5]}"#, "keys[0]"),
        (
            r#"{"ngram_len": 5, "keys": [9223372036854775808]}"#,
            "int64",
        ),
        (
            r#"{"ngram_len": 5, "keys": [1], "sampling_table_seed": -1}"#,
            "sampling_table_seed",
        ),
        (
            r#"{"ngram_len": 5, "keys": [1], "ngram_length": 5}"#,
            "ngram_length",
        ),
        (r#"{"keys": [1]}"#, "ngram_len"),
        ("not json", "expected"),
    ] {
        let err = parse(json);
        assert!(err.to_string().contains(needle), "{json}: {err}");
        assert!(
            matches!(
                err,
                Error::Parse {
                    what: Document::SynthIdConfig,
                    ..
                } | Error::InvalidScheme { .. }
            ),
            "{json}: {err:?}"
        );
    }
    assert!(matches!(
        SynthIdConfig::load("/nonexistent/x.json"),
        Err(Error::Io { .. })
    ));
    let c = SynthIdConfig::new(3, vec![1, 2, 1]).unwrap();
    assert!(matches!(
        SynthIdDetector::new(c),
        Err(Error::InvalidKeys(_))
    ));
    let c = SynthIdConfig::new(3, vec![1, 2]).unwrap();
    let d = SynthIdDetector::new(c.clone())
        .unwrap()
        .with_vocab_size(100)
        .unwrap();
    assert!(matches!(
        d.detect(&[1, 2, 100]),
        Err(Error::TokenOutOfRange {
            position: 2,
            token: 100,
            ..
        })
    ));
    assert!(SynthIdDetector::new(c.clone())
        .unwrap()
        .with_threshold(1.5)
        .is_err());
    let wm = SynthIdWatermarker::new(c).unwrap();
    let mut state = wm.state();
    assert!(wm
        .apply(&mut state, 0, &mut [], &mut SynthIdScratch::new())
        .is_err());
    let mut states = vec![wm.state(); 2];
    assert!(matches!(
        wm.apply_batch(&mut states, &[1], &mut [0.0; 10]),
        Err(Error::BatchShape(_))
    ));
    assert!(matches!(
        wm.apply_batch(&mut states, &[1, 2], &mut [0.0; 9]),
        Err(Error::BatchShape(_))
    ));
    // Short or empty texts: nothing to score, p = 1.
    let d = SynthIdDetector::new(SynthIdConfig::new(5, vec![1]).unwrap()).unwrap();
    let r = d.detect(&[1, 2, 3]).unwrap();
    assert_eq!(
        (r.n_ngrams, r.n_g_values, r.weighted.p_value, r.mean.p_value),
        (0, 0, 1.0, 1.0)
    );
}
