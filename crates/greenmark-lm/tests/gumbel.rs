//! Power of the Gumbel-max watermark on the real default model: SmolLM2-135M-Instruct answers
//! of 200 tokens at temperature 1, sampled with vLLM's Gumbel rule (greenmark's own key,
//! vLLM's defaults: context width 4, `single_turn` dedup), must be detected at p < 1e-6 in at
//! least 9 of 10, on the generated ids; a wrong key must find nothing.
//!
//! The ten prompts have the same token length, so the ten answers run as one batch (one
//! forward pass per step). Run with `--nocapture` to see the figures:
//! `cargo test --release -p greenmark-lm --test gumbel -- --nocapture`.

use std::time::Instant;

use greenmark::gumbel::{GumbelConfig, GumbelDetector, GumbelKey, GumbelWatermarker};
use greenmark::Key;
use greenmark_lm::{GenerateOptions, Lm, Request};

const TOPICS: [&str; 10] = [
    "cats", "dogs", "rivers", "bread", "music", "trains", "winter", "gardens", "oceans", "books",
];

#[test]
fn gumbel_watermarked_answers_are_detected() {
    let start = Instant::now();
    let mut lm =
        Lm::load_default(&mut |_| {}).expect("the default model (see greenmark_lm::fetch)");
    let key = GumbelKey::from_key(&Key::from_bytes(*b"greenmark gumbel e2e test key!!!"));
    let config = GumbelConfig::default();
    let watermarker = GumbelWatermarker::new(key, config).unwrap();
    let prompts: Vec<Vec<u32>> = TOPICS
        .iter()
        .map(|t| {
            lm.chat_prompt(&format!("Write a short essay about {t}."))
                .unwrap()
        })
        .collect();
    assert!(
        prompts.iter().all(|p| p.len() == prompts[0].len()),
        "the prompts should have one length, to run as one batch: {:?}",
        prompts.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let options = GenerateOptions {
        max_new_tokens: 200,
        min_new_tokens: 200,
        temperature: 1.0,
        seed: 2026,
        ..GenerateOptions::default()
    };
    let requests: Vec<Request<'_>> = prompts
        .iter()
        .map(|p| Request::gumbel(p.clone(), &watermarker))
        .collect();
    let (answers, timings) = lm.generate(&requests, &options, &mut |_| {}).unwrap();

    let detector = GumbelDetector::new(key, config).unwrap();
    let wrong =
        GumbelDetector::new(GumbelKey::from_key(&Key::from_bytes([7; 32])), config).unwrap();
    let mut detected = 0;
    eprintln!("tokens scored  log10 p (ids)  log10 p (re-tokenized text)  log10 p (wrong key)");
    for answer in &answers {
        let d = detector.detect(&answer.tokens).unwrap();
        let retokenized = detector.detect(&lm.encode(&answer.text).unwrap()).unwrap();
        let w = wrong.detect(&answer.tokens).unwrap();
        eprintln!(
            "{:>6} {:>6}  {:>13.2}  {:>27.2}  {:>19.2}",
            answer.tokens.len(),
            d.n_scored,
            d.log10_p_value,
            retokenized.log10_p_value,
            w.log10_p_value
        );
        detected += usize::from(d.log10_p_value < -6.0);
        assert!(
            w.log10_p_value > -3.0,
            "a wrong key scored {}",
            w.log10_p_value
        );
    }
    eprintln!(
        "{} decode steps of batch 10: forward {:.1} ms/step, sampling {:.2} ms/step; test {:.1} s",
        timings.steps,
        timings.forward.as_secs_f64() / timings.steps as f64 * 1e3,
        timings.sampling.as_secs_f64() / timings.steps as f64 * 1e3,
        start.elapsed().as_secs_f64()
    );
    assert!(detected >= 9, "only {detected}/10 answers reached p < 1e-6");
}
