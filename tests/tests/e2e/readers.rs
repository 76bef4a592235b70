//! Readers at any speed (issue 8): a reader slower than the camera still answers `ctl status`
//! and stops on SIGTERM and `ctl stop` after the frame in progress; policies take the frames
//! they promise; every frame published is accounted for (processed + skipped + overwritten);
//! the example reader runs; a reader without a free slot is told which key to raise.
//!
//! No `--max-frames` here: the readers run the way users run them, until told to stop.

use std::time::{Duration, Instant};

use framebus_e2e::{example, process_status, Proc, TestDeployment, DEADLINE};
use serde_json::Value;

/// A synthetic camera `cam0` at `width`×`height`, `fps`, plus `extra` tables.
fn camera(width: u32, height: u32, fps: u32, extra: &str) -> String {
    format!(
        "[[camera]]\nname = \"cam0\"\nwidth = {width}\nheight = {height}\nfps = {fps}\n\n[camera.source]\nkind = \"synthetic\"\n\n{extra}"
    )
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("`{key}` missing in {v}"))
}

/// `ctl status cam0 --json --timeout 0.5`: the exit code and the parsed output.
fn quick_status(d: &TestDeployment) -> (Option<i32>, Value, String) {
    let (code, out, err) = d.ctl(&["status", "cam0", "--json", "--timeout", "0.5"]);
    let value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("status is not JSON ({e}): {out}\n{err}"));
    (code, value, err)
}

/// Waits (bounded) until `role` reports `min` processed frames.
fn wait_processed(d: &TestDeployment, role: &str, min: u64) -> Value {
    d.wait_status(|s| process_status(s, "cam0", role)["frames"].as_u64() >= Some(min))
}

/// How long the process took to exit after `signal`-ing it; panics after the deadline.
fn time_exit(proc: &mut Proc, signal: i32) -> (Option<i32>, Duration) {
    let started = Instant::now();
    proc.signal(signal);
    let code = proc.wait_exit(DEADLINE);
    (code, started.elapsed())
}

/// Frames the reader had processed when it stopped (its `reader stopped ... processed=N` line).
fn processed_at_exit(proc: &Proc) -> u64 {
    let line = proc.wait_stderr(DEADLINE, "reader stopped");
    line.split_whitespace()
        .find_map(|word| word.strip_prefix("processed=")?.parse().ok())
        .unwrap_or_else(|| panic!("no processed count in `{line}`"))
}

/// Hang detector for a stop: the bound the issue sets (1 s plus the frame in progress) with
/// generous slack for a loaded machine. The precise property is checked in frames: after the
/// stop, at most the frame in progress (and one started while the request travelled) is
/// processed.
fn stop_bound(work: Duration) -> Duration {
    Duration::from_secs(1) + work + Duration::from_secs(10)
}

/// Checks a slow reader (`role`, `work` per frame) the way users see it: status answers within
/// `--timeout 0.5` every time while frames take `work`, capture keeps its rate, and the reader
/// is still running (no stall, no crash).
fn slow_reader_stays_in_charge(d: &TestDeployment, role: &str, work: Duration, rounds: usize) {
    // Capture's rate is measured over 1 s windows: wait for its first one.
    d.wait_status(|s| process_status(s, "cam0", "capture")["fps"].as_f64() > Some(0.0));
    for round in 0..rounds {
        let (code, status, err) = quick_status(d);
        assert_eq!(code, Some(0), "round {round}: status did not answer within 0.5 s: {status}\n{err}");
        let reader = process_status(&status, "cam0", role);
        assert!(reader["state"] == "running" || reader["state"] == "waiting", "round {round}: {reader}");
        let capture = process_status(&status, "cam0", "capture");
        // Capture at 30 fps must not be slowed to the reader's pace (1 / work).
        let reader_pace = 1.0 / work.as_secs_f64();
        let fps = capture["fps"].as_f64().unwrap_or(0.0);
        assert!(fps > (reader_pace * 2.0).max(15.0), "round {round}: capture at {fps} fps: {capture}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// algo at 150 ms and 2 s per frame on a 1080p30 camera, without `--max-frames`: status is
/// answered within 0.5 s while a frame is in progress, capture keeps 30 fps, and SIGTERM and
/// `ctl stop cam0 algo` end it within 1 s plus the frame in progress, leaving nothing behind.
#[test]
fn a_slow_algo_answers_status_and_stops_after_its_frame() {
    for work_ms in [150u64, 2000] {
        let work = Duration::from_millis(work_ms);
        let d = TestDeployment::new(&camera(1920, 1080, 30, "[camera.algo]\n"));
        let mut capture = d.spawn("capture", &[]);
        let work_arg = work_ms.to_string();
        let mut algo = d.spawn("algo", &["--simulate-work-ms", &work_arg]);
        wait_processed(&d, "algo", 1);
        slow_reader_stays_in_charge(&d, "algo", work, 4);

        let before = u(process_status(&quick_status(&d).1, "cam0", "algo"), "frames");
        let (code, took) = time_exit(&mut algo, libc::SIGTERM);
        assert_eq!(code, Some(0), "{}", algo.stderr_text());
        let after = processed_at_exit(&algo);
        assert!(after <= before + 2, "{after} frames processed at exit, {before} before SIGTERM: it went on working");
        assert!(took < stop_bound(work), "SIGTERM took {took:?} with {work_ms} ms frames");
        eprintln!("algo at {work_ms} ms/frame: exited {took:?} after SIGTERM ({before} -> {after} frames)");

        // `ctl stop cam0 algo`: the cooperative stop, acknowledged at once, done after the frame.
        let mut algo = d.spawn("algo", &["--simulate-work-ms", &work_arg]);
        wait_processed(&d, "algo", 1);
        let before = u(process_status(&quick_status(&d).1, "cam0", "algo"), "frames");
        let started = Instant::now();
        let (code, out, err) = d.ctl(&["stop", "cam0", "algo", "--timeout", "10", "--json"]);
        assert_eq!(code, Some(0), "{out}\n{err}");
        let stopped: Value = serde_json::from_str(&out).expect("stop result is JSON");
        assert_eq!(stopped["result"], "stopped", "not the cooperative stop: {stopped}");
        assert_eq!(algo.wait_exit(DEADLINE), Some(0), "{}", algo.stderr_text());
        let took = started.elapsed();
        let after = processed_at_exit(&algo);
        assert!(after <= before + 2, "{after} frames processed at exit, {before} before the stop: it went on working");
        assert!(took < stop_bound(work), "ctl stop took {took:?} with {work_ms} ms frames");
        eprintln!(
            "algo at {work_ms} ms/frame: exited {took:?} after ctl stop was started ({} s inside ctl; {before} -> {after} frames)",
            stopped["seconds"]
        );

        assert_eq!(capture.terminate(), Some(0), "{}", capture.stderr_text());
        d.assert_no_leftovers();
    }
}

/// A recorder slower than the camera (every 1080p frame at 60 fps as a PNG image and H.264
/// video, policy `every`; well over the 16.7 ms a frame allows on any machine we run on):
/// status answers within 0.5 s, capture keeps its rate, lost frames are counted as overwritten
/// (and listed in the sidecar), and SIGTERM finishes the segment properly within the bound.
#[test]
fn a_recorder_slower_than_the_camera_stays_in_charge() {
    let d = TestDeployment::new(&camera(
        1920,
        1080,
        60,
        "[camera.recorder]\ndirectory = \"rec\"\nenabled = true\nvideo = \"h264-mp4\"\nimages = \"png\"\nmin-free-mb = 1\n",
    ));
    let mut capture = d.spawn("capture", &[]);
    let mut recorder = d.spawn("recorder", &[]);
    let status = wait_processed(&d, "recorder", 3);
    assert_eq!(process_status(&status, "cam0", "recorder")["activity"], "recording", "{status}");
    slow_reader_stays_in_charge(&d, "recorder", Duration::from_millis(100), 4);
    let status = d.wait_status(|s| process_status(s, "cam0", "recorder")["reader"]["overwritten"].as_u64() > Some(0));
    let reader = &process_status(&status, "cam0", "recorder")["reader"];
    assert_eq!(reader["policy"], "every", "{reader}");
    assert_eq!(u(reader, "skipped"), 0, "an every reader skips nothing by policy: {reader}");

    let before = u(process_status(&quick_status(&d).1, "cam0", "recorder"), "frames");
    let (code, took) = time_exit(&mut recorder, libc::SIGTERM);
    assert_eq!(code, Some(0), "{}", recorder.stderr_text());
    let after = processed_at_exit(&recorder);
    assert!(
        after <= before + 2,
        "{after} frames taken at exit, {before} before SIGTERM: it went on draining its queue"
    );
    assert!(took < stop_bound(Duration::from_secs(1)), "SIGTERM took {took:?}");
    eprintln!("recorder writing PNG + H.264: exited {took:?} after SIGTERM");
    let rec = d.dir.path().join("rec");
    let names: Vec<String> = std::fs::read_dir(&rec)
        .expect("recordings")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n.ends_with(".jsonl") && !n.contains(".partial")), "no completed sidecar: {names:?}");
    assert!(!names.iter().any(|n| n.contains(".partial")), "a segment was left partial: {names:?}");
    assert_eq!(capture.terminate(), Some(0), "{}", capture.stderr_text());
    d.assert_no_leftovers();
}

/// Policies, each on its own camera at 100 fps: `newest` with 20 ms work processes about 50/s
/// and skips the rest; `every` keeps up losslessly when fast and counts overflow as
/// overwritten when slow; `max-fps = 4` takes about 4 frames a second.
#[test]
fn reader_policies_take_the_frames_they_promise() {
    // Runs algo under a policy; returns its status row's reader figures after warm-up, with
    // `report` (its last JSON line) and `delta` (the figures over the last 200+ camera frames,
    // after the first report: start-up work such as rendering the check pattern is excluded).
    let run = |algo_table: &str, work_ms: u64| -> Value {
        let d = TestDeployment::new(&camera(
            320,
            240,
            100,
            &format!("[camera.algo]\nstats-interval-secs = 0.5\n{algo_table}"),
        ));
        let mut capture = d.spawn("capture", &[]);
        let mut algo = d.spawn("algo", &["--json", "--simulate-work-ms", &work_ms.to_string()]);
        let reader_of = |s: &Value| process_status(s, "cam0", "algo")["reader"].clone();
        algo.wait_json(DEADLINE, |v| v["frames"].as_u64() > Some(0));
        let asked_start = Instant::now();
        let start = reader_of(&d.wait_status(|s| process_status(s, "cam0", "algo")["frames"].as_u64() > Some(0)));
        let until = u(&start, "last_frame_id") + 200;
        let report = algo.wait_json(DEADLINE, |v| v["last_id"].as_u64() > Some(until));
        assert_eq!(u(&report, "stamp_bad"), 0, "{report}");
        assert_eq!(u(&report, "out_of_order"), 0, "{report}");
        let mut end = reader_of(
            &d.wait_status(|s| process_status(s, "cam0", "algo")["reader"]["last_frame_id"].as_u64() > Some(until)),
        );
        // At least as long as the reader's own time between the two status replies.
        let wall_secs = asked_start.elapsed().as_secs_f64();
        assert_eq!(algo.terminate(), Some(0));
        assert_eq!(capture.terminate(), Some(0));
        d.assert_no_leftovers();
        let delta = |key: &str| u(&end, key) - u(&start, key);
        end["delta"] = serde_json::json!({
            "wall_secs": wall_secs,
            "seen": delta("last_frame_id"),
            "processed": delta("processed"),
            "skipped": delta("skipped"),
            "overwritten": delta("overwritten"),
        });
        end["report"] = report;
        end
    };

    let newest = run("", 20);
    assert_eq!(newest["policy"], "newest", "{newest}");
    assert!(u(&newest["report"], "skipped") > 0, "a 20 ms reader at 100 fps must skip: {newest}");
    assert_eq!(u(&newest["report"], "overwritten"), 0, "newest never counts overwritten: {newest}");

    let every_fast = run("policy = \"every\"\nqueue-depth = 4\n", 0);
    assert_eq!(every_fast["policy"], "every", "{every_fast}");
    assert_eq!(u(&every_fast, "skipped"), 0, "an every reader never skips by policy: {every_fast}");
    // Lossless while it keeps up: a loaded test machine may stall it for more than its queue
    // (40 ms) now and then, which shows as a few overwritten frames, never as skips.
    let window = &every_fast["delta"];
    assert!(
        u(window, "overwritten") * 50 <= u(window, "seen"),
        "a fast every reader lost more than 2% after warm-up: {every_fast}"
    );

    let every_slow = run("policy = \"every\"\nqueue-depth = 4\n", 20);
    assert!(u(&every_slow["report"], "overwritten") > 0, "a slow every reader overflows: {every_slow}");
    assert_eq!(u(&every_slow, "skipped"), 0, "an every reader never skips by policy: {every_slow}");
    assert_eq!(
        u(&every_slow["report"], "skipped"),
        u(&every_slow["report"], "overwritten"),
        "every reader: all losses are overwrites: {every_slow}"
    );

    let max_fps = run("policy = \"max-fps\"\nmax-fps = 4\n", 0);
    assert_eq!(max_fps["policy"], "max-fps", "{max_fps}");
    // At most 4 a second of the reader's time (one at once, then one per 250 ms), whatever rate
    // capture reaches on a loaded machine: counted between two status replies, over a wall-clock
    // span that contains the reader's own.
    let window = &max_fps["delta"];
    let (taken, wall_secs) = (u(window, "processed"), window["wall_secs"].as_f64().unwrap_or(0.0));
    assert!(
        (taken as f64) <= 4.0 * wall_secs + 1.0,
        "{taken} frames taken in at most {wall_secs:.2} s at max-fps 4: {max_fps}"
    );
    let frames = u(&max_fps["report"], "frames");
    assert!(u(&max_fps["report"], "skipped") > frames * 5, "max-fps skips the rest: {max_fps}");
}

/// The drop identity with a slow reader (algo, policy every, 30 ms per frame at 100 fps) and a
/// fast one (the example reader, newest) on one camera: at any moment, frames published since a
/// reader attached = processed + skipped + overwritten, up to its queue plus the frame in
/// flight; once capture has stopped and the readers drained, exactly.
#[test]
fn every_published_frame_is_accounted_for() {
    let d = TestDeployment::new(&camera(
        320,
        240,
        100,
        "[camera.algo]\npolicy = \"every\"\nqueue-depth = 3\n\n[[camera.reader]]\nname = \"fast\"\n",
    ));
    let mut capture = d.spawn("capture", &["--summary"]);
    let mut algo = d.spawn("algo", &["--simulate-work-ms", "30"]);
    let mut fast = Proc::spawn_command(
        "reader example",
        std::process::Command::new(example("reader"))
            .args(["--config", d.config.to_str().expect("utf-8"), "--camera", "cam0"])
            .env("FRAMEBUS_ROLE", "fast"),
    );
    fast.wait_stdout(DEADLINE, |l| l.starts_with("frame "));
    d.wait_status(|s| ["algo", "fast"].iter().all(|r| process_status(s, "cam0", r)["frames"].as_u64() > Some(20)));

    for _ in 0..5 {
        let asked = Instant::now();
        let (code, status, err) = quick_status(&d);
        // Frames published while the replies came in (capture answers first, the readers a
        // little later): the camera's rate times the length of the round trip.
        let in_flight = (100.0 * asked.elapsed().as_secs_f64()).ceil() as u64 + 1;
        assert_eq!(code, Some(0), "{status}\n{err}");
        let published = u(process_status(&status, "cam0", "capture"), "frames");
        for role in ["algo", "fast"] {
            let row = process_status(&status, "cam0", role);
            assert_eq!(row["user_reader"], role == "fast", "{row}");
            let r = &row["reader"];
            let accounted = u(r, "processed") + u(r, "skipped") + u(r, "overwritten");
            assert_eq!(accounted, u(r, "published"), "{r}");
            let since_attach = published + 1 - u(r, "first_frame_id");
            let margin = u(r, "queue_depth") + 2;
            assert!(
                accounted <= since_attach + in_flight && since_attach <= accounted + margin,
                "{role}: {since_attach} published since it attached, {accounted} accounted for (queue margin {margin}, {in_flight} published during the status round): {row}"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    // Stop capture; its summary has the final count. The readers drain their queues.
    assert_eq!(capture.terminate(), Some(0));
    let final_frames = u(&capture.wait_json(DEADLINE, |v| v["frames"].is_u64()), "frames");
    let drained = d.wait_status(|s| {
        ["algo", "fast"]
            .iter()
            .all(|r| process_status(s, "cam0", r)["reader"]["last_frame_id"].as_u64() == Some(final_frames))
    });
    for role in ["algo", "fast"] {
        let r = &process_status(&drained, "cam0", role)["reader"];
        let since_attach = final_frames + 1 - u(r, "first_frame_id");
        assert_eq!(u(r, "published"), since_attach, "{role}: every frame accounted for exactly: {r}");
        eprintln!("{role}: {r}");
    }
    let algo_r = &process_status(&drained, "cam0", "algo")["reader"];
    assert!(u(algo_r, "overwritten") > 0, "the slow every reader lost frames to overflow: {algo_r}");
    let fast_r = &process_status(&drained, "cam0", "fast")["reader"];
    assert_eq!(u(fast_r, "overwritten"), 0, "{fast_r}");
    assert_eq!(algo.terminate(), Some(0));
    assert_eq!(fast.terminate(), Some(0), "{}", fast.stderr_text());
    d.assert_no_leftovers();
}

/// The example reader prints one line per frame and exits 0 after `--frames 100`; while it
/// runs, `ctl status` lists it under its program name.
#[test]
fn the_example_reader_runs_and_is_listed() {
    let d = TestDeployment::new(&camera(320, 240, 100, ""));
    let mut capture = d.spawn("capture", &[]);
    let mut reader = Proc::spawn_command(
        "reader example",
        std::process::Command::new(example("reader")).args([
            "--config",
            d.config.to_str().expect("utf-8"),
            "--camera",
            "cam0",
            "--frames",
            "100",
        ]),
    );
    let first = reader.wait_stdout(DEADLINE, |l| l.starts_with("frame "));
    assert!(first.contains("320x240") && first.contains("latency"), "{first}");
    let status = d.wait_status(|s| process_status(s, "cam0", "reader")["frames"].as_u64() > Some(0));
    let row = process_status(&status, "cam0", "reader");
    assert_eq!(row["user_reader"], true, "{row}");
    assert_eq!(row["reader"]["policy"], "newest", "{row}");
    assert_eq!(reader.wait_exit(DEADLINE), Some(0), "{}", reader.stderr_text());
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// With every reader slot taken, one more reader is refused with the key to raise and what it
/// costs; the default config leaves room for two user readers beside algo, preview, recorder.
#[test]
fn a_reader_without_a_free_slot_is_told_what_to_raise() {
    let d = TestDeployment::new(
        "[[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\nfps = 30\nmax-readers = 1\nslots = 3\n\n[camera.source]\nkind = \"synthetic\"\n\n[camera.algo]\n",
    );
    let mut capture = d.spawn("capture", &[]);
    let mut algo = d.spawn("algo", &[]);
    wait_processed(&d, "algo", 1);
    let mut second = Proc::spawn_command(
        "reader example",
        std::process::Command::new(example("reader")).args(["--config", d.config.to_str().expect("utf-8")]),
    );
    assert_ne!(second.wait_exit(DEADLINE), Some(0));
    let err = second.stderr_text();
    assert!(
        err.contains("all 1 reader slots") && err.contains("max-readers") && err.contains("MiB of shared memory"),
        "{err}"
    );
    assert_eq!(algo.terminate(), Some(0));
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();

    let default = framebus_common::Deployment::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/default.toml"),
    )
    .expect("default config");
    let cam = default.camera(None).expect("camera");
    assert!(cam.max_readers as usize >= cam.readers().len() + 2, "no room for two user readers: {cam:?}");
}
