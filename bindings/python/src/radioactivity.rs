//! `greenmark._greenmark.RadioactivityTest`: the corpus-level tape of
//! `greenmark::radioactivity`, fed with token ids (closed mode) or a suspect's top-1
//! predictions (open mode). The facade `greenmark.radioactivity` adds logits input.

use greenmark::radioactivity::{RadioactivityTest, TestOptions};
use pyo3::prelude::*;

use crate::arrays;
use crate::config::{config_arg, PyConfig};
use crate::errors::EnterGreenmark;
use crate::key::key_arg;

/// A radioactivity test for one or more keys: add prompts and filter texts first, then score
/// the suspect's texts or predictions, then read `result()`.
#[pyclass(name = "RadioactivityTest", module = "greenmark._greenmark")]
pub(crate) struct PyRadioactivityTest(RadioactivityTest);

fn ids(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<u32>> {
    Ok(arrays::ids(obj, name, &[1], None)?.data)
}

#[pymethods]
impl PyRadioactivityTest {
    #[new]
    #[pyo3(signature = (keys, config, *, max_tuples=None, dedup=true))]
    fn new(
        py: Python<'_>,
        keys: Vec<Bound<'_, PyAny>>,
        config: &Bound<'_, PyAny>,
        max_tuples: Option<u64>,
        dedup: bool,
    ) -> PyResult<Self> {
        let keys = keys.iter().map(key_arg).collect::<PyResult<Vec<_>>>()?;
        let mut options = TestOptions::default().dedup(dedup);
        if let Some(n) = max_tuples {
            options = options.max_tuples(n);
        }
        let config = config_arg(config)?;
        py.enter(|| RadioactivityTest::new(&keys, config, options))
            .map(PyRadioactivityTest)
    }

    /// The watermark config under test.
    #[getter]
    fn config(&self) -> PyConfig {
        PyConfig(self.0.config().clone())
    }

    /// Excludes the windows of a prompt (token ids); before the first scored text.
    fn exclude_prompt(&mut self, py: Python<'_>, prompt: &Bound<'_, PyAny>) -> PyResult<()> {
        let prompt = ids(prompt, "prompt")?;
        py.enter(|| self.0.exclude_prompt(&prompt))
    }

    /// Adds a watermarked text's windows to the filter; before the first scored text.
    fn add_filter_text(&mut self, py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<()> {
        let text = ids(text, "text")?;
        py.enter(|| self.0.add_filter_text(&text))
    }

    /// Closed mode: scores the suspect's text (ids of the watermarking tokenizer); `prefix`
    /// gives the windows of the first tokens.
    #[pyo3(signature = (ids_, *, prefix=None))]
    fn score_text(
        &mut self,
        py: Python<'_>,
        ids_: &Bound<'_, PyAny>,
        prefix: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let tokens = ids(ids_, "ids")?;
        let prefix = prefix
            .map(|p| ids(p, "prefix"))
            .transpose()?
            .unwrap_or_default();
        py.enter(|| self.0.score_text(&tokens, &prefix))
    }

    /// Open mode: `predictions[j]` is the suspect's top-1 next token after `ids[..=j]`.
    fn score_predictions(
        &mut self,
        py: Python<'_>,
        ids_: &Bound<'_, PyAny>,
        predictions: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let input = ids(ids_, "ids")?;
        let preds = ids(predictions, "predictions")?;
        py.enter(|| self.0.score_predictions(&input, &preds))
    }

    /// The result so far, as the JSON text of `greenmark::radioactivity::Radioactivity`.
    fn result_json(&self, py: Python<'_>) -> PyResult<String> {
        let result = py.detach(|| self.0.result());
        serde_json::to_string(&result)
            .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))
    }

    fn __repr__(&self) -> String {
        format!(
            "RadioactivityTest(config={}, options={:?})",
            self.0.config().to_json(),
            self.0.options()
        )
    }
}
