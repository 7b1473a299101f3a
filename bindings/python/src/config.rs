//! `greenmark.WatermarkConfig`.

use greenmark::{Scheme, WatermarkConfig};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::errors::{to_py, type_error, ConfigError};

/// A validated watermark configuration: vocabulary size, green fraction `gamma`, logit bias
/// `delta`, seeding scheme. Pickles as its JSON.
#[pyclass(name = "WatermarkConfig", module = "greenmark._greenmark", frozen, eq)]
#[derive(PartialEq)]
pub(crate) struct PyConfig(pub(crate) WatermarkConfig);

#[pymethods]
impl PyConfig {
    #[new]
    #[pyo3(signature = (vocab_size, *, gamma=0.25, delta=2.0, scheme="lefthash", window=None, top_k=None, skip_repeated_windows=false))]
    fn new(
        vocab_size: i64,
        gamma: f64,
        delta: f64,
        scheme: &str,
        window: Option<usize>,
        top_k: Option<usize>,
        skip_repeated_windows: bool,
    ) -> PyResult<Self> {
        let vocab = u64::try_from(vocab_size).map_err(|_| {
            ConfigError::new_err(format!("vocab size must be at least 2, got {vocab_size}"))
        })?;
        WatermarkConfig::builder(vocab)
            .gamma(gamma)
            .delta(delta)
            .scheme(Scheme::from_name(scheme, window, top_k).map_err(to_py)?)
            .skip_repeated_windows(skip_repeated_windows)
            .build()
            .map(PyConfig)
            .map_err(to_py)
    }

    /// Reads and validates a config from its JSON (as written by `to_json`).
    #[classmethod]
    fn from_json(_cls: &Bound<'_, pyo3::types::PyType>, text: &str) -> PyResult<Self> {
        WatermarkConfig::from_json(text)
            .map(PyConfig)
            .map_err(to_py)
    }

    /// The config as JSON.
    fn to_json(&self) -> String {
        self.0.to_json()
    }

    /// Number of tokens in the vocabulary (the length of a logits row).
    #[getter]
    fn vocab_size(&self) -> u32 {
        self.0.vocab_size()
    }

    /// The requested green fraction.
    #[getter]
    fn gamma(&self) -> f64 {
        self.0.gamma()
    }

    /// The exact null probability of green, `floor(gamma * 2**32) / 2**32`.
    #[getter]
    fn effective_gamma(&self) -> f64 {
        self.0.effective_gamma()
    }

    /// The logit bias added to green tokens.
    #[getter]
    fn delta(&self) -> f64 {
        self.0.delta()
    }

    /// The scheme's short name (`lefthash`, `minhash`, `sumhash`, `selfhash`, `unigram`).
    #[getter]
    fn scheme(&self) -> &'static str {
        self.0.scheme().name()
    }

    /// The scheme's versioned id, e.g. `greenmark/kgw-lefthash/v1`.
    #[getter]
    fn scheme_id(&self) -> &'static str {
        self.0.scheme().id()
    }

    /// The window size `h` (0 for unigram; counts the candidate for selfhash).
    #[getter]
    fn window(&self) -> usize {
        self.0.scheme().window()
    }

    /// How many tokens before a position its window needs (the context a caller must keep).
    #[getter]
    fn context_len(&self) -> usize {
        self.0.scheme().context_len()
    }

    /// How many of the latest token ids a bias step reads (the window), or None when
    /// repeated windows are skipped (then the whole history is needed).
    #[getter]
    fn history_len(&self) -> Option<usize> {
        self.0.history_len()
    }

    /// Raises ConfigError unless a model whose logits rows have `width` entries can be
    /// watermarked with this config (the widths must be equal).
    fn check_logits_width(&self, width: u64) -> PyResult<()> {
        self.0.check_logits_width(width).map_err(to_py)
    }

    /// Raises TextError unless a tokenizer of `tokens` tokens can be this config's (it may have
    /// fewer tokens than the vocabulary, never more).
    fn check_tokenizer_vocab(&self, tokens: usize) -> PyResult<()> {
        self.0.check_tokenizer_vocab(tokens).map_err(to_py)
    }

    /// selfhash's number of evaluated candidates (None for other schemes).
    #[getter]
    fn top_k(&self) -> Option<usize> {
        match self.0.scheme() {
            Scheme::SelfHash { top_k, .. } => Some(top_k),
            _ => None,
        }
    }

    /// Whether biasing skips windows already seen earlier in the context.
    #[getter]
    fn skip_repeated_windows(&self) -> bool {
        self.0.skip_repeated_windows()
    }

    fn __repr__(&self) -> String {
        format!("WatermarkConfig.from_json({:?})", self.0.to_json())
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let from_json = slf.get_type().getattr("from_json")?;
        let args = PyTuple::new(slf.py(), [slf.get().0.to_json()])?;
        Ok((from_json, args))
    }
}

/// The `greenmark.WatermarkConfig` behind a Python argument, with a clear `TypeError` otherwise.
pub(crate) fn config_arg(obj: &Bound<'_, PyAny>) -> PyResult<WatermarkConfig> {
    match obj.cast::<PyConfig>() {
        Ok(config) => Ok(config.get().0.clone()),
        Err(_) => Err(type_error(
            "config",
            "a greenmark.WatermarkConfig (WatermarkConfig(vocab_size, gamma=..., delta=...))",
            obj,
        )),
    }
}
