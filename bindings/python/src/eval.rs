//! `greenmark.evaluate`: the core's robustness evaluation ([`greenmark::eval`]) on token ids.

use std::path::PathBuf;

use greenmark::eval::{Attack, EvalOptions, Evaluator, Sample, Scorer};
use greenmark::{Detector, SpanOptions};
use pyo3::prelude::*;

use crate::config::config_arg;
use crate::errors::EnterGreenmark;
use crate::key::key_arg;

/// Attacks the watermarked texts (token ids) and scores them against the plain ones; returns
/// the JSON of `{"plain": [...], "attacks": [...]}` (the facade parses it). With
/// `span_min_tokens`, texts are scored by the span search instead of as a whole.
#[pyfunction]
#[pyo3(signature = (key, config, watermarked, plain, tokenizer, attacks, seed, span_min_tokens=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn evaluate(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    config: &Bound<'_, PyAny>,
    watermarked: Vec<Vec<u32>>,
    plain: Vec<Vec<u32>>,
    tokenizer: PathBuf,
    attacks: Vec<String>,
    seed: u64,
    span_min_tokens: Option<usize>,
) -> PyResult<String> {
    let (key, config) = (key_arg(key)?, config_arg(config)?);
    py.enter(|| {
        let tokenizer = greenmark::text::load_tokenizer_json(&tokenizer)?;
        config.check_tokenizer_vocab(tokenizer.get_vocab_size(true))?;
        let attacks = attacks
            .iter()
            .map(|a| a.parse::<Attack>())
            .collect::<greenmark::Result<Vec<_>>>()?;
        let samples = |texts: Vec<Vec<u32>>| {
            texts
                .into_iter()
                .map(|ids| Sample::from_ids(&tokenizer, ids))
                .collect::<greenmark::Result<Vec<_>>>()
        };
        let (w, p) = (samples(watermarked)?, samples(plain)?);
        let detector = Detector::new(&key, config);
        let scorer = match span_min_tokens {
            Some(min) => Scorer::KgwSpan(detector, SpanOptions::with_min_tokens(min)),
            None => Scorer::Kgw(detector),
        };
        let evaluator = Evaluator::new(&scorer, &tokenizer, &p, EvalOptions::seeded(seed))?;
        let rows = evaluator.run_all(&attacks, &w, &p)?;
        Ok(serde_json::json!({
            "scheme": scorer.scheme(),
            "scored_by": scorer.method(),
            "n_watermarked": w.len(),
            "n_plain": p.len(),
            "seed": seed,
            "plain": evaluator.plain_rows(),
            "attacks": rows,
        })
        .to_string())
    })
}
