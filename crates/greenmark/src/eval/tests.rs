//! The attacks pinned (seeded determinism, exact rates, invariants) and the metrics checked
//! against naive oracles.

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::attack::*;
use super::metrics::*;
use super::*;
use crate::detect::SpanOptions;
use crate::synthid::SynthIdDetector;
use crate::{Key, WatermarkConfig, Watermarker};

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Whether `small` is a subsequence of `big`.
fn is_subsequence(small: &[u32], big: &[u32]) -> bool {
    let mut it = big.iter();
    small.iter().all(|s| it.any(|b| b == s))
}

/// The naive AUC: every pair compared.
fn naive_auc(pos: &[f64], neg: &[f64]) -> f64 {
    let mut total = 0.0;
    for &p in pos {
        for &n in neg {
            total += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    total / (pos.len() * neg.len()) as f64
}

fn trapezoid(curve: &[(f64, f64)]) -> f64 {
    curve
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
        .sum()
}

proptest! {
    #[test]
    fn auc_is_the_pair_count(
        pos in prop::collection::vec(0u8..6, 1..40),
        neg in prop::collection::vec(0u8..6, 1..40),
    ) {
        // Small integer scores: many ties.
        let pos: Vec<f64> = pos.into_iter().map(f64::from).collect();
        let neg: Vec<f64> = neg.into_iter().map(f64::from).collect();
        let auc = roc_auc(&pos, &neg).unwrap();
        prop_assert!((auc - naive_auc(&pos, &neg)).abs() < 1e-12);
        // The trapezoids under the curve (diagonal steps at ties) are the same number.
        let curve = roc_curve(&pos, &neg);
        prop_assert!((trapezoid(&curve) - auc).abs() < 1e-12);
        prop_assert_eq!(curve[0], (0.0, 0.0));
        prop_assert_eq!(*curve.last().unwrap(), (1.0, 1.0));
    }

    #[test]
    fn rate_and_median_match_naive_ones(values in prop::collection::vec(-12i32..2, 1..50)) {
        let v: Vec<f64> = values.iter().map(|&x| f64::from(x)).collect();
        let naive = v.iter().filter(|&&x| 10f64.powf(x) < 1e-3).count() as f64 / v.len() as f64;
        prop_assert!((rate_below(&v, 1e-3) - naive).abs() < 1e-12);
        let mut s = v.clone();
        s.sort_by(f64::total_cmp);
        // The median splits the values in halves.
        let m = median(&v).unwrap();
        prop_assert!(s.iter().filter(|&&x| x < m).count() <= v.len() / 2);
        prop_assert!(s.iter().filter(|&&x| x > m).count() <= v.len() / 2);
    }

    #[test]
    fn token_attacks_edit_exact_counts(
        ids in prop::collection::vec(0u32..500, 0..120),
        rate in 0.0f64..=1.0,
        seed in any::<u64>(),
    ) {
        let k = (rate * ids.len() as f64).round() as usize;
        let sub = substitute_tokens(&ids, rate, 500, &mut rng(seed)).unwrap();
        prop_assert_eq!(sub.len(), ids.len());
        prop_assert_eq!(sub.iter().zip(&ids).filter(|(a, b)| a != b).count(), k);
        prop_assert!(sub.iter().all(|&t| t < 500));
        let del = delete_tokens(&ids, rate, &mut rng(seed)).unwrap();
        prop_assert_eq!(del.len(), ids.len() - k);
        prop_assert!(is_subsequence(&del, &ids));
        let ins = insert_tokens(&ids, rate, 500, &mut rng(seed)).unwrap();
        prop_assert_eq!(ins.len(), ids.len() + k);
        prop_assert!(is_subsequence(&ids, &ins));
        // Seeded: the same seed gives the same edit.
        prop_assert_eq!(&sub, &substitute_tokens(&ids, rate, 500, &mut rng(seed)).unwrap());
        prop_assert_eq!(&ins, &insert_tokens(&ids, rate, 500, &mut rng(seed)).unwrap());
    }

    #[test]
    fn copy_paste_embeds_one_contiguous_span(
        marked in prop::collection::vec(1000u32..2000, 1..80),
        host in prop::collection::vec(0u32..1000, 1..200),
        fraction in 0.0f64..=1.0,
        seed in any::<u64>(),
    ) {
        let out = copy_paste(&marked, &host, fraction, &mut rng(seed)).unwrap();
        let k = ((fraction * host.len() as f64).round() as usize).min(marked.len());
        prop_assert_eq!(out.len(), host.len());
        let at: Vec<usize> = (0..out.len()).filter(|&i| out[i] >= 1000).collect();
        prop_assert_eq!(at.len(), k);
        if k > 0 {
            prop_assert_eq!(at[k - 1] - at[0] + 1, k);
            prop_assert_eq!(&out[at[0]..=at[k - 1]], &marked[..k]);
        }
    }

    #[test]
    fn invisible_characters_are_undone_by_normalization(
        text in "[a-zA-Z ,.]{1,80}",
        rate in 0.0f64..=1.0,
        seed in any::<u64>(),
    ) {
        let attacked = insert_invisible(&text, rate, &mut rng(seed)).unwrap();
        let n = text.chars().count();
        let k = (rate * n as f64).round() as usize;
        prop_assert_eq!(attacked.chars().count(), n + k);
        prop_assert_eq!(crate::text::normalize(&attacked).text, text);
    }

    #[test]
    fn homoglyphs_and_words_keep_the_shape(
        text in "[a-zA-Z]{1,8}( [a-zA-Z]{1,8}){0,20}",
        rate in 0.0f64..=1.0,
        seed in any::<u64>(),
    ) {
        let h = homoglyphs(&text, rate, &mut rng(seed)).unwrap();
        prop_assert_eq!(h.chars().count(), text.chars().count());
        let eligible = text.chars().filter(|&c| homoglyph(c).is_some()).count();
        let changed = h.chars().zip(text.chars()).filter(|(a, b)| a != b).count();
        prop_assert_eq!(changed, (rate * eligible as f64).round() as usize);
        let donors = vec!["DONOR".to_string()];
        let w = substitute_words(&text, rate, &donors, &mut rng(seed)).unwrap();
        prop_assert_eq!(word_spans(&w).len(), word_spans(&text).len());
        let words = word_spans(&text).len();
        let k = (rate * words as f64).round() as usize;
        let donors_in = w.split(' ').filter(|x| *x == "DONOR").count();
        let donors_before = text.split(' ').filter(|x| *x == "DONOR").count();
        prop_assert!(donors_in >= k && donors_in <= k + donors_before);
    }
}

#[test]
fn rates_out_of_range_are_errors() {
    assert!(substitute_tokens(&[1, 2], 1.5, 10, &mut rng(0)).is_err());
    assert!(delete_tokens(&[1, 2], -0.1, &mut rng(0)).is_err());
    assert!(insert_tokens(&[1, 2], f64::NAN, 10, &mut rng(0)).is_err());
    assert!(substitute_tokens(&[1, 2], 0.5, 1, &mut rng(0)).is_err());
    assert!(substitute_words("a b", 1.0, &[], &mut rng(0)).is_err());
    assert!("truncate:0".parse::<Attack>().is_err());
    assert!("upper:1".parse::<Attack>().is_err());
    assert!("sub-words".parse::<Attack>().is_err());
}

#[test]
fn every_standard_attack_round_trips_its_name() {
    for a in Attack::standard() {
        assert_eq!(a.to_string().parse::<Attack>().unwrap(), a);
    }
}

#[test]
fn different_seeds_give_different_edits() {
    let ids: Vec<u32> = (0..200).collect();
    let a = substitute_tokens(&ids, 0.3, 1000, &mut text_rng(1, 0)).unwrap();
    let b = substitute_tokens(&ids, 0.3, 1000, &mut text_rng(2, 0)).unwrap();
    let c = substitute_tokens(&ids, 0.3, 1000, &mut text_rng(1, 1)).unwrap();
    assert_ne!(a, b);
    assert_ne!(a, c);
    assert_eq!(
        a,
        substitute_tokens(&ids, 0.3, 1000, &mut text_rng(1, 0)).unwrap()
    );
}

#[test]
fn median_handles_infinity_and_empty() {
    assert_eq!(median(&[]), None);
    assert_eq!(
        median(&[f64::INFINITY, f64::INFINITY, 3.0]),
        Some(f64::INFINITY)
    );
    assert_eq!(median(&[1.0, f64::INFINITY]), Some(f64::INFINITY));
    assert_eq!(median(&[f64::NAN]), None);
    assert_eq!(roc_auc(&[], &[1.0]), None);
    assert_eq!(first_significant(&[-1.0, -8.0, -2.0], 1e-3), Some(2));
    assert_eq!(first_significant(&[-1.0], 1e-3), None);
}

fn tokenizer() -> Tokenizer {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/smollm2-tokenizer.json"
    );
    crate::text::load_tokenizer_json(path.as_ref()).unwrap()
}

/// Lowercase-word texts watermarked by greedy decoding over pseudo-random logits restricted
/// to ids of " word" tokens, and plain ones drawn from the same words.
fn word_salad(
    tokenizer: &Tokenizer,
    key: &Key,
    config: &WatermarkConfig,
) -> (Vec<Sample>, Vec<Sample>) {
    let wm = Watermarker::new(key, config.clone());
    salad(tokenizer, 80, || {
        Box::new(|logits: &mut [f32], ids: &[u32]| {
            wm.bias(logits, ids).unwrap();
        })
    })
}

/// [`word_salad`] with any watermark: `biaser()` starts a text and returns what biases each
/// step's logits given the ids so far; texts have `steps + 1` tokens.
fn salad<'a>(
    tokenizer: &Tokenizer,
    steps: u32,
    mut biaser: impl FnMut() -> Box<dyn FnMut(&mut [f32], &[u32]) + 'a>,
) -> (Vec<Sample>, Vec<Sample>) {
    let mut words: Vec<u32> = tokenizer
        .get_vocab(false)
        .into_iter()
        .filter(|(t, _)| {
            t.len() >= 5 && t.starts_with('Ġ') && t[2..].chars().all(|c| c.is_ascii_lowercase())
        })
        .map(|(_, id)| id)
        .collect();
    words.sort_unstable();
    words.truncate(3000);
    let vocab = tokenizer.get_vocab_size(true);
    let mut marked = Vec::new();
    let mut plain = Vec::new();
    for t in 0..12u32 {
        let mut bias = biaser();
        let mut ids = vec![words[t as usize]];
        for step in 0..steps {
            let mut logits = vec![f32::NEG_INFINITY; vocab];
            for (j, &w) in words.iter().enumerate() {
                logits[w as usize] =
                    ((j as u32 ^ (step * 31 + t)).wrapping_mul(2654435761) >> 24) as f32 / 64.0;
            }
            bias(&mut logits, &ids);
            let next = (0..vocab)
                .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
                .unwrap();
            ids.push(next as u32);
        }
        marked.push(Sample::from_ids(tokenizer, ids).unwrap());
        let p: Vec<u32> = (0..steps)
            .map(|i| words[((i * 7919 + t * 104729) as usize) % words.len()])
            .collect();
        plain.push(Sample::from_ids(tokenizer, p).unwrap());
    }
    (marked, plain)
}

/// SynthID texts from [`salad`], with a 2^16 table (the shift null) and depth 4.
fn synthid_salad(tokenizer: &Tokenizer) -> (SynthIdDetector, Vec<Sample>, Vec<Sample>) {
    let config = crate::synthid::SynthIdConfig::from_json(
        r#"{"ngram_len": 3, "keys": [71, 420, 9, 1337], "sampling_table_size": 65536,
            "sampling_table_seed": 0, "context_history_size": 1024,
            "skip_first_ngram_calls": false, "debug_mode": false}"#,
    )
    .unwrap();
    let wm = crate::synthid::SynthIdWatermarker::new(config.clone()).unwrap();
    let (marked, plain) = salad(tokenizer, 60, || {
        let mut request = wm.request();
        Box::new(move |logits: &mut [f32], ids: &[u32]| {
            if ids.len() > 1 {
                request.push(*ids.last().unwrap());
            }
            request.watermark(logits).unwrap();
        })
    });
    (SynthIdDetector::new(config).unwrap(), marked, plain)
}

#[test]
fn attacks_weaken_detection_as_measured_on_real_tokens() {
    let tokenizer = tokenizer();
    let config = WatermarkConfig::new(tokenizer.get_vocab_size(true) as u64).unwrap();
    let key = Key::from_bytes([21; 32]);
    let (marked, plain) = word_salad(&tokenizer, &key, &config);
    let scorer = Scorer::Kgw(crate::Detector::new(&key, config));
    let ev = Evaluator::new(&scorer, &tokenizer, &plain, EvalOptions::default()).unwrap();
    let row = |a: &str| ev.run(&a.parse().unwrap(), &marked, &plain).unwrap();
    let clean = &row("clean")[0];
    let text = &row("retokenize")[0];
    let upper = &row("upper")[0];
    let invisible = row("invisible:0.2");
    let deleted = &row("del-tokens:0.5")[0];
    assert_eq!(clean.reading, Reading::Ids);
    assert_eq!(clean.tpr_at_1e3, 1.0);
    assert_eq!(clean.auc, Some(1.0));
    assert!(clean.watermark_size.is_some());
    // Uppercasing changes the tokens: the evidence drops (by how much is measured, not pinned).
    assert!(
        upper.median_log10_p > text.median_log10_p,
        "{upper:?} vs {text:?}"
    );
    // Invisible characters hurt raw re-tokenization; normalization undoes them exactly.
    assert_eq!(invisible[1].reading, Reading::NormalizedText);
    assert_eq!(
        invisible[1].median_log10_p,
        row("retokenize")[1].median_log10_p
    );
    assert!(invisible[0].median_log10_p > invisible[1].median_log10_p);
    // Deleting half the tokens halves the text and weakens the evidence.
    assert!(deleted.median_tokens < clean.median_tokens);
    assert!(deleted.median_log10_p > clean.median_log10_p);
    // The plain texts are not detected.
    assert!(ev.plain_rows().iter().all(|r| r.fpr_at_1e3 <= 1.0 / 12.0));
    // Reproducible: the same seed gives the same rows.
    assert_eq!(row("sub-tokens:0.3"), row("sub-tokens:0.3"));
    assert!(Attack::Paraphrase
        .apply(&marked[0], &plain[0], ev.env(), &mut text_rng(0, 0))
        .is_err());
}

#[test]
fn prefix_p_values_end_at_the_texts_p_value() {
    let tokenizer = tokenizer();
    let config = WatermarkConfig::new(tokenizer.get_vocab_size(true) as u64).unwrap();
    let key = Key::from_bytes([22; 32]);
    let (marked, _) = word_salad(&tokenizer, &key, &config);
    let scorer = Scorer::Kgw(crate::Detector::new(&key, config));
    for s in &marked[..3] {
        let prefix = scorer.prefix_ln_p(&s.ids).unwrap();
        assert_eq!(prefix.len(), s.ids.len());
        let last = crate::stats::ln_to_log10(*prefix.last().unwrap());
        assert!((last - scorer.score(&s.ids).unwrap().log10_p).abs() < 1e-9);
        // Each prefix scored from scratch gives the same number.
        for n in [1usize, 10, 40] {
            let direct = scorer.score(&s.ids[..n]).unwrap().log10_p;
            assert!((crate::stats::ln_to_log10(prefix[n - 1]) - direct).abs() < 1e-9);
        }
    }
}

/// Every scorer's watermark size scan agrees with its prefix p-values, which end at the
/// text's own p-value (the naive oracle: each prefix scored from scratch).
#[test]
fn every_scorer_scans_prefixes_as_it_scores_them() {
    let tokenizer = tokenizer();
    let config = WatermarkConfig::new(tokenizer.get_vocab_size(true) as u64).unwrap();
    let key = Key::from_bytes([23; 32]);
    let (kgw_marked, _) = word_salad(&tokenizer, &key, &config);
    let (synthid, synthid_marked, _) = synthid_salad(&tokenizer);
    let detector = crate::Detector::new(&key, config);
    let cases = [
        (Scorer::Kgw(detector.clone()), &kgw_marked),
        (
            Scorer::KgwSpan(detector, SpanOptions::with_min_tokens(8)),
            &kgw_marked,
        ),
        (
            Scorer::SynthId(synthid.clone(), SynthIdStatistic::Mean),
            &synthid_marked,
        ),
        (
            Scorer::SynthId(synthid, SynthIdStatistic::Weighted),
            &synthid_marked,
        ),
    ];
    for (scorer, texts) in &cases {
        for s in &texts[..2] {
            let prefix = scorer.prefix_ln_p(&s.ids).unwrap();
            assert_eq!(prefix.len(), s.ids.len());
            for n in [1usize, 7, 30, s.ids.len()] {
                let direct = scorer.score(&s.ids[..n]).unwrap().log10_p;
                let scanned = crate::stats::ln_to_log10(prefix[n - 1]);
                assert!(
                    (scanned - direct).abs() < 1e-9,
                    "{}: {scanned} vs {direct}",
                    scorer.method()
                );
            }
            for threshold in [1e-2, 1e-3, 1e-6] {
                assert_eq!(
                    scorer.first_significant(&s.ids, threshold).unwrap(),
                    first_significant(&prefix, threshold),
                    "{}",
                    scorer.method()
                );
            }
        }
    }
}

/// A watermarked quarter pasted into human text: the span search finds what the whole-text
/// score dilutes, and neither flags the plain texts.
#[test]
fn the_span_search_finds_a_paste_the_whole_text_score_dilutes() {
    let tokenizer = tokenizer();
    let config = WatermarkConfig::new(tokenizer.get_vocab_size(true) as u64).unwrap();
    let key = Key::from_bytes([24; 32]);
    let (marked, plain) = word_salad(&tokenizer, &key, &config);
    let detector = crate::Detector::new(&key, config);
    let whole = Scorer::Kgw(detector.clone());
    let span = Scorer::KgwSpan(detector, SpanOptions::with_min_tokens(8));
    let paste: Attack = "copy-paste:0.25".parse().unwrap();
    let row = |scorer: &Scorer| {
        let ev = Evaluator::new(scorer, &tokenizer, &plain, EvalOptions::default()).unwrap();
        assert!(ev.plain_rows().iter().all(|r| r.fpr_at_1e3 <= 1.0 / 12.0));
        ev.run(&paste, &marked, &plain).unwrap().remove(0)
    };
    let (w, s) = (row(&whole), row(&span));
    assert!(
        s.median_log10_p < w.median_log10_p - 2.0,
        "span {} vs whole text {}",
        s.median_log10_p,
        w.median_log10_p
    );
    assert!(s.tpr_at_1e3 >= w.tpr_at_1e3);
}

/// SynthID's scores through the evaluator: clean watermarked text is detected, plain text is
/// not, and deleting tokens weakens the evidence.
#[test]
fn synthid_texts_are_evaluated_with_their_exact_null() {
    let tokenizer = tokenizer();
    let (detector, marked, plain) = synthid_salad(&tokenizer);
    for which in [SynthIdStatistic::Mean, SynthIdStatistic::Weighted] {
        let scorer = Scorer::SynthId(detector.clone(), which);
        assert_eq!(scorer.scheme(), crate::synthid::SCHEME_ID);
        let ev = Evaluator::new(&scorer, &tokenizer, &plain, EvalOptions::default()).unwrap();
        let clean = ev.run(&Attack::Clean, &marked, &plain).unwrap().remove(0);
        assert_eq!(clean.tpr_at_1e3, 1.0, "{which:?}: {clean:?}");
        assert_eq!(clean.auc, Some(1.0));
        assert!(ev.plain_rows().iter().all(|r| r.fpr_at_1e3 <= 1.0 / 12.0));
        let deleted = ev
            .run(&"del-tokens:0.5".parse().unwrap(), &marked, &plain)
            .unwrap()
            .remove(0);
        assert!(deleted.median_log10_p > clean.median_log10_p);
    }
}
