//! The HTTP API: request parsing, limits, access, and the one detection model behind it.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use greenmark::text::TextDetector;
use greenmark::{Detector, KeyFile, Keyring, SpanOptions};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Tokens;
use crate::config::{Limits, Role, ServeConfig};
use crate::ServeError;

/// The fields a `public` token sees: the verdict and the p-value.
const PUBLIC_FIELDS: [&str; 6] = [
    "watermarked",
    "p_value",
    "ln_p_value",
    "log10_p_value",
    "threshold",
    "key_id",
];

/// Everything a request needs, built once at start-up.
#[derive(Debug)]
pub struct Service {
    keyring: Keyring,
    text: TextDetector,
    tokens: Tokens,
    threshold: f64,
    limits: Limits,
    pub(crate) generation: Option<Arc<crate::chat::Generator>>,
}

impl Service {
    /// Loads the tokenizer and the key files of `config` (each checked against the
    /// tokenizer by the core's rule) and the accepted tokens.
    pub fn new(config: &ServeConfig) -> Result<Service, ServeError> {
        let tokenizer = greenmark::text::load_tokenizer_json(&config.tokenizer)?;
        let vocab = tokenizer.get_vocab_size(true);
        let mut detectors = Vec::with_capacity(config.keys.len());
        let mut first = None;
        for path in &config.keys {
            let file = KeyFile::load(path)?;
            if file.config.is_none() {
                return Err(ServeError::Config(format!(
                    "key file {} carries no watermark config: the service detects with the \
                     config saved beside each key (greenmark keygen writes one)",
                    path.display()
                )));
            }
            let wm = file.config_for_tokenizer(vocab)?;
            detectors.push(Detector::new(&file.key, wm.clone()));
            first.get_or_insert((file.key, wm));
        }
        let (key, wm) = first.ok_or_else(|| ServeError::Config("keys is empty".into()))?;
        let generation = match &config.generation {
            Some(table) => Some(Arc::new(crate::chat::Generator::load(table, &tokenizer)?)),
            None => None,
        };
        Ok(Service {
            keyring: Keyring::new(detectors)?,
            text: TextDetector::new(tokenizer, &key, wm)?,
            tokens: Tokens::new(&config.tokens)?,
            threshold: config.threshold,
            limits: config.limits.clone(),
            generation,
        })
    }
}

/// The service's routes.
pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/v1/detect", post(detect))
        .route("/v1/chat/completions", post(crate::chat::completions))
        .with_state(service)
}

/// A JSON error response: `{"error": {"code", "message"}}`.
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({"error": {"code": code, "message": message.into()}});
    (status, Json(body)).into_response()
}

/// One text to detect in.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    text: Option<String>,
    ids: Option<Vec<u32>>,
    prompt: Option<String>,
    prompt_ids: Option<Vec<u32>>,
    #[serde(default)]
    span: bool,
    min_span_tokens: Option<usize>,
}

/// Several texts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    inputs: Vec<Input>,
}

/// The role of the request's bearer token and its body as JSON, or the error response that
/// refuses the request (401, 413, 400).
pub(crate) async fn authorized_json(
    service: &Service,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Role, Value), Response> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(role) = service.tokens.role(authorization) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "give a valid token: Authorization: Bearer TOKEN",
        ));
    };
    let max = service.limits.max_body_bytes;
    let Ok(bytes) = to_bytes(body, max).await else {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is over {max} bytes (or was cut off)"),
        ));
    };
    match serde_json::from_slice(&bytes) {
        Ok(value) => Ok((role, value)),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("not JSON: {e}"),
        )),
    }
}

async fn detect(State(service): State<Arc<Service>>, headers: HeaderMap, body: Body) -> Response {
    let (role, value) = match authorized_json(&service, &headers, body).await {
        Ok(request) => request,
        Err(refusal) => return refusal,
    };
    let batch = value.get("inputs").is_some();
    let inputs = if batch {
        match serde_json::from_value::<Batch>(value) {
            Ok(b) => b.inputs,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
        }
    } else {
        match serde_json::from_value::<Input>(value) {
            Ok(input) => vec![input],
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
        }
    };
    if inputs.len() > service.limits.max_batch {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "{} inputs, the limit is {}: split the batch",
                inputs.len(),
                service.limits.max_batch
            ),
        );
    }
    let work = Arc::clone(&service);
    let records = tokio::task::spawn_blocking(move || {
        inputs
            .iter()
            .map(|input| work.score(input, role))
            .collect::<Vec<_>>()
    })
    .await;
    let Ok(records) = records else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "detection failed unexpectedly",
        );
    };
    if batch {
        let results: Vec<Value> = records
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(
                    |message| json!({"error": {"code": "bad_input", "message": message}}),
                )
            })
            .collect();
        return Json(json!({ "results": results })).into_response();
    }
    match records.into_iter().next() {
        Some(Ok(record)) => Json(record).into_response(),
        Some(Err(message)) => error(StatusCode::UNPROCESSABLE_ENTITY, "bad_input", message),
        None => error(StatusCode::BAD_REQUEST, "bad_request", "no input"),
    }
}

impl Service {
    /// One input's record (the fields `greenmark detect --json` prints), cut to what `role`
    /// may see, or why it cannot be scored.
    fn score(&self, input: &Input, role: Role) -> Result<Value, String> {
        let prompt = match (&input.prompt, &input.prompt_ids) {
            (Some(_), Some(_)) => return Err("give prompt or prompt_ids, not both".into()),
            (Some(text), None) => self.text.encode(text).map_err(|e| e.to_string())?,
            (None, Some(ids)) => ids.clone(),
            (None, None) => Vec::new(),
        };
        let (ids, normalizations) = match (&input.text, &input.ids) {
            (Some(_), Some(_)) => return Err("give text or ids, not both".into()),
            (None, None) => {
                return Err("give the text to check (text) or its token ids (ids)".into())
            }
            (Some(text), None) => {
                let tokens = self.text.tokens(text).map_err(|e| e.to_string())?;
                (tokens.ids, Some(tokens.normalizations))
            }
            (None, Some(ids)) => (ids.clone(), None),
        };
        let span = match (input.span, input.min_span_tokens) {
            (false, Some(_)) => return Err("min_span_tokens needs \"span\": true".into()),
            (false, None) => None,
            (true, n) => Some(n.map_or_else(SpanOptions::default, SpanOptions::with_min_tokens)),
        };
        let scored = self
            .keyring
            .score(&ids, &prompt, span)
            .map_err(|e| e.to_string())?;
        let mut record = scored.to_json(ids.len(), self.threshold);
        let object = record.as_object_mut().expect("a record is an object");
        if let Some(applied) = normalizations {
            object.insert(
                "normalizations".into(),
                greenmark::text::normalizations_json(&applied),
            );
        }
        if role == Role::Public {
            object.retain(|field, _| PUBLIC_FIELDS.contains(&field.as_str()));
        }
        Ok(record)
    }
}
