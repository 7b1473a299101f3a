//! Bad input gets a typed error whose message says what to fix: never a panic, never a silent
//! wrong answer. One test per kind of bad input, through the public API.

use greenmark::{
    BiasOutcome, Detector, Error, Key, KeyFile, Scheme, SpanOptions, WatermarkConfig, Watermarker,
};

fn key() -> Key {
    Key::from_bytes([42; 32])
}

fn msg<T: std::fmt::Debug>(r: greenmark::Result<T>) -> (Error, String) {
    let e = r.unwrap_err();
    let m = e.to_string();
    (e, m)
}

#[test]
fn invalid_gamma_delta_vocab_window_topk() {
    let (e, m) = msg(WatermarkConfig::builder(100).gamma(1.0).build());
    assert!(matches!(e, Error::InvalidGamma(g) if g == 1.0));
    assert_eq!(
        m,
        "gamma must be strictly between 0 and 1 (e.g. 0.25), got 1"
    );
    let (e, m) = msg(WatermarkConfig::builder(100).delta(f64::NAN).build());
    assert!(matches!(e, Error::InvalidDelta(_)));
    assert!(
        m.contains("above 0 and at most 20") && m.contains("NaN"),
        "{m}"
    );
    let (e, m) = msg(WatermarkConfig::new(0));
    assert!(matches!(e, Error::InvalidVocabSize(0)));
    assert_eq!(m, "vocab size must be at least 2, got 0");
    let (e, m) = msg(WatermarkConfig::builder(100)
        .scheme(Scheme::MinHash { window: 17 })
        .build());
    assert!(matches!(
        e,
        Error::InvalidScheme {
            scheme: "minhash",
            ..
        }
    ));
    assert_eq!(
        m,
        "invalid minhash parameter: window must be between 1 and 16, got 17"
    );
    let (_, m) = msg(WatermarkConfig::builder(100)
        .scheme(Scheme::SelfHash {
            window: 4,
            top_k: 0,
        })
        .build());
    assert!(m.contains("top_k must be between 1 and 256, got 0"), "{m}");
}

#[test]
fn wrong_vocab_size_rows_batches_and_masks() {
    let wm = Watermarker::new(&key(), WatermarkConfig::new(1000).unwrap());
    let mut row = vec![0.0f32; 999];
    let (e, m) = msg(wm.bias(&mut row, &[1]));
    assert!(matches!(
        e,
        Error::RowLength {
            expected: 1000,
            got: 999,
            row: 0
        }
    ));
    assert!(
        m.contains("has 999 entries but the watermark's vocab size is 1000"),
        "{m}"
    );
    let mut batch = vec![0.0f32; 2500];
    let (e, m) = msg(wm.bias_batch(&mut batch, &[[1u32], [2]]));
    assert!(matches!(e, Error::BatchShape(_)));
    assert!(
        m.contains("2500 logits do not make 2 rows of vocab size 1000"),
        "{m}"
    );
    let mut mask = vec![0u64; 15];
    let (e, m) = msg(wm.green_mask(&[1], &mut mask));
    assert!(matches!(
        e,
        Error::MaskLength {
            expected: 16,
            got: 15,
            ..
        }
    ));
    assert!(m.contains("needs 16 u64 words"), "{m}");
}

#[test]
fn token_ids_out_of_range_name_their_position_and_change_nothing() {
    let config = WatermarkConfig::new(1000).unwrap();
    let wm = Watermarker::new(&key(), config.clone());
    let mut row = vec![0.5f32; 1000];
    let (e, m) = msg(wm.bias(&mut row, &[3, 1000]));
    assert!(matches!(
        e,
        Error::TokenOutOfRange {
            position: 1,
            token: 1000,
            sequence: "context",
            ..
        }
    ));
    assert!(m.contains("token id 1000 at context position 1 is out of range for vocab size 1000"));
    assert!(
        row.iter().all(|&x| x == 0.5),
        "an error leaves the row unchanged"
    );
    let mut batch = vec![0.5f32; 2000];
    assert!(wm
        .bias_batch(&mut batch, &[vec![3u32], vec![5000]])
        .is_err());
    assert!(
        batch.iter().all(|&x| x == 0.5),
        "an error leaves every row unchanged"
    );

    let d = Detector::new(&key(), config);
    let (_, m) = msg(d.detect(&[1, 2, 3, 70000], &[]));
    assert!(m.contains("token id 70000 at text position 3"), "{m}");
    let (_, m) = msg(d.detect(&[1], &[1000]));
    assert!(m.contains("at prompt position 0"), "{m}");
    let (_, m) = msg(d.find_span(&[1, 1001], &[], SpanOptions::default()));
    assert!(m.contains("text position 1"), "{m}");
}

#[test]
fn nan_and_infinite_logits_are_left_alone_without_panic() {
    for scheme in [Scheme::LeftHash { window: 1 }, Scheme::SELFHASH_DEFAULT] {
        let config = WatermarkConfig::builder(64).scheme(scheme).build().unwrap();
        let wm = Watermarker::new(&key(), config);
        let mut row = vec![f32::NAN; 64];
        row[1] = f32::INFINITY;
        row[2] = f32::NEG_INFINITY;
        assert_eq!(
            wm.bias(&mut row, &[1, 2, 3, 4]).unwrap(),
            BiasOutcome::Biased
        );
        assert!(row[0].is_nan() && row[1] == f32::INFINITY && row[2] == f32::NEG_INFINITY);
        assert!(row[3..].iter().all(|x| x.is_nan()));
    }
}

#[test]
fn empty_text_is_p_one_not_an_error() {
    let d = Detector::new(&key(), WatermarkConfig::new(100).unwrap());
    let r = d.detect(&[], &[]).unwrap();
    assert_eq!((r.n_tokens, r.n_scored, r.n_green), (0, 0, 0));
    assert_eq!((r.p_value, r.log10_p_value, r.z_score), (1.0, 0.0, 0.0));
    assert!(!r.green_fraction.is_nan());
}

#[test]
fn unreadable_or_malformed_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let (e, m) = msg(Key::load(dir.path().join("nope.key")));
    assert!(matches!(
        e,
        Error::Io {
            action: "read key file",
            ..
        }
    ));
    assert!(
        m.starts_with("cannot read key file") && m.contains("nope.key"),
        "{m}"
    );

    let path = dir.path().join("short.key");
    std::fs::write(&path, "abcd\n").unwrap();
    let (e, m) = msg(Key::load(&path));
    assert!(matches!(e, Error::InvalidKey(_)));
    assert_eq!(
        m,
        "invalid key: expected 64 hex digits (32 bytes), got 4 characters"
    );

    let path = dir.path().join("wrong-format.key");
    let secret = "11".repeat(32);
    std::fs::write(
        &path,
        format!(r#"{{"format": "other/v9", "secret": "{secret}"}}"#),
    )
    .unwrap();
    let (_, m) = msg(Key::load(&path));
    assert!(
        m.contains("format must be the string \"greenmark-key/v1\""),
        "{m}"
    );
    assert!(!m.contains(&secret) && !m.contains("other/v9"), "{m}");

    let path = dir.path().join("bad-id.key");
    std::fs::write(
        &path,
        format!(r#"{{"format": "greenmark-key/v1", "secret": "{secret}", "key_id": "0000000000000000"}}"#),
    )
    .unwrap();
    let (_, m) = msg(Key::load(&path));
    assert!(m.contains("does not match its secret"), "{m}");

    let path = dir.path().join("typo.key");
    std::fs::write(
        &path,
        format!(r#"{{"format": "greenmark-key/v1", "secrte": "{secret}"}}"#),
    )
    .unwrap();
    let (e, m) = msg(Key::load(&path));
    assert!(
        matches!(
            e,
            Error::Parse {
                what: greenmark::Document::KeyFile,
                ..
            }
        ),
        "{m}"
    );
    assert!(!m.contains(&secret), "{m}");
}

#[test]
fn key_file_carries_its_config_and_refuses_a_different_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wm.key");
    let config = WatermarkConfig::builder(49152).gamma(0.5).build().unwrap();
    KeyFile::new(key(), Some(config.clone()))
        .save(&path)
        .unwrap();
    let file = KeyFile::load(&path).unwrap();
    assert_eq!(file.key, key());
    assert_eq!(file.config.as_ref(), Some(&config));
    assert!(file.check(&config).is_ok());
    let (e, m) = msg(file.check(&WatermarkConfig::new(49152).unwrap()));
    assert!(matches!(e, Error::ConfigMismatch { field: "gamma", .. }));
    assert!(
        m.contains("the key file says 0.5, but 0.25 was given"),
        "{m}"
    );
    let (e, _) = msg(file.check(&WatermarkConfig::new(32000).unwrap()));
    assert!(matches!(
        e,
        Error::ConfigMismatch {
            field: "vocab_size",
            ..
        }
    ));
}

#[test]
fn bad_config_json() {
    let (e, m) = msg(WatermarkConfig::from_json(
        r#"{"vocab_size": 10, "delta": -2}"#,
    ));
    assert!(matches!(
        e,
        Error::Parse {
            what: greenmark::Document::Config,
            ..
        }
    ));
    assert!(
        m.contains("delta must be a number above 0 and at most 20"),
        "{m}"
    );
    let (_, m) = msg(WatermarkConfig::from_json(
        r#"{"vocab_size": 10, "scheme": {"type": "nohash"}}"#,
    ));
    // The config reader never quotes a value (the same reader parses key files).
    assert!(
        m.contains("scheme.type must be one of lefthash, minhash"),
        "{m}"
    );
    assert!(!m.contains("nohash"), "{m}");
    let (_, m) = msg(WatermarkConfig::from_json("not json"));
    assert!(m.starts_with("invalid config JSON"), "{m}");
}

#[test]
fn span_search_options() {
    let d = Detector::new(&key(), WatermarkConfig::new(100).unwrap());
    let (e, m) = msg(d.find_span(&[1, 2, 3], &[], SpanOptions::with_min_tokens(0)));
    assert!(matches!(e, Error::InvalidOption { .. }));
    assert_eq!(
        m,
        "invalid min_tokens: span search needs min_tokens >= 2, got 0"
    );
}
