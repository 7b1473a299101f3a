//! Property tests: the fast biasing and scoring paths equal the naive oracle in
//! `common/mod.rs` on random keys, configs, contexts and logits, for every scheme.

mod common;

use greenmark::{
    BiasOutcome, Detector, Key, Scheme, SkipReason, TokenScore, WatermarkConfig, Watermarker,
};
use proptest::prelude::*;

fn scheme_strategy() -> impl Strategy<Value = Scheme> {
    prop_oneof![
        (1usize..=4).prop_map(|window| Scheme::LeftHash { window }),
        (1usize..=4).prop_map(|window| Scheme::MinHash { window }),
        (1usize..=4).prop_map(|window| Scheme::SumHash { window }),
        (1usize..=4, 1usize..=40).prop_map(|(window, top_k)| Scheme::SelfHash { window, top_k }),
        Just(Scheme::Unigram),
    ]
}

fn config_strategy() -> impl Strategy<Value = WatermarkConfig> {
    (
        2u64..600,
        prop_oneof![Just(0.25), Just(0.5), 0.01f64..0.99],
        prop_oneof![Just(2.0), 0.01f64..8.0],
        scheme_strategy(),
        any::<bool>(),
    )
        .prop_map(|(vocab, gamma, delta, scheme, skip)| {
            WatermarkConfig::builder(vocab)
                .gamma(gamma)
                .delta(delta)
                .scheme(scheme)
                .skip_repeated_windows(skip)
                .build()
                .unwrap()
        })
}

/// Logits with ties, NaN, infinities and signed zeros mixed in.
fn logit_strategy() -> impl Strategy<Value = f32> {
    prop_oneof![
        8 => -20.0f32..20.0,
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
        1 => Just(-0.0f32),
        2 => Just(1.0f32),
    ]
}

fn case_strategy() -> impl Strategy<Value = (Key, WatermarkConfig, Vec<u32>, Vec<f32>)> {
    (any::<[u8; 32]>(), config_strategy()).prop_flat_map(|(key, config)| {
        let v = config.vocab_size();
        // A small alphabet makes repeated windows common.
        let alphabet = prop_oneof![Just(v), Just(v.min(4))];
        (
            Just(Key::from_bytes(key)),
            Just(config),
            alphabet.prop_flat_map(|a| prop::collection::vec(0..a, 0..30)),
            prop::collection::vec(logit_strategy(), v as usize),
        )
    })
}

fn bits(row: &[f32]) -> Vec<u32> {
    row.iter().map(|x| x.to_bits()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn bias_equals_the_oracle((key, config, context, logits) in case_strategy()) {
        let wm = Watermarker::new(&key, config.clone());
        let mut fast = logits.clone();
        let outcome = wm.bias(&mut fast, &context).unwrap();
        let naive = common::bias(&key, &config, &logits, &context);
        prop_assert_eq!(bits(&fast), bits(&naive));
        prop_assert_eq!(outcome == BiasOutcome::Biased, common::biased(&config, &context));
        if context.len() < config.scheme().context_len() {
            prop_assert_eq!(outcome, BiasOutcome::Skipped(SkipReason::NoWindow));
        }
    }

    #[test]
    fn green_mask_equals_the_oracle((key, config, context, _logits) in case_strategy()) {
        let wm = Watermarker::new(&key, config.clone());
        let v = config.vocab_size() as usize;
        let mut mask = vec![u64::MAX; v.div_ceil(64)];
        wm.green_mask(&context, &mut mask).unwrap();
        let h = config.scheme().context_len();
        for t in 0..v {
            let bit = mask[t / 64] >> (t % 64) & 1 == 1;
            let expected = common::biased(&config, &context) && {
                let window = &context[context.len() - h..];
                common::is_green(&config, common::seed(&key, config.scheme(), window, t as u32), t as u32)
            };
            prop_assert_eq!(bit, expected, "token {}", t);
        }
        // Bits past the vocabulary stay clear.
        if !v.is_multiple_of(64) {
            prop_assert_eq!(mask[v / 64] >> (v % 64), 0);
        }
    }

    #[test]
    fn batch_equals_rows((key, config, context, logits) in case_strategy(), rows in 1usize..5) {
        let wm = Watermarker::new(&key, config.clone());
        let contexts: Vec<Vec<u32>> = (0..rows).map(|r| context[..context.len() * r / rows.max(1)].to_vec()).collect();
        let mut batch: Vec<f32> = logits.repeat(rows);
        wm.bias_batch(&mut batch, &contexts).unwrap();
        for (r, ctx) in contexts.iter().enumerate() {
            let naive = common::bias(&key, &config, &logits, ctx);
            let v = logits.len();
            prop_assert_eq!(bits(&batch[r * v..(r + 1) * v]), bits(&naive));
        }
    }

    #[test]
    fn detection_equals_the_oracle(
        (key, config, tokens, _logits) in case_strategy(),
        prompt_len in 0usize..6,
        dedup in any::<bool>(),
    ) {
        let prompt_len = prompt_len.min(tokens.len());
        let (prompt, text) = tokens.split_at(prompt_len);
        let detector = Detector::new(&key, config.clone()).with_dedup(dedup);
        let (d, scores) = detector.annotate(text, prompt).unwrap();
        let naive = common::score(&key, &config, text, prompt, dedup);
        let expected: Vec<Option<bool>> = scores
            .iter()
            .map(|s| match s {
                TokenScore::Green => Some(true),
                TokenScore::Red => Some(false),
                _ => None,
            })
            .collect();
        prop_assert_eq!(&expected, &naive);
        let scored = naive.iter().filter(|s| s.is_some()).count() as u64;
        let green = naive.iter().filter(|s| **s == Some(true)).count() as u64;
        prop_assert_eq!((d.n_scored, d.n_green), (scored, green));
        let plain = detector.detect(text, prompt).unwrap();
        prop_assert_eq!(plain, d);
    }
}
