//! No error ever echoes a value read from a key file or a key field (issue 16).
//!
//! Every field of every document that holds a secret (greenmark key files with their config,
//! vLLM `--watermark-config`, SynthID configs) gets, in turn, a recognisable planted secret: as
//! a string (the wrong type, or the wrong string), as a number out of range, as a number of the
//! wrong kind, and as a field name. The error must name the field and must not contain the
//! planted value, in `Display` or in `Debug`.

use greenmark::gumbel::VllmWatermarkConfig;
use greenmark::synthid::SynthIdConfig;
use greenmark::{Document, Error, KeyFile, WatermarkConfig};
use serde_json::{json, Value};

/// A string secret: 64 hex digits, so a key-shaped value, plus a marker.
const HEX: &str = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7";
/// Digits of the planted numbers; no error may contain them.
const DIGITS: &str = "7319462805";

/// The planted values: each must be refused where a field does not take it, and none may
/// appear in an error. (Whole-document shapes are exercised by the fuzz targets.)
fn plants() -> Vec<Value> {
    vec![
        json!(HEX),
        json!(format!("SECRET-{HEX}")),
        serde_json::from_str("73194628057319462805731946").unwrap(), // > u64
        json!(-7319462805_i64),
        json!(7319462805.5),
        json!(7319462805_u64),
        json!([HEX]),
        json!({ "x": HEX }),
    ]
}

fn assert_clean(doc: &str, field: &str, err: &Error) {
    let shown = err.to_string();
    let debug = format!("{err:?}");
    for text in [&shown, &debug] {
        assert!(
            !text.contains(HEX) && !text.contains("5ec7e7") && !text.contains(DIGITS),
            "{doc}: the error for {field} echoes the planted value: {text}"
        );
    }
    let leaf = field
        .rsplit('.')
        .next()
        .unwrap()
        .trim_end_matches("[0]")
        .trim_end_matches("[1]");
    assert!(
        field.is_empty() || shown.contains(leaf),
        "{doc}: the error for {field} does not name it: {shown}"
    );
}

/// Sets the field at `path` (dot-separated; `keys[1]` indexes an array) in `doc`.
fn set(doc: &mut Value, path: &str, value: Value) {
    let mut at = doc;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if let Some(name) = part.strip_suffix("[1]") {
            at = &mut at[name][1];
        } else {
            at = &mut at[*part];
        }
        if last {
            *at = value;
            return;
        }
    }
}

/// Every field path of `doc` (objects recursed, arrays by their second element).
fn paths(doc: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Value::Object(map) = doc {
        for (k, v) in map {
            let path = format!("{prefix}{k}");
            match v {
                Value::Object(_) => paths(v, &format!("{path}."), out),
                Value::Array(items) if items.len() > 1 => out.push(format!("{path}[1]")),
                _ => {}
            }
            out.push(path);
        }
    }
}

/// Plants each value in each field of `doc` and as a field name in each object, and checks
/// `parse`'s errors. A planted value some field accepts (a number where a number goes) must
/// parse without error.
fn check(doc_name: &str, doc: Value, parse: impl Fn(&str) -> greenmark::Result<()>) {
    parse(&doc.to_string()).unwrap_or_else(|e| panic!("{doc_name}: the base document fails: {e}"));
    let mut fields = Vec::new();
    paths(&doc, "", &mut fields);
    let mut refused = 0;
    for field in &fields {
        for plant in plants() {
            let mut bad = doc.clone();
            set(&mut bad, field, plant.clone());
            if let Err(e) = parse(&bad.to_string()) {
                assert_clean(doc_name, field, &e);
                refused += 1;
            }
        }
    }
    // The secret as a field name, at the top and in every nested object.
    let mut objects = vec![String::new()];
    objects.extend(
        fields
            .iter()
            .filter(|f| {
                let mut v = &doc;
                for p in f.split('.') {
                    v = &v[p];
                }
                v.is_object()
            })
            .cloned(),
    );
    for object in objects {
        for name in [HEX.to_string(), format!("SECRET{DIGITS}")] {
            let mut bad = doc.clone();
            let target = if object.is_empty() {
                &mut bad
            } else {
                let mut v = &mut bad;
                for p in object.split('.') {
                    v = &mut v[p];
                }
                v
            };
            target[name.as_str()] = json!(1);
            let e = parse(&bad.to_string()).expect_err("an unknown field is refused");
            assert_clean(doc_name, "unknown field", &e);
            assert!(e.to_string().contains("unknown field"), "{e}");
        }
    }
    // The secret as the whole document, and cut short inside a string.
    for text in [
        json!(HEX).to_string(),
        format!("{{\"secret\": \"{HEX}"),
        format!("{{\"key\": {DIGITS}{DIGITS}"),
        format!("[\"{HEX}\"]"),
    ] {
        let e = parse(&text).expect_err("not a document");
        assert_clean(doc_name, "", &e);
    }
    assert!(refused > fields.len(), "{doc_name}: only {refused} refused");
}

#[test]
fn key_file_errors_never_echo_a_value() {
    let key = greenmark::Key::from_hex(HEX).unwrap();
    let doc = json!({
        "format": "greenmark-key/v1",
        "key_id": key.id().to_string(),
        "secret": HEX,
        "config": {
            "vocab_size": 1000,
            "gamma": 0.25,
            "delta": 2.0,
            "scheme": {"type": "selfhash", "window": 4, "top_k": 40},
            "skip_repeated_windows": false,
        },
    });
    check("key file", doc, |text| KeyFile::parse(text).map(drop));
}

#[test]
fn config_errors_never_echo_a_value() {
    let doc = json!({
        "vocab_size": 1000,
        "gamma": 0.25,
        "delta": 2.0,
        "scheme": {"type": "minhash", "window": 4},
        "skip_repeated_windows": true,
    });
    check("config", doc, |text| {
        WatermarkConfig::from_json(text).map(drop)
    });
}

#[test]
fn vllm_config_errors_never_echo_a_value() {
    let doc = json!({
        "key": 42,
        "algorithm": "dual_key_gumbel",
        "alpha": 0.2,
        "context_width": 4,
        "deduplicate_contexts": "single_turn",
        "deduplicate_contexts_max_history": 8192,
        "prf": "philox",
        "allow_target_only_watermarking": false,
        "sbw_scheme": "x",
        "sbw_gamma": 0.5,
        "sbw_delta": 2.0,
    });
    check("vLLM config", doc, |text| {
        VllmWatermarkConfig::from_json(text).map(drop)
    });
    // The issue's case: an out-of-range key, which is the secret itself.
    for key in [
        "18446744073709551616",
        "-7319462805",
        "7319462805.25",
        "7319462805e3",
    ] {
        let e = VllmWatermarkConfig::from_json(&format!("{{\"key\": {key}}}")).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("key must be an integer from 0 to"), "{m}");
        for text in [&m, &format!("{e:?}")] {
            assert!(!text.contains("551616") && !text.contains(DIGITS), "{text}");
        }
    }
}

#[test]
fn synthid_config_errors_never_echo_a_value() {
    let doc = json!({
        "ngram_len": 5,
        "keys": [654, 400, 836],
        "sampling_table_size": 65536,
        "sampling_table_seed": 0,
        "context_history_size": 1024,
        "skip_first_ngram_calls": false,
        "debug_mode": false,
    });
    check("SynthID config", doc, |text| {
        SynthIdConfig::from_json(text).map(drop)
    });
    let e = SynthIdConfig::from_json(r#"{"ngram_len": 5, "keys": [1, 73194628057319462805]}"#)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("keys[1] must be an integer that fits in int64"),
        "{e}"
    );
    assert!(!e.to_string().contains(DIGITS), "{e}");
}

#[test]
fn key_file_errors_name_the_field_and_range() {
    let key = greenmark::Key::from_hex(HEX).unwrap();
    let with = |config: Value| {
        json!({"format": "greenmark-key/v1", "secret": HEX, "config": config}).to_string()
    };
    for (config, needle) in [
        (json!({"gamma": 0.25}), "config.vocab_size is missing"),
        (
            json!({"vocab_size": 1}),
            "config.vocab_size must be an integer from 2",
        ),
        (
            json!({"vocab_size": 100, "gamma": 1.5}),
            "config.gamma must be a number strictly between 0 and 1",
        ),
        (
            json!({"vocab_size": 100, "delta": 0}),
            "config.delta must be a number above 0 and at most 20",
        ),
        (
            json!({"vocab_size": 100, "delta": 1e308}),
            "config.delta must be a number above 0 and at most 20",
        ),
        (
            json!({"vocab_size": 100, "scheme": {"type": "lefthash", "window": 17}}),
            "config.scheme.window must be an integer from 1 to 16",
        ),
        (
            json!({"vocab_size": 100, "scheme": {"type": "minhash", "top_k": 3}}),
            "config.scheme.top_k applies to selfhash only",
        ),
        (
            json!({"vocab_size": 100, "scheme": {"type": "unigram", "window": 2}}),
            "config.scheme.window must be 0 or absent",
        ),
        (
            json!({"vocab_size": 100, "scheme": {"type": "kgw"}}),
            "config.scheme.type must be one of lefthash",
        ),
        (
            json!({"vocab_size": 100, "skip_repeated_windows": "yes"}),
            "config.skip_repeated_windows must be true or false, got a string",
        ),
        (
            json!({"vocab_size": 100, "gama": 0.5}),
            "unknown field `gama` in `config`",
        ),
        (json!([1, 2]), "config must be a JSON object"),
    ] {
        let e = KeyFile::parse(&with(config.clone())).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Parse {
                    what: Document::KeyFile,
                    ..
                }
            ),
            "{config}: {e:?}"
        );
        assert!(e.to_string().contains(needle), "{config}: {e}");
    }
    // A good one still loads, and defaults fill what is left out.
    let file = KeyFile::parse(&with(
        json!({"vocab_size": 100, "scheme": {"type": "minhash"}}),
    ))
    .unwrap();
    assert_eq!(file.key, key);
    assert_eq!(
        file.config.unwrap(),
        WatermarkConfig::builder(100)
            .scheme(greenmark::Scheme::MinHash { window: 4 })
            .build()
            .unwrap()
    );
    for (doc, needle) in [
        (json!({"secret": HEX}), "format is missing"),
        (json!({"format": "greenmark-key/v1"}), "secret is missing"),
        (
            json!({"format": "greenmark-key/v1", "secret": 5}),
            "secret must be a string of 64 hex digits, got an integer",
        ),
        (
            json!({"format": "greenmark-key/v1", "secret": "abc"}),
            "the key file's secret: expected 64 hex digits",
        ),
        (
            json!({"format": "greenmark-key/v1", "secret": HEX, "key_id": HEX}),
            "key_id does not match its secret",
        ),
    ] {
        let e = KeyFile::parse(&doc.to_string()).unwrap_err();
        assert!(e.to_string().contains(needle), "{doc}: {e}");
    }
}

/// Config files written by `to_json` (and so by key files) read back equal, through the
/// field-by-field reader.
#[test]
fn written_configs_read_back() {
    for scheme in [
        greenmark::Scheme::LeftHash { window: 2 },
        greenmark::Scheme::SumHash { window: 3 },
        greenmark::Scheme::SELFHASH_DEFAULT,
        greenmark::Scheme::Unigram,
    ] {
        let c = WatermarkConfig::builder(49152)
            .gamma(0.3)
            .delta(20.0)
            .scheme(scheme)
            .skip_repeated_windows(true)
            .build()
            .unwrap();
        assert_eq!(WatermarkConfig::from_json(&c.to_json()).unwrap(), c);
        let file = KeyFile::new(greenmark::Key::from_hex(HEX).unwrap(), Some(c.clone()));
        assert_eq!(KeyFile::parse(&file.to_json()).unwrap().config, Some(c));
    }
}
