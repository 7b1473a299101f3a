//! The real service on a loopback port, driven over HTTP/1.1: each endpoint, bad input, access
//! by role, and a secret that never leaves the process.

mod common;

use std::path::Path;

use common::{body_json, hex, request, start_with, tokenizer, Server, PUBLIC, TRUSTED};
use greenmark::{Detector, Key, Keyring, WatermarkConfig, Watermarker};
use greenmark_serve::auth::digest;
use greenmark_serve::{ServeConfig, Service};
use serde_json::{json, Value};

fn start(extra: &str) -> Server {
    start_with(WatermarkConfig::new(49152).unwrap(), extra)
}

fn post(server: &Server, token: Option<&str>, body: &Value) -> (u16, Value, String) {
    let (status, raw) = request(
        server,
        "POST",
        "/v1/detect",
        token,
        body.to_string().as_bytes(),
    );
    (status, body_json(&raw), raw)
}

/// Ids sampled greedily from random logits biased by `key`'s watermark.
fn watermarked(key: &Key, config: &WatermarkConfig, n: usize) -> Vec<u32> {
    let w = Watermarker::new(key, config.clone());
    let mut ids = vec![7u32];
    let mut state = 12345u64;
    for _ in 0..n {
        let mut logits: Vec<f32> = (0..config.vocab_size())
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 40) as f32 / (1u64 << 24) as f32 * 4.0
            })
            .collect();
        w.bias(&mut logits, &ids).unwrap();
        let next = (0..logits.len())
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap();
        ids.push(next as u32);
    }
    ids.split_off(1)
}

/// Equal JSON, numbers to 1e-12 relative (serde_json's default parser can land one ulp off
/// the value it printed).
fn same_json(a: &Value, b: &Value) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= 1e-12 * x.abs().max(1.0), "{x} vs {y}");
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).for_each(|(x, y)| same_json(x, y));
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys = |o: &serde_json::Map<String, Value>| o.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(x), keys(y));
            x.iter().for_each(|(k, v)| same_json(v, &y[k]));
        }
        _ => assert_eq!(a, b),
    }
}

#[test]
fn detect_answers_with_the_cores_record_by_role() {
    let server = start("");
    let (status, raw) = request(&server, "GET", "/healthz", None, b"");
    assert_eq!(status, 200, "{raw}");
    assert_eq!(body_json(&raw)["status"], "ok");

    let ids = watermarked(&server.keys[1], &server.config, 80);
    let ring = Keyring::new(
        server
            .keys
            .iter()
            .map(|k| Detector::new(k, server.config.clone()))
            .collect(),
    )
    .unwrap();
    let expected = ring
        .score(&ids, &[3], None)
        .unwrap()
        .to_json(ids.len(), 1e-6);
    let (status, record, _) = post(
        &server,
        Some(TRUSTED),
        &json!({"ids": ids, "prompt_ids": [3]}),
    );
    assert_eq!(status, 200, "{record}");
    same_json(&record, &expected);
    assert_eq!(record["watermarked"], true);
    assert_eq!(record["key_id"], server.keys[1].id().to_string());

    // A public token sees the verdict and the p-value, nothing per key or per count.
    let (status, record, _) = post(
        &server,
        Some(PUBLIC),
        &json!({"ids": ids, "prompt_ids": [3]}),
    );
    assert_eq!(status, 200);
    let fields: Vec<&str> = record
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(
        fields.iter().all(|f| [
            "watermarked",
            "p_value",
            "ln_p_value",
            "log10_p_value",
            "threshold",
            "key_id"
        ]
        .contains(f)),
        "{record}"
    );
    assert_eq!(record["log10_p_value"], expected["log10_p_value"]);

    // Text, span search, and a batch with one bad input among good ones.
    let (status, record, _) = post(
        &server,
        Some(TRUSTED),
        &json!({"text": "A plain sentence written by hand, about the sea.", "span": true, "min_span_tokens": 4}),
    );
    assert_eq!(status, 200, "{record}");
    assert!(
        record["keys"][0]["windows_tried"].as_u64().unwrap() >= 1 && record["watermarked"] == false,
        "{record}"
    );
    let (status, batch, _) = post(
        &server,
        Some(TRUSTED),
        &json!({"inputs": [{"ids": ids}, {"ids": [1, 2, 999999]}, {"text": "   "}]}),
    );
    assert_eq!(status, 200, "{batch}");
    let results = batch["results"].as_array().unwrap();
    assert_eq!(results[0]["watermarked"], true);
    assert!(
        results[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("out of range"),
        "{batch}"
    );
    assert!(
        results[2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("empty"),
        "{batch}"
    );
}

#[test]
fn bad_requests_get_json_4xx_and_no_secret_ever_leaves() {
    let server = start("[limits]\nmax_body_bytes = 2048\nmax_batch = 2\n");
    let mut seen = String::new();
    let cases: Vec<(Option<&str>, Vec<u8>, u16, &str)> = vec![
        (None, br#"{"ids": [1, 2]}"#.to_vec(), 401, "unauthorized"),
        (
            Some("wrong"),
            br#"{"ids": [1, 2]}"#.to_vec(),
            401,
            "unauthorized",
        ),
        (Some(TRUSTED), b"{not json".to_vec(), 400, "bad_json"),
        (
            Some(TRUSTED),
            br#"{"ids": "abc"}"#.to_vec(),
            400,
            "bad_request",
        ),
        (
            Some(TRUSTED),
            br#"{"idz": [1]}"#.to_vec(),
            400,
            "bad_request",
        ),
        (
            Some(TRUSTED),
            br#"{"ids": [1], "text": "x"}"#.to_vec(),
            422,
            "bad_input",
        ),
        (
            Some(TRUSTED),
            br#"{"ids": [1], "min_span_tokens": 5}"#.to_vec(),
            422,
            "bad_input",
        ),
        (
            Some(TRUSTED),
            br#"{"ids": [1], "span": true, "min_span_tokens": 1}"#.to_vec(),
            422,
            "bad_input",
        ),
        (
            Some(TRUSTED),
            format!("{{\"text\": \"{}\"}}", "a".repeat(4096)).into_bytes(),
            413,
            "body_too_large",
        ),
        (
            Some(TRUSTED),
            br#"{"inputs": [{"ids": [1]}, {"ids": [2]}, {"ids": [3]}]}"#.to_vec(),
            413,
            "batch_too_large",
        ),
        (Some(TRUSTED), b"\xff\xfe{}".to_vec(), 400, "bad_json"),
    ];
    for (token, body, status, code) in cases {
        let (got, raw) = request(&server, "POST", "/v1/detect", token, &body);
        assert_eq!(got, status, "{raw}");
        assert_eq!(body_json(&raw)["error"]["code"], code, "{raw}");
        seen.push_str(&raw);
    }
    let (status, raw) = request(
        &server,
        "POST",
        "/v1/detect",
        Some(TRUSTED),
        br#"{"ids": [5, 6, 7]}"#,
    );
    assert_eq!(status, 200);
    seen.push_str(&raw);
    for key in &server.keys {
        assert!(!seen.contains(&key.to_hex()), "a response holds a secret");
    }
    // The server kept serving through all of it.
    assert_eq!(request(&server, "GET", "/healthz", None, b"").0, 200);
}

#[test]
fn configs_are_checked_before_serving() {
    let dir = tempfile::tempdir().unwrap();
    let tok = tokenizer();
    let base = format!("tokenizer = {:?}\n", tok.to_str().unwrap());
    for (toml, needle) in [
        (format!("{base}keys = []\n"), "keys is empty"),
        (
            format!("{base}keys = [\"k.json\"]\nthreshold = 2.0\n"),
            "threshold",
        ),
        (
            format!("{base}keys = [\"k.json\"]\nlisten = \"nowhere\"\n"),
            "socket address",
        ),
        (format!("{base}keys = [\"k.json\"]\nbogus = 1\n"), "bogus"),
    ] {
        let err = ServeConfig::parse(&toml, dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{needle}: {err}");
    }
    // A key file without a config, and a missing key file, are refused at start-up.
    Key::from_bytes([9; 32])
        .save(dir.path().join("bare.key"))
        .unwrap();
    let serve = ServeConfig::parse(&format!("{base}keys = [\"bare.key\"]\n"), dir.path()).unwrap();
    let err = Service::new(&serve).unwrap_err().to_string();
    assert!(err.contains("carries no watermark config"), "{err}");
    let serve =
        ServeConfig::parse(&format!("{base}keys = [\"missing.json\"]\n"), dir.path()).unwrap();
    let err = Service::new(&serve).unwrap_err().to_string();
    assert!(
        err.contains("missing.json") && !err.contains(&Key::from_bytes([9; 32]).to_hex()),
        "{err}"
    );
}

/// The example config in the repository parses, and its token digest is the SHA-256 of the
/// token its comment names.
#[test]
fn the_example_config_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/serve.toml");
    let config = ServeConfig::load(&path).unwrap();
    assert_eq!(config.keys.len(), 1);
    assert_eq!(config.tokens[0].sha256, hex(&digest("change-me-trusted")));
    assert!(config.tokenizer.exists(), "{}", config.tokenizer.display());
}
