//! One encoder run: a GStreamer pipeline
//! `appsrc → [jpegdec] → videoconvert → encoder → h264parse → fakesink` whose access units are
//! tapped after h264parse and handed to the frame loop, which publishes them on the camera's
//! encoded service (iceoryx2). Nothing goes over the network: the media server and the recorder
//! read that service.
//!
//! The frame loop never waits for it: a frame is copied into a GStreamer buffer (after which
//! the shared-memory sample is released) only when the pipeline has taken the previous ones;
//! otherwise the frame is skipped. When the encoder stalls (a hardware encoder that hangs), the
//! backlog check skips every frame and [`Publisher::health`] reports a stall after
//! `stall-secs`; the caller then drops the run (torn down on a thread of its own, so a hung
//! element can never block the loop) and starts a new one with backoff.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use framebus_common::config::StreamerConfig;
use framebus_common::encoded::{AccessUnitHeader, ACCESS_UNIT_VERSION, AU_FLAG_KEY_FRAME};
use framebus_common::{clock, PixelFormat};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::encoder::Encoder;

/// How the raw frames are laid out for GStreamer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawLayout {
    /// Framebus pixel format.
    pub format: PixelFormat,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
}

impl RawLayout {
    /// The caps of the raw input and the elements that turn it into something videoconvert
    /// takes.
    fn caps_and_decoder(&self, fps: u32) -> (String, &'static str) {
        let (w, h) = (self.width, self.height);
        let raw = |f: &str| format!("video/x-raw,format={f},width={w},height={h},framerate={fps}/1");
        match self.format.info().gstreamer {
            Some(name) => (raw(name), ""),
            // Not raw video: MJPG, decoded first.
            None => (format!("image/jpeg,width={w},height={h},framerate={fps}/1"), "jpegdec ! "),
        }
    }
}

/// GStreamer's default row stride: rows start on 4-byte boundaries.
fn gst_stride(row_bytes: usize) -> usize {
    row_bytes.div_ceil(4) * 4
}

/// Copies a tightly packed framebus frame into a GStreamer buffer with GStreamer's strides.
pub fn frame_buffer(layout: &RawLayout, bytes: &[u8]) -> anyhow::Result<gst::Buffer> {
    if layout.format == PixelFormat::Mjpg {
        return Ok(gst::Buffer::from_slice(bytes.to_vec()));
    }
    let planes: Vec<(usize, usize)> = layout.format.planes(layout.width, layout.height).collect();
    let tight: usize = planes.iter().map(|(rows, row)| rows * row).sum();
    anyhow::ensure!(
        bytes.len() >= tight,
        "frame has {} bytes, {}x{} {} needs {tight}",
        bytes.len(),
        layout.width,
        layout.height,
        layout.format
    );
    let padded: usize = planes.iter().map(|(rows, row)| rows * gst_stride(*row)).sum();
    let mut buffer = gst::Buffer::with_size(padded).context("allocating a frame buffer")?;
    {
        let buffer = buffer.get_mut().context("a new buffer is writable")?;
        let mut map = buffer.map_writable().context("mapping a frame buffer")?;
        if padded == tight {
            map.copy_from_slice(&bytes[..tight]);
        } else {
            let (mut src, mut dst) = (0, 0);
            for (rows, row) in planes {
                let stride = gst_stride(row);
                for _ in 0..rows {
                    map[dst..dst + row].copy_from_slice(&bytes[src..src + row]);
                    // GStreamer allocates without clearing: padding is zeroed, never stale memory.
                    map[dst + row..dst + stride].fill(0);
                    src += row;
                    dst += stride;
                }
            }
        }
    }
    Ok(buffer)
}

/// An access unit out of the encoder, with the frame it encodes (see [`TapSettings`]).
#[derive(Debug)]
pub struct EncodedUnit {
    /// Its header (frame id, times, key frame, run, sequence, length).
    pub header: AccessUnitHeader,
    /// The Annex-B bytes (SPS/PPS in front of every key frame).
    pub data: Vec<u8>,
}

/// How a run hands its access units out (to the frame loop, which publishes them).
#[derive(Debug, Clone, Copy)]
pub struct TapSettings {
    /// Run number written into every access unit of this run.
    pub run: u64,
    /// Access units held for the frame loop at most; more are dropped (counted).
    pub capacity: usize,
    /// Larger access units are dropped (counted).
    pub max_bytes: usize,
}

/// The frame a buffer was made from: (frame id, capture CLOCK_MONOTONIC ns, capture
/// CLOCK_REALTIME ns).
pub type FrameRef = (u64, u64, u64);

/// Frames handed to the encoder, matched to the access units that leave it by timestamp.
#[derive(Default)]
struct TapState {
    /// The frames of buffers pushed and not yet seen leaving appsrc, in order.
    pushed: VecDeque<FrameRef>,
    /// PTS → the frame of each buffer in the encoder.
    in_encoder: HashMap<u64, FrameRef>,
    /// Next access unit's sequence number.
    sequence: u64,
    /// PTS of the first buffer into the encoder.
    first_in: Option<u64>,
    /// Output PTS minus input PTS: encoders may shift every timestamp by a constant (x264
    /// moves them up so that no DTS is negative); the first access unit out is the first
    /// frame in (an IDR, in every mode), which gives the shift.
    shift: Option<i128>,
}

/// The access units of one run.
struct Tap {
    state: Arc<Mutex<TapState>>,
    units: Receiver<EncodedUnit>,
    dropped: Arc<AtomicU64>,
}

/// Buffers in the encoder whose access unit never came are forgotten past this many.
const MAX_IN_ENCODER: usize = 256;

fn lock(state: &Mutex<TapState>) -> std::sync::MutexGuard<'_, TapState> {
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Called for every access unit h264parse outputs: finds its frame and queues it for the frame
/// loop (never blocks; a full queue or an oversized unit is dropped and counted, its sequence
/// number used up so the reader sees the gap).
fn tap_unit(
    buffer: &gst::BufferRef,
    state: &Mutex<TapState>,
    out: &SyncSender<EncodedUnit>,
    dropped: &AtomicU64,
    settings: TapSettings,
    layout: RawLayout,
) {
    let pts = buffer.pts().map(|t| t.nseconds());
    let dts = buffer.dts().map(|t| t.nseconds()).or(pts);
    let (frame, sequence) = {
        let mut st = lock(state);
        if let (None, Some(out), Some(first)) = (st.shift, pts, st.first_in) {
            st.shift = Some(i128::from(out) - i128::from(first));
        }
        let shift = st.shift.unwrap_or(0);
        let frame = pts.and_then(|p| u64::try_from(i128::from(p) - shift).ok()).and_then(|p| st.in_encoder.remove(&p));
        let sequence = st.sequence;
        st.sequence += 1;
        (frame, sequence)
    };
    let (Some((frame_id, capture_mono_ns, capture_realtime_ns)), Some(pts_ns)) = (frame, pts) else {
        dropped.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if buffer.size() > settings.max_bytes {
        dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let Ok(map) = buffer.map_readable() else {
        dropped.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
    let header = AccessUnitHeader {
        layout_version: ACCESS_UNIT_VERSION,
        flags: if key { AU_FLAG_KEY_FRAME } else { 0 },
        frame_id,
        capture_mono_ns,
        pts_ns,
        dts_ns: dts.unwrap_or(pts_ns),
        width: layout.width,
        height: layout.height,
        run: settings.run,
        sequence,
        payload_len: map.size() as u32,
        reserved: 0,
        capture_realtime_ns,
    };
    match out.try_send(EncodedUnit { header, data: map.as_slice().to_vec() }) {
        Ok(()) => {}
        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
            dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What the encoder run is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Starting (not playing yet, or playing with nothing encoded yet).
    Connecting,
    /// Access units leave the encoder.
    Streaming,
    /// Failed: the reason; the caller starts a new run.
    Failed(String),
}

/// One encoder run.
pub struct Publisher {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    bus: gst::Bus,
    layout: RawLayout,
    /// Access units that left the encoder, and the monotonic time of the last one.
    out_count: Arc<AtomicU64>,
    last_out_ns: Arc<AtomicU64>,
    playing: bool,
    started: Instant,
    last_push: Option<Instant>,
    stall: Duration,
    max_backlog: u64,
    tap: Option<Tap>,
}

/// Longest an encoder run may take to reach PLAYING.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Tap {
    /// Attaches the tap to a publisher pipeline: the PTS appsrc stamps is matched to the
    /// frame pushed (appsrc's src pad), and each access unit out of h264parse is handed over
    /// with its frame's header (h264parse's src pad).
    fn attach(
        appsrc: &gst_app::AppSrc,
        parse_src: &gst::Pad,
        settings: TapSettings,
        layout: RawLayout,
    ) -> anyhow::Result<Tap> {
        let state = Arc::new(Mutex::new(TapState::default()));
        let dropped = Arc::new(AtomicU64::new(0));
        let (tx, units) = std::sync::mpsc::sync_channel(settings.capacity.max(1));
        let src_pad = appsrc.static_pad("src").context("appsrc has no src pad")?;
        let st = Arc::clone(&state);
        // appsrc hands buffers out in the order they were pushed: the PTS it stamped
        // now belongs to the oldest pushed frame.
        src_pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer() {
                let mut st = lock(&st);
                if let (Some(frame), Some(pts)) = (st.pushed.pop_front(), buffer.pts()) {
                    if st.in_encoder.len() >= MAX_IN_ENCODER {
                        if let Some(oldest) = st.in_encoder.keys().min().copied() {
                            st.in_encoder.remove(&oldest);
                        }
                    }
                    st.first_in.get_or_insert(pts.nseconds());
                    st.in_encoder.insert(pts.nseconds(), frame);
                }
            }
            gst::PadProbeReturn::Ok
        });
        let (st, drops) = (Arc::clone(&state), Arc::clone(&dropped));
        parse_src.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer() {
                tap_unit(buffer, &st, &tx, &drops, settings, layout);
            }
            gst::PadProbeReturn::Ok
        });
        Ok(Tap { state, units, dropped })
    }
}

impl Publisher {
    /// Builds and starts the pipeline; the access units go to the tap (and nowhere else).
    pub fn start(
        encoder: &Encoder,
        config: &StreamerConfig,
        layout: RawLayout,
        fps: u32,
        tap: Option<TapSettings>,
    ) -> anyhow::Result<Publisher> {
        let (caps, decoder) = layout.caps_and_decoder(fps.max(1));
        let launch = format!(
            "appsrc name=src is-live=true format=time do-timestamp=true block=false max-bytes=0 caps=\"{caps}\" \
             ! {decoder}{encode} \
             ! h264parse name=parse config-interval=-1 \
             ! video/x-h264,stream-format=byte-stream,alignment=au ! fakesink name=sink sync=false async=false",
            encode = encoder.launch(config),
        );
        tracing::debug!("publisher pipeline: {launch}");
        let pipeline = gst::parse::launch(&launch)
            .with_context(|| format!("building the pipeline `{launch}`"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow::anyhow!("the publisher pipeline is not a pipeline"))?;
        let appsrc = pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .context("the publisher pipeline has no appsrc")?;
        let bus = pipeline.bus().context("the publisher pipeline has no bus")?;
        let out_count = Arc::new(AtomicU64::new(0));
        let last_out_ns = Arc::new(AtomicU64::new(0));
        let parse_src =
            pipeline.by_name("parse").and_then(|p| p.static_pad("src")).context("h264parse has no src pad")?;
        {
            let (count, last) = (Arc::clone(&out_count), Arc::clone(&last_out_ns));
            parse_src.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                count.fetch_add(1, Ordering::Relaxed);
                last.store(clock::monotonic_ns(), Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        }
        let tap = match tap {
            Some(settings) => Some(Tap::attach(&appsrc, &parse_src, settings, layout)?),
            None => None,
        };
        let publisher = Publisher {
            pipeline,
            appsrc,
            bus,
            layout,
            out_count,
            last_out_ns,
            playing: false,
            started: Instant::now(),
            last_push: None,
            stall: Duration::from_secs_f64(config.stall_secs),
            max_backlog: if config.low_latency { 1 } else { 3 },
            tap,
        };
        publisher.pipeline.set_state(gst::State::Playing).context("starting the publisher pipeline")?;
        Ok(publisher)
    }

    /// The raw layout this run takes.
    pub fn layout(&self) -> RawLayout {
        self.layout
    }

    /// Whether a frame may be pushed now: playing and the encoder has taken the previous
    /// frames.
    pub fn ready(&self) -> bool {
        self.playing && self.appsrc.current_level_buffers() < self.max_backlog
    }

    /// Hands a frame buffer to the encoder (never blocks); `frame` follows it to its access
    /// unit.
    pub fn push(&mut self, buffer: gst::Buffer, frame: FrameRef) -> Result<(), String> {
        self.last_push = Some(Instant::now());
        if let Some(tap) = &self.tap {
            lock(&tap.state).pushed.push_back(frame);
        }
        let pushed =
            self.appsrc.push_buffer(buffer).map(|_| ()).map_err(|e| format!("the pipeline refused a frame: {e:?}"));
        if pushed.is_err() {
            if let Some(tap) = &self.tap {
                lock(&tap.state).pushed.pop_back();
            }
        }
        pushed
    }

    /// Access units that left the encoder since the last call (empty without a tap).
    pub fn take_units(&self) -> impl Iterator<Item = EncodedUnit> + '_ {
        self.tap.iter().flat_map(|t| t.units.try_iter())
    }

    /// The next access unit out of the encoder, waiting for it up to `timeout` (None without a
    /// tap, or when none came in time).
    pub fn wait_unit(&self, timeout: Duration) -> Option<EncodedUnit> {
        self.tap.as_ref().and_then(|t| t.units.recv_timeout(timeout).ok())
    }

    /// Access units the tap dropped (queue full, too large, frame not found).
    pub fn units_dropped(&self) -> u64 {
        self.tap.as_ref().map_or(0, |t| t.dropped.load(Ordering::Relaxed))
    }

    /// Access units out of the encoder so far.
    pub fn sent(&self) -> u64 {
        self.out_count.load(Ordering::Relaxed)
    }

    /// Reads the pipeline's messages and checks for a stall.
    pub fn health(&mut self) -> Health {
        while let Some(message) = self.bus.pop() {
            match message.view() {
                gst::MessageView::Error(e) => {
                    let from = message.src().map(|s| s.path_string().to_string()).unwrap_or_default();
                    return Health::Failed(format!("{} ({from})", e.error()));
                }
                gst::MessageView::Eos(_) => return Health::Failed("the encoder ended the stream".into()),
                gst::MessageView::StateChanged(s)
                    if message.src() == Some(self.pipeline.upcast_ref()) && s.current() == gst::State::Playing =>
                {
                    self.playing = true;
                }
                _ => {}
            }
        }
        if !self.playing {
            if self.started.elapsed() > CONNECT_TIMEOUT {
                return Health::Failed(format!("not connected within {CONNECT_TIMEOUT:?}"));
            }
            return Health::Connecting;
        }
        // Stalled: frames are waiting but nothing has left the encoder for `stall`.
        let last_out = self.last_out_ns.load(Ordering::Relaxed);
        let since_out = Duration::from_nanos(clock::monotonic_ns().saturating_sub(last_out));
        let waiting = self.appsrc.current_level_buffers() > 0;
        let reference = if last_out == 0 { self.started.elapsed() } else { since_out };
        if waiting && reference > self.stall && self.last_push.is_some() {
            return Health::Failed(format!(
                "the encoder output nothing for {:.1} s (stalled)",
                reference.as_secs_f64()
            ));
        }
        // Playing but nothing encoded yet: not streaming until the first access unit is out.
        if self.out_count.load(Ordering::Relaxed) == 0 {
            return Health::Connecting;
        }
        Health::Streaming
    }

    /// Tears the run down on a thread of its own (a hung element never blocks the caller).
    pub fn close(self) {
        let pipeline = self.pipeline;
        let spawned = std::thread::Builder::new().name("publisher-teardown".into()).spawn(move || {
            let _ = pipeline.set_state(gst::State::Null);
        });
        if let Err(e) = spawned {
            tracing::warn!("could not start the teardown thread: {e}");
        }
    }

    /// Tears the run down and waits (bounded) for it (clean exit).
    pub fn close_and_wait(self, within: Duration) {
        let pipeline = self.pipeline;
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new().name("publisher-teardown".into()).spawn(move || {
            let _ = pipeline.set_state(gst::State::Null);
            let _ = tx.send(());
        });
        if spawned.is_ok() && rx.recv_timeout(within).is_err() {
            tracing::warn!("the publisher did not shut down within {within:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows whose length is not a multiple of 4 are padded to GStreamer's stride; others are
    /// copied in one piece.
    #[test]
    fn frames_are_copied_with_gstreamer_strides() {
        gst::init().expect("gstreamer");
        let odd = RawLayout { format: PixelFormat::Grey, width: 6, height: 2 };
        let buffer = frame_buffer(&odd, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]).expect("buffer");
        let map = buffer.map_readable().expect("map");
        assert_eq!(map.as_slice(), &[1, 2, 3, 4, 5, 6, 0, 0, 7, 8, 9, 10, 11, 12, 0, 0]);
        let even = RawLayout { format: PixelFormat::Bgr3, width: 4, height: 1 };
        let bytes: Vec<u8> = (0..12).collect();
        let buffer = frame_buffer(&even, &bytes).expect("buffer");
        assert_eq!(buffer.map_readable().expect("map").as_slice(), bytes.as_slice());
        assert!(frame_buffer(&even, &bytes[..11]).is_err(), "a short frame is refused");
    }
}
