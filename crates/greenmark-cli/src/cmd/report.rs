//! `greenmark report`: one self-contained HTML page showing where the watermark is.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use greenmark::text::TextDetector;

use super::{detection_config, load_key_file, parse_threshold, TokenizerArgs};
use crate::cmd::detect::text_error;
use crate::input::format_size;
use crate::report::{render_report, Report, Section, Whole};
use crate::verdict::Facts;

/// Arguments of `greenmark report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The key file (from `greenmark keygen`).
    #[arg(long, value_name = "FILE")]
    key_file: PathBuf,
    #[command(flatten)]
    tokenizer: TokenizerArgs,
    /// Where to write the HTML report (overwritten if it exists).
    #[arg(short = 'o', long = "output", alias = "html", value_name = "OUT.html")]
    html: PathBuf,
    /// The p-value below which the text is called watermarked.
    #[arg(long, default_value = "1e-6", value_parser = parse_threshold, value_name = "P")]
    threshold: f64,
    /// The text to annotate (UTF-8; `-` reads stdin). Its first 256 KiB are coloured token by
    /// token; a longer text is detected whole and the rest summarised, with a warning.
    #[arg(value_name = "FILE")]
    input: PathBuf,
}

/// The most text a report colours token by token: 256 KiB, some 60,000 tokens and a 6 MB
/// page. A longer text is detected whole (streamed, in bounded memory) and coloured up to
/// there, with a warning on stderr. Before this cap, 10 MB of text made a 195 MB page and
/// peaked at 1.0 GB (the tokenizer's state for every token, then the page).
pub const MAX_COLOURED_BYTES: usize = 256 << 10;

/// Runs `greenmark report`.
pub fn run(args: Args) -> Result<()> {
    let key_file = load_key_file(&args.key_file)?;
    let stdin = args.input.as_os_str() == "-";
    let name = if stdin {
        "stdin".to_string()
    } else {
        args.input.display().to_string()
    };
    let cannot_read = || format!("cannot read {name}: give a readable UTF-8 text file");
    let mut reader: Box<dyn Read> = if stdin {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(File::open(&args.input).with_context(cannot_read)?)
    };
    let mut head = Vec::new();
    (&mut reader)
        .take(MAX_COLOURED_BYTES as u64 + 1)
        .read_to_end(&mut head)
        .with_context(cannot_read)?;
    // The whole text, for the streamed detection of a long one: what was read, then the rest.
    let head_copy = (head.len() > MAX_COLOURED_BYTES).then(|| head.clone());
    let long = head.len() > MAX_COLOURED_BYTES;
    if long {
        head.truncate(MAX_COLOURED_BYTES);
    }
    let text = match String::from_utf8(head) {
        Ok(text) => text,
        // The cut fell inside a character: end before it.
        Err(e) if long && e.utf8_error().error_len().is_none() => {
            let valid = e.utf8_error().valid_up_to();
            let mut bytes = e.into_bytes();
            bytes.truncate(valid);
            String::from_utf8(bytes).expect("valid up to here")
        }
        Err(e) => bail!(
            "{name} is not UTF-8 text (invalid byte at offset {}): give a text file",
            e.utf8_error().valid_up_to()
        ),
    };
    let text = if long { cut_at_space(&text) } else { &text };
    let (tokenizer, source) = args.tokenizer.load()?;
    let vocab = tokenizer.get_vocab_size(true) as u32;
    let config = detection_config(&key_file, &args.key_file, vocab, &source)?;
    let detector = TextDetector::new(tokenizer, &key_file.key, config.clone())?;
    let whole = match head_copy {
        Some(head) => {
            let mut whole = Counted {
                inner: std::io::Cursor::new(head).chain(reader),
                bytes: 0,
            };
            let detection = detector
                .detect_reader(BufReader::new(&mut whole))
                .map_err(|e| text_error(e, &name))?;
            Some(Whole {
                detection,
                bytes: whole.bytes,
            })
        }
        None => None,
    };
    let annotation = detector.annotate(text).map_err(|e| text_error(e, &name))?;
    if let Some(whole) = &whole {
        eprintln!(
            "warning: {name} is {}: the report colours its first {} tokens (about {}) and \
             gives the verdict and statistics of the whole text ({} tokens)",
            format_size(whole.bytes),
            annotation.tokens.len(),
            format_size(MAX_COLOURED_BYTES as u64),
            whole.detection.detection.n_tokens
        );
    }
    let html = render_report(&Report {
        title: format!("greenmark report: {name}"),
        config: &config,
        threshold: args.threshold,
        notes: Vec::new(),
        sections: vec![Section {
            title: name.clone(),
            subtitle: None,
            annotation: &annotation,
            whole: whole.as_ref(),
        }],
    });
    std::fs::write(&args.html, html)
        .with_context(|| format!("cannot write the report to {}", args.html.display()))?;
    let d = whole
        .as_ref()
        .map_or(&annotation.detection, |w| &w.detection.detection);
    println!(
        "wrote {}: {} tokens, {} scored, z {:.2}, log10 p {:.2}: {}",
        args.html.display(),
        d.n_tokens,
        d.n_scored,
        d.z_score,
        d.log10_p_value,
        Facts::of(d, args.threshold, config.delta()).sentence()
    );
    Ok(())
}

/// A reader that counts the bytes read through it.
struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// `text` up to its last white space in the final 1 KiB (so the coloured part does not end in
/// half a word), or whole when there is none.
fn cut_at_space(text: &str) -> &str {
    let from = text.len().saturating_sub(1024);
    text.char_indices()
        .rev()
        .take_while(|&(i, _)| i >= from)
        .find(|&(_, c)| c.is_whitespace())
        .map_or(text, |(i, _)| &text[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_cut_at_a_space_near_the_end() {
        assert_eq!(cut_at_space("one two three"), "one two");
        assert_eq!(cut_at_space("nospace"), "nospace");
        let long = format!("a {}", "x".repeat(2000));
        assert_eq!(cut_at_space(&long), long, "no space in the last 1 KiB");
    }
}
