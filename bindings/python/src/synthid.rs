//! `SynthIdDetector`, `SynthIdWatermarker`, `SynthIdStates` and `SynthIdDetection`: SynthID
//! Text as transformers implements it. Conversions only; the work is in `greenmark::synthid`.

use greenmark::synthid::{
    SynthIdConfig, SynthIdDetection, SynthIdDetector, SynthIdScore, SynthIdState, SynthIdStep,
    SynthIdWatermarker,
};
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::arrays;
use crate::errors::{to_py, EnterGreenmark, ShapeError};

fn score_dict<'py>(py: Python<'py>, s: &SynthIdScore) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("score", s.score)?;
    d.set_item("statistic", s.statistic)?;
    d.set_item("p_value", s.p_value)?;
    d.set_item("ln_p_value", s.ln_p_value)?;
    d.set_item("log10_p_value", s.log10_p_value)?;
    d.set_item("method", method(s))?;
    Ok(d)
}

fn method(s: &SynthIdScore) -> &'static str {
    match s.method {
        greenmark::stats::TailMethod::Exact => "exact",
        _ => "chernoff",
    }
}

/// The result of scoring one token sequence for SynthID Text: the mean and weighted mean
/// g-value scores, each with its p-value (`*_log10_p_value` stays finite below 1e-308), the
/// counts scored and skipped. `is_watermarked` is decided on the weighted score.
#[pyclass(name = "SynthIdDetection", module = "greenmark._greenmark", frozen)]
pub(crate) struct PySynthIdDetection(pub(crate) SynthIdDetection);

#[pymethods]
impl PySynthIdDetection {
    /// Tokens given.
    #[getter]
    fn n_tokens(&self) -> usize {
        self.0.n_tokens
    }
    /// Ngrams in the text.
    #[getter]
    fn n_ngrams(&self) -> usize {
        self.0.n_ngrams
    }
    /// Ngrams with at least one g-value scored.
    #[getter]
    fn n_scored(&self) -> u64 {
        self.0.n_scored
    }
    /// Ngrams at or after the first EOS.
    #[getter]
    fn n_skipped_eos(&self) -> u64 {
        self.0.n_skipped_eos
    }
    /// Ngrams with a repeated context (transformers' mask).
    #[getter]
    fn n_skipped_repeated_context(&self) -> u64 {
        self.0.n_skipped_repeated_context
    }
    /// Ngrams whose g-values were all copies of entries already scored.
    #[getter]
    fn n_skipped_duplicate(&self) -> u64 {
        self.0.n_skipped_duplicate
    }
    /// G-values scored over all depths.
    #[getter]
    fn n_g_values(&self) -> u64 {
        self.0.n_g_values
    }
    /// G-values scored per depth.
    #[getter]
    fn scored_per_depth(&self) -> Vec<u64> {
        self.0.scored_per_depth.clone()
    }
    /// Ones among them per depth.
    #[getter]
    fn ones_per_depth(&self) -> Vec<u64> {
        self.0.ones_per_depth.clone()
    }
    /// The null probability of a one (the table's fraction of ones).
    #[getter]
    fn p0(&self) -> f64 {
        self.0.p0
    }
    /// synthid-text's mean score over the scored g-values.
    #[getter]
    fn mean_score(&self) -> f64 {
        self.0.mean.score
    }
    /// "shift-exact" (power-of-two table: exact over the keys) or "binomial".
    #[getter]
    fn null(&self) -> &'static str {
        self.0.null.as_str()
    }
    /// "exact" or "chernoff" (the mean score's tail; Chernoff only for very long, deep texts).
    #[getter]
    fn mean_method(&self) -> &'static str {
        method(&self.0.mean)
    }
    /// Its p-value under `null`.
    #[getter]
    fn mean_p_value(&self) -> f64 {
        self.0.mean.p_value
    }
    /// Its natural log.
    #[getter]
    fn mean_ln_p_value(&self) -> f64 {
        self.0.mean.ln_p_value
    }
    /// Its base-10 log.
    #[getter]
    fn mean_log10_p_value(&self) -> f64 {
        self.0.mean.log10_p_value
    }
    /// synthid-text's weighted mean score.
    #[getter]
    fn weighted_score(&self) -> f64 {
        self.0.weighted.score
    }
    /// Its integer statistic sum_d c_d ones_d.
    #[getter]
    fn weighted_statistic(&self) -> u64 {
        self.0.weighted.statistic
    }
    /// Its p-value (exact, or the conservative Chernoff bound: see `weighted_method`).
    #[getter]
    fn weighted_p_value(&self) -> f64 {
        self.0.weighted.p_value
    }
    /// Its natural log.
    #[getter]
    fn weighted_ln_p_value(&self) -> f64 {
        self.0.weighted.ln_p_value
    }
    /// Its base-10 log.
    #[getter]
    fn weighted_log10_p_value(&self) -> f64 {
        self.0.weighted.log10_p_value
    }
    /// "exact" or "chernoff".
    #[getter]
    fn weighted_method(&self) -> &'static str {
        method(&self.0.weighted)
    }
    /// weighted_p_value <= threshold.
    #[getter]
    fn is_watermarked(&self) -> bool {
        self.0.is_watermarked
    }
    /// The threshold used.
    #[getter]
    fn threshold(&self) -> f64 {
        self.0.threshold
    }

    /// The fields as a dict (the two scores as nested dicts).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let x = &self.0;
        d.set_item("n_tokens", x.n_tokens)?;
        d.set_item("n_ngrams", x.n_ngrams)?;
        d.set_item("n_scored", x.n_scored)?;
        d.set_item("n_skipped_eos", x.n_skipped_eos)?;
        d.set_item("n_skipped_repeated_context", x.n_skipped_repeated_context)?;
        d.set_item("n_skipped_duplicate", x.n_skipped_duplicate)?;
        d.set_item("n_g_values", x.n_g_values)?;
        d.set_item("scored_per_depth", x.scored_per_depth.clone())?;
        d.set_item("ones_per_depth", x.ones_per_depth.clone())?;
        d.set_item("p0", x.p0)?;
        d.set_item("null", x.null.as_str())?;
        d.set_item("mean", score_dict(py, &x.mean)?)?;
        d.set_item("weighted", score_dict(py, &x.weighted)?)?;
        d.set_item("is_watermarked", x.is_watermarked)?;
        d.set_item("threshold", x.threshold)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "SynthIdDetection(n_scored={}, weighted_log10_p_value={:.3}, mean_log10_p_value={:.3}, is_watermarked={})",
            self.0.n_scored,
            self.0.weighted.log10_p_value,
            self.0.mean.log10_p_value,
            if self.0.is_watermarked { "True" } else { "False" }
        )
    }
}

fn parse(json: &str) -> PyResult<SynthIdConfig> {
    SynthIdConfig::from_json(json).map_err(to_py)
}

/// Detects SynthID Text (transformers' `SynthIDTextWatermarkLogitsProcessor`) in token ids,
/// from the config's JSON (`SynthIDTextWatermarkingConfig.to_dict()` as JSON).
#[pyclass(name = "SynthIdDetector", module = "greenmark._greenmark", frozen)]
pub(crate) struct PySynthIdDetector(pub(crate) SynthIdDetector);

#[pymethods]
impl PySynthIdDetector {
    #[new]
    #[pyo3(signature = (json, *, eos_token_id=None, vocab_size=None, threshold=0.01))]
    fn new(
        py: Python<'_>,
        json: &str,
        eos_token_id: Option<u32>,
        vocab_size: Option<u32>,
        threshold: f64,
    ) -> PyResult<Self> {
        let config = parse(json)?;
        py.enter(|| {
            let d = SynthIdDetector::new(config)?
                .with_eos(eos_token_id)
                .with_threshold(threshold)?;
            match vocab_size {
                Some(v) => d.with_vocab_size(v),
                None => Ok(d),
            }
        })
        .map(PySynthIdDetector)
    }

    /// The config as transformers' `to_dict()` JSON.
    #[getter]
    fn config_json(&self) -> String {
        self.0.config().to_json()
    }

    /// The fraction of ones in the sampling table (the null rate).
    #[getter]
    fn p0(&self) -> f64 {
        self.0.table().p0()
    }

    /// The sampling table as a uint8 array (size,).
    fn sampling_table<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u8>> {
        PyArray1::from_slice(py, self.0.table().table())
    }

    /// transformers' `compute_g_values` for one sequence: uint8 (n_ngrams, depth).
    fn g_values<'py>(
        &self,
        py: Python<'py>,
        ids: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<u8>>> {
        let ids = arrays::token_ids(ids, "ids")?;
        let depth = self.0.table().depth();
        let g = py.enter(|| Ok(self.0.table().g_values(&ids)))?;
        let rows = g.len() / depth;
        PyArray1::from_vec(py, g).reshape([rows, depth])
    }

    /// transformers' `compute_context_repetition_mask` for one sequence: True where the
    /// context is not repeated (n_ngrams,).
    fn context_repetition_mask(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<bool>> {
        let ids = arrays::token_ids(ids, "ids")?;
        py.enter(|| Ok(self.0.table().context_repetition_mask(&ids)))
    }

    /// Scores one id sequence (generated ids only for text from `model.generate`).
    fn detect(&self, py: Python<'_>, ids: &Bound<'_, PyAny>) -> PyResult<PySynthIdDetection> {
        let ids = arrays::token_ids(ids, "ids")?;
        py.enter(|| self.0.detect(&ids)).map(PySynthIdDetection)
    }

    /// Scores many id sequences in parallel with the GIL released.
    fn detect_batch(
        &self,
        py: Python<'_>,
        texts: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<PySynthIdDetection>> {
        let seqs = arrays::id_sequences(texts)?;
        let out = py.enter(|| self.0.detect_batch(&seqs))?;
        Ok(out.into_iter().map(PySynthIdDetection).collect())
    }

    fn __repr__(&self) -> String {
        let c = self.0.config();
        format!(
            "SynthIdDetector(ngram_len={}, depth={}, sampling_table_size={})",
            c.ngram_len,
            c.depth(),
            c.sampling_table_size
        )
    }
}

/// The per-row states of one `generate` call (transformers' `SynthIDTextWatermarkState`).
#[pyclass(name = "SynthIdStates", module = "greenmark._greenmark")]
pub(crate) struct PySynthIdStates(Vec<SynthIdState>);

#[pymethods]
impl PySynthIdStates {
    fn __len__(&self) -> usize {
        self.0.len()
    }
}

/// The SynthID Text logits update of transformers, on float32 numpy rows in place.
#[pyclass(name = "SynthIdWatermarker", module = "greenmark._greenmark", frozen)]
pub(crate) struct PySynthIdWatermarker(SynthIdWatermarker);

#[pymethods]
impl PySynthIdWatermarker {
    #[new]
    fn new(py: Python<'_>, json: &str) -> PyResult<Self> {
        let config = parse(json)?;
        py.enter(|| SynthIdWatermarker::new(config))
            .map(PySynthIdWatermarker)
    }

    /// New states for a batch of `batch` rows.
    fn states(&self, batch: usize) -> PySynthIdStates {
        PySynthIdStates((0..batch).map(|_| self.0.state()).collect())
    }

    /// One processor call: `last_input_ids` (B,) are the rows' last input ids (ignored on the
    /// first call), `logits` a float32 C-contiguous (B, V) array modified in place. Returns,
    /// per row, "watermarked", "skipped_first_ngram" or "repeated_context".
    fn apply(
        &self,
        py: Python<'_>,
        states: &mut PySynthIdStates,
        last_input_ids: &Bound<'_, PyAny>,
        logits: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<&'static str>> {
        let ids = arrays::token_ids(last_input_ids, "last_input_ids")?;
        let mut array = arrays::logits(logits)?;
        if array.ndim() != 2 || array.shape()[0] != states.0.len() {
            return Err(ShapeError::new_err(format!(
                "logits must have shape (B, V) with B = {} (the states' batch), got {:?}",
                states.0.len(),
                array.shape()
            )));
        }
        let rows = array
            .as_slice_mut()
            .expect("checked C-contiguous by arrays::logits");
        let states = &mut states.0;
        let steps = py.enter(|| self.0.apply_batch(states, &ids, rows))?;
        Ok(steps
            .into_iter()
            .map(|s| match s {
                SynthIdStep::Watermarked => "watermarked",
                SynthIdStep::SkippedFirstNgram => "skipped_first_ngram",
                _ => "repeated_context",
            })
            .collect())
    }

    fn __repr__(&self) -> String {
        let c = self.0.config();
        format!(
            "SynthIdWatermarker(ngram_len={}, depth={})",
            c.ngram_len,
            c.depth()
        )
    }
}

/// Adds the SynthID classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySynthIdDetection>()?;
    m.add_class::<PySynthIdDetector>()?;
    m.add_class::<PySynthIdStates>()?;
    m.add_class::<PySynthIdWatermarker>()
}
