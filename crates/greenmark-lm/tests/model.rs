//! The real default model: loading errors, option errors, reproducibility and batching.

use std::io::Write;

use greenmark::{Key, WatermarkConfig, Watermarker};
use greenmark_lm::{GenerateOptions, Lm, LmError, Request};

fn lm() -> Lm {
    Lm::load_default(&mut |_| {}).expect("the default model (see greenmark_lm::fetch)")
}

fn short(seed: u64) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: 12,
        seed,
        ..GenerateOptions::default()
    }
}

#[test]
fn missing_and_corrupt_model_files_say_what_is_wrong() {
    let err = Lm::load("/nonexistent/model.gguf".as_ref()).unwrap_err();
    assert!(matches!(err, LmError::MissingModel { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/model.gguf"), "{err}");

    let mut file = tempfile::Builder::new().suffix(".gguf").tempfile().unwrap();
    file.write_all(b"this is not a GGUF file at all, just some bytes")
        .unwrap();
    let err = Lm::load(file.path()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&file.path().display().to_string()),
        "{message}"
    );
}

#[test]
fn generation_checks_its_inputs() {
    let mut lm = lm();
    let prompt = lm.chat_prompt("Hi").unwrap();
    let too_big = Request::new(vec![1, lm.vocab_size()], None);
    let err = lm.generate(&[too_big], &short(0), &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("token id 49152"), "{err}");

    let err = lm
        .generate(&[Request::new(vec![], None)], &short(0), &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");

    let wrong = Watermarker::new(
        &Key::from_bytes([1; 32]),
        WatermarkConfig::new(32000).unwrap(),
    );
    let request = Request::new(prompt.clone(), Some(&wrong));
    let err = lm.generate(&[request], &short(0), &mut |_| {}).unwrap_err();
    assert!(
        err.to_string().contains("32000") && err.to_string().contains("49152"),
        "{err}"
    );

    let long = GenerateOptions {
        max_new_tokens: 5000,
        ..short(0)
    };
    let err = lm
        .generate(&[Request::new(prompt, None)], &long, &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("context"), "{err}");
}

#[test]
fn the_same_seed_gives_the_same_answer_in_one_batch() {
    let mut lm = lm();
    let key = Key::from_bytes([3; 32]);
    let wm = Watermarker::new(&key, WatermarkConfig::new(lm.vocab_size().into()).unwrap());
    let a = lm.chat_prompt("Name three colours.").unwrap();
    let b = lm.chat_prompt("Name three fruits.").unwrap();
    assert_eq!(
        a.len(),
        b.len(),
        "the test needs prompts of one length to batch them"
    );
    let alone = lm
        .generate(
            &[Request::new(a.clone(), Some(&wm))],
            &short(5),
            &mut |_| {},
        )
        .unwrap()
        .0;
    let again = lm
        .generate(
            &[Request::new(a.clone(), Some(&wm))],
            &short(5),
            &mut |_| {},
        )
        .unwrap()
        .0;
    assert_eq!(alone, again);
    let requests = [Request::new(a, Some(&wm)), Request::new(b, None)];
    let (pair, timings) = lm.generate(&requests, &short(5), &mut |_| {}).unwrap();
    assert!(
        timings.steps <= 11,
        "one batch of two, not two runs: {timings:?}"
    );
    let (pair_again, _) = lm.generate(&requests, &short(5), &mut |_| {}).unwrap();
    assert_eq!(pair, pair_again);
    assert_ne!(pair[0].tokens, pair[1].tokens);
}
