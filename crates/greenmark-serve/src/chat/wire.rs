//! OpenAI's answer formats: one `chat.completion`, or a stream of `chat.completion.chunk`
//! server-sent events ending in `data: [DONE]`.

use std::convert::Infallible;

use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::api::{error, ApiError};

/// What the generating thread sends, in order: deltas, then one end or failure.
#[derive(Debug)]
pub(crate) enum Piece {
    /// Text to add to the answer.
    Delta(String),
    /// The answer is complete.
    End { finish: &'static str, usage: Usage },
    /// The model failed (not the request's fault).
    Failed(String),
}

/// Token counts of a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    pub prompt: usize,
    pub completion: usize,
}

impl Usage {
    fn to_json(self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
        })
    }
}

/// The fields every object of one answer repeats.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub id: String,
    pub created: u64,
    pub model: String,
    /// The `watermark` extension object.
    pub watermark: Value,
    /// Whether the streamed chunks carry `usage` (`stream_options.include_usage`).
    pub include_usage: bool,
}

impl Reply {
    fn completion(&self, text: String, finish: &str, usage: Usage) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": null,
                "finish_reason": finish,
            }],
            "usage": usage.to_json(),
            "watermark": self.watermark,
        })
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Event {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            "watermark": self.watermark,
        });
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        Event::default().data(chunk.to_string())
    }

    fn usage_chunk(&self, usage: Usage) -> Event {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage.to_json(),
            "watermark": self.watermark,
        });
        Event::default().data(chunk.to_string())
    }

    /// The events one piece becomes, and whether it was the last.
    fn events(&self, piece: Piece) -> (Vec<Event>, bool) {
        match piece {
            Piece::Delta(text) => (vec![self.chunk(json!({"content": text}), None)], false),
            Piece::End { finish, usage } => {
                let mut events = vec![self.chunk(json!({}), Some(finish))];
                if self.include_usage {
                    events.push(self.usage_chunk(usage));
                }
                events.push(Event::default().data("[DONE]"));
                (events, true)
            }
            Piece::Failed(message) => {
                let body = json!({"error": {"code": "generation_failed", "message": message}});
                (vec![Event::default().data(body.to_string())], true)
            }
        }
    }
}

/// The whole answer as one `chat.completion`.
pub(crate) async fn collect(
    reply: Reply,
    mut pieces: mpsc::Receiver<Piece>,
) -> Result<Response, ApiError> {
    let mut text = String::new();
    while let Some(piece) = pieces.recv().await {
        match piece {
            Piece::Delta(delta) => text.push_str(&delta),
            Piece::End { finish, usage } => {
                return Ok(Json(reply.completion(text, finish, usage)).into_response())
            }
            Piece::Failed(message) => {
                return Err(error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "generation_failed",
                    message,
                ))
            }
        }
    }
    Err(error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "generation_failed",
        "generation stopped unexpectedly",
    ))
}

/// The answer as server-sent events: a chunk with the role, a chunk per delta, a chunk with
/// the finish reason (and one with the usage, when asked), then `[DONE]`. Dropping the
/// response (the client went away) drops `pieces`, which stops the generation.
pub(crate) fn stream(reply: Reply, pieces: mpsc::Receiver<Piece>) -> Response {
    let first = reply.chunk(json!({"role": "assistant", "content": ""}), None);
    let rest = stream::unfold(
        (pieces, reply, false),
        |(mut pieces, reply, ended)| async move {
            if ended {
                return None;
            }
            let piece = pieces.recv().await?;
            let (events, last) = reply.events(piece);
            Some((stream::iter(events), (pieces, reply, last)))
        },
    )
    .flatten();
    let events = stream::iter([first]).chain(rest).map(Ok::<_, Infallible>);
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
