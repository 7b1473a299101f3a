//! Reading mode: the open-model radioactivity test on a GGUF suspect.
//!
//! Watermarked texts are fed to the suspect model; at each position its top-1 next-token
//! prediction is scored on a [`RadioactivityTest`] tape with the window taken from the input
//! text ([`RadioactivityTest::score_predictions`]). A model trained on text watermarked with
//! the key predicts green tokens after the windows it saw more often than chance.
//!
//! Texts run in batches position by position (candle's quantized llama returns the logits of
//! the last position only, so a multi-position pass would give one prediction per text).
//! Shorter texts of a batch are padded at their end; padding comes after every real position,
//! so with the causal mask it never changes a real prediction, and its predictions are
//! dropped.
//!
//! # Example
//! ```no_run
//! use greenmark::radioactivity::{RadioactivityTest, TestOptions};
//! use greenmark::{Key, WatermarkConfig};
//! use greenmark_lm::{reading::ReadingOptions, Lm};
//!
//! let mut suspect = Lm::load("suspect.gguf".as_ref())?;
//! let config = WatermarkConfig::new(suspect.vocab_size().into())?;
//! let mut test = RadioactivityTest::new(&[Key::load("key.hex")?], config, TestOptions::default())?;
//! let texts = vec![suspect.encode("A text that was watermarked with the key ...")?];
//! suspect.read_into(&mut test, &texts, &ReadingOptions::default(), &mut |_| {})?;
//! println!("log10 p = {}", test.finish().log10_p_value);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use candle_transformers::models::quantized_llama::MAX_SEQ_LEN;
use greenmark::radioactivity::RadioactivityTest;

use crate::error::{LmError, Result};
use crate::model::Lm;

/// Options of [`Lm::read_into`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadingOptions {
    /// Texts run through the model together (default 8).
    pub max_batch: usize,
    /// Tokens read from each text at most (default 512; at most the model's context, 4096).
    pub max_tokens_per_text: usize,
}

impl Default for ReadingOptions {
    fn default() -> Self {
        ReadingOptions {
            max_batch: 8,
            max_tokens_per_text: 512,
        }
    }
}

impl ReadingOptions {
    fn validate(&self) -> Result<()> {
        if self.max_batch == 0 {
            return Err(LmError::InvalidOption(
                "max_batch must be at least 1".into(),
            ));
        }
        if self.max_tokens_per_text == 0 || self.max_tokens_per_text > MAX_SEQ_LEN {
            return Err(LmError::InvalidOption(format!(
                "max_tokens_per_text must be between 1 and the model's context of {MAX_SEQ_LEN}, \
                 got {}",
                self.max_tokens_per_text
            )));
        }
        Ok(())
    }
}

impl Lm {
    /// The model's top-1 prediction after each prefix of each text: `out[t][j]` is the argmax
    /// of the next-token logits after `texts[t][..=j]`. Texts longer than
    /// `options.max_tokens_per_text` are cut to it. `progress(n)` is called with the number of
    /// text positions read after every step.
    pub fn top1_predictions(
        &mut self,
        texts: &[Vec<u32>],
        options: &ReadingOptions,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Vec<u32>>> {
        options.validate()?;
        let vocab = self.vocab_size();
        for (i, text) in texts.iter().enumerate() {
            if let Some(&bad) = text.iter().find(|&&t| t >= vocab) {
                return Err(LmError::InvalidOption(format!(
                    "text {i} has token id {bad}, but the model's vocabulary has {vocab} tokens: \
                     tokenize the texts with the suspect's tokenizer"
                )));
            }
        }
        let cut = |t: &Vec<u32>| t.len().min(options.max_tokens_per_text);
        // Similar lengths together: less padding.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| cut(&texts[i]));
        let mut out: Vec<Vec<u32>> = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(options.max_batch) {
            let len = chunk.iter().map(|&i| cut(&texts[i])).max().unwrap_or(0);
            for pos in 0..len {
                // Past its end a text is padded with its last token (or 0 if empty).
                let column: Vec<u32> = chunk
                    .iter()
                    .map(|&i| {
                        let t = &texts[i];
                        t.get(pos.min(cut(t).saturating_sub(1)))
                            .copied()
                            .unwrap_or(0)
                    })
                    .collect();
                let rows = self.forward_column(column, pos);
                let rows = match rows {
                    Ok(rows) => rows,
                    Err(e) => {
                        self.clear_kv_cache();
                        return Err(e);
                    }
                };
                let mut read = 0;
                for (&i, row) in chunk.iter().zip(&rows) {
                    if pos < cut(&texts[i]) {
                        out[i].push(argmax(row));
                        read += 1;
                    }
                }
                progress(read);
            }
            self.clear_kv_cache();
        }
        Ok(out)
    }

    /// Reads `texts` (ids of this model's tokenizer, which must be the watermarking one) and
    /// scores the model's top-1 predictions on `test`'s tape.
    pub fn read_into(
        &mut self,
        test: &mut RadioactivityTest,
        texts: &[Vec<u32>],
        options: &ReadingOptions,
        progress: &mut dyn FnMut(usize),
    ) -> Result<()> {
        let want = test.vocab_size();
        if want != self.vocab_size() {
            return Err(LmError::InvalidOption(format!(
                "the watermark config is for {want} tokens but the suspect model has {}: reading \
                 mode needs a suspect with the watermarking tokenizer (use closed mode otherwise)",
                self.vocab_size()
            )));
        }
        let predictions = self.top1_predictions(texts, options, progress)?;
        for (text, preds) in texts.iter().zip(&predictions) {
            test.score_predictions(&text[..preds.len()], preds)?;
        }
        Ok(())
    }
}

/// Index of the largest logit (the first on ties; NaN never wins).
fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] || row[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5, 0.1]), 1);
        assert_eq!(argmax(&[-1.0]), 0);
    }
}
