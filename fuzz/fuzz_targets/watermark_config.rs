//! Watermark config JSON: never a panic; what parses round-trips through `to_json`.
#![no_main]

use greenmark::WatermarkConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match WatermarkConfig::from_json(text) {
        Ok(config) => {
            let again =
                WatermarkConfig::from_json(&config.to_json()).expect("written config parses");
            assert_eq!(again, config);
            assert!(config.delta() > 0.0 && config.delta() <= greenmark::config::MAX_DELTA);
        }
        Err(e) => greenmark_fuzz_common::assert_no_secret(text, &e),
    }
});

#[path = "common.rs"]
mod greenmark_fuzz_common;
