//! What the watermark costs inside generation on the default model: time per decode step with
//! and without it, at batch sizes 1 and 4.
//!
//! Run: `cargo run --release -p greenmark-lm --example overhead [TOKENS]` (default 128).

use std::time::Instant;

use greenmark::{Key, WatermarkConfig, Watermarker};
use greenmark_lm::{GenerateOptions, Lm, Request};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tokens: usize = std::env::args().nth(1).map_or(Ok(128), |a| a.parse())?;
    let mut lm = Lm::load_default(&mut |_| {})?;
    let key = Key::from_bytes([7; 32]);
    let watermarker = Watermarker::new(&key, WatermarkConfig::new(lm.vocab_size().into())?);
    let prompt = lm.chat_prompt("Tell me about the history of the printing press.")?;
    let options = GenerateOptions {
        max_new_tokens: tokens,
        seed: 1,
        ..GenerateOptions::default()
    };
    println!(
        "model {}, vocab {}, {tokens} new tokens",
        lm.path().display(),
        lm.vocab_size()
    );
    println!(
        "{:>5} {:>11} {:>10} {:>14} {:>14} {:>12} {:>9}",
        "batch", "watermark", "steps", "forward/step", "total/step", "bias/step", "share"
    );
    for batch in [1usize, 4] {
        for marked in [false, true] {
            let wm = marked.then_some(&watermarker);
            let requests: Vec<Request<'_>> = (0..batch)
                .map(|_| Request::new(prompt.clone(), wm))
                .collect();
            let start = Instant::now();
            let (_, t) = lm.generate(&requests, &options, &mut |_| {})?;
            let wall = start.elapsed() - t.prefill;
            let steps = t.steps as f64;
            println!(
                "{batch:>5} {:>11} {:>10} {:>11.2} ms {:>11.2} ms {:>9.1} us {:>8.3}%",
                if marked { "on" } else { "off" },
                t.steps,
                t.forward.as_secs_f64() / steps * 1e3,
                wall.as_secs_f64() / steps * 1e3,
                t.watermark.as_secs_f64() / steps * 1e6,
                100.0 * t.watermark.as_secs_f64() / wall.as_secs_f64(),
            );
        }
    }
    Ok(())
}
