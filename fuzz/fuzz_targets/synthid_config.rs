//! SynthID config JSON (transformers' `to_dict()`): never a panic, never an error that quotes a
//! key; what parses round-trips through `to_json`.
#![no_main]

use greenmark::synthid::SynthIdConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match SynthIdConfig::from_json(text) {
        Ok(config) => {
            let again = SynthIdConfig::from_json(&config.to_json()).expect("written config parses");
            assert_eq!(again, config);
        }
        Err(e) => {
            greenmark_fuzz_common::assert_no_secret(text, &e);
            let shown = e.to_string();
            for n in text
                .split(|c: char| !c.is_ascii_digit())
                .filter(|n| n.len() >= 9)
            {
                assert!(
                    !shown.contains(n),
                    "an error quotes a number of the input: {shown}"
                );
            }
        }
    }
});

#[path = "common.rs"]
mod greenmark_fuzz_common;
