//! `greenmark radioactivity closed|open` through the real binary: verdicts, JSON, budget,
//! several keys, the HTML report, and one-line errors.

mod common;

use std::path::{Path, PathBuf};

use common::{greenmark, keygen, plain_text, tokenizer_path, watermarked_text};
use serde_json::Value;

fn jsonl(dir: &Path, name: &str, field: &str, texts: &[String]) -> PathBuf {
    let path = dir.join(name);
    let body: String = texts
        .iter()
        .map(|t| serde_json::json!({ field: t }).to_string() + "\n")
        .collect();
    std::fs::write(&path, body).unwrap();
    path
}

fn closed(key: &[&Path], outputs: &Path, extra: &[&str]) -> std::process::Output {
    let mut cmd = greenmark();
    cmd.args(["radioactivity", "closed", "--tokenizer"])
        .arg(tokenizer_path())
        .arg("--outputs")
        .arg(outputs);
    for k in key {
        cmd.arg("--key-file").arg(k);
    }
    cmd.args(extra).output().unwrap()
}

fn json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn closed_mode_finds_a_radioactive_suspect_with_several_keys_and_a_budget() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let other = keygen(dir.path(), "o.json", &[]);
    // The "suspect" writes text that carries the watermark (as a distilled student would).
    let texts: Vec<String> = (0..6).map(|s| watermarked_text(&key, 80, s)).collect();
    let outputs = jsonl(dir.path(), "suspect.jsonl", "text", &texts);
    let out = closed(
        &[&other, &key],
        &outputs,
        &["--json", "--max-tuples", "200"],
    );
    let r = json(&out);
    assert_eq!(r["strongest_key"], 1);
    assert_eq!(r["keys"][1]["n_scored"], 200);
    assert_eq!(r["exploratory"], false);
    assert_eq!(r["budget_reached"], true, "{r}");
    assert_eq!(r["keys"][0]["budget_reached"], true, "{r}");
    assert!(r["log10_p_value"].as_f64().unwrap() < -6.0, "{r}");
    assert!(
        r["keys"][0]["log10_p_value"].as_f64().unwrap() > -3.0,
        "{r}"
    );
    let bonf = r["ln_p_bonferroni"].as_f64().unwrap();
    let min = r["ln_p_min"].as_f64().unwrap();
    assert!((bonf - (min + 2f64.ln())).abs() < 1e-9);
    // The text summary says the verdict, and without a budget that it is exploratory.
    let out = closed(&[&key], &outputs, &[]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("verdict   RADIOACTIVE at the 1e-6 threshold (p = "),
        "{text}"
    );
    assert!(text.contains("EXPLORATORY, budget_reached no"), "{text}");
}

/// The summary says which way a p-value falls at the threshold given (never "not
/// radioactive (p < ...)"), and whether the budget was reached, in text and in JSON.
#[test]
fn closed_mode_words_the_verdict_and_reports_budget_reached() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let plain: Vec<String> = (0..4).map(|s| plain_text(60, s)).collect();
    let outputs = jsonl(dir.path(), "plain.jsonl", "text", &plain);
    // A text that never saw the key, with a budget larger than its tuples.
    let out = closed(&[&key], &outputs, &["--max-tuples", "100000"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("verdict   not radioactive at the 1e-6 threshold (p = 0."),
        "{text}"
    );
    assert!(!text.contains("not radioactive (p <"), "{text}");
    assert!(
        text.contains("budget fixed up front: 100000 tuples, budget_reached NO (only "),
        "{text}"
    );
    let r = json(&closed(
        &[&key],
        &outputs,
        &["--json", "--max-tuples", "100000"],
    ));
    assert_eq!(r["budget_reached"], false, "{r}");
    assert_eq!(r["keys"][0]["budget_reached"], false, "{r}");
    assert!(r["keys"][0]["n_scored"].as_u64().unwrap() < 100_000);
    // The threshold printed is the one given; a budget the corpus covers is reached.
    let out = closed(
        &[&key],
        &outputs,
        &["--max-tuples", "20", "--threshold", "1e-3"],
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("not radioactive at the 1e-3 threshold (p = "),
        "{text}"
    );
    assert!(
        text.contains("budget fixed up front: 20 tuples, budget_reached yes"),
        "{text}"
    );
    let r = json(&closed(&[&key], &outputs, &["--json"]));
    assert_eq!(r["budget_reached"], false, "{r}");
}

/// Key files that differ only in delta are one detector: tested together. Key files with
/// different green lists are refused, naming each file with its own value.
#[test]
fn several_keys_may_differ_in_delta_but_not_in_gamma() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let strong = keygen(dir.path(), "strong.json", &["--delta", "4"]);
    let wide = keygen(dir.path(), "wide.json", &["--gamma", "0.5"]);
    let texts: Vec<String> = (0..3).map(|s| watermarked_text(&key, 80, s)).collect();
    let outputs = jsonl(dir.path(), "s.jsonl", "text", &texts);
    let r = json(&closed(&[&strong, &key], &outputs, &["--json"]));
    assert_eq!(r["strongest_key"], 1, "{r}");
    assert!(r["log10_p_value"].as_f64().unwrap() < -6.0, "{r}");
    let out = closed(&[&key, &wide], &outputs, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    let expected = format!(
        "key file {} has gamma 0.5 but key file {} has gamma 0.25",
        wide.display(),
        key.display()
    );
    assert!(err.contains(&expected), "{err}");
    assert!(err.contains("differ only in delta"), "{err}");
}

#[test]
fn closed_mode_excludes_prompts_filters_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let marked = watermarked_text(&key, 150, 9);
    // The suspect only quotes its (watermarked) prompt: not radioactive once it is excluded.
    let outputs = jsonl(
        dir.path(),
        "out.jsonl",
        "text",
        std::slice::from_ref(&marked),
    );
    let prompts = jsonl(
        dir.path(),
        "p.jsonl",
        "prompt",
        std::slice::from_ref(&marked),
    );
    let without = json(&closed(&[&key], &outputs, &["--json"]));
    assert!(without["log10_p_value"].as_f64().unwrap() < -6.0);
    let report = dir.path().join("r.html");
    let with = json(&closed(
        &[&key],
        &outputs,
        &[
            "--json",
            "--prompts",
            prompts.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    ));
    assert_eq!(with["keys"][0]["n_scored"], 0, "{with}");
    assert_eq!(with["keys"][0]["n_excluded"], with["keys"][0]["n_seen"]);
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("<svg") && html.contains("EXPLORATORY"),
        "{html}"
    );
    // A filter of unrelated text leaves nothing to score.
    let filter = jsonl(dir.path(), "f.jsonl", "text", &[plain_text(40, 3)]);
    let r = json(&closed(
        &[&key],
        &outputs,
        &["--json", "--filter", filter.to_str().unwrap()],
    ));
    let k = &r["keys"][0];
    assert!(k["n_filtered"].as_u64().unwrap() > 100, "{r}");
}

#[test]
fn open_mode_reads_predictions_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let tokenizer = tokenizers::Tokenizer::from_file(tokenizer_path()).unwrap();
    let ids: Vec<u32> = tokenizer
        .encode(watermarked_text(&key, 200, 4).as_str(), false)
        .unwrap()
        .get_ids()
        .to_vec();
    // A suspect that predicts exactly the watermarked text's next tokens is radioactive; one
    // that predicts a constant token is not.
    let mut next: Vec<u32> = ids[1..].to_vec();
    next.push(0);
    let lines = [
        serde_json::json!({"ids": ids, "predictions": next}),
        serde_json::json!({"ids": ids, "predictions": vec![13u32; ids.len()]}),
    ];
    let mut results = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let path = dir.path().join(format!("p{i}.jsonl"));
        std::fs::write(&path, line.to_string() + "\n").unwrap();
        let out = greenmark()
            .args(["radioactivity", "open", "--json", "--key-file"])
            .arg(&key)
            .arg("--predictions")
            .arg(&path)
            .output()
            .unwrap();
        results.push(json(&out)["log10_p_value"].as_f64().unwrap());
    }
    assert!(results[0] < -6.0 && results[1] > -3.0, "{results:?}");
    // A line with fewer predictions than ids is an error naming the line.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"ids\": [1, 2, 3], \"predictions\": [1]}\n").unwrap();
    let out = greenmark()
        .args(["radioactivity", "open", "--key-file"])
        .arg(&key)
        .arg("--predictions")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("bad.jsonl line 1") && err.contains("one prediction per input"),
        "{err}"
    );
}

#[test]
fn open_mode_reads_texts_with_the_embedded_model() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let texts = jsonl(
        dir.path(),
        "t.jsonl",
        "text",
        &[plain_text(12, 1), "The sea is wide and deep.".to_string()],
    );
    let report = dir.path().join("open.html");
    let out = greenmark()
        .args([
            "radioactivity",
            "open",
            "--json",
            "--max-tuples",
            "20",
            "--key-file",
        ])
        .arg(&key)
        .arg("--texts")
        .arg(&texts)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let r = json(&out);
    // The embedded model never saw this key: its predictions are not radioactive.
    assert_eq!(r["keys"][0]["n_scored"], 20, "{r}");
    assert!(r["log10_p_value"].as_f64().unwrap() > -4.0, "{r}");
    assert!(std::fs::read_to_string(&report).unwrap().contains("<svg"));
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let other = keygen(dir.path(), "o.json", &["--gamma", "0.5"]);
    let outputs = jsonl(dir.path(), "o.jsonl", "text", &[plain_text(30, 1)]);
    let out = closed(&[&key, &other], &outputs, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("make different tokens green"), "{err}");
    let out = closed(&[&key], &outputs, &["--field", "body"]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no field \"body\""), "{err}");
    let out = closed(&[&key], &outputs, &["--max-tuples", "0"]);
    assert_eq!(out.status.code(), Some(2));
    std::fs::write(dir.path().join("e.jsonl"), "not json\n").unwrap();
    let out = closed(&[&key], &dir.path().join("e.jsonl"), &[]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("line 1: not valid JSON"), "{err}");
}

/// Open mode from predictions, for vLLM's Gumbel watermark: a suspect whose top-1 is the
/// Gumbel-max token of every context under key 42 is radioactive for key 42 and not for 43.
#[test]
fn open_mode_tests_the_gumbel_watermark_from_a_vllm_config() {
    use greenmark::gumbel::{GumbelConfig, GumbelKey, GumbelWatermarker, KeyChoice};
    let dir = tempfile::tempdir().unwrap();
    let mut config = GumbelConfig::default();
    config.context_width = 2;
    let wm = GumbelWatermarker::new(GumbelKey::vllm(42), config).unwrap();
    let flat = vec![0.0f32; 1000];
    let mut lines = String::new();
    for t in 0..20u32 {
        let ids: Vec<u32> = (0..50u32).map(|i| (i * 37 + t * 101) % 1000).collect();
        let preds: Vec<u32> = (0..ids.len())
            .map(|j| match j {
                0 => 0,
                _ => wm.sample(&flat, &ids[j - 1..=j], KeyChoice::A).unwrap(),
            })
            .collect();
        lines.push_str(&serde_json::json!({"ids": ids, "predictions": preds}).to_string());
        lines.push('\n');
    }
    let preds = dir.path().join("preds.jsonl");
    std::fs::write(&preds, lines).unwrap();
    let run = |key: u64, extra: &[&str]| {
        let cfg = dir.path().join(format!("vllm-{key}.json"));
        std::fs::write(&cfg, format!(r#"{{"key": {key}, "context_width": 2}}"#)).unwrap();
        greenmark()
            .args(["radioactivity", "open", "--vllm-config"])
            .arg(&cfg)
            .arg("--predictions")
            .arg(&preds)
            .args(extra)
            .output()
            .unwrap()
    };
    let hot = json(&run(
        42,
        &["--json", "--vocab-size", "1000", "--max-tuples", "500"],
    ));
    assert_eq!(hot["scheme"], "greenmark/gumbel-vllm/v1");
    assert_eq!(hot["keys"][0]["n_scored"], 500);
    assert!(hot["log10_p_value"].as_f64().unwrap() < -100.0, "{hot}");
    let cold = json(&run(
        43,
        &["--json", "--vocab-size", "1000", "--max-tuples", "500"],
    ));
    assert!(cold["log10_p_value"].as_f64().unwrap() > -3.0, "{cold}");
    let text = String::from_utf8(run(42, &["--vocab-size", "1000"]).stdout).unwrap();
    assert!(
        text.contains("score ") && text.contains("RADIOACTIVE"),
        "{text}"
    );
    // Without a vocabulary size there is nothing to check the ids against.
    let out = run(42, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--vocab-size"), "{err}");
}

/// Gzip JSON Lines (`.jsonl.gz`) give exactly the result of the plain file.
#[test]
fn gzip_outputs_give_the_plain_files_result() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let texts: Vec<String> = (0..3).map(|s| watermarked_text(&key, 40, s)).collect();
    let plain = jsonl(dir.path(), "suspect.jsonl", "text", &texts);
    let gz = dir.path().join("suspect.jsonl.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    encoder.write_all(&std::fs::read(&plain).unwrap()).unwrap();
    encoder.finish().unwrap();
    let a = json(&closed(&[&key], &plain, &["--json"]));
    let b = json(&closed(&[&key], &gz, &["--json"]));
    assert_eq!(a["keys"], b["keys"]);
    assert!(a["log10_p_value"].as_f64().unwrap() < -6.0, "{a}");
}
