//! V4L2 camera source: single- and multi-planar capture nodes, with the driver's buffers either
//! mmap'ed (each frame copied or converted once into a loaned sample) or USERPTR (the buffers
//! are loaned shared-memory samples: the driver writes each frame straight into one and capture
//! publishes it untouched).
//!
//! - [`device`]: the device file and our own ioctls over the kernel ABI structs.
//! - [`negotiate`]: format and frame-rate negotiation, plane layouts.
//! - [`stream`]: driver buffers (mmap / USERPTR), queue, dequeue, release order.
//! - [`controls`]: listing, checking, setting and reading back camera controls.
//! - [`convert`]: one pass from a driver buffer into a sample (copy, `cvtColor`, `imdecode`).
//!
//! This file holds the source itself: opening (and reopening after an unplug), choosing the
//! buffer memory, and the per-frame grab / write.

mod controls;
mod convert;
mod device;
mod negotiate;
mod stream;

use core::mem::MaybeUninit;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use framebus_common::config::{
    normalize_control_name, v4l2_conversion, ControlValue, Conversion, V4l2Memory, V4l2SourceConfig as V4l2Config,
};
use framebus_common::{clock, CameraConfig, PixelFormat};

use self::convert::FrameView;
use self::device::{Device, BUF_FLAG_ERROR, BUF_FLAG_TIMESTAMP_MASK, BUF_FLAG_TIMESTAMP_MONOTONIC};
use self::negotiate::{Granted, Request};
use self::stream::{Dequeued, LoanSplit, Memory, Session, Stream};
use super::{
    ControlApplied, ControlError, ControlInfo, Effective, FrameSource, Grab, Lending, Loan, Pacing, SourceError,
    SourceFormat,
};

/// Longest single wait on the device: capture checks for SIGINT/SIGTERM at least this often.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// A streaming device that delivers nothing for this long (or 5 frame periods if longer) is
/// treated as gone and reopened.
const STALL_AFTER: Duration = Duration::from_secs(2);

/// Why opening failed: the device is absent or broke (retry later), or it cannot give what
/// the config demands (retrying will not help).
pub(super) enum OpenError {
    Gone(anyhow::Error),
    Refused(anyhow::Error),
}

fn gone(e: io::Error, what: String) -> OpenError {
    OpenError::Gone(anyhow::Error::new(e).context(what))
}

/// A V4L2 capture device.
pub struct V4l2Source {
    request: Request,
    granted: Granted,
    conversion: Conversion,
    adjustments: Vec<String>,
    session: Option<Session>,
    /// mmap: the buffer the last grab handed out; queued again at the next grab.
    held: Option<Dequeued>,
    /// USERPTR: the sample the driver filled with the last grabbed frame, until capture takes it.
    filled: Option<Loan>,
    /// Controls set while capturing, set again (after the config's) at every reopen.
    runtime_controls: Vec<(String, ControlValue)>,
    /// USERPTR buffers capture's publisher can lend at once (fixed by the first open).
    loan_capacity: Option<usize>,
    /// Why the driver would not take shared-memory samples (it refused one at QBUF, e.g. for
    /// its alignment): reopened with mmap from then on.
    userptr_refused: Option<String>,
    last_sequence: Option<u32>,
    drops: u64,
    reconnects: u64,
    last_frame: Instant,
}

/// An opened device: the session, what was granted, and the settings that differ.
struct Opened {
    session: Session,
    granted: Granted,
    adjustments: Vec<String>,
}

impl V4l2Source {
    /// Opens the camera's device, negotiates format and frame rate, applies the controls, sets
    /// up the driver's buffers (USERPTR when possible and allowed, else mmap) and, for mmap,
    /// starts streaming. `recorded` controls (set at runtime earlier, e.g. from the camera's
    /// state) are set after the config's. Any failure here is an error (capture does not start).
    pub fn open(
        camera: &CameraConfig,
        config: &V4l2Config,
        recorded: &[(String, ControlValue)],
    ) -> anyhow::Result<V4l2Source> {
        let published = camera.format();
        let request = Request {
            camera: camera.name.clone(),
            device: config.device.clone(),
            width: camera.width,
            height: camera.height,
            device_format: config.device_format(published),
            published,
            fps: camera.fps,
            buffers: config.buffers,
            strict: config.strict,
            memory: config.memory,
            controls: config.controls.0.clone(),
            slot_bytes: camera.frame_bytes(),
        };
        // The shared memory counts `buffers` samples for the driver (CameraConfig::
        // userptr_buffers): a driver wanting more gets mmap.
        let opened = match open_session(&request, recorded, Some(config.buffers as usize), None) {
            Ok(opened) => opened,
            Err(OpenError::Gone(e) | OpenError::Refused(e)) => {
                return Err(e.context(format!(
                    "camera `{}`: opening V4L2 device {}",
                    request.camera,
                    request.device.display()
                )))
            }
        };
        let conversion = v4l2_conversion(opened.granted.format(), published).unwrap_or(Conversion::Passthrough);
        let loan_capacity = (opened.session.stream.memory() == Memory::Userptr).then(|| opened.session.stream.count());
        let mut runtime_controls = Vec::new();
        for (name, value) in recorded {
            remember(&mut runtime_controls, name, value);
        }
        Ok(V4l2Source {
            request,
            granted: opened.granted,
            conversion,
            adjustments: opened.adjustments,
            session: Some(opened.session),
            held: None,
            filled: None,
            runtime_controls,
            loan_capacity,
            userptr_refused: None,
            last_sequence: None,
            drops: 0,
            reconnects: 0,
            last_frame: Instant::now(),
        })
    }

    fn path(&self) -> String {
        self.request.path()
    }

    /// The memory of the driver's buffers now (mmap when the device is not open).
    fn memory(&self) -> Memory {
        self.session.as_ref().map_or(Memory::Mmap, |s| s.stream.memory())
    }

    /// A frame is not expected for this long at the granted rate before the device counts as
    /// stalled.
    fn stall_after(&self) -> Duration {
        if self.granted.fps > 0.0 {
            STALL_AFTER.max(Duration::from_secs_f64(5.0 / self.granted.fps))
        } else {
            STALL_AFTER
        }
    }

    /// Stops streaming and closes the device; tolerates a device that is already gone. The
    /// samples the driver held are returned to the publisher only after the device is closed.
    fn shut(&mut self) {
        self.held = None;
        self.filled = None; // never queued at the driver: safe to return at once
        self.session = None;
    }

    /// Closes the device after an error and reports the source unavailable.
    fn lost(&mut self, why: String) -> SourceError {
        self.shut();
        SourceError::Unavailable(format!("V4L2 device {}: {why}", self.path()))
    }

    /// Gives the driver back what the last grab handed out and capture did not publish: the
    /// mmap buffer, or a filled sample capture did not take.
    fn requeue(&mut self) -> Result<(), SourceError> {
        let Some(session) = self.session.as_mut() else {
            self.held = None;
            self.filled = None;
            return Ok(());
        };
        if let Some(held) = self.held.take() {
            if let Err(e) = session.stream.queue(&session.device, held.index) {
                return Err(self.lost(format!("queuing buffer {} failed: {e}", held.index)));
            }
        }
        if let Some(loan) = self.filled.take() {
            if let Err(e) = session.stream.queue_loan(&session.device, loan) {
                return Err(self.lost(format!("queuing a sample again failed: {e}")));
            }
        }
        Ok(())
    }

    /// Gives a buffer whose frame is unusable straight back to the driver.
    fn discard(&mut self, d: &Dequeued) -> Result<(), SourceError> {
        let Some(session) = self.session.as_mut() else { return Ok(()) };
        let requeued = match session.stream.memory() {
            Memory::Mmap => session.stream.queue(&session.device, d.index),
            Memory::Userptr => match session.stream.take_loan(d.index) {
                Some(loan) => session.stream.queue_loan(&session.device, loan),
                None => Ok(()),
            },
        };
        requeued.map_err(|e| self.lost(format!("queuing buffer {} again failed: {e}", d.index)))
    }

    /// Bytes available in memory plane `plane` of buffer `d` (what the driver says it used,
    /// bounded by the plane's size).
    fn plane_bytes(&self, d: &Dequeued, plane: usize) -> usize {
        let Some(session) = self.session.as_ref() else { return 0 };
        let size = match session.stream.memory() {
            Memory::Mmap => session.stream.mapped(d.index, plane).len(),
            Memory::Userptr => session.stream.split().planes[plane].1,
        };
        match d.bytes_used[plane] as usize {
            0 => size,
            used => used.min(size),
        }
    }

    /// Checks that buffer `d` holds a whole frame and returns the bytes the published frame
    /// will take, or why the frame is unusable.
    fn payload_len(&mut self, d: &Dequeued) -> Result<usize, String> {
        let sequence = d.sequence;
        let published = self.request.published;
        let (w, h) = (self.granted.width, self.granted.height);
        let start = d.data_offset[0] as usize;
        let used = self.plane_bytes(d, 0).saturating_sub(start);
        match self.conversion {
            Conversion::Passthrough if published == PixelFormat::Mjpg => {
                if used == 0 || used > self.request.slot_bytes {
                    return Err(format!(
                        "MJPG frame {sequence} of {used} bytes does not fit (slot {})",
                        self.request.slot_bytes
                    ));
                }
                Ok(used)
            }
            Conversion::Decode if used == 0 => Err(format!("MJPG frame {sequence} is empty")),
            Conversion::Decode => Ok(published.frame_bytes(w, h)),
            Conversion::Passthrough | Conversion::Convert => {
                let (layout, count) = self.granted.layout();
                for plane in &layout[..count] {
                    let m = plane.memory_plane;
                    let have = self.plane_bytes(d, m);
                    let needed = d.data_offset[m] as usize + plane.offset + plane.span();
                    if have < needed {
                        return Err(format!(
                            "frame {sequence} has {have} bytes in plane {m}, a {} {w}x{h} frame needs {needed}",
                            self.granted.device.name()
                        ));
                    }
                }
                Ok(published.frame_bytes(w, h))
            }
        }
    }

    /// Reopens the device (after an unplug), keeping format and memory checks.
    fn reopen(&mut self) -> Result<(), SourceError> {
        self.shut();
        let refused = self.userptr_refused.as_deref();
        let opened = match open_session(&self.request, &self.runtime_controls, self.loan_capacity, refused) {
            Ok(opened) => opened,
            Err(OpenError::Gone(e)) => return Err(SourceError::Unavailable(format!("{e:#}"))),
            Err(OpenError::Refused(e)) => {
                return Err(SourceError::Fatal(e.context(format!(
                    "camera `{}`: reopening V4L2 device {}",
                    self.request.camera,
                    self.path()
                ))))
            }
        };
        let g = opened.granted;
        if (g.format(), g.width, g.height) != (self.granted.format(), self.granted.width, self.granted.height) {
            return Err(SourceError::Fatal(anyhow!(
                "camera `{}`: V4L2 device {} came back delivering {} instead of {}; restart capture to publish the new format",
                self.request.camera,
                self.path(),
                g.describe(),
                self.granted.describe()
            )));
        }
        self.session = Some(opened.session);
        self.granted = g;
        self.adjustments = opened.adjustments;
        self.last_sequence = None;
        self.last_frame = Instant::now();
        self.reconnects += 1;
        tracing::info!(
            camera = self.request.camera,
            device = self.path(),
            reconnects = self.reconnects,
            "V4L2 device reopened: {} ({} buffers)",
            g.describe(),
            self.memory().name()
        );
        Ok(())
    }
}

/// Records `value` for control `name`, replacing (and moving to the end) an earlier value, so
/// re-applying the list sets each control once, in the order it was last set.
fn remember(list: &mut Vec<(String, ControlValue)>, name: &str, value: &ControlValue) {
    let key = normalize_control_name(name);
    list.retain(|(k, _)| *k != key);
    list.push((key, value.clone()));
}

/// Where each memory plane of a USERPTR buffer lies in a sample, or why USERPTR cannot carry
/// this stream (the frame would need a conversion, or the driver's layout differs from the
/// published one).
fn userptr_split(req: &Request, granted: &Granted) -> Result<LoanSplit, String> {
    let (from, to) = (granted.format(), req.published);
    if from != to || !to.is_raw() {
        return Err(if from != to {
            format!("capture converts {from} to {to}, which is a pass of its own")
        } else {
            format!("{to} frames vary in size")
        });
    }
    let frame = to.frame_bytes(granted.width, granted.height);
    let (layout, count) = granted.layout();
    let mut split = LoanSplit::default();
    let mut offset = 0;
    for plane in &layout[..count] {
        if plane.stride != plane.row {
            return Err(format!(
                "the driver pads rows ({} bytes per line for {} bytes of pixels)",
                plane.stride, plane.row
            ));
        }
        if granted.device.memory_planes > 1 {
            let size = granted.planes[plane.memory_plane].size as usize;
            if size > plane.tight() {
                return Err(format!(
                    "the driver needs {size} bytes for plane {}, the frame has {}",
                    plane.memory_plane,
                    plane.tight()
                ));
            }
            split.planes[plane.memory_plane] = (offset, plane.tight());
        }
        offset += plane.tight();
    }
    if granted.device.memory_planes == 1 {
        let size = granted.planes[0].size as usize;
        if size > frame {
            return Err(format!("the driver needs {size} bytes per buffer, a frame has {frame}"));
        }
        split.planes[0] = (0, frame);
    }
    if offset != frame {
        return Err(format!("the planes hold {offset} bytes, a {to} frame {frame}"));
    }
    Ok(split)
}

/// Opens the device and sets it up: format, frame rate, controls (config, then `recorded`),
/// buffers. mmap buffers are queued and streaming starts; USERPTR buffers wait for samples.
fn open_session(
    req: &Request,
    recorded: &[(String, ControlValue)],
    loan_capacity: Option<usize>,
    userptr_refused: Option<&str>,
) -> Result<Opened, OpenError> {
    let path = req.path();
    let device = Device::open(&req.device).map_err(|e| gone(e, format!("cannot open {path}")))?;
    let caps = device.query_caps().map_err(|e| gone(e, format!("querying the capabilities of {path}")))?;
    let buf_type = negotiate::buffer_type(req, &caps)?;
    let (granted, adjustments) = negotiate::negotiate(&device, req, buf_type)?;
    apply_at_open(&device, req, recorded)?;

    let stream = request_buffers(&device, req, &granted, loan_capacity, userptr_refused)?;
    let mut session = Session::new(stream, device);
    let count = session.stream.count();
    if session.stream.memory() == Memory::Mmap {
        for index in 0..count {
            session
                .stream
                .queue(&session.device, index)
                .map_err(|e| gone(e, format!("queuing buffer {index} on {path}")))?;
        }
        session.stream.start(&session.device).map_err(|e| gone(e, format!("starting the stream on {path}")))?;
    }
    let how = match session.stream.memory() {
        Memory::Mmap => "mmap buffers, one copy per frame into shared memory",
        Memory::Userptr => "USERPTR buffers in shared memory, the driver writes each frame there",
    };
    tracing::info!(
        camera = req.camera,
        device = path,
        node = resolved_device(&req.device),
        card = caps.card,
        driver = caps.driver,
        "streaming {} with {count} {how}",
        granted.describe(),
    );
    Ok(Opened { session, granted, adjustments })
}

/// REQBUFS in the memory the config allows and the stream permits: USERPTR first (unless
/// `memory = "mmap"`), falling back to mmap under `auto`.
fn request_buffers(
    device: &Device,
    req: &Request,
    granted: &Granted,
    loan_capacity: Option<usize>,
    userptr_refused: Option<&str>,
) -> Result<Stream, OpenError> {
    let path = req.path();
    let planes = granted.device.memory_planes;
    let mmap = || {
        Stream::request(device, granted.buf_type, Memory::Mmap, planes, req.buffers, LoanSplit::default())
            .map_err(|e| gone(e, format!("allocating {} mmap buffers on {path}", req.buffers)))
    };
    let fallback = |why: String| -> Result<Stream, OpenError> {
        if req.memory == V4l2Memory::Userptr {
            return Err(OpenError::Refused(anyhow!(
                "{path} cannot capture into shared memory (memory = \"userptr\"): {why}; use memory = \"auto\" or \"mmap\""
            )));
        }
        tracing::info!(camera = req.camera, device = path, "using mmap buffers and one copy per frame: {why}");
        mmap()
    };
    if req.memory == V4l2Memory::Mmap {
        return mmap();
    }
    if let Some(why) = userptr_refused {
        return fallback(why.to_string());
    }
    let split = match userptr_split(req, granted) {
        Ok(split) => split,
        Err(why) => return fallback(why),
    };
    let count = loan_capacity.map_or(req.buffers, |c| c as u32);
    let stream = match Stream::request(device, granted.buf_type, Memory::Userptr, planes, count, split) {
        Ok(stream) => stream,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTTY | libc::EOPNOTSUPP)) => {
            return fallback(format!("the driver does not support USERPTR buffers ({e})"))
        }
        Err(e) => return Err(gone(e, format!("allocating {count} USERPTR buffers on {path}"))),
    };
    if loan_capacity.is_some_and(|capacity| stream.count() > capacity) {
        let granted_count = stream.count();
        stream.free(device);
        return fallback(format!(
            "the driver wants {granted_count} buffers, more than the {} samples the shared memory reserves for it",
            loan_capacity.unwrap_or(0)
        ));
    }
    Ok(stream)
}

/// Sets the config's controls (a wrong one refuses the device), then the ones recorded at
/// runtime (a wrong one is logged and skipped: the device may have changed).
fn apply_at_open(device: &Device, req: &Request, recorded: &[(String, ControlValue)]) -> Result<(), OpenError> {
    if req.controls.is_empty() && recorded.is_empty() {
        return Ok(());
    }
    let path = req.path();
    let offered = controls::query(device).map_err(|e| gone(e, format!("listing the controls of {path}")))?;
    let checked = controls::check(&offered, &req.controls, &path).map_err(|e| OpenError::Refused(anyhow!("{e}")))?;
    controls::apply(device, &checked, &path, &req.camera).map_err(|(_, e)| match e {
        ControlError::Unavailable(m) => OpenError::Gone(anyhow!("{m}")),
        other => OpenError::Refused(anyhow!("{other}")),
    })?;
    for setting in recorded {
        let one = core::slice::from_ref(setting);
        let result = controls::check(&offered, one, &path)
            .map_err(|e| (Vec::new(), e))
            .and_then(|checked| controls::apply(device, &checked, &path, &req.camera));
        match result {
            Ok(_) => {}
            Err((_, ControlError::Unavailable(m))) => return Err(OpenError::Gone(anyhow!("{m}"))),
            Err((_, e)) => tracing::warn!(camera = req.camera, device = path, "recorded control not set again: {e}"),
        }
    }
    Ok(())
}

impl V4l2Source {
    /// Waits (up to the poll timeout) for the next filled buffer and dequeues it, starting the
    /// stream first if needed; a device that stalls or errors is reported lost.
    fn next_buffer(&mut self) -> Result<Dequeued, SourceError> {
        self.requeue()?;
        let path = self.path();
        let Some(session) = self.session.as_mut() else {
            return Err(SourceError::Unavailable(format!(
                "V4L2 device {path} is not open (waiting for it to come back)"
            )));
        };
        if !session.stream.streaming() {
            let missing = session.stream.missing_loans();
            if missing > 0 {
                return Err(SourceError::Fatal(anyhow!(
                    "V4L2 device {path}: {missing} of {} USERPTR buffers have no shared-memory sample",
                    session.stream.count()
                )));
            }
            if let Err(e) = session.stream.start(&session.device) {
                return Err(self.lost(format!("starting the stream failed: {e}")));
            }
        }
        let mut pfd = libc::pollfd { fd: session.device.fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: `pfd` is one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, POLL_TIMEOUT.as_millis() as i32) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Err(SourceError::NoFrameYet); // a signal: let capture look at it
            }
            return Err(self.lost(format!("poll failed: {e}")));
        }
        if ready == 0 {
            let waited = self.last_frame.elapsed();
            if waited > self.stall_after() {
                return Err(self.lost(format!("no frame for {:.1} s", waited.as_secs_f64())));
            }
            return Err(SourceError::NoFrameYet);
        }
        if pfd.revents & libc::POLLIN == 0 {
            return Err(self.lost(format!("the device reports an error (poll events 0x{:x}): unplugged?", pfd.revents)));
        }
        match session.stream.dequeue(&session.device) {
            Ok(d) => Ok(d),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Err(SourceError::NoFrameYet),
            Err(e) => Err(self.lost(format!("dequeuing a buffer failed: {e}"))),
        }
    }

    /// Keeps a dequeued buffer for the frame's publication: an mmap buffer until it is copied,
    /// or the USERPTR buffer's shared-memory sample (which must hold exactly the frame).
    fn keep(&mut self, d: Dequeued, payload_len: usize) -> Result<(), SourceError> {
        match self.memory() {
            Memory::Mmap => self.held = Some(d),
            Memory::Userptr => {
                let loan = self.session.as_mut().and_then(|s| s.stream.take_loan(d.index));
                let Some(loan) = loan else {
                    return Err(self.lost(format!("the driver returned buffer {} that holds no sample", d.index)));
                };
                if loan.payload().len() != payload_len {
                    let why = format!("a {payload_len}-byte frame in a {}-byte sample", loan.payload().len());
                    self.filled = Some(loan); // queued again at the next grab
                    return Err(SourceError::BadFrame(why));
                }
                self.filled = Some(loan);
            }
        }
        Ok(())
    }
}

/// A buffer's capture instant on both clocks: the driver's monotonic stamp (now when it gives
/// none), and the realtime stamp of the same instant.
fn capture_stamps(d: &Dequeued) -> (u64, u64) {
    let now_mono = clock::monotonic_ns();
    let now_real = clock::realtime_ns();
    let (sec, usec) = d.timestamp;
    let monotonic = d.flags & BUF_FLAG_TIMESTAMP_MASK == BUF_FLAG_TIMESTAMP_MONOTONIC;
    let capture_mono_ns = if monotonic && (sec > 0 || usec > 0) {
        (sec.max(0) as u64).saturating_mul(1_000_000_000).saturating_add((usec.max(0) as u64).saturating_mul(1000))
    } else {
        now_mono
    };
    // The realtime stamp of the same instant: shift by the current offset between the clocks.
    let capture_realtime_ns = (i128::from(capture_mono_ns) + i128::from(now_real) - i128::from(now_mono))
        .clamp(0, i128::from(u64::MAX)) as u64;
    (capture_mono_ns, capture_realtime_ns)
}

impl FrameSource for V4l2Source {
    fn describe(&self) -> String {
        let g = &self.granted;
        if g.format() == self.request.published {
            format!("V4L2 {} ({})", self.path(), g.describe())
        } else {
            format!("V4L2 {} ({}, published as {})", self.path(), g.describe(), self.request.published)
        }
    }

    fn format(&self) -> SourceFormat {
        SourceFormat { format: self.request.published, width: self.granted.width, height: self.granted.height }
    }

    fn pacing(&self) -> Pacing {
        Pacing::Device
    }

    fn grab(&mut self) -> Result<Grab, SourceError> {
        let d = self.next_buffer()?;
        self.last_frame = Instant::now();
        let sequence = d.sequence;
        if let Some(last) = self.last_sequence {
            if sequence > last {
                self.drops += u64::from(sequence - last - 1);
            }
        }
        self.last_sequence = Some(sequence);

        let (capture_mono_ns, capture_realtime_ns) = capture_stamps(&d);

        let usable = if d.flags & BUF_FLAG_ERROR != 0 {
            Err(format!("driver marked buffer {sequence} as corrupted"))
        } else {
            self.payload_len(&d)
        };
        let payload_len = match usable {
            Ok(len) => len,
            Err(why) => {
                self.drops += 1;
                self.discard(&d)?;
                return Err(SourceError::BadFrame(why));
            }
        };
        self.keep(d, payload_len)?;
        Ok(Grab {
            payload_len,
            sequence: u64::from(sequence),
            capture_mono_ns,
            capture_realtime_ns,
            source_drops: self.drops,
        })
    }

    fn write_into(&mut self, _frame_id: u64, dst: &mut [MaybeUninit<u8>]) -> Result<(), SourceError> {
        let (Some(d), Some(session)) = (self.held, self.session.as_ref()) else {
            return Err(SourceError::Fatal(anyhow!("V4L2 source: write_into called without a grabbed mmap frame")));
        };
        let (layout, count) = self.granted.layout();
        let plane = |i: usize| {
            let p = layout[i];
            let start = d.data_offset[p.memory_plane] as usize + p.offset;
            let bytes = session.stream.mapped(d.index, p.memory_plane);
            let end = if self.granted.format() == PixelFormat::Mjpg {
                self.plane_bytes(&d, p.memory_plane)
            } else {
                bytes.len()
            };
            (bytes.get(start..end.max(start)).unwrap_or(&[]), p)
        };
        let view = FrameView { planes: [plane(0), plane(count - 1)], count };
        let g = &self.granted;
        let written =
            convert::write_frame(self.conversion, g.format(), self.request.published, (g.width, g.height), &view, dst)?;
        if !written {
            self.drops += 1;
            return Err(SourceError::BadFrame(format!("MJPG frame did not decode to {}x{}", g.width, g.height)));
        }
        Ok(())
    }

    fn lending(&self) -> Option<Lending> {
        let session = self.session.as_ref()?;
        (session.stream.memory() == Memory::Userptr).then(|| Lending {
            buffers: session.stream.count(),
            sample_bytes: self.request.published.frame_bytes(self.granted.width, self.granted.height),
        })
    }

    fn loans_missing(&self) -> usize {
        self.session.as_ref().map_or(0, |s| s.stream.missing_loans())
    }

    fn lend(&mut self, loan: Loan) -> Result<(), SourceError> {
        let Some(session) = self.session.as_mut() else {
            return Err(SourceError::Unavailable(format!("V4L2 device {} is not open", self.path())));
        };
        match session.stream.queue_loan(&session.device, loan) {
            Ok(()) => Ok(()),
            // The driver does not take this memory (alignment, a mapping it cannot pin): under
            // `auto` reopen with mmap; `userptr` cannot work with this driver.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EFAULT | libc::ENOMEM)) => {
                let why = format!("the driver refused a shared-memory sample as a USERPTR buffer ({e})");
                if self.request.memory == V4l2Memory::Userptr {
                    self.shut();
                    return Err(SourceError::Fatal(anyhow!(
                        "camera `{}`: {} cannot capture into shared memory (memory = \"userptr\"): {why}; use memory = \"auto\" or \"mmap\"",
                        self.request.camera,
                        self.path()
                    )));
                }
                tracing::warn!(
                    camera = self.request.camera,
                    device = self.path(),
                    "{why}; reopening with mmap buffers"
                );
                self.userptr_refused = Some(why.clone());
                Err(self.lost(why))
            }
            Err(e) => Err(self.lost(format!("queuing a shared-memory sample as a USERPTR buffer failed: {e}"))),
        }
    }

    fn take_filled(&mut self) -> Option<Loan> {
        self.filled.take()
    }

    fn controls(&self) -> Result<Vec<ControlInfo>, ControlError> {
        let Some(session) = self.session.as_ref() else {
            return Err(ControlError::Unavailable(format!(
                "V4L2 device {} is away (capture is reconnecting); try again when it is back",
                self.path()
            )));
        };
        controls::query(&session.device)
            .map(|list| list.into_iter().map(|c| c.info).collect())
            .map_err(|e| ControlError::Unavailable(format!("listing the controls of {}: {e}", self.path())))
    }

    fn set_controls(&mut self, settings: &[(String, ControlValue)]) -> Result<Vec<ControlApplied>, ControlError> {
        let path = self.path();
        let Some(session) = self.session.as_ref() else {
            return Err(ControlError::Unavailable(format!(
                "V4L2 device {path} is away (capture is reconnecting); nothing was set"
            )));
        };
        let offered = controls::query(&session.device)
            .map_err(|e| ControlError::Unavailable(format!("listing the controls of {path}: {e}")))?;
        let checked = controls::check(&offered, settings, &path)?;
        let result = controls::apply(&session.device, &checked, &path, &self.request.camera);
        let applied = match &result {
            Ok(applied) | Err((applied, _)) => applied.len(),
        };
        for (name, value) in &settings[..applied] {
            remember(&mut self.runtime_controls, name, value);
        }
        match result {
            Ok(applied) => Ok(applied),
            Err((applied, e)) if applied.is_empty() => Err(e),
            Err((applied, e)) => Err(ControlError::Partly { applied, error: Box::new(e) }),
        }
    }

    fn reconnect(&mut self) -> Result<(), SourceError> {
        self.reopen()
    }

    fn close(&mut self) {
        self.shut();
    }

    fn effective(&self) -> Effective {
        Effective {
            published: self.format(),
            device_format: Some(self.granted.format()),
            fps: self.granted.fps,
            source_drops: self.drops,
            reconnects: self.reconnects,
            adjustments: self.adjustments.clone(),
            memory: Some(self.memory().name()),
        }
    }
}

impl Drop for V4l2Source {
    fn drop(&mut self) {
        self.shut();
    }
}

/// The device path with symlinks resolved (`/dev/v4l/by-id/...` → `/dev/video2`), for logs.
fn resolved_device(path: &Path) -> String {
    std::fs::canonicalize(path).map_or_else(|_| path.display().to_string(), |p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::negotiate::tests::granted;
    use super::*;

    fn request(published: PixelFormat) -> Request {
        Request {
            camera: "cam0".into(),
            device: "/dev/video0".into(),
            width: 64,
            height: 4,
            device_format: published,
            published,
            fps: 30.0,
            buffers: 4,
            strict: false,
            memory: V4l2Memory::Auto,
            controls: vec![],
            slot_bytes: published.frame_bytes(64, 4),
        }
    }

    /// USERPTR carries a stream only when the sample can hold the driver's buffer as it is:
    /// same format, tight rows, no larger plane than the frame has.
    #[test]
    fn userptr_needs_the_published_layout() {
        let nv12 = request(PixelFormat::Nv12);
        let split = userptr_split(&nv12, &granted(b"NM12", &[(64, 256), (64, 128)])).expect("tight planes");
        assert_eq!(&split.planes[..2], &[(0, 256), (256, 128)]);
        let one = userptr_split(&nv12, &granted(b"NV12", &[(64, 384)])).expect("one tight plane");
        assert_eq!(one.planes[0], (0, 384));
        assert!(userptr_split(&nv12, &granted(b"NV12", &[(128, 768)])).is_err_and(|e| e.contains("pads rows")));
        assert!(userptr_split(&nv12, &granted(b"NV12", &[(64, 4096)])).is_err_and(|e| e.contains("4096 bytes")));
        let bgr = Request { published: PixelFormat::Bgr3, ..request(PixelFormat::Yuyv) };
        assert!(userptr_split(&bgr, &granted(b"YUYV", &[(128, 512)])).is_err_and(|e| e.contains("converts")));
        let mjpg = request(PixelFormat::Mjpg);
        assert!(userptr_split(&mjpg, &granted(b"MJPG", &[(0, 512)])).is_err_and(|e| e.contains("vary in size")));
    }

    /// A control set again replaces its earlier value and moves to the end of the list.
    #[test]
    fn remembered_controls_keep_the_last_value_in_the_last_order() {
        let mut list = Vec::new();
        remember(&mut list, "Auto Exposure", &ControlValue::Menu("Manual Mode".into()));
        remember(&mut list, "gain", &ControlValue::Integer(3));
        remember(&mut list, "auto_exposure", &ControlValue::Integer(3));
        assert_eq!(
            list,
            vec![
                ("gain".to_string(), ControlValue::Integer(3)),
                ("auto_exposure".to_string(), ControlValue::Integer(3))
            ]
        );
    }
}
