//! `greenmark keygen`: a fresh key and its config in a JSON key file (mode 0600); with
//! `--screen CORPUS`, only a key that passes the screen on human text
//! ([`super::screen`]), drawing up to `--screen-tries` candidates.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use greenmark::{Key, KeyFile, Scheme, WatermarkConfig};

/// The default model's vocabulary size (SmolLM2).
pub const DEFAULT_VOCAB: u64 = 49152;

/// Arguments of `greenmark keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the key file (refuses to overwrite).
    #[arg(short = 'o', long = "output", alias = "out", value_name = "FILE")]
    out: PathBuf,
    /// The model's vocabulary size (logits per step).
    #[arg(long, default_value_t = DEFAULT_VOCAB)]
    vocab_size: u64,
    /// Green fraction of the vocabulary, strictly between 0 and 1.
    #[arg(long, default_value_t = greenmark::config::DEFAULT_GAMMA, allow_negative_numbers = true)]
    gamma: f64,
    /// Logit bias added to green tokens: above 0 and at most 20.
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
    /// Screen the key on human text before writing it: `reference` (four genres of
    /// public-domain English from Debian packages, fetched once), a directory of text files
    /// (one subdirectory per genre), a .jsonl file or a text file. A key whose p-values on
    /// it are too small is not written (exit status 11), see `greenmark screen --help`.
    #[arg(long, value_name = "CORPUS")]
    screen: Option<String>,
    /// Candidates to draw with --screen before giving up: the first that passes is written.
    /// About half of random keys fail the default screen on the reference corpus (measured:
    /// docs/keys.md), so the default draws up to 10.
    #[arg(long, value_name = "K", default_value_t = 10, requires = "screen",
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    screen_tries: u32,
    #[command(flatten)]
    settings: super::screen::ScreenSettings,
    #[command(flatten)]
    tokenizer: super::TokenizerArgs,
    /// With --screen: print the screen's reports as JSON on stdout (with the key id)
    /// instead of the key id alone.
    #[arg(long, requires = "screen")]
    json: bool,
}

/// Runs `greenmark keygen`; `Ok(true)` when `--screen` rejected every candidate (exit
/// status 11; nothing is written).
pub fn run(args: Args) -> Result<bool> {
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
            "{} already exists: choose another --output, or delete it if you are sure the key is \
             no longer needed (text watermarked with it can only be detected with it)",
            args.out.display()
        );
    }
    let key = match &args.screen {
        None => Key::generate()?,
        Some(corpus) => {
            let (key, reports) = super::screen::screen_candidates(
                corpus,
                &args.settings,
                &args.tokenizer,
                &config,
                args.screen_tries,
            )?;
            if args.json {
                let value = serde_json::json!({
                    "accepted": key.is_some(),
                    "key_id": key.as_ref().map(|k| k.id().to_string()),
                    "out": key.as_ref().map(|_| args.out.display().to_string()),
                    "corpus": corpus,
                    "candidates": reports,
                });
                println!("{}", serde_json::to_string_pretty(&value)?);
            }
            match key {
                Some(key) => key,
                None => {
                    eprintln!(
                        "error: all {} candidate keys failed the screen on {corpus}; nothing was \
                         written (draw more with --screen-tries, or see docs/keys.md)",
                        args.screen_tries
                    );
                    return Ok(true);
                }
            }
        }
    };
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
    if !args.json {
        println!("{id}");
    }
    Ok(false)
}
