//! `greenmark.Key`.

use std::path::PathBuf;

use greenmark::Key;
use pyo3::prelude::*;

use crate::errors::{to_py, type_error, EnterGreenmark};

/// A 32-byte watermarking secret. Its repr shows the public key id, never the secret.
#[pyclass(name = "Key", module = "greenmark._greenmark", frozen, eq)]
#[derive(PartialEq)]
pub(crate) struct PyKey(pub(crate) Key);

#[pymethods]
impl PyKey {
    /// A fresh key from the operating system's random number generator.
    #[staticmethod]
    fn generate() -> PyResult<Self> {
        Key::generate().map(PyKey).map_err(to_py)
    }

    /// A key from 64 hex digits (surrounding whitespace ignored).
    #[staticmethod]
    fn from_hex(text: &str) -> PyResult<Self> {
        Key::from_hex(text).map(PyKey).map_err(to_py)
    }

    /// Reads a key file: 64 hex digits, or a greenmark JSON key file.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        py.enter(|| Key::load(&path)).map(PyKey)
    }

    /// Writes the key as a hex key file with mode 0600; refuses to overwrite a file.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        py.enter(|| self.0.save(&path))
    }

    /// The secret as 64 lowercase hex digits. Handle with care.
    fn to_hex(&self) -> String {
        self.0.to_hex()
    }

    /// The key's public id: 16 hex digits, safe to show in reports.
    #[getter]
    fn id(&self) -> String {
        self.0.id().to_string()
    }

    fn __repr__(&self) -> String {
        format!("Key(id={})", self.0.id())
    }

    /// Keys are not pickled: a secret should not travel inside other objects' state.
    fn __reduce__(&self) -> PyResult<()> {
        Err(pyo3::exceptions::PyTypeError::new_err(
            "greenmark.Key is not picklable: pass key.to_hex() (a secret) or a key file path",
        ))
    }
}

/// The `greenmark.Key` behind a Python argument, with a clear `TypeError` otherwise.
pub(crate) fn key_arg(obj: &Bound<'_, PyAny>) -> PyResult<Key> {
    match obj.cast::<PyKey>() {
        Ok(key) => Ok(key.get().0.clone()),
        Err(_) => Err(type_error(
            "key",
            "a greenmark.Key (Key.generate(), Key.from_hex(...) or Key.load(path))",
            obj,
        )),
    }
}
