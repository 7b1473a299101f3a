//! Closed mode on raw text: the suspect's outputs, prompts and filter texts are normalized and
//! re-tokenized with the watermarking tokenizer ([`TextDetector::encode`]), so a suspect with
//! a different tokenizer (or only its text) can be tested.

use super::{Radioactivity, RadioactivityTest};
use crate::error::Result;
use crate::text::TextDetector;
use tokenizers::Tokenizer;

/// A [`RadioactivityTest`] fed with text.
///
/// ```
/// use greenmark::radioactivity::{ClosedTest, RadioactivityTest, TestOptions};
/// use greenmark::text::TextDetector;
/// use greenmark::{Key, WatermarkConfig};
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/smollm2-tokenizer.json");
/// let key = Key::from_bytes([7; 32]);
/// let config = WatermarkConfig::new(49152)?;
/// let text = TextDetector::from_file(path.as_ref(), &key, config.clone())?;
/// let test = RadioactivityTest::new(&[key], config, TestOptions::default())?;
/// let mut closed = ClosedTest::new(text, test);
/// closed.exclude_prompt("Tell me about the sea.")?;
/// closed.score("The sea is large, and it is full of water and of fish.")?;
/// let result = closed.finish();
/// assert!(result.keys[0].n_scored > 5);
/// # Ok::<(), greenmark::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClosedTest {
    tokenizer: Tokenizer,
    test: RadioactivityTest,
}

impl ClosedTest {
    /// Wraps `test`, tokenizing with `text`'s tokenizer and normalization (its key is not used).
    pub fn new(text: TextDetector, test: RadioactivityTest) -> ClosedTest {
        ClosedTest::from_tokenizer(text.tokenizer().clone(), test)
    }

    /// Wraps `test`, tokenizing with `tokenizer` after greenmark's text normalization (as
    /// [`TextDetector::encode`] does): for tests without a KGW key, e.g. the Gumbel tape.
    pub fn from_tokenizer(tokenizer: Tokenizer, test: RadioactivityTest) -> ClosedTest {
        ClosedTest { tokenizer, test }
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        crate::text::encode_normalized(&self.tokenizer, text)
    }

    /// Excludes the windows of a prompt (before the first scored text).
    pub fn exclude_prompt(&mut self, prompt: &str) -> Result<()> {
        let ids = self.encode(prompt)?;
        self.test.exclude_prompt(&ids)
    }

    /// Adds a text of the watermarked corpus to the filter (before the first scored text).
    pub fn add_filter_text(&mut self, text: &str) -> Result<()> {
        let ids = self.encode(text)?;
        self.test.add_filter_text(&ids)
    }

    /// Scores one output of the suspect.
    pub fn score(&mut self, output: &str) -> Result<()> {
        let ids = self.encode(output)?;
        self.test.score_text(&ids, &[])
    }

    /// The test being fed.
    pub fn test(&self) -> &RadioactivityTest {
        &self.test
    }

    /// The result so far.
    pub fn result(&self) -> Radioactivity {
        self.test.result()
    }

    /// The result.
    pub fn finish(self) -> Radioactivity {
        self.test.finish()
    }
}
