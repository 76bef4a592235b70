//! The media server: one process per deployment that reads each camera's H.264 stream from
//! shared memory (its streamer's encoded service, [`ingest`]) and fans it out to any number of
//! viewers: RTSP clients at `rtsp://HOST:PORT/<camera>` (gst-rtsp-server, one shared media per
//! camera) and browsers over WebRTC (WHEP at `http://HOST:PORT/<camera>/whep`, player page at
//! `/<camera>`). It never decodes or re-encodes; viewers cost the framebus processes nothing.

pub mod cli;
pub mod control;
pub mod http;
pub mod hub;
pub mod ingest;
pub mod rtsp;
pub mod webrtc;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use framebus_common::config::MediaServerConfig;
use framebus_common::ipc::DeploymentGuard;
use framebus_common::{signals, Deployment};
use gstreamer as gst;
use gstreamer::glib;

/// GStreamer elements the server needs, with the Debian package that has them.
const ELEMENTS: [(&str, &str); 7] = [
    ("appsrc", "gstreamer1.0-plugins-base"),
    ("appsink", "gstreamer1.0-plugins-base"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("rtph264pay", "gstreamer1.0-plugins-good"),
    ("capssetter", "gstreamer1.0-plugins-good"),
    ("webrtcbin", "gstreamer1.0-plugins-bad"),
    ("nicesrc", "gstreamer1.0-nice"),
];

/// Fails naming the missing elements and their packages (`scripts/bootstrap.sh` installs them).
pub fn check_elements(needed: &[(&str, &str)]) -> anyhow::Result<()> {
    Ok(framebus_gstcheck::check_elements(needed)?)
}

/// Runs the media server of `deployment` until SIGINT/SIGTERM.
pub fn run(deployment: &Deployment) -> anyhow::Result<()> {
    let config: MediaServerConfig = deployment
        .media_server
        .clone()
        .with_context(|| format!("{}: no [media-server] table: nothing to serve", deployment.source_file.display()))?;
    signals::install();
    gst::init().context("initialising GStreamer")?;
    check_elements(&ELEMENTS)?;
    let cameras: Vec<String> =
        deployment.camera.iter().filter(|c| c.streamer.is_some()).map(|c| c.name.clone()).collect();
    if cameras.is_empty() {
        tracing::warn!("no camera has a [camera.streamer] table: nothing will be served here");
    }
    // Declared before the ingest nodes, so dropped after them: when this process is the
    // deployment's last, its shared files go.
    let _release = DeploymentGuard::new(deployment.name());
    let viewers_allowed = deployment.viewer_users()?;
    let access = match &viewers_allowed {
        Some(v) => framebus_httpserve::Access::users(v.users.clone()),
        None => framebus_httpserve::Access::open(),
    };
    let tls_files = deployment.tls_files()?;
    let tls = framebus_httpserve::Tls::of_deployment(deployment)?;
    let hub = Arc::new(hub::Hub::new(&cameras));
    let rtsp_addr = config.rtsp_addr();
    let http_addr = config.http_addr();
    let listener = TcpListener::bind(http_addr).with_context(|| format!("HTTP: cannot listen on {http_addr}"))?;
    let (_server, source) = rtsp::start(rtsp_addr, &hub, viewers_allowed.as_ref(), tls_files.as_ref())?;
    let main_loop = glib::MainLoop::new(None, false);
    let glib_thread = {
        let main_loop = main_loop.clone();
        std::thread::Builder::new().name("glib".into()).spawn(move || main_loop.run())?
    };
    let ingest = ingest::Ingest::start(deployment, &hub)?;
    let viewers = webrtc::Viewers::start(Arc::clone(&hub), config.webrtc_viewers, config.ice_addresses())?;
    let (web, stream) = if tls.is_some() { ("https", "rtsps") } else { ("http", "rtsp") };
    let rtsp_base = format!("{stream}://{}", MediaServerConfig::local(rtsp_addr));
    http::serve(
        listener,
        Arc::new(http::Http {
            hub: Arc::clone(&hub),
            viewers: Arc::clone(&viewers),
            rtsp_base: rtsp_base.clone(),
            origins: deployment.media_server_origins(),
            listen: http_addr,
            scheme: web,
        }),
        access,
        tls,
    )?;
    let control = control::Control::start(
        deployment,
        &hub,
        web == "https",
        format!("serving {rtsp_base}/<camera> and {web}://{}/<camera>", MediaServerConfig::local(http_addr)),
    )?;
    for camera in &cameras {
        tracing::info!(
            camera,
            "serving {rtsp_base}/{camera} and {web}://{}/{camera}",
            MediaServerConfig::local(http_addr)
        );
    }
    tracing::info!(
        rtsp = %rtsp_addr,
        http = %http_addr,
        auth = if viewers_allowed.is_some() { "users" } else { "none" },
        tls = web == "https",
        "media server ready"
    );

    let mut last_report = Instant::now();
    while !signals::termination_requested() {
        std::thread::sleep(Duration::from_millis(50));
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            for status in hub.status() {
                tracing::info!(
                    camera = status.camera,
                    "publishing={} frames={} rtsp_media={} webrtc_viewers={} skipped={}",
                    status.publishing,
                    status.frames_in,
                    status.rtsp_media,
                    status.webrtc_viewers,
                    status.skipped
                );
            }
        }
    }
    tracing::info!("stopping");
    control.stop();
    ingest.join();
    viewers.close_all();
    source.remove();
    main_loop.quit();
    let _ = glib_thread.join();
    Ok(())
}
