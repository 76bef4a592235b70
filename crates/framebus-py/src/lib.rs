//! `framebus._framebus`: the compiled part of the `framebus` Python package, a binding of the
//! Rust reader (`crates/framebus`). Config loading and validation, policies, accounting, the
//! control thread, status, signals, results and iceoryx2 settings are the Rust crate's; this
//! module adds only what Python needs on top: frames as read-only numpy arrays over shared
//! memory that never show recycled memory (`frame.rs`, `memory.rs`), and conversions.

mod config;
mod errors;
mod frame;
mod memory;
mod reader;

use framebus_common::pattern::SyntheticPattern;
use framebus_common::PixelFormat;
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The iceoryx2 file prefix and root folder of `deployment` (what `ctl iox2-config` prints):
/// a dict with `prefix` and `root_path`.
#[pyfunction]
fn iceoryx2_settings<'py>(py: Python<'py>, deployment: &str) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("prefix", framebus_common::names::shm_prefix(deployment))?;
    d.set_item("root_path", framebus_common::ipc::deployment_root(deployment))?;
    Ok(d)
}

/// None when `name` is a valid reader role, else why not.
#[pyfunction]
fn role_error(name: &str) -> Option<String> {
    framebus_common::Role::new(name).err().map(|e| e.to_string())
}

/// Longest role name.
#[pyfunction]
fn max_role_name() -> usize {
    framebus_common::names::MAX_ROLE_NAME
}

/// Installs the SIGINT/SIGTERM handlers of the Rust side now (once per process): the first
/// signal ends every reader's loop after the frame in progress, a second SIGINT exits at once
/// with status 130.
#[pyfunction]
fn install_signals() {
    framebus_common::signals::install();
}

/// The synthetic test pattern of one format and size, checked as the Rust readers check it.
#[pyclass(frozen, module = "framebus._framebus")]
struct Pattern(SyntheticPattern);

#[pymethods]
impl Pattern {
    /// The pattern of `pixel_format` (`BGR3`, ...) at `width` x `height`; ValueError when the
    /// synthetic source has none for it.
    #[new]
    fn new(pixel_format: &str, width: u32, height: u32) -> PyResult<Pattern> {
        let format: PixelFormat = pixel_format
            .parse()
            .map_err(|e: framebus_common::format::UnknownPixelFormat| PyValueError::new_err(e.to_string()))?;
        SyntheticPattern::new(format, width, height).map(Pattern).ok_or_else(|| {
            PyValueError::new_err(format!("no synthetic pattern for {pixel_format} at {width}x{height}"))
        })
    }

    /// Bytes of one frame.
    #[getter]
    fn frame_bytes(&self) -> usize {
        self.0.frame_bytes()
    }

    /// Checks a frame's bytes (any C-contiguous buffer: a uint8 array, bytes) against
    /// `frame_id`: None when it checks out, else what differs. `stamps_only`: check the two
    /// stamp bands alone (a scene's frame, header flag `FLAG_SCENE`).
    #[pyo3(signature = (frame_id, payload, stamps_only = false))]
    fn check(&self, frame_id: u64, payload: PyBuffer<u8>, stamps_only: bool) -> PyResult<Option<String>> {
        if !payload.is_c_contiguous() {
            return Err(PyValueError::new_err("the payload must be contiguous (use frame.data)"));
        }
        // SAFETY: the buffer is held (exported) for the duration of this call, contiguous,
        // `item_count` bytes of u8; frames are read-only, and a caller's own array is only read.
        let bytes = unsafe { std::slice::from_raw_parts(payload.buf_ptr() as *const u8, payload.item_count()) };
        // Not worth releasing the GIL for: two stamps and eight rows are microseconds.
        let checked = if stamps_only { self.0.verify_stamps(frame_id, bytes) } else { self.0.verify(frame_id, bytes) };
        Ok(checked.err().map(|e| e.to_string()))
    }
}

/// The module.
#[pymodule]
fn _framebus(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<reader::Reader>()?;
    m.add_class::<frame::Frame>()?;
    m.add_class::<frame::FrameHeader>()?;
    m.add_class::<frame::FrameBuffer>()?;
    m.add_class::<frame::Gap>()?;
    m.add_class::<config::Policy>()?;
    m.add_class::<config::SlotLayout>()?;
    m.add_class::<config::CameraConfig>()?;
    m.add_class::<config::Deployment>()?;
    m.add_class::<Pattern>()?;
    m.add("FLAG_SYNTHETIC_STAMP", framebus_common::header::FLAG_SYNTHETIC_STAMP)?;
    m.add("FLAG_SCENE", framebus_common::header::FLAG_SCENE)?;
    m.add("FLAG_GAP_BEFORE", framebus_common::header::FLAG_GAP_BEFORE)?;
    m.add_function(wrap_pyfunction!(config::load_config, m)?)?;
    m.add_function(wrap_pyfunction!(iceoryx2_settings, m)?)?;
    m.add_function(wrap_pyfunction!(role_error, m)?)?;
    m.add_function(wrap_pyfunction!(max_role_name, m)?)?;
    m.add_function(wrap_pyfunction!(install_signals, m)?)?;
    Ok(())
}
