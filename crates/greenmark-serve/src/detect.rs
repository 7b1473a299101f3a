//! `POST /v1/detect`: one text or a batch, scored by the core's one detection model
//! ([`greenmark::Keyring::score`]); a trusted caller may also ask for each token's colour.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use greenmark::detect::Engine;
use greenmark::synthid::SynthIdDetector;
use greenmark::text::{Answer, Query, Source};
use greenmark::{Keyring, SkipReason, SpanOptions, TokenScore};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{admit, blocking, error, read_json, ApiError, Service};
use crate::config::Role;

/// The fields a `public` token sees: the verdict and the p-value.
pub(crate) const PUBLIC_FIELDS: [&str; 6] = [
    "watermarked",
    "p_value",
    "ln_p_value",
    "log10_p_value",
    "threshold",
    "key_id",
];

/// One text to detect in.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Input {
    text: Option<String>,
    ids: Option<Vec<u32>>,
    prompt: Option<String>,
    prompt_ids: Option<Vec<u32>>,
    #[serde(default)]
    span: bool,
    min_span_tokens: Option<usize>,
    /// Each token's colour under the strongest key (trusted callers only).
    #[serde(default)]
    tokens: bool,
    /// Test only these keys (ids as answers print them, or vLLM config labels).
    keys: Option<Vec<String>>,
}

/// Several texts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    inputs: Vec<Input>,
}

/// The handler.
pub(crate) async fn detect(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = admit(&service, &headers)?;
    let value = read_json(body, service.limits.max_body_bytes, &service.limits).await?;
    let batch = value.get("inputs").is_some();
    let parsed = if batch {
        serde_json::from_value::<Batch>(value).map(|b| b.inputs)
    } else {
        serde_json::from_value::<Input>(value).map(|input| vec![input])
    };
    let inputs =
        parsed.map_err(|e| error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))?;
    if inputs.len() > service.limits.max_batch {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "{} inputs, the limit is {}: split the batch",
                inputs.len(),
                service.limits.max_batch
            ),
        ));
    }
    if caller.role == Role::Public && inputs.iter().any(|i| i.tokens) {
        return Err(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "per-token colours need a trusted token: shown to anyone, they would let a \
             caller learn the green lists one query at a time",
        ));
    }
    let work = Arc::clone(&service);
    let records = blocking(move || {
        inputs
            .iter()
            .map(|input| work.score(input, caller.role))
            .collect::<Vec<_>>()
    })
    .await?;
    if batch {
        let results: Vec<Value> = records
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(
                    |message| json!({"error": {"code": "bad_input", "message": message}}),
                )
            })
            .collect();
        return Ok(Json(json!({ "results": results })).into_response());
    }
    match records.into_iter().next() {
        Some(Ok(record)) => Ok(Json(record).into_response()),
        Some(Err(message)) => Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_input",
            message,
        )),
        None => Err(error(StatusCode::BAD_REQUEST, "bad_request", "no input")),
    }
}

impl Service {
    /// One input's record (the fields `greenmark detect --json` prints), cut to what `role`
    /// may see, or why it cannot be scored.
    pub(crate) fn score(&self, input: &Input, role: Role) -> Result<Value, String> {
        let source = match (&input.text, &input.ids) {
            (Some(_), Some(_)) => return Err("give text or ids, not both".into()),
            (None, None) => {
                return Err("give the text to check (text) or its token ids (ids)".into())
            }
            (Some(text), None) => Source::Text(text),
            (None, Some(ids)) => Source::Ids(ids),
        };
        let mut query = Query::new(source);
        match (&input.prompt, &input.prompt_ids) {
            (Some(_), Some(_)) => return Err("give prompt or prompt_ids, not both".into()),
            (Some(text), None) => query = query.with_prompt(Source::Text(text)),
            (None, Some(ids)) => query = query.with_prompt(Source::Ids(ids)),
            (None, None) => {}
        }
        match (input.span, input.min_span_tokens) {
            (false, Some(_)) => return Err("min_span_tokens needs \"span\": true".into()),
            (false, None) => {}
            (true, n) => {
                query = query
                    .with_span(n.map_or_else(SpanOptions::default, SpanOptions::with_min_tokens))
            }
        }
        let selected;
        let keyring = match &input.keys {
            None => &self.keyring,
            Some(names) => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                selected = self.keyring.select(&names).map_err(|e| e.to_string())?;
                &selected
            }
        };
        let answer = query
            .score(keyring, Some(&self.text))
            .map_err(|e| e.to_string())?;
        self.metrics.scored(1, answer.ids.len() as u64);
        let mut record = answer.to_json(self.threshold);
        let object = record.as_object_mut().expect("a record is an object");
        if input.tokens {
            object.insert("tokens".into(), self.token_detail(keyring, input, &answer)?);
        }
        if role == Role::Public {
            object.retain(|field, _| PUBLIC_FIELDS.contains(&field.as_str()));
        }
        Ok(record)
    }

    /// Each token under the strongest key: its id, its text (for text input), and its colour
    /// (a greenmark key) or its score: `-ln(1 - u)` for a vLLM Gumbel config, the mean of its
    /// g-values over the depths for a SynthID config (null where the detector skipped it, or
    /// where the token ends no ngram).
    fn token_detail(
        &self,
        keyring: &Keyring,
        input: &Input,
        answer: &Answer,
    ) -> Result<Value, String> {
        let (ids, prompt) = (&answer.ids, &answer.prompt);
        let strongest = answer.scored.strongest_key();
        let kgw = keyring.detectors();
        // The colours of the strongest greenmark key (the first, when a Gumbel config fired:
        // its annotation then only gives the text pieces).
        let detector = kgw.get(strongest).unwrap_or(&kgw[0]);
        let (scores, pieces) = match &input.text {
            Some(text) => {
                let annotation = self
                    .text
                    .annotate_with(detector, text, prompt)
                    .map_err(|e| e.to_string())?;
                // Each token's text runs from the previous token's end, so the spaces the
                // tokenizer's offsets leave out are kept and the pieces spell the text.
                let mut from = 0;
                let pieces: Vec<String> = annotation
                    .tokens
                    .iter()
                    .map(|t| {
                        let end = t.end.max(from);
                        let piece = annotation.normalized[from..end].to_string();
                        from = end;
                        piece
                    })
                    .collect();
                let scores = annotation.tokens.iter().map(|t| t.score).collect();
                (scores, Some(pieces))
            }
            None => (
                detector.annotate(ids, prompt).map_err(|e| e.to_string())?.1,
                None,
            ),
        };
        // A config that fired gives each token a score instead of a colour.
        let engine_scores = match strongest.checked_sub(kgw.len()) {
            Some(i) => Some(match &keyring.engines()[i].1 {
                Engine::Gumbel(g) => g.annotate(ids).map_err(|e| e.to_string())?.1,
                Engine::SynthId(s) => synthid_token_scores(s, ids),
                _ => vec![None; ids.len()],
            }),
            None => None,
        };
        let tokens = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| {
                let mut entry = match &engine_scores {
                    Some(g) => json!({ "score": g[i] }),
                    None => colour(scores[i]),
                };
                entry["id"] = json!(id);
                if let Some(pieces) = &pieces {
                    entry["text"] = json!(pieces[i]);
                }
                entry
            })
            .collect();
        Ok(Value::Array(tokens))
    }
}

/// Each token's mean g-value under a SynthID config: the fraction of ones among the g-values
/// of the ngram it ends (none for the first `ngram_len - 1` tokens).
fn synthid_token_scores(detector: &SynthIdDetector, ids: &[u32]) -> Vec<Option<f64>> {
    let table = detector.table();
    let (depth, skip) = (table.depth(), table.config().ngram_len - 1);
    let g = table.g_values(ids);
    let mut scores = vec![None; ids.len().min(skip)];
    scores.extend(
        g.chunks(depth)
            .map(|ngram| Some(ngram.iter().map(|&v| f64::from(v)).sum::<f64>() / depth as f64)),
    );
    scores.resize(ids.len(), None);
    scores
}

/// A token's colour: green or red when scored, grey (with the reason) when not.
fn colour(score: TokenScore) -> Value {
    match score {
        TokenScore::Green => json!({"colour": "green"}),
        TokenScore::Red => json!({"colour": "red"}),
        TokenScore::Skipped(reason) => json!({"colour": "grey", "unscored": match reason {
            SkipReason::NoWindow => "no_window",
            SkipReason::Repeated => "repeated",
            _ => "other",
        }}),
        _ => json!({"colour": "grey", "unscored": "other"}),
    }
}
