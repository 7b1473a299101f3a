//! Writes the default model's tokenizer (built from its GGUF metadata) as a `tokenizer.json`.
//!
//! Run: `cargo run --release -p greenmark-lm --example export_tokenizer [OUT]`
//! (default `crates/greenmark/tests/data/smollm2-tokenizer.json`, the core's test tokenizer).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "crates/greenmark/tests/data/smollm2-tokenizer.json".into());
    let model = greenmark_lm::default_model(&mut |_| {})?;
    let tokenizer = greenmark_lm::tokenizer::load_tokenizer(&model)?;
    tokenizer
        .save(&out, false)
        .map_err(|e| format!("could not write {out}: {e}"))?;
    println!("wrote {out} ({} tokens)", tokenizer.get_vocab_size(true));
    Ok(())
}
