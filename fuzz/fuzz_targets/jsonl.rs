//! The CLI's JSON Lines reading (`crates/greenmark-cli/src/input.rs`, included by path: the CLI
//! is a binary crate, so no library exposes it): lines of bytes, gzip or plain, each read into a
//! JSON value or a per-line error, then the token-id and text fields taken out as `detect`
//! does. Never a panic, and line numbers only grow.
#![no_main]

use std::io::{BufRead, BufReader, Cursor};

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/greenmark-cli/src/input.rs"]
mod input;

fuzz_target!(|data: &[u8]| {
    let reader: Box<dyn BufRead + Send> = if data.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(
            Cursor::new(data.to_vec()),
        )))
    } else {
        Box::new(Cursor::new(data.to_vec()))
    };
    // A small line limit chosen by the input's first byte (16 to 1036 bytes), so over-long
    // lines (skipped without being stored, reported as that line's error) are reached too.
    let max_line = 16 + 4 * usize::from(data.first().copied().unwrap_or(0));
    let mut input = input::Input {
        reader,
        name: "fuzz".into(),
        max_line,
    };
    let mut line_no = 0;
    let mut last = 0;
    // Small batches, as the CLI reads them, to cover the batch boundaries.
    for _ in 0..64 {
        let Ok(lines) = input::read_json_lines(&mut input, &mut line_no, 3) else {
            break;
        };
        if lines.is_empty() {
            break;
        }
        for (n, value) in lines {
            assert!(n > last);
            last = n;
            if let Ok(value) = value {
                let _ = input::token_ids(&value, "token_ids", "name the field");
                let _ = input::token_ids_field(&value, "prompt_ids", "name the field");
                let _ = input::string_field(&value, "text", "--text-field");
            }
        }
    }
});
