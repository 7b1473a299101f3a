//! `greenmark keygen`: a fresh key and its config in a JSON key file (mode 0600).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use greenmark::{Key, KeyFile, Scheme, WatermarkConfig};

/// The default model's vocabulary size (SmolLM2).
pub const DEFAULT_VOCAB: u64 = 49152;

/// Arguments of `greenmark keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the key file (refuses to overwrite).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The model's vocabulary size (logits per step).
    #[arg(long, default_value_t = DEFAULT_VOCAB)]
    vocab_size: u64,
    /// Green fraction of the vocabulary, strictly between 0 and 1.
    #[arg(long, default_value_t = greenmark::config::DEFAULT_GAMMA, allow_negative_numbers = true)]
    gamma: f64,
    /// Logit bias added to green tokens.
    #[arg(long, default_value_t = greenmark::config::DEFAULT_DELTA, allow_negative_numbers = true)]
    delta: f64,
    /// Seeding scheme.
    #[arg(long, default_value = "lefthash", value_parser = clap::builder::PossibleValuesParser::new(Scheme::NAMES))]
    scheme: String,
    /// Window size h [default: 1 for lefthash, 4 for minhash, sumhash and selfhash; unigram
    /// has none].
    #[arg(long)]
    window: Option<usize>,
    /// Candidates selfhash evaluates per step [default: 40].
    #[arg(long)]
    top_k: Option<usize>,
}

/// Runs `greenmark keygen`.
pub fn run(args: Args) -> Result<()> {
    let scheme =
        Scheme::from_name(&args.scheme, args.window, args.top_k).context("invalid --scheme")?;
    let config = WatermarkConfig::builder(args.vocab_size)
        .gamma(args.gamma)
        .delta(args.delta)
        .scheme(scheme)
        .build()
        .context("invalid watermark config")?;
    if args.out.exists() {
        bail!(
            "{} already exists: choose another --out, or delete it if you are sure the key is \
             no longer needed (text watermarked with it can only be detected with it)",
            args.out.display()
        );
    }
    let key = Key::generate()?;
    let id = key.id();
    KeyFile::new(key, Some(config.clone())).save(&args.out)?;
    eprintln!(
        "wrote {} (mode 0600; keep it secret): {} gamma {} delta {} vocab {}",
        args.out.display(),
        config.scheme().id(),
        config.gamma(),
        config.delta(),
        config.vocab_size()
    );
    println!("{id}");
    Ok(())
}
