//! Pools of any split of the corpus, merged in any order (and, the way scale-out does it,
//! partitioned by fingerprint and folded to the budget per part) record exactly the direct
//! tape: every count, the p-value, the curve, `budget_reached`.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::tests::{config, key, random_texts};
use super::*;
use crate::config::Scheme;

/// One text: its doc id, its tokens and, in open mode, the predictions.
struct Text {
    id: u64,
    tokens: Vec<u32>,
    predictions: Option<Vec<u32>>,
}

impl Text {
    fn doc(&self) -> Doc<'_> {
        match &self.predictions {
            None => Doc::text(self.id, &self.tokens, &[]),
            Some(p) => Doc::reading(self.id, &self.tokens, p),
        }
    }
}

/// A mixed corpus (closed and open texts) with distinct, shuffled, sparse doc ids; a small
/// vocabulary makes tuples repeat within and across texts.
fn corpus(rng: &mut ChaCha8Rng, vocab: u32, n: usize) -> Vec<Text> {
    let mut ids: Vec<u64> = (0..n as u64)
        .map(|i| i * 1000 + rng.gen_range(0..999))
        .collect();
    ids.shuffle(rng);
    random_texts(rng, vocab, n)
        .into_iter()
        .zip(ids)
        .map(|(tokens, id)| {
            let predictions = rng
                .gen_bool(0.3)
                .then(|| tokens.iter().map(|_| rng.gen_range(0..vocab)).collect());
            Text {
                id,
                tokens,
                predictions,
            }
        })
        .collect()
}

/// The direct tape: every text scored in doc-id order.
fn direct(mut test: RadioactivityTest, texts: &[Text]) -> Radioactivity {
    let mut order: Vec<&Text> = texts.iter().collect();
    order.sort_by_key(|t| t.id);
    for t in order {
        match &t.predictions {
            None => test.score_text(&t.tokens, &[]).unwrap(),
            Some(p) => test.score_predictions(&t.tokens, p).unwrap(),
        }
    }
    test.finish()
}

/// Splits `texts` (in their shuffled order) into chunks of random sizes, one per "machine",
/// and pools each: per chunk, one pool per key.
fn pooled_chunks(test: &RadioactivityTest, texts: &[Text], rng: &mut ChaCha8Rng) -> Vec<Vec<Pool>> {
    let docs: Vec<Doc<'_>> = texts.iter().map(Text::doc).collect();
    let mut out = Vec::new();
    let mut rest = &docs[..];
    while !rest.is_empty() {
        let n = rng.gen_range(1..=rest.len().min(9));
        out.push(test.pool(&rest[..n]).unwrap());
        rest = &rest[n..];
    }
    out
}

/// Merges `pools` pairwise in a random tree.
fn merge_randomly(mut pools: Vec<Pool>, rng: &mut ChaCha8Rng) -> Pool {
    while pools.len() > 1 {
        let a = pools.swap_remove(rng.gen_range(0..pools.len()));
        let b = rng.gen_range(0..pools.len());
        pools[b].merge(a).unwrap();
    }
    pools.pop().unwrap_or_default()
}

/// Partitions a pool by fingerprint into `parts` pools; the counts left out ride on part 0.
fn partition(pool: &Pool, parts: u64) -> Vec<Pool> {
    let mut out = vec![Pool::new(); parts as usize];
    for t in pool.tuples() {
        out[((t.fingerprint >> 32) % parts) as usize]
            .add(*t)
            .unwrap();
    }
    out[0].add_left_out(pool.n_excluded(), pool.n_filtered(), pool.n_copied());
    out[0].add_over_budget(pool.n_over_budget());
    out
}

fn options(budget: Option<u64>) -> TestOptions {
    budget.map_or(TestOptions::default(), |m| {
        TestOptions::default().max_tuples(m)
    })
}

fn fresh(budget: Option<u64>) -> RadioactivityTest {
    let keys = [key(1), key(2), key(3)];
    let cfg = config(14, Scheme::LeftHash { window: 1 });
    let mut test = RadioactivityTest::new(&keys, cfg, options(budget)).unwrap();
    test.exclude_prompt(&[3, 4, 5]).unwrap();
    test
}

#[test]
fn merged_pools_of_any_split_equal_the_direct_tape() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for round in 0..6 {
        let texts = corpus(&mut rng, 14, 40);
        for budget in [None, Some(1), Some(40), Some(120), Some(1_000_000)] {
            let expected = direct(fresh(budget), &texts);
            let mut test = fresh(budget);
            let chunks = pooled_chunks(&test, &texts, &mut rng);
            for k in 0..3 {
                let per_key: Vec<Pool> = chunks.iter().map(|c| c[k].clone()).collect();
                let mut pool = merge_randomly(per_key, &mut rng);
                if let Some(m) = budget {
                    // The whole corpus is merged: folding it to the budget is exact.
                    pool.fold_budget(m).unwrap();
                    assert!(pool.len() as u64 <= m);
                }
                test.record_pool(k, &pool).unwrap();
            }
            let got = test.finish();
            assert_eq!(got.keys, expected.keys, "round {round}, budget {budget:?}");
            assert_eq!(got.budget_reached, expected.budget_reached);
            assert_eq!(
                got.log10_p_value.to_bits(),
                expected.log10_p_value.to_bits()
            );
            let k = &expected.keys[0];
            assert!(k.n_repeated > 0 && k.n_excluded > 0 && k.n_copied > 0);
            if budget == Some(40) {
                assert!(expected.budget_reached && k.n_over_budget > 0 && k.n_scored == 40);
            }
            if budget.is_none() || budget == Some(1_000_000) {
                assert!(!expected.budget_reached);
            }
        }
    }
}

/// The scale-out recipe: each machine's pools partitioned by fingerprint, each part's pools
/// merged in any order and folded to the budget (at most M tuples per part), the folded
/// parts merged in any order.
#[test]
fn parts_folded_to_the_budget_equal_the_direct_tape() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for round in 0..6 {
        let texts = corpus(&mut rng, 14, 40);
        let parts = rng.gen_range(1..6);
        for budget in [Some(1), Some(7), Some(40), Some(1_000_000)] {
            let m = budget.unwrap();
            let expected = direct(fresh(budget), &texts);
            let mut test = fresh(budget);
            let chunks = pooled_chunks(&test, &texts, &mut rng);
            for k in 0..3 {
                let mut by_part: Vec<Vec<Pool>> = vec![Vec::new(); parts as usize];
                for c in &chunks {
                    for (q, p) in partition(&c[k], parts).into_iter().enumerate() {
                        by_part[q].push(p);
                    }
                }
                let folded: Vec<Pool> = by_part
                    .into_iter()
                    .map(|pools| {
                        let mut part = merge_randomly(pools, &mut rng);
                        part.fold_budget(m).unwrap();
                        assert!(part.len() as u64 <= m);
                        part
                    })
                    .collect();
                let pool = merge_randomly(folded, &mut rng);
                test.record_pool(k, &pool).unwrap();
            }
            let got = test.finish();
            assert_eq!(
                got.keys, expected.keys,
                "round {round}, {parts} parts, budget {m}"
            );
            assert_eq!(got.budget_reached, expected.budget_reached);
        }
    }
}

/// Pooling a text gives what sifting it gives: its tuples in order, counted once each.
#[test]
fn a_pool_of_one_text_holds_its_sifted_tuples() {
    let test = fresh(None);
    let text = [1u32, 2, 1, 2, 1, 2, 7, 8, 3, 4];
    let pool = test.pool(&[Doc::text(9, &text, &[])]).unwrap();
    let sifted = test.sift_text(&text, &[]).unwrap();
    for (p, s) in pool.iter().zip(&sifted) {
        let sorted = p.sorted();
        let mut distinct: Vec<u64> = Vec::new();
        for &fp in &s.fingerprints {
            if !distinct.contains(&fp) {
                distinct.push(fp);
            }
        }
        let fps: Vec<u64> = sorted.iter().map(|t| t.fingerprint).collect();
        assert_eq!(fps, distinct);
        let total: u64 = sorted.iter().map(|t| t.count).sum();
        assert_eq!(total, s.fingerprints.len() as u64);
        assert_eq!(p.n_excluded(), s.n_excluded);
        assert!(sorted.iter().all(|t| t.first.doc == 9));
        assert_eq!(
            sorted[1].first,
            Place {
                doc: 9,
                position: 1
            }
        );
    }
}

#[test]
fn folding_before_a_part_is_complete_is_refused() {
    let test = fresh(Some(2));
    let (a, b) = ([1u32, 2, 6, 7, 8, 9, 10], [1u32, 2, 6, 7, 8, 9, 11]);
    let mut early = test.pool(&[Doc::text(0, &a, &[])]).unwrap().remove(0);
    let late = test.pool(&[Doc::text(1, &b, &[])]).unwrap().remove(0);
    early.fold_budget(2).unwrap();
    let before = (early.sorted(), early.n_over_budget());
    let err = early.merge(late).unwrap_err().to_string();
    assert!(
        err.contains("merge every pool of a part before folding it"),
        "{err}"
    );
    // A refused merge leaves the pool as it was.
    assert_eq!((early.sorted(), early.n_over_budget()), before);
    assert_eq!(early.folded(), Some(2));
    let err = early.fold_budget(0).unwrap_err().to_string();
    assert!(err.contains("at least 1"), "{err}");
}

#[test]
fn bad_rows_and_batches_are_refused_with_a_message() {
    let mut pool = Pool::new();
    let at = Place {
        doc: 0,
        position: 0,
    };
    let err = pool.add(PooledTuple::new(5, 1.0, at, 0)).unwrap_err();
    assert!(err.to_string().contains("count 0"), "{err}");
    pool.add(PooledTuple::new(5, 1.0, at, 3)).unwrap();
    let err = pool.add(PooledTuple::new(5, 0.0, at, 1)).unwrap_err();
    assert!(err.to_string().contains("different tests"), "{err}");
    let err = pool
        .add(PooledTuple::new(5, 1.0, at, u64::MAX))
        .unwrap_err();
    assert!(err.to_string().contains("counts are wrong"), "{err}");
    assert_eq!(pool.tuples()[0].count, 3);
    let mut other = Pool::new();
    other.add(PooledTuple::new(5, 0.0, at, 1)).unwrap();
    assert!(pool.clone().merge(other).is_err());

    let mut test = fresh(None);
    let bad_score = {
        let mut p = Pool::new();
        p.add(PooledTuple::new(5, 0.5, at, 1)).unwrap();
        p
    };
    let err = test.record_pool(0, &bad_score).unwrap_err().to_string();
    assert!(err.contains("scores must be 0 or 1"), "{err}");
    let err = test.record_pool(3, &pool).unwrap_err().to_string();
    assert!(err.contains("out of range"), "{err}");

    let ok = [1u32, 2, 3];
    let bad = [1u32, 99];
    let err = test
        .pool(&[Doc::text(4, &ok, &[]), Doc::text(4, &ok, &[])])
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateDoc { doc: 4, .. }), "{err}");
    let err = test
        .pool(&[Doc::text(7, &ok, &[]), Doc::text(8, &bad, &[])])
        .unwrap_err();
    let Error::InBatch { index, doc, source } = &err else {
        panic!("{err}")
    };
    assert_eq!((*index, *doc), (1, 8));
    assert!(matches!(**source, Error::TokenOutOfRange { token: 99, .. }));
    assert!(err
        .to_string()
        .starts_with("text 1 (doc id 8) of the batch: token id 99"));

    let mut no_dedup = RadioactivityTest::new(
        &[key(1)],
        config(14, Scheme::LeftHash { window: 1 }),
        TestOptions::default().dedup(false),
    )
    .unwrap();
    let err = no_dedup.record_pool(0, &pool).unwrap_err().to_string();
    assert!(err.contains("needs dedup"), "{err}");
}

/// `budget_reached` is true exactly when a budget was fixed and spent.
#[test]
fn budget_reached_says_whether_the_budget_was_spent() {
    // 12 distinct tuples, 3 of them keyed by a prompt window: 9 to score.
    let text: Vec<u32> = (0..13).collect();
    for (budget, reached) in [
        (None, false),
        (Some(5), true),
        (Some(9), true),
        (Some(10), false),
    ] {
        let mut test = fresh(budget);
        test.score_text(&text, &[]).unwrap();
        let r = test.finish();
        assert_eq!(r.keys[0].n_scored, budget.map_or(9, |m| m.min(9)));
        assert_eq!(r.budget_reached, reached, "budget {budget:?}");
        assert!(r.keys.iter().all(|k| k.budget_reached == reached));
    }
}
