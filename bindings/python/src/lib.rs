//! The `greenmark._greenmark` extension module: conversions between Python and the greenmark
//! core, nothing more. Every call that does real work releases the GIL through
//! [`errors::EnterGreenmark::enter`], which also maps `greenmark::Error` to the Python
//! exception of its kind.
#![deny(missing_docs)]

mod arrays;
mod config;
mod detect;
mod errors;
mod eval;
mod gumbel;
mod key;
mod keyring;
mod radioactivity;
mod screen;
mod synthid;
mod watermark;

use pyo3::prelude::*;

/// The native core of the `greenmark` package; import `greenmark` instead.
#[pymodule]
fn _greenmark(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<key::PyKey>()?;
    m.add_class::<config::PyConfig>()?;
    m.add_class::<watermark::PyWatermarker>()?;
    m.add_class::<detect::PyDetection>()?;
    m.add_class::<detect::PyDetector>()?;
    m.add_class::<detect::PyTextDetector>()?;
    m.add_class::<detect::PySpanDetection>()?;
    m.add_class::<keyring::PyKeyring>()?;
    m.add_class::<keyring::PyKeyringDetection>()?;
    m.add_class::<radioactivity::PyRadioactivityTest>()?;
    m.add_class::<screen::PyScreenCorpus>()?;
    m.add_function(wrap_pyfunction!(eval::evaluate, m)?)?;
    gumbel::register(m)?;
    synthid::register(m)?;
    errors::register(m)
}
