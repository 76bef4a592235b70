//! Preview (issue 4): snapshot, MJPEG stream (ffmpeg as the client, two viewers at once), the
//! page rendered by headless Chromium, downscaling with overlay, and no work while off.

use std::path::Path;
use std::process::Command;

use framebus_common::pattern::read_bgr_stamps;
use framebus_e2e::{cpu_time, http_get, Proc, TestDeployment, DEADLINE};
use framebus_vision::opencv::core::{Mat, Vector};
use framebus_vision::opencv::imgcodecs;
use framebus_vision::opencv::prelude::*;

/// A synthetic camera with a preview table (`extra` goes into `[camera.preview]`), port 0.
fn camera(width: u32, height: u32, fps: u32, extra: &str) -> String {
    format!(
        "[[camera]]\nname = \"cam0\"\nwidth = {width}\nheight = {height}\nfps = {fps}\n\n[camera.source]\nkind = \"synthetic\"\n\n[camera.preview]\nlisten = \"127.0.0.1:0\"\nstats-interval-secs = 0.25\n{extra}"
    )
}

/// Starts the preview and returns it with the URL it reports.
fn start_preview(d: &TestDeployment, args: &[&str]) -> (Proc, String) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let mut preview = d.spawn("preview", &all);
    let listening = preview.wait_json(DEADLINE, |v| v["event"] == "listening");
    let url = listening["url"].as_str().expect("url").to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    (preview, url)
}

fn decode(bytes: &[u8]) -> Mat {
    let buf = Vector::<u8>::from_slice(bytes);
    let image = imgcodecs::imdecode(&buf, imgcodecs::IMREAD_COLOR).expect("imdecode");
    assert!(!image.empty(), "not a decodable image ({} bytes)", bytes.len());
    image
}

fn read(path: &Path) -> Mat {
    let image = imgcodecs::imread(path.to_str().expect("utf-8"), imgcodecs::IMREAD_COLOR).expect("imread");
    assert!(!image.empty(), "{} does not decode", path.display());
    image
}

/// The frame id stamped in a full-size preview (top and bottom stamps agree).
fn stamp(image: &Mat) -> u64 {
    let (w, h) = (image.cols() as usize, image.rows() as usize);
    let (top, bottom) = read_bgr_stamps(w, h, image.data_bytes().expect("continuous"));
    assert_eq!(top, bottom, "torn or unreadable stamp");
    assert!(top > 0, "no frame id stamped");
    top
}

/// Share of near-black pixels in rows `y0..y1`, columns `x0..x1`: the overlay backdrop is
/// black, the test pattern there is bright colour bars.
fn dark_share(image: &Mat, (x0, y0, x1, y1): (usize, usize, usize, usize)) -> f64 {
    let data = image.data_bytes().expect("continuous");
    let w = image.cols() as usize;
    let mut dark = 0;
    for y in y0..y1 {
        for x in x0..x1 {
            let px = &data[(y * w + x) * 3..(y * w + x) * 3 + 3];
            if px.iter().all(|&c| c < 40) {
                dark += 1;
            }
        }
    }
    dark as f64 / ((x1 - x0) * (y1 - y0)) as f64
}

/// `/snapshot.jpg` is a real, whole frame (both stamps agree) with the overlay; `/stream.mjpg`
/// plays in ffmpeg for two viewers at once, each getting rising frame ids; `/` renders in
/// headless Chromium and shows the live image.
#[test]
fn snapshot_stream_and_page_show_live_frames() {
    let d = TestDeployment::new(&camera(640, 480, 30, "fps = 10\n"));
    let mut capture = d.spawn("capture", &[]);
    let (mut preview, url) = start_preview(&d, &[]);
    preview.wait_json(DEADLINE, |v| v["previews"].as_u64() >= Some(1));

    let (status, head, body) = http_get(&url, "/snapshot.jpg");
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("Content-Type: image/jpeg"), "{head}");
    let snapshot = decode(&body);
    assert_eq!((snapshot.cols(), snapshot.rows()), (640, 480));
    stamp(&snapshot);
    assert!(dark_share(&snapshot, (0, 22, 120, 60)) > 0.5, "no overlay backdrop at the top left");

    // Two ffmpeg viewers at once, 5 frames each.
    let viewers: Vec<_> = (0..2)
        .map(|i| {
            let dir = d.dir.path().join(format!("viewer{i}"));
            std::fs::create_dir_all(&dir).expect("viewer dir");
            let child = Command::new("ffmpeg")
                .args(["-v", "error", "-nostdin", "-rw_timeout", "20000000", "-i"])
                .arg(format!("{url}stream.mjpg"))
                .args(["-frames:v", "5", "-f", "image2"])
                .arg(dir.join("f%02d.jpg"))
                .spawn()
                .expect("ffmpeg is installed (scripts/bootstrap.sh)");
            (dir, child)
        })
        .collect();
    for (dir, mut child) in viewers {
        let status = child.wait().expect("ffmpeg");
        assert!(status.success(), "ffmpeg could not read the stream: {status}");
        let ids: Vec<u64> = (1..=5).map(|n| stamp(&read(&dir.join(format!("f{n:02}.jpg"))))).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "stream frame ids do not rise: {ids:?}");
    }

    let (status, _, page) = http_get(&url, "/");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&page).contains("/stream.mjpg"));
    let shot = d.dir.path().join("page.png");
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        .args(["--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=800,700"])
        .arg(format!("--user-data-dir={}", d.dir.path().join("chromium").display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .expect("chromium is installed (scripts/bootstrap.sh)");
    assert!(shot.is_file(), "no screenshot: {}", String::from_utf8_lossy(&out.stderr));
    let png = read(&shot);
    // The page is dark grey; the test pattern's saturated colour bars only appear in the image.
    let data = png.data_bytes().expect("continuous");
    let colourful =
        data.chunks_exact(3).filter(|px| px.iter().max().unwrap_or(&0) - px.iter().min().unwrap_or(&0) > 120).count();
    assert!(colourful > 20_000, "the page shows no live image ({colourful} colourful pixels)");

    assert_eq!(preview.terminate(), Some(0), "{}", preview.stderr_text());
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// A large frame is downscaled to fit max-width × max-height (aspect kept) at the configured
/// preview rate, with the overlay drawn; every pixel format converts.
#[test]
fn previews_are_downscaled_with_an_overlay_in_every_format() {
    for format in ["BGR3", "YUYV", "NV12", "GREY", "RGB3"] {
        let body = camera(1280, 720, 60, "max-width = 320\nmax-height = 240\nfps = 5\n")
            .replace("fps = 60\n", &format!("fps = 60\npixel-format = \"{format}\"\n"));
        let d = TestDeployment::new(&body);
        let mut capture = d.spawn("capture", &[]);
        let (mut preview, url) = start_preview(&d, &[]);
        let report = preview.wait_json(DEADLINE, |v| v["previews"].as_u64() >= Some(3));
        assert_eq!(report["errors"], 0, "{format}: {report}");
        let (status, _, body) = http_get(&url, "/snapshot.jpg");
        assert_eq!(status, 200);
        let snapshot = decode(&body);
        assert_eq!((snapshot.cols(), snapshot.rows()), (320, 180), "{format}");
        assert!(dark_share(&snapshot, (0, 22, 60, 40)) > 0.4, "{format}: no overlay backdrop");
        let (status, _, body) = http_get(&url, "/status.json");
        assert_eq!(status, 200);
        let status: serde_json::Value = serde_json::from_slice(&body).expect("status JSON");
        assert_eq!(status["format"], format, "{status}");
        assert_eq!(preview.terminate(), Some(0));
        assert_eq!(capture.terminate(), Some(0));
        d.assert_no_leftovers();
    }
}

/// Preview off (`--enabled false`): frames keep arriving and are counted, but nothing is
/// decoded, scaled or encoded — the process's CPU time stays near zero — and `/snapshot.jpg`
/// says so.
#[test]
fn preview_off_does_no_work_while_frames_flow() {
    let d = TestDeployment::new(&camera(1280, 720, 60, ""));
    let mut capture = d.spawn("capture", &[]);
    let (mut preview, url) = start_preview(&d, &["--enabled", "false"]);
    let first = preview.wait_json(DEADLINE, |v| v["frames"].as_u64() >= Some(30));
    let pid = preview.child.id();
    let (cpu0, t0, frames0) = (cpu_time(pid), std::time::Instant::now(), first["frames"].as_u64().expect("frames"));
    let last = preview.wait_json(DEADLINE, |v| v["frames"].as_u64() >= Some(frames0 + 180));
    let (cpu, wall) = (cpu_time(pid) - cpu0, t0.elapsed());
    assert_eq!(last["previews"], 0, "{last}");
    assert_eq!(last["state"], "off", "{last}");
    let share = cpu.as_secs_f64() / wall.as_secs_f64();
    eprintln!("preview off: {cpu:?} CPU in {wall:?} ({:.2}% of a core)", share * 100.0);
    assert!(share < 0.05, "preview off used {cpu:?} CPU in {wall:?} ({:.1}% of a core)", share * 100.0);
    let (status, _, body) = http_get(&url, "/snapshot.jpg");
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert_eq!(preview.terminate(), Some(0));
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}
