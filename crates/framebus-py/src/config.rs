//! Deployment and camera configs, policies and resolved reader settings for Python: every
//! value comes from `framebus_common`'s loader and validation, nothing is derived here.

use framebus::{CameraBuilder, ReaderPolicy, ReaderSettings};
use framebus_common::config::SlotLayout as RustLayout;
use framebus_common::{CameraConfig as RustCamera, Deployment as RustDeployment};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{config_error, to_py};

/// A reader policy: `newest`, `every` or `max-fps=N` (`str()` gives that text).
#[pyclass(frozen, eq, module = "framebus", name = "Policy", from_py_object)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy(pub ReaderPolicy);

#[pymethods]
impl Policy {
    /// `Policy("newest")`, `Policy("max-fps", 5)`: as [`Policy::parse`].
    #[new]
    #[pyo3(signature = (name, max_fps=None))]
    fn new(name: &str, max_fps: Option<f64>) -> PyResult<Policy> {
        Policy::parse(name, max_fps)
    }

    /// Parses a policy as the config writes it: `"newest"`, `"every"`, `"max-fps"` with
    /// `max_fps`, or `"max-fps=N"`. Raises ValueError saying what is allowed.
    #[staticmethod]
    #[pyo3(signature = (name, max_fps=None))]
    fn parse(name: &str, max_fps: Option<f64>) -> PyResult<Policy> {
        ReaderPolicy::parse(name, max_fps).map(Policy).map_err(PyValueError::new_err)
    }

    /// `newest`, `every` or `max-fps`.
    #[getter]
    fn name(&self) -> &'static str {
        self.0.name()
    }

    /// Frames per second of `max-fps`, else None.
    #[getter]
    fn fps(&self) -> Option<f64> {
        match self.0 {
            ReaderPolicy::MaxFps(fps) => Some(fps),
            _ => None,
        }
    }

    /// Wire code in status replies: 1 newest, 2 every, 3 max-fps.
    #[getter]
    fn code(&self) -> u32 {
        self.0.code()
    }

    fn __str__(&self) -> String {
        self.0.to_string()
    }

    fn __repr__(&self) -> String {
        format!("Policy('{}')", self.0)
    }
}

/// How a camera's frame slots are shared (`camera.slots`, `max-readers`).
#[pyclass(frozen, get_all, module = "framebus", name = "SlotLayout")]
#[derive(Debug, Clone, Copy)]
pub struct SlotLayout {
    /// Bytes of one frame slot.
    pub frame_bytes: usize,
    /// Readers the camera admits at once.
    pub max_readers: usize,
    /// Deepest queue a reader may ask for.
    pub max_queue_depth: usize,
    /// Samples one reader may hold.
    pub reader_borrows: usize,
    /// Samples capture may hold while writing.
    pub publisher_loans: usize,
}

impl From<RustLayout> for SlotLayout {
    fn from(l: RustLayout) -> SlotLayout {
        SlotLayout {
            frame_bytes: l.frame_bytes,
            max_readers: l.max_readers,
            max_queue_depth: l.max_queue_depth,
            reader_borrows: l.reader_borrows,
            publisher_loans: l.publisher_loans,
        }
    }
}

/// One camera of a deployment config, validated by the Rust loader.
#[pyclass(frozen, module = "framebus", name = "CameraConfig")]
#[derive(Debug, Clone)]
pub struct CameraConfig(pub RustCamera);

#[pymethods]
impl CameraConfig {
    /// The camera's name.
    #[getter]
    fn name(&self) -> &str {
        &self.0.name
    }

    /// Width in pixels.
    #[getter]
    fn width(&self) -> u32 {
        self.0.width
    }

    /// Height in pixels.
    #[getter]
    fn height(&self) -> u32 {
        self.0.height
    }

    /// Frames per second.
    #[getter]
    fn fps(&self) -> f64 {
        self.0.fps
    }

    /// The pixel format's name (`BGR3`, ...).
    #[getter]
    fn pixel_format(&self) -> &'static str {
        self.0.pixel_format.name()
    }

    /// Frame slots of the camera's shared memory.
    #[getter]
    fn slots(&self) -> u32 {
        self.0.slots
    }

    /// Readers the camera admits at once.
    #[getter]
    fn max_readers(&self) -> u32 {
        self.0.max_readers
    }

    /// Bytes of one frame.
    #[getter]
    fn frame_bytes(&self) -> usize {
        self.0.frame_bytes()
    }

    /// The slot layout (queue depths a reader may ask for).
    fn slot_layout(&self) -> SlotLayout {
        self.0.slot_layout().into()
    }

    /// The roles the config lists for this camera (built-in processes and `[[camera.reader]]`).
    fn roles(&self) -> Vec<String> {
        self.0.roles().iter().map(|r| r.as_str().to_string()).collect()
    }

    fn __repr__(&self) -> String {
        format!("<framebus.CameraConfig {}>", self.0.name)
    }
}

/// A deployment config file, loaded and validated by the Rust loader.
#[pyclass(frozen, module = "framebus", name = "Deployment")]
#[derive(Debug, Clone)]
pub struct Deployment(pub RustDeployment);

#[pymethods]
impl Deployment {
    /// The deployment's name.
    #[getter]
    fn name(&self) -> &str {
        self.0.name()
    }

    /// The file it was loaded from.
    #[getter]
    fn source_file(&self) -> String {
        self.0.source_file.display().to_string()
    }

    /// Where the cameras' command state is kept.
    #[getter]
    fn state_dir(&self) -> String {
        self.0.state_dir().display().to_string()
    }

    /// The cameras' configs, in file order.
    #[getter]
    fn cameras(&self) -> Vec<CameraConfig> {
        self.0.camera.iter().cloned().map(CameraConfig).collect()
    }

    /// The camera named `name`, or the only camera when None; raises ConfigError otherwise.
    #[pyo3(signature = (name=None))]
    fn camera(&self, py: Python<'_>, name: Option<&str>) -> PyResult<CameraConfig> {
        self.0.camera(name).map(|c| CameraConfig(c.clone())).map_err(|e| config_error(py, &e))
    }

    /// What a reader of `camera` with `role` would open with (the config's
    /// `[[camera.reader]]` entry wins over `policy` and `queue_depth`): a dict with camera,
    /// role, policy, queue_depth, width, height, fps, pixel_format, slots, max_readers,
    /// max_queue_depth, frame_bytes, service and iceoryx2 prefix and root path.
    #[pyo3(signature = (camera, role, policy=None, queue_depth=None))]
    fn reader_settings<'py>(
        &self,
        py: Python<'py>,
        camera: Option<&str>,
        role: &str,
        policy: Option<Policy>,
        queue_depth: Option<u32>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let settings =
            builder(&self.0, camera, role, policy, queue_depth).and_then(|b| b.settings()).map_err(|e| to_py(py, e))?;
        settings_dict(py, &self.0, &settings)
    }

    fn __repr__(&self) -> String {
        format!("<framebus.Deployment {} from {}>", self.0.name(), self.0.source_file.display())
    }
}

/// The builder a Python reader is opened with.
pub fn builder(
    deployment: &RustDeployment,
    camera: Option<&str>,
    role: &str,
    policy: Option<Policy>,
    queue_depth: Option<u32>,
) -> Result<CameraBuilder, framebus::Error> {
    let mut builder = framebus::Camera::builder_for(deployment, camera).role(role)?;
    if let Some(policy) = policy {
        builder = builder.policy(policy.0);
    }
    if let Some(depth) = queue_depth {
        builder = builder.queue_depth(depth);
    }
    Ok(builder)
}

/// Resolved settings as a dict (see `Deployment.reader_settings`).
pub fn settings_dict<'py>(
    py: Python<'py>,
    deployment: &RustDeployment,
    settings: &ReaderSettings,
) -> PyResult<Bound<'py, PyDict>> {
    let camera = &settings.camera;
    let layout = camera.slot_layout();
    let d = PyDict::new(py);
    d.set_item("deployment", deployment.name())?;
    d.set_item("camera", &camera.name)?;
    d.set_item("role", settings.role.as_str())?;
    d.set_item("policy", settings.policy.to_string())?;
    d.set_item("queue_depth", settings.queue_depth)?;
    d.set_item("width", camera.width)?;
    d.set_item("height", camera.height)?;
    d.set_item("fps", camera.fps)?;
    d.set_item("pixel_format", camera.pixel_format.name())?;
    d.set_item("slots", camera.slots)?;
    d.set_item("max_readers", camera.max_readers)?;
    d.set_item("max_queue_depth", layout.max_queue_depth)?;
    d.set_item("frame_bytes", camera.frame_bytes())?;
    d.set_item(
        "service",
        framebus_common::names::service_name(deployment.name(), &camera.name, framebus_common::ServiceKind::Frames),
    )?;
    d.set_item("iceoryx2_prefix", framebus_common::names::shm_prefix(deployment.name()))?;
    d.set_item("iceoryx2_root_path", framebus_common::ipc::deployment_root(deployment.name()))?;
    Ok(d)
}

/// Loads and validates a deployment config file; raises ConfigError naming the file and key.
#[pyfunction]
pub fn load_config(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Deployment> {
    RustDeployment::load(&path).map(Deployment).map_err(|e| config_error(py, &e))
}
