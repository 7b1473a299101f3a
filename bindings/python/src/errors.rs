//! Python exceptions (created once) and the one helper every call goes through.

use greenmark::{Document, Error};
use pyo3::exceptions::{
    PyFileExistsError, PyFileNotFoundError, PyOSError, PyPermissionError, PyTypeError, PyValueError,
};
use pyo3::marker::Ungil;
use pyo3::prelude::*;

pyo3::create_exception!(
    greenmark,
    GreenmarkError,
    PyValueError,
    "Base class of greenmark's errors (a ValueError)."
);
pyo3::create_exception!(
    greenmark,
    ConfigError,
    GreenmarkError,
    "A watermark config value is out of range, malformed, or disagrees with a key file's."
);
pyo3::create_exception!(
    greenmark,
    ShapeError,
    GreenmarkError,
    "An array has the wrong shape, layout or length for the watermark's vocabulary."
);
pyo3::create_exception!(
    greenmark,
    TokenError,
    GreenmarkError,
    "A token id is negative or not below the vocabulary size."
);
pyo3::create_exception!(
    greenmark,
    InvalidKeyError,
    GreenmarkError,
    "A key or key file is malformed (messages never repeat the secret)."
);
pyo3::create_exception!(
    greenmark,
    TextError,
    GreenmarkError,
    "A text is empty or not UTF-8, or the tokenizer failed or does not fit the config."
);

pyo3::create_exception!(
    greenmark,
    KeyFilePermissionWarning,
    pyo3::exceptions::PyUserWarning,
    "A key file may be read by users other than its owner (mode & 0o077 != 0): `chmod 600` it."
);

/// Warns with [`KeyFilePermissionWarning`] when users other than its owner may read the key
/// file at `path` (the core's check, [`greenmark::files::loose_permissions`]).
pub(crate) fn warn_loose_permissions(py: Python<'_>, path: &std::path::Path) -> PyResult<()> {
    if let Some(loose) = greenmark::files::loose_permissions(path) {
        let message =
            std::ffi::CString::new(loose.to_string().replace('\0', "")).expect("NULs removed");
        PyErr::warn(py, &py.get_type::<KeyFilePermissionWarning>(), &message, 1)?;
    }
    Ok(())
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("GreenmarkError", py.get_type::<GreenmarkError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("ShapeError", py.get_type::<ShapeError>())?;
    m.add("TokenError", py.get_type::<TokenError>())?;
    m.add("InvalidKeyError", py.get_type::<InvalidKeyError>())?;
    m.add("TextError", py.get_type::<TextError>())?;
    m.add(
        "KeyFilePermissionWarning",
        py.get_type::<KeyFilePermissionWarning>(),
    )?;
    Ok(())
}

/// The Python exception for a greenmark error, with the core's message.
pub(crate) fn to_py(err: Error) -> PyErr {
    let msg = err.to_string();
    by_kind(&err, msg)
}

/// The exception for `err`'s kind, carrying `msg`.
fn by_kind(err: &Error, msg: String) -> PyErr {
    match err {
        // A text of a batch: the inner error's exception, the message naming the text.
        Error::InBatch { source, .. } => by_kind(source, msg),
        Error::InvalidGamma(_)
        | Error::InvalidDelta(_)
        | Error::InvalidVocabSize(_)
        | Error::InvalidScheme { .. }
        | Error::UnknownScheme { .. }
        | Error::InvalidOption { .. }
        | Error::InvalidKeys(_)
        | Error::Unsupported(_)
        | Error::ConfigMismatch { .. }
        | Error::ModelVocab { .. }
        | Error::InvalidThreshold(_) => ConfigError::new_err(msg),
        Error::Parse {
            what: Document::Config | Document::VllmConfig | Document::SynthIdConfig,
            ..
        } => ConfigError::new_err(msg),
        Error::Parse { .. } | Error::InvalidKey(_) => InvalidKeyError::new_err(msg),
        Error::RowLength { .. } | Error::BatchShape(_) | Error::MaskLength { .. } => {
            ShapeError::new_err(msg)
        }
        Error::TokenOutOfRange { .. } | Error::ReservedToken { .. } => TokenError::new_err(msg),
        Error::EmptyText
        | Error::InvalidUtf8 { .. }
        | Error::Tokenizer(_)
        | Error::TokenizerVocab { .. } => TextError::new_err(msg),
        Error::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(msg),
            std::io::ErrorKind::AlreadyExists => PyFileExistsError::new_err(msg),
            std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(msg),
            _ => PyOSError::new_err(msg),
        },
        Error::Rng(_) => PyOSError::new_err(msg),
        // Not a regular file, or too large: the path is wrong, as with a missing file.
        Error::FileRefused { .. } => PyOSError::new_err(msg),
        _ => GreenmarkError::new_err(msg),
    }
}

/// A `TypeError` naming what was expected and the type that was given.
pub(crate) fn type_error(what: &str, expected: &str, got: &Bound<'_, PyAny>) -> PyErr {
    let got = got
        .get_type()
        .qualname()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    PyTypeError::new_err(format!("{what} must be {expected}, got {got}"))
}

/// Runs greenmark work with the GIL released and converts its error (polars' `EnterPolarsExt`).
pub(crate) trait EnterGreenmark {
    /// `f()` without the GIL; a `greenmark::Error` becomes the matching Python exception.
    fn enter<T: Ungil + Send, F: Ungil + FnOnce() -> greenmark::Result<T>>(
        self,
        f: F,
    ) -> PyResult<T>;
}

impl EnterGreenmark for Python<'_> {
    fn enter<T: Ungil + Send, F: Ungil + FnOnce() -> greenmark::Result<T>>(
        self,
        f: F,
    ) -> PyResult<T> {
        self.detach(f).map_err(to_py)
    }
}
