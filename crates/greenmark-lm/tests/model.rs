//! The real default model: loading errors, option errors, reproducibility and batching.

use std::io::Write;
use std::ops::ControlFlow;

use greenmark::{Key, WatermarkConfig, Watermarker};
use greenmark_lm::{
    chat_text, ChatMessage, ChatRole, GenerateOptions, Lm, LmError, Request, TextStream,
    DEFAULT_SYSTEM,
};

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

/// Streaming hands over the tokens `generate` returns, in order; a `Break` ends only its own
/// request; the text deltas add up to the decoded answer.
#[test]
fn streaming_gives_the_same_tokens_and_a_break_ends_one_request() {
    let mut lm = lm();
    let key = Key::from_bytes([4; 32]);
    let wm = Watermarker::new(&key, WatermarkConfig::new(lm.vocab_size().into()).unwrap());
    let a = lm.chat_prompt("Name three colours.").unwrap();
    let b = lm.chat_prompt("Name three fruits.").unwrap();
    let requests = [Request::new(a, Some(&wm)), Request::new(b, Some(&wm))];
    let (plain, _) = lm.generate(&requests, &short(9), &mut |_| {}).unwrap();
    assert!(plain.iter().all(|g| !g.ended_by_caller));

    let tokenizer = lm.tokenizer().clone();
    let mut texts = [TextStream::new(&tokenizer), TextStream::new(&tokenizer)];
    let mut deltas = [String::new(), String::new()];
    let mut seen: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
    let (streamed, _) = lm
        .generate_streaming(&requests, &short(9), &mut |i, id| {
            seen[i].push(id);
            deltas[i].push_str(&texts[i].push(id).unwrap());
            if i == 0 && seen[0].len() == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(seen[0], plain[0].tokens[..3]);
    assert_eq!(streamed[0].tokens, seen[0]);
    assert!(streamed[0].ended_by_caller && !streamed[0].stopped);
    assert_eq!(streamed[1], plain[1]);
    assert_eq!(seen[1], plain[1].tokens);
    for (i, generation) in streamed.iter().enumerate() {
        deltas[i].push_str(&texts[i].finish().unwrap());
        assert_eq!(deltas[i], generation.text);
    }
}

/// A chat of several turns is the ChatML text the template writes, as ids; a one-turn chat is
/// `chat_prompt`.
#[test]
fn chat_templates_encode_every_turn() {
    let lm = lm();
    let one = [ChatMessage::new(ChatRole::User, "Hi")];
    assert_eq!(
        lm.chat_template(&one).unwrap(),
        lm.chat_prompt("Hi").unwrap()
    );
    let turns = [
        ChatMessage::new(ChatRole::System, "Answer in French."),
        ChatMessage::new(ChatRole::User, "Hi"),
        ChatMessage::new(ChatRole::Assistant, "Bonjour !"),
        ChatMessage::new(ChatRole::User, "Thanks"),
    ];
    let ids = lm.chat_template(&turns).unwrap();
    assert_eq!(ids, lm.encode(&chat_text(&turns)).unwrap());
    let start = lm.tokenizer().token_to_id("<|im_start|>").unwrap();
    assert_eq!(ids.iter().filter(|&&t| t == start).count(), 5);
    assert!(!lm.decode(&ids).unwrap().contains(DEFAULT_SYSTEM));
}
