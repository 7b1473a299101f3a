//! The tokenizer built from the GGUF metadata gives the original SmolLM2 tokenizer's ids
//! (`scripts/gen_tokenizer_vectors.py`: transformers' GGUF loader with the original
//! pre-tokenizer), decoding round-trips, and the committed test tokenizer of the core crate is
//! this same tokenizer.
//!
//! The model file is `$GREENMARK_MODEL`, else the default model in `$GREENMARK_HOME`
//! (fetched on first use).

use greenmark_lm::tokenizer::{load_tokenizer, special_token_id, TokenizerError};
use tokenizers::Tokenizer;

struct Row {
    text: String,
    ids: Vec<u32>,
    transformers_gguf_ids: Option<Vec<u32>>,
}

fn rows() -> Vec<Row> {
    let vectors: serde_json::Value =
        serde_json::from_str(include_str!("vectors/tokenizer_ids.json")).unwrap();
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| u32::try_from(x.as_u64().unwrap()).unwrap())
            .collect()
    };
    vectors["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| Row {
            text: row["text"].as_str().unwrap().to_string(),
            ids: ids(&row["ids"]),
            transformers_gguf_ids: row.get("transformers_gguf_ids").map(ids),
        })
        .collect()
}

fn model_tokenizer() -> Tokenizer {
    let path = greenmark_lm::default_model(&mut |_| {}).unwrap();
    load_tokenizer(&path).unwrap()
}

fn encode(tokenizer: &Tokenizer, text: &str) -> Vec<u32> {
    tokenizer.encode(text, false).unwrap().get_ids().to_vec()
}

#[test]
fn ids_match_the_original_tokenizer() {
    let tokenizer = model_tokenizer();
    let rows = rows();
    assert_eq!(rows.len(), 30);
    // The vectors include texts where transformers' GGUF loader (bare GPT-2 split) differs
    // from the original tokenizer: the digit split matters and is tested.
    assert!(
        rows.iter()
            .filter(|r| r.transformers_gguf_ids.is_some())
            .count()
            >= 5
    );
    for row in &rows {
        let ids = encode(&tokenizer, &row.text);
        assert_eq!(ids, row.ids, "{:?}", row.text);
        let decoded = tokenizer.decode(&ids, false).unwrap();
        assert_eq!(decoded, row.text, "decode of {:?}", row.text);
    }
    assert_eq!(tokenizer.get_vocab_size(true), 49152);
}

#[test]
fn chat_tokens_are_single_special_ids() {
    let tokenizer = model_tokenizer();
    for (token, id) in [("<|endoftext|>", 0), ("<|im_start|>", 1), ("<|im_end|>", 2)] {
        assert_eq!(special_token_id(&tokenizer, token), Some(id), "{token}");
    }
    assert_eq!(special_token_id(&tokenizer, "Hello"), None);
    let ids = encode(&tokenizer, "<|im_start|>user\nHi<|im_end|>");
    assert_eq!(ids.first(), Some(&1));
    assert_eq!(ids.last(), Some(&2));
    let ids = encode(&tokenizer, "Hi<|im_end|>");
    assert_eq!(tokenizer.decode(&ids, true).unwrap(), "Hi");
}

/// `crates/greenmark/tests/data/smollm2-tokenizer.json` (written by
/// `cargo run --release -p greenmark-lm --example export_tokenizer`) must be this tokenizer.
#[test]
fn the_core_crates_test_tokenizer_is_this_one() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../greenmark/tests/data/smollm2-tokenizer.json"
    );
    let exported = load_tokenizer(path.as_ref()).unwrap();
    let tokenizer = model_tokenizer();
    assert_eq!(exported.get_vocab(true), tokenizer.get_vocab(true));
    for row in rows() {
        assert_eq!(encode(&exported, &row.text), row.ids, "{:?}", row.text);
    }
    assert_eq!(special_token_id(&exported, "<|im_end|>"), Some(2));
}

#[test]
fn unreadable_tokenizer_files_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["missing.json", "missing.gguf"] {
        let err = load_tokenizer(&dir.path().join(name)).unwrap_err();
        assert!(matches!(err, TokenizerError::Io { .. }), "{err}");
        assert!(err.to_string().contains(name), "{err}");
    }
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, b"{not json").unwrap();
    let err = load_tokenizer(&garbage).unwrap_err();
    assert!(err.to_string().contains("garbage.json"), "{err}");

    // A GGUF cut short after its metadata began: named as a corrupt GGUF, whatever its name.
    let model = greenmark_lm::default_model(&mut |_| {}).unwrap();
    let head = std::fs::read(&model).unwrap()[..4096].to_vec();
    let cut = dir.path().join("cut.bin");
    std::fs::write(&cut, head).unwrap();
    let err = load_tokenizer(&cut).unwrap_err();
    assert!(
        matches!(
            err,
            TokenizerError::Corrupt {
                format: "GGUF file",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("cut.bin"), "{err}");
}
