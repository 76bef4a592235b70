//! `Reader`: a `framebus::Camera` for Python. Frames are handed out as [`Frame`] objects; the
//! one in progress is released (arrays still alive moved to a private copy first) when the
//! next one is taken or the reader closes. Waits run with the GIL released.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use framebus::{Detection, Event, ProcessState, TimerId};
use framebus_common::FrameHeader as RustHeader;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::config::{builder, settings_dict, CameraConfig, Deployment, Policy};
use crate::errors::{raise, runtime, to_py};
use crate::frame::Frame;
use crate::memory::Segments;

/// How often a wait returns to Python (timeouts, signals Python itself handles).
const TICK: Duration = Duration::from_millis(100);

/// Recent frames whose id `publish_result` accepts in place of the frame.
const RECENT: usize = 64;

/// Lets a value cross [`Python::detach`], which asks for `Send` only to keep Python objects out
/// of the closure: the closure runs on this same thread.
struct OnThisThread<T>(T);

// SAFETY: `Python::detach` runs the closure on the calling thread; the wrapped values (a
// reference to the camera, the event it returns) never reach another thread and hold no
// Python object.
unsafe impl<T> Send for OnThisThread<T> {}

impl<T> OnThisThread<T> {
    fn into_inner(self) -> T {
        self.0
    }
}

/// The frame in progress. Field order is drop order: the Python frame lets go first, then
/// the sample goes back to capture.
struct Current {
    frame: Py<Frame>,
    /// Borrows the boxed camera of the reader holding it (see [`Reader::camera`]).
    sample: framebus::Frame<'static>,
}

/// A reader of one camera (the compiled part of `framebus.Camera`). Used by the thread that
/// opened it.
#[pyclass(unsendable, module = "framebus._framebus")]
pub struct Reader {
    // Field order is drop order: the frame in progress (which borrows the camera) goes first.
    current: Option<Current>,
    /// Boxed so that its address is stable while `current` borrows it; None once closed.
    camera: Option<Box<framebus::Camera>>,
    segments: Arc<Mutex<Segments>>,
    tick: Option<TimerId>,
    recent: VecDeque<(u64, u64, u64)>,
    kept_raise: bool,
    copies: u64,
    config: CameraConfig,
    deployment: Deployment,
    role: String,
    policy: Policy,
    queue_depth: u32,
    service: String,
}

impl Reader {
    fn camera(&self, py: Python<'_>) -> PyResult<&framebus::Camera> {
        self.camera.as_deref().ok_or_else(|| {
            raise(py, "FramebusError", format!("camera `{}` of {} is closed", self.config.0.name, self.role))
        })
    }

    /// Releases the frame in progress: its arrays still alive are moved to a private copy
    /// first; returns whether one was.
    fn release_current(&mut self, _py: Python<'_>) -> PyResult<bool> {
        let Some(current) = self.current.take() else { return Ok(false) };
        let released = current.frame.get().release();
        // Dropped with the GIL held: the arrays only the frame kept are freed now, and their
        // buffers released, before we look at what is still exported.
        drop(released.arrays);
        let mut copied = Ok(false);
        if let Some(alias) = released.alias {
            if alias.in_use() {
                copied = alias
                    .privatize()
                    .map(|()| true)
                    .map_err(|e| runtime(format!("moving a kept frame to private memory: {e}")));
            } else {
                lock(&self.segments).put_back(alias);
            }
        }
        let Current { frame, sample } = current;
        drop(frame);
        drop(sample);
        if matches!(copied, Ok(true)) {
            self.copies += 1;
        }
        copied
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[pymethods]
impl Reader {
    /// Opens `camera` (None: the only one) of the deployment in `config` (None: found as `ctl`
    /// finds it) as `role`.
    #[new]
    #[allow(clippy::too_many_arguments, reason = "the keyword arguments of `framebus.open_camera`")]
    #[pyo3(signature = (config, camera, role, policy=None, queue_depth=None, stats_interval=1.0, kept_images_raise=false))]
    fn new(
        py: Python<'_>,
        config: Option<std::path::PathBuf>,
        camera: Option<&str>,
        role: &str,
        policy: Option<Policy>,
        queue_depth: Option<u32>,
        stats_interval: f64,
        kept_images_raise: bool,
    ) -> PyResult<Reader> {
        if !(stats_interval > 0.0 && stats_interval.is_finite()) {
            return Err(PyValueError::new_err(format!(
                "stats_interval={stats_interval}: use a number of seconds above 0"
            )));
        }
        // No file named: the search every framebus program follows (FRAMEBUS_CONFIG,
        // ./framebus.toml, configs/default.toml).
        let located = framebus_common::config::locate_config(config.as_deref())
            .map_err(|e| raise(py, "FramebusError", e.to_string()))?;
        let deployment = framebus::Deployment::load(&located.path).map_err(|e| crate::errors::config_error(py, &e))?;
        let wanted = builder(&deployment, camera, role, policy, queue_depth)
            .map(|b| b.stats_interval(Duration::from_secs_f64(stats_interval)))
            .map_err(|e| to_py(py, e))?;
        let settings = wanted.settings().map_err(|e| to_py(py, e))?;
        let opened = wanted.open().map_err(|e| to_py(py, e))?;
        let tick = opened.add_timer(TICK);
        let config = CameraConfig(opened.config().clone());
        let (role, policy, service) =
            (opened.role().as_str().to_string(), Policy(opened.policy()), opened.service_name().to_string());
        let queue_depth = settings.queue_depth;
        Ok(Reader {
            current: None,
            camera: Some(Box::new(opened)),
            segments: Arc::new(Mutex::new(Segments::default())),
            tick: Some(tick),
            recent: VecDeque::with_capacity(RECENT),
            kept_raise: kept_images_raise,
            copies: 0,
            config,
            deployment: Deployment(deployment),
            role,
            policy,
            queue_depth,
            service,
        })
    }

    /// The next frame the policy gives, or None once the reader should stop (or after
    /// `timeout` seconds without one). With `gaps`, a `Gap` (frames of the source missing
    /// before the next frame) is returned too. Releases the previous frame first.
    #[pyo3(signature = (timeout=None, gaps=false))]
    fn next_frame(&mut self, py: Python<'_>, timeout: Option<f64>, gaps: bool) -> PyResult<Option<Py<PyAny>>> {
        let previous = self.current.as_ref().map(|c| c.frame.get().frame_id());
        if self.release_current(py)? && self.kept_raise {
            return Err(raise(
                py,
                "FrameStillReferencedError",
                format!(
                    "frame {}'s image is still referenced after its iteration; use frame.image.copy() to keep it \
                     (it was moved to a private copy, so it stays valid)",
                    previous.unwrap_or(0)
                ),
            ));
        }
        let deadline = timeout.map(|t| Instant::now() + Duration::from_secs_f64(t.max(0.0)));
        let camera: *const framebus::Camera = self.camera(py)?;
        loop {
            // SAFETY: the camera is boxed in `self.camera` and stays there, unmoved, while the
            // frame it hands out is kept in `self.current`, which is always emptied before the
            // camera is dropped (close, and field order on drop).
            let camera: &'static framebus::Camera = unsafe { &*camera };
            let waiting = OnThisThread(camera);
            let event = py.detach(move || OnThisThread(waiting.into_inner().next_event())).into_inner();
            match event.map_err(|e| to_py(py, e))? {
                Event::Frame(sample) => {
                    let header = *sample.header();
                    let frame = Frame::new(&header, sample.latency_ns(), sample.bytes(), Arc::clone(&self.segments));
                    let frame = Py::new(py, frame)?;
                    if self.recent.len() == RECENT {
                        self.recent.pop_front();
                    }
                    self.recent.push_back((header.frame_id, header.run_id, header.capture_mono_ns));
                    self.current = Some(Current { frame: frame.clone_ref(py), sample });
                    return Ok(Some(frame.into_any()));
                }
                Event::Stop(_) => return Ok(None),
                Event::Gap(gap) if gaps => return Ok(Some(Py::new(py, crate::frame::Gap::from(gap))?.into_any())),
                Event::Timer(_) | Event::Command(_) | Event::Gap(_) => {
                    py.check_signals()?;
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Releases the frame in progress now (as taking the next one would; arrays still alive
    /// are moved to a private copy first, without raising). Returns whether one was.
    fn release_frame(&mut self, py: Python<'_>) -> PyResult<bool> {
        self.release_current(py)
    }

    /// Ends the loop: the next `next_frame()` returns None.
    fn request_stop(&self, py: Python<'_>) -> PyResult<()> {
        self.camera(py)?.request_stop();
        Ok(())
    }

    /// Why the loop ends, once it should: `signal`, `command` (`ctl stop`) or `program`.
    #[getter]
    fn stop_reason(&self, py: Python<'_>) -> PyResult<Option<&'static str>> {
        Ok(self.camera(py)?.stop_reason().map(|r| match r {
            framebus::StopReason::Signal => "signal",
            framebus::StopReason::Command => "command",
            framebus::StopReason::Program => "program",
        }))
    }

    /// Sets what `ctl status` says beyond the reader figures: `message` (None: unchanged) and
    /// `state` (`degraded`, ..., or None for running/waiting).
    #[pyo3(signature = (message=None, state=None))]
    fn report(&self, py: Python<'_>, message: Option<String>, state: Option<&str>) -> PyResult<()> {
        let state = match state {
            None => None,
            Some("running") => Some(ProcessState::Running),
            Some("waiting") => Some(ProcessState::Waiting),
            Some("degraded") => Some(ProcessState::Degraded),
            Some("stopping") => Some(ProcessState::Stopping),
            Some(other) => {
                return Err(PyValueError::new_err(format!(
                    "state '{other}': allowed running, waiting, degraded, stopping or None"
                )))
            }
        };
        self.camera(py)?.report(|r| {
            if let Some(message) = message {
                r.message = message;
            }
            r.state = state;
        });
        Ok(())
    }

    /// The reader's figures now (see `framebus.Camera.stats`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.camera(py)?.stats();
        let d = PyDict::new(py);
        d.set_item("processed", s.processed)?;
        d.set_item("skipped", s.skipped)?;
        d.set_item("overwritten", s.overwritten)?;
        d.set_item("driver_drops", s.driver_drops)?;
        d.set_item("capture_restarts", s.capture_restarts)?;
        d.set_item("out_of_order", s.out_of_order)?;
        d.set_item("first_frame_id", s.first_frame_id)?;
        d.set_item("last_frame_id", s.last_frame_id)?;
        d.set_item("published", s.processed + s.skipped + s.overwritten)?;
        d.set_item("fps", s.fps)?;
        d.set_item("latency_p50_us", s.latency_p50_us)?;
        d.set_item("latency_p99_us", s.latency_p99_us)?;
        d.set_item("kept_image_copies", self.copies)?;
        Ok(d)
    }

    /// Publishes a result about frame `frame_id` (a frame handed out recently): `json` (text,
    /// up to 1 KiB), `score`, `boxes` as (x, y, w, h, label, score) tuples (up to 16).
    #[allow(clippy::too_many_arguments, reason = "the arguments of `Camera.publish_result`, converted")]
    #[pyo3(signature = (frame_id, json, score, boxes, run_id=None, capture_ns=None))]
    fn publish_result(
        &self,
        py: Python<'_>,
        frame_id: u64,
        json: Option<&str>,
        score: Option<f64>,
        boxes: Vec<(f32, f32, f32, f32, String, f32)>,
        run_id: Option<u64>,
        capture_ns: Option<u64>,
    ) -> PyResult<()> {
        let camera = self.camera(py)?;
        let (run, capture) = match (run_id, capture_ns) {
            (Some(run), Some(capture)) => (run, capture),
            _ => self
                .recent
                .iter()
                .rev()
                .find(|(id, _, _)| *id == frame_id)
                .map(|&(_, run, capture)| (run, capture))
                .unwrap_or_else(|| (self.recent.back().map_or(0, |r| r.1), 0)),
        };
        let header = RustHeader { frame_id, run_id: run, capture_mono_ns: capture, ..RustHeader::default() };
        let data = match json {
            Some(text) if !text.is_empty() => Some(
                serde_json::from_str::<serde_json::Value>(text)
                    .map_err(|e| PyValueError::new_err(format!("the JSON part is not JSON: {e}")))?,
            ),
            _ => None,
        };
        let boxes: Vec<Detection> =
            boxes.into_iter().map(|(x, y, w, h, label, score)| Detection { x, y, w, h, label, score }).collect();
        camera.publish_result(&header, score, &boxes, data.as_ref()).map_err(|e| to_py(py, e))
    }

    /// Results published on the camera since the last call, oldest first, as tuples
    /// (producer, frame_id, run_id, capture_mono_ns, publish_mono_ns, score, boxes, json text).
    fn results<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let found = self.camera(py)?.results().map_err(|e| to_py(py, e))?;
        let list = PyList::empty(py);
        for o in found {
            let boxes: Vec<(f32, f32, f32, f32, String, f32)> =
                o.boxes.into_iter().map(|b| (b.x, b.y, b.w, b.h, b.label, b.score)).collect();
            let data = if o.data.is_null() { None } else { Some(o.data.to_string()) };
            let item = PyTuple::new(
                py,
                [
                    o.producer.into_pyobject(py)?.into_any(),
                    o.frame_id.into_pyobject(py)?.into_any(),
                    o.run_id.into_pyobject(py)?.into_any(),
                    o.capture_mono_ns.into_pyobject(py)?.into_any(),
                    o.publish_mono_ns.into_pyobject(py)?.into_any(),
                    o.score.into_pyobject(py)?.into_any(),
                    boxes.into_pyobject(py)?.into_any(),
                    data.into_pyobject(py)?.into_any(),
                ],
            )?;
            list.append(item)?;
        }
        Ok(list)
    }

    /// Releases the frame in progress (arrays still alive keep a private copy), stops serving
    /// control, unsubscribes and removes the deployment's leftovers if this was its last
    /// process. Idempotent.
    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        let released = self.release_current(py);
        self.tick = None;
        if let Some(camera) = self.camera.take() {
            // Joins the control thread (up to one control tick): without the GIL.
            let camera = OnThisThread(camera);
            py.detach(move || drop(camera.into_inner()));
        }
        *lock(&self.segments) = Segments::default();
        released.map(|_| ())
    }

    /// Whether the reader was closed.
    #[getter]
    fn closed(&self) -> bool {
        self.camera.is_none()
    }

    /// The camera's config.
    #[getter]
    fn config(&self) -> CameraConfig {
        self.config.clone()
    }

    /// The deployment's config.
    #[getter]
    fn deployment(&self) -> Deployment {
        self.deployment.clone()
    }

    /// This reader's role.
    #[getter]
    fn role(&self) -> &str {
        &self.role
    }

    /// This reader's policy.
    #[getter]
    fn policy(&self) -> Policy {
        self.policy
    }

    /// Frames queued for this reader.
    #[getter]
    fn queue_depth(&self) -> u32 {
        self.queue_depth
    }

    /// Name of the frames service.
    #[getter]
    fn service(&self) -> &str {
        &self.service
    }

    /// The settings the reader was opened with (as `Deployment.reader_settings`).
    fn settings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let settings = framebus::ReaderSettings {
            camera: self.config.0.clone(),
            role: framebus::Role::new(&self.role).map_err(|e| to_py(py, e.into()))?,
            policy: self.policy.0,
            queue_depth: self.queue_depth,
        };
        settings_dict(py, &self.deployment.0, &settings)
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // A reader dropped without close(): release the frame (and copy kept arrays) first.
        Python::attach(|py| {
            let _ = self.release_current(py);
        });
    }
}
