//! The two halves (sift, then record) give exactly the direct tape, in corpus order and in
//! the scale-out order (distinct tuples by first occurrence, then the repeats).

use std::collections::HashMap;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::tests::{config, key, random_texts};
use super::*;
use crate::config::Scheme;

/// One text of a mixed corpus: closed (`None`) or open (`Some(predictions)`).
type Doc = (Vec<u32>, Option<Vec<u32>>);

fn corpus(rng: &mut ChaCha8Rng, vocab: u32, n: usize) -> Vec<Doc> {
    random_texts(rng, vocab, n)
        .into_iter()
        .map(|t| {
            let preds = rng
                .gen_bool(0.4)
                .then(|| t.iter().map(|_| rng.gen_range(0..vocab)).collect());
            (t, preds)
        })
        .collect()
}

fn sift(test: &RadioactivityTest, doc: &Doc) -> Vec<Sifted> {
    match &doc.1 {
        None => test.sift_text(&doc.0, &[]).unwrap(),
        Some(p) => test.sift_predictions(&doc.0, p).unwrap(),
    }
}

fn score(test: &mut RadioactivityTest, doc: &Doc) {
    match &doc.1 {
        None => test.score_text(&doc.0, &[]).unwrap(),
        Some(p) => test.score_predictions(&doc.0, p).unwrap(),
    }
}

/// The scale-out order of one key's sifted corpus: each distinct fingerprint once at its
/// first occurrence (in order), then every other occurrence, shuffled.
fn dedup_first(all: &Sifted, rng: &mut ChaCha8Rng) -> Sifted {
    let mut first: HashMap<u64, usize> = HashMap::new();
    let mut distinct = Sifted::default();
    let mut repeats = Vec::new();
    for (i, (&fp, &s)) in all.fingerprints.iter().zip(&all.scores).enumerate() {
        if first.insert(fp, i).is_none() {
            distinct.fingerprints.push(fp);
            distinct.scores.push(s);
        } else {
            repeats.push((fp, s));
        }
    }
    repeats.shuffle(rng);
    for (fp, s) in repeats {
        distinct.fingerprints.push(fp);
        distinct.scores.push(s);
    }
    distinct.n_excluded = all.n_excluded;
    distinct.n_filtered = all.n_filtered;
    distinct.n_copied = all.n_copied;
    distinct
}

fn tests_under(rng: &mut ChaCha8Rng, round: usize, vocab: u32) -> RadioactivityTest {
    let mut options = TestOptions::default();
    if round % 2 == 1 {
        options = options.max_tuples(rng.gen_range(1..300));
    }
    if round % 5 == 4 {
        options = options.dedup(false);
    }
    let mut test = match round % 3 {
        0 => {
            let cfg = config(u64::from(vocab), Scheme::LeftHash { window: 1 });
            RadioactivityTest::new(&[key(1), key(2)], cfg, options).unwrap()
        }
        1 => {
            let cfg = config(
                u64::from(vocab),
                Scheme::SelfHash {
                    window: 3,
                    top_k: 4,
                },
            );
            RadioactivityTest::new(&[key(3)], cfg, options).unwrap()
        }
        _ => {
            let cfg = GumbelConfig {
                context_width: 2,
                ..GumbelConfig::default()
            };
            let keys = [GumbelKey::vllm(7), GumbelKey::vllm(8)];
            RadioactivityTest::gumbel(&keys, cfg, vocab, options).unwrap()
        }
    };
    for p in random_texts(rng, vocab, 2) {
        test.exclude_prompt(&p).unwrap();
    }
    if round % 4 == 3 {
        for t in random_texts(rng, vocab, 15) {
            test.add_filter_text(&t).unwrap();
        }
    }
    test
}

#[test]
fn sifting_then_recording_is_scoring() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for round in 0..24 {
        let vocab = 30;
        let base = tests_under(&mut rng, round, vocab);
        let docs = corpus(&mut rng, vocab, 40);
        let mut direct = base.clone();
        for d in &docs {
            score(&mut direct, d);
        }
        // Everything but the hash sets' allocation sizes, which depend on how they grew.
        let finish = |t: RadioactivityTest| Radioactivity {
            memory_bytes: 0,
            ..t.finish()
        };
        let want = finish(direct);
        let n_keys = want.keys.len();
        // All texts sifted (by "workers"), concatenated per key in corpus order.
        let mut pooled = vec![Sifted::default(); n_keys];
        for d in &docs {
            for (k, s) in sift(&base, d).iter().enumerate() {
                pooled[k].extend(s);
            }
        }
        let mut in_order = base.clone();
        for (k, s) in pooled.iter().enumerate() {
            in_order.record_sifted(k, s).unwrap();
        }
        assert_eq!(finish(in_order), want, "round {round}: corpus order");
        if base.options().dedup {
            let mut scaled = base.clone();
            for (k, s) in pooled.iter().enumerate() {
                scaled.record_sifted(k, &dedup_first(s, &mut rng)).unwrap();
            }
            assert_eq!(finish(scaled), want, "round {round}: dedup-first order");
        }
    }
}

#[test]
fn recording_refuses_what_is_not_a_sift_of_this_test() {
    let cfg = config(100, Scheme::LeftHash { window: 1 });
    let mut kgw = RadioactivityTest::new(&[key(1)], cfg, TestOptions::default()).unwrap();
    let mut bad = Sifted {
        fingerprints: vec![1, 2],
        scores: vec![1.0],
        ..Sifted::default()
    };
    let e = kgw.record_sifted(0, &bad).unwrap_err().to_string();
    assert!(e.contains("one score per fingerprint"), "{e}");
    bad.scores = vec![1.0, 0.5];
    let e = kgw.record_sifted(0, &bad).unwrap_err().to_string();
    assert!(e.contains("0 or 1"), "{e}");
    bad.scores = vec![1.0, 0.0];
    let e = kgw.record_sifted(1, &bad).unwrap_err().to_string();
    assert!(e.contains("out of range") && e.contains("1 key"), "{e}");
    let mut gumbel = RadioactivityTest::gumbel(
        &[GumbelKey::vllm(1)],
        GumbelConfig::default(),
        100,
        TestOptions::default(),
    )
    .unwrap();
    bad.scores = vec![0.3, f64::NAN];
    let e = gumbel.record_sifted(0, &bad).unwrap_err().to_string();
    assert!(e.contains("finite and >= 0"), "{e}");
    bad.scores = vec![0.3, -1.0];
    assert!(gumbel.record_sifted(0, &bad).is_err());
    // Nothing was recorded by the refused calls.
    assert_eq!(gumbel.finish().keys[0].n_seen, 0);
    assert_eq!(kgw.finish().keys[0].n_seen, 0);
}
