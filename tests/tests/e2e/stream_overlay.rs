//! Overlays in the stream (issue 20 item 3): with `[camera.streamer] overlay = true` a box that
//! a producer publishes is drawn into the H.264 that RTSP viewers decode (pixels on the box's
//! edge are the producer's colour, the inside of the box and a spot outside it the scene's
//! background); with the overlay off (another camera of the same deployment, same results) the
//! stream has no box; the frames in shared memory are never drawn on.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use framebus_common::results::Detection;
use framebus_common::scene::background_rgb;
use framebus_e2e::{process_status, TestDeployment, DEADLINE};

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;
/// The box the test publishes: x, y, w, h in frame pixels (edges off the scene's grid lines).
const BOX: (u32, u32, u32, u32) = (50, 50, 100, 100);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A scene camera without objects (a still, known background) with a streamer.
fn camera(name: &str, overlay: bool) -> String {
    format!(
        "[[camera]]\nname = \"{name}\"\nwidth = {WIDTH}\nheight = {HEIGHT}\nfps = 30\npixel-format = \"BGR3\"\n\n\
         [camera.source]\nkind = \"scene\"\nobject = []\n\n\
         [camera.streamer]\nbitrate-kbps = 2000\ngop = 15\nstats-interval-secs = 0.5\noverlay = {overlay}\n\n"
    )
}

/// Publishes the test's box about every frame of `camera` as producer `detector` until `stop`;
/// checks on the way that the frame in shared memory has no box drawn into it. Returns the
/// results published and the shared frames whose box edge was not the background.
fn publish_boxes(config: std::path::PathBuf, camera: &'static str, stop: Arc<AtomicBool>) -> (u64, u64) {
    let reader = framebus::Camera::builder(&config, camera)
        .and_then(|b| b.role("detector"))
        .and_then(|b| b.open())
        .expect("open the camera as `detector`");
    let (x, y, w, h) = BOX;
    let detection =
        Detection { x: x as f32, y: y as f32, w: w as f32, h: h as f32, label: "person".into(), score: 0.9 };
    let (mut published, mut touched) = (0, 0);
    let until = Instant::now() + DEADLINE * 4;
    while !stop.load(Ordering::Relaxed) {
        assert!(Instant::now() < until, "{camera}: the publisher ran too long");
        let Some(frame) = reader.frames().next() else { break };
        let frame = frame.expect("frame");
        let header = *frame.header();
        let bytes = frame.bytes();
        let (ex, ey) = (x + w / 2, y + h);
        let at = ((ey * WIDTH + ex) * 3) as usize;
        let rgb = background_rgb(ex, ey, WIDTH, HEIGHT);
        if bytes.get(at..at + 3) != Some(&[rgb[2], rgb[1], rgb[0]][..]) {
            touched += 1;
        }
        drop(frame);
        reader.publish_result(&header, Some(0.9), std::slice::from_ref(&detection), None).expect("publish");
        published += 1;
    }
    (published, touched)
}

/// `n` frames of `url` decoded by ffmpeg as BGR.
fn decoded(url: &str, n: usize) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-rtsp_transport", "tcp", "-i", url, "-frames:v", &n.to_string()])
        .args(["-f", "rawvideo", "-pix_fmt", "bgr24", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("ffmpeg is installed (scripts/bootstrap.sh)");
    assert!(out.status.success(), "ffmpeg {url}: {}", String::from_utf8_lossy(&out.stderr));
    let frame = (WIDTH * HEIGHT * 3) as usize;
    assert_eq!(out.stdout.len(), frame * n, "ffmpeg decoded {} bytes", out.stdout.len());
    out.stdout.chunks_exact(frame).map(<[u8]>::to_vec).collect()
}

/// Sum over B, G, R of |decoded − background| averaged over the 3×3 pixels around (x, y).
fn off_background(frame: &[u8], x: u32, y: u32) -> f64 {
    let mut total = 0.0;
    for py in y - 1..=y + 1 {
        for px in x - 1..=x + 1 {
            let at = ((py * WIDTH + px) * 3) as usize;
            let rgb = background_rgb(px, py, WIDTH, HEIGHT);
            for (c, want) in [rgb[2], rgb[1], rgb[0]].into_iter().enumerate() {
                total += (f64::from(frame[at + c]) - f64::from(want)).abs();
            }
        }
    }
    total / 9.0
}

fn overlaid(status: &serde_json::Value, camera: &str) -> u64 {
    let message = process_status(status, camera, "streamer")["message"].as_str().unwrap_or_default();
    message
        .split_once("overlay: ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A published box appears in the decoded RTSP stream of the camera with `overlay = true` (on
/// its edge, not inside it nor outside it) and not in the stream of the camera without; the
/// shared frames stay as capture wrote them.
#[test]
fn a_published_box_is_drawn_into_the_stream_only_with_overlay_on() {
    let (rtsp, http) = (free_port(), free_port());
    let d = TestDeployment::new(&format!(
        "[media-server]\nrtsp = \"127.0.0.1:{rtsp}\"\nhttp = \"127.0.0.1:{http}\"\n\n{}{}",
        camera("cam0", true),
        camera("cam1", false)
    ));
    let mut up = d.spawn("ctl", &["up"]);
    let streaming = |s: &serde_json::Value, cam: &str| {
        process_status(s, cam, "streamer")["message"].as_str().is_some_and(|m| m.starts_with("streaming"))
    };
    let status = d.wait_status(|s| streaming(s, "cam0") && streaming(s, "cam1"));
    let message = process_status(&status, "cam1", "streamer")["message"].as_str().unwrap_or_default().to_string();
    assert!(!message.contains("overlay"), "cam1 has no overlay: {message}");

    let stop = Arc::new(AtomicBool::new(false));
    let publishers: Vec<_> = ["cam0", "cam1"]
        .into_iter()
        .map(|cam| {
            let (config, stop) = (d.config.clone(), Arc::clone(&stop));
            std::thread::spawn(move || publish_boxes(config, cam, stop))
        })
        .collect();
    d.wait_status(|s| overlaid(s, "cam0") >= 30);

    let (x, y, w, h) = BOX;
    let edge = (x + w / 2, y + h);
    let inside = (x + w / 2, y + h / 2);
    let outside = (250, 200);
    let on = decoded(&format!("rtsp://127.0.0.1:{rtsp}/cam0"), 10);
    let off = decoded(&format!("rtsp://127.0.0.1:{rtsp}/cam1"), 10);
    stop.store(true, Ordering::Relaxed);
    let counts: Vec<(u64, u64)> = publishers.into_iter().map(|t| t.join().expect("publisher thread")).collect();

    let figures = |frames: &[Vec<u8>], (px, py): (u32, u32)| -> Vec<u32> {
        frames.iter().map(|f| off_background(f, px, py).round() as u32).collect()
    };
    let (on_edge, on_inside, on_outside) = (figures(&on, edge), figures(&on, inside), figures(&on, outside));
    let (off_edge, off_outside) = (figures(&off, edge), figures(&off, outside));
    let report = format!(
        "overlay on: edge {on_edge:?} inside {on_inside:?} outside {on_outside:?}; off: edge {off_edge:?} outside {off_outside:?}"
    );
    eprintln!("{report}");
    // The box's edge is the producer's colour in (nearly) every frame; the background
    // elsewhere, within what H.264 at 2 Mbit/s changes (a few levels).
    assert!(on_edge.iter().filter(|&&v| v > 60).count() >= 9, "{report}");
    assert!(on_inside.iter().chain(&on_outside).all(|&v| v < 25), "{report}");
    assert!(off_edge.iter().chain(&off_outside).all(|&v| v < 25), "{report}");
    for (cam, (published, touched)) in ["cam0", "cam1"].iter().zip(&counts) {
        assert!(*published >= 30, "{cam}: {published} results published");
        assert_eq!(*touched, 0, "{cam}: a shared frame had the box drawn into it");
    }
    let status = d.wait_status(|_| true);
    assert!(overlaid(&status, "cam0") >= 30, "{status}");
    assert_eq!(overlaid(&status, "cam1"), 0, "{status}");

    assert_eq!(up.terminate(), Some(0), "{}", up.stderr_text());
    d.assert_no_leftovers();
}
