//! `GumbelDetector`, `GumbelWatermarker` and `GumbelDetection`: the Gumbel family, compatible
//! with vLLM's native watermark. Conversions only; the work is in `greenmark::gumbel`.

use greenmark::gumbel::{
    Algorithm, ContextDedup, GumbelConfig, GumbelDetection, GumbelDetector, GumbelKey,
    GumbelRequest, GumbelWatermarker, PartialContexts, VllmWatermarkConfig,
};
use greenmark::Error;
use numpy::PyUntypedArrayMethods;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt};

use crate::arrays;
use crate::errors::{to_py, type_error, EnterGreenmark};
use crate::key::PyKey;

/// vLLM's `u64` key (an int), or a `greenmark.Key` (native scheme ids).
pub(crate) fn gumbel_key(obj: &Bound<'_, PyAny>) -> PyResult<GumbelKey> {
    if let Ok(key) = obj.cast::<PyKey>() {
        return Ok(GumbelKey::from_key(&key.get().0));
    }
    if obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<pyo3::types::PyBool>() {
        return obj.extract::<u64>().map(GumbelKey::vllm).map_err(|_| {
            to_py(Error::InvalidKey(
                "a vLLM watermark key must be an integer from 0 to 2**64 - 1".into(),
            ))
        });
    }
    Err(type_error(
        "key",
        "an int (vLLM's --watermark-config key) or a greenmark.Key",
        obj,
    ))
}

pub(crate) fn gumbel_config(
    algorithm: &str,
    alpha: f64,
    context_width: usize,
    deduplicate_contexts: &str,
    max_history: Option<usize>,
    partial_contexts: &str,
) -> PyResult<GumbelConfig> {
    let mut config = GumbelConfig::new(algorithm.parse::<Algorithm>().map_err(to_py)?);
    config.alpha = alpha;
    config.context_width = context_width;
    config.dedup = deduplicate_contexts
        .parse::<ContextDedup>()
        .map_err(to_py)?;
    config.max_history = max_history;
    config.partial_contexts = partial_contexts.parse::<PartialContexts>().map_err(to_py)?;
    config.validate().map_err(to_py)?;
    Ok(config)
}

/// The result of scoring one token sequence for a Gumbel watermark. `p_value` is vLLM's
/// (it underflows to 0 below 1e-308: use `log10_p_value`); `ln_p_value_bound` is exact or
/// provably conservative (it differs only for dual-key with alpha not in {0, 0.5, 1}) and
/// decides `is_watermarked`.
#[pyclass(
    name = "GumbelDetection",
    module = "greenmark._greenmark",
    frozen,
    get_all
)]
pub(crate) struct PyGumbelDetection {
    /// Tokens given.
    n_tokens: usize,
    /// Tokens scored (first occurrence of each context, with dedup).
    n_scored: u64,
    /// The sum of the per-token scores -log1p(-u).
    score: f64,
    /// vLLM's p-value.
    p_value: f64,
    /// Natural log of the p-value.
    ln_p_value: f64,
    /// Base-10 log of the p-value.
    log10_p_value: f64,
    /// Whether p_value is exact under the null.
    exact: bool,
    /// Natural log of an exact or provably conservative p-value.
    ln_p_value_bound: f64,
    /// exp(ln_p_value_bound) <= threshold: vLLM's verdict (p_value <= threshold) when exact,
    /// the conservative one otherwise.
    is_watermarked: bool,
    /// The threshold used.
    threshold: f64,
    /// Whether repeated contexts were skipped.
    dedup: bool,
    /// The scheme's versioned id.
    scheme: &'static str,
}

impl From<GumbelDetection> for PyGumbelDetection {
    fn from(d: GumbelDetection) -> Self {
        PyGumbelDetection {
            n_tokens: d.n_tokens,
            n_scored: d.n_scored,
            score: d.score,
            p_value: d.p_value,
            ln_p_value: d.ln_p_value,
            log10_p_value: d.log10_p_value,
            exact: d.exact,
            ln_p_value_bound: d.ln_p_value_bound,
            is_watermarked: d.is_watermarked,
            threshold: d.threshold,
            dedup: d.dedup,
            scheme: d.scheme,
        }
    }
}

#[pymethods]
impl PyGumbelDetection {
    /// The fields as a dict.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("n_tokens", self.n_tokens)?;
        d.set_item("n_scored", self.n_scored)?;
        d.set_item("score", self.score)?;
        d.set_item("p_value", self.p_value)?;
        d.set_item("ln_p_value", self.ln_p_value)?;
        d.set_item("log10_p_value", self.log10_p_value)?;
        d.set_item("exact", self.exact)?;
        d.set_item("ln_p_value_bound", self.ln_p_value_bound)?;
        d.set_item("is_watermarked", self.is_watermarked)?;
        d.set_item("threshold", self.threshold)?;
        d.set_item("dedup", self.dedup)?;
        d.set_item("scheme", self.scheme)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "GumbelDetection(n_scored={}, score={:.4}, log10_p_value={:.3}, is_watermarked={}, scheme={:?})",
            self.n_scored,
            self.score,
            self.log10_p_value,
            if self.is_watermarked { "True" } else { "False" },
            self.scheme
        )
    }
}

/// Detects vLLM's native watermark (or greenmark's own Gumbel watermark) in generated ids.
#[pyclass(name = "GumbelDetector", module = "greenmark._greenmark", frozen)]
pub(crate) struct PyGumbelDetector(pub(crate) GumbelDetector);

#[pymethods]
impl PyGumbelDetector {
    #[new]
    #[pyo3(signature = (key, *, algorithm="gumbel", alpha=0.1, context_width=4, dedup=true, threshold=0.01))]
    fn new(
        key: &Bound<'_, PyAny>,
        algorithm: &str,
        alpha: f64,
        context_width: usize,
        dedup: bool,
        threshold: f64,
    ) -> PyResult<Self> {
        let config = gumbel_config(algorithm, alpha, context_width, "single_turn", None, "skip")?;
        let detector = GumbelDetector::new(gumbel_key(key)?, config)
            .and_then(|d| d.with_dedup(dedup).with_threshold(threshold))
            .map_err(to_py)?;
        Ok(PyGumbelDetector(detector))
    }

    /// A detector from the JSON given to `vllm serve --watermark-config`.
    #[staticmethod]
    #[pyo3(signature = (json, *, dedup=true, threshold=0.01))]
    fn from_vllm_config(json: &str, dedup: bool, threshold: f64) -> PyResult<Self> {
        let vllm = VllmWatermarkConfig::from_json(json).map_err(to_py)?;
        let detector = GumbelDetector::new(vllm.key, vllm.config)
            .and_then(|d| d.with_dedup(dedup).with_threshold(threshold))
            .map_err(to_py)?;
        Ok(PyGumbelDetector(detector))
    }

    /// A detector from the JSON file given to `vllm serve --watermark-config` (a regular file
    /// of at most 64 KiB, read by the core's bounded reader).
    #[staticmethod]
    #[pyo3(signature = (path, *, dedup=true, threshold=0.01))]
    fn from_vllm_config_file(
        py: Python<'_>,
        path: std::path::PathBuf,
        dedup: bool,
        threshold: f64,
    ) -> PyResult<Self> {
        let detector = py.enter(|| {
            let vllm = VllmWatermarkConfig::load(&path)?;
            GumbelDetector::new(vllm.key, vllm.config)
                .and_then(|d| d.with_dedup(dedup).with_threshold(threshold))
        })?;
        Ok(PyGumbelDetector(detector))
    }

    /// The scheme id.
    #[getter]
    fn scheme(&self) -> &'static str {
        self.0.scheme()
    }

    /// Scores generated ids (T,) (not the prompt).
    fn detect(&self, py: Python<'_>, ids: &Bound<'_, PyAny>) -> PyResult<PyGumbelDetection> {
        let tokens = arrays::token_ids(ids, "ids")?;
        py.enter(|| self.0.detect(&tokens)).map(Into::into)
    }

    /// Scores many id sequences in parallel with the GIL released; same results as `detect`
    /// on each.
    fn detect_batch(
        &self,
        py: Python<'_>,
        texts: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<PyGumbelDetection>> {
        let seqs = arrays::id_sequences(texts)?;
        let out = py.enter(|| self.0.detect_batch(&seqs))?;
        Ok(out.into_iter().map(Into::into).collect())
    }

    fn __repr__(&self) -> String {
        format!("GumbelDetector(scheme={:?})", self.0.scheme())
    }
}

/// The Gumbel-max sampling rule, for generation loops outside vLLM (transformers, llama.cpp).
/// `partial_contexts="skip"` (the default, as vLLM 0.34 serves) samples the first
/// `context_width` positions normally; "watermark" marks them too, as vLLM 0.33 did.
#[pyclass(name = "GumbelWatermarker", module = "greenmark._greenmark", frozen)]
pub(crate) struct PyGumbelWatermarker(GumbelWatermarker);

impl PyGumbelWatermarker {
    /// A request state replayed over `prompt` and `generated`.
    fn replay(&self, generated: &[u32], prompt: &[u32]) -> greenmark::gumbel::GumbelRequest<'_> {
        let mut request = self.0.request(prompt);
        for &token in generated {
            request.push(token);
        }
        request
    }
}

/// One logits row (V,) of float32, C-contiguous.
fn logits_row<'py>(
    logits: &'py Bound<'py, PyAny>,
) -> PyResult<numpy::PyReadwriteArrayDyn<'py, f32>> {
    let row = arrays::logits(logits)?;
    if row.ndim() != 1 {
        return Err(crate::errors::ShapeError::new_err(format!(
            "logits must be one row of shape (V,), got shape {:?}",
            row.shape()
        )));
    }
    Ok(row)
}

/// One request's generation state, kept across steps: each step costs the same however long
/// the answer grows (the dedup index is updated, not rebuilt).
#[pyclass(name = "GumbelRequest", module = "greenmark._greenmark")]
pub(crate) struct PyGumbelRequest(GumbelRequest<'static>);

#[pymethods]
impl PyGumbelRequest {
    /// The generated ids so far.
    #[getter]
    fn generated(&self) -> Vec<u32> {
        self.0.generated().to_vec()
    }

    /// How many generated positions were watermarkable (not skipped as repeated contexts).
    #[getter]
    fn n_watermarked(&self) -> usize {
        self.0.n_watermarked()
    }

    /// Whether the next position is watermarked (False where its context repeats, per the
    /// dedup mode).
    fn next_is_watermarked(&mut self) -> bool {
        self.0.next_is_watermarked()
    }

    /// The watermarked token for the next position from a float32 logits row (V,) after
    /// temperature / top-k / top-p. Call where `next_is_watermarked()` is True; sample
    /// normally elsewhere. Then `push` the token chosen.
    #[pyo3(signature = (logits, *, route_u=0.0))]
    fn sample(&self, py: Python<'_>, logits: &Bound<'_, PyAny>, route_u: f32) -> PyResult<u32> {
        let row = logits_row(logits)?;
        let row = row
            .as_slice()
            .expect("checked C-contiguous by arrays::logits");
        py.enter(|| self.0.sample_watermarked(row, route_u))
    }

    /// Appends the token chosen for the next position.
    fn push(&mut self, token: u32) -> PyResult<()> {
        greenmark::gumbel::check_tokens(&[token]).map_err(to_py)?;
        self.0.push(token);
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!(
            "GumbelRequest(generated={}, n_watermarked={})",
            self.0.generated().len(),
            self.0.n_watermarked()
        )
    }
}

#[pymethods]
impl PyGumbelWatermarker {
    #[new]
    #[pyo3(signature = (key, *, algorithm="gumbel", alpha=0.1, context_width=4, deduplicate_contexts="single_turn", max_history=Some(8192), partial_contexts="skip"))]
    fn new(
        key: &Bound<'_, PyAny>,
        algorithm: &str,
        alpha: f64,
        context_width: usize,
        deduplicate_contexts: &str,
        max_history: Option<usize>,
        partial_contexts: &str,
    ) -> PyResult<Self> {
        let config = gumbel_config(
            algorithm,
            alpha,
            context_width,
            deduplicate_contexts,
            max_history,
            partial_contexts,
        )?;
        GumbelWatermarker::new(gumbel_key(key)?, config)
            .map(PyGumbelWatermarker)
            .map_err(to_py)
    }

    /// The scheme id.
    #[getter]
    fn scheme(&self) -> &'static str {
        self.0.scheme()
    }

    /// Whether the next position after `generated` is watermarked (False where its context
    /// repeats, per the dedup mode; `prompt` matters only for "all").
    #[pyo3(signature = (generated, *, prompt=None))]
    fn is_watermarked_position(
        &self,
        generated: &Bound<'_, PyAny>,
        prompt: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let generated = arrays::token_ids(generated, "generated")?;
        let prompt = match prompt {
            Some(p) => arrays::token_ids(p, "prompt")?,
            None => Vec::new(),
        };
        Ok(self.replay(&generated, &prompt).next_is_watermarked())
    }

    /// The watermarked token for a float32 logits row (V,) after temperature / top-k / top-p,
    /// keyed by the last `context_width` ids of `generated`; `route_u` (uniform in [0, 1)
    /// from your sampler) routes dual-key steps. Costs O(V + context_width), whatever the
    /// length of `generated`; for the dedup decision across steps, keep a `request()`.
    #[pyo3(signature = (logits, generated, *, route_u=0.0))]
    fn sample(
        &self,
        py: Python<'_>,
        logits: &Bound<'_, PyAny>,
        generated: &Bound<'_, PyAny>,
        route_u: f32,
    ) -> PyResult<u32> {
        let row = logits_row(logits)?;
        let generated = arrays::token_ids(generated, "generated")?;
        let row = row
            .as_slice()
            .expect("checked C-contiguous by arrays::logits");
        let context = greenmark::gumbel::padded_context(&generated, self.0.config().context_width)
            .map_err(to_py)?;
        py.enter(|| self.0.sample(row, &context, self.0.route(route_u)))
    }

    /// A request's generation state after `prompt` (which matters only for
    /// deduplicate_contexts="all"), kept across steps.
    #[pyo3(signature = (prompt=None))]
    fn request(&self, prompt: Option<&Bound<'_, PyAny>>) -> PyResult<PyGumbelRequest> {
        let prompt = match prompt {
            Some(p) => arrays::token_ids(p, "prompt")?,
            None => Vec::new(),
        };
        Ok(PyGumbelRequest(self.0.clone().into_request(&prompt)))
    }

    fn __repr__(&self) -> String {
        format!("GumbelWatermarker(scheme={:?})", self.0.scheme())
    }
}

/// Adds the Gumbel classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyGumbelRequest>()?;
    m.add_class::<PyGumbelDetection>()?;
    m.add_class::<PyGumbelDetector>()?;
    m.add_class::<PyGumbelWatermarker>()
}
