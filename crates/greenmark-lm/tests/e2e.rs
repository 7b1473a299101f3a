//! End to end on the real default model: generate with the watermark, decode to text,
//! re-tokenize, detect. No mocks: SmolLM2-135M-Instruct through candle, its own tokenizer.
//!
//! The figures are printed; run with `--nocapture` to see them:
//! `cargo test --release -p greenmark-lm --test e2e -- --nocapture`.

use greenmark::text::TextDetector;
use greenmark::{Key, WatermarkConfig, Watermarker};
use greenmark_lm::{GenerateOptions, Lm, Request};

const PROMPTS: [&str; 10] = [
    "Explain why the sky is blue.",
    "Write a short story about a lighthouse keeper.",
    "What are the health benefits of walking every day?",
    "Describe how a bicycle works.",
    "Give me advice for my first job interview.",
    "Why do cats purr?",
    "Write a letter to a friend about your summer holiday.",
    "How do plants make their food?",
    "What should I pack for a week of hiking in the mountains?",
    "Tell me about the history of the printing press.",
];

#[test]
fn watermarked_answers_are_detected_from_text_and_plain_ones_are_not() {
    let mut lm =
        Lm::load_default(&mut |_| {}).expect("the default model (see greenmark_lm::fetch)");
    let key = Key::from_bytes(*b"greenmark e2e test key, fixed.!!");
    let config = WatermarkConfig::new(lm.vocab_size().into()).unwrap();
    let watermarker = Watermarker::new(&key, config.clone());
    let detector = TextDetector::new(lm.tokenizer().clone(), &key, config).unwrap();
    let prompts: Vec<Vec<u32>> = PROMPTS.iter().map(|p| lm.chat_prompt(p).unwrap()).collect();
    let options = GenerateOptions {
        // Answers of 200 tokens, as the issue asks: the model's end-of-turn is masked until then.
        max_new_tokens: 200,
        min_new_tokens: 200,
        temperature: 1.0,
        seed: 2026,
        ..GenerateOptions::default()
    };

    // Both kinds in one call: a prompt's watermarked and plain answers share a batch.
    let requests: Vec<Request<'_>> = prompts
        .iter()
        .flat_map(|p| {
            [
                Request::new(p.clone(), Some(&watermarker)),
                Request::new(p.clone(), None),
            ]
        })
        .collect();
    let (answers, timings) = lm.generate(&requests, &options, &mut |_| {}).unwrap();
    let marked: Vec<_> = answers.iter().step_by(2).cloned().collect();
    let plain: Vec<_> = answers.iter().skip(1).step_by(2).cloned().collect();

    let mut detected = 0;
    eprintln!("kind       tokens scored  green   log10 p");
    for (kind, answers) in [("marked", &marked), ("plain", &plain)] {
        for answer in answers.iter() {
            let d = detector.detect(&answer.text).unwrap().detection;
            eprintln!(
                "{kind:<10} {:>6} {:>6}  {:.3} {:>9.2}",
                answer.tokens.len(),
                d.n_scored,
                d.green_fraction,
                d.log10_p_value
            );
            if kind == "marked" {
                detected += usize::from(d.log10_p_value < -6.0);
            } else {
                assert!(
                    d.log10_p_value > -3.0,
                    "a plain answer scored log10 p = {}: {:?}",
                    d.log10_p_value,
                    answer.text
                );
            }
        }
    }
    let steps = timings.steps as f64;
    eprintln!(
        "{} decode steps of batch 2: forward {:.2} ms/step, watermark {:.1} us/step ({:.3}% of \
         the forward pass), sampling {:.1} us/step",
        timings.steps,
        timings.forward.as_secs_f64() / steps * 1e3,
        timings.watermark.as_secs_f64() / steps * 1e6,
        100.0 * timings.watermark.as_secs_f64() / timings.forward.as_secs_f64(),
        timings.sampling.as_secs_f64() / steps * 1e6,
    );
    assert!(
        detected >= 9,
        "only {detected}/10 watermarked answers reached p < 1e-6"
    );
}
