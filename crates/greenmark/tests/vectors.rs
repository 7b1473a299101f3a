//! Known-answer vectors: every scheme's bits (key, window, token -> seed, G, green) and the key
//! id and subkey derivation are pinned by `tests/vectors/schemes.json`. Changing any of them
//! needs a new scheme version id. Other implementations (the torch path) test against the same
//! file.
//!
//! The file is written by the naive oracle with `GREENMARK_BLESS=1 cargo test --test vectors`;
//! normally it is only read, and both the fast path and the oracle must reproduce it.

mod common;

use greenmark::scheme::{mix32, Seeder};
use greenmark::{Key, Scheme, WatermarkConfig};
use serde_json::{json, Value};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/schemes.json");

fn keys() -> Vec<Key> {
    vec![
        Key::from_bytes(core::array::from_fn(|i| i as u8)),
        Key::from_hex("9f3c2a71e4b8d05c6a1f7e29b3d48c5021fe6a9b7c3d0e18f4a2b5c6d7e8f901").unwrap(),
    ]
}

fn schemes() -> Vec<Scheme> {
    vec![
        Scheme::LeftHash { window: 1 },
        Scheme::LeftHash { window: 3 },
        Scheme::MinHash { window: 4 },
        Scheme::SumHash { window: 2 },
        Scheme::SelfHash {
            window: 4,
            top_k: 40,
        },
        Scheme::SelfHash {
            window: 1,
            top_k: 40,
        },
        Scheme::Unigram,
    ]
}

fn generate() -> Value {
    let contexts: [&[u32]; 5] = [
        &[0, 0, 0, 0],
        &[1, 2, 3, 4],
        &[49151, 17, 128255, 5],
        &[4294967295, 4294967294, 7, 8],
        &[31337, 31337, 31337, 31337],
    ];
    let tokens = [0u32, 1, 42, 49151, 128255];
    let mut key_rows = vec![];
    let mut cases = vec![];
    for key in keys() {
        key_rows.push(json!({
            "key": key.to_hex(),
            "key_id": key.id().to_string(),
            "subkey_example": hex(&key.derive("example")),
        }));
        for scheme in schemes() {
            for (c, context) in contexts.iter().enumerate() {
                let context = &context[..scheme.context_len()];
                let token = tokens[c];
                let seed = common::seed(&key, scheme, context, token);
                let config = |gamma| {
                    WatermarkConfig::builder(200_000)
                        .gamma(gamma)
                        .scheme(scheme)
                        .build()
                        .unwrap()
                };
                cases.push(json!({
                    "key": key.to_hex(),
                    "scheme": scheme,
                    "scheme_id": scheme.id(),
                    "context": context,
                    "token": token,
                    "seed": format!("{seed:016x}"),
                    "g": common::mix(seed, token),
                    "green_gamma_0.25": common::is_green(&config(0.25), seed, token),
                    "green_gamma_0.5": common::is_green(&config(0.5), seed, token),
                }));
            }
        }
    }
    json!({
        "about": "greenmark known-answer vectors: seed = scheme PRF of the context (and token for selfhash), g = G(seed, token), green = g < floor(gamma * 2^32). Written by the naive oracle in tests/common.",
        "mixer": {"m1": "0x21f0aaad", "m2": "0x735a2d97"},
        "keys": key_rows,
        "cases": cases,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn schemes_reproduce_the_committed_vectors() {
    if std::env::var_os("GREENMARK_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&generate()).unwrap();
        std::fs::write(PATH, text + "\n").unwrap();
    }
    let file: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    // The oracle agrees with the file ...
    assert_eq!(file, generate(), "the oracle no longer reproduces {PATH}");
    // ... and so do the key and the fast path, field by field.
    for row in file["keys"].as_array().unwrap() {
        let key = Key::from_hex(row["key"].as_str().unwrap()).unwrap();
        assert_eq!(key.id().to_string(), row["key_id"]);
        assert_eq!(hex(&key.derive("example")), row["subkey_example"]);
    }
    let cases = file["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2 * 7 * 5);
    for case in cases {
        let key = Key::from_hex(case["key"].as_str().unwrap()).unwrap();
        let scheme: Scheme = serde_json::from_value(case["scheme"].clone()).unwrap();
        assert_eq!(scheme.id(), case["scheme_id"]);
        let context: Vec<u32> = serde_json::from_value(case["context"].clone()).unwrap();
        let token = case["token"].as_u64().unwrap() as u32;
        let seed = Seeder::new(&key, scheme).seed(&context, token);
        assert_eq!(format!("{seed:016x}"), case["seed"], "{case}");
        let g = mix32(seed, token);
        assert_eq!(u64::from(g), case["g"].as_u64().unwrap(), "{case}");
        assert_eq!(g < 1 << 30, case["green_gamma_0.25"].as_bool().unwrap());
        assert_eq!(g < 1 << 31, case["green_gamma_0.5"].as_bool().unwrap());
    }
}
