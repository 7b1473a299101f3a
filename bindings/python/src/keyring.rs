//! `greenmark.Keyring` and the `greenmark.KeyringDetection` it returns.

use greenmark::detect::Scored;
use greenmark::{Keyring, KeyringDetection};
use pyo3::prelude::*;

use crate::arrays;
use crate::detect::{prompt_ids, significant, span_args, PyDetection, PyDetector, PySpanDetection};
use crate::errors::{to_py, type_error, EnterGreenmark};

/// Several detectors run on the same ids, with one p-value corrected for their number
/// (Bonferroni) and the key that fired named. Detectors that score identically (the same key
/// and config but for delta) count once.
#[pyclass(name = "Keyring", module = "greenmark._greenmark", frozen)]
pub(crate) struct PyKeyring(Keyring);

/// The result of a `Keyring`: each key's own result (`keys`, uncorrected p-values), the
/// strongest key, and the corrected p-value.
#[pyclass(name = "KeyringDetection", module = "greenmark._greenmark", frozen)]
pub(crate) struct PyKeyringDetection {
    inner: Scored,
    /// The core result's JSON (what `to_dict` returns).
    json: String,
    /// One result per key, in the keyring's order (`Detection`, or `SpanDetection` from
    /// `find_span`); their p-values are uncorrected.
    #[pyo3(get)]
    keys: Vec<Py<PyAny>>,
    /// Index of the key with the smallest p-value (the key that fired, when significant).
    #[pyo3(get)]
    strongest_key: usize,
    /// The public id of the strongest key.
    #[pyo3(get)]
    key_id: String,
    /// The corrected p-value min(1, K p_min).
    #[pyo3(get)]
    p_value: f64,
    /// Natural log of the corrected p-value.
    #[pyo3(get)]
    ln_p_value: f64,
    /// Base-10 log of the corrected p-value.
    #[pyo3(get)]
    log10_p_value: f64,
}

impl PyKeyringDetection {
    fn new<T: serde::Serialize>(
        d: &KeyringDetection<T>,
        inner: Scored,
        keys: Vec<Py<PyAny>>,
        key_id: String,
    ) -> PyResult<Self> {
        let json = serde_json::to_string(d)
            .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
        Ok(PyKeyringDetection {
            inner,
            json,
            keys,
            strongest_key: d.strongest_key,
            key_id,
            p_value: d.p_value,
            ln_p_value: d.ln_p_value,
            log10_p_value: d.log10_p_value,
        })
    }
}

#[pymethods]
impl PyKeyringDetection {
    /// Whether any key's watermark is detected at `threshold`, on the corrected p-value.
    #[pyo3(signature = (threshold=1e-6))]
    fn is_significant(&self, threshold: f64) -> PyResult<bool> {
        significant(threshold, |t| self.inner.is_significant(t))
    }

    /// The result as a dict, as the CLI's `--json` prints it: each key's p-values named
    /// `uncorrected_*`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("json")?.call_method1("loads", (&self.json,))
    }

    fn __repr__(&self) -> String {
        format!(
            "KeyringDetection(keys={}, strongest_key={}, key_id={:?}, log10_p_value={:.3})",
            self.keys.len(),
            self.strongest_key,
            self.key_id,
            self.log10_p_value
        )
    }
}

#[pymethods]
impl PyKeyring {
    #[new]
    fn new(detectors: &Bound<'_, PyAny>) -> PyResult<Self> {
        let mut all = Vec::new();
        let items = detectors
            .try_iter()
            .map_err(|_| type_error("detectors", "a list of greenmark.Detector", detectors))?;
        for item in items {
            let item = item?;
            let detector = item
                .cast::<PyDetector>()
                .map_err(|_| type_error("each detector", "a greenmark.Detector", &item))?;
            all.push(detector.get().0.clone());
        }
        Keyring::new(all).map(PyKeyring).map_err(to_py)
    }

    /// How many distinct detectors the keyring holds.
    fn __len__(&self) -> usize {
        self.0.detectors().len()
    }

    /// The public ids of the keys, in order.
    #[getter]
    fn key_ids(&self) -> Vec<String> {
        self.0
            .detectors()
            .iter()
            .map(|d| d.key_id().to_string())
            .collect()
    }

    /// Scores ids (T,) under every key (`prompt` ids: context, not scored).
    #[pyo3(signature = (ids, *, prompt=None))]
    fn detect(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        prompt: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyKeyringDetection> {
        let tokens = arrays::ids(ids, "ids", &[1], None)?.data;
        let prompt = prompt_ids(prompt)?;
        let d = py.enter(|| self.0.detect(&tokens, &prompt))?;
        let keys = d
            .keys
            .iter()
            .map(|k| Ok(Py::new(py, PyDetection::new(k.clone()))?.into_any()))
            .collect::<PyResult<Vec<_>>>()?;
        let key_id = d.keys[d.strongest_key].key_id.to_string();
        PyKeyringDetection::new(&d, Scored::Whole(d.clone()), keys, key_id)
    }

    /// Searches ids (T,) for a watermarked span under every key (see `Detector.find_span`).
    #[pyo3(signature = (ids, *, prompt=None, min_tokens=50))]
    fn find_span(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        prompt: Option<&Bound<'_, PyAny>>,
        min_tokens: usize,
    ) -> PyResult<PyKeyringDetection> {
        let (tokens, prompt, options) = span_args(ids, prompt, min_tokens)?;
        let d = py.enter(|| self.0.find_span(&tokens, &prompt, options))?;
        let keys = d
            .keys
            .iter()
            .map(|k| Ok(Py::new(py, PySpanDetection::new(py, k.clone())?)?.into_any()))
            .collect::<PyResult<Vec<_>>>()?;
        let key_id = d.keys[d.strongest_key].span.key_id.to_string();
        PyKeyringDetection::new(&d, Scored::Span(d.clone()), keys, key_id)
    }

    fn __repr__(&self) -> String {
        format!("Keyring(key_ids={:?})", self.key_ids())
    }
}
