//! Decode speed by batch size on the embedded model: `cargo run --release -p greenmark-lm
//! --example batch_speed -- [TOKENS] [BATCH...]` prints tokens/s for each batch size (every
//! row the same prompt, so one batch; the end of turn masked so every row runs to TOKENS).
//! The measurements behind the demo's batch are in `greenmark-cli`'s `cmd/demo.rs`.

use std::time::Instant;

use greenmark_lm::{GenerateOptions, Lm, Request};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let tokens = args.first().copied().unwrap_or(64);
    let batches = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        vec![1, 2, 4, 10, 20]
    };
    let mut lm = Lm::load_default(&mut |_| {})?;
    let prompt = lm.chat_prompt("Why is the sky blue? Explain it to a curious teenager.")?;
    for b in batches {
        let requests: Vec<Request<'_>> =
            (0..b).map(|_| Request::new(prompt.clone(), None)).collect();
        let options = GenerateOptions {
            max_new_tokens: tokens,
            min_new_tokens: tokens,
            max_batch: b,
            ..GenerateOptions::default()
        };
        let start = Instant::now();
        let (answers, t) = lm.generate(&requests, &options, &mut |_| {})?;
        let secs = start.elapsed().as_secs_f64();
        let n: usize = answers.iter().map(|a| a.tokens.len()).sum();
        println!(
            "batch {b:>3}: {n:>5} tokens in {secs:>6.1} s = {:>6.1} tokens/s; prefill {:.2} s, \
             decode step {:.1} ms (sampling {:.1} ms)",
            n as f64 / secs,
            t.prefill.as_secs_f64(),
            1e3 * t.forward.as_secs_f64() / t.steps.max(1) as f64,
            1e3 * t.sampling.as_secs_f64() / t.steps.max(1) as f64,
        );
    }
    Ok(())
}
