//! `greenmark.Watermarker`.

use greenmark::Watermarker;
use numpy::{PyArray1, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::arrays::{self, Ids};
use crate::config::{config_arg, PyConfig};
use crate::errors::{to_py, EnterGreenmark, ShapeError};
use crate::key::key_arg;

/// Applies the watermark: biases float32 logits in place, or hands out green masks.
#[pyclass(name = "Watermarker", module = "greenmark._greenmark", frozen)]
pub(crate) struct PyWatermarker(Watermarker);

impl PyWatermarker {
    /// Token ids of the contexts; only the window is read unless repeated windows are skipped.
    fn contexts(&self, input_ids: &Bound<'_, PyAny>) -> PyResult<Ids> {
        arrays::ids(
            input_ids,
            "input_ids",
            &[1, 2],
            self.0.config().history_len(),
        )
    }
}

#[pymethods]
impl PyWatermarker {
    #[new]
    fn new(key: &Bound<'_, PyAny>, config: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyWatermarker(Watermarker::new(
            &key_arg(key)?,
            config_arg(config)?,
        )))
    }

    /// The config applied.
    #[getter]
    fn config(&self) -> PyConfig {
        PyConfig(self.0.config().clone())
    }

    /// The public id of the key.
    #[getter]
    fn key_id(&self) -> String {
        self.0.key_id().to_string()
    }

    /// Adds delta to the green logits, in place: `logits` float32 C-contiguous of shape (V,) with
    /// `input_ids` (T,), or (B, V) with (B, T). Rows run in parallel with the GIL released.
    fn bias(
        &self,
        py: Python<'_>,
        logits: &Bound<'_, PyAny>,
        input_ids: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let mut logits = arrays::logits(logits)?;
        let ids = self.contexts(input_ids)?;
        let shape = logits.shape().to_vec();
        let rows = if shape.len() == 1 { 1 } else { shape[0] };
        if ids.ndim != shape.len() || ids.rows != rows {
            return Err(ShapeError::new_err(format!(
                "logits of shape {shape:?} need input_ids of shape {}, got {} dimensions with {} rows",
                if shape.len() == 1 { "(T,)" } else { "(B, T) with the same B" },
                ids.ndim,
                ids.rows
            )));
        }
        let vocab = self.0.config().vocab_size() as usize;
        if shape[shape.len() - 1] != vocab {
            // The core's own message for a row of the wrong length (a batch only says "shape").
            return Err(to_py(greenmark::Error::RowLength {
                row: 0,
                expected: vocab,
                got: shape[shape.len() - 1],
            }));
        }
        let slice = logits.as_slice_mut()?;
        let contexts = ids.rows();
        py.enter(|| self.0.bias_batch(slice, &contexts))
    }

    /// The green lists as bitsets: bit `v % 64` of word `v // 64` is set iff token `v` is green.
    /// Returns uint64 of shape (ceil(V/64),) for `input_ids` (T,), or (B, ceil(V/64)) for (B, T).
    /// A position without a full window gets an all-zero mask.
    fn green_mask<'py>(
        &self,
        py: Python<'py>,
        input_ids: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ids = self.contexts(input_ids)?;
        let words = (self.0.config().vocab_size() as usize).div_ceil(64);
        let contexts = ids.rows();
        let masks = py.enter(|| {
            let mut masks = vec![0u64; contexts.len() * words];
            for (mask, context) in masks.chunks_mut(words).zip(&contexts) {
                self.0.green_mask(context, mask)?;
            }
            Ok(masks)
        })?;
        let array = PyArray1::from_vec(py, masks);
        if ids.ndim == 1 {
            Ok(array.into_any())
        } else {
            Ok(array.reshape([ids.rows, words])?.into_any())
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "Watermarker(key_id={}, config={})",
            self.0.key_id(),
            self.0.config().to_json()
        )
    }
}
