//! A llama-architecture GGUF model on the CPU with candle, and its tokenizer.

use std::fs;
use std::io::BufReader;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::{ModelWeights, MAX_SEQ_LEN};
use greenmark::Watermarker;
use tokenizers::Tokenizer;

use crate::chat::{chat_text, ChatMessage, ChatRole};
use crate::error::{LmError, Result};
use crate::fetch::{self, FetchEvent};
use crate::sample::{GenerateOptions, Sampler};
use crate::tokenizer::tokenizer_from_gguf;

/// A loaded model: weights, tokenizer and the ids that end a turn.
#[derive(Debug)]
pub struct Lm {
    weights: ModelWeights,
    tokenizer: Tokenizer,
    vocab_size: u32,
    stop_ids: Vec<u32>,
    path: PathBuf,
    device: Device,
}

/// One prompt to answer, with or without a watermark.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The prompt's token ids (e.g. from [`Lm::chat_prompt`]).
    pub prompt: Vec<u32>,
    /// The watermark to apply at every step, if any.
    pub watermarker: Option<&'a Watermarker>,
    /// Gumbel-max watermarking instead (distortion-free; vLLM-compatible), if any: see
    /// [`Request::gumbel`].
    pub gumbel: Option<&'a greenmark::GumbelWatermarker>,
    /// SynthID Text instead (transformers' `SynthIDTextWatermarkLogitsProcessor`), if any:
    /// see [`Request::synthid`].
    pub synthid: Option<&'a greenmark::synthid::SynthIdWatermarker>,
}

impl<'a> Request<'a> {
    /// A request for `prompt`, watermarked when `watermarker` is given.
    pub fn new(prompt: Vec<u32>, watermarker: Option<&'a Watermarker>) -> Request<'a> {
        Request {
            prompt,
            watermarker,
            gumbel: None,
            synthid: None,
        }
    }

    /// A request for `prompt` sampled with the Gumbel-max watermark of `gumbel` (after
    /// temperature / top-k / top-p; greedy decoding is not watermarked, as in vLLM).
    pub fn gumbel(prompt: Vec<u32>, gumbel: &'a greenmark::GumbelWatermarker) -> Request<'a> {
        Request {
            prompt,
            watermarker: None,
            gumbel: Some(gumbel),
            synthid: None,
        }
    }

    /// A request for `prompt` watermarked with SynthID Text as transformers applies it: the
    /// tournament update after temperature / top-k / top-p, then a draw from the updated
    /// distribution (greedy decoding takes the argmax of the updated scores, as transformers'
    /// processor also runs without sampling). Detect on the generated ids.
    pub fn synthid(
        prompt: Vec<u32>,
        synthid: &'a greenmark::synthid::SynthIdWatermarker,
    ) -> Request<'a> {
        Request {
            prompt,
            watermarker: None,
            gumbel: None,
            synthid: Some(synthid),
        }
    }
}

/// One generated answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Generation {
    /// The prompt's token ids, as given.
    pub prompt: Vec<u32>,
    /// The generated ids, without the stop token.
    pub tokens: Vec<u32>,
    /// `tokens` decoded.
    pub text: String,
    /// Whether generation ended at a stop token (rather than at `max_new_tokens`).
    pub stopped: bool,
    /// Whether the caller ended it: its `on_token` returned [`ControlFlow::Break`]
    /// ([`Lm::generate_streaming`]).
    pub ended_by_caller: bool,
}

/// Where the time of a [`Lm::generate`] call went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct GenerateTimings {
    /// Decode steps run (one per new token after the first, per batch), summed over batches.
    pub steps: u64,
    /// Time in the prompts' forward passes (which also give the first token's logits).
    pub prefill: Duration,
    /// Time in the decode steps' forward passes.
    pub forward: Duration,
    /// Time in the watermark's `bias_batch`.
    pub watermark: Duration,
    /// Time sampling (softmax, top-k/top-p, draw).
    pub sampling: Duration,
}

impl Lm {
    /// Loads a llama-architecture GGUF and builds its tokenizer from the file's metadata.
    pub fn load(path: &Path) -> Result<Lm> {
        let file = fs::File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LmError::MissingModel {
                path: path.to_path_buf(),
                hint: "give the path of a llama-architecture .gguf file, or leave it out to use \
                       the default model"
                    .into(),
            },
            _ => LmError::io("open", path, e),
        })?;
        let corrupt = |e: candle_core::Error| LmError::Corrupt {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let mut reader = BufReader::new(file);
        let content = gguf_file::Content::read(&mut reader).map_err(corrupt)?;
        let tokenizer = tokenizer_from_gguf(&content)?;
        let vocab_size = content
            .metadata
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.to_vec().ok())
            .map(|tokens| tokens.len() as u32)
            .unwrap_or_else(|| tokenizer.get_vocab_size(true) as u32);
        let mut stop_ids: Vec<u32> = content
            .metadata
            .get("tokenizer.ggml.eos_token_id")
            .and_then(|v| v.to_u32().ok())
            .into_iter()
            .collect();
        stop_ids.extend(tokenizer.token_to_id("<|im_end|>"));
        stop_ids.sort_unstable();
        stop_ids.dedup();
        stop_ids.retain(|&t| t < vocab_size);
        let device = Device::Cpu;
        let weights = ModelWeights::from_gguf(content, &mut reader, &device).map_err(corrupt)?;
        Ok(Lm {
            weights,
            tokenizer,
            vocab_size,
            stop_ids,
            path: path.to_path_buf(),
            device,
        })
    }

    /// Loads the embedded default model, fetching it on first use
    /// ([`fetch::default_model`]).
    pub fn load_default(progress: &mut dyn FnMut(FetchEvent)) -> Result<Lm> {
        Lm::load(&fetch::default_model(progress)?)
    }

    /// The number of logits per step (the watermark config's vocab size).
    pub fn vocab_size(&self) -> u32 {
        self.vocab_size
    }

    /// The tokenizer built from the model file.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The token ids that end an answer.
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    /// The ids of a one-turn chat (ChatML, as SmolLM2-Instruct's template writes it), ending
    /// where the assistant's answer begins: [`Lm::chat_template`] of one user message.
    pub fn chat_prompt(&self, user: &str) -> Result<Vec<u32>> {
        self.chat_template(&[ChatMessage::new(ChatRole::User, user)])
    }

    /// The ids of a chat of any number of turns ([`chat_text`]: ChatML, a default system turn
    /// first when none is given), ending where the assistant's next answer begins.
    pub fn chat_template(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        self.encode(&chat_text(messages))
    }

    /// The most tokens a prompt and its answer may have together.
    pub fn context_len(&self) -> usize {
        MAX_SEQ_LEN
    }

    /// Token ids of `text` (special tokens such as `<|im_start|>` are recognised).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| LmError::Text {
                action: "encode",
                message: e.to_string(),
            })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, true).map_err(|e| LmError::Text {
            action: "decode",
            message: e.to_string(),
        })
    }

    /// Generates an answer for each request, biasing every step's logits with the request's
    /// watermarker when it has one.
    ///
    /// Requests whose prompts have the same length run as one batch through the model (one
    /// forward pass per step for all of them, watermarked or not); candle's quantized llama
    /// keeps one position per batch and has no padding mask, so prompts of different lengths
    /// run in separate batches rather than being padded (padding would change the answers).
    /// Each request has its own random stream, seeded from `options.seed` and its index: the
    /// same requests and options give the same answers. A batched forward pass rounds
    /// differently from a single one, so an answer can change (after a few tokens) when the
    /// other requests of its batch change. `progress(n)` is
    /// called with the number of sequences advanced after every step.
    pub fn generate(
        &mut self,
        requests: &[Request<'_>],
        options: &GenerateOptions,
        progress: &mut dyn FnMut(usize),
    ) -> Result<(Vec<Generation>, GenerateTimings)> {
        self.run(requests, options, progress, &mut |_, _| {
            ControlFlow::Continue(())
        })
    }

    /// [`Lm::generate`], calling `on_token(request, token)` with each new token of each
    /// request as it is sampled (stop tokens are not passed; they end the request). When
    /// `on_token` returns [`ControlFlow::Break`] the request ends there, that token kept, and
    /// its [`Generation::ended_by_caller`] is set; the other requests go on. The answers are
    /// the same as [`Lm::generate`]'s for the same requests and options (one loop serves both).
    ///
    /// ```no_run
    /// use std::ops::ControlFlow;
    /// use greenmark_lm::{GenerateOptions, Lm, Request, TextStream};
    ///
    /// let mut lm = Lm::load_default(&mut |_| {})?;
    /// let tokenizer = lm.tokenizer().clone();
    /// let mut text = TextStream::new(&tokenizer);
    /// let request = Request::new(lm.chat_prompt("Count to ten.")?, None);
    /// let (answers, _) = lm.generate_streaming(&[request], &GenerateOptions::default(), &mut |_, id| {
    ///     print!("{}", text.push(id).unwrap_or_default());
    ///     // Stop early once the answer mentions five.
    ///     if text.text().contains("five") { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    /// })?;
    /// println!("{}", text.finish()?);
    /// assert_eq!(text.text(), answers[0].text);
    /// # Ok::<(), greenmark_lm::LmError>(())
    /// ```
    pub fn generate_streaming(
        &mut self,
        requests: &[Request<'_>],
        options: &GenerateOptions,
        on_token: &mut dyn FnMut(usize, u32) -> ControlFlow<()>,
    ) -> Result<(Vec<Generation>, GenerateTimings)> {
        self.run(requests, options, &mut |_| {}, on_token)
    }

    /// The one generation loop of [`Lm::generate`] and [`Lm::generate_streaming`].
    fn run(
        &mut self,
        requests: &[Request<'_>],
        options: &GenerateOptions,
        progress: &mut dyn FnMut(usize),
        on_token: &mut dyn FnMut(usize, u32) -> ControlFlow<()>,
    ) -> Result<(Vec<Generation>, GenerateTimings)> {
        options.validate()?;
        for (i, request) in requests.iter().enumerate() {
            self.check_request(i, request, options)?;
        }
        let mut order: Vec<usize> = (0..requests.len()).collect();
        order.sort_by_key(|&i| (requests[i].prompt.len(), i));
        let mut results: Vec<Option<Generation>> = vec![None; requests.len()];
        let mut timings = GenerateTimings::default();
        let same_length =
            |&a: &usize, &b: &usize| requests[a].prompt.len() == requests[b].prompt.len();
        for group in order.chunk_by(same_length) {
            for chunk in group.chunks(options.max_batch.max(1)) {
                let batch: Vec<(&Request<'_>, Sampler)> = chunk
                    .iter()
                    .map(|&i| (&requests[i], Sampler::new(options, i as u64)))
                    .collect();
                let mut on_row = |row: usize, token: u32| on_token(chunk[row], token);
                let outs =
                    self.generate_batch(batch, options, &mut timings, progress, &mut on_row)?;
                for (&i, generation) in chunk.iter().zip(outs) {
                    results[i] = Some(generation);
                }
            }
        }
        Ok((results.into_iter().flatten().collect(), timings))
    }

    fn check_request(
        &self,
        index: usize,
        request: &Request<'_>,
        options: &GenerateOptions,
    ) -> Result<()> {
        let prompt = &request.prompt;
        if let Some(wm) = request.watermarker {
            let got = u64::from(wm.config().vocab_size());
            if got != u64::from(self.vocab_size) {
                return Err(LmError::InvalidOption(format!(
                    "request {index}: the watermark config is for {got} tokens but the model has \
                     {}; build the config with the model's vocab_size()",
                    self.vocab_size
                )));
            }
        }
        if prompt.is_empty() {
            return Err(LmError::InvalidOption(format!("prompt {index} is empty")));
        }
        if let Some(&bad) = prompt.iter().find(|&&t| t >= self.vocab_size) {
            return Err(LmError::InvalidOption(format!(
                "prompt {index} has token id {bad}, but the model's vocabulary has {} tokens",
                self.vocab_size
            )));
        }
        if prompt.len() + options.max_new_tokens > MAX_SEQ_LEN {
            return Err(LmError::InvalidOption(format!(
                "prompt {index} ({} tokens) plus max_new_tokens ({}) exceeds the model's \
                 context of {MAX_SEQ_LEN} tokens",
                prompt.len(),
                options.max_new_tokens
            )));
        }
        Ok(())
    }

    /// One forward step of a batch: `column[i]` is row `i`'s token at position `pos` (every
    /// earlier position already in the KV cache); returns the next-token logits, one row each.
    pub(crate) fn forward_column(&mut self, column: Vec<u32>, pos: usize) -> Result<Vec<Vec<f32>>> {
        let b = column.len();
        let input = Tensor::from_vec(column, (b, 1), &self.device)?;
        let out = self.weights.forward(&input, pos)?;
        Ok(out.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?)
    }

    /// Empties the KV cache (after a batch, before the next).
    pub(crate) fn clear_kv_cache(&mut self) {
        self.weights.clear_kv_cache();
    }

    /// Runs the prompts (all of one length) through the model, filling its KV cache, and
    /// returns the logits of the first new token. One prompt goes in one pass; several go one
    /// position at a time, because candle's quantized llama cannot take the last position of
    /// a multi-row, multi-position batch (its output slice is not contiguous).
    fn prefill(&mut self, prompts: &[Vec<u32>]) -> Result<Tensor> {
        let b = prompts.len();
        let len = prompts[0].len();
        if b == 1 {
            let input = Tensor::new(prompts[0].as_slice(), &self.device)?.unsqueeze(0)?;
            return Ok(self.weights.forward(&input, 0)?);
        }
        let mut out = None;
        for pos in 0..len {
            let column: Vec<u32> = prompts.iter().map(|p| p[pos]).collect();
            let input = Tensor::from_vec(column, (b, 1), &self.device)?;
            out = Some(self.weights.forward(&input, pos)?);
        }
        Ok(out.expect("prompts are never empty (checked in generate)"))
    }

    /// Runs requests with prompts of equal length together, one forward pass per step.
    fn generate_batch(
        &mut self,
        batch: Vec<(&Request<'_>, Sampler)>,
        options: &GenerateOptions,
        timings: &mut GenerateTimings,
        progress: &mut dyn FnMut(usize),
        on_token: &mut dyn FnMut(usize, u32) -> ControlFlow<()>,
    ) -> Result<Vec<Generation>> {
        let b = batch.len();
        let len = batch[0].0.prompt.len();
        let vocab = self.vocab_size as usize;
        let (requests, mut samplers): (Vec<&Request<'_>>, Vec<Sampler>) = batch.into_iter().unzip();
        let mut contexts: Vec<Vec<u32>> = requests.iter().map(|r| r.prompt.clone()).collect();
        let mut done = vec![false; b];
        let mut stopped = vec![false; b];
        let mut ended_by_caller = vec![false; b];
        let mut input = Tensor::zeros((b, 1), candle_core::DType::U32, &self.device)?;
        let mut logits = Vec::with_capacity(b * vocab);
        let mut gumbel: Vec<_> = requests
            .iter()
            .map(|r| r.gumbel.map(|wm| wm.request(&r.prompt)))
            .collect();
        let mut synthid: Vec<_> = requests
            .iter()
            .map(|r| r.synthid.map(|wm| wm.request()))
            .collect();
        let mut scratch = Vec::new();
        for step in 0..options.max_new_tokens {
            let start = Instant::now();
            let out = if step == 0 {
                self.prefill(&contexts)?
            } else {
                self.weights.forward(&input, len + step - 1)?
            };
            logits.clear();
            for row in out.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()? {
                if row.len() != vocab {
                    return Err(LmError::Corrupt {
                        path: self.path.clone(),
                        message: format!(
                            "the model produced {} logits per step but its tokenizer has {vocab} \
                             tokens",
                            row.len()
                        ),
                    });
                }
                logits.extend_from_slice(&row);
            }
            if step == 0 {
                timings.prefill += start.elapsed();
            } else {
                timings.forward += start.elapsed();
                timings.steps += 1;
            }
            if step < options.min_new_tokens {
                for row in logits.chunks_exact_mut(vocab) {
                    for &stop in &self.stop_ids {
                        row[stop as usize] = f32::NEG_INFINITY;
                    }
                }
            }
            let start = Instant::now();
            for ((row, request), context) in
                logits.chunks_exact_mut(vocab).zip(&requests).zip(&contexts)
            {
                if let Some(wm) = request.watermarker {
                    wm.bias(row, context)?;
                }
            }
            timings.watermark += start.elapsed();
            let start = Instant::now();
            let mut next = Vec::with_capacity(b);
            for (i, row) in logits.chunks_exact(vocab).enumerate() {
                let token = match (&mut gumbel[i], &mut synthid[i]) {
                    (Some(request), _) if !done[i] => {
                        samplers[i].sample_gumbel(row, request, &mut scratch)?
                    }
                    (_, Some(request)) if !done[i] => {
                        samplers[i].sample_synthid(row, request, &mut scratch)?
                    }
                    _ => samplers[i].sample(row),
                };
                next.push((token, done[i]));
            }
            timings.sampling += start.elapsed();
            for (i, &(token, was_done)) in next.iter().enumerate() {
                if was_done {
                    continue;
                }
                if self.stop_ids.contains(&token) {
                    done[i] = true;
                    stopped[i] = true;
                } else {
                    contexts[i].push(token);
                    if on_token(i, token).is_break() {
                        done[i] = true;
                        ended_by_caller[i] = true;
                    }
                }
            }
            progress(b);
            if done.iter().all(|&d| d) || step + 1 == options.max_new_tokens {
                break;
            }
            let column = next.into_iter().map(|(token, _)| token).collect();
            input = Tensor::from_vec(column, (b, 1), &self.device)?;
        }
        self.weights.clear_kv_cache();
        contexts
            .into_iter()
            .zip(stopped.into_iter().zip(ended_by_caller))
            .map(|(mut context, (stopped, ended_by_caller))| {
                let tokens = context.split_off(len);
                Ok(Generation {
                    prompt: context,
                    text: self.decode(&tokens)?,
                    tokens,
                    stopped,
                    ended_by_caller,
                })
            })
            .collect()
    }
}
