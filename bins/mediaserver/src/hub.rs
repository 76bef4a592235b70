//! Fan-in and fan-out of encoded streams, one channel per camera.
//!
//! A publisher (the ingest thread reading a camera's encoded service, one run of its streamer's
//! encoder at a time; see [`crate::ingest`]) hands every H.264 access unit to its camera's
//! channel; the channel passes it to every sink: the one shared RTSP play media
//! of the camera (gst-rtsp-server then fans it out to every RTSP client) and one pipeline per
//! WebRTC viewer. Buffers are reference-counted: a sink gets a new buffer header over the same
//! memory, never a copy of the data.
//!
//! A sink starts at a key frame and never queues without bound: when its source holds more
//! than [`MAX_BACKLOG_BYTES`] (its consumer stalled), it skips to the next key frame, so one
//! slow viewer costs nobody else anything.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use framebus_common::figures::{MediaServerCamera, Viewers};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use serde::Serialize;

/// Bytes a sink may have queued before it skips to the next key frame.
pub const MAX_BACKLOG_BYTES: u64 = 8 * 1024 * 1024;

/// What a sink feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// The camera's shared RTSP play media.
    Rtsp,
    /// One WebRTC viewer.
    WebRtc,
}

struct Sink {
    id: u64,
    kind: SinkKind,
    appsrc: gst_app::AppSrc,
    caps_set: bool,
    waiting_key: bool,
    skipped: u64,
}

#[derive(Default)]
struct Inner {
    publisher: Option<u64>,
    next_id: u64,
    caps: Option<gst::Caps>,
    sinks: Vec<Sink>,
    frames_in: u64,
    bytes_in: u64,
    publishes: u64,
    last_in: Option<Instant>,
    skipped: u64,
    /// Access units lost on the encoded service (sequence gaps).
    lost: u64,
}

/// One camera's stream.
pub struct Channel {
    camera: String,
    inner: Mutex<Inner>,
    /// RTSP(S) clients playing (counted by the RTSP side, [`crate::rtsp`]).
    rtsp_viewers: AtomicU32,
    /// Bytes of RTP packets sent to viewers (every viewer counted).
    bytes_out: AtomicU64,
}

/// A channel's figures, for `/status.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelStatus {
    /// Camera name.
    pub camera: String,
    /// A streamer is publishing now.
    pub publishing: bool,
    /// Publish sessions since the server started (a reconnecting streamer adds one).
    pub publishes: u64,
    /// Access units received.
    pub frames_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Milliseconds since the last access unit.
    pub last_frame_ms_ago: Option<u64>,
    /// Sinks feeding RTSP media (0 or 1: the media is shared by every RTSP client).
    pub rtsp_media: usize,
    /// WebRTC viewers.
    pub webrtc_viewers: usize,
    /// Access units skipped by sinks that fell behind.
    pub skipped: u64,
}

impl Channel {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The camera this channel carries.
    pub fn camera(&self) -> &str {
        &self.camera
    }

    /// A new publisher takes over the channel (a new encoder run of the streamer replaces the
    /// previous one); returns its token for [`Channel::push`] and [`Channel::end_publish`].
    pub fn begin_publish(&self) -> u64 {
        let mut inner = self.lock();
        inner.next_id += 1;
        let token = inner.next_id;
        if inner.publisher.replace(token).is_some() {
            tracing::warn!(camera = self.camera, "a new publisher replaces the current one");
        }
        inner.publishes += 1;
        // Every sink waits for the new publisher's first key frame (and its caps).
        inner.caps = None;
        for sink in &mut inner.sinks {
            sink.waiting_key = true;
            sink.caps_set = false;
        }
        tracing::info!(camera = self.camera, "publisher connected");
        token
    }

    /// The publisher `token` has gone.
    pub fn end_publish(&self, token: u64) {
        let mut inner = self.lock();
        if inner.publisher == Some(token) {
            inner.publisher = None;
            tracing::info!(camera = self.camera, "publisher disconnected");
        }
    }

    /// Whether a publisher is connected.
    pub fn is_publishing(&self) -> bool {
        self.lock().publisher.is_some()
    }

    /// `lost` access units were lost between the last one pushed and the next: every sink
    /// waits for the next key frame (a decoder could not go on from a gap).
    pub fn discontinuity(&self, lost: u64) {
        let mut inner = self.lock();
        inner.lost = inner.lost.saturating_add(lost);
        for sink in &mut inner.sinks {
            sink.waiting_key = true;
        }
    }

    /// One access unit from the publisher `token` (ignored from a replaced publisher).
    pub fn push(&self, token: u64, sample: &gst::Sample) {
        let Some(buffer) = sample.buffer() else { return };
        self.push_buffer(token, buffer, sample.caps());
    }

    /// One access unit (a buffer whose `DELTA_UNIT` flag marks non-key frames) with its caps
    /// from the publisher `token` (ignored from a replaced publisher).
    pub fn push_buffer(&self, token: u64, buffer: &gst::BufferRef, caps: Option<&gst::CapsRef>) {
        let mut inner = self.lock();
        if inner.publisher != Some(token) {
            return;
        }
        inner.frames_in += 1;
        inner.bytes_in += buffer.size() as u64;
        inner.last_in = Some(Instant::now());
        if let Some(caps) = caps {
            if inner.caps.as_ref().is_none_or(|c| c.as_ref() != caps) {
                inner.caps = Some(caps.to_owned());
                for sink in &mut inner.sinks {
                    sink.caps_set = false;
                }
            }
        }
        let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        if tracing::enabled!(tracing::Level::TRACE) {
            let nals: Vec<u8> = buffer
                .map_readable()
                .map(|m| m.windows(4).filter(|w| w[0] == 0 && w[1] == 0 && w[2] == 1).map(|w| w[3] & 0x1f).collect())
                .unwrap_or_default();
            tracing::trace!(camera = self.camera, bytes = buffer.size(), key, pts = ?buffer.pts(), ?nals, "access unit in");
        }
        let caps = inner.caps.clone();
        let mut skipped = 0;
        for sink in &mut inner.sinks {
            if sink.waiting_key && !key {
                continue;
            }
            // Running time of the sink's pipeline: none until it plays (nothing to feed yet).
            let Some(now) = sink.appsrc.current_running_time() else {
                sink.waiting_key = true;
                continue;
            };
            if sink.appsrc.current_level_bytes() > MAX_BACKLOG_BYTES {
                sink.waiting_key = true;
                sink.skipped += 1;
                skipped += 1;
                continue;
            }
            sink.waiting_key = false;
            if !sink.caps_set {
                if let Some(caps) = &caps {
                    sink.appsrc.set_caps(Some(caps));
                    sink.caps_set = true;
                }
            }
            let mut out = buffer.copy();
            {
                let out = out.make_mut();
                out.set_pts(now);
                out.set_dts(now);
                out.set_duration(gst::ClockTime::NONE);
            }
            if let Err(e) = sink.appsrc.push_buffer(out) {
                tracing::debug!(camera = self.camera, sink = sink.id, "sink refused a buffer: {e:?}");
                sink.waiting_key = true;
            }
        }
        inner.skipped += skipped;
    }

    /// Adds a sink; it gets the stream from the next key frame on.
    pub fn add_sink(&self, appsrc: gst_app::AppSrc, kind: SinkKind) -> u64 {
        appsrc.set_is_live(true);
        appsrc.set_format(gst::Format::Time);
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        inner.sinks.push(Sink { id, kind, appsrc, caps_set: false, waiting_key: true, skipped: 0 });
        id
    }

    /// Removes a sink (its pipeline is going away).
    pub fn remove_sink(&self, id: u64) {
        let mut inner = self.lock();
        if let Some(at) = inner.sinks.iter().position(|s| s.id == id) {
            let sink = inner.sinks.swap_remove(at);
            tracing::debug!(camera = self.camera, sink = id, skipped = sink.skipped, "sink removed");
        }
    }

    /// Sinks of `kind`.
    pub fn sinks(&self, kind: SinkKind) -> usize {
        self.lock().sinks.iter().filter(|s| s.kind == kind).count()
    }

    /// An RTSP client started playing the camera.
    pub fn rtsp_viewer_joined(&self) {
        self.rtsp_viewers.fetch_add(1, Ordering::Relaxed);
    }

    /// An RTSP client that played the camera left (teardown or closed connection).
    pub fn rtsp_viewer_left(&self) {
        let _ = self.rtsp_viewers.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1)));
    }

    /// RTSP clients playing the camera.
    pub fn rtsp_viewers(&self) -> u32 {
        self.rtsp_viewers.load(Ordering::Relaxed)
    }

    /// `bytes` were sent to viewers.
    pub fn count_bytes_out(&self, bytes: u64) {
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The channel's figures as `ctl status` and the metrics read them; `tls`: the RTSP
    /// clients are RTSPS clients.
    pub fn figures(&self, tls: bool) -> MediaServerCamera {
        let rtsp = self.rtsp_viewers();
        let inner = self.lock();
        MediaServerCamera {
            camera: self.camera.clone(),
            publishing: inner.publisher.is_some(),
            viewers: Viewers {
                rtsp: if tls { 0 } else { rtsp },
                rtsps: if tls { rtsp } else { 0 },
                webrtc: inner.sinks.iter().filter(|s| s.kind == SinkKind::WebRtc).count() as u32,
            },
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            access_units_in: inner.frames_in,
            access_units_lost: inner.lost,
            access_units_skipped: inner.skipped,
        }
    }

    /// The channel's figures.
    pub fn status(&self) -> ChannelStatus {
        let inner = self.lock();
        ChannelStatus {
            camera: self.camera.clone(),
            publishing: inner.publisher.is_some(),
            publishes: inner.publishes,
            frames_in: inner.frames_in,
            bytes_in: inner.bytes_in,
            last_frame_ms_ago: inner.last_in.map(|t| t.elapsed().as_millis() as u64),
            rtsp_media: inner.sinks.iter().filter(|s| s.kind == SinkKind::Rtsp).count(),
            webrtc_viewers: inner.sinks.iter().filter(|s| s.kind == SinkKind::WebRtc).count(),
            skipped: inner.skipped,
        }
    }
}

/// Every camera's channel (the cameras with a `[camera.streamer]` table).
pub struct Hub {
    channels: HashMap<String, Arc<Channel>>,
    order: Vec<String>,
}

impl Hub {
    /// A hub for these cameras.
    pub fn new(cameras: &[String]) -> Hub {
        let channels = cameras
            .iter()
            .map(|c| {
                let channel = Channel {
                    camera: c.clone(),
                    inner: Mutex::new(Inner::default()),
                    rtsp_viewers: AtomicU32::new(0),
                    bytes_out: AtomicU64::new(0),
                };
                (c.clone(), Arc::new(channel))
            })
            .collect();
        Hub { channels, order: cameras.to_vec() }
    }

    /// The channel of `camera`, if it is served.
    pub fn channel(&self, camera: &str) -> Option<Arc<Channel>> {
        self.channels.get(camera).cloned()
    }

    /// The cameras served, in config order.
    pub fn cameras(&self) -> &[String] {
        &self.order
    }

    /// Access units read from every camera's encoded service.
    pub fn access_units_in(&self) -> u64 {
        self.channels.values().map(|c| c.lock().frames_in).sum()
    }

    /// Every channel's figures, in config order.
    pub fn status(&self) -> Vec<ChannelStatus> {
        self.order.iter().filter_map(|c| self.channels.get(c)).map(|c| c.status()).collect()
    }
}

/// Counts the bytes of the RTP packets leaving `pad` as sent to the camera's viewers: once per
/// RTSP client playing the shared media (`per_rtsp_viewer`), else once (a WebRTC viewer's own
/// pipeline).
pub fn count_bytes_out(pad: &gst::Pad, channel: &Arc<Channel>, per_rtsp_viewer: bool) {
    let channel = Arc::clone(channel);
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
        let bytes = match &info.data {
            Some(gst::PadProbeData::Buffer(buffer)) => buffer.size() as u64,
            Some(gst::PadProbeData::BufferList(list)) => list.calculate_size() as u64,
            _ => 0,
        };
        let times = if per_rtsp_viewer { u64::from(channel.rtsp_viewers()) } else { 1 };
        channel.count_bytes_out(bytes * times);
        gst::PadProbeReturn::Ok
    });
}
