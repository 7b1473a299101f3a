//! `greenmark.Detector`, `greenmark.TextDetector` and the `greenmark.Detection` they return.

use std::path::PathBuf;

use greenmark::text::TextDetector;
use greenmark::{Detection, Detector, SpanDetection, SpanOptions, TokenScore};
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::arrays;
use crate::config::{config_arg, PyConfig};
use crate::errors::{to_py, type_error, EnterGreenmark};
use crate::key::key_arg;

/// The result of scoring one text: counts, z-score and the exact binomial p-value (use the log
/// fields below 1e-308, where `p_value` underflows to 0).
#[pyclass(name = "Detection", module = "greenmark._greenmark", frozen)]
pub(crate) struct PyDetection {
    /// The core's detection, for its rules (the verdict).
    inner: Detection,
    /// Tokens in the text (prompt excluded).
    #[pyo3(get)]
    n_tokens: usize,
    /// Tokens that counted (full window, tuple not seen before).
    #[pyo3(get)]
    n_scored: u64,
    /// Scored tokens that were green.
    #[pyo3(get)]
    n_green: u64,
    /// n_green / n_scored.
    #[pyo3(get)]
    green_fraction: f64,
    /// Normal-approximation z-score, for orientation only.
    #[pyo3(get)]
    z_score: f64,
    /// Exact one-sided binomial tail P(X >= n_green).
    #[pyo3(get)]
    p_value: f64,
    /// Natural log of the p-value.
    #[pyo3(get)]
    ln_p_value: f64,
    /// Base-10 log of the p-value.
    #[pyo3(get)]
    log10_p_value: f64,
    /// The exact null probability of green used.
    #[pyo3(get)]
    gamma: f64,
    /// Whether repeated tuples were skipped.
    #[pyo3(get)]
    dedup: bool,
    /// The scheme's versioned id.
    #[pyo3(get)]
    scheme: &'static str,
    /// The key's public id.
    #[pyo3(get)]
    key_id: String,
    /// Per token (with `annotate=True`): 1 green, 0 red, -1 no full window, -2 repeated tuple.
    #[pyo3(get)]
    annotations: Option<Py<PyArray1<i8>>>,
    /// Text normalizations applied before tokenizing, as (what, count) (text detection only).
    #[pyo3(get)]
    normalizations: Vec<(&'static str, usize)>,
}

impl PyDetection {
    pub(crate) fn new(d: Detection) -> Self {
        PyDetection {
            inner: d.clone(),
            n_tokens: d.n_tokens,
            n_scored: d.n_scored,
            n_green: d.n_green,
            green_fraction: d.green_fraction,
            z_score: d.z_score,
            p_value: d.p_value,
            ln_p_value: d.ln_p_value,
            log10_p_value: d.log10_p_value,
            gamma: d.gamma,
            dedup: d.dedup,
            scheme: d.scheme,
            key_id: d.key_id.to_string(),
            annotations: None,
            normalizations: Vec::new(),
        }
    }
}

fn annotation_code(score: TokenScore) -> i8 {
    match score {
        TokenScore::Green => 1,
        TokenScore::Red => 0,
        TokenScore::Skipped(greenmark::SkipReason::NoWindow) => -1,
        TokenScore::Skipped(_) => -2,
        _ => -2,
    }
}

#[pymethods]
impl PyDetection {
    /// Whether the watermark is detected at `threshold`: p < threshold, compared in log space
    /// (so p-values below 1e-308 count). Nothing scored is never significant.
    #[pyo3(signature = (threshold=1e-6))]
    fn is_significant(&self, threshold: f64) -> PyResult<bool> {
        significant(threshold, |t| self.inner.is_significant(t))
    }

    /// The statistics as a dict (annotations left out).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("n_tokens", self.n_tokens)?;
        d.set_item("n_scored", self.n_scored)?;
        d.set_item("n_green", self.n_green)?;
        d.set_item("green_fraction", self.green_fraction)?;
        d.set_item("z_score", self.z_score)?;
        d.set_item("p_value", self.p_value)?;
        d.set_item("ln_p_value", self.ln_p_value)?;
        d.set_item("log10_p_value", self.log10_p_value)?;
        d.set_item("gamma", self.gamma)?;
        d.set_item("dedup", self.dedup)?;
        d.set_item("scheme", self.scheme)?;
        d.set_item("key_id", &self.key_id)?;
        d.set_item("normalizations", self.normalizations.clone())?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "Detection(n_scored={}, n_green={}, green_fraction={:.4}, z_score={:.3}, log10_p_value={:.3}, scheme={:?}, key_id={:?})",
            self.n_scored,
            self.n_green,
            self.green_fraction,
            self.z_score,
            self.log10_p_value,
            self.scheme,
            self.key_id
        )
    }
}

/// Scores token ids for one key and config; share it across threads freely.
#[pyclass(name = "Detector", module = "greenmark._greenmark", frozen)]
pub(crate) struct PyDetector(pub(crate) Detector);

#[pymethods]
impl PyDetector {
    #[new]
    #[pyo3(signature = (key, config, *, dedup=true))]
    fn new(key: &Bound<'_, PyAny>, config: &Bound<'_, PyAny>, dedup: bool) -> PyResult<Self> {
        Ok(PyDetector(
            Detector::new(&key_arg(key)?, config_arg(config)?).with_dedup(dedup),
        ))
    }

    /// The config scored for.
    #[getter]
    fn config(&self) -> PyConfig {
        PyConfig(self.0.config().clone())
    }

    /// Scores token ids (T,). `prompt` ids give the windows of the first tokens and are not
    /// scored. With `annotate=True` the result carries one code per token.
    #[pyo3(signature = (ids, *, prompt=None, annotate=false))]
    fn detect(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        prompt: Option<&Bound<'_, PyAny>>,
        annotate: bool,
    ) -> PyResult<PyDetection> {
        let tokens = arrays::ids(ids, "ids", &[1], None)?.data;
        let prompt = prompt_ids(prompt)?;
        if annotate {
            let (d, scores) = py.enter(|| self.0.annotate(&tokens, &prompt))?;
            let codes: Vec<i8> = scores.into_iter().map(annotation_code).collect();
            let mut out = PyDetection::new(d);
            out.annotations = Some(PyArray1::from_vec(py, codes).unbind());
            Ok(out)
        } else {
            py.enter(|| self.0.detect(&tokens, &prompt))
                .map(PyDetection::new)
        }
    }

    /// Searches ids (T,) for the most strongly watermarked span (a watermarked paste inside
    /// longer text): windows of `min_tokens`, twice that, ... and the whole text; the p-value
    /// is corrected for every window tried.
    #[pyo3(signature = (ids, *, prompt=None, min_tokens=50))]
    fn find_span(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        prompt: Option<&Bound<'_, PyAny>>,
        min_tokens: usize,
    ) -> PyResult<PySpanDetection> {
        let (tokens, prompt, options) = span_args(ids, prompt, min_tokens)?;
        let d = py.enter(|| self.0.find_span(&tokens, &prompt, options))?;
        PySpanDetection::new(py, d)
    }

    /// Scores many id sequences (each deduplicated on its own), in parallel with the GIL
    /// released. Same results as calling `detect` on each.
    fn detect_batch(&self, py: Python<'_>, texts: &Bound<'_, PyAny>) -> PyResult<Vec<PyDetection>> {
        let seqs = sequence_items(texts, "texts")?
            .iter()
            .map(|t| arrays::ids(t, "each sequence", &[1], None).map(|i| i.data))
            .collect::<PyResult<Vec<_>>>()?;
        let out = py.enter(|| self.0.detect_batch(&seqs))?;
        Ok(out.into_iter().map(PyDetection::new).collect())
    }

    fn __repr__(&self) -> String {
        format!("Detector(config={})", self.0.config().to_json())
    }
}

/// The arguments of a span search: ids (T,), prompt ids (or none) and the options.
pub(crate) fn span_args(
    ids: &Bound<'_, PyAny>,
    prompt: Option<&Bound<'_, PyAny>>,
    min_tokens: usize,
) -> PyResult<(Vec<u32>, Vec<u32>, SpanOptions)> {
    let tokens = arrays::ids(ids, "ids", &[1], None)?.data;
    Ok((
        tokens,
        prompt_ids(prompt)?,
        SpanOptions::with_min_tokens(min_tokens),
    ))
}

/// A verdict at a user's threshold: the threshold checked by the core's rule, then `verdict`.
pub(crate) fn significant(threshold: f64, verdict: impl FnOnce(f64) -> bool) -> PyResult<bool> {
    let threshold = greenmark::stats::check_threshold(threshold).map_err(to_py)?;
    Ok(verdict(threshold))
}

/// Prompt ids (T,), or none.
pub(crate) fn prompt_ids(prompt: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<u32>> {
    match prompt {
        Some(p) => Ok(arrays::ids(p, "prompt", &[1], None)?.data),
        None => Ok(Vec::new()),
    }
}

/// A core result as a Python dict, through its JSON: the same field names as the CLI's
/// `--json` output.
pub(crate) fn json_dict<'py, T: serde::Serialize>(
    py: Python<'py>,
    value: &T,
) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value)
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// The most strongly watermarked span found by `find_span`. Its `p_value` is corrected for
/// every window tried; `span` holds the span's own counts, whose p-value is *uncorrected*.
#[pyclass(name = "SpanDetection", module = "greenmark._greenmark", frozen)]
pub(crate) struct PySpanDetection {
    inner: SpanDetection,
    /// First token of the span (index into the ids or the text's tokens).
    #[pyo3(get)]
    start: usize,
    /// One past the span's last token.
    #[pyo3(get)]
    end: usize,
    /// How many windows were tried.
    #[pyo3(get)]
    windows_tried: u64,
    /// The corrected p-value, min(1, windows_tried * the span's own p-value).
    #[pyo3(get)]
    p_value: f64,
    /// Natural log of the corrected p-value.
    #[pyo3(get)]
    ln_p_value: f64,
    /// Base-10 log of the corrected p-value.
    #[pyo3(get)]
    log10_p_value: f64,
    /// The span's own statistics (uncorrected p-value).
    #[pyo3(get)]
    span: Py<PyDetection>,
}

impl PySpanDetection {
    pub(crate) fn new(py: Python<'_>, d: SpanDetection) -> PyResult<Self> {
        Ok(PySpanDetection {
            start: d.start,
            end: d.end,
            windows_tried: d.windows_tried,
            p_value: d.p_value,
            ln_p_value: d.ln_p_value,
            log10_p_value: d.log10_p_value,
            span: Py::new(py, PyDetection::new(d.span.clone()))?,
            inner: d,
        })
    }
}

#[pymethods]
impl PySpanDetection {
    /// Whether a watermarked span is detected at `threshold`, on the corrected p-value.
    #[pyo3(signature = (threshold=1e-6))]
    fn is_significant(&self, threshold: f64) -> PyResult<bool> {
        significant(threshold, |t| self.inner.is_significant(t))
    }

    /// The result as a dict; the span's own p-values are named `uncorrected_*`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_dict(py, &self.inner)
    }

    fn __repr__(&self) -> String {
        format!(
            "SpanDetection(start={}, end={}, windows_tried={}, log10_p_value={:.3})",
            self.start, self.end, self.windows_tried, self.log10_p_value
        )
    }
}

fn sequence_items<'py>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if obj.is_instance_of::<pyo3::types::PyString>() {
        return Err(type_error(name, "a list", obj));
    }
    obj.try_iter()
        .map_err(|_| type_error(name, "a list", obj))?
        .collect()
}

/// Detects the watermark in raw text, tokenizing with a `tokenizer.json` (the model's HF
/// tokenizer). Text is normalized first (invisible characters removed, NFC).
#[pyclass(name = "TextDetector", module = "greenmark._greenmark", frozen)]
pub(crate) struct PyTextDetector(TextDetector);

fn text_detection(d: greenmark::text::TextDetection) -> PyDetection {
    let mut out = PyDetection::new(d.detection);
    out.normalizations = d.normalizations.iter().map(|a| (a.what, a.count)).collect();
    out
}

#[pymethods]
impl PyTextDetector {
    #[new]
    fn new(
        py: Python<'_>,
        tokenizer: PathBuf,
        key: &Bound<'_, PyAny>,
        config: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let (key, config) = (key_arg(key)?, config_arg(config)?);
        py.enter(|| TextDetector::from_file(&tokenizer, &key, config))
            .map(PyTextDetector)
    }

    /// Token ids of `text` after normalization (no special tokens), as the detector sees them.
    fn encode(&self, py: Python<'_>, text: &str) -> PyResult<Vec<u32>> {
        py.enter(|| self.0.encode(text))
    }

    /// Detects the watermark in `text`. `prompt` (the text it answered) is tokenized and
    /// supplies the windows of the first tokens; it is not scored.
    #[pyo3(signature = (text, *, prompt=None))]
    fn detect(&self, py: Python<'_>, text: &str, prompt: Option<&str>) -> PyResult<PyDetection> {
        py.enter(|| {
            let prompt = match prompt {
                Some(p) => self.0.encode(p)?,
                None => Vec::new(),
            };
            self.0.detect_after(text, &prompt)
        })
        .map(text_detection)
    }

    /// Searches `text` for the most strongly watermarked span (see `Detector.find_span`);
    /// `start` and `end` index its tokens (`encode(text)`).
    #[pyo3(signature = (text, *, prompt=None, min_tokens=50))]
    fn find_span(
        &self,
        py: Python<'_>,
        text: &str,
        prompt: Option<&str>,
        min_tokens: usize,
    ) -> PyResult<PySpanDetection> {
        let options = SpanOptions::with_min_tokens(min_tokens);
        py.enter(|| {
            let prompt = match prompt {
                Some(p) => self.0.encode(p)?,
                None => Vec::new(),
            };
            let tokens = self.0.tokens(text)?;
            self.0.detector().find_span(&tokens.ids, &prompt, options)
        })
        .and_then(|d| PySpanDetection::new(py, d))
    }

    /// Detects in each text, with the GIL released.
    fn detect_batch(&self, py: Python<'_>, texts: Vec<String>) -> PyResult<Vec<PyDetection>> {
        let out = py.enter(|| {
            texts
                .iter()
                .map(|t| self.0.detect(t))
                .collect::<greenmark::Result<Vec<_>>>()
        })?;
        Ok(out.into_iter().map(text_detection).collect())
    }
}
