//! V4L2 capture (issue 5) against the emulated camera of `tests/fixtures/fake-v4l2`: the real
//! `capture` binary runs with the fixture LD_PRELOADed, so it talks to a "device" that follows
//! the fixture's documented content formula, frame timing, sequence gaps and unplugging.
//! Frames are checked pixel by pixel by a reader in the test process that opens the camera's
//! frame service itself, and by the real `algo` process.
//!
//! Submodules: `planes` (multi-planar nodes, padded strides), `zero_copy` (USERPTR into shared
//! memory), `controls` (camera controls changed while capturing).

mod controls;
mod planes;
mod zero_copy;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use framebus_common::ipc::{create_named_node, open_frame_bus, DeploymentGuard};
use framebus_common::{Deployment, FrameHeader, PixelFormat};
use framebus_e2e::{bin, Proc, TestDeployment, DEADLINE};
use framebus_vision::opencv::core::{Mat, Vector};
use framebus_vision::opencv::prelude::*;
use framebus_vision::opencv::{imgcodecs, imgproc};
use framebus_vision::raw_mat;
use serde_json::Value;

/// The device path the fixture intercepts (per process, so every test can use the same one).
const DEVICE: &str = "/dev/video-fake0";

/// Builds the emulated device once per test run, next to the binaries (target/<profile>/).
fn fake_v4l2_lib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fake-v4l2/fake_v4l2.c");
        let dir = bin("capture").parent().expect("target folder").join("fake-v4l2");
        std::fs::create_dir_all(&dir).expect("create target/<profile>/fake-v4l2");
        let lib = dir.join("libfake_v4l2.so");
        // Build under a private name and rename: concurrent test runs never load a partial file.
        let partial = dir.join(format!("libfake_v4l2.{}.so", std::process::id()));
        let status = Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-o"])
            .arg(&partial)
            .arg(&source)
            .args(["-ldl", "-lpthread"])
            .status()
            .unwrap_or_else(|e| panic!("running cc to build {}: {e}", source.display()));
        assert!(status.success(), "cc failed to build {}", source.display());
        std::fs::rename(&partial, &lib).expect("install libfake_v4l2.so");
        lib
    })
}

/// A deployment with one V4L2 camera on the emulated device. `source_extra` goes into
/// `[camera.source]` (and may open sub-tables such as `[camera.source.controls]`).
fn v4l2_deployment(size: (u32, u32), fps: u32, pixel_format: &str, source_extra: &str, algo: bool) -> TestDeployment {
    let algo = if algo { "\n[camera.algo]\nqueue-depth = 1\nstats-interval-secs = 0.3\n" } else { "" };
    TestDeployment::new(&format!(
        "[[camera]]\nname = \"cam0\"\nwidth = {}\nheight = {}\nfps = {fps}\npixel-format = \"{pixel_format}\"\n\n[camera.source]\nkind = \"v4l2\"\ndevice = \"{DEVICE}\"\n{source_extra}\n{algo}",
        size.0, size.1
    ))
}

/// Starts capture on the emulated device with `FAKE_V4L2_*` settings and extra environment.
fn spawn_capture(d: &TestDeployment, env: &[(&str, &str)], args: &[&str]) -> Proc {
    let mut command = Command::new(bin("capture"));
    command
        .arg("--config")
        .arg(&d.config)
        .args(args)
        .env("LD_PRELOAD", fake_v4l2_lib())
        .env("FAKE_V4L2_DEVICE", DEVICE);
    for (key, value) in env {
        command.env(key, value);
    }
    Proc::spawn_command("capture", &mut command)
}

/// Luma of the emulated device at `(x, y)` in the frame with sequence `s`.
fn fixture_luma(x: usize, y: usize, s: u64) -> u8 {
    if y == 0 && x < 32 {
        if (s >> x) & 1 == 1 {
            255
        } else {
            0
        }
    } else {
        ((x + y) as u64 + s) as u8
    }
}

/// A raw frame exactly as the emulated device delivers it (tight rows).
fn fixture_raw(format: PixelFormat, w: usize, h: usize, s: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(format.frame_bytes(w as u32, h as u32));
    for y in 0..h {
        for x in 0..w {
            out.push(fixture_luma(x, y, s));
            if format == PixelFormat::Yuyv {
                out.push(128);
            }
        }
    }
    match format {
        PixelFormat::Nv12 | PixelFormat::Nv21 => out.resize(w * h * 3 / 2, 128),
        PixelFormat::Nv16 => out.resize(w * h * 2, 128),
        _ => {}
    }
    out
}

/// Grey value of every pixel of 8x8 block `(bx, by)` of the emulated device's MJPG frames.
fn fixture_block(bx: usize, by: usize, w: usize, s: u64) -> u8 {
    let i = by * w.div_ceil(8) + bx;
    if i < 32 {
        if (s >> i) & 1 == 1 {
            255
        } else {
            0
        }
    } else {
        ((8 * bx + 8 * by) as u64 + s) as u8
    }
}

/// Checks a BGR image (rows of `w * 3` bytes) against the MJPG block formula.
fn check_bgr_blocks(bgr: &[u8], w: usize, h: usize, s: u64) -> Result<(), String> {
    for by in 0..h.div_ceil(8) {
        for bx in 0..w.div_ceil(8) {
            let want = fixture_block(bx, by, w, s);
            let (x, y) = ((8 * bx + 3).min(w - 1), (8 * by + 3).min(h - 1));
            let px = &bgr[(y * w + x) * 3..(y * w + x) * 3 + 3];
            if px != [want, want, want] {
                return Err(format!("block ({bx},{by}) pixel ({x},{y}) is {px:?}, the device sent {want}"));
            }
        }
    }
    Ok(())
}

/// What the published frame must be, from the device's format and the frame's sequence.
fn check_frame(device: PixelFormat, header: &FrameHeader, payload: &[u8]) -> Result<(), String> {
    let published = header.format().ok_or("unknown pixel format")?;
    let (w, h, s) = (header.width as usize, header.height as usize, header.sequence);
    if header.payload_len as usize != payload.len() {
        return Err(format!("payload_len {} but the sample has {} bytes", header.payload_len, payload.len()));
    }
    if header.stride != published.stride(header.width) {
        return Err(format!("stride {} for {published} {w}x{h}", header.stride));
    }
    match (device, published) {
        (PixelFormat::Mjpg, PixelFormat::Mjpg) => {
            let jpeg = Vector::<u8>::from_slice(payload);
            let bgr = imgcodecs::imdecode(&jpeg, imgcodecs::IMREAD_COLOR).map_err(|e| e.to_string())?;
            if (bgr.cols() as usize, bgr.rows() as usize) != (w, h) {
                return Err(format!("JPEG decodes to {}x{}, header says {w}x{h}", bgr.cols(), bgr.rows()));
            }
            check_bgr_blocks(bgr.data_bytes().map_err(|e| e.to_string())?, w, h, s)
        }
        (PixelFormat::Mjpg, PixelFormat::Bgr3) => check_bgr_blocks(payload, w, h, s),
        (d, p) if d == p => {
            let want = fixture_raw(d, w, h, s);
            match payload.iter().zip(&want).position(|(a, b)| a != b) {
                None if payload.len() == want.len() => Ok(()),
                None => Err(format!("{} bytes, the device sent {}", payload.len(), want.len())),
                Some(i) => Err(format!("byte {i} is {}, the device sent {}", payload[i], want[i])),
            }
        }
        (d, PixelFormat::Bgr3) => {
            // The expected image: the device's frame through the same OpenCV conversion.
            let raw = fixture_raw(d, w, h, s);
            let view = raw_mat(d, w as u32, h as u32, d.stride(w as u32) as usize, &raw).map_err(|e| e.to_string())?;
            let code = match d {
                PixelFormat::Yuyv => imgproc::COLOR_YUV2BGR_YUYV,
                PixelFormat::Nv12 => imgproc::COLOR_YUV2BGR_NV12,
                PixelFormat::Nv21 => imgproc::COLOR_YUV2BGR_NV21,
                _ => imgproc::COLOR_GRAY2BGR,
            };
            let mut bgr = Mat::default();
            imgproc::cvt_color_def(&view, &mut bgr, code).map_err(|e| e.to_string())?;
            let want = bgr.data_bytes().map_err(|e| e.to_string())?;
            match payload.iter().zip(want).position(|(a, b)| a != b) {
                None if payload.len() == want.len() => Ok(()),
                None => Err(format!("{} bytes, expected {}", payload.len(), want.len())),
                Some(i) => Err(format!("byte {i} is {}, expected {}", payload[i], want[i])),
            }
        }
        (d, p) => Err(format!("no check for {d} published as {p}")),
    }
}

/// Subscribes to the camera's frames from the test process and checks `count` received
/// frames with `check`; returns their headers in arrival order.
fn read_frames(
    d: &TestDeployment,
    count: usize,
    mut check: impl FnMut(&FrameHeader, &[u8]) -> Result<(), String>,
) -> Vec<FrameHeader> {
    let deployment = Deployment::load(&d.config).expect("test config loads");
    let camera = deployment.camera(None).expect("one camera").clone();
    let _release = DeploymentGuard::new(&d.name);
    let node = create_named_node(&d.name, "test-reader").expect("reader node");
    let bus = open_frame_bus(&node, &deployment, &camera).expect("frame bus");
    let subscriber =
        bus.frames.subscriber_builder().buffer_size(bus.layout.max_queue_depth).create().expect("subscriber");
    let until = Instant::now() + DEADLINE;
    let mut headers = Vec::new();
    while headers.len() < count {
        assert!(Instant::now() < until, "only {} of {count} frames arrived within {DEADLINE:?}", headers.len());
        match subscriber.receive().expect("receive") {
            Some(sample) => {
                let header = *sample.user_header();
                if let Err(e) = check(&header, sample.payload()) {
                    panic!("frame {} (sequence {}): {e}; header {header:?}", header.frame_id, header.sequence);
                }
                headers.push(header);
            }
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    headers
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("`{key}` missing in {v}"))
}

/// Stops capture with SIGTERM (exit 0) and returns its `--summary` JSON line.
fn stop_with_summary(capture: &mut Proc) -> Value {
    assert_eq!(capture.terminate(), Some(0), "capture stderr:\n{}", capture.stderr_text());
    capture.wait_json(DEADLINE, |v| v["frames"].is_u64())
}

/// Runs capture to its exit and returns (exit code, stderr).
fn run_to_exit(d: &TestDeployment, env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let mut capture = spawn_capture(d, env, args);
    let code = capture.wait_exit(DEADLINE);
    (code, capture.stderr_text())
}

/// YUYV as delivered: every checked frame is byte-for-byte the device's frame (content formula,
/// sequence in the header), algo receives them in order, and the effective format and driver
/// frame rate are logged at start and reported in the summary.
#[test]
fn yuyv_frames_from_the_device_reach_readers_byte_for_byte() {
    let d = v4l2_deployment((320, 240), 30, "YUYV", "", true);
    let mut capture = spawn_capture(&d, &[], &["--summary"]);
    let line = capture.wait_stderr(DEADLINE, "effective format:");
    assert!(line.contains("device delivers YUYV 320x240 at 30.000 fps, publishing YUYV 320x240"), "{line}");
    let mut algo = d.spawn("algo", &["--json", "--max-frames", "20"]);
    let headers = read_frames(&d, 15, |h, p| check_frame(PixelFormat::Yuyv, h, p));
    for pair in headers.windows(2) {
        assert!(pair[1].frame_id > pair[0].frame_id && pair[1].sequence > pair[0].sequence, "{pair:?}");
    }
    assert!(headers
        .iter()
        .all(|h| h.capture_realtime_ns > h.capture_mono_ns && h.publish_mono_ns >= h.capture_mono_ns));
    let report = algo.wait_json(DEADLINE, |v| v["frames"].as_u64() == Some(20));
    assert_eq!(algo.wait_exit(DEADLINE), Some(0));
    assert_eq!((u(&report, "bad_header"), u(&report, "out_of_order")), (0, 0), "{report}");
    let summary = stop_with_summary(&mut capture);
    assert_eq!(summary["format"], "YUYV", "{summary}");
    assert_eq!(summary["device_format"], "YUYV", "{summary}");
    assert_eq!((u(&summary, "width"), u(&summary, "height")), (320, 240), "{summary}");
    assert_eq!(summary["source_fps"].as_f64(), Some(30.0), "{summary}");
    assert_eq!(u(&summary, "source_drops"), 0, "{summary}");
    d.assert_no_leftovers();
}

/// MJPG as delivered: each frame is published whole (sliced by `bytesused`, not the buffer
/// size) and decodes to exactly the device's image; algo decodes them too.
#[test]
fn mjpg_frames_are_published_whole_and_decode_to_the_device_image() {
    let d = v4l2_deployment((320, 240), 30, "MJPG", "", true);
    let mut capture = spawn_capture(&d, &[("FAKE_V4L2_FORMATS", "MJPG,YUYV")], &["--summary"]);
    let line = capture.wait_stderr(DEADLINE, "effective format:");
    assert!(line.contains("device delivers MJPG 320x240 at 30.000 fps, publishing MJPG 320x240"), "{line}");
    let mut algo = d.spawn("algo", &["--json", "--max-frames", "20"]);
    let headers = read_frames(&d, 15, |h, p| check_frame(PixelFormat::Mjpg, h, p));
    assert!(headers.iter().all(|h| (h.payload_len as usize) < 320 * 240 * 2), "MJPG frames are sliced by bytesused");
    let report = algo.wait_json(DEADLINE, |v| v["frames"].as_u64() == Some(20));
    assert_eq!(algo.wait_exit(DEADLINE), Some(0));
    assert_eq!((u(&report, "bad_header"), u(&report, "out_of_order")), (0, 0), "{report}");
    let summary = stop_with_summary(&mut capture);
    assert_eq!((summary["format"].as_str(), summary["device_format"].as_str()), (Some("MJPG"), Some("MJPG")));
    d.assert_no_leftovers();
}

/// `pixel-format = "BGR3"` with the device asked for YUYV, NV12, GREY or MJPG: capture
/// converts (or decodes) each frame straight into the sample, and the result is exactly what
/// OpenCV makes of the device's frame.
#[test]
fn device_frames_are_converted_to_bgr_in_the_same_pass() {
    for device in [PixelFormat::Yuyv, PixelFormat::Nv12, PixelFormat::Grey, PixelFormat::Mjpg] {
        let d = v4l2_deployment((320, 240), 30, "BGR3", &format!("format = \"{device}\""), false);
        let mut capture = spawn_capture(&d, &[("FAKE_V4L2_FORMATS", "YUYV,MJPG,NV12,GREY")], &["--summary"]);
        let line = capture.wait_stderr(DEADLINE, "effective format:");
        assert!(line.contains(&format!("device delivers {device} 320x240 at 30.000 fps, publishing BGR3")), "{line}");
        read_frames(&d, 8, |h, p| check_frame(device, h, p));
        let summary = stop_with_summary(&mut capture);
        assert_eq!(summary["device_format"].as_str(), Some(device.name()), "{summary}");
        assert!(!capture.stderr_text().contains("unusable frame"), "{}", capture.stderr_text());
        d.assert_no_leftovers();
    }
}

/// A driver that grants another size and frame rate than configured: capture warns, naming
/// both, and publishes what was granted; with `strict = true` it exits 2 with that message.
#[test]
fn a_driver_adjusted_format_warns_and_strict_makes_it_an_error() {
    let expected = "granted 640x480 YUYV at 30.000 fps instead of what camera `cam0` asks: size 800x600 → 640x480, frame rate 60.000 fps → 30.000 fps";
    let d = v4l2_deployment((800, 600), 60, "YUYV", "", false);
    let mut capture = spawn_capture(&d, &[], &["--summary", "--max-frames", "5"]);
    let warning = capture.wait_stderr(DEADLINE, "granted");
    assert!(warning.contains("WARN") && warning.contains(expected), "{warning}");
    assert_eq!(capture.wait_exit(DEADLINE), Some(0), "{}", capture.stderr_text());
    let summary = capture.wait_json(DEADLINE, |v| v["frames"].is_u64());
    assert_eq!((u(&summary, "width"), u(&summary, "height"), u(&summary, "frames")), (640, 480, 5), "{summary}");
    assert_eq!(summary["source_fps"].as_f64(), Some(30.0), "{summary}");
    d.assert_no_leftovers();

    let strict = v4l2_deployment((800, 600), 60, "YUYV", "strict = true", false);
    let (code, stderr) = run_to_exit(&strict, &[], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "capture: error: camera `cam0`: opening V4L2 device {DEVICE}: {DEVICE} {expected} (strict = true)"
        )),
        "{stderr}"
    );
    strict.assert_no_leftovers();
}

/// The device loses every 5th frame: the header's `source_drops` rises by exactly the gap in
/// the driver sequence, capture's periodic stats line shows the drops, and so does the summary.
#[test]
fn driver_sequence_gaps_count_as_driver_drops() {
    let d = v4l2_deployment((320, 240), 30, "GREY", "format = \"GREY\"", false);
    let mut capture = spawn_capture(
        &d,
        &[("FAKE_V4L2_SKIP_EVERY", "5"), ("FAKE_V4L2_FORMATS", "GREY")],
        &["--summary", "--stats-interval-secs", "0.3"],
    );
    capture.wait_stderr(DEADLINE, "capturing:");
    let headers = read_frames(&d, 30, |h, p| check_frame(PixelFormat::Grey, h, p));
    let mut gaps = 0;
    for pair in headers.windows(2).filter(|p| p[1].frame_id == p[0].frame_id + 1) {
        let lost = pair[1].sequence - pair[0].sequence - 1;
        assert_eq!(pair[1].source_drops - pair[0].source_drops, lost, "{pair:?}");
        gaps += lost;
    }
    assert!(gaps >= 2, "30 frames with every 5th lost show gaps: {headers:?}");
    let stats = capture.wait_stderr(DEADLINE, "driver drops");
    assert!(stats.contains("publishing at"), "{stats}");
    let summary = stop_with_summary(&mut capture);
    assert!(u(&summary, "source_drops") >= gaps, "{summary}");
    d.assert_no_leftovers();
}

/// The device unplugs after 15 frames and comes back 600 ms later: capture survives, runs the
/// media pipeline and reopens the device, re-applies the controls, frames resume with rising
/// ids, and algo stays attached (no restart, nothing out of order).
#[test]
fn a_vanishing_device_is_reopened_and_frame_ids_keep_rising() {
    let script_dir = tempfile::tempdir().expect("temp dir");
    let calls = fake_media_ctl(script_dir.path());
    let source = "[camera.source.controls]\nbrightness = 200\n\n[camera.source.media-pipeline]\nkind = \"media-ctl\"\ndevice = \"/dev/media0\"\nlinks = [\"'sensor':0 -> 'csi':0 [1]\"]\n";
    let d = v4l2_deployment((320, 240), 30, "YUYV", source, true);
    let path = format!("{}:{}", script_dir.path().display(), std::env::var("PATH").unwrap_or_default());
    let env = [
        ("FAKE_V4L2_VANISH_AFTER", "15"),
        ("FAKE_V4L2_VANISH_MS", "600"),
        ("FAKE_V4L2_LOG", "1"),
        ("PATH", path.as_str()),
        ("MEDIA_CTL_LOG", calls.to_str().expect("utf-8")),
    ];
    let mut capture = spawn_capture(&d, &env, &["--summary"]);
    let mut algo = d.spawn("algo", &["--json"]);
    capture.wait_stderr(DEADLINE, "source unavailable");
    capture.wait_stderr(DEADLINE, "V4L2 device reopened");
    let report = algo.wait_json(DEADLINE, |v| v["last_id"].as_u64() > Some(30));
    assert_eq!((u(&report, "capture_restarts"), u(&report, "out_of_order")), (0, 0), "{report}");
    let after = read_frames(&d, 5, |h, p| check_frame(PixelFormat::Yuyv, h, p));
    assert!(after[0].frame_id > 30, "{after:?}");
    assert_eq!(algo.terminate(), Some(0));
    let summary = stop_with_summary(&mut capture);
    assert!(u(&summary, "reconnects") >= 1, "{summary}");
    let stderr = capture.stderr_text();
    assert_eq!(
        stderr.matches("'Brightness' = 200").count(),
        2,
        "controls set at start and after the reconnect:\n{stderr}"
    );
    let steps = std::fs::read_to_string(&calls).expect("media-ctl calls");
    assert!(steps.lines().count() >= 2, "media pipeline ran at start and before reopening: {steps}");
    d.assert_no_leftovers();
}

/// Writes a fake `media-ctl` into `dir` that appends its arguments to `$MEDIA_CTL_LOG` and
/// fails like the real one when an argument contains `FAIL`; returns the log path.
fn fake_media_ctl(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("media-ctl");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"$*\" >> \"$MEDIA_CTL_LOG\"\ncase \"$*\" in *FAIL*) echo \"Unable to parse link: $*\" >&2; exit 1;; esac\nexit 0\n",
    )
    .expect("write fake media-ctl");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir.join("calls.log")
}

/// The media-ctl hook: the configured steps run in order (reset, links, formats) before the
/// device is opened; a failing step makes capture exit 2 with that step and its output, and
/// the steps after it do not run.
#[test]
fn media_ctl_steps_run_in_order_and_a_failing_step_stops_capture() {
    let dir = tempfile::tempdir().expect("temp dir");
    let calls = fake_media_ctl(dir.path());
    let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
    let env = [("PATH", path.as_str()), ("MEDIA_CTL_LOG", calls.to_str().expect("utf-8"))];
    let pipeline = |second_link: &str| {
        format!(
            "[camera.source.media-pipeline]\nkind = \"media-ctl\"\ndevice = \"/dev/media0\"\nreset = true\nlinks = [\"'sensor':0 -> 'csi':0 [1]\", \"{second_link}\"]\nformats = [\"'sensor':0 [fmt:YUYV8_2X8/320x240]\"]\n"
        )
    };

    let d = v4l2_deployment((320, 240), 30, "YUYV", &pipeline("'csi':1 -> 'video':0 [1]"), false);
    let (code, stderr) = run_to_exit(&d, &env, &["--max-frames", "3"]);
    assert_eq!(code, Some(0), "{stderr}");
    let steps = std::fs::read_to_string(&calls).expect("media-ctl calls");
    assert_eq!(
        steps.lines().collect::<Vec<_>>(),
        [
            "-d /dev/media0 -r",
            "-d /dev/media0 -l 'sensor':0 -> 'csi':0 [1]",
            "-d /dev/media0 -l 'csi':1 -> 'video':0 [1]",
            "-d /dev/media0 -V 'sensor':0 [fmt:YUYV8_2X8/320x240]",
        ]
    );
    let last_step = stderr.find("media pipeline step 4/4").expect("steps logged");
    let streaming = stderr.find("streaming 320x240 YUYV").expect("device opened");
    assert!(last_step < streaming, "the pipeline runs before the device is opened:\n{stderr}");
    d.assert_no_leftovers();

    std::fs::remove_file(&calls).expect("reset the call log");
    let failing = v4l2_deployment((320, 240), 30, "YUYV", &pipeline("'csi':1 -> FAIL"), false);
    let (code, stderr) = run_to_exit(&failing, &env, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("capture: error: camera `cam0`: media pipeline `media-ctl` set-up failed: step 3/4 `media-ctl -d /dev/media0 -l \"'csi':1 -> FAIL\"` failed: exit status: 1; output: Unable to parse link: -d /dev/media0 -l 'csi':1 -> FAIL"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&calls).expect("calls").lines().count(), 3, "no step after the failing one");
    failing.assert_no_leftovers();
}

/// Controls from `[camera.source.controls]` are set on the device by normalised name (menu
/// items by name too); an unknown name is an error listing what the device offers, an
/// out-of-range value an error giving the range.
#[test]
fn controls_are_applied_and_bad_ones_are_clear_errors() {
    let controls = |body: &str| format!("[camera.source.controls]\n{body}\n");
    let d = v4l2_deployment(
        (320, 240),
        30,
        "YUYV",
        &controls("brightness = 200\nauto_exposure = \"Manual Mode\"\nexposure_time_absolute = 300\ngain = 10"),
        false,
    );
    let (code, stderr) = run_to_exit(&d, &[("FAKE_V4L2_LOG", "1")], &["--max-frames", "3"]);
    assert_eq!(code, Some(0), "{stderr}");
    for set in [
        "'Brightness' = 200 (was 128)",
        "'Auto Exposure' = 1 (was 3)",
        "'Exposure Time, Absolute' = 300 (was 250)",
        "'Gain' = 10 (was 0)",
    ] {
        assert!(stderr.contains(set), "`{set}` not set:\n{stderr}");
    }
    d.assert_no_leftovers();

    let unknown = v4l2_deployment((320, 240), 30, "YUYV", &controls("bogus = 1"), false);
    let (code, stderr) = run_to_exit(&unknown, &[], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("capture: error: camera `cam0`: opening V4L2 device {DEVICE}: {DEVICE} has no control `bogus`; it offers: brightness (int 0..255), contrast (int 0..255), white_balance_automatic (bool), gain (int 0..255), auto_exposure (menu: 1=Manual Mode, 3=Aperture Priority Mode), exposure_time_absolute (int 3..2047)")),
        "{stderr}"
    );

    let out_of_range = v4l2_deployment((320, 240), 30, "YUYV", &controls("brightness = 300"), false);
    let (code, stderr) = run_to_exit(&out_of_range, &[], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "capture: error: camera `cam0`: opening V4L2 device {DEVICE}: control `brightness` = 300 is out of range: allowed 0..255 (step 1) on {DEVICE}"
        )),
        "{stderr}"
    );
    unknown.assert_no_leftovers();
    out_of_range.assert_no_leftovers();
}

/// SIGTERM while capture waits on the device stops it promptly with exit 0, also while the
/// device is away (between reconnect attempts).
#[test]
fn sigterm_stops_capture_while_waiting_on_the_device() {
    let d = v4l2_deployment((320, 240), 1, "YUYV", "", false);
    let mut capture = spawn_capture(&d, &[("FAKE_V4L2_MAX_FPS", "1")], &[]);
    capture.wait_stderr(DEADLINE, "capturing:");
    assert_eq!(capture.terminate(), Some(0), "{}", capture.stderr_text());
    d.assert_no_leftovers();

    let gone = v4l2_deployment((320, 240), 30, "YUYV", "", false);
    let mut capture = spawn_capture(&gone, &[("FAKE_V4L2_VANISH_AFTER", "3"), ("FAKE_V4L2_VANISH_MS", "60000")], &[]);
    capture.wait_stderr(DEADLINE, "reconnect failed");
    assert_eq!(capture.terminate(), Some(0), "{}", capture.stderr_text());
    gone.assert_no_leftovers();
}
