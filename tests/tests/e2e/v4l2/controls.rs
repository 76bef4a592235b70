//! Camera controls changed while capturing, at the library level the control handler will call
//! (`framebus_capture::camera_controls` on the V4L2 source): listed with their current values,
//! set with read-back, checked before anything is set (a bad one is rejected with what the
//! device offers), recorded in the camera's state, set again after a reconnect and when capture
//! starts again. What the device holds is read from the emulated device's control file.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use framebus_capture::source::{open_source, ControlError, SourceError};
use framebus_capture::{camera_controls, ControlsRequest};
use framebus_common::config::{parse_control_assignments, ControlValue};
use framebus_common::state::StateStore;
use framebus_common::Deployment;
use framebus_e2e::DEADLINE;

use super::{fake_v4l2_lib, run_to_exit, v4l2_deployment, DEVICE};

/// Set in the environment of the inner test, which runs in a child test process with the
/// emulated device preloaded.
const INNER: &str = "FRAMEBUS_E2E_FAKE_V4L2_INNER";

/// What the emulated device holds now: `Name` → value, from `FAKE_V4L2_CTRL_FILE`.
fn device_controls(file: &Path) -> HashMap<String, i64> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    text.lines()
        .filter_map(|l| l.rsplit_once('='))
        .map(|(name, value)| (name.to_string(), value.parse().unwrap_or(i64::MIN)))
        .collect()
}

/// What the device offers, as capture lists it in an error.
const OFFERED: &str = "brightness (int 0..255), contrast (int 0..255), white_balance_automatic (bool), gain (int 0..255), auto_exposure (menu: 1=Manual Mode, 3=Aperture Priority Mode), exposure_time_absolute (int 3..2047)";

/// Runs [`inner_runtime_controls`] in a child test process with the emulated device preloaded
/// (the device lives in the process that opens it), unplugging after 5 frames for 300 ms.
#[test]
fn runtime_controls_reach_the_device_survive_a_reconnect_and_bad_ones_list_what_it_offers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("controls");
    let exe = std::env::current_exe().expect("test executable");
    let out = Command::new(exe)
        .args(["--exact", "e2e::v4l2::controls::inner_runtime_controls", "--ignored", "--nocapture"])
        .env(INNER, "1")
        .env("LD_PRELOAD", fake_v4l2_lib())
        .env("FAKE_V4L2_DEVICE", DEVICE)
        .env("FAKE_V4L2_CTRL_FILE", &file)
        .env("FAKE_V4L2_VANISH_AFTER", "5")
        .env("FAKE_V4L2_VANISH_MS", "300")
        .output()
        .expect("run the inner test");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains("1 passed"), "inner test:\n{stdout}\n{stderr}");
}

/// The inner part of the test above; fails unless started by it.
#[test]
#[ignore = "runs inside runtime_controls_reach_the_device_survive_a_reconnect_and_bad_ones_list_what_it_offers"]
fn inner_runtime_controls() {
    assert!(std::env::var_os(INNER).is_some(), "run through the outer test: it preloads the emulated device");
    let file = std::path::PathBuf::from(std::env::var_os("FAKE_V4L2_CTRL_FILE").expect("control file"));
    let d = v4l2_deployment(
        (320, 240),
        30,
        "YUYV",
        "memory = \"mmap\"\n[camera.source.controls]\nbrightness = 200\n",
        false,
    );
    let deployment = Deployment::load(&d.config).expect("config loads");
    let camera = deployment.camera(None).expect("one camera").clone();
    let store = StateStore::of(&deployment);
    let mut source = open_source(&deployment, &camera).expect("the emulated device opens");
    assert_eq!(device_controls(&file)["Brightness"], 200, "config control set at open");

    let list = camera_controls(&mut *source, &store, "cam0", &ControlsRequest::List).expect("list");
    for line in [
        "brightness int 0..255 step 1 default 128 current 200",
        "white_balance_automatic bool default 1 current 1",
        "auto_exposure menu default 3 current 3 [1 = Manual Mode, 3 = Aperture Priority Mode]",
        "exposure_time_absolute int 3..2047 step 1 default 250 current 250 inactive",
    ] {
        assert!(list.lines().any(|l| l == line), "`{line}` not in:\n{list}");
    }

    let set = |source: &mut dyn framebus_capture::source::FrameSource, args: &[&str]| {
        let settings = parse_control_assignments(args).expect("assignments parse");
        camera_controls(source, &store, "cam0", &ControlsRequest::Set(settings))
    };
    let reply = set(&mut *source, &["auto_exposure=Manual Mode", "exposure_time_absolute=300", "gain=10"]);
    assert_eq!(reply, Ok("set auto_exposure = 1, exposure_time_absolute = 300, gain = 10".to_string()));
    let held = device_controls(&file);
    assert_eq!((held["Auto Exposure"], held["Exposure Time, Absolute"], held["Gain"]), (1, 300, 10));
    let list = camera_controls(&mut *source, &store, "cam0", &ControlsRequest::List).expect("list");
    assert!(list.lines().any(|l| l == "exposure_time_absolute int 3..2047 step 1 default 250 current 300"), "{list}");
    assert_eq!(
        store.recorded_controls("cam0").ok(),
        Some(vec![
            ("auto_exposure".to_string(), ControlValue::Menu("Manual Mode".into())),
            ("exposure_time_absolute".to_string(), ControlValue::Integer(300)),
            ("gain".to_string(), ControlValue::Integer(10)),
        ])
    );

    // Nothing is set when one setting is wrong, and the error says what the device offers.
    let unknown = set(&mut *source, &["gain=20", "bogus=1"]);
    assert_eq!(unknown, Err(ControlError::Rejected(format!("{DEVICE} has no control `bogus`; it offers: {OFFERED}"))));
    let out_of_range = set(&mut *source, &["gain=999"]);
    assert_eq!(
        out_of_range,
        Err(ControlError::Rejected(format!(
            "control `gain` = 999 is out of range: allowed 0..255 (step 1) on {DEVICE}"
        )))
    );
    let bad_menu = set(&mut *source, &["auto_exposure=Shutter Priority Mode"]);
    assert!(
        matches!(&bad_menu, Err(ControlError::Rejected(m)) if m.contains("has no menu item `Shutter Priority Mode` (items: 1 = Manual Mode, 3 = Aperture Priority Mode)")),
        "{bad_menu:?}"
    );
    assert_eq!(device_controls(&file)["Gain"], 10, "a rejected list sets nothing");

    // The device unplugs after 5 frames and comes back with its defaults; the reconnect sets the
    // config's controls and then the ones set at runtime.
    let until = Instant::now() + DEADLINE;
    loop {
        assert!(Instant::now() < until, "the device never went away");
        match source.grab() {
            Ok(_) | Err(SourceError::NoFrameYet) => {}
            Err(SourceError::Unavailable(_)) => break,
            Err(other) => panic!("grab: {}", framebus_capture::source::describe_error(&other)),
        }
    }
    assert_eq!(device_controls(&file)["Gain"], 0, "the replugged device starts from its defaults");
    let busy = set(&mut *source, &["gain=5"]);
    assert!(matches!(&busy, Err(ControlError::Unavailable(m)) if m.contains("nothing was set")), "{busy:?}");
    loop {
        assert!(Instant::now() < until, "the device never came back");
        match source.reconnect() {
            Ok(()) => break,
            Err(SourceError::Unavailable(_)) => std::thread::sleep(Duration::from_millis(50)),
            Err(other) => panic!("reconnect: {}", framebus_capture::source::describe_error(&other)),
        }
    }
    let held = device_controls(&file);
    assert_eq!(
        (held["Brightness"], held["Auto Exposure"], held["Exposure Time, Absolute"], held["Gain"]),
        (200, 1, 300, 10),
        "set again after the reconnect: {held:?}"
    );
    let frame = loop {
        assert!(Instant::now() < until, "no frame after the reconnect");
        match source.grab() {
            Ok(grab) => break grab,
            Err(SourceError::NoFrameYet) => {}
            Err(other) => panic!("grab: {}", framebus_capture::source::describe_error(&other)),
        }
    };
    assert_eq!(frame.payload_len, 320 * 240 * 2);
    drop(source);
    d.assert_no_leftovers();
}

/// Controls recorded in the camera's state (set while an earlier capture ran) are set when
/// capture starts, after the config's, so they win; a recorded control the device no longer
/// has is logged and skipped rather than stopping capture.
#[test]
fn recorded_controls_are_set_again_when_capture_starts() {
    let d = v4l2_deployment((320, 240), 30, "YUYV", "[camera.source.controls]\nbrightness = 200\n", false);
    let deployment = Deployment::load(&d.config).expect("config loads");
    let recorded = [
        ("brightness".to_string(), ControlValue::Integer(100)),
        ("focus_absolute".to_string(), ControlValue::Integer(1)),
        ("gain".to_string(), ControlValue::Integer(7)),
    ];
    StateStore::of(&deployment).record_controls("cam0", &recorded).expect("record");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("controls");
    let file_text = file.to_str().expect("utf-8");
    let env = [("FAKE_V4L2_LOG", "1"), ("FAKE_V4L2_CTRL_FILE", file_text)];
    let (code, stderr) = run_to_exit(&d, &env, &["--max-frames", "3"]);
    assert_eq!(code, Some(0), "{stderr}");
    let config_set = stderr.find("'Brightness' = 200 (was 128)").expect("config control set");
    let recorded_set = stderr.find("'Brightness' = 100 (was 200)").expect("recorded control set after it");
    assert!(config_set < recorded_set, "{stderr}");
    assert!(stderr.contains("'Gain' = 7 (was 0)"), "{stderr}");
    assert!(
        stderr.contains("recorded control not set again") && stderr.contains("no control `focus_absolute`"),
        "{stderr}"
    );
    let held = device_controls(&file);
    assert_eq!((held["Brightness"], held["Gain"]), (100, 7));
    d.assert_no_leftovers();
}

/// `ctl control cam0 list|set` through the running capture: the list shows every control with
/// its current value; a set reaches the device (its control file), is reported as the device
/// read it back, and is set again every time the device comes back from an unplug (it returns
/// with its defaults every 45 frames here); a bad name is refused with what the device offers
/// and sets nothing; malformed arguments are usage errors; a camera without controls says so.
#[test]
fn ctl_control_lists_and_sets_while_capturing_and_a_reconnect_keeps_the_values() {
    let d = v4l2_deployment((320, 240), 30, "YUYV", "", false);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("controls");
    let env = [
        ("FAKE_V4L2_LOG", "1"),
        ("FAKE_V4L2_CTRL_FILE", file.to_str().expect("utf-8")),
        ("FAKE_V4L2_VANISH_AFTER", "45"),
        ("FAKE_V4L2_VANISH_MS", "200"),
        ("FAKE_V4L2_VANISH_REPEAT", "1"),
    ];
    let mut capture = super::spawn_capture(&d, &env, &[]);
    capture.wait_stderr(DEADLINE, "capturing:");

    // The device is away for a moment every 45 frames: then capture refuses (nothing is set)
    // and the command is sent again.
    let until = Instant::now() + DEADLINE;
    let ctl = |args: &[&str]| loop {
        let (code, out, err) = d.ctl(&[&["--timeout", "5"][..], args].concat());
        if code == Some(0) || !err.contains("is away") {
            return (code, out, err);
        }
        assert!(Instant::now() < until, "{out}{err}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let (code, out, err) = ctl(&["control", "cam0", "list"]);
    assert_eq!(code, Some(0), "{out}{err}");
    for line in [
        "brightness int 0..255 step 1 default 128 current 128",
        "auto_exposure menu default 3 current 3 [1 = Manual Mode, 3 = Aperture Priority Mode]",
    ] {
        assert!(out.lines().any(|l| l == line), "`{line}` not in:\n{out}");
    }
    assert_eq!(out.lines().count(), 6, "{out}");
    let set = ["control", "cam0", "set", "auto_exposure=Manual Mode", "exposure_time_absolute=300", "gain=10"];
    let (code, out, err) = ctl(&set);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out.trim(), "cam0: set auto_exposure = 1, exposure_time_absolute = 300, gain = 10");

    let (code, out, err) = ctl(&["control", "cam0", "set", "gain=20", "bogus=1"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains(&format!("has no control `bogus`; it offers: {OFFERED}")), "{err}");
    let (code, _, err) = d.ctl(&["control", "cam0", "set", "gain"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`gain` is not a control assignment: write name=value"), "{err}");

    // Set again after every reconnect: the device's reset to defaults is followed by our value.
    let until = Instant::now() + DEADLINE;
    loop {
        let stderr = capture.stderr_text();
        if stderr.matches("'Gain' = 10 (was 0)").count() >= 2 && stderr.contains("V4L2 device reopened") {
            assert!(!stderr.contains("'Gain' = 20"), "a refused list set nothing:\n{stderr}");
            break;
        }
        assert!(Instant::now() < until, "the control was not set again after a reconnect:\n{stderr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    loop {
        let held = device_controls(&file);
        if (held["Auto Exposure"], held["Exposure Time, Absolute"], held["Gain"]) == (1, 300, 10) {
            break;
        }
        assert!(Instant::now() < until, "the device does not hold the values: {held:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, out, err) = ctl(&["--json", "control", "cam0", "list"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let lines: Vec<&str> = v["controls"].as_array().expect("controls").iter().filter_map(|l| l.as_str()).collect();
    assert!(lines.iter().any(|l| l.starts_with("gain int 0..255 step 1 default 0 current")), "{out}");
    assert_eq!(capture.terminate(), Some(0), "{}", capture.stderr_text());
    d.assert_no_leftovers();

    let synthetic = framebus_e2e::TestDeployment::new(&framebus_e2e::synthetic_camera("cam0", 320, 240, 30));
    let mut capture = synthetic.spawn("capture", &[]);
    capture.wait_stderr(DEADLINE, "capturing:");
    let (code, out, err) = synthetic.ctl(&["--timeout", "5", "control", "cam0", "list"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("has no camera controls"), "{err}");
    assert_eq!(capture.terminate(), Some(0));
    synthetic.assert_no_leftovers();
}
