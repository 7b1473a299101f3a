//! `POST /v1/radioactivity`: a bounded closed-mode radioactivity test on posted outputs of a
//! suspect model (Sander et al. 2024): were they produced by a model trained on our
//! watermarked text? The outputs are re-tokenized with the service's tokenizer, pooled into
//! one tape per key (each distinct tuple scored once) and tested with one exact p-value,
//! Bonferroni-corrected over the keys.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use greenmark::radioactivity::{ClosedTest, RadioactivityTest, TestOptions};
use greenmark::{Key, WatermarkConfig};
use serde::Deserialize;
use serde_json::Value;

use crate::api::{admit_trusted, blocking, error, read_json, ApiError, Service};

/// The keys a radioactivity test runs with: the service's keys when they all make the same
/// tokens green (delta may differ), else why not.
pub(crate) type RadioactivityKeys = Result<(Vec<Key>, WatermarkConfig), String>;

/// What the service can test: every key when they share one detection config.
pub(crate) fn keys_for_test(keys: Vec<(Key, WatermarkConfig)>) -> RadioactivityKeys {
    let mut iter = keys.into_iter();
    let (first_key, config) = iter.next().ok_or("no keys")?;
    let mut out = vec![first_key];
    for (i, (key, this)) in iter.enumerate() {
        if let Err(e) = config.check_same_detection(&this) {
            return Err(format!(
                "the service's keys 1 and {} make different tokens green ({e}): a pooled test \
                 needs one detection config",
                i + 2
            ));
        }
        out.push(key);
    }
    Ok((out, config))
}

/// The request: the suspect's outputs, the prompts they answered (whose windows are not
/// scored), and the number of tuples to score, fixed before looking (else exploratory).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    outputs: Vec<String>,
    #[serde(default)]
    prompts: Vec<String>,
    max_tuples: Option<u64>,
}

/// The handler (trusted callers only: a test on one short output would tell its colours).
pub(crate) async fn radioactivity(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    admit_trusted(&service, &headers, "a radioactivity test")?;
    let (keys, config) = service
        .radioactivity
        .clone()
        .map_err(|why| error(StatusCode::NOT_IMPLEMENTED, "not_available", why))?;
    let value = read_json(
        body,
        service.limits.max_radioactivity_body_bytes,
        &service.limits,
    )
    .await?;
    let request: Request = serde_json::from_value(value)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))?;
    let bad_input = |message: String| error(StatusCode::UNPROCESSABLE_ENTITY, "bad_input", message);
    if request.outputs.is_empty() {
        return Err(bad_input(
            "outputs is empty: post the suspect model's generated texts".into(),
        ));
    }
    if request.max_tuples == Some(0) {
        return Err(bad_input("max_tuples must be at least 1".into()));
    }
    let work = Arc::clone(&service);
    let record = blocking(move || run(&work, &keys, config, &request))
        .await?
        .map_err(bad_input)?;
    Ok(Json(record).into_response())
}

fn run(
    service: &Service,
    keys: &[Key],
    config: WatermarkConfig,
    request: &Request,
) -> Result<Value, String> {
    let mut options = TestOptions::default();
    if let Some(n) = request.max_tuples {
        options = options.max_tuples(n);
    }
    let test = RadioactivityTest::new(keys, config, options).map_err(|e| e.to_string())?;
    let mut closed = ClosedTest::from_tokenizer(service.text.tokenizer().clone(), test);
    for (i, prompt) in request.prompts.iter().enumerate() {
        closed
            .exclude_prompt(prompt)
            .map_err(|e| format!("prompts[{i}]: {e}"))?;
    }
    for (i, output) in request.outputs.iter().enumerate() {
        closed
            .score(output)
            .map_err(|e| format!("outputs[{i}]: {e}"))?;
    }
    let result = closed.finish();
    let radioactive = result.ln_p_bonferroni < service.threshold.ln();
    let mut record = serde_json::to_value(&result).map_err(|e| e.to_string())?;
    record["threshold"] = service.threshold.into();
    record["radioactive"] = radioactive.into();
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(gamma: f64, delta: f64) -> WatermarkConfig {
        WatermarkConfig::builder(49_152)
            .gamma(gamma)
            .delta(delta)
            .build()
            .unwrap()
    }

    #[test]
    fn keys_pool_only_when_they_make_the_same_tokens_green() {
        let key = |b| Key::from_bytes([b; 32]);
        let same = keys_for_test(vec![
            (key(1), config(0.25, 2.0)),
            (key(2), config(0.25, 4.0)),
        ]);
        assert_eq!(same.unwrap().0.len(), 2, "delta alone may differ");
        let err = keys_for_test(vec![
            (key(1), config(0.25, 2.0)),
            (key(2), config(0.5, 2.0)),
        ])
        .unwrap_err();
        assert!(
            err.contains("keys 1 and 2") && err.contains("gamma"),
            "{err}"
        );
        assert!(!err.contains(&key(2).to_hex()));
    }
}
