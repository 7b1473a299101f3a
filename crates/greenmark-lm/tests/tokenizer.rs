//! The tokenizer built from the GGUF metadata gives the ids HF transformers' own GGUF loader
//! gives (`scripts/gen_tokenizer_vectors.py`), and decoding round-trips.

use greenmark_lm::tokenizer::load_tokenizer;

#[test]
fn ids_match_transformers() {
    let path = greenmark_lm::default_model(&mut |_| {}).unwrap();
    let tokenizer = load_tokenizer(&path).unwrap();
    let vectors: serde_json::Value =
        serde_json::from_str(include_str!("vectors/tokenizer_ids.json")).unwrap();
    let rows = vectors["rows"].as_array().unwrap();
    assert!(rows.len() >= 20);
    for row in rows {
        let text = row["text"].as_str().unwrap();
        let expected: Vec<u32> = row["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let ids = tokenizer.encode(text, false).unwrap().get_ids().to_vec();
        assert_eq!(ids, expected, "{text:?}");
        let decoded = tokenizer.decode(&ids, false).unwrap();
        assert_eq!(decoded, text, "decode of {text:?}");
    }
    assert_eq!(tokenizer.get_vocab_size(true), 49152);
}

#[test]
fn unreadable_tokenizer_files_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["missing.json", "missing.gguf"] {
        let err = load_tokenizer(&dir.path().join(name)).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
    }
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, b"{not json").unwrap();
    let err = load_tokenizer(&garbage).unwrap_err();
    assert!(err.to_string().contains("garbage.json"), "{err}");
}
