//! `greenmark._greenmark.RadioactivityTest`: the corpus-level tape of
//! `greenmark::radioactivity`, fed with token ids (closed mode) or a suspect's top-1
//! predictions (open mode). The facade `greenmark.radioactivity` adds logits input.

use greenmark::radioactivity::{
    Doc, Place, Pool, PooledTuple, RadioactivityTest, Sifted, TestOptions,
};
use numpy::{PyArray1, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::arrays;
use crate::config::{config_arg, PyConfig};
use crate::errors::{type_error, EnterGreenmark, ShapeError};
use crate::gumbel::{gumbel_config, gumbel_key};
use crate::key::key_arg;

/// A radioactivity test for one or more keys: add prompts and filter texts first, then score
/// the suspect's texts or predictions, then read `result()`.
#[pyclass(name = "RadioactivityTest", module = "greenmark._greenmark")]
pub(crate) struct PyRadioactivityTest(RadioactivityTest);

fn ids(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<u32>> {
    Ok(arrays::ids(obj, name, &[1], None)?.data)
}

fn options(max_tuples: Option<u64>, dedup: bool) -> TestOptions {
    let options = TestOptions::default().dedup(dedup);
    match max_tuples {
        Some(n) => options.max_tuples(n),
        None => options,
    }
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
        let options = options(max_tuples, dedup);
        let config = config_arg(config)?;
        py.enter(|| RadioactivityTest::new(&keys, config, options))
            .map(PyRadioactivityTest)
    }

    /// A test of a Gumbel watermark (vLLM's `gumbel`, or greenmark's native one): each key
    /// an int (vLLM's `--watermark-config` key) or a `greenmark.Key`; tuples are a context of
    /// `context_width` tokens and the token after it, pooled with the exact Gamma(n, 1) tail.
    #[staticmethod]
    #[pyo3(signature = (keys, vocab_size, *, context_width=4, max_tuples=None, dedup=true))]
    fn gumbel(
        py: Python<'_>,
        keys: Vec<Bound<'_, PyAny>>,
        vocab_size: u32,
        context_width: usize,
        max_tuples: Option<u64>,
        dedup: bool,
    ) -> PyResult<Self> {
        let keys = keys.iter().map(gumbel_key).collect::<PyResult<Vec<_>>>()?;
        let config = gumbel_config("gumbel", 0.0, context_width, "single_turn", None, "skip")?;
        let options = options(max_tuples, dedup);
        py.enter(|| RadioactivityTest::gumbel(&keys, config, vocab_size, options))
            .map(PyRadioactivityTest)
    }

    /// The KGW watermark config under test (`None` for a Gumbel test).
    #[getter]
    fn config(&self) -> Option<PyConfig> {
        self.0.config().cloned().map(PyConfig)
    }

    /// The vocabulary size token ids are checked against.
    #[getter]
    fn vocab_size(&self) -> u32 {
        self.0.vocab_size()
    }

    /// The tokens before a scored token that key it.
    #[getter]
    fn window(&self) -> usize {
        self.0.window()
    }

    /// The scheme's versioned id.
    #[getter]
    fn scheme(&self) -> &'static str {
        self.0.scheme()
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
            "RadioactivityTest(scheme={:?}, window={}, vocab_size={}, options={:?})",
            self.0.scheme(),
            self.0.window(),
            self.0.vocab_size(),
            self.0.options()
        )
    }

    /// Closed mode, first half (scale-out): per key, the tuples `score_text` would offer, as
    /// a dict of numpy arrays `fingerprint` (uint64) and `score` (float64) with the counts
    /// `n_excluded`, `n_filtered`, `n_copied`. The tape is not touched.
    #[pyo3(signature = (ids_, *, prefix=None))]
    fn sift_text<'py>(
        &self,
        py: Python<'py>,
        ids_: &Bound<'py, PyAny>,
        prefix: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let tokens = ids(ids_, "ids")?;
        let prefix = prefix
            .map(|p| ids(p, "prefix"))
            .transpose()?
            .unwrap_or_default();
        let sifted = py.enter(|| self.0.sift_text(&tokens, &prefix))?;
        sifted.into_iter().map(|s| sifted_dict(py, s)).collect()
    }

    /// Open mode, first half (scale-out): as `sift_text`, for `score_predictions`' input.
    fn sift_predictions<'py>(
        &self,
        py: Python<'py>,
        ids_: &Bound<'py, PyAny>,
        predictions: &Bound<'py, PyAny>,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let input = ids(ids_, "ids")?;
        let preds = ids(predictions, "predictions")?;
        let sifted = py.enter(|| self.0.sift_predictions(&input, &preds))?;
        sifted.into_iter().map(|s| sifted_dict(py, s)).collect()
    }

    /// First half for many texts at once, in parallel with the GIL released. `ids_` (and
    /// `prefixes`, `predictions`) is a sequence of id arrays or a pyarrow list array;
    /// `doc_ids` (unique, one per text) orders the corpus. Per key, a dict of the batch's
    /// distinct tuples, each at its first occurrence in (doc id, position) order: numpy
    /// arrays `fingerprint`, `score`, `doc`, `position` (index among the text's tuples) and
    /// `count` (occurrences in the batch), the left-out counts and `n_over_budget` (0): the
    /// `greenmark::radioactivity::Pool` of the batch.
    #[pyo3(signature = (ids_, *, doc_ids, prefixes=None, predictions=None))]
    fn sift_batch<'py>(
        &self,
        py: Python<'py>,
        ids_: &Bound<'py, PyAny>,
        doc_ids: &Bound<'py, PyAny>,
        prefixes: Option<&Bound<'py, PyAny>>,
        predictions: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        if prefixes.is_some() && predictions.is_some() {
            return Err(ShapeError::new_err(
                "give prefixes (closed mode) or predictions (open mode), not both",
            ));
        }
        let texts = ragged(ids_, "ids")?;
        let docs = u64s(doc_ids, "doc_ids")?;
        let prefixes = prefixes.map(|p| ragged(p, "prefixes")).transpose()?;
        let predictions = predictions.map(|p| ragged(p, "predictions")).transpose()?;
        let lengths = [
            Some((docs.len(), "doc_ids")),
            prefixes.as_ref().map(|p| (p.len(), "prefixes")),
            predictions.as_ref().map(|p| (p.len(), "predictions")),
        ];
        if let Some((n, name)) = lengths
            .into_iter()
            .flatten()
            .find(|&(n, _)| n != texts.len())
        {
            return Err(ShapeError::new_err(format!(
                "{n} {name} for {} texts: give one per text",
                texts.len()
            )));
        }
        let batch: Vec<Doc<'_>> = (0..texts.len())
            .map(|i| match (&predictions, &prefixes) {
                (Some(p), _) => Doc::reading(docs[i], texts.get(i), p.get(i)),
                (None, Some(p)) => Doc::text(docs[i], texts.get(i), p.get(i)),
                (None, None) => Doc::text(docs[i], texts.get(i), &[]),
            })
            .collect();
        let test = &self.0;
        let pools = py.enter(|| test.pool(&batch))?;
        pools.into_iter().map(|p| pool_dict(py, p)).collect()
    }

    /// Global dedup of pooled rows (`sift_batch` outputs of one key, concatenated in any
    /// order): each fingerprint once, at its earliest `(doc, position)`, with its `count`s
    /// summed, and the left-out counts as given (`greenmark::radioactivity::Pool`). With
    /// `max_tuples` (M), folds to the budget: keeps the M earliest tuples and adds the
    /// others' occurrences to `n_over_budget`; exact only when the rows hold every
    /// occurrence of their fingerprints (one fingerprint part of the whole corpus).
    /// Returns the `sift_batch` dict layout.
    #[staticmethod]
    #[pyo3(signature = (fingerprint, score, doc, position, count, *, n_excluded=0, n_filtered=0, n_copied=0, n_over_budget=0, max_tuples=None))]
    #[allow(clippy::too_many_arguments)]
    fn pool_sifted<'py>(
        py: Python<'py>,
        fingerprint: &Bound<'py, PyAny>,
        score: &Bound<'py, PyAny>,
        doc: &Bound<'py, PyAny>,
        position: &Bound<'py, PyAny>,
        count: &Bound<'py, PyAny>,
        n_excluded: u64,
        n_filtered: u64,
        n_copied: u64,
        n_over_budget: u64,
        max_tuples: Option<u64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let rows = Rows::extract(fingerprint, score, doc, position, count)?;
        let pool = py.enter(|| {
            let mut pool = rows.pool()?;
            pool.add_left_out(n_excluded, n_filtered, n_copied);
            pool.add_over_budget(n_over_budget);
            if let Some(m) = max_tuples {
                pool.fold_budget(m)?;
            }
            Ok(pool)
        })?;
        pool_dict(py, pool)
    }

    /// Second half from pooled rows (the `pool_sifted` layout, the corpus's parts
    /// concatenated in any order): records key `key`'s pool of the whole corpus, each
    /// distinct tuple in the order of its first occurrence with its occurrences, then the
    /// left-out and over-budget counts (`RadioactivityTest::record_pool`; needs dedup).
    #[pyo3(signature = (key, fingerprint, score, doc, position, count, *, n_excluded=0, n_filtered=0, n_copied=0, n_over_budget=0))]
    #[allow(clippy::too_many_arguments)]
    fn record_pooled(
        &mut self,
        py: Python<'_>,
        key: usize,
        fingerprint: &Bound<'_, PyAny>,
        score: &Bound<'_, PyAny>,
        doc: &Bound<'_, PyAny>,
        position: &Bound<'_, PyAny>,
        count: &Bound<'_, PyAny>,
        n_excluded: u64,
        n_filtered: u64,
        n_copied: u64,
        n_over_budget: u64,
    ) -> PyResult<()> {
        let rows = Rows::extract(fingerprint, score, doc, position, count)?;
        let test = &mut self.0;
        py.enter(move || {
            let mut pool = rows.pool()?;
            drop(rows);
            pool.add_left_out(n_excluded, n_filtered, n_copied);
            pool.add_over_budget(n_over_budget);
            test.record_pool(key, &pool)
        })
    }

    /// Second half: records key `key`'s sifted tuples (numpy `fingerprint` uint64 and
    /// `score` float64 arrays, in corpus order) on its tape, with the left-out counts. With
    /// `counts` (uint64, occurrences of each tuple), the tuples must be distinct and in the
    /// order of their first occurrence: the same result, per distinct tuple (needs dedup).
    #[pyo3(signature = (key, fingerprints, scores, *, n_excluded=0, n_filtered=0, n_copied=0, counts=None))]
    #[allow(clippy::too_many_arguments)]
    fn record_sifted(
        &mut self,
        py: Python<'_>,
        key: usize,
        fingerprints: &Bound<'_, PyAny>,
        scores: &Bound<'_, PyAny>,
        n_excluded: u64,
        n_filtered: u64,
        n_copied: u64,
        counts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let mut sifted = Sifted::default();
        sifted.fingerprints = typed_vec::<u64>(fingerprints, "fingerprints", "uint64")?;
        sifted.scores = typed_vec::<f64>(scores, "scores", "float64")?;
        sifted.n_excluded = n_excluded;
        sifted.n_filtered = n_filtered;
        sifted.n_copied = n_copied;
        let counts = counts
            .map(|c| typed_vec::<u64>(c, "counts", "uint64"))
            .transpose()?;
        let test = &mut self.0;
        py.enter(|| match &counts {
            Some(c) => test.record_counted(key, &sifted, c),
            None => test.record_sifted(key, &sifted),
        })
    }
}

/// Texts of a batch, concatenated: text `i` is `values[offsets[i]..offsets[i + 1]]`.
struct Ragged {
    values: Vec<u32>,
    offsets: Vec<usize>,
}

impl Ragged {
    fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    fn get(&self, i: usize) -> &[u32] {
        &self.values[self.offsets[i]..self.offsets[i + 1]]
    }
}

/// Reads a batch of id sequences: a pyarrow list array (read through its `values` and
/// `offsets` buffers, no Python call per text) or any sequence of 1-D id arrays.
fn ragged(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Ragged> {
    if obj.hasattr("offsets")? && obj.hasattr("values")? {
        let nulls: usize = obj.getattr("null_count")?.extract()?;
        if nulls > 0 {
            return Err(ShapeError::new_err(format!(
                "{name} has {nulls} null row(s): give every text a list of ids (empty for none)"
            )));
        }
        let values = arrays::ids(&obj.getattr("values")?, name, &[1], None)?.data;
        let raw = u64s(&obj.getattr("offsets")?, "offsets")?;
        let offsets: Vec<usize> = raw.iter().map(|&o| o as usize).collect();
        let ok = !offsets.is_empty()
            && offsets.windows(2).all(|w| w[0] <= w[1])
            && offsets.last().is_some_and(|&o| o <= values.len());
        if !ok {
            return Err(ShapeError::new_err(format!(
                "{name}: the list array's offsets do not split its {} values",
                values.len()
            )));
        }
        return Ok(Ragged { values, offsets });
    }
    let mut out = Ragged {
        values: Vec::new(),
        offsets: vec![0],
    };
    let items = obj.try_iter().map_err(|_| {
        type_error(
            name,
            "a sequence of token id arrays or a pyarrow list array",
            obj,
        )
    })?;
    for (i, item) in items.enumerate() {
        let text = arrays::ids(&item?, &format!("{name}[{i}]"), &[1], None)?.data;
        out.values.extend_from_slice(&text);
        out.offsets.push(out.values.len());
    }
    Ok(out)
}

/// Non-negative integers (doc ids, offsets) as `u64`, read by numpy.
fn u64s(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<u64>> {
    let np = obj.py().import("numpy")?;
    let array = np
        .call_method1("asarray", (obj,))
        .map_err(|_| type_error(name, "a 1-D array of non-negative integers", obj))?;
    let untyped = array.cast::<PyUntypedArray>()?;
    if !matches!(untyped.dtype().kind(), b'i' | b'u') || untyped.ndim() != 1 {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a 1-D array of non-negative integers, got dtype {} with shape {:?}",
            untyped.dtype(),
            untyped.shape()
        )));
    }
    if untyped.dtype().kind() == b'u' {
        let array = array.call_method1("astype", ("uint64",))?;
        return Ok(array.cast::<PyArray1<u64>>()?.to_vec()?);
    }
    let signed = array
        .call_method1("astype", ("int64",))?
        .cast::<PyArray1<i64>>()?
        .to_vec()?;
    signed
        .iter()
        .map(|&v| {
            u64::try_from(v)
                .map_err(|_| ShapeError::new_err(format!("{name} holds {v}: values must be >= 0")))
        })
        .collect()
}

/// A 1-D numpy array of exactly `T` (as `sift_*` returns), copied.
fn typed_vec<T: numpy::Element + Copy>(
    obj: &Bound<'_, PyAny>,
    name: &str,
    dtype: &str,
) -> PyResult<Vec<T>> {
    let array = obj.cast::<PyArray1<T>>().map_err(|_| {
        type_error(
            name,
            &format!("a 1-D numpy {dtype} array (as the sift methods return)"),
            obj,
        )
    })?;
    Ok(array
        .readonly()
        .as_slice()
        .map_or_else(|_| array.readonly().as_array().to_vec(), |s| s.to_vec()))
}

/// Pooled rows as numpy gives them: one tuple per row.
struct Rows {
    fingerprint: Vec<u64>,
    score: Vec<f64>,
    doc: Vec<u64>,
    position: Vec<u64>,
    count: Vec<u64>,
}

impl Rows {
    fn extract(
        fingerprint: &Bound<'_, PyAny>,
        score: &Bound<'_, PyAny>,
        doc: &Bound<'_, PyAny>,
        position: &Bound<'_, PyAny>,
        count: &Bound<'_, PyAny>,
    ) -> PyResult<Rows> {
        let rows = Rows {
            fingerprint: typed_vec::<u64>(fingerprint, "fingerprint", "uint64")?,
            score: typed_vec::<f64>(score, "score", "float64")?,
            doc: typed_vec::<u64>(doc, "doc", "uint64")?,
            position: typed_vec::<u64>(position, "position", "uint64")?,
            count: typed_vec::<u64>(count, "count", "uint64")?,
        };
        let n = rows.fingerprint.len();
        let lengths = [
            rows.score.len(),
            rows.doc.len(),
            rows.position.len(),
            rows.count.len(),
        ];
        if lengths != [n; 4] {
            return Err(ShapeError::new_err(format!(
                "fingerprint, score, doc, position and count have lengths {n}, {}, {}, {} and \
                 {}: give one of each per row",
                lengths[0], lengths[1], lengths[2], lengths[3]
            )));
        }
        Ok(rows)
    }

    fn pool(&self) -> greenmark::Result<Pool> {
        let mut pool = Pool::new();
        for i in 0..self.fingerprint.len() {
            let first = Place {
                doc: self.doc[i],
                position: self.position[i],
            };
            pool.add(PooledTuple::new(
                self.fingerprint[i],
                self.score[i],
                first,
                self.count[i],
            ))?;
        }
        Ok(pool)
    }
}

fn left_out_dict<'py>(py: Python<'py>, s: &Sifted) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("n_excluded", s.n_excluded)?;
    d.set_item("n_filtered", s.n_filtered)?;
    d.set_item("n_copied", s.n_copied)?;
    Ok(d)
}

fn sifted_dict(py: Python<'_>, s: Sifted) -> PyResult<Bound<'_, PyDict>> {
    let d = left_out_dict(py, &s)?;
    d.set_item("fingerprint", PyArray1::from_vec(py, s.fingerprints))?;
    d.set_item("score", PyArray1::from_vec(py, s.scores))?;
    Ok(d)
}

/// A pool as the `sift_batch` dict: its tuples in no particular order.
fn pool_dict(py: Python<'_>, p: Pool) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("n_excluded", p.n_excluded())?;
    d.set_item("n_filtered", p.n_filtered())?;
    d.set_item("n_copied", p.n_copied())?;
    d.set_item("n_over_budget", p.n_over_budget())?;
    let t = p.tuples();
    let column = |f: fn(&PooledTuple) -> u64| t.iter().map(f).collect::<Vec<u64>>();
    d.set_item(
        "fingerprint",
        PyArray1::from_vec(py, column(|t| t.fingerprint)),
    )?;
    let score: Vec<f64> = t.iter().map(|t| t.score).collect();
    d.set_item("score", PyArray1::from_vec(py, score))?;
    d.set_item("doc", PyArray1::from_vec(py, column(|t| t.first.doc)))?;
    d.set_item(
        "position",
        PyArray1::from_vec(py, column(|t| t.first.position)),
    )?;
    d.set_item("count", PyArray1::from_vec(py, column(|t| t.count)))?;
    Ok(d)
}
