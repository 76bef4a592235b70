//! The preview process: a reader of one camera on the reader loop (crate `framebus`, newest
//! frame only, one sample held at a time) that, while on, turns the newest frame into a
//! downscaled JPEG with an overlay at the configured rate, served over HTTP (`/`,
//! `/stream.mjpg`, `/snapshot.jpg`, `/status.json`) and optionally shown in a window. While
//! off it only counts frames: no decode, resize or encode.
//!
//! The on/off state lives in [`Preview`] and changes only through [`Preview::set_enabled`],
//! which the loop calls for `ctl preview on|off`; status carries [`Preview::report`].
//! The initial state is the camera's recorded preview flag, else `[camera.preview] enabled`;
//! `--enabled` on the command line is recorded like a command.

pub mod cli;
pub mod events;
pub mod http;
pub mod render;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use framebus::{Camera, Command, Event, ProcessReport, ReaderStats};
use framebus_common::config::PreviewConfig;
use framebus_common::stats::StatusWindow;
use framebus_common::{clock, CameraConfig, Deployment, FrameHeader, ProcessRole};
use framebus_vision::opencv::core::Vector;
use framebus_vision::opencv::highgui;

use serde::Serialize;

use crate::http::Hub;
use crate::render::{OverlayInfo, Renderer};
use framebus_vision::overlay::{ResultBoard, Shown};

/// Options of one preview run beyond the config.
#[derive(Debug, Clone, Default)]
pub struct PreviewOptions {
    /// Preview on or off, recorded like `ctl preview on|off`; `None` resumes the camera's
    /// recorded flag, else takes `enabled` from the config.
    pub enabled: Option<bool>,
    /// Listen address; `None` takes `listen` from the config.
    pub listen: Option<SocketAddr>,
    /// Also show the preview in an OpenCV window (needs a display).
    pub window: bool,
    /// Print every statistics report as one JSON line on stdout (and the URL at start-up).
    pub json: bool,
}

/// What the preview reports: served at `/status.json`, printed with `--json`.
#[derive(Debug, Clone, Default)]
pub struct PreviewStatus {
    /// Whether preview images are being generated.
    pub enabled: bool,
    /// Frames received from the camera.
    pub frames: u64,
    /// Frames not taken: the policy kept only the newest (or at most `max-fps`).
    pub skipped: u64,
    /// Preview images generated.
    pub previews: u64,
    /// Frames that could not be converted, composed or encoded.
    pub errors: u64,
    /// The last such error.
    pub last_error: Option<String>,
    /// Camera frames per second over the last interval.
    pub fps: f64,
    /// Preview images per second over the last interval.
    pub preview_fps: f64,
    /// Id of the last frame received.
    pub last_frame_id: u64,
    /// Size and format of the last frame received.
    pub frame_size: (u32, u32),
    /// Pixel format of the last frame received.
    pub format: &'static str,
    /// Capture → preview-image-ready latency, median over the last interval, microseconds.
    pub latency_p50_us: Option<u64>,
    /// Same, 99th percentile.
    pub latency_p99_us: Option<u64>,
    /// HTTP viewers connected.
    pub viewers: usize,
}

/// One camera's preview: state, renderer and statistics. Driven by [`run`]'s loop.
pub struct Preview {
    camera: String,
    config: PreviewConfig,
    url: String,
    hub: Arc<Hub>,
    renderer: Renderer,
    jpeg: Vector<u8>,
    period: Duration,
    next_due: Instant,
    window: Option<String>,
    status: PreviewStatus,
    board: ResultBoard,
    shown: Vec<Shown>,
    /// Camera frames per second over the statistics interval (closed by [`Preview::tick`]).
    frames_window: StatusWindow,
    /// Preview images per second and capture → preview latency over the same interval.
    previews_window: StatusWindow,
}

impl Preview {
    /// A preview of `camera`, publishing to `hub`, initially on or off.
    pub fn new(camera: &str, config: PreviewConfig, url: String, hub: Arc<Hub>, enabled: bool) -> Preview {
        let period = Duration::from_secs_f64(1.0 / config.fps);
        let mut preview = Preview {
            camera: camera.to_string(),
            renderer: Renderer::new(config.jpeg_quality),
            config,
            url,
            hub,
            jpeg: Vector::new(),
            period,
            next_due: Instant::now(),
            window: None,
            status: PreviewStatus { format: "-", ..PreviewStatus::default() },
            board: ResultBoard::default(),
            shown: Vec::new(),
            // Closed by `tick` on the statistics timer, never by their own period.
            frames_window: StatusWindow::new(Duration::MAX),
            previews_window: StatusWindow::new(Duration::MAX),
        };
        preview.set_enabled(enabled);
        preview
    }

    /// Turns image generation on or off (what a control service calls for "preview on/off").
    pub fn set_enabled(&mut self, on: bool) {
        if on != self.status.enabled {
            tracing::info!(camera = self.camera, "preview {}", if on { "on" } else { "off" });
        }
        self.status.enabled = on;
        self.next_due = Instant::now();
        self.hub.set_enabled(on);
        self.hub.set_status(self.status_json());
    }

    /// Whether images are generated.
    pub fn enabled(&self) -> bool {
        self.status.enabled
    }

    /// The current status (what a control service returns for "status").
    pub fn status(&self) -> PreviewStatus {
        PreviewStatus { viewers: self.hub.viewers(), ..self.status.clone() }
    }

    /// The URL the page is served at.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What the control reply adds to the reader figures: the flag as acted on, image-ready
    /// latency, and a one-line summary with the URL.
    pub fn report(&self) -> ProcessReport {
        let s = self.status();
        let mut message = if s.enabled {
            format!("on: {} previews at {:.1}/s, {} viewer(s), {}", s.previews, s.preview_fps, s.viewers, self.url)
        } else {
            format!("off: no images (snapshot answers 503), {}", self.url)
        };
        if let Some(error) = &s.last_error {
            message.push_str(&format!("; {} error(s), last: {error}", s.errors));
        }
        ProcessReport {
            message,
            preview: Some(s.enabled),
            latency_us: s.enabled.then_some((s.latency_p50_us, s.latency_p99_us)),
            viewers: s.viewers as u32,
            ..ProcessReport::default()
        }
    }

    fn show_in_window(&mut self) {
        let name = format!("framebus {}", self.camera);
        match highgui::named_window(&name, highgui::WINDOW_AUTOSIZE) {
            Ok(()) => self.window = Some(name),
            Err(e) => tracing::warn!(camera = self.camera, "cannot open a window: {e}; the preview is at {}", self.url),
        }
    }

    /// Counts a received frame; returns whether it is due for a preview image (the caller then
    /// calls [`Preview::convert`] while still holding the sample, and [`Preview::render`] after
    /// releasing it).
    pub fn on_frame(&mut self, header: &FrameHeader) -> bool {
        let s = &mut self.status;
        s.frames += 1;
        s.last_frame_id = header.frame_id;
        s.frame_size = (header.width, header.height);
        s.format = header.format().map_or("?", |f| f.name());
        if !s.enabled {
            return false;
        }
        let now = Instant::now();
        if now < self.next_due {
            return false;
        }
        // Keep the configured rate without drifting, but never try to catch up a backlog.
        self.next_due = (self.next_due + self.period).max(now);
        true
    }

    /// Converts the frame to BGR into the preview's own buffer (the only step that reads the
    /// sample).
    pub fn convert(&mut self, header: &FrameHeader, payload: &[u8]) -> bool {
        match self.renderer.convert(header, payload) {
            Ok(()) => true,
            Err(e) => {
                self.error(header, format!("converting a {} frame: {e}", self.status.format));
                false
            }
        }
    }

    /// Takes in results published on the camera (drawn on the frames they are about).
    pub fn add_results(&mut self, outcomes: Vec<framebus::Outcome>) {
        self.board.add(outcomes);
    }

    /// Downscales, draws the overlay and results, encodes and publishes the converted frame.
    pub fn render(&mut self, header: &FrameHeader) {
        let max = (self.config.max_width, self.config.max_height);
        let overlay = self.config.overlay.then(|| OverlayInfo {
            camera_fps: self.status.fps,
            preview_fps: self.status.preview_fps,
            latency_ms: clock::monotonic_ns().saturating_sub(header.capture_mono_ns) as f64 / 1e6,
        });
        if let Err(e) = self.renderer.compose(&self.camera, header, max, overlay) {
            return self.error(header, format!("composing the preview: {e}"));
        }
        self.shown =
            if self.config.results { self.board.for_frame(header, self.config.result_max_age_ms) } else { Vec::new() };
        if let Err(e) = self.renderer.draw_results(header, &self.shown, self.config.overlay) {
            return self.error(header, format!("drawing results: {e}"));
        }
        if let Some(window) = &self.window {
            if let Err(e) = highgui::imshow(window, self.renderer.image()).and_then(|()| highgui::wait_key(1).map(drop))
            {
                tracing::warn!(camera = self.camera, "window: {e}");
                self.window = None;
            }
        }
        if let Err(e) = self.renderer.encode(&mut self.jpeg) {
            return self.error(header, format!("encoding JPEG: {e}"));
        }
        self.hub.publish(header.frame_id, self.jpeg.as_slice());
        self.previews_window.record_ns(clock::monotonic_ns().saturating_sub(header.capture_mono_ns));
        self.status.previews += 1;
    }

    fn error(&mut self, header: &FrameHeader, message: String) {
        self.status.errors += 1;
        framebus_common::logging::repeated(
            tracing::Level::WARN,
            "preview.frame",
            format_args!("camera `{}`, frame {}: {message}", self.camera, header.frame_id),
        );
        self.status.last_error = Some(message);
    }

    /// Closes the statistics interval: updates rates and percentiles (and the reader figures
    /// of the library), republishes the status and returns it as one JSON line.
    pub fn tick(&mut self, figures: &ReaderStats) -> String {
        self.status.skipped = figures.skipped + figures.overwritten;
        self.frames_window.close(self.status.frames);
        self.previews_window.close(self.status.previews);
        self.status.fps = self.frames_window.fps;
        self.status.preview_fps = self.previews_window.fps;
        self.status.latency_p50_us = self.previews_window.p50_us;
        self.status.latency_p99_us = self.previews_window.p99_us;
        let json = self.status_json();
        self.hub.set_status(json.clone());
        json
    }

    fn status_json(&self) -> String {
        let s = self.status();
        let document = StatusDocument {
            camera: &self.camera,
            url: &self.url,
            enabled: s.enabled,
            state: if s.enabled { "on" } else { "off" },
            frames: s.frames,
            skipped: s.skipped,
            previews: s.previews,
            errors: s.errors,
            last_error: s.last_error.as_deref(),
            fps: (s.fps * 10.0).round() / 10.0,
            preview_fps: (s.preview_fps * 10.0).round() / 10.0,
            last_frame_id: s.last_frame_id,
            size: format!("{}x{}", s.frame_size.0, s.frame_size.1),
            format: s.format,
            latency_p50_us: s.latency_p50_us,
            latency_p99_us: s.latency_p99_us,
            viewers: s.viewers,
            results: &self.shown,
        };
        serde_json::to_string(&document).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// `/status.json` (and the `--json` lines): the preview's status.
#[derive(Serialize)]
struct StatusDocument<'a> {
    camera: &'a str,
    url: &'a str,
    enabled: bool,
    /// `on` or `off`.
    state: &'static str,
    frames: u64,
    skipped: u64,
    previews: u64,
    errors: u64,
    last_error: Option<&'a str>,
    fps: f64,
    preview_fps: f64,
    last_frame_id: u64,
    /// `<width>x<height>` of the last frame.
    size: String,
    format: &'static str,
    latency_p50_us: Option<u64>,
    latency_p99_us: Option<u64>,
    viewers: usize,
    /// The results drawn on the last image.
    results: &'a [Shown],
}

/// Whether a display is available for a highgui window (highgui aborts the process without
/// one, so this is checked before any window call).
pub fn display_available() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// Runs the preview of `camera` until SIGINT/SIGTERM; returns its final status.
pub fn run(deployment: &Deployment, camera: &CameraConfig, options: &PreviewOptions) -> anyhow::Result<PreviewStatus> {
    let cam = camera.name.as_str();
    let config = camera.preview.clone().unwrap_or_default();
    let addr = options.listen.unwrap_or_else(|| config.listen_addr());
    // `--listen` follows the config's rule: beyond loopback only with `[auth]`.
    deployment.check_exposed("camera.preview.listen (--listen)", addr)?;
    let access = framebus_httpserve::Access::of_deployment(deployment)?;
    let tls = framebus_httpserve::Tls::of_deployment(deployment)?;
    let listener = http::bind(addr).with_context(|| {
        format!("camera `{cam}`: cannot listen on {addr} (set `camera.preview.listen` or --listen; port 0 picks a free port)")
    })?;
    let local = listener.local_addr().with_context(|| format!("camera `{cam}`: reading the bound address"))?;
    let url = format!("{}://{local}/", deployment.http_scheme());
    let hub = Arc::new(Hub::default());
    let limits = http::Limits {
        max_viewers: config.max_viewers as usize,
        max_connections: config.max_connections as usize,
        request_timeout: Duration::from_secs_f64(config.request_timeout_secs),
    };
    let links = http::stream_links(deployment, camera);
    // Every preview lists the events of the whole deployment (it has the whole config).
    let events = Arc::new(events::Events::new(deployment));
    let site = http::Site { camera: cam.to_string(), links, events };
    http::serve(listener, Arc::clone(&hub), site, limits, access, tls)
        .with_context(|| format!("camera `{cam}`: starting the HTTP server"))?;
    let stats_interval = Duration::from_secs_f64(config.stats_interval_secs);

    // Precedence: --enabled (recorded like a command, so a restart without it resumes it), else
    // the camera's recorded flag, else `enabled` from the config (the control server resolves
    // those).
    let mut builder = Camera::builder_for(deployment, Some(cam))
        .role(ProcessRole::Preview.name())?
        .stats_interval(stats_interval)
        .handles_preview();
    if let Some(on) = options.enabled {
        builder = builder.record(Command::SetPreview(on));
    }
    let reader = builder.open()?;
    let mut preview = Preview::new(cam, config, url.clone(), Arc::clone(&hub), reader.flags().preview);
    reader.report(|r| *r = preview.report());
    tracing::info!(camera = cam, "preview served at {url} (stream {url}stream.mjpg, snapshot {url}snapshot.jpg)");
    if options.json {
        println!("{}", serde_json::json!({ "event": "listening", "camera": cam, "url": url }));
    }
    if options.window {
        if display_available() {
            preview.show_in_window();
        } else {
            tracing::warn!(
                camera = cam,
                "--window needs a display, but neither DISPLAY nor WAYLAND_DISPLAY is set: no window; the preview is at {url}"
            );
        }
    }

    let tick = reader.add_timer(stats_interval);
    let outcome = serve_frames(&reader, &mut preview, tick, options.json);
    hub.shut_down();
    outcome?;
    if preview.window.is_some() {
        let _ = highgui::destroy_all_windows();
    }
    let line = preview.tick(&reader.stats());
    if options.json {
        println!("{line}");
    }
    Ok(preview.status())
}

/// The preview's reader loop: newest frames while on (one image per `fps` period), commands,
/// the statistics timer; until stop.
fn serve_frames(reader: &Camera, preview: &mut Preview, tick: framebus::TimerId, json: bool) -> anyhow::Result<()> {
    loop {
        match reader.next_event()? {
            Event::Frame(frame) => {
                let header = *frame.header();
                match reader.results() {
                    Ok(outcomes) => preview.add_results(outcomes),
                    Err(e) => tracing::debug!(camera = preview.camera, "results: {e}"),
                }
                if header.is_current_layout() && preview.on_frame(&header) {
                    let converted = preview.convert(&header, frame.bytes());
                    // The sample is released before the slow part (resize, overlay, encode).
                    drop(frame);
                    if converted {
                        preview.render(&header);
                    }
                }
            }
            Event::Command(Command::SetPreview(on)) => {
                preview.set_enabled(on);
                reader.report(|r| *r = preview.report());
            }
            Event::Command(_) => {}
            Event::Timer(timer) if timer == tick => {
                let line = preview.tick(&reader.stats());
                reader.report(|r| *r = preview.report());
                if json {
                    println!("{line}");
                }
                let s = &preview.status;
                tracing::debug!(
                    camera = preview.camera,
                    "fps={:.1} preview_fps={:.1} frames={} skipped={}",
                    s.fps,
                    s.preview_fps,
                    s.frames,
                    s.skipped
                );
            }
            Event::Timer(_) | Event::Gap(_) => {}
            Event::Stop(_) => return Ok(()),
        }
    }
}
