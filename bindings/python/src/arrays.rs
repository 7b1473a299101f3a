//! numpy conversions: token ids in (any integer array, list or CPU tensor), float32 logits
//! borrowed in place (never copied), uint64 masks and int8 annotations out.

use numpy::{
    dtype, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadwriteArrayDyn, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PySlice;

use crate::errors::{type_error, ShapeError, TokenError};

/// Token ids as one row-major buffer of `rows x cols` (one row for a 1-D input).
pub(crate) struct Ids {
    pub(crate) data: Vec<u32>,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) ndim: usize,
}

impl Ids {
    /// The rows as slices.
    pub(crate) fn rows(&self) -> Vec<&[u32]> {
        if self.cols == 0 {
            return vec![&[][..]; self.rows];
        }
        self.data.chunks(self.cols).collect()
    }
}

/// Reads token ids of 1 or 2 dimensions (as `ndims` allows) from any integer array-like.
/// With `tail = Some(h)` only the last `h` ids of each row are read: biasing needs no more.
pub(crate) fn ids(
    obj: &Bound<'_, PyAny>,
    name: &str,
    ndims: &[usize],
    tail: Option<usize>,
) -> PyResult<Ids> {
    let py = obj.py();
    let np = py.import("numpy")?;
    let array = np.call_method1("asarray", (obj,)).map_err(|_| {
        type_error(
            name,
            "an integer array (numpy array, list of ints or CPU torch tensor)",
            obj,
        )
    })?;
    let untyped = array.cast::<PyUntypedArray>()?;
    let kind = untyped.dtype().kind();
    if !matches!(kind, b'i' | b'u') {
        return Err(PyTypeError::new_err(format!(
            "{name} must hold integer token ids, got dtype {}",
            untyped.dtype()
        )));
    }
    let ndim = untyped.ndim();
    if !ndims.contains(&ndim) {
        let want = if ndims == [1] {
            "(T,)"
        } else {
            "(T,) or (B, T)"
        };
        return Err(ShapeError::new_err(format!(
            "{name} must have shape {want}, got {ndim} dimensions {:?}",
            untyped.shape()
        )));
    }
    let shape = untyped.shape().to_vec();
    let (rows, full) = if ndim == 1 {
        (1, shape[0])
    } else {
        (shape[0], shape[1])
    };
    let mut array = array.clone();
    if let Some(h) = tail {
        if full > h {
            let start = (full - h) as isize;
            let slice = PySlice::new(py, start, full as isize, 1);
            array = if ndim == 1 {
                array.get_item(slice)?
            } else {
                array.get_item((PySlice::full(py), slice))?
            };
        }
    }
    let cols = tail.map_or(full, |h| full.min(h));
    let mut data = Vec::with_capacity(rows * cols);
    let bad = |i: usize, v: &dyn std::fmt::Display| {
        let (r, c) = (i / cols.max(1), i % cols.max(1) + (full - cols));
        let at = if ndim == 1 {
            format!("position {c}")
        } else {
            format!("row {r}, position {c}")
        };
        TokenError::new_err(format!(
            "{name} holds {v} at {at}: token ids must be between 0 and 2**32 - 1"
        ))
    };
    if kind == b'u' && untyped.dtype().itemsize() == 8 {
        let a = array.cast::<PyArrayDyn<u64>>()?.readonly();
        for (i, &v) in a.as_array().iter().enumerate() {
            data.push(u32::try_from(v).map_err(|_| bad(i, &v))?);
        }
    } else {
        let a = array.call_method1("astype", ("int64",))?;
        let a = a.cast::<PyArrayDyn<i64>>()?.readonly();
        for (i, &v) in a.as_array().iter().enumerate() {
            data.push(u32::try_from(v).map_err(|_| bad(i, &v))?);
        }
    }
    Ok(Ids {
        data,
        rows,
        cols,
        ndim,
    })
}

/// Borrows a float32, C-contiguous, writable numpy array of 1 or 2 dimensions for writing in
/// place. Never copies: a wrong dtype or layout is an error, since a converted copy would be
/// biased and thrown away.
pub(crate) fn logits<'py>(obj: &Bound<'py, PyAny>) -> PyResult<PyReadwriteArrayDyn<'py, f32>> {
    let py = obj.py();
    let untyped = obj.cast::<PyUntypedArray>().map_err(|_| {
        type_error(
            "logits",
            "a float32 numpy.ndarray (for torch tensors use greenmark.transformers.WatermarkLogitsProcessor)",
            obj,
        )
    })?;
    if !untyped.dtype().is_equiv_to(&dtype::<f32>(py)) {
        return Err(PyTypeError::new_err(format!(
            "logits must be float32 (native byte order), got dtype {}: biasing works in place on \
             the caller's buffer, so convert first (logits.astype(np.float32)) and use that array",
            untyped.dtype()
        )));
    }
    let ndim = untyped.ndim();
    if !(1..=2).contains(&ndim) {
        return Err(ShapeError::new_err(format!(
            "logits must have shape (V,) or (B, V), got {ndim} dimensions {:?}",
            untyped.shape()
        )));
    }
    if !untyped.is_c_contiguous() {
        return Err(ShapeError::new_err(format!(
            "logits must be C-contiguous, got a strided view of shape {:?}: pass \
             np.ascontiguousarray(logits) and use the result",
            untyped.shape()
        )));
    }
    obj.cast::<PyArrayDyn<f32>>()?.try_readwrite().map_err(|e| {
        ShapeError::new_err(format!(
            "logits cannot be written in place ({e}): pass a writable array"
        ))
    })
}
