//! Events (issue 10): results on the bus, drawn by the preview.

use std::path::{Path, PathBuf};

use framebus_e2e::{http_get, TestDeployment, DEADLINE};
use framebus_vision::opencv::core::{Mat, Rect, Scalar, Size, CV_8UC3};
use framebus_vision::opencv::imgproc;
use framebus_vision::opencv::prelude::*;
use framebus_vision::opencv::videoio::VideoWriter;
use serde_json::Value;

/// Writes a 320×240 MJPG clip of `frames` frames: a still grey picture, and from frame
/// `motion.0` to `motion.1` (exclusive) a white block moving right by 4 px a frame.
pub fn motion_clip(dir: &Path, frames: u32, motion: (u32, u32)) -> PathBuf {
    let path = dir.join("motion.avi");
    let fourcc = VideoWriter::fourcc('M', 'J', 'P', 'G').expect("fourcc");
    let mut writer =
        VideoWriter::new(path.to_str().expect("utf-8"), fourcc, 30.0, Size::new(320, 240), true).expect("writer");
    assert!(writer.is_opened().expect("is_opened"), "VideoWriter could not open {}", path.display());
    for i in 0..frames {
        let mut frame = Mat::new_rows_cols_with_default(240, 320, CV_8UC3, Scalar::all(90.0)).expect("frame");
        if (motion.0..motion.1).contains(&i) {
            let x = 20 + 4 * (i - motion.0) as i32;
            imgproc::rectangle(
                &mut frame,
                Rect::new(x % 260, 80, 40, 40),
                Scalar::all(255.0),
                imgproc::FILLED,
                imgproc::LINE_8,
                0,
            )
            .expect("draw");
        }
        writer.write(&frame).expect("write frame");
    }
    writer.release().expect("release");
    path
}

/// A file camera `cam0` looping `clip` at 30 fps, plus `extra` tables.
fn file_camera(clip: &Path, extra: &str) -> String {
    format!(
        "[[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\nfps = 30\n\n[camera.source]\nkind = \"file\"\npath = \"{}\"\npace = \"config\"\n\n{extra}",
        clip.display()
    )
}

/// algo publishes its motion (score = share of the picture that changed, one `motion` box per
/// changed region) and the preview draws the newest result matched to the frame it shows and
/// lists it in `/status.json`.
#[test]
fn algo_motion_results_reach_the_preview() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clip = motion_clip(dir.path(), 60, (10, 50));
    let d = TestDeployment::new(&file_camera(
        &clip,
        "[camera.algo]\n\n[camera.preview]\nlisten = \"127.0.0.1:0\"\nstats-interval-secs = 0.25\nresult-max-age-ms = 500\n",
    ));
    let mut capture = d.spawn("capture", &[]);
    let mut algo = d.spawn("algo", &[]);
    let mut preview = d.spawn("preview", &["--json"]);
    let url = preview.wait_json(DEADLINE, |v| v["event"] == "listening")["url"].as_str().expect("url").to_string();
    let until = std::time::Instant::now() + DEADLINE;
    let moving = loop {
        let (code, _, body) = http_get(&url, "/status.json");
        assert_eq!(code, 200);
        let status: Value = serde_json::from_slice(&body).expect("status JSON");
        let found = status["results"].as_array().and_then(|r| {
            r.iter().find(|x| x["producer"] == "algo" && x["boxes"].as_array().is_some_and(|b| !b.is_empty())).cloned()
        });
        if let Some(found) = found {
            break found;
        }
        assert!(std::time::Instant::now() < until, "no algo result with boxes in the preview: {status}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let score = moving["score"].as_f64().expect("score");
    assert!(score > 0.0 && score < 0.2, "a 40×40 block in 320×240 changes a small share: {moving}");
    let b = &moving["boxes"][0];
    assert_eq!(b["label"], "motion", "{moving}");
    let (x, y, w, h) = (
        b["x"].as_f64().unwrap_or(-1.0),
        b["y"].as_f64().unwrap_or(-1.0),
        b["w"].as_f64().unwrap_or(0.0),
        b["h"].as_f64().unwrap_or(0.0),
    );
    assert!(
        x >= 0.0 && y >= 60.0 && x + w <= 320.0 && y + h <= 140.0,
        "the box is around the block (y 80..120): {moving}"
    );
    assert!(moving["age_ms"].as_f64().is_some_and(|a| a <= 500.0), "{moving}");
    for p in [&mut preview, &mut algo, &mut capture] {
        assert_eq!(p.terminate(), Some(0), "{}", p.stderr_text());
    }
    d.assert_no_leftovers();
}
