//! Reading mode on the real default model: predictions agree with greedy generation, batching
//! and padding do not change them, and a model that never saw the key is not radioactive.

use greenmark::radioactivity::{RadioactivityTest, TestOptions};
use greenmark::{Key, WatermarkConfig};
use greenmark_lm::{GenerateOptions, Lm, ReadingOptions, Request};

fn lm() -> Lm {
    Lm::load_default(&mut |_| {}).expect("the default model (see greenmark_lm::fetch)")
}

fn texts(lm: &Lm) -> Vec<Vec<u32>> {
    [
        "The ocean covers most of the planet and holds many kinds of fish.",
        "Bread is made from flour, water, salt and yeast, then baked in an oven until golden.",
        "Chess is a game for two players.",
    ]
    .iter()
    .map(|t| lm.encode(t).unwrap())
    .collect()
}

#[test]
fn the_last_prediction_is_the_greedy_next_token_and_batching_keeps_predictions() {
    let mut lm = lm();
    let texts = texts(&lm);
    let mut calls = 0usize;
    let batched = lm
        .top1_predictions(&texts, &ReadingOptions::default(), &mut |n| calls += n)
        .unwrap();
    assert_eq!(calls, texts.iter().map(Vec::len).sum::<usize>());
    let alone: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| {
            lm.top1_predictions(
                std::slice::from_ref(t),
                &ReadingOptions::default(),
                &mut |_| {},
            )
            .unwrap()
            .remove(0)
        })
        .collect();
    for ((b, a), t) in batched.iter().zip(&alone).zip(&texts) {
        assert_eq!(b.len(), t.len());
        // A batched pass rounds differently from a single one; an argmax may flip on a
        // near-tie, so allow one.
        let differ = b.iter().zip(a).filter(|(x, y)| x != y).count();
        assert!(differ <= 1, "{differ} of {} predictions differ", b.len());
    }
    // The prediction after the whole text is greedy generation's first token.
    let greedy = GenerateOptions {
        max_new_tokens: 1,
        temperature: 0.0,
        ..GenerateOptions::default()
    };
    for (t, a) in texts.iter().zip(&alone) {
        let (g, _) = lm
            .generate(&[Request::new(t.clone(), None)], &greedy, &mut |_| {})
            .unwrap();
        let first = g[0].tokens.first().copied();
        assert!(
            first.is_none() || first == a.last().copied(),
            "{first:?} vs {:?}",
            a.last()
        );
    }
}

#[test]
fn reading_checks_inputs_and_a_clean_model_is_not_radioactive() {
    let mut lm = lm();
    let texts = texts(&lm);
    let config = WatermarkConfig::new(lm.vocab_size().into()).unwrap();
    let mut test =
        RadioactivityTest::new(&[Key::from_bytes([8; 32])], config, TestOptions::default())
            .unwrap();
    lm.read_into(&mut test, &texts, &ReadingOptions::default(), &mut |_| {})
        .unwrap();
    let r = test.finish();
    // Window 1: every position, the last one included, has a window and a prediction.
    let n: usize = texts.iter().map(Vec::len).sum();
    assert!(
        r.keys[0].n_seen as usize == n,
        "{} vs {n}",
        r.keys[0].n_seen
    );
    assert!(r.log10_p_value > -3.0, "{}", r.log10_p_value);

    let wrong = WatermarkConfig::new(32000).unwrap();
    let mut test =
        RadioactivityTest::new(&[Key::from_bytes([8; 32])], wrong, TestOptions::default()).unwrap();
    let err = lm
        .read_into(&mut test, &texts, &ReadingOptions::default(), &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("closed mode"), "{err}");
    let err = lm
        .top1_predictions(&[vec![1, 49152]], &ReadingOptions::default(), &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("token id 49152"), "{err}");
    let mut bad = ReadingOptions::default();
    bad.max_batch = 0;
    let err = lm.top1_predictions(&texts, &bad, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("max_batch"), "{err}");
}
