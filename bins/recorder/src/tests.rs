//! The recorder driven in-process with scripted frames (the synthetic pattern, its id stamped
//! in every picture) and results: which frames a clip takes, in which order, and what its
//! sidecar and the journal say, whatever the pace of the writer.

use std::mem::MaybeUninit;
use std::path::Path;

use framebus_common::pattern::{read_bgr_stamps, SyntheticPattern};
use framebus_common::results::{Detection, Outcome};
use framebus_common::{clock, Deployment, FrameHeader, PixelFormat};
use framebus_vision::opencv::core::Mat;
use framebus_vision::opencv::prelude::*;
use framebus_vision::opencv::videoio::{VideoCapture, CAP_ANY};
use serde_json::Value;

use super::*;

const INTERVAL_NS: u64 = 33_333_333;

/// A 160×120 BGR3 camera at 30 fps whose recorder writes to `dir` with `recorder` keys.
fn recorder(dir: &Path, keys: &str) -> Recorder {
    let text = format!(
        "[deployment]\nname = \"unit\"\n[[camera]]\nname = \"cam\"\nwidth = 160\nheight = 120\nfps = 30\n[camera.source]\nkind = \"synthetic\"\n[camera.recorder]\ndirectory = \"{}\"\nmin-free-mb = 0\n{keys}",
        dir.display()
    );
    let deployment = Deployment::from_toml(&dir.join("unit.toml"), &text).expect("config");
    let camera = deployment.camera(None).expect("camera").clone();
    let config = camera.recorder.clone().expect("recorder table");
    Recorder::new(&camera, config, dir.to_path_buf()).expect("recorder")
}

/// Frames of one capture run, captured every 33.3 ms ending `ahead` frames after now.
struct Feed {
    pattern: SyntheticPattern,
    base_mono: u64,
    base_realtime: u64,
    payload: Vec<u8>,
}

impl Feed {
    /// Frame `zero_at` is captured now: earlier ones in the past, later ones after.
    fn new(zero_at: u64) -> Feed {
        let pattern = SyntheticPattern::new(PixelFormat::Bgr3, 160, 120).expect("pattern");
        let back = zero_at * INTERVAL_NS;
        Feed {
            base_mono: clock::monotonic_ns() - back,
            base_realtime: clock::realtime_ns() - back,
            payload: vec![0; pattern.frame_bytes()],
            pattern,
        }
    }

    fn header(&self, id: u64) -> FrameHeader {
        FrameHeader {
            layout_version: framebus_common::header::FRAME_HEADER_VERSION,
            header_size: std::mem::size_of::<FrameHeader>() as u32,
            frame_id: id,
            sequence: id,
            capture_mono_ns: self.base_mono + id * INTERVAL_NS,
            capture_realtime_ns: self.base_realtime + id * INTERVAL_NS,
            width: 160,
            height: 120,
            stride: 160 * 3,
            pixel_format: PixelFormat::Bgr3.fourcc(),
            payload_len: self.payload.len() as u32,
            run_id: 7,
            ..FrameHeader::default()
        }
    }

    /// Delivers frame `id` the way `run` does, then lets the writer work (`pump`).
    fn deliver(&mut self, recorder: &mut Recorder, id: u64, pump: Option<Duration>) {
        let mut raw = vec![MaybeUninit::new(0u8); self.payload.len()];
        self.pattern.render(id, &mut raw);
        for (dst, src) in self.payload.iter_mut().zip(&raw) {
            // SAFETY: every byte was initialised (MaybeUninit::new above; render overwrites).
            *dst = unsafe { src.assume_init() };
        }
        let header = self.header(id);
        match recorder.on_frame(&header) {
            Disposition::Write => {
                if recorder.convert(&header, &self.payload) {
                    recorder.save(&header);
                }
            }
            Disposition::Hold => {
                if recorder.hold_received(&header, &self.payload) {
                    recorder.hold_converted(&header);
                }
            }
            Disposition::Ignore => {}
        }
        recorder.pump(pump);
    }

    /// A result of `producer` about frame `id` with one `label` box.
    fn result(&self, producer: &str, id: u64, label: &str) -> Outcome {
        Outcome {
            producer: producer.into(),
            frame_id: id,
            run_id: 7,
            capture_mono_ns: self.base_mono + id * INTERVAL_NS,
            publish_mono_ns: 0,
            score: Some(0.9),
            boxes: vec![Detection { x: 1.0, y: 1.0, w: 5.0, h: 5.0, label: label.into(), score: 0.9 }],
            data: Value::Null,
        }
    }
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).expect("read").lines().map(|l| serde_json::from_str(l).expect("json line")).collect()
}

/// Completed sidecars in `dir`, oldest first.
fn sidecars(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .expect("list")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    found.sort();
    found
}

/// (saved ids, skipped ids) of a sidecar; checks the video holds exactly the saved frames,
/// each picture stamped with its id.
fn frames_of(sidecar: &Path) -> (Vec<u64>, Vec<u64>) {
    let all = lines(sidecar);
    let (mut saved, mut skipped) = (Vec::new(), Vec::new());
    for line in &all {
        match line["type"].as_str() {
            Some("frame") => saved.push(line["frame_id"].as_u64().expect("id")),
            Some("skipped") => {
                let (a, b) = (line["first_frame_id"].as_u64().expect("a"), line["last_frame_id"].as_u64().expect("b"));
                skipped.extend(a..=b);
            }
            _ => {}
        }
    }
    let video = sidecar.with_extension("avi");
    let mut capture = VideoCapture::from_file(video.to_str().expect("utf-8"), CAP_ANY).expect("open video");
    let mut frame = Mat::default();
    let mut stamps = Vec::new();
    while capture.read(&mut frame).expect("read") && !frame.empty() {
        let (top, bottom) = read_bgr_stamps(160, 120, frame.data_bytes().expect("continuous"));
        assert_eq!(top, bottom, "torn picture");
        stamps.push(top);
    }
    assert_eq!(stamps, saved, "the video's pictures are the sidecar's frames, in order");
    (saved, skipped)
}

fn journal(dir: &Path) -> Vec<Value> {
    lines(&dir.join("events").join("cam.jsonl"))
}

/// A result about frame 60 (delivered two frames late) takes 1 s of pre-roll from memory and
/// 0.5 s of post-roll; a frame the queue dropped (55) is listed as skipped; the video holds
/// the pre-roll pictures decoded from JPEG in order. The same whether the writer drains its
/// held frames at once or one per loop turn.
#[test]
fn a_trigger_takes_its_pre_roll_and_post_roll_whatever_the_writers_pace() {
    for pump in [None, Some(Duration::ZERO)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys = "pre-roll-secs = 1\npost-roll-secs = 0.5\nresult-delay-secs = 0.5\n[[camera.recorder.trigger]]\nproducer = \"det\"\nlabel = \"person\"\n";
        let mut rec = recorder(dir.path(), keys);
        assert_eq!(rec.status().state, RecorderState::Armed);
        let mut feed = Feed::new(200);
        for id in 1..=160 {
            if id == 62 {
                rec.on_results(&[feed.result("det", 60, "person"), feed.result("det", 61, "cat")]);
            }
            if id != 55 {
                feed.deliver(&mut rec, id, pump);
            }
        }
        assert_eq!(rec.status().clips, 1, "{pump:?}");
        assert_eq!(rec.status().state, RecorderState::Armed);
        rec.finish();
        let found = sidecars(dir.path());
        assert_eq!(found.len(), 1, "{pump:?}: {found:?}");
        let (saved, skipped) = frames_of(&found[0]);
        assert_eq!(skipped, [55], "{pump:?}");
        assert_eq!((saved[0], *saved.last().expect("saved")), (30, 75), "{pump:?}: {saved:?}");
        assert_eq!(saved.len(), 45, "30..=75 but 55");
        let head = &lines(&found[0])[0];
        assert_eq!(head["trigger"]["frame_id"], 60, "{head}");
        assert_eq!(head["trigger"]["results"][0]["boxes"][0]["label"], "person", "{head}");
        assert_eq!(head["first_live_frame_id"], 62, "{head}");
        assert_eq!(lines(&found[0]).last().expect("end")["reason"], "post-roll");
        let records = journal(dir.path());
        let types: Vec<&str> = records.iter().filter_map(|r| r["type"].as_str()).collect();
        assert_eq!(types, ["clip-started", "clip-completed"], "{pump:?}");
        assert_eq!(records[1]["first_frame_id"], 30);
        assert_eq!(records[1]["last_frame_id"], 75);
        assert_eq!(records[1]["skipped"], 1);
        assert_eq!(records[1]["segments"][0]["status"], "completed");
    }
}

/// Events closer than the post-roll make one clip; a later one a second clip, whose pre-roll
/// starts after the first clip's last frame; a result from another producer or about an older
/// capture run does nothing; a result whose frames are gone is a missed trigger.
#[test]
fn close_events_merge_later_ones_start_a_new_clip_and_late_ones_are_missed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = "pre-roll-secs = 1\npost-roll-secs = 1\nresult-delay-secs = 0\n[[camera.recorder.trigger]]\nproducer = \"det\"\n";
    let mut rec = recorder(dir.path(), keys);
    let mut feed = Feed::new(400);
    for id in 1..=330 {
        match id {
            // 60 and 80 (20 frames apart, under the 30-frame post-roll): one clip 30..=110.
            61 => rec.on_results(&[feed.result("det", 60, "x")]),
            81 => rec.on_results(&[feed.result("det", 80, "x"), feed.result("other", 81, "x")]),
            // 130: its pre-roll (from 100) overlaps the first clip: this clip starts at 111.
            131 => rec.on_results(&[feed.result("det", 130, "x")]),
            // About frame 200, arriving at 300: its frames (170..=230) are gone.
            300 => {
                let mut old_run = feed.result("det", 299, "x");
                old_run.run_id = 6;
                rec.on_results(&[feed.result("det", 200, "x"), old_run]);
            }
            _ => {}
        }
        feed.deliver(&mut rec, id, None);
    }
    rec.finish();
    let status = rec.status();
    assert_eq!((status.clips, status.missed_triggers), (2, 1), "{status:?}");
    let found = sidecars(dir.path());
    assert_eq!(found.len(), 2, "{found:?}");
    let (first, _) = frames_of(&found[0]);
    let (second, _) = frames_of(&found[1]);
    assert_eq!((first[0], *first.last().expect("frames")), (30, 110));
    assert_eq!((second[0], *second.last().expect("frames")), (111, 160));
    let records = journal(dir.path());
    let types: Vec<&str> = records.iter().filter_map(|r| r["type"].as_str()).collect();
    assert_eq!(types, ["clip-started", "clip-completed", "clip-started", "clip-completed", "trigger-missed"]);
    assert_eq!(records[1]["triggers"], 2, "two results made the first clip");
}

/// `record on` is a manual trigger: its clip starts with the pre-roll held before the command
/// and lasts until `record off`, which finalizes it at once; `max-clip-secs` splits a long
/// clip into clips that continue each other without losing a frame.
#[test]
fn record_on_carries_the_pre_roll_and_max_clip_splits_without_a_gap() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rec = recorder(dir.path(), "pre-roll-secs = 1\nresult-delay-secs = 0\nmax-clip-secs = 2\n");
    assert_eq!(rec.status().state, RecorderState::Armed, "a pre-roll alone arms the recorder");
    let mut feed = Feed::new(100);
    for id in 1..=100 {
        feed.deliver(&mut rec, id, None);
    }
    // The command comes just after frame 100 was captured.
    rec.set_saving_at(true, feed.header(100).capture_mono_ns + 1);
    for id in 101..=250 {
        feed.deliver(&mut rec, id, None);
    }
    rec.set_saving(false);
    assert_eq!(rec.status().state, RecorderState::Armed);
    assert!(rec.status().segment.is_none(), "record off finalized the segment");
    let found = sidecars(dir.path());
    let mut ids = Vec::new();
    for sidecar in &found {
        ids.extend(frames_of(sidecar).0);
    }
    assert_eq!(ids, (70..=250).collect::<Vec<u64>>(), "1 s before the command, then every frame");
    let records = journal(dir.path());
    let started: Vec<&Value> = records.iter().filter(|r| r["type"] == "clip-started").collect();
    assert_eq!(started.len(), 3, "180 frames in clips of at most 2 s");
    assert_eq!(started[0]["trigger"]["source"], "manual");
    assert_eq!(started[0]["first_live_frame_id"], 101);
    assert_eq!(started[1]["trigger"]["source"], "continued");
    assert_eq!(started[1]["trigger"]["continues"], started[0]["clip"]);
    let reasons: Vec<&str> =
        records.iter().filter(|r| r["type"] == "clip-completed").filter_map(|r| r["reason"].as_str()).collect();
    assert_eq!(reasons, ["max-clip", "max-clip", "saving-off"]);
}

/// `n` H.264 access units of a 160×120 test picture from x264 (a key frame every `gop`):
/// (key frame?, Annex-B bytes, pts ns, dts ns).
fn h264_units(n: usize, gop: u32) -> Vec<(bool, Vec<u8>, u64, u64)> {
    use gstreamer as gst;
    use gstreamer::prelude::*;
    gst::init().expect("gstreamer");
    let launch = format!(
        "videotestsrc num-buffers={n} ! video/x-raw,width=160,height=120,framerate=30/1 ! videoconvert \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bframes=0 \
         ! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=out sync=false"
    );
    let pipeline = gst::parse::launch(&launch).expect("pipeline").downcast::<gst::Pipeline>().expect("a pipeline");
    let sink = pipeline.by_name("out").expect("appsink").downcast::<gstreamer_app::AppSink>().expect("appsink");
    pipeline.set_state(gst::State::Playing).expect("playing");
    let mut units = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let buffer = sample.buffer().expect("buffer");
        let pts = buffer.pts().map_or(0, |t| t.nseconds());
        let dts = buffer.dts().map_or(pts, |t| t.nseconds());
        let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        units.push((key, buffer.map_readable().expect("map").to_vec(), pts, dts));
    }
    pipeline.set_state(gst::State::Null).expect("null");
    assert_eq!(units.len(), n);
    units
}

/// `video = "stream"`: the segment starts at the first key frame (earlier access units listed
/// as `wait-key-frame`), a lost access unit (sequence gap) makes it skip to the next key
/// frame, segments are cut only at key frames, and every finished MP4 holds exactly the frames
/// its sidecar lists (checked when it finishes, and here by OpenCV).
#[test]
fn stream_units_are_cut_at_key_frames_and_a_loss_waits_for_the_next() {
    let dir = tempfile::tempdir().expect("dir");
    let mut rec = recorder(dir.path(), "video = \"stream\"\nsegment-secs = 0.5\n[camera.streamer]\n");
    rec.set_saving(true);
    let units = h264_units(60, 10);
    assert!(units[0].0 && units[10].0 && !units[5].0, "x264 key frames every 10");
    // Captured from now on (saving went on before).
    let (base_mono, base_realtime) = (clock::monotonic_ns() + INTERVAL_NS, clock::realtime_ns() + INTERVAL_NS);
    // Frame ids start at 100; the recorder joins at the 4th access unit (not a key frame); the
    // access unit of frame 125 is lost.
    for (i, (key, data, pts, dts)) in units.iter().enumerate().skip(3) {
        let id = 100 + i as u64;
        if id == 125 {
            continue;
        }
        let unit = framebus_common::encoded::AccessUnitHeader {
            layout_version: framebus_common::encoded::ACCESS_UNIT_VERSION,
            flags: if *key { framebus_common::encoded::AU_FLAG_KEY_FRAME } else { 0 },
            frame_id: id,
            capture_mono_ns: base_mono + i as u64 * INTERVAL_NS,
            capture_realtime_ns: base_realtime + i as u64 * INTERVAL_NS,
            pts_ns: *pts,
            dts_ns: *dts,
            width: 160,
            height: 120,
            run: 7,
            sequence: i as u64,
            payload_len: data.len() as u32,
            reserved: 0,
        };
        rec.on_unit(&unit, data);
    }
    rec.finish();
    let status = rec.status();
    assert_eq!(status.failed_segments, 0, "{status:?}");
    let mut sidecars: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl") && !p.to_string_lossy().contains("partial"))
        .collect();
    sidecars.sort();
    assert!(sidecars.len() >= 2, "{sidecars:?}");
    let mut saved = Vec::new();
    let mut waited = Vec::new();
    for path in &sidecars {
        let lines: Vec<Value> = std::fs::read_to_string(path)
            .expect("sidecar")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        let first = lines.iter().find(|l| l["type"] == "frame").expect("a frame");
        // Every segment starts at a key frame: ids 110, 120, 130, ... (units 10, 20, 30, ...).
        assert_eq!(first["frame_id"].as_u64().map(|id| (id - 100) % 10), Some(0), "{path:?}");
        let mut count = 0;
        for line in &lines {
            match line["type"].as_str() {
                Some("frame") => {
                    saved.push(line["frame_id"].as_u64().expect("id"));
                    count += 1;
                }
                Some("skipped") if line["reason"] == "wait-key-frame" => waited
                    .extend(line["first_frame_id"].as_u64().expect("id")..=line["last_frame_id"].as_u64().expect("id")),
                _ => {}
            }
        }
        let video = path.with_extension("mp4");
        let capture = VideoCapture::from_file(video.to_str().expect("utf-8"), CAP_ANY).expect("open");
        assert!(capture.is_opened().expect("opened"), "{video:?}");
        assert_eq!(capture.get(framebus_vision::opencv::videoio::CAP_PROP_FRAME_COUNT).expect("count"), count as f64);
    }
    // Before the first key frame: 103..=109; after the loss of 125: 126..=129.
    assert_eq!(waited, (103..=109).chain(126..=129).collect::<Vec<u64>>());
    assert_eq!(saved, (110..=124).chain(130..160).collect::<Vec<u64>>());
}

/// The access unit of frame `id` (x264 unit `id - 1`), captured at the feed's time of `id`.
fn unit_of(feed: &Feed, units: &[(bool, Vec<u8>, u64, u64)], id: u64) -> framebus_common::encoded::AccessUnitHeader {
    let (key, data, pts, dts) = &units[(id - 1) as usize];
    let frame = feed.header(id);
    framebus_common::encoded::AccessUnitHeader {
        layout_version: framebus_common::encoded::ACCESS_UNIT_VERSION,
        flags: if *key { framebus_common::encoded::AU_FLAG_KEY_FRAME } else { 0 },
        frame_id: id,
        capture_mono_ns: frame.capture_mono_ns,
        capture_realtime_ns: frame.capture_realtime_ns,
        pts_ns: *pts,
        dts_ns: *dts,
        width: 160,
        height: 120,
        run: 7,
        sequence: id,
        payload_len: data.len() as u32,
        reserved: 0,
    }
}

/// (saved ids, skipped ids) of the one finished stream segment in `dir`, whose MP4 holds
/// exactly the saved frames.
fn stream_clip(dir: &Path) -> (Vec<u64>, Vec<u64>, Value) {
    let found = sidecars(dir);
    assert_eq!(found.len(), 1, "{found:?}");
    let all = lines(&found[0]);
    let (mut saved, mut skipped) = (Vec::new(), Vec::new());
    for line in &all {
        match line["type"].as_str() {
            Some("frame") => saved.push(line["frame_id"].as_u64().expect("id")),
            Some("skipped") => {
                skipped.extend(line["first_frame_id"].as_u64().expect("a")..=line["last_frame_id"].as_u64().expect("b"))
            }
            _ => {}
        }
    }
    let video = found[0].with_extension("mp4");
    let capture = VideoCapture::from_file(video.to_str().expect("utf-8"), CAP_ANY).expect("open");
    let count = capture.get(framebus_vision::opencv::videoio::CAP_PROP_FRAME_COUNT).expect("count");
    assert_eq!(count, saved.len() as f64, "the MP4 holds the sidecar's frames");
    (saved, skipped, all[0].clone())
}

/// `video = "stream"` with a trigger: the access units are held in whole GOPs, and the clip
/// reaches back to the last key frame at or before trigger − pre-roll (frame 30: key frame
/// 21), runs to the post-roll (frame 75), and its sidecar names the trigger and the pre-roll
/// boundary; nothing of it is skipped.
#[test]
fn a_trigger_on_the_stream_starts_its_clip_at_the_key_frame_before_the_pre_roll() {
    let dir = tempfile::tempdir().expect("dir");
    let keys = "video = \"stream\"\npre-roll-secs = 1\npost-roll-secs = 0.5\nresult-delay-secs = 0.5\n[[camera.recorder.trigger]]\nproducer = \"det\"\nlabel = \"person\"\n[camera.streamer]\n";
    let mut rec = recorder(dir.path(), keys);
    assert_eq!(rec.status().state, RecorderState::Armed);
    let units = h264_units(120, 10);
    let feed = Feed::new(200);
    for id in 1..=120 {
        if id == 62 {
            rec.on_results(&[feed.result("det", 60, "person")]);
        }
        let unit = unit_of(&feed, &units, id);
        rec.on_unit(&unit, &units[(id - 1) as usize].1);
        rec.pump(Some(Duration::ZERO));
    }
    let held = rec.status();
    assert_eq!(held.clips, 1, "{held:?}");
    assert!(held.held_secs <= 1.5 + 10.0 / 30.0 + 0.05, "at most the pre-roll and one GOP held: {held:?}");
    rec.finish();
    let (saved, skipped, head) = stream_clip(dir.path());
    assert_eq!(skipped, Vec::<u64>::new());
    assert_eq!(saved, (21..=75).collect::<Vec<u64>>());
    assert_eq!((head["trigger"]["frame_id"].as_u64(), head["first_live_frame_id"].as_u64()), (Some(60), Some(62)));
    assert_eq!(head["clip_first_frame_id"].as_u64(), Some(21), "{head}");
}

/// `video = "stream"` with a pre-roll and no trigger: `record on` carries the GOPs from
/// before the command, `record off` ends the clip, and a recorder stopped mid-clip (SIGTERM)
/// finishes a playable MP4.
#[test]
fn record_on_carries_the_stream_pre_roll_and_a_stop_finishes_the_clip() {
    let dir = tempfile::tempdir().expect("dir");
    let mut rec = recorder(dir.path(), "video = \"stream\"\npre-roll-secs = 1\n[camera.streamer]\n");
    let units = h264_units(100, 10);
    let feed = Feed::new(200);
    for id in 1..=100 {
        if id == 61 {
            rec.set_saving_at(true, feed.header(60).capture_mono_ns);
        }
        let unit = unit_of(&feed, &units, id);
        rec.on_unit(&unit, &units[(id - 1) as usize].1);
        rec.pump(Some(Duration::ZERO));
    }
    assert_eq!(rec.status().state, RecorderState::Recording);
    // The stop: what the clip wants is written and the MP4 is finished.
    rec.finish();
    let (saved, skipped, head) = stream_clip(dir.path());
    assert_eq!((saved.first(), saved.last(), skipped.len()), (Some(&21), Some(&100), 0), "{saved:?}");
    assert_eq!(head["trigger"]["source"], "manual");
    assert_eq!(lines(&sidecars(dir.path())[0]).last().expect("end")["reason"], "stop");
}

/// `video = "stream"`: an access unit lost inside the held pre-roll (a paused recorder) acts
/// when it is that unit's turn: the clip lists it as dropped, skips the units that cannot
/// decode without it up to the next key frame, and the MP4 holds exactly what the sidecar
/// lists.
#[test]
fn a_unit_lost_in_the_held_pre_roll_waits_for_the_next_key_frame_at_its_turn() {
    let dir = tempfile::tempdir().expect("dir");
    let keys = "video = \"stream\"\npre-roll-secs = 1\npost-roll-secs = 0.5\nresult-delay-secs = 0.5\n[[camera.recorder.trigger]]\nproducer = \"det\"\n[camera.streamer]\n";
    let mut rec = recorder(dir.path(), keys);
    let units = h264_units(100, 10);
    let feed = Feed::new(200);
    for id in (1..=100).filter(|id| *id != 25) {
        if id == 62 {
            rec.on_results(&[feed.result("det", 60, "person")]);
        }
        rec.on_unit(&unit_of(&feed, &units, id), &units[(id - 1) as usize].1);
        rec.pump(Some(Duration::ZERO));
    }
    rec.finish();
    let (saved, skipped, _) = stream_clip(dir.path());
    assert_eq!(skipped, (25..=30).collect::<Vec<u64>>(), "25 dropped, 26..30 wait for key frame 31");
    assert_eq!(saved, (21..=24).chain(31..=75).collect::<Vec<u64>>());
    let reasons: Vec<Value> = lines(&sidecars(dir.path())[0]).into_iter().filter(|l| l["type"] == "skipped").collect();
    assert_eq!(
        (reasons[0]["reason"].as_str(), reasons[1]["reason"].as_str()),
        (Some("dropped"), Some("wait-key-frame"))
    );
}
