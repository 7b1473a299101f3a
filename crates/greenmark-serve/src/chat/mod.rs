//! `POST /v1/chat/completions`: OpenAI-compatible generation, watermarked by the operator's
//! policy, answered whole or streamed as server-sent events.
//!
//! The model runs on a blocking thread (one request at a time: it is behind a mutex and its KV
//! cache is per call); each token goes through [`output::Output`] and, as text deltas, over a
//! channel to the response. When the client goes away the response, and with it the channel's
//! receiver, is dropped, and the next token ends the generation.

mod output;
mod request;
mod wire;

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use greenmark::{KeyFile, Watermarker};
use greenmark_lm::{chat_text, GenerateOptions, Lm, Request};
use serde_json::{json, Value};
use tokenizers::Tokenizer;
use tokio::sync::mpsc;

use crate::api::{admit, error, read_json, ApiError, Service};
use crate::generation::{GenerationConfig, ModelChoice};
use crate::ServeError;
use output::Output;
use request::Params;
use wire::{Piece, Reply, Usage};

/// A text both tokenizers must split alike for the service to detect what it generates.
const PROBE: &str = "The quick brown fox — naïve café, 東京 🦀 <|im_start|>user\n42";

/// The model, the key it watermarks with, and the policy.
#[derive(Debug)]
pub(crate) struct Generator {
    lm: Mutex<Lm>,
    /// The model's tokenizer, for prompts and text deltas while the model is in use.
    tokenizer: Tokenizer,
    watermarker: Watermarker,
    /// The `watermark` object of a watermarked answer (no secret in it).
    named_key: Value,
    model: String,
    context_len: usize,
    policy: GenerationConfig,
    /// Tokens generated since start-up.
    generated: AtomicU64,
}

impl Generator {
    /// Loads the model of `table` and its key, checking that the key's config fits the model
    /// and that the model's tokenizer is the one the service detects with (`detect_with`).
    pub fn load(
        table: &GenerationConfig,
        detect_with: &Tokenizer,
    ) -> Result<Generator, ServeError> {
        let lm = match &table.model {
            ModelChoice::Default => Lm::load_default(&mut |_| {})?,
            ModelChoice::Path(path) => Lm::load(path)?,
        };
        let file = KeyFile::load(&table.key)?;
        let config = file.config_for_model(lm.vocab_size().into())?;
        let tokenizer = lm.tokenizer().clone();
        let ids = |t: &Tokenizer| t.encode(PROBE, false).map(|e| e.get_ids().to_vec()).ok();
        if ids(&tokenizer).is_none() || ids(&tokenizer) != ids(detect_with) {
            return Err(ServeError::Config(format!(
                "the generation model {} does not tokenize like the service's tokenizer: the \
                 service could not detect what it generates; give the model's tokenizer.json",
                lm.path().display()
            )));
        }
        let named_key = json!({
            "watermarked": true,
            "key_id": file.key.id().to_string(),
            "scheme": config.scheme().id(),
            "gamma": config.gamma(),
            "delta": config.delta(),
        });
        let model = lm
            .path()
            .file_stem()
            .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
        Ok(Generator {
            tokenizer,
            watermarker: Watermarker::new(&file.key, config),
            named_key,
            model,
            context_len: lm.context_len(),
            policy: table.clone(),
            generated: AtomicU64::new(0),
            lm: Mutex::new(lm),
        })
    }

    /// The served model's name (the GGUF file's stem).
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Tokens generated since start-up.
    pub fn generated_tokens(&self) -> u64 {
        self.generated.load(Ordering::Relaxed)
    }

    /// The prompt's ids, with `params.max_tokens` cut to the context where it was not asked
    /// for, or why the request does not fit.
    fn prompt(&self, params: &mut Params) -> Result<Vec<u32>, ApiError> {
        // The template's turns are marked with the model's special tokens, and the prompt is
        // tokenized with them recognised: a message that wrote one would open a turn of its
        // own (a system turn, say). Such content is refused rather than passed on.
        for (i, message) in params.messages.iter().enumerate() {
            let special = self
                .tokenizer
                .get_added_tokens_decoder()
                .into_values()
                .filter(|t| t.special)
                .find(|t| message.content.contains(&t.content));
            if let Some(token) = special {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!(
                        "messages[{i}] contains the model's control token {:?}, which would \
                         start a turn of its own: remove it",
                        token.content
                    ),
                ));
            }
        }
        let ids = self
            .tokenizer
            .encode(chat_text(&params.messages), false)
            .map_err(|e| {
                error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "bad_input",
                    format!("the messages cannot be tokenized: {e}"),
                )
            })?
            .get_ids()
            .to_vec();
        let room = self.context_len.saturating_sub(ids.len());
        if !params.max_tokens_given {
            params.max_tokens = params.max_tokens.min(room);
        }
        if params.max_tokens == 0 || params.max_tokens > room {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "context_length_exceeded",
                format!(
                    "the messages are {} tokens; with max_tokens {} that is over the model's \
                     context of {} tokens",
                    ids.len(),
                    params.max_tokens.max(1),
                    self.context_len
                ),
            ));
        }
        Ok(ids)
    }

    /// Generates the answer to `prompt`, sending its pieces; stops when `pieces` is closed.
    fn complete(&self, params: &Params, seed: u64, prompt: Vec<u32>, pieces: &mpsc::Sender<Piece>) {
        let options = GenerateOptions {
            max_new_tokens: params.max_tokens,
            temperature: params.temperature,
            top_p: params.top_p,
            top_k: params.top_k,
            seed,
            ..GenerateOptions::default()
        };
        let prompt_len = prompt.len();
        let request = Request::new(prompt, params.watermark.then_some(&self.watermarker));
        let mut output = Output::new(&self.tokenizer, params.stops.clone());
        let mut failure = None;
        let mut lm = self.lm.lock().unwrap_or_else(PoisonError::into_inner);
        let result = lm.generate_streaming(&[request], &options, &mut |_, id| {
            self.generated.fetch_add(1, Ordering::Relaxed);
            if pieces.is_closed() {
                return ControlFlow::Break(());
            }
            match output.push(id) {
                Ok((delta, flow)) => {
                    if !delta.is_empty() && pieces.blocking_send(Piece::Delta(delta)).is_err() {
                        return ControlFlow::Break(());
                    }
                    flow
                }
                Err(e) => {
                    failure = Some(e);
                    ControlFlow::Break(())
                }
            }
        });
        drop(lm);
        let last = match (result, failure) {
            (Err(e), _) | (Ok(_), Some(e)) => Piece::Failed(format!("the model failed: {e}")),
            (Ok((answers, _)), None) => match output.finish() {
                Err(e) => Piece::Failed(format!("the model failed: {e}")),
                Ok(rest) => {
                    if !rest.is_empty() {
                        let _ = pieces.blocking_send(Piece::Delta(rest));
                    }
                    let stopped = output.stopped || answers.first().is_some_and(|a| a.stopped);
                    Piece::End {
                        finish: if stopped { "stop" } else { "length" },
                        usage: Usage {
                            prompt: prompt_len,
                            completion: answers.first().map_or(0, |a| a.tokens.len()),
                        },
                    }
                }
            },
        };
        let _ = pieces.blocking_send(last);
    }
}

/// A fresh 64-bit value (the seed of a request that names none, and answer ids): the clock
/// and a counter through SplitMix64. Not secret, only different every time.
fn fresh() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut z = nanos ^ COUNTER.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The handler: checks access and the request, then answers whole or as a stream.
pub(crate) async fn completions(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    admit(&service, &headers)?;
    let value = read_json(body, service.limits.max_body_bytes, &service.limits).await?;
    let Some(generator) = service.generation.clone() else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "generation_not_configured",
            "this service does not generate: its config has no [generation] table",
        ));
    };
    let mut params = request::parse(&value, &generator.policy)?;
    let prompt = generator.prompt(&mut params)?;
    let reply = Reply {
        id: format!("chatcmpl-{:016x}", fresh()),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model: generator.model().to_string(),
        watermark: if params.watermark {
            generator.named_key.clone()
        } else {
            json!({"watermarked": false, "key_id": null})
        },
        include_usage: params.stream && params.include_usage,
    };
    let (send, pieces) = mpsc::channel(64);
    let seed = params.seed.unwrap_or_else(fresh);
    let stream = params.stream;
    tokio::task::spawn_blocking(move || generator.complete(&params, seed, prompt, &send));
    if stream {
        Ok(wire::stream(reply, pieces))
    } else {
        wire::collect(reply, pieces).await
    }
}

impl Service {
    /// The model `POST /v1/chat/completions` generates with (the GGUF file's stem), if the
    /// service generates.
    pub fn generation_model(&self) -> Option<&str> {
        self.generation.as_deref().map(Generator::model)
    }

    /// Tokens generated since start-up, over all requests (0 when the service does not
    /// generate). A generation whose client went away stops within a token, so this stops
    /// growing.
    pub fn generated_tokens(&self) -> u64 {
        self.generation
            .as_deref()
            .map_or(0, Generator::generated_tokens)
    }
}
