//! `greenmark.Key`.

use std::path::PathBuf;

use greenmark::{Key, KeyFile};
use pyo3::prelude::*;

use crate::config::{config_arg, PyConfig};
use crate::errors::{to_py, type_error, warn_loose_permissions, EnterGreenmark};

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

    /// Reads a key file: 64 hex digits, or a greenmark JSON key file. With `config`, checks it
    /// against the config the file carries (`ConfigError` naming the field that differs).
    /// Warns with `KeyFilePermissionWarning` when users other than the owner may read it; a
    /// path that is not a regular file, or is over 64 KiB, raises `OSError` at once.
    #[staticmethod]
    #[pyo3(signature = (path, *, config=None))]
    fn load(py: Python<'_>, path: PathBuf, config: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let given = config.map(config_arg).transpose()?;
        warn_loose_permissions(py, &path)?;
        py.enter(|| {
            let file = KeyFile::load(&path)?;
            if let Some(given) = &given {
                file.check(given)?;
            }
            Ok(file.key)
        })
        .map(PyKey)
    }

    /// Reads a key file and the watermark config stored with it: `(key, config)`, where
    /// `config` is None for a hex key file or a JSON one without a config. Warns as `load`.
    #[staticmethod]
    fn load_with_config(py: Python<'_>, path: PathBuf) -> PyResult<(Self, Option<PyConfig>)> {
        warn_loose_permissions(py, &path)?;
        let file = py.enter(|| KeyFile::load(&path))?;
        Ok((PyKey(file.key), file.config.map(PyConfig)))
    }

    /// Writes the key file with mode 0600; refuses to overwrite a file. Without `config` the
    /// file is 64 hex digits; with it, a greenmark JSON key file that carries the config.
    #[pyo3(signature = (path, *, config=None))]
    fn save(
        &self,
        py: Python<'_>,
        path: PathBuf,
        config: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        match config.map(config_arg).transpose()? {
            None => py.enter(|| self.0.save(&path)),
            Some(config) => {
                let file = KeyFile::new(self.0.clone(), Some(config));
                py.enter(|| file.save(&path))
            }
        }
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
