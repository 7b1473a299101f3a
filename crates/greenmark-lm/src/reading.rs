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
        let mut out: Vec<Vec<u32>> = vec![Vec::new(); texts.len()];
        self.each_position(texts, options.max_batch, cut, progress, &mut |i, _, row| {
            out[i].push(argmax(row));
        })?;
        Ok(out)
    }

    /// The model's natural-log probability of each token of each text after its prompt:
    /// `out[t][j]` is `ln P(texts[t].1[j] | texts[t].0, texts[t].1[..j])`, so `-mean(out[t])`
    /// is the log-perplexity of the text given its prompt. Prompt and text together are cut to
    /// `options.max_tokens_per_text` tokens. An evaluation's oracle model scores texts with it.
    pub fn token_ln_probs(
        &mut self,
        texts: &[(Vec<u32>, Vec<u32>)],
        options: &ReadingOptions,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Vec<f64>>> {
        options.validate()?;
        let vocab = self.vocab_size();
        let seqs: Vec<Vec<u32>> = texts
            .iter()
            .map(|(prompt, ids)| [prompt.as_slice(), ids].concat())
            .collect();
        for (i, (prompt, ids)) in texts.iter().enumerate() {
            if prompt.is_empty() {
                return Err(LmError::InvalidOption(format!(
                    "text {i} has an empty prompt: the first token needs a context to be \
                     scored (give at least the chat template's opening)"
                )));
            }
            if let Some(&bad) = prompt.iter().chain(ids).find(|&&t| t >= vocab) {
                return Err(LmError::InvalidOption(format!(
                    "text {i} has token id {bad}, but the model's vocabulary has {vocab} tokens"
                )));
            }
        }
        // The last position predicts nothing inside the text: read one fewer.
        let cut = |t: &Vec<u32>| t.len().min(options.max_tokens_per_text).saturating_sub(1);
        let mut out: Vec<Vec<f64>> = vec![Vec::new(); texts.len()];
        self.each_position(
            &seqs,
            options.max_batch,
            cut,
            progress,
            &mut |i, pos, row| {
                if pos + 1 >= texts[i].0.len() {
                    out[i].push(log_softmax_at(row, seqs[i][pos + 1] as usize));
                }
            },
        )?;
        Ok(out)
    }

    /// Runs `texts` through the model position by position, in batches of similar lengths,
    /// calling `f(text, pos, logits)` with the next-token logits after `texts[text][..=pos]`
    /// for every `pos < cut(text)`. Past its end a text is padded with its last token; the
    /// causal mask keeps padding from changing a real position.
    fn each_position(
        &mut self,
        texts: &[Vec<u32>],
        max_batch: usize,
        cut: impl Fn(&Vec<u32>) -> usize,
        progress: &mut dyn FnMut(usize),
        f: &mut dyn FnMut(usize, usize, &[f32]),
    ) -> Result<()> {
        // Similar lengths together: less padding.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| cut(&texts[i]));
        for chunk in order.chunks(max_batch) {
            let len = chunk.iter().map(|&i| cut(&texts[i])).max().unwrap_or(0);
            for pos in 0..len {
                // Past its end a text is padded with its last token (or 0 if empty).
                let column: Vec<u32> = chunk
                    .iter()
                    .map(|&i| {
                        let t = &texts[i];
                        t.get(pos.min(t.len().saturating_sub(1)))
                            .copied()
                            .unwrap_or(0)
                    })
                    .collect();
                let rows = match self.forward_column(column, pos) {
                    Ok(rows) => rows,
                    Err(e) => {
                        self.clear_kv_cache();
                        return Err(e);
                    }
                };
                let mut read = 0;
                for (&i, row) in chunk.iter().zip(&rows) {
                    if pos < cut(&texts[i]) {
                        f(i, pos, row);
                        read += 1;
                    }
                }
                progress(read);
            }
            self.clear_kv_cache();
        }
        Ok(())
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

/// `ln softmax(row)[i]`, computed stably in f64.
fn log_softmax_at(row: &[f32], i: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    row[i] as f64 - max - sum.ln()
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

    #[test]
    fn log_softmax_matches_the_definition() {
        let row = [1.0f32, 2.0, 3.0, 1000.0];
        let z: f64 = row.iter().map(|&x| (x as f64 - 1000.0).exp()).sum();
        assert!((log_softmax_at(&row, 3) - (-z.ln())).abs() < 1e-12);
        let small = [0.5f32, -0.5];
        let p0 = 0.5f64.exp() / (0.5f64.exp() + (-0.5f64).exp());
        assert!((log_softmax_at(&small, 0) - p0.ln()).abs() < 1e-6);
    }
}
