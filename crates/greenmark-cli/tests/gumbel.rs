//! `greenmark detect --vllm-config`: vLLM's native watermark on served token ids (JSON Lines)
//! and on re-tokenized text, with the golden cases of vLLM's own tests as input.

mod common;

use common::{greenmark, tokenizer_path};
use serde_json::Value;

const GOLDENS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../greenmark/tests/vectors/vllm-watermarking-goldens.json"
);

fn case(id: &str) -> Value {
    let g: Value = serde_json::from_str(&std::fs::read_to_string(GOLDENS).unwrap()).unwrap();
    g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap()
        .clone()
}

#[test]
fn detects_vllm_goldens_from_token_id_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg.json");
    std::fs::write(
        &cfg,
        r#"{"key": 42, "algorithm": "gumbel", "context_width": 4}"#,
    )
    .unwrap();
    let marked = case("gumbel-key42-cw4");
    let ids = marked["generated"].clone();
    let input = dir.path().join("ids.jsonl");
    // One object with vLLM's `token_ids`, one bare array, and the same ids under the wrong key's
    // golden (generated with key 42, so key 42 finds it).
    std::fs::write(
        &input,
        format!(
            "{{\"token_ids\": {ids}}}\n{}\n",
            serde_json::json!([5, 6, 7, 8, 9, 10, 11, 12])
        ),
    )
    .unwrap();
    let out = greenmark()
        .args(["detect", "--json", "--threshold", "0.01", "--vllm-config"])
        .arg(&cfg)
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["n_scored"], marked["n_scored"]);
    let score = lines[0]["score"].as_f64().unwrap();
    let want = marked["score"].as_f64().unwrap();
    assert!(((score - want) / want).abs() < 1e-9, "{score} vs {want}");
    let p = marked["p_value"].as_f64().unwrap();
    assert!((lines[0]["log10_p_value"].as_f64().unwrap() - p.log10()).abs() < 1e-8);
    assert_eq!(lines[0]["is_watermarked"], true);
    assert_eq!(lines[0]["scheme"], "greenmark/gumbel-vllm/v1");
    assert_eq!(lines[0]["retokenized"], false);
    assert_eq!(lines[1]["n_scored"], 8);
    assert_eq!(lines[1]["is_watermarked"], false);

    // The table, and --exit-code.
    let out = greenmark()
        .args(["detect", "--exit-code", "--vllm-config"])
        .arg(&cfg)
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(10), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("line 1:") && table.contains("WATERMARKED"),
        "{table}"
    );
    assert!(table.contains("1 of 2 answers watermarked"), "{table}");
}

#[test]
fn text_with_a_tokenizer_warns_that_ids_can_differ() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg.json");
    std::fs::write(&cfg, r#"{"key": 7}"#).unwrap();
    let text = dir.path().join("t.txt");
    std::fs::write(
        &text,
        "The quick brown fox jumps over the lazy dog, again and again.",
    )
    .unwrap();
    let out = greenmark()
        .args(["detect", "--json", "--vllm-config"])
        .arg(&cfg)
        .arg("--tokenizer")
        .arg(tokenizer_path())
        .arg(&text)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("re-tokenized text can differ"), "{stderr}");
    let d: Value = serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    assert_eq!(d["retokenized"], true);
    assert_eq!(d["is_watermarked"], false);
    assert!(d["n_scored"].as_u64().unwrap() > 5);
}

/// Runs `detect --vllm-config` on `config` and `input` and checks it fails with exit status 1
/// and a message containing `needle`.
fn fails_with(dir: &std::path::Path, config: &str, input: &str, needle: &str) {
    let cfg = dir.join("cfg.json");
    let ids = dir.join("ids.jsonl");
    std::fs::write(&cfg, config).unwrap();
    std::fs::write(&ids, input).unwrap();
    let out = greenmark()
        .args(["detect", "--vllm-config"])
        .arg(&cfg)
        .arg(&ids)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{config} / {input}: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(needle), "{config} / {input}: {stderr}");
}

#[test]
fn bad_configs_and_inputs_say_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    for (config, needle) in [
        (r#"{"key": -1}"#, "key must be an integer"),
        (r#"{"key": 1, "algorithm": "sbw"}"#, "sbw"),
        (r#"{"key": 1, "alpha": 2}"#, "alpha"),
        (r#"{"key": 1, "context_width": 0}"#, "context_width"),
        (r#"{"key": 1, "colour": 1}"#, "unknown field"),
    ] {
        fails_with(dir.path(), config, "[1, 2, 3]\n", needle);
    }
    for (line, needle) in [
        ("[1, -2]", "not a token id"),
        ("{\"ids\": [1]}", "--ids-field"),
        ("not json", "not valid JSON"),
    ] {
        fails_with(dir.path(), r#"{"key": 1}"#, line, needle);
    }
}
