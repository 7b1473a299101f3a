//! The main job until the CLI lands: watermark text from a synthetic language model and detect
//! it, next to plain text from the same model, and print the statistics.
//!
//! Run: `cargo run --release -p greenmark-examples`

use greenmark::synthetic::ZipfLm;
use greenmark::{Detector, Key, Result, WatermarkConfig, Watermarker};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn main() -> Result<()> {
    let key = Key::generate()?;
    let lm = ZipfLm::new(32_000, 1.2)?;
    let config = WatermarkConfig::new(u64::from(lm.vocab_size()))?;
    let watermarker = Watermarker::new(&key, config.clone());
    let detector = Detector::new(&key, config.clone());
    println!(
        "key {}  scheme {}  gamma {}  delta {}  model: Zipf over {} tokens, entropy {:.2} nats/token\n",
        key.id(),
        config.scheme().id(),
        config.gamma(),
        config.delta(),
        lm.vocab_size(),
        lm.entropy()
    );
    println!(
        "{:<12} {:>7} {:>8} {:>7} {:>8} {:>10}  verdict (p < 1e-6)",
        "text", "tokens", "scored", "green", "z", "log10 p"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(2023);
    for i in 0..10 {
        for (label, wm) in [("watermarked", Some(&watermarker)), ("plain", None)] {
            let prompt = [i as u32 * 101 + 7];
            let text = lm.generate(&prompt, 200, wm, &mut rng)?;
            let d = detector.detect(&text, &prompt)?;
            println!(
                "{:<12} {:>7} {:>8} {:>7.3} {:>8.2} {:>10.2}  {}",
                label,
                d.n_tokens,
                d.n_scored,
                d.green_fraction,
                d.z_score,
                d.log10_p_value,
                if d.log10_p_value < -6.0 {
                    "WATERMARKED"
                } else {
                    "no watermark"
                }
            );
        }
    }
    Ok(())
}
