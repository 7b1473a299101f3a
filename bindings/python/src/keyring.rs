//! `greenmark.Keyring` and the `greenmark.KeyringDetection` it returns.

use greenmark::detect::{AnyDetection, Scored};
use greenmark::{Keyring, KeyringDetection};
use pyo3::prelude::*;

use crate::arrays;
use crate::detect::{prompt_ids, significant, span_args, PyDetection, PyDetector, PySpanDetection};
use crate::errors::{to_py, type_error, EnterGreenmark};
use crate::gumbel::{PyGumbelDetection, PyGumbelDetector};
use crate::synthid::{PySynthIdDetection, PySynthIdDetector};

/// Several detectors run on the same ids, with one p-value corrected for their number
/// (Bonferroni) and the key that fired named. Detectors that score identically (the same key
/// and config but for delta) count once. Other engines' configs (vLLM Gumbel, SynthID Text)
/// join under an operator's label with `with_gumbel` / `with_synthid`, in the same correction.
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

    /// How many distinct detectors the keyring holds (greenmark keys and other engines'
    /// configs).
    fn __len__(&self) -> usize {
        self.0.detectors().len() + self.0.engines().len()
    }

    /// The public ids of the greenmark keys, in order.
    #[getter]
    fn key_ids(&self) -> Vec<String> {
        self.0
            .detectors()
            .iter()
            .map(|d| d.key_id().to_string())
            .collect()
    }

    /// What `KeyringDetection.keys` is indexed by: the greenmark keys' ids, then the labels of
    /// the other engines' configs in the order added.
    #[getter]
    fn labels(&self) -> Vec<String> {
        let mut out = self.key_ids();
        out.extend(self.0.engines().iter().map(|(name, _)| name.clone()));
        out
    }

    /// A keyring with a vLLM Gumbel config added under `name` (a public label: 1 to 64
    /// letters, digits, `.`, `_`, `-`; never derived from the config's key).
    fn with_gumbel(&self, name: &str, detector: &PyGumbelDetector) -> PyResult<PyKeyring> {
        let ring = self.0.clone().with_gumbel(name, detector.0.clone());
        ring.map(PyKeyring).map_err(to_py)
    }

    /// A keyring with a SynthID Text config added under `name` (as `with_gumbel`); it enters
    /// the correction with its weighted score's p-value.
    fn with_synthid(&self, name: &str, detector: &PySynthIdDetector) -> PyResult<PyKeyring> {
        let ring = self.0.clone().with_synthid(name, detector.0.clone());
        ring.map(PyKeyring).map_err(to_py)
    }

    /// Scores ids (T,) under every key and config (`prompt` ids: context for greenmark keys,
    /// not scored). `keys` holds a `Detection` per greenmark key, then a `GumbelDetection` or
    /// `SynthIdDetection` per config, each with its own uncorrected p-value.
    #[pyo3(signature = (ids, *, prompt=None))]
    fn detect(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        prompt: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyKeyringDetection> {
        let tokens = arrays::ids(ids, "ids", &[1], None)?.data;
        let prompt = prompt_ids(prompt)?;
        let scored = py.enter(|| self.0.score(&tokens, &prompt, None))?;
        match &scored {
            Scored::Mixed(d) => {
                let keys = d
                    .keys
                    .iter()
                    .map(|k| {
                        Ok(match k {
                            AnyDetection::Kgw(k) => {
                                Py::new(py, PyDetection::new(k.clone()))?.into_any()
                            }
                            AnyDetection::Gumbel { detection, .. } => {
                                Py::new(py, PyGumbelDetection::from(detection.clone()))?.into_any()
                            }
                            AnyDetection::SynthId { detection, .. } => {
                                Py::new(py, PySynthIdDetection(detection.clone()))?.into_any()
                            }
                            _ => {
                                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                                    "a keyring entry of an engine this binding does not know",
                                ))
                            }
                        })
                    })
                    .collect::<PyResult<Vec<_>>>()?;
                let key_id = d.keys[d.strongest_key].label();
                PyKeyringDetection::new(d, scored.clone(), keys, key_id)
            }
            Scored::Whole(d) => {
                let keys = d
                    .keys
                    .iter()
                    .map(|k| Ok(Py::new(py, PyDetection::new(k.clone()))?.into_any()))
                    .collect::<PyResult<Vec<_>>>()?;
                let key_id = d.keys[d.strongest_key].key_id.to_string();
                PyKeyringDetection::new(d, scored.clone(), keys, key_id)
            }
            _ => Err(pyo3::exceptions::PyRuntimeError::new_err(
                "a whole-text score came back as a span search",
            )),
        }
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
        // Through `score`, which refuses a keyring holding other engines' configs (the span
        // search covers greenmark keys only).
        let d = match py.enter(|| self.0.score(&tokens, &prompt, Some(options)))? {
            Scored::Span(d) => d,
            _ => {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "a span search came back as a whole-text score",
                ))
            }
        };
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
