//! vLLM `--watermark-config` JSON: never a panic, never an error that quotes the key; what
//! parses builds a detector and a watermarker.
#![no_main]

use greenmark::gumbel::VllmWatermarkConfig;
use greenmark::{GumbelDetector, GumbelWatermarker};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match VllmWatermarkConfig::from_json(text) {
        Ok(vllm) => {
            GumbelDetector::new(vllm.key, vllm.config).expect("a parsed config is valid");
            GumbelWatermarker::new(vllm.key, vllm.config).expect("a parsed config is valid");
        }
        Err(e) => {
            greenmark_fuzz_common::assert_no_secret(text, &e);
            // No number of the input (the key is one) appears in the error either.
            // (The key's range, u64::MAX, is part of the message itself.)
            let shown = e.to_string().replace("18446744073709551615", "");
            for n in text
                .split(|c: char| !c.is_ascii_digit())
                .filter(|n| n.len() >= 6)
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
