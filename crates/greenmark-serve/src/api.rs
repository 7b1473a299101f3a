//! The HTTP API's frame: the service state, the routes, access (tokens and rates), body
//! limits, timeouts, metrics and JSON errors. Each endpoint lives in its own module.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use greenmark::synthid::{SynthIdConfig, SynthIdDetector};
use greenmark::text::TextDetector;
use greenmark::{Detector, GumbelDetector, KeyFile, Keyring, VllmWatermarkConfig};
use serde_json::{json, Value};

use crate::auth::{Caller, Tokens};
use crate::config::{Limits, Role, ServeConfig};
use crate::metrics::Metrics;
use crate::radioactivity::{keys_for_test, RadioactivityKeys};
use crate::{detect, docs, radioactivity, ServeError};

/// Everything a request needs, built once at start-up.
#[derive(Debug)]
pub struct Service {
    pub(crate) keyring: Keyring,
    pub(crate) text: TextDetector,
    pub(crate) tokens: Tokens,
    pub(crate) threshold: f64,
    pub(crate) limits: Limits,
    pub(crate) metrics: Metrics,
    pub(crate) radioactivity: RadioactivityKeys,
    pub(crate) generation: Option<Arc<crate::chat::Generator>>,
}

impl Service {
    /// Loads the tokenizer and the key files of `config` (each checked against the
    /// tokenizer by the core's rule) and the accepted tokens.
    pub fn new(config: &ServeConfig) -> Result<Service, ServeError> {
        let tokenizer = greenmark::text::load_tokenizer_json(&config.tokenizer)?;
        let vocab = tokenizer.get_vocab_size(true);
        let mut detectors = Vec::with_capacity(config.keys.len());
        let mut keys = Vec::with_capacity(config.keys.len());
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
            keys.push((file.key, wm));
        }
        let (key, wm) = keys
            .first()
            .cloned()
            .ok_or_else(|| ServeError::Config("keys is empty".into()))?;
        let generation = match &config.generation {
            Some(table) => Some(Arc::new(crate::chat::Generator::load(table, &tokenizer)?)),
            None => None,
        };
        let mut keyring = Keyring::new(detectors)?;
        for entry in &config.vllm {
            let vllm = VllmWatermarkConfig::load(&entry.config).map_err(|e| {
                ServeError::Config(format!(
                    "vLLM watermark config {} ({}): {e}",
                    entry.config.display(),
                    entry.name
                ))
            })?;
            keyring =
                keyring.with_gumbel(&entry.name, GumbelDetector::new(vllm.key, vllm.config)?)?;
        }
        let synthid_vocab = u32::try_from(vocab).unwrap_or(u32::MAX);
        for entry in &config.synthid {
            let detector = SynthIdConfig::load(&entry.config)
                .and_then(SynthIdDetector::new)
                .and_then(|d| {
                    d.with_eos(entry.eos_token_id)
                        .with_vocab_size(synthid_vocab)
                })
                .map_err(|e| {
                    ServeError::Config(format!(
                        "SynthID config {} ({}): {e}",
                        entry.config.display(),
                        entry.name
                    ))
                })?;
            keyring = keyring.with_synthid(&entry.name, detector)?;
        }
        Ok(Service {
            keyring,
            text: TextDetector::new(tokenizer, &key, wm)?,
            radioactivity: keys_for_test(keys),
            tokens: Tokens::new(&config.tokens)?,
            threshold: config.threshold,
            limits: config.limits.clone(),
            metrics: Metrics::default(),
            generation,
        })
    }
}

/// The routes the service answers; any other path counts as `other` in the metrics.
pub(crate) const ROUTES: [&str; 9] = [
    "/",
    "/page.js",
    "/page.css",
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/v1/detect",
    "/v1/radioactivity",
    GENERATION_ROUTE,
];

/// The service's routes.
pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/", get(docs::page))
        .route("/page.js", get(docs::script))
        .route("/page.css", get(docs::style))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(docs::openapi))
        .route("/v1/detect", post(detect::detect))
        .route("/v1/radioactivity", post(radioactivity::radioactivity))
        .route(GENERATION_ROUTE, post(crate::chat::completions))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint: see GET /openapi.json",
            )
        })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method: see GET /openapi.json",
            )
        })
        .layer(middleware::from_fn_with_state(Arc::clone(&service), track))
        .with_state(service)
}

/// The error code of a refused request, for the metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rejection(pub &'static str);

/// A refused request, answered as JSON: `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    retry_after: Option<u64>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(Rejection(self.code));
        response
    }
}

/// A refusal with `status`, a stable `code` and a message that says what to fix.
pub(crate) fn error(
    status: StatusCode,
    code: &'static str,
    message: impl Into<String>,
) -> ApiError {
    ApiError {
        status,
        code,
        message: message.into(),
        retry_after: None,
    }
}

/// Times every request, bounds it by the request timeout, and counts it.
async fn track(State(service): State<Arc<Service>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let path = request.uri().path();
    let route = ROUTES
        .iter()
        .find(|&&r| r == path)
        .copied()
        .unwrap_or("other");
    let in_flight = service.metrics.start();
    // A generation takes as long as its max_tokens asks (bounded by the operator's cap) and
    // stops when its client leaves; only reading its body is bounded by the timeout.
    let response = if route == GENERATION_ROUTE {
        next.run(request).await
    } else {
        match tokio::time::timeout(service.limits.request_timeout(), next.run(request)).await {
            Ok(response) => response,
            Err(_) => timed_out(&service.limits).into_response(),
        }
    };
    drop(in_flight);
    let rejection = response.extensions().get::<Rejection>().map(|r| r.0);
    service.metrics.record(
        route,
        response.status().as_u16(),
        rejection,
        start.elapsed(),
    );
    response
}

/// The route whose answers take as long as generation does.
const GENERATION_ROUTE: &str = "/v1/chat/completions";

/// The refusal of a request that took too long.
fn timed_out(limits: &Limits) -> ApiError {
    error(
        StatusCode::REQUEST_TIMEOUT,
        "timeout",
        format!(
            "the request took over {} s (limits.request_timeout_secs): send the body faster, \
             or split the work",
            limits.request_timeout_secs
        ),
    )
}

/// The caller of a request, if their token is valid and within its rate; otherwise the
/// 401 or 429 to answer.
pub(crate) fn admit(service: &Service, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(caller) = service.tokens.caller(authorization) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "give a valid token: Authorization: Bearer TOKEN",
        ));
    };
    if let Err(wait) = service.tokens.admit(caller) {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut refusal = error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("this token is over its request rate: retry in {seconds} s"),
        );
        refusal.retry_after = Some(seconds);
        return Err(refusal);
    }
    Ok(caller)
}

/// [`admit`], and only a trusted caller.
pub(crate) fn admit_trusted(
    service: &Service,
    headers: &HeaderMap,
    what: &str,
) -> Result<Caller, ApiError> {
    let caller = admit(service, headers)?;
    if caller.role != Role::Trusted {
        return Err(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("{what} needs a trusted token"),
        ));
    }
    Ok(caller)
}

/// The request body as JSON, at most `max` bytes, read within the request timeout.
pub(crate) async fn read_json(body: Body, max: usize, limits: &Limits) -> Result<Value, ApiError> {
    let read = tokio::time::timeout(limits.request_timeout(), to_bytes(body, max));
    let Ok(bytes) = read.await.map_err(|_| timed_out(limits))? else {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is over {max} bytes (or was cut off)"),
        ));
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("not JSON: {e}"),
        )
    })
}

/// Runs CPU-bound work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|_| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the work failed unexpectedly",
        )
    })
}

/// `GET /metrics`: the counters, for a trusted token (a scrape config takes a bearer token).
async fn metrics(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admit_trusted(&service, &headers, "/metrics")?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        service.metrics.render(),
    )
        .into_response())
}
