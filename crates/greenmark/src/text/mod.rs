//! Detection on raw text: normalize, tokenize with the model's HF tokenizer, score.
//!
//! The text is normalized first ([`normalize`]: invisible characters removed, odd spaces
//! folded, NFC) so that edits a reader cannot see do not change the token ids; the
//! normalizations applied are reported with each detection. It is then tokenized without
//! special tokens, exactly as the model's answer would be re-tokenized.
//!
//! # Example
//! ```
//! use greenmark::text::TextDetector;
//! use greenmark::{Key, WatermarkConfig};
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/smollm2-tokenizer.json");
//! let key = Key::from_bytes([7; 32]);
//! let detector = TextDetector::from_file(path.as_ref(), &key, WatermarkConfig::new(49152)?)?;
//! let result = detector.detect("A sentence that nobody watermarked, written by hand.")?;
//! assert!(result.detection.p_value > 1e-6);
//! # Ok::<(), greenmark::Error>(())
//! ```

mod normalize;
mod query;

use std::io::BufRead;
use std::path::Path;

pub use normalize::{normalize, Applied, Normalized, FOLDED, NFC, REMOVED};
pub use query::{Answer, Query, Source};
pub use tokenizers::Tokenizer;

use crate::config::WatermarkConfig;
use crate::detect::{Detection, Detector, TokenScore};
use crate::error::{Error, Result};
use crate::key::Key;

/// Bytes per piece when a reader is streamed ([`TextDetector::detect_reader`]).
pub const CHUNK_BYTES: usize = 64 * 1024;
/// A piece with no safe cut point is cut at a character boundary once it reaches this size.
const MAX_PIECE_BYTES: usize = 1024 * 1024;

/// A detection on text, with the normalizations that were applied first.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct TextDetection {
    /// The statistics.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub detection: Detection,
    /// What normalization changed, with counts (empty for clean text).
    pub normalizations: Vec<Applied>,
}

/// A text's token ids as a detection scores them ([`TextDetector::tokens`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TextTokens {
    /// The ids of the normalized text (no special tokens).
    pub ids: Vec<u32>,
    /// What normalization changed, with counts.
    pub normalizations: Vec<Applied>,
}

/// One token of an annotated text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AnnotatedToken {
    /// Byte offset in [`TextAnnotation::normalized`] where the token's text starts.
    pub start: usize,
    /// Byte offset where it ends. Tokens that are parts of one character (byte-level BPE
    /// splits some emoji) share the character's span.
    pub end: usize,
    /// The token id.
    pub id: u32,
    /// How it scored.
    pub score: TokenScore,
}

/// A detection with one score per token, for visual reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TextAnnotation {
    /// The statistics.
    pub detection: Detection,
    /// The text that was tokenized (after normalization); token offsets point into it.
    pub normalized: String,
    /// What normalization changed.
    pub normalizations: Vec<Applied>,
    /// The tokens in order. Bytes between tokens (spaces the tokenizer's offsets leave out)
    /// belong to no token.
    pub tokens: Vec<AnnotatedToken>,
}

/// Detects a watermark in raw text with a model's tokenizer.
#[derive(Debug, Clone)]
pub struct TextDetector {
    tokenizer: Tokenizer,
    detector: Detector,
}

impl TextDetector {
    /// A detector for `key` and `config` that tokenizes with `tokenizer`. A tokenizer with
    /// more tokens than `config.vocab_size()` is refused: it cannot be the one the watermark
    /// was made with.
    pub fn new(tokenizer: Tokenizer, key: &Key, config: WatermarkConfig) -> Result<TextDetector> {
        config.check_tokenizer_vocab(tokenizer.get_vocab_size(true))?;
        Ok(TextDetector {
            tokenizer,
            detector: Detector::new(key, config),
        })
    }

    /// [`TextDetector::new`] with a `tokenizer.json` read from `path`.
    pub fn from_file(path: &Path, key: &Key, config: WatermarkConfig) -> Result<TextDetector> {
        TextDetector::new(load_tokenizer_json(path)?, key, config)
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The token-id detector.
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// Normalizes `text` and returns its token ids (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        encode_normalized(&self.tokenizer, text)
    }

    fn encode_normalized(&self, text: &str) -> Result<tokenizers::Encoding> {
        tokenize(&self.tokenizer, text)
    }

    /// The token ids a detection of `text` scores, with the normalizations applied first:
    /// for callers that score the ids themselves (several keys, span search). Text that is
    /// empty once normalized (only whitespace and invisible characters) is
    /// [`Error::EmptyText`].
    pub fn tokens(&self, text: &str) -> Result<TextTokens> {
        let normalized = normalize_nonempty(text)?;
        let ids = self.encode_normalized(&normalized.text)?.get_ids().to_vec();
        Ok(TextTokens {
            ids,
            normalizations: normalized.applied,
        })
    }

    /// Detects the watermark in `text`. Text that is empty once normalized (only whitespace
    /// and invisible characters) is [`Error::EmptyText`].
    pub fn detect(&self, text: &str) -> Result<TextDetection> {
        self.detect_after(text, &[])
    }

    /// [`TextDetector::detect`] of a text that followed `prompt` (token ids, as
    /// [`TextDetector::encode`] gives them): the prompt supplies the windows of the first
    /// tokens and is not scored.
    pub fn detect_after(&self, text: &str, prompt: &[u32]) -> Result<TextDetection> {
        let tokens = self.tokens(text)?;
        Ok(TextDetection {
            detection: self.detector.detect(&tokens.ids, prompt)?,
            normalizations: tokens.normalizations,
        })
    }

    /// [`TextDetector::detect`] plus each token's span and score.
    pub fn annotate(&self, text: &str) -> Result<TextAnnotation> {
        self.annotate_with(&self.detector, text, &[])
    }

    /// [`TextDetector::annotate`] with another `detector` (one key of a keyring, say) and the
    /// ids of a `prompt` the text followed (they supply the first windows and are not
    /// scored). The detector must take this tokenizer's ids.
    pub fn annotate_with(
        &self,
        detector: &Detector,
        text: &str,
        prompt: &[u32],
    ) -> Result<TextAnnotation> {
        detector
            .config()
            .check_tokenizer_vocab(self.tokenizer.get_vocab_size(true))?;
        let normalized = normalize_nonempty(text)?;
        let encoding = self.encode_normalized(&normalized.text)?;
        let (detection, scores) = detector.annotate(encoding.get_ids(), prompt)?;
        let tokens = encoding
            .get_ids()
            .iter()
            .zip(encoding.get_offsets())
            .zip(scores)
            .map(|((&id, &(start, end)), score)| AnnotatedToken {
                start,
                end,
                id,
                score,
            })
            .collect();
        Ok(TextAnnotation {
            detection,
            normalized: normalized.text,
            normalizations: normalized.applied,
            tokens,
        })
    }

    /// Detects the watermark in a text read from `reader`, in pieces of about
    /// [`CHUNK_BYTES`], with memory bounded by the piece size and the dedup set (8 bytes per
    /// distinct tuple), whatever the input's size.
    ///
    /// Pieces are cut where byte-level BPE tokenizers (GPT-2 and Llama 3 style splits) never
    /// join tokens: right after a single line break between two characters that are not
    /// whitespace and that normalization keeps, else right before a space that follows such a
    /// character, so the ids equal those of the whole text (tested, also next to no-break and
    /// zero-width spaces).
    /// A piece with neither within 1 MiB is cut at a character boundary, which can change
    /// the one or two tokens around the cut. Invalid UTF-8 is [`Error::InvalidUtf8`] with
    /// the byte offset; an empty or whitespace-only input is [`Error::EmptyText`].
    pub fn detect_reader(&self, reader: impl BufRead) -> Result<TextDetection> {
        self.detect_reader_in(reader, CHUNK_BYTES)
    }

    fn detect_reader_in(&self, mut reader: impl BufRead, chunk: usize) -> Result<TextDetection> {
        let mut stream = self.detector.stream();
        let mut normalizations = Vec::new();
        let mut buf: Vec<u8> = Vec::with_capacity(2 * chunk);
        let mut offset = 0u64; // bytes of the input before `buf`
        let mut any_text = false;
        let mut eof = false;
        while !eof || !buf.is_empty() {
            while !eof && buf.len() < chunk {
                let data = reader.fill_buf().map_err(|e| Error::Io {
                    action: "read",
                    path: "the input".into(),
                    source: e,
                })?;
                if data.is_empty() {
                    eof = true;
                    break;
                }
                let n = data.len().min(chunk.saturating_sub(buf.len()).max(1));
                buf.extend_from_slice(&data[..n]);
                reader.consume(n);
            }
            let cut = if eof {
                buf.len()
            } else {
                match safe_cut(&buf) {
                    Some(cut) => cut,
                    None if buf.len() >= MAX_PIECE_BYTES => char_cut(&buf),
                    None => {
                        // Read more before cutting: the piece may grow up to MAX_PIECE_BYTES.
                        let target = (buf.len() * 2).min(MAX_PIECE_BYTES);
                        let mut more =
                            std::io::Read::take(&mut reader, (target - buf.len()) as u64);
                        let before = buf.len();
                        std::io::Read::read_to_end(&mut more, &mut buf).map_err(|e| Error::Io {
                            action: "read",
                            path: "the input".into(),
                            source: e,
                        })?;
                        eof = buf.len() == before;
                        continue;
                    }
                }
            };
            let piece = std::str::from_utf8(&buf[..cut]).map_err(|e| Error::InvalidUtf8 {
                offset: offset + e.valid_up_to() as u64,
            })?;
            let normalized = normalize(piece);
            any_text |= !normalized.text.trim().is_empty();
            normalize::merge(&mut normalizations, &normalized.applied);
            stream.feed(self.encode_normalized(&normalized.text)?.get_ids())?;
            buf.drain(..cut);
            offset += cut as u64;
        }
        if !any_text {
            return Err(Error::EmptyText);
        }
        Ok(TextDetection {
            detection: stream.finish(),
            normalizations,
        })
    }
}

/// [`normalize`], refusing a text that is empty once normalized (only whitespace and
/// invisible characters).
fn normalize_nonempty(text: &str) -> Result<Normalized> {
    let normalized = normalize(text);
    if normalized.text.trim().is_empty() {
        return Err(Error::EmptyText);
    }
    Ok(normalized)
}

/// A character that is not whitespace and that normalization keeps as it is: a piece may end
/// or start next to it without changing how the text around the cut is split.
fn plain(c: Option<char>) -> bool {
    c.is_some_and(|c| !c.is_whitespace() && !normalize::is_changed(c))
}

/// The character that starts at byte `i` of `buf` (`None` if not valid UTF-8 there).
fn char_at(buf: &[u8], i: usize) -> Option<char> {
    let end = buf.len().min(i + 4);
    (i + 1..=end).find_map(|j| std::str::from_utf8(&buf[i..j]).ok()?.chars().next())
}

/// The character that ends right before byte `i` of `buf`.
fn char_before(buf: &[u8], i: usize) -> Option<char> {
    (i.saturating_sub(4)..i)
        .rev()
        .find_map(|j| std::str::from_utf8(&buf[j..i]).ok()?.chars().next())
}

/// The last position where a byte-level BPE tokenization of `buf` splits anyway: after a
/// single `\n` between [`plain`] characters, else before a `' '` that follows a plain
/// character. (A run of line breaks at the end of a piece would become one token, `"\n\n"`,
/// where the whole text has two; a no-break space before a line break becomes a space, and
/// `" \n"` at the end of a piece is one pre-token where the whole text has two. Hence plain:
/// not whitespace, and unchanged by [`normalize`].) The cut bytes are ASCII, so the cut is on
/// a character boundary, and normalizing the two pieces gives the two halves of the whole
/// text normalized.
fn safe_cut(buf: &[u8]) -> Option<usize> {
    let after_newline = (2..buf.len())
        .rev()
        .find(|&p| buf[p - 1] == b'\n' && plain(char_at(buf, p)) && plain(char_before(buf, p - 1)));
    after_newline.or_else(|| {
        (1..buf.len())
            .rev()
            .find(|&p| buf[p] == b' ' && plain(char_before(buf, p)))
    })
}

/// The last UTF-8 character boundary in `buf` (not 0 unless `buf` is tiny).
fn char_cut(buf: &[u8]) -> usize {
    (1..buf.len())
        .rev()
        .find(|&p| (buf[p] & 0xC0) != 0x80)
        .unwrap_or(buf.len())
}

/// The normalizations that changed something, as the JSON every front-end prints:
/// `[{"what": ..., "count": ...}]` (the CLI's `--json`, the service).
#[cfg(feature = "serde")]
pub fn normalizations_json(applied: &[Applied]) -> serde_json::Value {
    applied
        .iter()
        .filter(|a| a.count > 0)
        .map(|a| serde_json::json!({"what": a.what, "count": a.count}))
        .collect()
}

/// Reads a `tokenizer.json`, naming the path in any error.
pub fn load_tokenizer_json(path: &Path) -> Result<Tokenizer> {
    Tokenizer::from_file(path)
        .map_err(|e| Error::Tokenizer(format!("could not read {}: {e}", path.display())))
}

/// Tokenizes already normalized `text` (no special tokens added).
fn tokenize(tokenizer: &Tokenizer, text: &str) -> Result<tokenizers::Encoding> {
    tokenizer
        .encode(text, false)
        .map_err(|e| Error::Tokenizer(format!("could not tokenize the text: {e}")))
}

/// Normalizes `text` and returns its token ids under `tokenizer` (no special tokens added):
/// [`TextDetector::encode`] without a detector.
pub(crate) fn encode_normalized(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    Ok(tokenize(tokenizer, &normalize(text).text)?
        .get_ids()
        .to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_fall_where_tokens_split() {
        assert_eq!(safe_cut(b"ab\ncd\n\nef"), Some(3));
        assert_eq!(safe_cut(b"ab\n\ncd\nef"), Some(7));
        assert_eq!(safe_cut(b"one two  three"), Some(7));
        assert_eq!(safe_cut(b"nospace"), None);
        assert_eq!(safe_cut(b"\n\n\n"), None);
        // Not next to characters that normalization removes or folds to a space.
        assert_eq!(safe_cut("x\u{00A0}\ny".as_bytes()), None);
        assert_eq!(safe_cut("x\n\u{200B}y".as_bytes()), None);
        assert_eq!(safe_cut("x\u{200B} y".as_bytes()), None);
        assert_eq!(safe_cut("é\nü".as_bytes()), Some(3));
        let s = "aé€😀".as_bytes();
        let c = char_cut(s);
        assert!(std::str::from_utf8(&s[..c]).is_ok() && c > 0);
    }

    fn detector() -> TextDetector {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/smollm2-tokenizer.json"
        );
        let config = WatermarkConfig::new(49152).unwrap();
        TextDetector::from_file(path.as_ref(), &Key::from_bytes([3; 32]), config).unwrap()
    }

    /// Seams next to characters that normalization removes or folds: the pieces must still
    /// tokenize as the whole text does.
    #[test]
    fn seams_next_to_invisible_or_odd_spaces_keep_the_ids() {
        let d = detector();
        for seam in [
            "x\u{00A0}\ny",
            "x \u{200B}\ny",
            "x\n\u{200B}\n\n y",
            "x\u{3000}\n1",
        ] {
            let text = format!("{}{seam} tail", "word ".repeat(40));
            let whole = d.detect(&text).unwrap();
            for chunk in [8, 16, 64, 203, 205, 207] {
                let streamed = d.detect_reader_in(text.as_bytes(), chunk).unwrap();
                assert_eq!(streamed, whole, "{seam:?} in pieces of {chunk}");
            }
        }
    }
}
