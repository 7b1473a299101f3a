//! An answer's text as it is generated: deltas safe to send, cut at the first stop string.

use std::ops::ControlFlow;

use greenmark_lm::{LmError, TextStream};
use tokenizers::Tokenizer;

/// The text of one answer, token by token. Every delta it gives out is final: the deltas add
/// up to the answer's text, cut before the first stop string, whether they are streamed or
/// collected (both ways go through here, so both give the same text). A tail that could be
/// the start of a stop string is held back until it is clear it is not.
#[derive(Debug)]
pub(crate) struct Output<'t> {
    text: TextStream<'t>,
    stops: Vec<String>,
    /// Decoded text that will not change (the stop string and after cut off).
    stable: String,
    /// How much of `stable` has been given out.
    sent: usize,
    /// Whether a stop string ended the answer.
    pub stopped: bool,
}

impl<'t> Output<'t> {
    pub fn new(tokenizer: &'t Tokenizer, stops: Vec<String>) -> Output<'t> {
        Output {
            text: TextStream::new(tokenizer),
            stops,
            stable: String::new(),
            sent: 0,
            stopped: false,
        }
    }

    /// Adds a token: the text now safe to give out, and whether the answer goes on.
    pub fn push(&mut self, id: u32) -> Result<(String, ControlFlow<()>), LmError> {
        let delta = self.text.push(id)?;
        self.stable.push_str(&delta);
        let flow = if self.cut_at_stop() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        };
        Ok((self.give(!self.stopped), flow))
    }

    /// Ends the answer: everything not given out yet.
    pub fn finish(&mut self) -> Result<String, LmError> {
        if !self.stopped {
            let rest = self.text.finish()?;
            self.stable.push_str(&rest);
            self.cut_at_stop();
        }
        Ok(self.give(false))
    }

    /// Cuts `stable` before the first stop string, if one occurs.
    fn cut_at_stop(&mut self) -> bool {
        let first = self.stops.iter().filter_map(|s| self.stable.find(s)).min();
        if let Some(at) = first {
            self.stable.truncate(at);
            self.stopped = true;
        }
        self.stopped
    }

    /// Gives out `stable` past what was sent, holding back (when `hold`) its longest tail that
    /// begins some stop string.
    fn give(&mut self, hold: bool) -> String {
        let end = if hold {
            self.stable[self.sent..]
                .char_indices()
                .map(|(i, _)| self.sent + i)
                .find(|&at| {
                    let tail = &self.stable[at..];
                    self.stops.iter().any(|s| s.starts_with(tail))
                })
                .unwrap_or(self.stable.len())
        } else {
            self.stable.len()
        };
        let delta = self.stable[self.sent..end].to_string();
        self.sent = end;
        delta
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

    /// The deltas of `text`'s tokens, and whether a stop string ended them.
    fn run(tokenizer: &Tokenizer, text: &str, stops: &[&str]) -> (Vec<String>, bool) {
        let ids = tokenizer.encode(text, false).unwrap().get_ids().to_vec();
        let mut out = Output::new(tokenizer, stops.iter().map(|s| s.to_string()).collect());
        let mut deltas = Vec::new();
        for id in ids {
            let (delta, flow) = out.push(id).unwrap();
            deltas.push(delta);
            if flow.is_break() {
                break;
            }
        }
        deltas.push(out.finish().unwrap());
        (deltas, out.stopped)
    }

    #[test]
    fn the_text_is_cut_before_the_first_stop_and_no_delta_holds_part_of_it() {
        let tokenizer = Tokenizer::from_file(SMOLLM2).unwrap();
        let text = "One fish, two fish. Red fish, blue fish. The end.";
        let (deltas, stopped) = run(&tokenizer, text, &["blue", "fish. R"]);
        assert!(stopped);
        assert_eq!(deltas.concat(), "One fish, two ");
        let (deltas, stopped) = run(&tokenizer, text, &["blue fish"]);
        assert!(stopped);
        assert_eq!(deltas.concat(), "One fish, two fish. Red fish, ");
        // A stop string that never completes is given out in the end.
        let (deltas, stopped) = run(&tokenizer, text, &[" end.!"]);
        assert!(!stopped);
        assert_eq!(deltas.concat(), text);
        assert!(deltas[..deltas.len() - 1].concat().len() < text.len() - 4);
        // No stops: every token's text goes out as soon as it is whole.
        let (deltas, stopped) = run(&tokenizer, "東京 🦀 ok", &[]);
        assert!(!stopped);
        assert_eq!(deltas.concat(), "東京 🦀 ok");
        assert_eq!(deltas.last().unwrap(), "");
    }
}
