//! `framebus.Frame`: one frame for Python, its header, and its pixels as read-only numpy
//! arrays over shared memory (through [`FrameBuffer`], a buffer-protocol object).

use std::ffi::{c_int, c_void};
use std::sync::{Arc, Mutex, MutexGuard};

use framebus_common::{FrameHeader as RustHeader, PixelFormat};
use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;

use crate::errors::raise;
use crate::memory::{Mapping, Segments};

/// `numpy.asarray`, looked up once.
static AS_ARRAY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The metadata of one frame (`framebus::FrameHeader`, layout v1): a copy, readable after the
/// frame was released.
#[pyclass(frozen, get_all, module = "framebus", name = "FrameHeader")]
#[derive(Debug, Clone, Copy)]
pub struct FrameHeader {
    /// Header layout version.
    pub layout_version: u32,
    /// Header size in bytes.
    pub header_size: u32,
    /// Frame id: 1, 2, 3, ... per capture run.
    pub frame_id: u64,
    /// The source's own sequence number.
    pub sequence: u64,
    /// Capture time, CLOCK_MONOTONIC ns.
    pub capture_mono_ns: u64,
    /// Capture time, CLOCK_REALTIME ns since the epoch.
    pub capture_realtime_ns: u64,
    /// CLOCK_MONOTONIC ns just before capture sent the frame.
    pub publish_mono_ns: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row of the first plane (0 for MJPG).
    pub stride: u32,
    /// Pixel format fourcc, little-endian.
    pub pixel_format: u32,
    /// Valid payload bytes.
    pub payload_len: u32,
    /// Flags; bit 0: the synthetic integrity stamp is present; bit 1: a scene between the stamps.
    pub flags: u32,
    /// Frames the driver dropped so far in this run.
    pub source_drops: u64,
    /// Capture run id.
    pub run_id: u64,
}

impl From<&RustHeader> for FrameHeader {
    fn from(h: &RustHeader) -> FrameHeader {
        FrameHeader {
            layout_version: h.layout_version,
            header_size: h.header_size,
            frame_id: h.frame_id,
            sequence: h.sequence,
            capture_mono_ns: h.capture_mono_ns,
            capture_realtime_ns: h.capture_realtime_ns,
            publish_mono_ns: h.publish_mono_ns,
            width: h.width,
            height: h.height,
            stride: h.stride,
            pixel_format: h.pixel_format,
            payload_len: h.payload_len,
            flags: h.flags,
            source_drops: h.source_drops,
            run_id: h.run_id,
        }
    }
}

#[pymethods]
impl FrameHeader {
    fn __repr__(&self) -> String {
        format!("<framebus.FrameHeader frame_id={} run_id={}>", self.frame_id, self.run_id)
    }
}

/// The name of a fourcc (`BGR3`), or its hexadecimal code when unknown.
pub fn fourcc_name(code: u32) -> String {
    match PixelFormat::from_fourcc(code) {
        Some(format) => format.name().to_string(),
        None => format!("{code:#010x}"),
    }
}

/// What changes when the frame is released.
#[derive(Debug, Default)]
struct FrameState {
    released: bool,
    /// Our alias of the sample's pages and the payload's offset in it, once an array asked.
    alias: Option<(Arc<Mapping>, usize)>,
    image: Option<Py<PyAny>>,
    data: Option<Py<PyAny>>,
    planes: Option<Py<PyAny>>,
}

/// What the reader gets back when it releases a frame.
pub struct Released {
    /// The alias, to be privatized (arrays alive) or put back (none).
    pub alias: Option<Arc<Mapping>>,
    /// The arrays the frame kept, dropped by the caller with the GIL held.
    pub arrays: Vec<Py<PyAny>>,
}

/// One frame, read in place in shared memory (zero copies). Valid only inside its loop
/// iteration: taking the next frame releases it (its header fields stay readable; its pixels
/// do not). Copy what you keep: `frame.image.copy()`.
#[pyclass(frozen, module = "framebus", name = "Frame")]
pub struct Frame {
    header: FrameHeader,
    latency_ns: u64,
    address: usize,
    length: usize,
    segments: Arc<Mutex<Segments>>,
    state: Mutex<FrameState>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Frame {
    /// A frame over `payload` (the sample's valid bytes) of a sample the reader holds.
    pub fn new(header: &RustHeader, latency_ns: u64, payload: &[u8], segments: Arc<Mutex<Segments>>) -> Frame {
        Frame {
            header: FrameHeader::from(header),
            latency_ns,
            address: payload.as_ptr() as usize,
            length: payload.len(),
            segments,
            state: Mutex::new(FrameState::default()),
        }
    }

    /// Marks the frame released; returns its alias and arrays (see [`Released`]).
    pub fn release(&self) -> Released {
        let mut state = lock(&self.state);
        state.released = true;
        let arrays = [state.image.take(), state.data.take(), state.planes.take()].into_iter().flatten().collect();
        Released { alias: state.alias.take().map(|(mapping, _)| mapping), arrays }
    }

    /// The frame's id (for messages).
    pub fn frame_id(&self) -> u64 {
        self.header.frame_id
    }

    fn check(&self, py: Python<'_>) -> PyResult<()> {
        if lock(&self.state).released {
            return Err(raise(
                py,
                "FrameReleasedError",
                format!(
                    "frame {} was released when the next frame was taken (a frame is valid only inside its loop \
                     iteration): copy what you keep, e.g. frame.image.copy()",
                    self.header.frame_id
                ),
            ));
        }
        Ok(())
    }

    fn need(&self, py: Python<'_>, needed: usize) -> PyResult<()> {
        if self.length < needed {
            return Err(raise(
                py,
                "FramebusError",
                format!(
                    "frame {}: payload has {} bytes, a {}x{} {} frame needs {needed}",
                    self.header.frame_id,
                    self.length,
                    self.header.width,
                    self.header.height,
                    fourcc_name(self.header.pixel_format)
                ),
            ));
        }
        Ok(())
    }

    /// A read-only uint8 array over `shape`/`strides` at `offset` into the payload.
    fn array(&self, py: Python<'_>, offset: usize, shape: &[usize], strides: &[usize]) -> PyResult<Py<PyAny>> {
        let existing = lock(&self.state).alias.clone();
        let (mapping, delta) = match existing {
            Some(alias) => alias,
            None => {
                let made = lock(&self.segments)
                    .alias(self.address, self.length, self.header.run_id)
                    .map_err(|e| raise(py, "IpcError", format!("mapping frame {}: {e}", self.header.frame_id)))?;
                let mut state = lock(&self.state);
                if state.released {
                    drop(state);
                    // Not ours to keep: the reader has moved on.
                    lock(&self.segments).put_back(made.0);
                    return Err(self.check(py).err().unwrap_or_else(|| PyBufferError::new_err("frame released")));
                }
                state.alias.get_or_insert(made).clone()
            }
        };
        let buffer = FrameBuffer::new(mapping, delta + offset, shape, strides);
        let as_array = AS_ARRAY
            .get_or_try_init(py, || -> PyResult<Py<PyAny>> { Ok(py.import("numpy")?.getattr("asarray")?.unbind()) })?;
        as_array.call1(py, (buffer,))
    }

    fn cached(&self, pick: fn(&mut FrameState) -> &mut Option<Py<PyAny>>, py: Python<'_>) -> Option<Py<PyAny>> {
        let mut state = lock(&self.state);
        pick(&mut state).as_ref().map(|a| a.clone_ref(py))
    }

    fn keep(&self, pick: fn(&mut FrameState) -> &mut Option<Py<PyAny>>, py: Python<'_>, made: Py<PyAny>) -> Py<PyAny> {
        let mut state = lock(&self.state);
        pick(&mut state).get_or_insert(made).clone_ref(py)
    }

    fn format(&self) -> Option<PixelFormat> {
        PixelFormat::from_fourcc(self.header.pixel_format)
    }
}

#[pymethods]
impl Frame {
    fn __repr__(&self) -> String {
        let released = if lock(&self.state).released { " released" } else { "" };
        format!(
            "<framebus.Frame {} {}x{} {}{released}>",
            self.header.frame_id,
            self.header.width,
            self.header.height,
            fourcc_name(self.header.pixel_format)
        )
    }

    /// A copy of the frame header.
    #[getter]
    fn header(&self) -> FrameHeader {
        self.header
    }

    /// Frame id: 1, 2, 3, ... per capture run (a gap = frames this reader did not get).
    #[getter]
    fn id(&self) -> u64 {
        self.header.frame_id
    }

    /// Width in pixels.
    #[getter]
    fn width(&self) -> u32 {
        self.header.width
    }

    /// Height in pixels.
    #[getter]
    fn height(&self) -> u32 {
        self.header.height
    }

    /// Bytes per row of the first plane (0 for MJPG).
    #[getter]
    fn stride(&self) -> u32 {
        self.header.stride
    }

    /// The pixel format as its little-endian fourcc code.
    #[getter]
    fn fourcc(&self) -> u32 {
        self.header.pixel_format
    }

    /// `BGR3`, `RGB3`, `GREY`, `YUYV`, `NV12`, `NV21`, `NV16` or `MJPG`.
    #[getter]
    fn pixel_format(&self) -> String {
        fourcc_name(self.header.pixel_format)
    }

    /// Capture time, CLOCK_MONOTONIC ns (`time.monotonic_ns()` in this process).
    #[getter]
    fn capture_ns(&self) -> u64 {
        self.header.capture_mono_ns
    }

    /// Capture time, CLOCK_REALTIME ns since the epoch (`time.time_ns()`).
    #[getter]
    fn capture_realtime_ns(&self) -> u64 {
        self.header.capture_realtime_ns
    }

    /// CLOCK_MONOTONIC ns just before capture sent the frame.
    #[getter]
    fn publish_ns(&self) -> u64 {
        self.header.publish_mono_ns
    }

    /// The source's own sequence number (driver sequence, file frame index).
    #[getter]
    fn sequence(&self) -> u64 {
        self.header.sequence
    }

    /// The capture run; changes when capture restarts (and ids start again at 1).
    #[getter]
    fn run_id(&self) -> u64 {
        self.header.run_id
    }

    /// Frames the camera's driver dropped so far in this run.
    #[getter]
    fn source_drops(&self) -> u64 {
        self.header.source_drops
    }

    /// Header flags; bit 0: the synthetic integrity stamp is present; bit 1: a scene between
    /// the stamps (`pattern.FLAG_SCENE`).
    #[getter]
    fn flags(&self) -> u32 {
        self.header.flags
    }

    /// Capture → handed to this reader, in nanoseconds.
    #[getter]
    fn latency_ns(&self) -> u64 {
        self.latency_ns
    }

    /// Whether the next frame was taken (pixels no longer readable through this object).
    #[getter]
    fn released(&self) -> bool {
        lock(&self.state).released
    }

    /// The frame's bytes (`payload_len` of them) as a read-only 1-D uint8 numpy array, in
    /// shared memory (MJPG: the JPEG, for `cv2.imdecode`).
    #[getter]
    fn data(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.check(py)?;
        if let Some(found) = self.cached(|s| &mut s.data, py) {
            return Ok(found);
        }
        let made = self.array(py, 0, &[self.length], &[1])?;
        Ok(self.keep(|s| &mut s.data, py, made))
    }

    /// The frame as a read-only numpy array in shared memory (no copy), shaped for OpenCV:
    /// BGR3/RGB3 (h, w, 3); GREY (h, w); YUYV (h, w, 2); NV12/NV21 (h * 3/2, w); NV16
    /// (h * 2, w); MJPG the JPEG bytes. `frame.planes` has the planes separately.
    #[getter]
    fn image(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.check(py)?;
        if let Some(found) = self.cached(|s| &mut s.image, py) {
            return Ok(found);
        }
        let (w, h, s) = (self.header.width as usize, self.header.height as usize, self.header.stride as usize);
        let Some(format) = self.format().filter(|f| f.is_raw()) else { return self.data(py) };
        let bpp = format.info().bytes_per_pixel as usize;
        let made = if format.info().chroma.is_some() {
            // Semi-planar: the luma rows then the chroma rows, tightly packed.
            let rows = format.image_rows(self.header.height) as usize;
            self.need(py, format.frame_bytes(self.header.width, self.header.height))?;
            self.array(py, 0, &[rows, w], &[w, 1])?
        } else {
            // Packed: rows `stride` apart; a last axis for multi-byte pixels.
            self.need(py, s * h.saturating_sub(1) + w * bpp)?;
            if bpp == 1 {
                self.array(py, 0, &[h, w], &[s, 1])?
            } else {
                self.array(py, 0, &[h, w, bpp], &[s, bpp, 1])?
            }
        };
        Ok(self.keep(|s| &mut s.image, py, made))
    }

    /// The planes as read-only arrays: NV12/NV21 (Y (h, w), UV or VU (h/2, w/2, 2)), NV16
    /// (Y (h, w), UV (h, w/2, 2)); every other format one plane, as `image`.
    #[getter]
    fn planes(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.check(py)?;
        if let Some(found) = self.cached(|s| &mut s.planes, py) {
            return Ok(found);
        }
        let (w, h) = (self.header.width as usize, self.header.height as usize);
        let made: Py<PyAny> = match self.format() {
            Some(format) if format.info().chroma.is_some() => {
                // Y (h, w), then U and V interleaved at half width: (chroma rows, w/2, 2).
                let chroma_rows = format.image_rows(self.header.height) as usize - h;
                self.need(py, format.frame_bytes(self.header.width, self.header.height))?;
                let y = self.array(py, 0, &[h, w], &[w, 1])?;
                let uv = self.array(py, w * h, &[chroma_rows, w / 2, 2], &[w, 2, 1])?;
                PyTuple::new(py, [y, uv])?.into_any().unbind()
            }
            _ => PyTuple::new(py, [self.image(py)?])?.into_any().unbind(),
        };
        Ok(self.keep(|s| &mut s.planes, py, made))
    }
}

/// A read-only buffer (PEP 3118) over part of a frame's alias: what numpy arrays of a frame
/// are made from. Counts its exports, so the reader knows whether an array is still alive
/// when the frame is released.
#[pyclass(frozen, module = "framebus._framebus")]
pub struct FrameBuffer {
    mapping: Arc<Mapping>,
    generation: u64,
    offset: usize,
    ndim: usize,
    shape: [isize; 3],
    strides: [isize; 3],
    /// Bytes from the first to one past the last byte the view reaches.
    span: usize,
    contiguous: bool,
}

impl FrameBuffer {
    fn new(mapping: Arc<Mapping>, offset: usize, shape: &[usize], strides: &[usize]) -> FrameBuffer {
        let mut s = [0isize; 3];
        let mut t = [0isize; 3];
        for (i, (&n, &step)) in shape.iter().zip(strides).enumerate().take(3) {
            s[i] = n as isize;
            t[i] = step as isize;
        }
        let ndim = shape.len().min(3);
        let span = if shape.contains(&0) {
            0
        } else {
            shape.iter().zip(strides).map(|(&n, &step)| (n - 1) * step).sum::<usize>() + 1
        };
        let mut expected = 1usize;
        let mut contiguous = true;
        for i in (0..ndim).rev() {
            if shape[i] > 1 && strides[i] != expected {
                contiguous = false;
            }
            expected *= shape[i];
        }
        let generation = mapping.generation();
        FrameBuffer { mapping, generation, offset, ndim, shape: s, strides: t, span, contiguous }
    }
}

#[pymethods]
impl FrameBuffer {
    /// Exports the view read-only; refuses writable requests and views of a released frame.
    ///
    /// # Safety
    /// Called by Python's buffer protocol with a valid `view`.
    unsafe fn __getbuffer__(slf: Bound<'_, Self>, view: *mut ffi::Py_buffer, flags: c_int) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("no view to fill"));
        }
        if (flags & ffi::PyBUF_WRITABLE) == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err("frames are read-only: copy what you change (frame.image.copy())"));
        }
        let this = slf.get();
        if this.mapping.generation() != this.generation {
            return Err(PyBufferError::new_err("the frame was released: copy what you keep"));
        }
        let strided = (flags & ffi::PyBUF_STRIDES) == ffi::PyBUF_STRIDES;
        if !strided && !this.contiguous {
            return Err(PyBufferError::new_err("the view is not contiguous: ask for strides"));
        }
        let with_shape = (flags & ffi::PyBUF_ND) == ffi::PyBUF_ND;
        let items: isize = this.shape[..this.ndim].iter().product();
        this.mapping.exported();
        // SAFETY: `view` is valid (checked above, given by Python). The shape and strides
        // point into this object, which the view keeps alive through `obj`; the memory stays
        // mapped as long as the object holds its `Mapping`.
        unsafe {
            (*view).buf = (this.mapping.address() + this.offset) as *mut c_void;
            (*view).len = if this.contiguous { items } else { this.span as isize };
            (*view).readonly = 1;
            (*view).itemsize = 1;
            (*view).format = if (flags & ffi::PyBUF_FORMAT) == ffi::PyBUF_FORMAT {
                c"B".as_ptr() as *mut _
            } else {
                std::ptr::null_mut()
            };
            if with_shape {
                (*view).ndim = this.ndim as c_int;
                (*view).shape = this.shape.as_ptr() as *mut isize;
            } else {
                (*view).ndim = 1;
                (*view).shape = std::ptr::null_mut();
            }
            (*view).strides =
                if strided && with_shape { this.strides.as_ptr() as *mut isize } else { std::ptr::null_mut() };
            (*view).suboffsets = std::ptr::null_mut();
            (*view).internal = std::ptr::null_mut();
            (*view).obj = slf.into_any().into_ptr();
        }
        Ok(())
    }

    /// Counts the release of an exported view.
    ///
    /// # Safety
    /// Called by Python's buffer protocol for a view this object exported.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.mapping.released();
    }
}

/// Frames of the source are missing before the next frame (`Camera.events()`): an imported
/// camera's link was cut or lost messages, the source dropped frames, or capture restarted.
#[pyclass(frozen, get_all, module = "framebus", name = "Gap")]
#[derive(Debug, Clone, Copy)]
pub struct Gap {
    /// Frames the source counted as lost in it (0 when it could not count them).
    pub source_lost: u64,
    /// Capture started a new run (frame ids start again at 1).
    pub restarted: bool,
    /// Capture time from the last frame received before the gap to the first after it, ns
    /// (0 after a restart).
    pub duration_ns: u64,
}

impl From<framebus::Gap> for Gap {
    fn from(gap: framebus::Gap) -> Gap {
        Gap { source_lost: gap.source_lost, restarted: gap.restarted, duration_ns: gap.duration_ns }
    }
}

#[pymethods]
impl Gap {
    /// `duration_ns` in seconds.
    #[getter]
    fn duration(&self) -> f64 {
        self.duration_ns as f64 / 1e9
    }

    fn __repr__(&self) -> String {
        format!(
            "Gap(source_lost={}, restarted={}, duration={:.3}s)",
            self.source_lost,
            if self.restarted { "True" } else { "False" },
            self.duration()
        )
    }
}
