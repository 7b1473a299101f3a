//! A tiny neural student for the radioactivity experiment: a small causal transformer trained
//! here on the CPU, with candle, on a teacher's answers.
//!
//! The question of a radioactivity test is whether a model *trained* on watermarked text
//! inherits the watermark. Count n-gram students show it for memorizing models; this student
//! shows it for a network that learns by gradient descent. It is GPT-2 in miniature:
//!
//! - token + learned position embeddings (`context` positions), `layers` pre-norm blocks
//!   (causal multi-head attention, ReLU MLP), a final layer norm, and the output layer tied to
//!   the token embedding;
//! - trained with AdamW on the mean next-token cross-entropy over the corpus, packed into one
//!   stream (texts separated by a boundary token) and cut into windows of `context` tokens at
//!   a random offset each epoch; linear warm-up, then cosine decay of the learning rate;
//! - its vocabulary is the set of teacher-tokenizer ids seen in training ([`StudentVocab`]), so
//!   it reads and writes the teacher's ids (SmolLM2's) while its embedding stays small;
//! - deterministic given [`StudentConfig::seed`] (own ChaCha8 initialization and batch order;
//!   candle's CPU kernels are deterministic for a given thread count), and saved to one
//!   safetensors file with its vocabulary and config.
//!
//! Defaults (`StudentConfig::default()`): d_model 64, 4 heads, 2 blocks, MLP 256, context 128,
//! batch 4 windows (512 tokens a step), 40 epochs, peak learning rate 2e-2, weight decay 0.01,
//! gradients clipped to a global norm of 1.
//! With the 5,742 ids of the real teacher's 21k-token corpus this is about 476k parameters.
//!
//! Performance and tuning notes (one core, 21k training tokens of the real teacher, window-1
//! watermarked answers): d_model 128 / MLP 512 / lr 3e-3 / batch 16 x 128 trained at ~4.6k
//! tokens/s and stayed near the unigram loss (7.1 nats) after 20 epochs (6.95), and its
//! students were not radioactive (closed log10 p -0.3). Smaller steps and a higher rate
//! memorize: d_model 64, batch 4 x 128, lr 2e-2 trains at ~7k tokens/s, its loss falls from
//! 7.8 (first epoch) to 1.5 by epoch 36, and its student is detected (closed -1152, open
//! -2674 at 100% watermarked data).
//!
//! # Example
//! ```
//! use greenmark_experiments::student::{Student, StudentConfig};
//!
//! // A corpus that alternates two tokens: the student learns to continue it.
//! let corpus: Vec<Vec<u32>> = (0..8).map(|_| [5u32, 9].repeat(12)).collect();
//! let mut config = StudentConfig::default();
//! config.base_vocab_size = 16;
//! config.context = 16;
//! config.d_model = 16;
//! config.heads = 2;
//! config.mlp = 32;
//! config.epochs = 30;
//! let student = Student::train(&corpus, &config, &mut |_| {})?;
//! assert_eq!(student.top1_predictions(&[5, 9, 5])?, vec![9, 5, 9]);
//! let texts = student.generate(3, 6, 0.0, 1)?;
//! assert_eq!(texts.len(), 3);
//! assert!(texts.iter().all(|t| t.len() <= 6 && t.iter().all(|&id| id == 5 || id == 9)));
//! # Ok::<(), greenmark_lm::LmError>(())
//! ```

mod loss;
mod net;
#[cfg(test)]
mod tests;
mod vocab;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use vocab::StudentVocab;
use vocab::{BOUNDARY, FIRST, UNKNOWN};

use greenmark_lm::{LmError, Result};

/// An [`LmError::Io`] for `path`.
fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> LmError {
    LmError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The format tag saved with a student.
const FORMAT: &str = "greenmark-student/v1";
/// The tensor holding the student's config (JSON bytes) in its safetensors file.
const CONFIG_TENSOR: &str = "student.config";
/// The tensor holding the student's vocabulary (base ids, u32) in its safetensors file.
const VOCAB_TENSOR: &str = "student.vocab";
/// Sequences generated together.
const GENERATE_BATCH: usize = 256;

/// The student's architecture and training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StudentConfig {
    /// The size of the teacher tokenizer's vocabulary: every id the student reads or writes is
    /// below it (49,152 for SmolLM2).
    pub base_vocab_size: u32,
    /// Positions the student sees at once (the length of a training window; generated texts
    /// are at most `context - 1` tokens, after the boundary token).
    pub context: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Attention heads (must divide `d_model`).
    pub heads: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Width of each block's MLP.
    pub mlp: usize,
    /// Whether the output layer is the token embedding (GPT-2's choice, the default) or a
    /// matrix of its own. Measured on the real teacher corpus (21k tokens, 20 epochs): tied
    /// reached a training loss of 5.82 nats, untied 6.56 (the tied embedding learns from both
    /// ends).
    pub tie_embeddings: bool,
    /// Windows per optimizer step.
    pub batch: usize,
    /// Passes over the training corpus.
    pub epochs: usize,
    /// Peak learning rate of AdamW (after a linear warm-up over the first 5% of the steps,
    /// cosine decay to a tenth of it).
    pub learning_rate: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Largest global L2 norm of a step's gradient: a larger gradient is scaled down to it
    /// before the update (GPT-2's clipping); `0` turns clipping off. Without it, one
    /// 671-prompt training at the peak rate 2e-2 took a spike it never recovered from (its
    /// loss stalled at 6.1 nats, the unigram level, while its siblings reached 3.4).
    #[serde(default)]
    pub grad_clip: f64,
    /// Seeds the initial weights and the order of the training windows.
    pub seed: u64,
}

impl Default for StudentConfig {
    fn default() -> Self {
        StudentConfig {
            base_vocab_size: 49152,
            context: 128,
            d_model: 64,
            heads: 4,
            layers: 2,
            mlp: 256,
            tie_embeddings: true,
            batch: 4,
            epochs: 40,
            learning_rate: 2e-2,
            weight_decay: 0.01,
            grad_clip: 1.0,
            seed: 0,
        }
    }
}

impl StudentConfig {
    /// Checks every field; [`LmError::InvalidOption`] says which is out of range.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(LmError::InvalidOption(format!("student config: {what}")));
        if self.base_vocab_size == 0 {
            return bad(
                "base_vocab_size is 0: give the teacher tokenizer's vocabulary size".into(),
            );
        }
        if !(2..=4096).contains(&self.context) {
            return bad(format!("context {} is not in 2..=4096", self.context));
        }
        for (name, v) in [
            ("d_model", self.d_model),
            ("heads", self.heads),
            ("layers", self.layers),
            ("mlp", self.mlp),
            ("batch", self.batch),
            ("epochs", self.epochs),
        ] {
            if v == 0 {
                return bad(format!("{name} is 0: it must be at least 1"));
            }
        }
        if !self.d_model.is_multiple_of(self.heads) {
            return bad(format!(
                "d_model {} is not a multiple of heads {}",
                self.d_model, self.heads
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!(
                "learning_rate {} must be positive and finite",
                self.learning_rate
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!(
                "weight_decay {} must be at least 0 and finite",
                self.weight_decay
            ));
        }
        if !(self.grad_clip.is_finite() && self.grad_clip >= 0.0) {
            return bad(format!(
                "grad_clip {} must be at least 0 (0: no clipping) and finite",
                self.grad_clip
            ));
        }
        Ok(())
    }
}

/// One optimizer step of [`Student::train`], reported as it happens.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct TrainProgress {
    /// Steps done (1-based).
    pub step: usize,
    /// Steps in the whole training run.
    pub steps: usize,
    /// The epoch of this step (0-based).
    pub epoch: usize,
    /// Mean cross-entropy (nats per token) of this step's batch, before the update.
    pub loss: f32,
    /// Training tokens (predicted positions) processed so far.
    pub tokens: usize,
    /// Time since training began.
    pub elapsed: Duration,
}

/// A trained student: a tiny causal transformer over a teacher tokenizer's ids.
pub struct Student {
    config: StudentConfig,
    vocab: StudentVocab,
    /// Parameters by name (detached from training), in [`net::parameter_shapes`] order.
    parameters: Vec<(String, Tensor)>,
    net: net::Net,
}

impl std::fmt::Debug for Student {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Student")
            .field("config", &self.config)
            .field("vocab", &self.vocab.len())
            .field("parameters", &self.parameter_count())
            .finish()
    }
}

impl Student {
    /// Trains a student on `corpus` (texts of teacher-tokenizer ids), reporting each step.
    ///
    /// Fails with [`LmError::InvalidOption`] for a bad config and [`LmError::InvalidInput`] for
    /// an empty corpus, an id outside `config.base_vocab_size`, or a corpus shorter than one
    /// training window (`context + 1` tokens, counting one boundary per text).
    pub fn train(
        corpus: &[Vec<u32>],
        config: &StudentConfig,
        progress: &mut dyn FnMut(TrainProgress),
    ) -> Result<Student> {
        config.validate()?;
        let vocab = StudentVocab::from_corpus(corpus, config.base_vocab_size)?;
        let mut stream = Vec::with_capacity(corpus.iter().map(|t| t.len() + 1).sum::<usize>() + 1);
        for text in corpus {
            stream.push(BOUNDARY);
            stream.extend(text.iter().map(|&id| vocab.student_id(id)));
        }
        stream.push(BOUNDARY);
        let t = config.context;
        if stream.len() < t + 1 {
            return Err(LmError::InvalidInput(format!(
                "the training corpus is {} tokens with its text boundaries, shorter than one \
                 training window of context + 1 = {}: give more text or a smaller context",
                stream.len(),
                t + 1
            )));
        }

        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let init = net::initial_parameters(config, vocab.len(), rng.gen())?;
        let vars: Vec<(String, Var)> = init
            .into_iter()
            .map(|(name, t)| Ok((name, Var::from_tensor(&t)?)))
            .collect::<candle_core::Result<_>>()?;
        let lookup: HashMap<&str, &Var> = vars.iter().map(|(n, v)| (n.as_str(), v)).collect();
        let net = net::Net::new(config, &|name| Ok(lookup[name].as_tensor().clone()))?;
        let mut optimizer = AdamW::new(
            vars.iter().map(|(_, v)| v.clone()).collect(),
            ParamsAdamW {
                lr: config.learning_rate,
                weight_decay: config.weight_decay,
                ..ParamsAdamW::default()
            },
        )?;

        // Every epoch's windows, fixed up front so the schedule knows the number of steps.
        let plan: Vec<Vec<usize>> = (0..config.epochs)
            .map(|_| {
                let offset = rng.gen_range(0..t).min(stream.len() - t - 1);
                let mut starts: Vec<usize> = (offset..=stream.len() - t - 1).step_by(t).collect();
                starts.shuffle(&mut rng);
                starts
            })
            .collect();
        let steps: usize = plan.iter().map(|s| s.len().div_ceil(config.batch)).sum();
        let warmup = (steps / 20).max(1);
        let began = Instant::now();
        let (mut step, mut tokens) = (0, 0);
        for (epoch, starts) in plan.iter().enumerate() {
            for batch in starts.chunks(config.batch) {
                let lr = schedule(config.learning_rate, step, warmup, steps);
                optimizer.set_learning_rate(lr);
                let mut inputs = Vec::with_capacity(batch.len() * t);
                let mut targets = Vec::with_capacity(batch.len() * t);
                for &s in batch {
                    inputs.extend_from_slice(&stream[s..s + t]);
                    targets.extend_from_slice(&stream[s + 1..s + t + 1]);
                }
                let inputs = net::ids_tensor(inputs, batch.len(), t)?;
                let loss = net.loss(&inputs, targets)?;
                let value = net::scalar(&loss)?;
                if !value.is_finite() {
                    return Err(LmError::InvalidOption(format!(
                        "training diverged at step {} (loss {value}): lower learning_rate",
                        step + 1
                    )));
                }
                let mut grads = loss.backward()?;
                clip_gradients(&mut grads, &vars, config.grad_clip)?;
                optimizer.step(&grads)?;
                step += 1;
                tokens += batch.len() * t;
                progress(TrainProgress {
                    step,
                    steps,
                    epoch,
                    loss: value,
                    tokens,
                    elapsed: began.elapsed(),
                });
            }
        }
        let parameters = vars
            .into_iter()
            .map(|(name, v)| (name, v.as_detached_tensor()))
            .collect();
        Student::assemble(config.clone(), vocab, parameters)
    }

    fn assemble(
        config: StudentConfig,
        vocab: StudentVocab,
        parameters: Vec<(String, Tensor)>,
    ) -> Result<Student> {
        let lookup: HashMap<&str, &Tensor> =
            parameters.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let net = net::Net::new(&config, &|name| Ok(lookup[name].clone()))?;
        Ok(Student {
            config,
            vocab,
            parameters,
            net,
        })
    }

    /// The config it was trained with.
    pub fn config(&self) -> &StudentConfig {
        &self.config
    }

    /// Its vocabulary (the teacher ids it knows).
    pub fn vocab(&self) -> &StudentVocab {
        &self.vocab
    }

    /// The number of trained parameters.
    pub fn parameter_count(&self) -> usize {
        self.parameters.iter().map(|(_, t)| t.elem_count()).sum()
    }

    /// `n` texts of at most `len` tokens each (teacher ids), sampled from the boundary token on
    /// at `temperature` (0: greedy), seeded. A text ends early where the student writes the
    /// boundary (the end of an answer); it never writes an id it did not see in training.
    ///
    /// Fails with [`LmError::InvalidOption`] if `len >= context` (the student has positions
    /// for `context` tokens, the boundary included) or the temperature is negative or not
    /// finite.
    pub fn generate(
        &self,
        n: usize,
        len: usize,
        temperature: f64,
        seed: u64,
    ) -> Result<Vec<Vec<u32>>> {
        if len >= self.config.context {
            return Err(LmError::InvalidOption(format!(
                "texts of {len} tokens do not fit the student's context of {} (the boundary \
                 token included): ask for at most {}",
                self.config.context,
                self.config.context - 1
            )));
        }
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(LmError::InvalidOption(format!(
                "temperature {temperature} must be at least 0 and finite"
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut texts = Vec::with_capacity(n);
        let mut weights = Vec::with_capacity(self.vocab.len());
        let mut left = n;
        while left > 0 {
            let b = left.min(GENERATE_BATCH);
            left -= b;
            let mut cache = self.net.empty_cache();
            let mut current = vec![BOUNDARY; b];
            let mut out = vec![Vec::with_capacity(len); b];
            let mut open = vec![true; b];
            for pos in 0..len {
                let ids = net::ids_tensor(current.clone(), b, 1)?;
                let h = self.net.hidden(&ids, pos, Some(&mut cache))?;
                let logits = net::rows(&self.net.logits(&h.reshape((b, self.config.d_model))?)?)?;
                for (i, row) in logits.iter().enumerate() {
                    if !open[i] {
                        continue;
                    }
                    // The first token cannot end the text; "unknown" is never written.
                    let first = if pos == 0 { FIRST } else { BOUNDARY };
                    let s = sample(row, first, temperature, &mut weights, &mut rng);
                    match self.vocab.base_id(s) {
                        Some(id) => out[i].push(id),
                        None => open[i] = false,
                    }
                    current[i] = s;
                }
                if !open.iter().any(|&o| o) {
                    break;
                }
            }
            texts.extend(out);
        }
        Ok(texts)
    }

    /// Reading mode: the student's top-1 next token (a teacher id) after each prefix
    /// `input[..=j]`, one per input position, the input read after the boundary token.
    ///
    /// Ids the student never saw read as "unknown"; predictions are over the ids it knows
    /// (never the boundary). Beyond its context, the input is read in windows of `context`
    /// tokens that advance by half a context, so every prediction sees at least half a
    /// context of history.
    ///
    /// Fails with [`LmError::InvalidInput`] on an id outside the base vocabulary.
    pub fn top1_predictions(&self, input: &[u32]) -> Result<Vec<u32>> {
        if input.is_empty() {
            return Ok(Vec::new());
        }
        let mut seq = Vec::with_capacity(input.len() + 1);
        seq.push(BOUNDARY);
        seq.extend(self.vocab.encode(input)?);
        let c = self.config.context;
        let stride = (c / 2).max(1);
        let mut out = Vec::with_capacity(input.len());
        // Windows [s, s + c) of seq; each yields the predictions after positions
        // `from..s + c` (the first window: all of them).
        let mut s = 0;
        loop {
            let end = (s + c).min(seq.len());
            let from = if s == 0 { 1 } else { s + c - stride };
            let ids = net::ids_tensor(seq[s..end].to_vec(), 1, end - s)?;
            let h = self.net.hidden(&ids, 0, None)?;
            let h = h.reshape((end - s, self.config.d_model))?;
            let h = h.narrow(0, from - s, end - from)?;
            for row in net::rows(&self.net.logits(&h)?)? {
                let best = argmax(&row[FIRST as usize..]) as u32 + FIRST;
                out.push(self.vocab.base_id(best).expect("a known student id"));
            }
            if end == seq.len() {
                break;
            }
            s += stride;
        }
        debug_assert_eq!(out.len(), input.len());
        Ok(out)
    }

    /// Saves the student (weights, vocabulary, config) to one safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors: HashMap<String, Tensor> = self.parameters.iter().cloned().collect();
        let header = serde_json::json!({ "format": FORMAT, "config": self.config });
        let bytes = serde_json::to_vec(&header).expect("a config serializes");
        let n = bytes.len();
        tensors.insert(
            CONFIG_TENSOR.into(),
            Tensor::from_vec(bytes, n, &Device::Cpu)?,
        );
        let ids = self.vocab.ids().to_vec();
        let n = ids.len();
        tensors.insert(VOCAB_TENSOR.into(), Tensor::from_vec(ids, n, &Device::Cpu)?);
        candle_core::safetensors::save(&tensors, path)
            .map_err(|e| io_error("write", path, std::io::Error::other(e.to_string())))
    }

    /// Loads a student saved by [`Student::save`].
    ///
    /// Fails with [`LmError::Io`] if the file cannot be read and [`LmError::Corrupt`] if it is
    /// not a student of this format.
    pub fn load(path: &Path) -> Result<Student> {
        std::fs::metadata(path).map_err(|e| io_error("read", path, e))?;
        let corrupt = |message: String| LmError::Corrupt {
            path: path.to_path_buf(),
            message,
        };
        let mut tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| corrupt(format!("not a safetensors file ({e})")))?;
        let header = tensors
            .remove(CONFIG_TENSOR)
            .ok_or_else(|| corrupt(format!("no {CONFIG_TENSOR:?}: not a greenmark student")))?;
        let header: serde_json::Value = header
            .to_dtype(DType::U8)
            .and_then(|t| t.to_vec1::<u8>())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| corrupt(format!("{CONFIG_TENSOR:?} is not JSON")))?;
        if header["format"] != FORMAT {
            return Err(corrupt(format!(
                "format {}, expected {FORMAT:?}",
                header["format"]
            )));
        }
        let config: StudentConfig = serde_json::from_value(header["config"].clone())
            .map_err(|e| corrupt(format!("bad config: {e}")))?;
        config
            .validate()
            .map_err(|e| corrupt(format!("bad config: {e}")))?;
        let ids = tensors
            .remove(VOCAB_TENSOR)
            .ok_or_else(|| corrupt(format!("no {VOCAB_TENSOR:?}")))?
            .to_vec1::<u32>()
            .map_err(|e| corrupt(format!("{VOCAB_TENSOR:?} is not u32 ids ({e})")))?;
        let vocab = StudentVocab::from_ids(ids, config.base_vocab_size).map_err(&corrupt)?;
        let mut parameters = Vec::new();
        for (name, shape) in net::parameter_shapes(&config, vocab.len()) {
            let t = tensors
                .remove(&name)
                .ok_or_else(|| corrupt(format!("no tensor {name:?}")))?;
            if t.dims() != shape.as_slice() || t.dtype() != DType::F32 {
                return Err(corrupt(format!(
                    "tensor {name:?} is {:?} {:?}, expected F32 {shape:?}",
                    t.dtype(),
                    t.dims()
                )));
            }
            parameters.push((name, t));
        }
        if let Some(extra) = tensors.keys().next() {
            return Err(corrupt(format!("unexpected tensor {extra:?}")));
        }
        Student::assemble(config, vocab, parameters)
    }
}

/// Scales the gradients of `vars` down so that their global L2 norm is at most `max_norm`
/// (nothing to do when it already is, or when `max_norm` is 0).
fn clip_gradients(
    grads: &mut candle_core::backprop::GradStore,
    vars: &[(String, Var)],
    max_norm: f64,
) -> Result<()> {
    if max_norm == 0.0 {
        return Ok(());
    }
    let mut squares = 0f64;
    for (_, var) in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            squares += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
    }
    let norm = squares.sqrt();
    if norm > max_norm {
        let scale = max_norm / norm;
        for (_, var) in vars {
            if let Some(g) = grads.remove(var.as_tensor()) {
                grads.insert(var.as_tensor(), g.affine(scale, 0.0)?);
            }
        }
    }
    Ok(())
}

/// The learning rate at `step` (0-based): linear warm-up to `peak`, then cosine decay to
/// `peak / 10` at the last step.
fn schedule(peak: f64, step: usize, warmup: usize, steps: usize) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = (steps - warmup).max(1) as f64;
    let progress = (step - warmup) as f64 / span;
    peak * (0.1 + 0.45 * (1.0 + (std::f64::consts::PI * progress).cos()))
}

/// The index of the largest value (the first on ties).
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Samples a student id `>= first`, never [`UNKNOWN`], from logits at `temperature`
/// (0: the argmax). `weights` is scratch.
fn sample(
    logits: &[f32],
    first: u32,
    temperature: f64,
    weights: &mut Vec<f64>,
    rng: &mut impl Rng,
) -> u32 {
    let allowed = |i: usize| i as u32 >= first && i as u32 != UNKNOWN;
    if temperature == 0.0 {
        let mut best: Option<usize> = None;
        for (i, &v) in logits.iter().enumerate() {
            if allowed(i) && best.is_none_or(|b| v > logits[b]) {
                best = Some(i);
            }
        }
        return best.expect("at least one real token") as u32;
    }
    let max = logits
        .iter()
        .enumerate()
        .filter(|&(i, _)| allowed(i))
        .map(|(_, &v)| v)
        .fold(f32::NEG_INFINITY, f32::max);
    weights.clear();
    weights.extend(logits.iter().enumerate().map(|(i, &v)| {
        if allowed(i) {
            ((f64::from(v) - f64::from(max)) / temperature).exp()
        } else {
            0.0
        }
    }));
    let total: f64 = weights.iter().sum();
    let mut u = rng.gen::<f64>() * total;
    for (i, &w) in weights.iter().enumerate() {
        if u < w {
            return i as u32;
        }
        u -= w;
    }
    // Rounding left `u` past the end: the last allowed id.
    (0..logits.len())
        .rev()
        .find(|&i| allowed(i) && weights[i] > 0.0)
        .expect("at least one real token") as u32
}
