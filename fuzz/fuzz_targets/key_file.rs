//! Key files (hex or JSON, with a config): never a panic; what parses writes back and parses
//! to the same key and config; no error quotes a 64-hex-digit run of the input (a secret).
#![no_main]

use greenmark::{Key, KeyFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Key::from_hex(text);
    match KeyFile::parse(text) {
        Ok(file) => {
            let again = KeyFile::parse(&file.to_json()).expect("a written key file parses");
            assert!(again.key == file.key);
            assert_eq!(again.config, file.config);
        }
        Err(e) => greenmark_fuzz_common::assert_no_secret(text, &e),
    }
});

#[path = "common.rs"]
mod greenmark_fuzz_common;
