//! numpy conversions: token ids in (any integer array, list or CPU tensor), float32 logits
//! borrowed in place (never copied), uint64 masks and int8 annotations out.

use numpy::ndarray::{Axis, Slice};
use numpy::{
    dtype, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadwriteArrayDyn, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

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
///
/// Performance note: int64 (torch's `long`) and int32 (llama.cpp's `intc`) numpy arrays are read
/// in place through their strides, with no Python call at all; this path runs once per
/// generation step, where each Python call (`asarray`, slicing, `astype`) cost about 1 us
/// against a 5 us bias of a 49152-wide row (measured). Other inputs are converted by numpy.
pub(crate) fn ids(
    obj: &Bound<'_, PyAny>,
    name: &str,
    ndims: &[usize],
    tail: Option<usize>,
) -> PyResult<Ids> {
    if let Ok(array) = obj.cast::<PyArrayDyn<i64>>() {
        return typed_ids(array, name, ndims, tail);
    }
    if let Ok(array) = obj.cast::<PyArrayDyn<i32>>() {
        return typed_ids(array, name, ndims, tail);
    }
    let np = obj.py().import("numpy")?;
    let array = np.call_method1("asarray", (obj,)).map_err(|_| {
        type_error(
            name,
            "an integer array (numpy array, list of ints or CPU torch tensor)",
            obj,
        )
    })?;
    let untyped = array.cast::<PyUntypedArray>()?;
    let kind = untyped.dtype().kind();
    // An empty list comes out of numpy as float64: no ids, whatever the dtype.
    if !matches!(kind, b'i' | b'u') && untyped.len() > 0 {
        return Err(PyTypeError::new_err(format!(
            "{name} must hold integer token ids, got dtype {}",
            untyped.dtype()
        )));
    }
    if kind == b'u' && untyped.dtype().itemsize() == 8 {
        return typed_ids(array.cast::<PyArrayDyn<u64>>()?, name, ndims, tail);
    }
    let array = array.call_method1("astype", ("int64",))?;
    typed_ids(array.cast::<PyArrayDyn<i64>>()?, name, ndims, tail)
}

fn shape_error(name: &str, ndims: &[usize], shape: &[usize]) -> PyErr {
    let want = if ndims == [1] {
        "(T,)"
    } else {
        "(T,) or (B, T)"
    };
    ShapeError::new_err(format!(
        "{name} must have shape {want}, got {} dimensions {shape:?}",
        shape.len()
    ))
}

/// Reads ids from a typed array in place (any strides), keeping the last `tail` of each row.
fn typed_ids<T>(
    array: &Bound<'_, PyArrayDyn<T>>,
    name: &str,
    ndims: &[usize],
    tail: Option<usize>,
) -> PyResult<Ids>
where
    T: numpy::Element + Copy + std::fmt::Display,
    u32: TryFrom<T>,
{
    let ndim = array.ndim();
    if !ndims.contains(&ndim) {
        return Err(shape_error(name, ndims, array.shape()));
    }
    let readonly = array.try_readonly().map_err(|e| {
        ShapeError::new_err(format!(
            "{name} cannot be read while it is borrowed for writing ({e}): pass a copy"
        ))
    })?;
    let view = readonly.as_array();
    let full = view.shape()[ndim - 1];
    let rows = if ndim == 1 { 1 } else { view.shape()[0] };
    let cols = tail.map_or(full, |h| full.min(h));
    let view = view.slice_axis(Axis(ndim - 1), Slice::from(full - cols..));
    let bad = |i: usize, v: T| {
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
    let mut data = Vec::with_capacity(rows * cols);
    for (i, &v) in view.iter().enumerate() {
        data.push(u32::try_from(v).map_err(|_| bad(i, v))?);
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

/// Token ids (T,) of one sequence; an empty list is fine (numpy reads `[]` as float64).
pub(crate) fn token_ids(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<u32>> {
    if obj.len().ok() == Some(0) && !obj.is_instance_of::<pyo3::types::PyString>() {
        return Ok(Vec::new());
    }
    Ok(ids(obj, name, &[1], None)?.data)
}

/// A batch of id sequences (`texts`: any iterable of sequences, not a string), each of its
/// own length.
pub(crate) fn id_sequences(texts: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<u32>>> {
    if texts.is_instance_of::<pyo3::types::PyString>() {
        return Err(type_error("texts", "a list of id sequences", texts));
    }
    texts
        .try_iter()
        .map_err(|_| type_error("texts", "a list of id sequences", texts))?
        .map(|t| token_ids(&t?, "each sequence"))
        .collect()
}
