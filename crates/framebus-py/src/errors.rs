//! Errors for Python: the classes live in `framebus._errors` (Python-shaped); Rust errors
//! become them here, with the Rust message.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyType;

/// An exception of `framebus._errors` named `class`, with `message`.
pub fn raise(py: Python<'_>, class: &str, message: String) -> PyErr {
    match error_class(py, class) {
        Ok(class) => PyErr::from_type(class, (message,)),
        Err(e) => e,
    }
}

fn error_class<'py>(py: Python<'py>, class: &str) -> PyResult<Bound<'py, PyType>> {
    Ok(py.import("framebus._errors")?.getattr(class)?.cast_into()?)
}

/// A `framebus::Error` as the Python exception documented for it.
pub fn to_py(py: Python<'_>, error: framebus::Error) -> PyErr {
    match error {
        framebus::Error::Config(e) => config_error(py, &e),
        framebus::Error::Ipc(e) => raise(py, "IpcError", e.to_string()),
        framebus::Error::Result(e) => PyValueError::new_err(e.to_string()),
        other => raise(py, "FramebusError", other.to_string()),
    }
}

/// A config error as `framebus.ConfigError(file, key, message, text)`.
pub fn config_error(py: Python<'_>, e: &framebus_common::ConfigError) -> PyErr {
    match error_class(py, "ConfigError") {
        Ok(class) => {
            PyErr::from_type(class, (e.file.display().to_string(), e.key.clone(), e.message.clone(), e.to_string()))
        }
        Err(e) => e,
    }
}

/// An I/O failure of the binding itself (mapping frames).
pub fn runtime(message: String) -> PyErr {
    PyRuntimeError::new_err(message)
}
