//! The streamer process: reads one camera's frames (policy `newest` or `max-fps`), encodes them
//! as H.264 (a hardware encoder where the machine has one, else x264; see [`encoder`]) and
//! publishes every access unit, with the id of the frame it encodes, on the camera's encoded
//! service `framebus/<dep>/<cam>/encoded` (iceoryx2). The media server reads that service and
//! fans the stream out to every viewer; the recorder with `video = "stream"` writes it. The
//! streamer opens no socket: there is no network path into the stream.
//!
//! It never makes capture wait and never queues frames without bound: a frame the encoder
//! cannot take now is skipped (counted); a failed or stalled encoder run is dropped and a new
//! one started with backoff (250 ms doubling to 5 s) while frames keep being skipped.
//!
//! With `overlay = true` the latest results are drawn into the frames it encodes (see
//! [`overlay`]): the frame is converted into the streamer's own BGR buffer, never drawn on in
//! shared memory, and no result is waited for.

pub mod cli;
pub mod encoder;
pub mod overlay;
pub mod publisher;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use framebus::{Camera, Event, ProcessReport};
use framebus_common::config::StreamerConfig;
use framebus_common::control::ProcessState;
use framebus_common::figures::{Figures, StreamerFigures};
use framebus_common::names::{service_name, ServiceKind};
use framebus_common::stats::StatusWindow;
use framebus_common::{clock, CameraConfig, Deployment, ProcessRole};
use gstreamer as gst;
use gstreamer::prelude::*;
use serde::Serialize;

use crate::encoder::{Choice, Encoder};
use crate::overlay::Overlay;
use crate::publisher::{EncodedUnit, Health, Publisher, RawLayout, TapSettings};
use framebus_common::encoded::AccessUnitHeader;
use framebus_common::ipc::{self, IpcService};
use iceoryx2::prelude::*;

/// First restart delay; doubled per failed attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest restart delay.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A run that streamed this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// How often the encoder run is looked after.
const TICK: Duration = Duration::from_millis(100);
/// Window of the measured bitrate and access-unit rate.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Longest wait for the access unit of a frame just handed to the encoder.
const UNIT_WAIT_MAX: Duration = Duration::from_millis(50);

/// Options beyond the config.
#[derive(Debug, Clone, Default)]
pub struct StreamerOptions {
    /// Print every statistics report as one JSON line on stdout.
    pub json: bool,
}

/// One statistics report (the `--json` line).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamerReport {
    /// Camera.
    pub camera: String,
    /// `streaming`, `starting` or `restarting`.
    pub state: String,
    /// The encoder (`x264`, `v4l2:/dev/video11`, `vaapi:vah264enc`).
    pub encoder: String,
    /// The iceoryx2 service the access units are published on.
    pub service: String,
    /// Frames handed to the streamer by the reader loop.
    pub frames: u64,
    /// Frames given to the encoder.
    pub encoded: u64,
    /// Access units out of the encoder (all runs).
    pub sent: u64,
    /// Frames skipped because the encoder could not take them (busy, stalled, restarting).
    pub skipped: u64,
    /// Encoder runs started after the first one.
    pub restarts: u64,
    /// Frames given to the encoder per second over the last interval.
    pub fps: f64,
    /// Capture → handed to the encoder, p50 (µs).
    pub latency_p50_us: Option<u64>,
    /// Capture → handed to the encoder, p99 (µs).
    pub latency_p99_us: Option<u64>,
    /// The last encoder error.
    pub last_error: Option<String>,
    /// Access units published on the encoded service.
    pub units_published: u64,
    /// Access units not published (queue full, too large, no sample).
    pub units_dropped: u64,
    /// Key frames among the access units published.
    pub key_frames: u64,
    /// Bytes of the access units published.
    pub bytes_published: u64,
    /// Whether results are drawn into the stream (`overlay = true`).
    pub overlay: bool,
    /// Frames encoded with at least one result drawn into them.
    pub overlaid: u64,
}

/// The access units published on the camera's encoded service (media server, recorder).
struct EncodedOut {
    // Field order is drop order: the publisher before its service and node.
    publisher: iceoryx2::port::publisher::Publisher<IpcService, [u8], AccessUnitHeader>,
    _service: ipc::EncodedPortFactory,
    _node: Node<IpcService>,
    max_bytes: usize,
    capacity: usize,
    /// Run number of the next encoder run (starts at the process's start time so that a
    /// restarted streamer never reuses one).
    next_run: u64,
    /// Access units dropped by runs that ended.
    dropped_before: u64,
    /// Access units iceoryx2 refused.
    publish_failed: u64,
}

impl EncodedOut {
    fn open(deployment: &Deployment, camera: &CameraConfig) -> anyhow::Result<EncodedOut> {
        let cam = camera.name.as_str();
        let layout = camera.encoded_layout();
        let node = ipc::create_node(deployment, ProcessRole::Streamer.name(), cam)?;
        let service = ipc::open_encoded(&node, deployment.name(), camera)?;
        let publisher = service
            .publisher_builder()
            .initial_max_slice_len(layout.initial_au_bytes)
            .allocation_strategy(AllocationStrategy::PowerOfTwo)
            .max_loaned_samples(1)
            .create()
            .map_err(|e| anyhow::anyhow!("camera `{cam}`: creating the encoded-video publisher: {e:?}"))?;
        Ok(EncodedOut {
            publisher,
            _service: service,
            _node: node,
            max_bytes: layout.max_au_bytes,
            capacity: layout.queue,
            next_run: clock::realtime_ns(),
            dropped_before: 0,
            publish_failed: 0,
        })
    }

    /// Publishes one access unit; false when it could not (counted by the caller).
    fn publish(&self, unit: &EncodedUnit) -> bool {
        let sent = (|| -> Result<(), String> {
            let sample = self.publisher.loan_slice_uninit(unit.data.len()).map_err(|e| format!("{e:?}"))?;
            let mut sample = sample.write_from_slice(&unit.data);
            *sample.user_header_mut() = unit.header;
            sample.send().map_err(|e| format!("{e:?}"))?;
            Ok(())
        })();
        if let Err(e) = &sent {
            tracing::debug!("access unit of frame {} not published: {e}", unit.header.frame_id);
        }
        sent.is_ok()
    }

    fn tap(&mut self) -> TapSettings {
        self.next_run += 1;
        TapSettings { run: self.next_run, capacity: self.capacity, max_bytes: self.max_bytes }
    }
}

enum Link {
    Up { publisher: Publisher, since: Instant },
    Down { retry_at: Instant },
}

struct Streamer {
    config: StreamerConfig,
    choice: Choice,
    /// The camera's frames (what `wants` accepts).
    layout: RawLayout,
    /// What the encoder receives: the camera's frames, or BGR copies with the overlay.
    encode_layout: RawLayout,
    fps: u32,
    link: Link,
    backoff: Duration,
    runs: u64,
    report: StreamerReport,
    sent_before: u64,
    /// Encoded frames per second and capture → encoder latency, per stats interval.
    window: StatusWindow,
    out: EncodedOut,
    /// Access units and bytes published per second (rolled every tick over 1 s windows).
    unit_rate: StatusWindow,
    byte_rate: StatusWindow,
}

/// GStreamer elements the streamer needs, with the Debian package that has them.
fn needed_elements(encoder: &Encoder) -> Vec<(&'static str, &'static str)> {
    let mut needed = vec![
        ("appsrc", "gstreamer1.0-plugins-base"),
        ("videoconvert", "gstreamer1.0-plugins-base"),
        ("h264parse", "gstreamer1.0-plugins-bad"),
        ("jpegdec", "gstreamer1.0-plugins-good"),
    ];
    if *encoder == Encoder::X264 {
        needed.push(("x264enc", "gstreamer1.0-plugins-ugly"));
    }
    needed
}

/// Probes the machine's encoders (see [`encoder::probe`]) through GStreamer's registry.
pub fn probe_encoders() -> encoder::Probe {
    let has_element = |name: &str| gst::ElementFactory::find(name).is_some();
    let v4l2_element_for = |device: &Path| -> Option<String> {
        let registry = gst::Registry::get();
        registry
            .features_by_plugin("video4linux2")
            .into_iter()
            .map(|f| f.name().to_string())
            .filter(|name| name.ends_with("h264enc"))
            .find(|name| {
                gst::ElementFactory::make(name)
                    .build()
                    .ok()
                    .and_then(|e| e.find_property("device").map(|_| e.property::<Option<String>>("device")))
                    .flatten()
                    .is_some_and(|d| Path::new(&d) == device)
            })
    };
    encoder::probe(Path::new("/dev"), &has_element, &v4l2_element_for)
}

/// Runs the streamer of `camera` until SIGINT/SIGTERM or `ctl stop <camera> streamer`.
pub fn run(
    deployment: &Deployment,
    camera: &CameraConfig,
    options: &StreamerOptions,
) -> anyhow::Result<StreamerReport> {
    let cam = camera.name.as_str();
    let config = camera.streamer.clone().unwrap_or_default();
    gst::init().context("initialising GStreamer")?;
    let probe = probe_encoders();
    let choice = encoder::choose(config.encoder, &probe)
        .map_err(|e| anyhow::anyhow!("{}: camera `{cam}`: {e}", deployment.source_file.display()))?;
    tracing::info!(camera = cam, encoder = choice.encoder.label(), "encoder chosen: {}", choice.reason);
    framebus_gstcheck::check_elements(&needed_elements(&choice.encoder))?;

    let interval = Duration::from_secs_f64(config.stats_interval_secs);
    let reader = Camera::builder_for(deployment, Some(cam))
        .role(ProcessRole::Streamer.name())?
        .stats_interval(interval)
        .open()?;
    let stats_timer = reader.add_timer(interval);
    let tick_timer = reader.add_timer(TICK);
    let fps = encode_fps(reader.policy(), camera);
    // Declared after the reader, so dropped before it: the reader's clean-up of a finished
    // deployment must find no node of this process left.
    let out = EncodedOut::open(deployment, camera)?;
    let service = service_name(deployment.name(), cam, ServiceKind::Encoded);
    tracing::info!(
        camera = cam,
        "publishing access units on {service}: up to {} KiB each, {} queued per reader",
        out.max_bytes / 1024,
        out.capacity
    );
    let mut streamer = Streamer::new(camera, (config, choice), (out, service), fps, interval);
    let mut overlay = streamer.config.overlay.then(|| Overlay::new(camera));
    if overlay.is_some() {
        tracing::info!(camera = cam, "overlay on: results are drawn into the stream");
    }
    streamer.maintain();
    loop {
        match reader.next_event()? {
            Event::Frame(frame) => streamer.on_frame(frame, &reader, &mut overlay),
            Event::Timer(t) if t == tick_timer => {
                streamer.publish_units();
                streamer.maintain();
                streamer.update_figures(&reader);
            }
            Event::Timer(t) if t == stats_timer => {
                streamer.window.close(streamer.report.encoded);
                streamer.emit(&reader, options.json);
            }
            Event::Timer(_) | Event::Command(_) | Event::Gap(_) => {}
            Event::Stop(reason) => {
                tracing::info!(camera = cam, ?reason, "stopping");
                break;
            }
        }
    }
    streamer.finish(&reader, options.json);
    let report = streamer.report.clone();
    drop(streamer);
    drop(reader);
    Ok(report)
}

/// The rate the encoder is told: the reader's `max-fps` (at most the camera's), else the
/// camera's rate, else 30; a whole number of at least 1.
fn encode_fps(policy: framebus_common::policy::ReaderPolicy, camera: &CameraConfig) -> u32 {
    match policy {
        framebus_common::policy::ReaderPolicy::MaxFps(max) => max.min(camera.fps.max(1.0)),
        _ if camera.fps > 0.0 => camera.fps,
        _ => 30.0,
    }
    .round()
    .max(1.0) as u32
}

impl Streamer {
    /// A streamer of `camera` before its first encoder run: the chosen encoder, its output
    /// service, the rate the encoder is told and the statistics interval.
    fn new(
        camera: &CameraConfig,
        (config, choice): (StreamerConfig, Choice),
        (out, service): (EncodedOut, String),
        fps: u32,
        interval: Duration,
    ) -> Streamer {
        Streamer {
            report: StreamerReport {
                camera: camera.name.clone(),
                encoder: choice.encoder.label(),
                service,
                state: "starting".into(),
                overlay: config.overlay,
                ..StreamerReport::default()
            },
            layout: RawLayout { format: camera.format(), width: camera.width, height: camera.height },
            encode_layout: if config.overlay {
                Overlay::encoded_layout(camera.width, camera.height)
            } else {
                RawLayout { format: camera.format(), width: camera.width, height: camera.height }
            },
            fps,
            config,
            choice,
            link: Link::Down { retry_at: Instant::now() },
            backoff: FIRST_BACKOFF,
            runs: 0,
            sent_before: 0,
            window: StatusWindow::new(interval),
            out,
            unit_rate: StatusWindow::new(RATE_WINDOW),
            byte_rate: StatusWindow::new(RATE_WINDOW),
        }
    }

    /// One frame from the camera: the results that arrived go to the overlay (never waiting
    /// for one); when wanted, the frame is copied once into the streamer's own buffer
    /// (converted to BGR and drawn on with the overlay) and the sample released before
    /// drawing and encoding; then whatever the encoder has ready is published.
    fn on_frame(&mut self, frame: framebus::Frame<'_>, reader: &Camera, overlay: &mut Option<Overlay>) {
        let header = *frame.header();
        if let Some(overlay) = overlay.as_mut() {
            match reader.results() {
                Ok(outcomes) => overlay.add(outcomes),
                Err(e) => tracing::debug!(camera = self.report.camera, "results: {e}"),
            }
        }
        if self.wants(&header) {
            let len = (header.payload_len as usize).min(frame.bytes().len());
            let bytes = &frame.bytes()[..len];
            let buffer = match overlay.as_mut() {
                Some(overlay) => {
                    let converted = overlay.convert(&header, bytes);
                    drop(frame);
                    converted.and_then(|()| overlay.render(&header))
                }
                None => {
                    let buffer = publisher::frame_buffer(&self.layout, bytes);
                    drop(frame);
                    buffer
                }
            };
            self.push(&header, buffer);
            if let Some(overlay) = overlay.as_ref() {
                self.report.overlaid = overlay.drawn;
            }
            // Published as soon as the encoder hands it out, not at the next frame:
            // waiting for the next frame to look cost viewers up to a frame interval
            // (+21 ms p50 at 30 fps, measured). Bounded by most of a frame interval,
            // so the loop never falls behind the camera waiting for it.
            self.publish_next_unit(Duration::from_secs_f64(0.9 / f64::from(self.fps)).min(UNIT_WAIT_MAX));
        }
        self.publish_units();
    }

    /// Publishes what is left, closes the encoder (up to 3 s) and emits the final report: the
    /// latencies since the last one, and no rate (as before the window).
    fn finish(&mut self, reader: &Camera, json: bool) {
        self.publish_units();
        if let Link::Up { publisher, .. } = std::mem::replace(&mut self.link, Link::Down { retry_at: Instant::now() }) {
            self.sent_before += publisher.sent();
            self.out.dropped_before += publisher.units_dropped();
            publisher.close_and_wait(Duration::from_secs(3));
        }
        self.report.sent = self.sent_before;
        self.window.close(self.report.encoded);
        self.window.fps = 0.0;
        self.emit(reader, json);
    }

    /// Whether this frame goes to the encoder (counts it, and counts a skip when not).
    fn wants(&mut self, header: &framebus_common::FrameHeader) -> bool {
        self.report.frames += 1;
        let same_layout = header.format() == Some(self.layout.format)
            && header.width == self.layout.width
            && header.height == self.layout.height;
        let ready = matches!(&self.link, Link::Up { publisher, .. } if publisher.ready());
        if !(same_layout && ready) {
            self.report.skipped += 1;
        }
        same_layout && ready
    }

    /// Hands a copied frame to the encoder.
    fn push(&mut self, header: &framebus_common::FrameHeader, buffer: anyhow::Result<gst::Buffer>) {
        let Link::Up { publisher, .. } = &mut self.link else {
            self.report.skipped += 1;
            return;
        };
        match buffer
            .map_err(|e| e.to_string())
            .and_then(|b| publisher.push(b, (header.frame_id, header.capture_mono_ns, header.capture_realtime_ns)))
        {
            Ok(()) => {
                self.report.encoded += 1;
                self.window.record_ns(clock::monotonic_ns().saturating_sub(header.capture_mono_ns));
            }
            Err(e) => {
                self.report.skipped += 1;
                tracing::debug!("frame {} not encoded: {e}", header.frame_id);
            }
        }
    }

    /// Publishes the access units that left the encoder.
    /// Waits up to `timeout` for the encoder's next access unit and publishes it.
    fn publish_next_unit(&mut self, timeout: Duration) {
        let Link::Up { publisher, .. } = &self.link else { return };
        if let Some(unit) = publisher.wait_unit(timeout) {
            publish_counted(&mut self.out, &mut self.report, &unit);
        }
    }

    fn publish_units(&mut self) {
        let Link::Up { publisher, .. } = &self.link else { return };
        for unit in publisher.take_units() {
            publish_counted(&mut self.out, &mut self.report, &unit);
        }
    }

    /// Looks after the encoder run: health, stalls, restarts with backoff.
    fn maintain(&mut self) {
        let now = Instant::now();
        match &mut self.link {
            Link::Up { publisher, since } => match publisher.health() {
                Health::Streaming => {
                    self.report.state = "streaming".into();
                    if since.elapsed() > STABLE_AFTER {
                        self.backoff = FIRST_BACKOFF;
                    }
                }
                Health::Connecting => {}
                Health::Failed(why) => {
                    let delay = self.backoff;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    tracing::warn!(camera = self.report.camera, "encoder failed: {why}; restarting in {delay:?}");
                    self.report.last_error = Some(why);
                    self.report.state = "restarting".into();
                    if let Link::Up { publisher, .. } =
                        std::mem::replace(&mut self.link, Link::Down { retry_at: now + delay })
                    {
                        self.sent_before += publisher.sent();
                        self.out.dropped_before += publisher.units_dropped();
                        publisher.close();
                    }
                }
            },
            Link::Down { retry_at } if *retry_at <= now => {
                let tap = self.out.tap();
                match Publisher::start(&self.choice.encoder, &self.config, self.encode_layout, self.fps, Some(tap)) {
                    Ok(publisher) => {
                        self.runs += 1;
                        self.report.restarts = self.runs.saturating_sub(1);
                        tracing::info!(camera = self.report.camera, run = tap.run, "encoder started");
                        self.link = Link::Up { publisher, since: now };
                    }
                    Err(e) => {
                        let delay = self.backoff;
                        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                        tracing::warn!(
                            camera = self.report.camera,
                            "cannot start the encoder: {e:#}; retrying in {delay:?}"
                        );
                        self.report.last_error = Some(format!("{e:#}"));
                        self.link = Link::Down { retry_at: now + delay };
                    }
                }
            }
            Link::Down { .. } => {}
        }
    }

    /// The figures `ctl status` and the metrics read (`figures` requests), brought up to date:
    /// the rates over the last complete second, the counters as they are.
    fn update_figures(&mut self, reader: &Camera) {
        let r = &self.report;
        self.unit_rate.roll(r.units_published);
        self.byte_rate.roll(r.bytes_published);
        let tap_dropped = match &self.link {
            Link::Up { publisher, .. } => publisher.units_dropped(),
            Link::Down { .. } => 0,
        };
        let figures = StreamerFigures {
            encoder: r.encoder.clone(),
            state: r.state.clone(),
            bitrate_kbps: self.config.bitrate_kbps,
            measured_kbps: (self.byte_rate.fps * 8.0 / 1000.0 * 10.0).round() / 10.0,
            fps: (self.unit_rate.fps * 10.0).round() / 10.0,
            bytes: r.bytes_published,
            key_frames: r.key_frames,
            skipped: r.skipped,
            access_units: r.units_published,
            access_units_dropped: self.out.publish_failed + self.out.dropped_before + tap_dropped,
            restarts: r.restarts,
        };
        reader.report(|p: &mut ProcessReport| p.figures = Some(Figures::Streamer(figures)));
    }

    fn emit(&mut self, reader: &Camera, json: bool) {
        let (current, tap_dropped) = match &self.link {
            Link::Up { publisher, .. } => (publisher.sent(), publisher.units_dropped()),
            Link::Down { .. } => (0, 0),
        };
        self.report.sent = self.sent_before + current;
        self.report.units_dropped = self.out.publish_failed + self.out.dropped_before + tap_dropped;
        self.report.fps = (self.window.fps * 10.0).round() / 10.0;
        self.report.latency_p50_us = self.window.p50_us;
        self.report.latency_p99_us = self.window.p99_us;
        let r = &self.report;
        if json {
            match serde_json::to_string(r) {
                Ok(text) => println!("{text}"),
                Err(e) => tracing::warn!("could not encode the report: {e}"),
            }
        }
        tracing::info!(
            camera = r.camera,
            "{} fps={:.1} encoded={} sent={} published={} skipped={} restarts={}",
            r.state,
            r.fps,
            r.encoded,
            r.sent,
            r.units_published,
            r.skipped,
            r.restarts
        );
        let streaming = r.state == "streaming";
        let message = if streaming {
            format!(
                "streaming on {} ({}, {} kbit/s): {} sent, {} skipped, {} restarts; {} published, {} dropped{}",
                r.service,
                r.encoder,
                self.config.bitrate_kbps,
                r.sent,
                r.skipped,
                r.restarts,
                r.units_published,
                r.units_dropped,
                if r.overlay { format!("; overlay: {} frames with results", r.overlaid) } else { String::new() }
            )
        } else {
            format!(
                "{} {} ({}): {} skipped, {} restarts{}",
                r.state,
                r.service,
                r.encoder,
                r.skipped,
                r.restarts,
                r.last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default()
            )
        };
        let latency = (r.latency_p50_us, r.latency_p99_us);
        reader.report(|p: &mut ProcessReport| {
            p.message = message;
            p.state = (!streaming).then_some(ProcessState::Degraded);
            p.latency_us = Some(latency);
        });
    }
}

/// `streamer --probe`: prints what the machine offers and the encoder `camera`'s config gets.
pub fn print_probe(camera: &CameraConfig) -> anyhow::Result<()> {
    gst::init().context("initialising GStreamer")?;
    let probe = probe_encoders();
    match &probe.v4l2 {
        Some(e) => println!("v4l2: {} ({} / {}), inputs {}", e.device.display(), e.driver, e.card, e.inputs.join(",")),
        None => println!(
            "v4l2: none ({})",
            if probe.v4l2_notes.is_empty() { "no /dev/video*".into() } else { probe.v4l2_notes.join("; ") }
        ),
    }
    match &probe.vaapi {
        Ok(va) => println!("vaapi: {} on {}", va.element, va.render_node.display()),
        Err(why) => println!("vaapi: none ({why})"),
    }
    let want = camera.streamer.as_ref().map(|s| s.encoder).unwrap_or(framebus_common::config::EncoderChoice::Auto);
    match encoder::choose(want, &probe) {
        Ok(choice) => println!("chosen ({}): {}: {}", want.name(), choice.encoder.label(), choice.reason),
        Err(e) => anyhow::bail!("{e}"),
    }
    Ok(())
}

/// Publishes one access unit, counting it as published or failed.
fn publish_counted(out: &mut EncodedOut, report: &mut StreamerReport, unit: &EncodedUnit) {
    if out.publish(unit) {
        report.units_published += 1;
        report.bytes_published += unit.data.len() as u64;
        if unit.header.is_key_frame() {
            report.key_frames += 1;
        }
    } else {
        out.publish_failed += 1;
    }
}
