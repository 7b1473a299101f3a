//! # greenmark-serve
//!
//! The detection service an operator runs: a JSON HTTP API over the core's one detection
//! model ([`greenmark::Keyring::score`]), so a service answer carries the same fields as
//! `greenmark detect --json`.
//!
//! - `GET /healthz`: `{"status": "ok"}`.
//! - `POST /v1/detect`: `{"text": ...}` or `{"ids": [...]}`, with `prompt` (text) or
//!   `prompt_ids`, `span` and `min_span_tokens`; or `{"inputs": [...]}` for a batch.
//! - `POST /v1/chat/completions` (with a `[generation]` table, [`generation`]): OpenAI-compatible
//!   chat completions, streamed as server-sent events with `"stream": true`, on the embedded
//!   default model or a GGUF, watermarked with one of the service's keys by the operator's
//!   policy. The answer names the key (its id, never its bytes) in an extension object
//!   `watermark`; a request may ask for `"watermark": false` only where the operator allows it.
//!
//! Access is by bearer token, stored in the config as its SHA-256 and compared in constant
//! time. A `public` token gets the verdict and the p-value only; a `trusted` token gets every
//! field. Errors are JSON (`{"error": {"code", "message"}}`) with a 4xx status; no message
//! ever holds a key's secret.
#![deny(missing_docs)]

mod api;
pub mod auth;
mod chat;
pub mod config;
mod detect;
mod docs;
pub mod generation;
pub mod metrics;
mod radioactivity;

use std::future::Future;
use std::sync::Arc;

pub use api::{router, Service};
pub use config::{Role, ServeConfig};

/// What can go wrong when the service starts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The config file is unreadable or invalid.
    #[error("invalid serve config: {0}")]
    Config(String),
    /// A key file, the tokenizer or a value the core checks is bad.
    #[error(transparent)]
    Core(#[from] greenmark::Error),
    /// The generation model could not be loaded or does not fit the key.
    #[error(transparent)]
    Model(#[from] greenmark_lm::LmError),
    /// The listening socket failed.
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

/// The runtime the service runs on: one async worker per core, and detection (CPU-bound, on
/// the blocking pool) bounded to two threads per core, so a burst of requests queues instead
/// of starting hundreds of threads that each hold memory.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(2 * cores)
        .build()
}

/// Serves `service` on `listener` until `shutdown` resolves, then finishes the requests in
/// flight (graceful shutdown).
pub async fn run(
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    axum::serve(listener, router(service))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
