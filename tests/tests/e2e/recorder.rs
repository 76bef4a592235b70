//! Recorder (issue 4): playable segments whose sidecar accounts for every frame, images,
//! SIGTERM and SIGKILL mid-segment, and the disk guard stopping and resuming.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use framebus_common::pattern::read_bgr_stamps;
use framebus_e2e::{ffprobe_frames, TestDeployment, DEADLINE};
use framebus_vision::opencv::core::Mat;
use framebus_vision::opencv::imgcodecs;
use framebus_vision::opencv::prelude::*;
use framebus_vision::opencv::videoio::{VideoCapture, CAP_ANY};
use serde_json::Value;

/// A synthetic 320×240 camera at `fps` with a recorder table (`extra` goes into it) writing to
/// `<test dir>/rec`.
fn camera(fps: u32, extra: &str) -> String {
    format!(
        "[[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\nfps = {fps}\n\n[camera.source]\nkind = \"synthetic\"\n\n[camera.recorder]\ndirectory = \"rec\"\nenabled = true\nstats-interval-secs = 0.25\nmin-free-mb = 1\n{extra}"
    )
}

/// Files in `dir` with the extension `ext`, sorted by name (= by start time).
pub(super) fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == ext)).collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

pub(super) fn sidecar(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("read sidecar")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: bad line {l}: {e}", path.display())))
        .collect()
}

pub(super) fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("`{key}` missing in {v}"))
}

/// Frame ids stamped in every frame of a video, decoded with OpenCV.
fn video_stamps(path: &Path) -> Vec<u64> {
    let mut cap = VideoCapture::from_file(path.to_str().expect("utf-8"), CAP_ANY).expect("open video");
    assert!(cap.is_opened().expect("is_opened"), "OpenCV cannot open {}", path.display());
    let mut frame = Mat::default();
    let mut ids = Vec::new();
    while cap.read(&mut frame).expect("read") && !frame.empty() {
        let (top, bottom) =
            read_bgr_stamps(frame.cols() as usize, frame.rows() as usize, frame.data_bytes().expect("continuous"));
        assert_eq!(top, bottom, "{}: torn frame", path.display());
        ids.push(top);
    }
    ids
}

/// Checks one completed segment: its video plays in ffprobe with as many frames as the
/// sidecar lists, the decoded frames carry exactly the listed ids, images decode and carry
/// their frame's id. Returns the sidecar's (frame id → saved?) entries, skipped ones as false.
pub(super) fn check_segment(index: &Path) -> BTreeMap<u64, bool> {
    let lines = sidecar(index);
    assert_eq!(lines[0]["type"], "segment", "{}", index.display());
    assert_eq!(lines.last().expect("lines")["type"], "end", "{}: not finalized", index.display());
    let dir = index.parent().expect("dir");
    let mut accounted = BTreeMap::new();
    let mut saved = Vec::new();
    for line in &lines[1..lines.len() - 1] {
        match line["type"].as_str() {
            Some("frame") => {
                assert!(
                    line["capture_mono_ns"].is_u64()
                        && line["capture_realtime_ns"].is_u64()
                        && line["sequence"].is_u64()
                );
                let id = u(line, "frame_id");
                assert!(accounted.insert(id, true).is_none(), "frame {id} listed twice");
                saved.push(id);
                if let Some(image) = line["image"].as_str() {
                    let images = dir.join(lines[0]["images"].as_str().expect("images folder"));
                    let img = imgcodecs::imread(images.join(image).to_str().expect("utf-8"), imgcodecs::IMREAD_COLOR)
                        .expect("imread");
                    assert!(!img.empty(), "{image} does not decode");
                    let (top, _) = read_bgr_stamps(
                        img.cols() as usize,
                        img.rows() as usize,
                        img.data_bytes().expect("continuous"),
                    );
                    assert_eq!(top, id, "{image}");
                    assert!(image.contains(&format!("{id:010}")), "{image} does not name frame {id}");
                }
            }
            Some("skipped") => {
                for id in u(line, "first_frame_id")..=u(line, "last_frame_id") {
                    assert!(accounted.insert(id, false).is_none(), "frame {id} listed twice");
                }
            }
            other => panic!("{}: unexpected line type {other:?}", index.display()),
        }
    }
    let video = dir.join(lines[0]["video"].as_str().expect("video name"));
    assert_eq!(ffprobe_frames(&video), Some(saved.len() as u64), "{}", video.display());
    assert_eq!(video_stamps(&video), saved, "{}: decoded frames differ from the sidecar", video.display());
    accounted
}

/// Recording a few seconds in 1-second segments: every segment plays, its sidecar lists
/// exactly the frames in its video (stamps match ids), images decode, and the segments
/// together account for every frame id from the first to the last without a hole. SIGTERM
/// mid-segment finalizes the current one, so it plays too.
#[test]
fn recording_makes_playable_segments_that_account_for_every_frame() {
    let d = TestDeployment::new(&camera(30, "segment-secs = 1.0\nimages = \"jpeg\"\nimage-every = 10\n"));
    let mut capture = d.spawn("capture", &[]);
    let mut recorder = d.spawn("recorder", &["--json"]);
    recorder.wait_json(DEADLINE, |v| v["segments"].as_u64() >= Some(2) && v["written"].as_u64() >= Some(75));
    assert_eq!(recorder.terminate(), Some(0), "{}", recorder.stderr_text());
    let rec = d.dir.path().join("rec");
    assert!(
        files(&rec, "avi").iter().all(|p| !p.to_string_lossy().contains(".partial")),
        "a segment was not finalized"
    );
    let indexes = files(&rec, "jsonl");
    assert!(indexes.len() >= 3, "{indexes:?}");
    let mut all = BTreeMap::new();
    for index in &indexes {
        all.extend(check_segment(index));
    }
    let last = sidecar(indexes.last().expect("segments"));
    assert_eq!(last.last().expect("end")["reason"], "stop", "SIGTERM must finalize the current segment");
    let (first, last_id) = (*all.keys().next().expect("frames"), *all.keys().last().expect("frames"));
    assert_eq!(all.len() as u64, last_id - first + 1, "frame ids between {first} and {last_id} are unaccounted");
    assert!(all.values().filter(|saved| **saved).count() >= 75);
    assert!(
        files(
            &rec.join(
                files(&rec, "jsonl")[0].file_stem().map(|s| format!("{}.images", s.to_string_lossy())).expect("stem")
            ),
            "jpg"
        )
        .len()
            >= 2
    );
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// After SIGKILL every completed segment still plays and matches its sidecar (mp4 here); only
/// the segment being written is left `.partial`.
#[test]
fn completed_segments_survive_sigkill() {
    let d = TestDeployment::new(&camera(30, "segment-secs = 0.5\nvideo = \"mp4v-mp4\"\n"));
    let mut capture = d.spawn("capture", &[]);
    let mut recorder = d.spawn("recorder", &["--json"]);
    recorder.wait_json(DEADLINE, |v| v["segments"].as_u64() >= Some(2));
    recorder.kill9();
    let rec = d.dir.path().join("rec");
    let complete: Vec<PathBuf> =
        files(&rec, "jsonl").into_iter().filter(|p| !p.to_string_lossy().contains(".partial")).collect();
    assert!(complete.len() >= 2, "{complete:?}");
    for index in &complete {
        check_segment(index);
    }
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// H.264 in MP4: every finished segment opens in ffprobe with as many frames as its sidecar
/// lists, and the frame ids stamped in the decoded pictures match the sidecar.
#[test]
fn h264_segments_play_and_match_their_sidecars() {
    let d = TestDeployment::new(&camera(30, "segment-secs = 0.5\nvideo = \"h264-mp4\"\n"));
    let mut capture = d.spawn("capture", &[]);
    let mut recorder = d.spawn("recorder", &["--json"]);
    recorder.wait_json(DEADLINE, |v| v["segments"].as_u64() >= Some(2));
    assert_eq!(recorder.terminate(), Some(0), "{}", recorder.stderr_text());
    let indexes = files(&d.dir.path().join("rec"), "jsonl");
    assert!(indexes.len() >= 2, "{indexes:?}");
    for index in &indexes {
        check_segment(index);
    }
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// The disk guard: with the free-space floor above the free space, saving stops with an error
/// (state `disk-low`, nothing written); lowering the floor in the config and sending SIGHUP
/// makes it write again, and the new segment lists the frames it could not save.
#[test]
fn disk_guard_stops_below_the_floor_and_resumes() {
    let body = camera(30, "").replace("min-free-mb = 1\n", "min-free-mb = 100000000\n");
    let d = TestDeployment::new(&body);
    let mut capture = d.spawn("capture", &[]);
    let mut recorder = d.spawn("recorder", &["--json"]);
    let low = recorder.wait_json(DEADLINE, |v| v["state"] == "disk-low" && v["frames"].as_u64() >= Some(10));
    assert_eq!(u(&low, "written"), 0, "{low}");
    assert!(u(&low, "errors") >= 1, "{low}");
    assert!(low["last_error"].as_str().is_some_and(|e| e.contains("below the floor")), "{low}");
    recorder.wait_stderr(DEADLINE, "below the floor of 100000000 MiB");
    let rec = d.dir.path().join("rec");
    assert!(files(&rec, "avi").is_empty(), "wrote video below the floor");

    let config = std::fs::read_to_string(&d.config).expect("config");
    std::fs::write(&d.config, config.replace("min-free-mb = 100000000", "min-free-mb = 1")).expect("lower the floor");
    recorder.signal(libc::SIGHUP);
    let resumed = recorder.wait_json(DEADLINE, |v| v["state"] == "recording" && v["written"].as_u64() >= Some(20));
    assert!(u(&resumed, "skipped") >= 10, "{resumed}");
    assert_eq!(recorder.terminate(), Some(0), "{}", recorder.stderr_text());
    let indexes = files(&rec, "jsonl");
    assert_eq!(indexes.len(), 1, "{indexes:?}");
    let lines = sidecar(&indexes[0]);
    assert_eq!(lines[1]["type"], "skipped", "{:?}", lines[1]);
    assert_eq!(lines[1]["reason"], "disk-low", "{:?}", lines[1]);
    check_segment(&indexes[0]);
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}
