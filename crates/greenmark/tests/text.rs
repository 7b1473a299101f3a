//! Detection on raw text with the real SmolLM2 tokenizer (`tests/data/smollm2-tokenizer.json`,
//! exported from the model's GGUF by `cargo run -p greenmark-lm --example export_tokenizer`).

use std::path::Path;

use greenmark::text::{TextDetector, FOLDED, REMOVED};
use greenmark::{Error, Key, WatermarkConfig, Watermarker};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TOKENIZER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/smollm2-tokenizer.json"
);
const VOCAB: u64 = 49152;

fn key() -> Key {
    Key::from_bytes([21; 32])
}

fn detector() -> TextDetector {
    TextDetector::from_file(
        Path::new(TOKENIZER),
        &key(),
        WatermarkConfig::new(VOCAB).unwrap(),
    )
    .unwrap()
}

/// Watermarked "text" from a toy model that only speaks whole words: at every step it draws
/// among the tokens that are a space plus ASCII letters (`Ġword`), with pseudo-random logits,
/// after the watermark's bias. Such a text decodes to " word word ..." and re-tokenizes to
/// (nearly always) the same ids, so the text path can be checked against the id path.
fn watermarked_words(detector: &TextDetector, n: usize, seed: u64) -> (Vec<u32>, String) {
    let tokenizer = detector.tokenizer();
    let words: Vec<u32> = (0..VOCAB as u32)
        .filter(|&id| {
            tokenizer.id_to_token(id).is_some_and(|t| {
                t.len() > 3 && t.starts_with('Ġ') && t[2..].chars().all(|c| c.is_ascii_lowercase())
            })
        })
        .collect();
    assert!(words.len() > 5000, "{} word tokens", words.len());
    let wm = Watermarker::new(&key(), WatermarkConfig::new(VOCAB).unwrap());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ids: Vec<u32> = vec![words[0]];
    let mut logits = vec![f32::NEG_INFINITY; VOCAB as usize];
    for _ in 0..n {
        logits.fill(f32::NEG_INFINITY);
        for &w in &words {
            logits[w as usize] = rng.gen_range(0.0f32..4.0);
        }
        wm.bias(&mut logits, &ids).unwrap();
        // Gumbel-max: one draw of softmax(logits) over the word tokens.
        let best = words
            .iter()
            .map(|&w| (logits[w as usize] - (-rng.gen::<f32>().ln()).ln(), w))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap()
            .1;
        ids.push(best);
    }
    let text = tokenizer.decode(&ids, false).unwrap();
    (ids, text)
}

#[test]
fn a_watermark_survives_decoding_and_re_tokenizing() {
    let detector = detector();
    for seed in 0..3 {
        let (ids, text) = watermarked_words(&detector, 200, seed);
        let by_ids = detector.detector().detect(&ids, &[]).unwrap();
        let by_text = detector.detect(&text).unwrap();
        assert!(by_ids.log10_p_value < -6.0, "{by_ids:?}");
        assert!(by_text.detection.log10_p_value < -6.0, "{by_text:?}");
        let reencoded = detector.encode(&text).unwrap();
        if reencoded == ids {
            assert_eq!(by_text.detection, by_ids);
        }
        assert!(by_text.normalizations.is_empty());
    }
}

#[test]
fn invisible_edits_do_not_change_the_result() {
    let detector = detector();
    let (_, text) = watermarked_words(&detector, 150, 7);
    let clean = detector.detect(&text).unwrap();
    // An attacker inserts zero-width spaces inside words and swaps spaces for no-break spaces.
    let mut edited = String::new();
    for (i, c) in text.chars().enumerate() {
        match c {
            ' ' if i % 2 == 0 => edited.push('\u{00A0}'),
            ' ' => edited.push(' '),
            c if i % 5 == 0 => {
                edited.push(c);
                edited.push('\u{200B}');
            }
            c => edited.push(c),
        }
    }
    let raw_ids = detector.tokenizer().encode(edited.as_str(), false).unwrap();
    assert_ne!(
        raw_ids.get_ids(),
        detector.encode(&text).unwrap(),
        "the edit must matter raw"
    );
    let after = detector.detect(&edited).unwrap();
    assert_eq!(after.detection, clean.detection);
    let what: Vec<&str> = after.normalizations.iter().map(|a| a.what).collect();
    assert_eq!(what, [REMOVED, FOLDED]);
}

#[test]
fn human_text_is_not_flagged() {
    let detector = detector();
    let text = include_str!("../../../README.md");
    let d = detector.detect(text).unwrap().detection;
    assert!(d.n_scored > 300, "{d:?}");
    assert!(d.log10_p_value > -3.0, "{d:?}");
}

#[test]
fn annotations_cover_the_normalized_text() {
    let detector = detector();
    let a = detector
        .annotate("Hello\u{200B} world, 🙂 héllo!\n")
        .unwrap();
    assert_eq!(a.normalized, "Hello world, 🙂 héllo!\n");
    assert_eq!(a.tokens.len(), a.detection.n_tokens);
    let mut last_start = 0;
    for t in &a.tokens {
        assert!(t.start >= last_start && t.start <= t.end && t.end <= a.normalized.len());
        assert!(a.normalized.is_char_boundary(t.start) && a.normalized.is_char_boundary(t.end));
        last_start = t.start;
    }
    let covered: String = a
        .tokens
        .iter()
        .map(|t| &a.normalized[t.start..t.end])
        .collect();
    assert!(
        covered.contains("Hello") && covered.contains("héllo"),
        "{covered:?}"
    );
    let scored = a.tokens.iter().filter(|t| t.score.is_scored()).count() as u64;
    assert_eq!(scored, a.detection.n_scored);
}

#[test]
fn bad_text_input_is_a_clear_error() {
    let detector = detector();
    for empty in ["", "   \n\t ", "\u{200B}\u{FEFF} \u{00A0}"] {
        assert!(matches!(detector.detect(empty), Err(Error::EmptyText)));
        assert!(matches!(detector.annotate(empty), Err(Error::EmptyText)));
        assert!(matches!(
            detector.detect_reader(empty.as_bytes()),
            Err(Error::EmptyText)
        ));
    }
    let mut bytes = b"valid text, then ".to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe, 0x00]);
    let err = detector.detect_reader(&bytes[..]).unwrap_err();
    assert!(matches!(err, Error::InvalidUtf8 { offset: 17 }), "{err}");
    assert!(err.to_string().contains("not UTF-8"), "{err}");
}

#[test]
fn a_tokenizer_larger_than_the_config_is_refused() {
    let err = TextDetector::from_file(
        Path::new(TOKENIZER),
        &key(),
        WatermarkConfig::new(32000).unwrap(),
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(matches!(
        err,
        Error::TokenizerVocab {
            tokenizer: 49152,
            vocab_size: 32000
        }
    ));
    assert!(
        message.contains("49152") && message.contains("32000"),
        "{message}"
    );
}

#[test]
fn unreadable_tokenizer_files_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let config = WatermarkConfig::new(VOCAB).unwrap();
    let missing = dir.path().join("nope.json");
    let err = TextDetector::from_file(&missing, &key(), config.clone()).unwrap_err();
    assert!(err.to_string().contains("nope.json"), "{err}");
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{\"model\": 3}").unwrap();
    let err = TextDetector::from_file(&garbage, &key(), config).unwrap_err();
    assert!(err.to_string().contains("garbage.json"), "{err}");
}

#[test]
fn streaming_a_large_text_equals_detecting_it_whole() {
    let detector = detector();
    let (_, marked) = watermarked_words(&detector, 300, 11);
    // Several paragraphs and a long line: many 64 KiB pieces, cut at both kinds of boundary.
    let mut text = String::new();
    let readme = include_str!("../../../README.md");
    while text.len() < 300_000 {
        text.push_str(readme);
        text.push_str(&marked);
        text.push_str("\n\n");
        text.push_str(&marked.replace(' ', "  "));
    }
    let whole = detector.detect(&text).unwrap();
    let streamed = detector.detect_reader(text.as_bytes()).unwrap();
    assert_eq!(streamed, whole);
}
