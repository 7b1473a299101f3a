//! One detection request as every front-end receives it (a JSON line of `greenmark detect`,
//! a body of `POST /v1/detect`): a text or its token ids, after a prompt given as text or
//! ids, scored whole or by span search under a [`Keyring`]. One function turns it into the
//! one result model ([`Scored`]), so the CLI and the service cannot read a request two ways.
//!
//! ```
//! use greenmark::text::{Query, Source, TextDetector};
//! use greenmark::{Detector, Key, Keyring, WatermarkConfig};
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/smollm2-tokenizer.json");
//! let key = Key::from_bytes([7; 32]);
//! let config = WatermarkConfig::new(49152)?;
//! let text = TextDetector::from_file(path.as_ref(), &key, config.clone())?;
//! let keyring = Keyring::new(vec![Detector::new(&key, config)])?;
//! let query = Query::new(Source::Text("The tide came in over the flats."))
//!     .with_prompt(Source::Text("Tell me about the sea."));
//! let answer = query.score(&keyring, Some(&text))?;
//! assert_eq!(answer.to_json(1e-6)["watermarked"], false);
//! assert!(answer.normalizations.is_some());
//! # Ok::<(), greenmark::Error>(())
//! ```

use super::{Applied, TextDetector};
use crate::detect::{Keyring, Scored, SpanOptions};
use crate::error::{Error, Result};

/// A text, or the token ids it was tokenized into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// Raw text: normalized and tokenized with the [`TextDetector`]'s tokenizer.
    Text(&'a str),
    /// Token ids, scored as they are.
    Ids(&'a [u32]),
}

/// What to score, after what, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query<'a> {
    /// The text to test.
    pub input: Source<'a>,
    /// What preceded it (a prompt): supplies the first windows, never scored.
    pub prompt: Option<Source<'a>>,
    /// Search for the most watermarked span instead of scoring the whole.
    pub span: Option<SpanOptions>,
}

/// A scored query: the result, and the ids it was computed on.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Answer {
    /// The result under every key.
    pub scored: Scored,
    /// The ids scored.
    pub ids: Vec<u32>,
    /// The prompt's ids.
    pub prompt: Vec<u32>,
    /// What normalization changed, when the input was text.
    pub normalizations: Option<Vec<Applied>>,
}

impl<'a> Query<'a> {
    /// A query for `input`, whole, without a prompt.
    pub fn new(input: Source<'a>) -> Query<'a> {
        Query {
            input,
            prompt: None,
            span: None,
        }
    }

    /// The same query after `prompt`.
    pub fn with_prompt(mut self, prompt: Source<'a>) -> Query<'a> {
        self.prompt = Some(prompt);
        self
    }

    /// The same query by span search.
    pub fn with_span(mut self, options: SpanOptions) -> Query<'a> {
        self.span = Some(options);
        self
    }

    /// Scores the query under `keyring`. Text (input or prompt) needs `text`, the detector
    /// whose tokenizer made the ids the keys were used on; ids need nothing more. Text that is
    /// empty once normalized is [`Error::EmptyText`].
    pub fn score(&self, keyring: &Keyring, text: Option<&TextDetector>) -> Result<Answer> {
        let tokenizer = || {
            text.ok_or_else(|| {
                Error::option(
                    "text",
                    "text needs a tokenizer: give token ids, or load the tokenizer",
                )
            })
        };
        let prompt = match self.prompt {
            None => Vec::new(),
            Some(Source::Ids(ids)) => ids.to_vec(),
            Some(Source::Text(prompt)) => tokenizer()?.encode(prompt)?,
        };
        let (ids, normalizations) = match self.input {
            Source::Ids(ids) => (ids.to_vec(), None),
            Source::Text(input) => {
                let tokens = tokenizer()?.tokens(input)?;
                (tokens.ids, Some(tokens.normalizations))
            }
        };
        let scored = keyring.score(&ids, &prompt, self.span)?;
        Ok(Answer {
            scored,
            ids,
            prompt,
            normalizations,
        })
    }
}

impl Answer {
    /// The record every front-end prints: [`Scored::to_json`], plus `normalizations` when
    /// the input was text.
    #[cfg(feature = "serde")]
    pub fn to_json(&self, threshold: f64) -> serde_json::Value {
        let mut record = self.scored.to_json(self.ids.len(), threshold);
        if let Some(applied) = &self.normalizations {
            record
                .as_object_mut()
                .expect("a record is an object")
                .insert("normalizations".into(), super::normalizations_json(applied));
        }
        record
    }
}
