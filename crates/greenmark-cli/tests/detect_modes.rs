//! `greenmark detect` reaches every detection the core has, with the core's own numbers: token
//! ids with a key file, prompt context, span search, several keys, gzip JSON Lines; and a flag
//! that does not apply to the chosen mode is a usage error (exit 2), never silently ignored.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::{greenmark, keygen, plain_text, tokenizer_path, watermarked_text};
use greenmark::{Detector, KeyFile, Keyring, Scheme, SpanOptions};
use serde_json::Value;
use tokenizers::Tokenizer;

fn tokenizer() -> Tokenizer {
    Tokenizer::from_file(tokenizer_path()).unwrap()
}

fn ids(text: &str) -> Vec<u32> {
    tokenizer().encode(text, false).unwrap().get_ids().to_vec()
}

fn detector(key: &Path) -> Detector {
    let file = KeyFile::load(key).unwrap();
    Detector::new(&file.key, file.config.unwrap())
}

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn jsonl(values: &[Value]) -> String {
    values.iter().map(|v| format!("{v}\n")).collect()
}

/// Runs `greenmark detect ARGS --json` and returns its JSON records.
fn detect_json(args: &[&str]) -> (Vec<Value>, std::process::Output) {
    let out = greenmark()
        .arg("detect")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let records = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (records, out)
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn close(a: &Value, b: f64) -> bool {
    (a.as_f64().unwrap() - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn every_scheme_name_gives_the_cores_scheme() {
    let dir = tempfile::tempdir().unwrap();
    for name in Scheme::NAMES {
        let key = keygen(dir.path(), &format!("{name}.json"), &["--scheme", name]);
        let config = KeyFile::load(&key).unwrap().config.unwrap();
        assert_eq!(
            config.scheme(),
            Scheme::from_name(name, None, None).unwrap(),
            "{name}"
        );
    }
    // The same rule refuses the same mistakes.
    let out = greenmark()
        .args(["keygen", "--scheme", "minhash", "--top-k", "8", "--out"])
        .arg(dir.path().join("bad.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("top_k applies to selfhash only"), "{err}");
}

#[test]
fn ids_field_scores_token_ids_with_a_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let marked = ids(&watermarked_text(&key, 120, 1));
    let plain = ids(&plain_text(120, 2));
    let input = write(
        dir.path(),
        "ids.jsonl",
        jsonl(&[
            serde_json::json!({ "token_ids": marked }),
            Value::from(plain.clone()),
        ]),
    );
    // --ids-field implies JSON Lines; no tokenizer is loaded (the key file has the config).
    let (records, out) =
        detect_json(&["--key-file", s(&key), "--ids-field", "token_ids", s(&input)]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(records.len(), 2);
    let d = detector(&key);
    for (record, ids) in records.iter().zip([&marked, &plain]) {
        let expected = d.detect(ids, &[]).unwrap();
        assert_eq!(record["n_scored"], expected.n_scored);
        assert!(close(&record["log10_p_value"], expected.log10_p_value));
        assert_eq!(record["watermarked"], expected.is_significant(1e-6));
        assert!(record.get("normalizations").is_none(), "ids are not text");
    }
    assert_eq!(records[0]["watermarked"], true);
    assert_eq!(records[1]["watermarked"], false);
}

#[test]
fn flags_that_do_not_apply_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let vllm = write(
        dir.path(),
        "w.json",
        r#"{"key": 42, "algorithm": "gumbel"}"#,
    );
    let input = write(dir.path(), "in.jsonl", "{\"text\": \"hello\"}\n");
    let (k, v, i) = (s(&key), s(&vllm), s(&input));
    let cases: &[(&[&str], &str)] = &[
        (
            &["--key-file", k, "--ids-field", "ids", "--field", "text", i],
            "--field",
        ),
        (
            &[
                "--key-file",
                k,
                "--ids-field",
                "ids",
                "--prompt-field",
                "p",
                i,
            ],
            "--prompt-ids-field",
        ),
        (&["--key-file", k, "--field", "text", i], "add --jsonl"),
        (
            &["--key-file", k, "--prompt-ids-field", "p", i],
            "add --jsonl",
        ),
        (&["--vllm-config", v, "--span", i], "--span does not apply"),
        (
            &["--vllm-config", v, "--prompt-field", "p", i],
            "does not apply",
        ),
        (&["--vllm-config", v, "--field", "text", i], "--field"),
        (&["--key-file", k, "--min-span-tokens", "10", i], "--span"),
        (
            &["--key-file", k, "--span", "--min-span-tokens", "1", i],
            "1",
        ),
        (&["--key-file", k, "--vllm-config", v, i], "cannot be used"),
    ];
    for (args, needle) in cases {
        let out = greenmark().arg("detect").args(*args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(
            out.stdout.is_empty(),
            "{args:?}: a usage error prints no result"
        );
    }
}

#[test]
fn prompt_context_gives_the_first_windows_and_is_not_scored() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(
        dir.path(),
        "k.json",
        &["--scheme", "lefthash", "--window", "2"],
    );
    let text = watermarked_text(&key, 30, 5);
    let prompt = "Tell me a story about the river.";
    let (text_ids, prompt_ids) = (ids(&text), ids(prompt));
    let input = write(
        dir.path(),
        "p.jsonl",
        jsonl(&[serde_json::json!({
            "text": text, "prompt": prompt, "ids": text_ids, "prompt_ids": prompt_ids
        })]),
    );
    let d = detector(&key);
    let with = d.detect(&text_ids, &prompt_ids).unwrap();
    let without = d.detect(&text_ids, &[]).unwrap();
    assert!(
        with.n_scored > without.n_scored,
        "window 2: the first positions are scored"
    );
    let tok = tokenizer_path();
    let runs: [&[&str]; 3] = [
        &[
            "--jsonl",
            "--prompt-field",
            "prompt",
            "--tokenizer",
            s(&tok),
        ],
        &[
            "--jsonl",
            "--prompt-ids-field",
            "prompt_ids",
            "--tokenizer",
            s(&tok),
        ],
        &["--ids-field", "ids", "--prompt-ids-field", "prompt_ids"],
    ];
    for extra in runs {
        let mut args = vec!["--key-file", s(&key)];
        args.extend_from_slice(extra);
        args.push(s(&input));
        let (records, out) = detect_json(&args);
        assert!(out.status.success(), "{extra:?}: {out:?}");
        assert_eq!(records[0]["n_scored"], with.n_scored, "{extra:?}");
        assert_eq!(records[0]["n_tokens"], text_ids.len(), "{extra:?}");
        assert!(
            close(&records[0]["log10_p_value"], with.log10_p_value),
            "{extra:?}"
        );
    }
}

#[test]
fn span_search_finds_a_paste_and_reports_only_the_corrected_p() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let paste = watermarked_text(&key, 60, 9);
    let text = format!("{}{paste}{}", plain_text(300, 3), plain_text(300, 4));
    let file = write(dir.path(), "t.txt", &text);
    let tok = tokenizer_path();
    let (records, out) = detect_json(&[
        "--key-file",
        s(&key),
        "--tokenizer",
        s(&tok),
        "--span",
        "--min-span-tokens",
        "40",
        s(&file),
    ]);
    assert!(out.status.success(), "{out:?}");
    let r = &records[0];
    let expected = detector(&key)
        .find_span(&ids(&text), &[], SpanOptions::with_min_tokens(40))
        .unwrap();
    assert_eq!(
        (r["start"].as_u64(), r["end"].as_u64()),
        (Some(expected.start as u64), Some(expected.end as u64))
    );
    assert_eq!(r["windows_tried"], expected.windows_tried);
    assert!(close(&r["log10_p_value"], expected.log10_p_value));
    assert_eq!(r["watermarked"], true);
    // The span's own p-value is not a p-value of this test: it is labelled uncorrected.
    let span = r["span"].as_object().unwrap();
    assert!(span.contains_key("uncorrected_log10_p_value"), "{r}");
    assert!(
        !span.contains_key("p_value") && !span.contains_key("log10_p_value"),
        "{r}"
    );
    // The whole-text test misses what the span search finds.
    let (whole, _) = detect_json(&["--key-file", s(&key), "--tokenizer", s(&tok), s(&file)]);
    assert!(whole[0]["log10_p_value"].as_f64().unwrap() > r["log10_p_value"].as_f64().unwrap());
    // The table names the span and the correction.
    let out = greenmark()
        .args([
            "detect",
            "--span",
            "--key-file",
            s(&key),
            "--tokenizer",
            s(&tok),
            s(&file),
        ])
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("windows tried") && table.contains("corrected for"),
        "{table}"
    );
}

#[test]
fn several_keys_give_a_corrected_p_and_name_the_key_that_fired() {
    let dir = tempfile::tempdir().unwrap();
    let a = keygen(dir.path(), "a.json", &[]);
    let b = keygen(dir.path(), "b.json", &[]);
    // The same secret as `b` with another delta: the same detector, counted once.
    let b_file = KeyFile::load(&b).unwrap();
    let b_delta = dir.path().join("b-delta.json");
    let config = b_file
        .config
        .clone()
        .unwrap()
        .to_builder()
        .delta(3.5)
        .build()
        .unwrap();
    KeyFile::new(b_file.key.clone(), Some(config))
        .save(&b_delta)
        .unwrap();
    let text = watermarked_text(&b, 100, 11);
    let file = write(dir.path(), "t.txt", &text);
    let tok = tokenizer_path();
    let (records, out) = detect_json(&[
        "--key-file",
        s(&a),
        "--key-file",
        s(&b),
        "--key-file",
        s(&b_delta),
        "--tokenizer",
        s(&tok),
        s(&file),
    ]);
    assert!(out.status.success(), "{out:?}");
    let r = &records[0];
    let ring = Keyring::new(vec![detector(&a), detector(&b)]).unwrap();
    let expected = ring.detect(&ids(&text), &[]).unwrap();
    assert_eq!(r["keys"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["strongest_key"], 1);
    assert_eq!(r["key_id"], b_file.key.id().to_string());
    assert_eq!(r["correction"], "bonferroni");
    assert!(close(&r["log10_p_value"], expected.log10_p_value));
    let own = r["keys"][1]["uncorrected_log10_p_value"].as_f64().unwrap();
    assert!((r["log10_p_value"].as_f64().unwrap() - (own + 2f64.log10())).abs() < 1e-9);
    assert!(
        r["keys"][1].get("log10_p_value").is_none(),
        "per-key values are labelled uncorrected"
    );
    assert_eq!(r["watermarked"], true);
    // With span search too, and in the table: the key that fired is named.
    let out = greenmark()
        .args([
            "detect",
            "--key-file",
            s(&a),
            "--key-file",
            s(&b),
            "--tokenizer",
            s(&tok),
            s(&file),
        ])
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains(&format!("the strongest is {}", b_file.key.id())),
        "{table}"
    );
    assert!(table.contains("(this key alone)"), "{table}");
}

#[test]
fn gzip_json_lines_read_like_plain_ones_in_order_across_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    // More lines than one parallel chunk (256): the records come back in input order.
    let lines: Vec<Value> = (0..600u64)
        .map(|i| serde_json::json!({ "ids": (0..40).map(|j| (i * 7919 + j * 104729) % 49152).collect::<Vec<_>>() }))
        .collect();
    let text = jsonl(&lines);
    let plain = write(dir.path(), "ids.jsonl", &text);
    let gz = dir.path().join("ids.jsonl.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap();
    let (a, out_a) = detect_json(&["--key-file", s(&key), "--ids-field", "ids", s(&plain)]);
    let (b, out_b) = detect_json(&["--key-file", s(&key), "--ids-field", "ids", s(&gz)]);
    assert!(
        out_a.status.success() && out_b.status.success(),
        "{out_b:?}"
    );
    assert_eq!(a, b);
    let numbers: Vec<u64> = a.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(numbers, (1..=600).collect::<Vec<_>>());
    // A truncated gzip stream is an error, not a short answer.
    let bytes = std::fs::read(&gz).unwrap();
    let cut = write(dir.path(), "cut.jsonl.gz", &bytes[..bytes.len() / 2]);
    let out = greenmark()
        .args([
            "detect",
            "--key-file",
            s(&key),
            "--ids-field",
            "ids",
            s(&cut),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}
