//! `greenmark keygen`: a fresh key and its config in a JSON key file (mode 0600).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use greenmark::{Key, KeyFile, Scheme, WatermarkConfig};

/// The default model's vocabulary size (SmolLM2).
pub const DEFAULT_VOCAB: u64 = 49152;

/// A seeding scheme's name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemeName {
    /// The previous h tokens' leftmost token seeds the green list (default, h = 1).
    Lefthash,
    /// The minimum of a keyed hash over the window.
    Minhash,
    /// The sum of the window's tokens.
    Sumhash,
    /// Anchored minhash over a window that includes the candidate token.
    Selfhash,
    /// One fixed green list for all positions.
    Unigram,
}

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
    #[arg(long, value_enum, default_value_t = SchemeName::Lefthash)]
    scheme: SchemeName,
    /// Window size h [default: 1 for lefthash, 4 for the others; unigram has none].
    #[arg(long)]
    window: Option<usize>,
    /// Candidates selfhash evaluates per step [default: 40].
    #[arg(long)]
    top_k: Option<usize>,
}

/// Runs `greenmark keygen`.
pub fn run(args: Args) -> Result<()> {
    let scheme = match args.scheme {
        SchemeName::Lefthash => Scheme::LeftHash {
            window: args.window.unwrap_or(1),
        },
        SchemeName::Minhash => Scheme::MinHash {
            window: args.window.unwrap_or(4),
        },
        SchemeName::Sumhash => Scheme::SumHash {
            window: args.window.unwrap_or(4),
        },
        SchemeName::Selfhash => Scheme::SelfHash {
            window: args.window.unwrap_or(4),
            top_k: args.top_k.unwrap_or(40),
        },
        SchemeName::Unigram => {
            if args.window.is_some() {
                bail!("unigram has no window: leave out --window");
            }
            Scheme::Unigram
        }
    };
    if args.top_k.is_some() && args.scheme != SchemeName::Selfhash {
        bail!("--top-k applies to --scheme selfhash only: leave it out");
    }
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
