//! `ScreenCorpus`: key screening ([`greenmark::screen`]) on token ids, conversion only.

use greenmark::screen::{ScreenCorpus, ScreenOptions};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::arrays;
use crate::detect::{json_dict, PyDetector};
use crate::errors::{to_py, type_error, EnterGreenmark};

/// A reference corpus of human text as token ids, per genre, cut into chunks once; then
/// `screen(detector)` tells whether that key's p-values on it look valid (one-sided KS and
/// the exact count at p < 1e-3 per genre, Bonferroni over genres) and reports the realized
/// false-positive rates.
#[pyclass(name = "ScreenCorpus", module = "greenmark._greenmark")]
pub(crate) struct PyScreenCorpus(ScreenCorpus);

#[pymethods]
impl PyScreenCorpus {
    #[new]
    #[pyo3(signature = (chunk_tokens=greenmark::screen::DEFAULT_CHUNK_TOKENS))]
    fn new(chunk_tokens: usize) -> PyResult<Self> {
        ScreenCorpus::new(chunk_tokens)
            .map(PyScreenCorpus)
            .map_err(to_py)
    }

    /// Adds a genre: its name and its documents (each a sequence or 1-D array of token ids).
    fn add_genre(&mut self, name: &str, documents: &Bound<'_, PyAny>) -> PyResult<()> {
        if documents.is_instance_of::<pyo3::types::PyString>() {
            return Err(type_error(
                "documents",
                "a list of token-id sequences",
                documents,
            ));
        }
        let docs = documents
            .try_iter()
            .map_err(|_| type_error("documents", "a list of token-id sequences", documents))?
            .map(|d| arrays::ids(&d?, "each document", &[1], None).map(|i| i.data))
            .collect::<PyResult<Vec<_>>>()?;
        self.0.add_genre(name, &docs).map_err(to_py)
    }

    /// `(name, chunks)` per genre.
    #[getter]
    fn genres(&self) -> Vec<(String, usize)> {
        self.0
            .genres()
            .into_iter()
            .map(|(n, c)| (n.to_string(), c))
            .collect()
    }

    /// The chunk length in tokens.
    #[getter]
    fn chunk_tokens(&self) -> usize {
        self.0.chunk_tokens()
    }

    /// Screens the detector's key; returns the report as a dict (the CLI's `--json` fields),
    /// each genre with its chunks' natural-log p-values under `ln_p_values`.
    #[pyo3(signature = (detector, *, level=greenmark::screen::DEFAULT_LEVEL, tail_threshold=greenmark::screen::DEFAULT_TAIL_THRESHOLD))]
    fn screen<'py>(
        &self,
        py: Python<'py>,
        detector: &PyDetector,
        level: f64,
        tail_threshold: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = ScreenOptions::new(level, tail_threshold).map_err(to_py)?;
        let report = py.enter(|| self.0.screen(&detector.0, &options))?;
        let out = json_dict(py, &report)?;
        let genres = out.get_item("genres")?;
        for (i, g) in report.genres.iter().enumerate() {
            let dict = genres.get_item(i)?;
            let dict = dict.cast::<PyDict>()?;
            dict.set_item("ln_p_values", g.ln_p_values.clone())?;
        }
        Ok(out)
    }

    fn __repr__(&self) -> String {
        format!(
            "ScreenCorpus(chunk_tokens={}, genres={:?})",
            self.0.chunk_tokens(),
            self.0.genres()
        )
    }
}
