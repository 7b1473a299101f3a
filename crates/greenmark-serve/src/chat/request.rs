//! An OpenAI chat-completions request body, checked field by field into [`Params`].

use axum::http::StatusCode;
use greenmark_lm::{ChatMessage, ChatRole};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::api::{error, ApiError};
use crate::generation::GenerationConfig;

fn bad(message: impl Into<String>) -> ApiError {
    error(StatusCode::BAD_REQUEST, "invalid_request", message.into())
}

/// OpenAI fields that would change the answer (or its form) and that this service does not
/// implement; a request giving one with a value other than the neutral one is refused rather
/// than answered as if it had not asked.
const UNSUPPORTED: [&str; 12] = [
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "response_format",
    "presence_penalty",
    "frequency_penalty",
    "prediction",
    "audio",
];

/// Values that ask for nothing: absent, null, false, 0, empty, `"none"`, `{"type": "text"}`.
fn neutral(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s == "none" || s == "auto",
        Value::Object(o) => o.is_empty() || (o.len() == 1 && o.get("type") == Some(&"text".into())),
        Value::Bool(true) => false,
    }
}

/// The field `name` of `fields` as a `T` (absent or null: `None`), or a refusal naming it.
fn field<T: DeserializeOwned>(
    fields: &Map<String, Value>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => T::deserialize(value)
            .map(Some)
            .map_err(|e| bad(format!("{name}: {e}"))),
    }
}

/// OpenAI's `stream_options`.
#[derive(Debug, Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// A checked request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Params {
    pub messages: Vec<ChatMessage>,
    pub max_tokens: usize,
    /// Whether `max_tokens` was asked for (else it is the default, cut to the context).
    pub max_tokens_given: bool,
    pub temperature: f32,
    pub top_p: Option<f32>,
    pub top_k: Option<usize>,
    pub seed: Option<u64>,
    pub stream: bool,
    pub include_usage: bool,
    pub stops: Vec<String>,
    pub watermark: bool,
}

/// Checks a request body against the operator's `policy`. The fields it reads are those of
/// [`Params`]; every other field is ignored (OpenAI's `model`, `user`, `metadata`, `store`, ...
/// change nothing here) unless it is one of [`UNSUPPORTED`].
pub(crate) fn parse(value: &Value, policy: &GenerationConfig) -> Result<Params, ApiError> {
    let Value::Object(fields) = value else {
        return Err(bad("the body must be a JSON object"));
    };
    for name in UNSUPPORTED {
        if fields.get(name).is_some_and(|v| !neutral(v)) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "unsupported_parameter",
                format!(
                    "{name} is not supported by this service (it would change the answer); \
                     leave it out"
                ),
            ));
        }
    }
    if field::<u64>(fields, "n")?.is_some_and(|n| n != 1) {
        return Err(bad(
            "n must be 1: this service gives one choice per request",
        ));
    }
    let messages = field::<Vec<Value>>(fields, "messages")?
        .ok_or_else(|| bad("messages is missing: give the chat to answer"))?
        .iter()
        .enumerate()
        .map(|(i, m)| message(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    if messages.is_empty() {
        return Err(bad("messages is empty: give at least one message"));
    }
    let max_tokens = match (
        field::<usize>(fields, "max_tokens")?,
        field::<usize>(fields, "max_completion_tokens")?,
    ) {
        (Some(a), Some(b)) if a != b => {
            return Err(bad(format!(
                "max_tokens ({a}) and max_completion_tokens ({b}) differ: give one"
            )))
        }
        (Some(n), _) | (None, Some(n)) => Some(n),
        (None, None) => None,
    };
    if let Some(n) = max_tokens {
        if n == 0 || n > policy.max_tokens {
            return Err(bad(format!(
                "max_tokens must be between 1 and {} (this service's cap), got {n}",
                policy.max_tokens
            )));
        }
    }
    let temperature = field::<f64>(fields, "temperature")?.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(bad(format!(
            "temperature must be between 0 and 2, got {temperature}"
        )));
    }
    let top_p = field::<f64>(fields, "top_p")?;
    if let Some(p) = top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(bad(format!("top_p must be in (0, 1], got {p}")));
        }
    }
    let top_k = field::<usize>(fields, "top_k")?;
    if top_k == Some(0) {
        return Err(bad("top_k must be at least 1"));
    }
    let seed = field::<serde_json::Number>(fields, "seed")?
        .map(|n| seed(&n))
        .transpose()?;
    let stops = stops(fields.get("stop"))?;
    let watermark = field::<bool>(fields, "watermark")?.unwrap_or(true);
    if !watermark && !policy.allow_unwatermarked {
        return Err(error(
            StatusCode::FORBIDDEN,
            "watermark_required",
            "this service watermarks every answer: its operator does not allow \
                      \"watermark\": false",
        ));
    }
    Ok(Params {
        messages,
        max_tokens: max_tokens.unwrap_or_else(|| policy.default_tokens()),
        max_tokens_given: max_tokens.is_some(),
        temperature: temperature as f32,
        top_p: top_p.map(|p| p as f32),
        top_k,
        seed,
        stream: field::<bool>(fields, "stream")?.unwrap_or(false),
        include_usage: field::<StreamOptions>(fields, "stream_options")?
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        stops,
        watermark,
    })
}

/// Stop strings: a string or a list of at most 4, none empty.
fn stops(value: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let refuse = || bad("stop takes a string or a list of at most 4 strings, none of them empty");
    let stops = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|s| match s {
                Value::String(s) => Ok(s.clone()),
                _ => Err(refuse()),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(refuse()),
    };
    if stops.len() > 4 || stops.iter().any(String::is_empty) {
        return Err(refuse());
    }
    Ok(stops)
}

/// A seed: any JSON integer (a negative one is taken as its two's-complement bits).
fn seed(n: &serde_json::Number) -> Result<u64, ApiError> {
    n.as_u64()
        .or_else(|| n.as_i64().map(|i| i as u64))
        .ok_or_else(|| bad(format!("seed must be an integer, got {n}")))
}

/// One message: a role and string content, or OpenAI's list of text parts.
fn message(index: usize, value: &Value) -> Result<ChatMessage, ApiError> {
    let at = |what: &str| bad(format!("messages[{index}]: {what}"));
    let role = value
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| at("give a role (system, user or assistant)"))?;
    // OpenAI's newer name for the system turn.
    let role = match role {
        "developer" => ChatRole::System,
        other => ChatRole::from_name(other).ok_or_else(|| {
            at(&format!(
                "role {other:?} is not supported: use system, user or assistant"
            ))
        })?,
    };
    let content = match value.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for part in parts {
                match (part.get("type").and_then(Value::as_str), part.get("text")) {
                    (Some("text"), Some(Value::String(t))) => text.push_str(t),
                    _ => {
                        return Err(at(
                            "content parts must be {\"type\": \"text\", \"text\": \"...\"}: \
                             this model reads text only",
                        ))
                    }
                }
            }
            text
        }
        _ => return Err(at("content must be a string or a list of text parts")),
    };
    Ok(ChatMessage::new(role, content))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn policy() -> GenerationConfig {
        toml::from_str("key = \"k.json\"\nmax_tokens = 64\ndefault_max_tokens = 16\n").unwrap()
    }

    #[test]
    fn a_full_request_is_read_field_by_field() {
        let params = parse(
            &json!({
                "model": "anything", "user": "ignored",
                "messages": [
                    {"role": "developer", "content": "Be brief."},
                    {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}
                ],
                "max_completion_tokens": 20, "temperature": 0.5, "top_p": 0.9, "seed": -1,
                "stream": true, "stream_options": {"include_usage": true}, "n": 1,
                "stop": "\n\n", "logprobs": false, "tools": [], "response_format": {"type": "text"}
            }),
            &policy(),
        )
        .unwrap();
        assert_eq!(
            params.messages,
            [
                ChatMessage::new(ChatRole::System, "Be brief."),
                ChatMessage::new(ChatRole::User, "Hi there")
            ]
        );
        assert_eq!((params.max_tokens, params.max_tokens_given), (20, true));
        assert_eq!(params.seed, Some(u64::MAX));
        assert!(params.stream && params.include_usage && params.watermark);
        assert_eq!(params.stops, ["\n\n"]);
        let params = parse(
            &json!({"messages": [{"role": "user", "content": "x"}]}),
            &policy(),
        )
        .unwrap();
        assert_eq!((params.max_tokens, params.max_tokens_given), (16, false));
        assert_eq!(
            (params.temperature, params.seed, params.stream),
            (1.0, None, false)
        );
    }

    #[test]
    fn bad_fields_are_refused_with_what_to_change() {
        let user = json!([{"role": "user", "content": "x"}]);
        for (body, status, needle) in [
            (json!([1]), 400, "object"),
            (json!({"messages": []}), 400, "empty"),
            (json!({}), 400, "messages"),
            (
                json!({"messages": [{"role": "tool", "content": "x"}]}),
                400,
                "tool",
            ),
            (json!({"messages": [{"content": "x"}]}), 400, "role"),
            (
                json!({"messages": [{"role": "user", "content": 3}]}),
                400,
                "content",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
                400,
                "text only",
            ),
            (json!({"messages": user, "n": 2}), 400, "n must be 1"),
            (
                json!({"messages": user, "max_tokens": 0}),
                400,
                "between 1 and 64",
            ),
            (
                json!({"messages": user, "max_tokens": 65}),
                400,
                "between 1 and 64",
            ),
            (
                json!({"messages": user, "max_tokens": -3}),
                400,
                "max_tokens",
            ),
            (
                json!({"messages": user, "max_tokens": 5, "max_completion_tokens": 6}),
                400,
                "differ",
            ),
            (
                json!({"messages": user, "temperature": -0.1}),
                400,
                "temperature",
            ),
            (
                json!({"messages": user, "temperature": "hot"}),
                400,
                "temperature",
            ),
            (json!({"messages": user, "top_p": 0}), 400, "top_p"),
            (json!({"messages": user, "top_k": 0}), 400, "top_k"),
            (json!({"messages": user, "seed": 1.5}), 400, "seed"),
            (json!({"messages": user, "stop": ["a", ""]}), 400, "stop"),
            (json!({"messages": user, "stop": 7}), 400, "stop"),
            (json!({"messages": user, "stop": ["a", 7]}), 400, "stop"),
            (json!({"messages": user, "stream": "yes"}), 400, "stream"),
            (
                json!({"messages": user, "logit_bias": {"50256": -100}}),
                400,
                "logit_bias",
            ),
            (
                json!({"messages": user, "tools": [{"type": "function"}]}),
                400,
                "tools",
            ),
            (
                json!({"messages": user, "watermark": false}),
                403,
                "watermark",
            ),
            (
                json!({"messages": user, "watermark": "no"}),
                400,
                "watermark",
            ),
        ] {
            let refusal = parse(&body, &policy()).unwrap_err();
            assert_eq!(refusal.status.as_u16(), status, "{body}: {refusal:?}");
            assert!(refusal.message.contains(needle), "{body}: {refusal:?}");
        }
        let mut open = policy();
        open.allow_unwatermarked = true;
        let params = parse(&json!({"messages": user, "watermark": false}), &open).unwrap();
        assert!(!params.watermark);
    }
}
