//! The real service on a loopback port, driven over HTTP/1.1: each endpoint, bad input, access
//! by role, and a secret that never leaves the process.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use common::{body_json, hex, request, start_with, tokenizer, Server, PUBLIC, TRUSTED};
use greenmark::{Detector, Key, KeyFile, Keyring, WatermarkConfig, Watermarker};
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

/// A row of `n` logits uniform in [0, 4), from a linear congruential stream.
fn random_logits(state: &mut u64, n: u32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (*state >> 40) as f32 / (1u64 << 24) as f32 * 4.0
        })
        .collect()
}

/// Ids sampled greedily from random logits biased by `key`'s watermark.
fn watermarked(key: &Key, config: &WatermarkConfig, n: usize) -> Vec<u32> {
    let w = Watermarker::new(key, config.clone());
    let mut ids = vec![7u32];
    let mut state = 12345u64;
    for _ in 0..n {
        let mut logits = random_logits(&mut state, config.vocab_size());
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
    // A vLLM config that is missing, or a label twice.
    KeyFile::new(
        Key::from_bytes([8; 32]),
        Some(WatermarkConfig::new(49152).unwrap()),
    )
    .save(dir.path().join("good.json"))
    .unwrap();
    std::fs::write(
        dir.path().join("v.json"),
        r#"{"key": 5, "algorithm": "gumbel"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("s.json"),
        r#"{"ngram_len": 3, "keys": [7, 8]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.json"),
        r#"{"ngram_len": 0, "keys": []}"#,
    )
    .unwrap();
    for (tables, needle) in [
        ("[[vllm]]\nconfig = \"nope.json\"\nname = \"a\"\n", "nope.json (a)"),
        (
            "[[vllm]]\nconfig = \"v.json\"\nname = \"a\"\n[[vllm]]\nconfig = \"v.json\"\nname = \"a\"\n",
            "labelled \"a\"",
        ),
        ("[[synthid]]\nconfig = \"nope.json\"\nname = \"s\"\n", "nope.json (s)"),
        (
            "[[vllm]]\nconfig = \"v.json\"\nname = \"a\"\n[[synthid]]\nconfig = \"s.json\"\nname = \"a\"\n",
            "labelled \"a\"",
        ),
        ("[[synthid]]\nconfig = \"bad.json\"\nname = \"s\"\n", "bad.json (s)"),
    ] {
        let toml = format!("{base}keys = [\"good.json\"]\n{tables}");
        let err = Service::new(&ServeConfig::parse(&toml, dir.path()).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{needle}: {err}");
    }
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

/// A key's colours, token by token, agree with its own counts; a public token cannot ask.
#[test]
fn trusted_callers_see_each_tokens_colour() {
    let server = start("");
    let ids = watermarked(&server.keys[0], &server.config, 60);
    let (status, record, _) = post(&server, Some(TRUSTED), &json!({"ids": ids, "tokens": true}));
    assert_eq!(status, 200, "{record}");
    let strongest = record["strongest_key"].as_u64().unwrap() as usize;
    assert_eq!(strongest, 0);
    let tokens = record["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), ids.len());
    let count = |c: &str| tokens.iter().filter(|t| t["colour"] == c).count() as u64;
    let own = &record["keys"][strongest];
    assert_eq!(count("green"), own["n_green"].as_u64().unwrap(), "{record}");
    assert_eq!(
        count("green") + count("red"),
        own["n_scored"].as_u64().unwrap()
    );
    assert_eq!(tokens[0]["unscored"], "no_window");
    assert!(tokens.iter().zip(&ids).all(|(t, &id)| t["id"] == id));

    // Text: each token's text is a piece of the (normalized) text, in order.
    let text = "The sea was calm that morning, and the boats went out early to fish.";
    let (status, record, _) = post(
        &server,
        Some(TRUSTED),
        &json!({"text": text, "tokens": true}),
    );
    assert_eq!(status, 200, "{record}");
    let pieces: String = record["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(pieces, text);

    let (status, refusal, _) = post(&server, Some(PUBLIC), &json!({"ids": ids, "tokens": true}));
    assert_eq!(status, 403, "{refusal}");
    assert_eq!(refusal["error"]["code"], "forbidden");
}

fn metric(text: &str, line_start: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Requests are counted by route and status, refusals by code; only trusted tokens scrape.
#[test]
fn metrics_count_requests_and_refusals() {
    let server = start("");
    let ids = watermarked(&server.keys[0], &server.config, 30);
    for _ in 0..3 {
        assert_eq!(post(&server, Some(TRUSTED), &json!({ "ids": ids })).0, 200);
    }
    assert_eq!(post(&server, Some("nope"), &json!({ "ids": ids })).0, 401);
    assert_eq!(request(&server, "GET", "/no/such/path", None, b"").0, 404);
    assert_eq!(
        request(&server, "GET", "/metrics", Some(PUBLIC), b"").0,
        403
    );
    let (status, raw) = request(&server, "GET", "/metrics", Some(TRUSTED), b"");
    assert_eq!(status, 200, "{raw}");
    assert!(raw.contains("text/plain; version=0.0.4"), "{raw}");
    let text = raw.split("\r\n\r\n").nth(1).unwrap();
    let requests = "greenmark_requests_total{route=\"/v1/detect\"";
    assert_eq!(
        metric(text, &format!("{requests},status=\"200\"}}")),
        3,
        "{text}"
    );
    assert_eq!(metric(text, &format!("{requests},status=\"401\"}}")), 1);
    assert_eq!(
        metric(
            text,
            "greenmark_requests_total{route=\"other\",status=\"404\"}"
        ),
        1
    );
    assert_eq!(
        metric(text, "greenmark_rejections_total{reason=\"unauthorized\"}"),
        1
    );
    assert_eq!(
        metric(text, "greenmark_rejections_total{reason=\"forbidden\"}"),
        1
    );
    assert_eq!(metric(text, "greenmark_texts_scored_total"), 3);
    assert_eq!(metric(text, "greenmark_tokens_scored_total"), 90);
    assert_eq!(
        metric(
            text,
            "greenmark_request_duration_seconds_count{route=\"/v1/detect\"}"
        ),
        4
    );
    assert!(
        !text.contains("/no/such/path"),
        "a caller's path became a label"
    );
    for key in &server.keys {
        assert!(!text.contains(&key.to_hex()));
    }
}

/// Each token holder has its own rate: over it, 429 with Retry-After; others are not slowed.
#[test]
fn rate_limits_are_per_token_holder() {
    let dir_token = "limited-token";
    let server = start(&format!(
        "[[tokens]]\nsha256 = \"{}\"\nrole = \"public\"\nrequests_per_second = 0.2\nburst = 2\n",
        hex(&digest(dir_token))
    ));
    let body = json!({"ids": [5, 6, 7, 8]});
    assert_eq!(post(&server, Some(dir_token), &body).0, 200);
    assert_eq!(post(&server, Some(dir_token), &body).0, 200);
    let (status, refusal, raw) = post(&server, Some(dir_token), &body);
    assert_eq!(status, 429, "{raw}");
    assert_eq!(refusal["error"]["code"], "rate_limited");
    let retry: u64 = raw
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .expect("a Retry-After header")
        .trim()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry), "{raw}");
    for _ in 0..20 {
        assert_eq!(post(&server, Some(PUBLIC), &body).0, 200);
    }
}

/// A slow sender gets 408 at the timeout, a client that leaves mid-body or sends 100 MB
/// is cut off, malformed UTF-8 is a 400: and all the while the others are served.
#[test]
fn faulty_clients_do_not_stop_the_others() {
    let server = start("[limits]\nrequest_timeout_secs = 1.5\n");
    let ok = |server: &Server| {
        let (status, record, _) = post(server, Some(PUBLIC), &json!({"ids": [5, 6, 7, 8]}));
        assert_eq!(status, 200, "{record}");
    };
    let head = |length: usize| {
        format!(
            "POST /v1/detect HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TRUSTED}\r\n\
             Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        )
    };

    // A client that sends one byte every 200 ms.
    let slow = {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        let addr = server.addr;
        let head = head(100);
        std::thread::spawn(move || {
            let _ = addr;
            stream.write_all(head.as_bytes()).unwrap();
            let start = std::time::Instant::now();
            for _ in 0..30 {
                if stream.write_all(b" ").is_err() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            let mut response = Vec::new();
            let _ = stream.read_to_end(&mut response);
            (
                String::from_utf8_lossy(&response).into_owned(),
                start.elapsed(),
            )
        })
    };
    // Others are served while it trickles.
    for _ in 0..5 {
        ok(&server);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (response, elapsed) = slow.join().unwrap();
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(body_json(&response)["error"]["code"] == "timeout");
    assert!(elapsed.as_secs_f64() < 5.0, "{elapsed:?}");

    // A client that leaves mid-body.
    {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream.write_all(head(5000).as_bytes()).unwrap();
        stream.write_all(b"{\"ids\": [1, 2").unwrap();
    }
    ok(&server);

    // 100 MB announced and sent until the server stops reading: 413 long before the end.
    {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream.write_all(head(100 << 20).as_bytes()).unwrap();
        let chunk = vec![b' '; 1 << 16];
        let mut sent = 0usize;
        while sent < 100 << 20 {
            match stream.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
            if sent > 8 << 20 {
                break;
            }
        }
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let response = String::from_utf8_lossy(&response);
        assert!(response.starts_with("HTTP/1.1 413"), "{response}");
        assert!(sent < 100 << 20);
    }
    ok(&server);

    // Malformed UTF-8 inside a JSON string.
    let (status, raw) = request(
        &server,
        "POST",
        "/v1/detect",
        Some(TRUSTED),
        b"{\"text\": \"ab\xff\xfecd\"}",
    );
    assert_eq!(status, 400, "{raw}");
    assert_eq!(body_json(&raw)["error"]["code"], "bad_json");
    ok(&server);
}

/// Watermarked outputs pooled over a corpus are radioactive for the key that made them;
/// plain text is not; only trusted tokens may ask.
#[test]
fn radioactivity_pools_posted_outputs() {
    let server = start("");
    let tokenizer = greenmark::text::load_tokenizer_json(&tokenizer()).unwrap();
    let outputs: Vec<String> = (0..4)
        .map(|i| {
            let mut ids = watermarked(&server.keys[1], &server.config, 120 + i);
            ids.retain(|&t| t > 16);
            tokenizer.decode(&ids, true).unwrap()
        })
        .collect();
    let call = |token, body: &Value| {
        let (status, raw) = request(
            &server,
            "POST",
            "/v1/radioactivity",
            token,
            body.to_string().as_bytes(),
        );
        (status, body_json(&raw))
    };
    let (status, result) = call(
        Some(TRUSTED),
        &json!({"outputs": outputs, "max_tuples": 100}),
    );
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["radioactive"], true, "{result}");
    assert_eq!(result["strongest_key"], 1);
    assert_eq!(result["exploratory"], false);
    assert_eq!(result["keys"][1]["n_scored"], 100);
    assert_eq!(result["budget_reached"], true);
    assert_eq!(result["keys"][1]["key_id"], server.keys[1].id().to_string());

    let plain = [
        "It was a bright cold day in April, and the clocks were striking thirteen.",
        "Call me Ishmael. Some years ago, never mind how long precisely, having little money.",
        "The quick brown fox jumps over the lazy dog near the river bank at dawn.",
    ];
    let (status, result) = call(
        Some(TRUSTED),
        &json!({"outputs": plain, "prompts": ["Write."]}),
    );
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["radioactive"], false, "{result}");
    assert_eq!(result["exploratory"], true);

    for (token, body, status, code) in [
        (Some(PUBLIC), json!({"outputs": plain}), 403, "forbidden"),
        (None, json!({"outputs": plain}), 401, "unauthorized"),
        (Some(TRUSTED), json!({"outputs": []}), 422, "bad_input"),
        (
            Some(TRUSTED),
            json!({"outputs": plain, "max_tuples": 0}),
            422,
            "bad_input",
        ),
        (
            Some(TRUSTED),
            json!({"outputs": [1, 2]}),
            400,
            "bad_request",
        ),
        (Some(TRUSTED), json!({"texts": plain}), 400, "bad_request"),
    ] {
        let (got, answer) = call(token, &body);
        assert_eq!(got, status, "{answer}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
    }
}

/// The page, its files and the OpenAPI document are served, with a strict content policy;
/// every route is in the document; unknown paths and methods get JSON errors.
#[test]
fn page_and_openapi_are_served() {
    let server = start("");
    let (status, raw) = request(&server, "GET", "/", None, b"");
    assert_eq!(status, 200);
    assert!(
        raw.contains("content-security-policy: default-src 'none'"),
        "{raw}"
    );
    assert!(raw.contains("<script src=\"/page.js\">"));
    for path in ["/page.js", "/page.css"] {
        assert_eq!(request(&server, "GET", path, None, b"").0, 200, "{path}");
    }
    let (status, raw) = request(&server, "GET", "/openapi.json", None, b"");
    assert_eq!(status, 200);
    let doc = body_json(&raw);
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/",
        "/healthz",
        "/metrics",
        "/v1/detect",
        "/v1/radioactivity",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
    let (status, raw) = request(&server, "DELETE", "/v1/detect", Some(TRUSTED), b"");
    assert_eq!(status, 405, "{raw}");
    assert_eq!(body_json(&raw)["error"]["code"], "method_not_allowed");
}

/// A restarted service answers exactly as before: nothing that matters lives in memory.
#[test]
fn a_restart_answers_the_same() {
    let body =
        json!({"text": "Rain fell on the roofs of the old town all night long.", "span": true});
    let first = {
        let server = start("");
        post(&server, Some(TRUSTED), &body).1
    };
    let server = start("");
    let again = post(&server, Some(TRUSTED), &body).1;
    assert_eq!(first, again);
}

/// A vLLM Gumbel config beside the keys: its text fires it under one correction over all
/// three, named by its label; per-token detail gives its scores; the vLLM key (a number
/// someone chose) appears in no answer, and a span search says it covers keys only.
#[test]
fn vllm_gumbel_configs_are_detected_beside_the_keys() {
    use greenmark::gumbel::{argmax, GumbelConfig, GumbelKey, GumbelWatermarker};
    let secret = 987_654_321u64;
    let vllm_dir = tempfile::tempdir().unwrap();
    let path = vllm_dir.path().join("vllm.json");
    std::fs::write(
        &path,
        format!("{{\"key\": {secret}, \"algorithm\": \"gumbel\"}}"),
    )
    .unwrap();
    let server = start(&format!(
        "[[vllm]]\nconfig = {:?}\nname = \"vllm-prod\"\n",
        path.to_str().unwrap()
    ));
    let wm = GumbelWatermarker::new(GumbelKey::vllm(secret), GumbelConfig::default()).unwrap();
    let mut request = wm.request(&[]);
    let mut state = 99u64;
    for _ in 0..60 {
        let logits = random_logits(&mut state, 49_152);
        request.next(&logits, 0.5, argmax).unwrap();
    }
    let ids = request.generated().to_vec();
    let (status, record, raw) = post(&server, Some(TRUSTED), &json!({"ids": ids, "tokens": true}));
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["watermarked"], true, "{record}");
    assert_eq!(record["key_id"], "vllm-prod");
    assert_eq!(record["strongest_key"], 2);
    assert_eq!(record["keys"].as_array().unwrap().len(), 3);
    let scores = record["tokens"].as_array().unwrap();
    assert_eq!(scores.len(), ids.len());
    assert!(
        scores
            .iter()
            .any(|t| t["score"].as_f64().is_some_and(|s| s > 0.0)),
        "{record}"
    );
    let (_, public, public_raw) = post(&server, Some(PUBLIC), &json!({ "ids": ids }));
    assert_eq!(public["key_id"], "vllm-prod");
    for text in [&raw, &public_raw] {
        assert!(
            !text.contains(&secret.to_string()),
            "the vLLM key left the process"
        );
    }
    // Greenmark keys still fire as before; span search covers keys only.
    let kgw = watermarked(&server.keys[0], &server.config, 60);
    let (status, record, _) = post(&server, Some(TRUSTED), &json!({ "ids": kgw }));
    assert_eq!(status, 200);
    assert_eq!(record["strongest_key"], 0, "{record}");
    let (status, refusal, _) = post(&server, Some(TRUSTED), &json!({"ids": kgw, "span": true}));
    assert_eq!(status, 422, "{refusal}");
    assert!(refusal["error"]["message"]
        .as_str()
        .unwrap()
        .contains("span search"));
}

/// A SynthID Text config beside the keys and a vLLM config: its text fires it under one
/// correction over all four, named by its label; per-token detail gives each token's mean
/// g-value; its keys appear in no answer.
#[test]
fn synthid_configs_are_detected_beside_the_keys() {
    use greenmark::gumbel::argmax;
    use greenmark::synthid::{SynthIdConfig, SynthIdWatermarker};
    let keys = [918_273_645i64, 564_738_291, 102_938_475, 847_561_920];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synthid.json");
    let config = SynthIdConfig::new(4, keys.to_vec()).unwrap();
    std::fs::write(&path, config.to_json()).unwrap();
    let vllm = dir.path().join("vllm.json");
    std::fs::write(&vllm, r#"{"key": 5, "algorithm": "gumbel"}"#).unwrap();
    let server = start(&format!(
        "[[vllm]]\nconfig = {:?}\nname = \"vllm-prod\"\n[[synthid]]\nconfig = {:?}\nname = \"hf-synthid\"\n",
        vllm.to_str().unwrap(),
        path.to_str().unwrap()
    ));
    let wm = SynthIdWatermarker::new(config).unwrap();
    let mut request = wm.request();
    let mut state = 7u64;
    for _ in 0..80 {
        let mut row = random_logits(&mut state, 49_152);
        request.watermark(&mut row).unwrap();
        request.push(argmax(&row));
    }
    let ids = request.generated().to_vec();
    let (status, record, raw) = post(&server, Some(TRUSTED), &json!({"ids": ids, "tokens": true}));
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["watermarked"], true, "{record}");
    assert_eq!(record["key_id"], "hf-synthid");
    assert_eq!(record["strongest_key"], 3);
    let scores = record["tokens"].as_array().unwrap();
    assert_eq!(scores.len(), ids.len());
    assert!(
        scores[0]["score"].is_null() && scores[3]["score"].is_number(),
        "{record}"
    );
    let (_, public, public_raw) = post(&server, Some(PUBLIC), &json!({ "ids": ids }));
    assert_eq!(public["key_id"], "hf-synthid");
    for text in [&raw, &public_raw] {
        for key in keys {
            assert!(
                !text.contains(&key.to_string()),
                "a SynthID key left the process"
            );
        }
    }
    // Plain ids fire nothing.
    let mut state = 11u64;
    let plain: Vec<u32> = (0..80)
        .map(|_| argmax(&random_logits(&mut state, 49_152)))
        .collect();
    let (_, record, _) = post(&server, Some(TRUSTED), &json!({ "ids": plain }));
    assert_eq!(record["watermarked"], false, "{record}");
}

/// A caller who knows the key (a chat answer names it) tests it alone: the correction is for
/// one key, not two. An unknown id is a 422 that lists none of the service's ids.
#[test]
fn a_request_may_name_the_keys_to_test() {
    let server = start("");
    let ids = watermarked(&server.keys[1], &server.config, 40);
    let (_, both, _) = post(&server, Some(TRUSTED), &json!({ "ids": ids }));
    let id = server.keys[1].id().to_string();
    let (status, one, _) = post(&server, Some(TRUSTED), &json!({"ids": ids, "keys": [id]}));
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["key_id"], id);
    assert!(one.get("keys").is_none(), "one key: the flat record");
    let gain = both["log10_p_value"].as_f64().unwrap() - one["log10_p_value"].as_f64().unwrap();
    assert!((gain - 2f64.log10()).abs() < 1e-9, "{gain}");
    let (status, refusal, raw) = post(
        &server,
        Some(PUBLIC),
        &json!({"ids": ids, "keys": ["0000000000000000"]}),
    );
    assert_eq!(status, 422, "{raw}");
    assert!(refusal["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not one of the keys"));
    for key in &server.keys {
        assert!(
            !raw.contains(&key.id().to_string()),
            "the refusal lists a key id"
        );
    }
    let (status, _, _) = post(&server, Some(TRUSTED), &json!({"ids": ids, "keys": []}));
    assert_eq!(status, 422);
}
