//! The frame bus: synthetic and file sources into algo, clean stop, crash recovery, slow readers.

use framebus_e2e::{synthetic_camera, TestDeployment, DEADLINE};
use serde_json::Value;

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("`{key}` missing in {v}"))
}

/// Synthetic capture → algo: frames arrive in order, every integrity stamp checks out, latency
/// statistics are reported; a clean stop leaves nothing in /dev/shm.
#[test]
fn synthetic_frames_reach_algo_in_order_and_intact() {
    let d = TestDeployment::new(&synthetic_camera("cam0", 640, 480, 60));
    let mut capture = d.spawn("capture", &[]);
    let mut algo = d.spawn("algo", &["--json", "--max-frames", "90"]);
    let report = algo.wait_json(DEADLINE, |v| v["frames"].as_u64() == Some(90));
    assert_eq!(algo.wait_exit(DEADLINE), Some(0));
    assert_eq!(u(&report, "stamp_ok"), 90, "{report}");
    assert_eq!(u(&report, "stamp_bad"), 0, "{report}");
    assert_eq!(u(&report, "out_of_order"), 0, "{report}");
    assert_eq!(u(&report, "bad_header"), 0, "{report}");
    assert!(u(&report, "last_id") >= u(&report, "first_id") + 89, "{report}");
    assert!(report["latency_p50_us"].is_u64() && report["latency_p99_us"].is_u64(), "{report}");
    assert_eq!(capture.terminate(), Some(0), "capture stderr:\n{}", capture.stderr_text());
    d.assert_no_leftovers();
}

/// Every raw pixel format travels intact (stamp verified by algo in the carried format).
#[test]
fn every_raw_pixel_format_is_carried_intact() {
    for format in ["RGB3", "GREY", "YUYV", "NV12"] {
        let body = synthetic_camera("cam0", 320, 240, 100)
            .replace("fps = 100\n", &format!("fps = 100\npixel-format = \"{format}\"\n"));
        let d = TestDeployment::new(&body);
        let mut capture = d.spawn("capture", &[]);
        let mut algo = d.spawn("algo", &["--json", "--max-frames", "20"]);
        let report = algo.wait_json(DEADLINE, |v| v["frames"].as_u64() == Some(20));
        assert_eq!(u(&report, "stamp_ok"), 20, "{format}: {report}");
        assert_eq!(algo.wait_exit(DEADLINE), Some(0));
        assert_eq!(capture.terminate(), Some(0));
        d.assert_no_leftovers();
    }
}

/// A video file made by the test loops: frame ids keep rising past the file's length.
#[test]
fn file_source_loops_and_ids_keep_rising() {
    use framebus_vision::opencv::core::{Mat, Scalar, Size, CV_8UC3};
    use framebus_vision::opencv::prelude::*;
    use framebus_vision::opencv::videoio::VideoWriter;

    let d = TestDeployment::new("");
    let video = d.dir.path().join("clip.avi");
    let fourcc = VideoWriter::fourcc('M', 'J', 'P', 'G').expect("fourcc");
    let mut writer =
        VideoWriter::new(video.to_str().expect("utf-8"), fourcc, 25.0, Size::new(320, 240), true).expect("writer");
    assert!(writer.is_opened().expect("is_opened"), "VideoWriter could not open {}", video.display());
    for i in 0..12 {
        let frame = Mat::new_rows_cols_with_default(240, 320, CV_8UC3, Scalar::all(f64::from(i * 20))).expect("frame");
        writer.write(&frame).expect("write frame");
    }
    writer.release().expect("release");
    let body = format!(
        "[[camera]]\nname = \"file0\"\nwidth = 160\nheight = 120\nfps = 200\n[camera.source]\nkind = \"file\"\npath = \"{}\"\npace = \"config\"\n[camera.algo]\nqueue-depth = 1\n",
        video.display()
    );
    std::fs::write(&d.config, format!("[deployment]\nname = \"{}\"\n\n{body}", d.name)).expect("config");
    let mut capture = d.spawn("capture", &[]);
    let mut algo = d.spawn("algo", &["--json", "--max-frames", "40"]);
    let report = algo.wait_json(DEADLINE, |v| v["frames"].as_u64() == Some(40));
    assert!(u(&report, "last_id") >= 40, "ids went past the 12-frame file: {report}");
    assert_eq!(u(&report, "out_of_order"), 0, "{report}");
    assert_eq!(u(&report, "capture_restarts"), 0, "{report}");
    assert_eq!(algo.wait_exit(DEADLINE), Some(0));
    assert_eq!(capture.terminate(), Some(0), "{}", capture.stderr_text());
    d.assert_no_leftovers();
}

/// kill -9 of capture: a new capture starts with no manual clean-up and the running algo picks
/// up its frames by itself; kill -9 of algo: a new algo works too. Nothing is left at the end.
#[test]
fn killed_processes_restart_and_readers_resume() {
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 100));
    let mut capture = d.spawn("capture", &[]);
    let mut algo = d.spawn("algo", &["--json"]);
    algo.wait_json(DEADLINE, |v| v["frames"].as_u64() > Some(5));
    capture.kill9();
    let mut capture = d.spawn("capture", &[]);
    let resumed =
        algo.wait_json(DEADLINE, |v| v["capture_restarts"].as_u64() >= Some(1) && v["fps"].as_f64() > Some(1.0));
    assert_eq!(u(&resumed, "stamp_bad"), 0, "{resumed}");
    algo.kill9();
    let mut algo = d.spawn("algo", &["--json", "--max-frames", "20"]);
    let report = algo.wait_json(DEADLINE, |v| v["frames"].as_u64() == Some(20));
    assert_eq!(u(&report, "stamp_bad"), 0, "{report}");
    assert_eq!(algo.wait_exit(DEADLINE), Some(0));
    assert_eq!(capture.terminate(), Some(0), "{}", capture.stderr_text());
    d.assert_no_leftovers();
}

/// A slow algo never makes capture wait: capture publishes every frame as fast as it can while
/// algo, holding each frame for 20 ms, processes only the newest and counts the rest skipped.
#[test]
fn a_slow_algo_does_not_hold_back_capture() {
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 0));
    let mut algo = d.spawn("algo", &["--json", "--simulate-work-ms", "20"]);
    let mut capture = d.spawn("capture", &["--max-frames", "3000", "--wait-for-readers", "1", "--summary"]);
    let summary = capture.wait_json(DEADLINE, |v| v["frames"].is_u64());
    assert_eq!(capture.wait_exit(DEADLINE), Some(0), "{}", capture.stderr_text());
    assert_eq!(u(&summary, "frames"), 3000);
    // The first report after capture stopped (no frames in its interval) has the final counts.
    let report = algo.wait_json(DEADLINE, |v| v["frames"].as_u64() > Some(0) && v["fps"].as_f64() == Some(0.0));
    let processed = u(&report, "frames");
    assert!(processed < 1500, "algo processed {processed} of 3000 frames: capture must have waited for it: {report}");
    assert!(u(&report, "skipped") > 0, "{report}");
    assert_eq!(u(&report, "stamp_bad"), 0, "{report}");
    assert_eq!(u(&report, "out_of_order"), 0, "{report}");
    assert_eq!(algo.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// Two deployments with the same camera name run side by side without seeing each other.
#[test]
fn deployments_are_isolated() {
    let a = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 100));
    let b = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 100));
    let mut capture_a = a.spawn("capture", &[]);
    let mut algo_b = b.spawn("algo", &["--json"]);
    let mut algo_a = a.spawn("algo", &["--json", "--max-frames", "10"]);
    algo_a.wait_json(DEADLINE, |v| v["frames"].as_u64() == Some(10));
    let idle = algo_b.wait_json(DEADLINE, |_| true);
    assert_eq!(u(&idle, "frames"), 0, "deployment b saw frames of a: {idle}");
    assert_eq!(algo_a.wait_exit(DEADLINE), Some(0));
    assert_eq!(algo_b.terminate(), Some(0));
    assert_eq!(capture_a.terminate(), Some(0));
    a.assert_no_leftovers();
    b.assert_no_leftovers();
}
