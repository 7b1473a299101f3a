//! Incremental decoding: text deltas, token by token, that add up to the whole answer's text.

use tokenizers::Tokenizer;

use crate::error::{LmError, Result};

/// Turns generated token ids into text deltas whose concatenation is exactly the decoded text
/// of all the ids (special tokens left out, as [`crate::Lm::decode`]).
///
/// Each [`TextStream::push`] decodes the whole prefix and returns what it adds to the text
/// already given out. A token can end inside a character (byte-level BPE splits multi-byte
/// characters across tokens; the decoder shows the missing bytes as U+FFFD), so a tail that
/// ends in U+FFFD is held back until a later token completes it or [`TextStream::finish`]
/// gives out the rest. A decoded prefix that no longer starts with the text already given out
/// (a decoder that rewrites earlier text) holds everything back until it does again.
///
/// Performance: decoding the whole prefix is quadratic in the answer's length; at the service's
/// cap of a few hundred tokens it is a small part of a step (the model's forward pass is
/// milliseconds, one decode of 500 tokens tens of microseconds).
///
/// ```no_run
/// use greenmark_lm::{Lm, TextStream};
///
/// let lm = Lm::load_default(&mut |_| {})?;
/// let ids = lm.encode("naïve café ☕")?;
/// let mut stream = TextStream::new(lm.tokenizer());
/// let mut text = String::new();
/// for &id in &ids {
///     text.push_str(&stream.push(id)?);
/// }
/// text.push_str(&stream.finish()?);
/// assert_eq!(text, lm.decode(&ids)?);
/// # Ok::<(), greenmark_lm::LmError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TextStream<'t> {
    tokenizer: &'t Tokenizer,
    ids: Vec<u32>,
    given: String,
}

impl<'t> TextStream<'t> {
    /// An empty stream decoding with `tokenizer`.
    pub fn new(tokenizer: &'t Tokenizer) -> TextStream<'t> {
        TextStream {
            tokenizer,
            ids: Vec::new(),
            given: String::new(),
        }
    }

    /// Adds one token; returns the text it completes (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let text = self.decode()?;
        let stable = text.trim_end_matches(char::REPLACEMENT_CHARACTER);
        Ok(self.advance(stable))
    }

    /// Gives out everything not given out yet (the held-back tail included).
    pub fn finish(&mut self) -> Result<String> {
        let text = self.decode()?;
        Ok(self.advance(&text))
    }

    /// The token ids pushed so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// The text given out so far.
    pub fn text(&self) -> &str {
        &self.given
    }

    fn decode(&self) -> Result<String> {
        self.tokenizer
            .decode(&self.ids, true)
            .map_err(|e| LmError::Text {
                action: "decode",
                message: e.to_string(),
            })
    }

    /// The part of `text` after what was given out, when `text` extends it.
    fn advance(&mut self, text: &str) -> String {
        match text.strip_prefix(self.given.as_str()) {
            Some(delta) => {
                let delta = delta.to_string();
                self.given.push_str(&delta);
                delta
            }
            None => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2's tokenizer, kept with the core's test data.
    const SMOLLM2: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../greenmark/tests/data/smollm2-tokenizer.json"
    );

    fn decode(tokenizer: &Tokenizer, ids: &[u32]) -> String {
        tokenizer.decode(ids, true).unwrap()
    }

    #[test]
    fn deltas_add_up_to_the_decoded_text_for_every_prefix() {
        let tokenizer = Tokenizer::from_file(SMOLLM2).unwrap();
        let text = "Naïve café ☕ — 東京で寿司を食べた 🦀🦀 done.\n<|im_end|> after";
        let ids = tokenizer.encode(text, false).unwrap().get_ids().to_vec();
        assert!(ids.len() > 20);
        // Some token must end inside a character, or the hold-back is not exercised.
        assert!(
            (1..ids.len()).any(|n| decode(&tokenizer, &ids[..n]).ends_with('\u{FFFD}')),
            "no token splits a character"
        );
        for n in 1..=ids.len() {
            let mut stream = TextStream::new(&tokenizer);
            let mut joined = String::new();
            for &id in &ids[..n] {
                let delta = stream.push(id).unwrap();
                assert!(!delta.contains('\u{FFFD}'), "{delta:?}");
                joined.push_str(&delta);
                assert_eq!(joined, stream.text());
            }
            joined.push_str(&stream.finish().unwrap());
            assert_eq!(joined, decode(&tokenizer, &ids[..n]));
            assert_eq!(stream.ids(), &ids[..n]);
        }
    }

    #[test]
    fn an_unfinished_character_is_given_out_only_at_the_end() {
        let tokenizer = Tokenizer::from_file(SMOLLM2).unwrap();
        let ids = tokenizer.encode("🦀", false).unwrap().get_ids().to_vec();
        assert!(ids.len() >= 2, "{ids:?}");
        let mut stream = TextStream::new(&tokenizer);
        assert_eq!(stream.push(ids[0]).unwrap(), "");
        // Cut off mid-character, the rest comes out as the decoder writes it.
        assert!(stream.finish().unwrap().contains('\u{FFFD}'));
        let mut stream = TextStream::new(&tokenizer);
        let pushed: String = ids.iter().map(|&id| stream.push(id).unwrap()).collect();
        assert_eq!(pushed, "🦀");
        assert_eq!(stream.finish().unwrap(), "");
    }
}
