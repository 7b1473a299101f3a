//! Measures what `skip_repeated_windows` (off by default) costs in detectability, and what it
//! buys against repetition, on synthetic models of decreasing entropy.
//!
//! Run: `cargo run --release -p greenmark-examples --bin skip_cost`

use greenmark::synthetic::ZipfLm;
use greenmark::{Detector, Key, Result, WatermarkConfig, Watermarker};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const TRIALS: usize = 300;
const TOKENS: usize = 200;

fn main() -> Result<()> {
    let key = Key::from_bytes([11; 32]);
    println!(
        "{TRIALS} texts of {TOKENS} tokens per row, lefthash h=1, gamma 0.25, delta 2, dedup on\n"
    );
    println!(
        "{:>8} {:>6} {:>11} {:>10} {:>13} {:>15}",
        "entropy", "skip", "distinct %", "scored", "median log10p", "detected@1e-6"
    );
    for exponent in [1.1, 1.4, 1.8, 2.5] {
        let lm = ZipfLm::new(4096, exponent)?;
        for skip in [true, false] {
            let config = WatermarkConfig::builder(4096)
                .skip_repeated_windows(skip)
                .build()?;
            let wm = Watermarker::new(&key, config.clone());
            let detector = Detector::new(&key, config);
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            let (mut log10s, mut scored, mut distinct) = (vec![], 0u64, 0usize);
            for t in 0..TRIALS {
                let prompt = [t as u32];
                let text = lm.generate(&prompt, TOKENS, Some(&wm), &mut rng)?;
                let d = detector.detect(&text, &prompt)?;
                log10s.push(d.log10_p_value);
                scored += d.n_scored;
                let mut unique = text.clone();
                unique.sort_unstable();
                unique.dedup();
                distinct += unique.len();
            }
            log10s.sort_by(f64::total_cmp);
            let detected = log10s.iter().filter(|&&l| l < -6.0).count();
            println!(
                "{:>8.2} {:>6} {:>10.1}% {:>10.1} {:>13.2} {:>14.1}%",
                lm.entropy(),
                if skip { "on" } else { "off" },
                100.0 * distinct as f64 / (TRIALS * TOKENS) as f64,
                scored as f64 / TRIALS as f64,
                log10s[TRIALS / 2],
                100.0 * detected as f64 / TRIALS as f64
            );
        }
    }
    Ok(())
}
