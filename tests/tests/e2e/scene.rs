//! The scene source (`kind = "scene"`, issue 21 item 3): objects are where the shared formula
//! puts them in the frames a reader gets, the stamps check out, and algo sees their motion.

use std::time::Instant;

use framebus_common::config::SourceConfig;
use framebus_common::pattern::verify_stamps;
use framebus_common::scene::{background_rgb, Scene};
use framebus_common::{Deployment, PixelFormat};
use framebus_e2e::{process_status, TestDeployment, DEADLINE};
use serde_json::Value;

/// A 320×240 scene camera at 30 fps with `source` appended to its `[camera.source]` table.
fn scene_camera(pixel_format: &str, source: &str) -> String {
    format!(
        "[[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\nfps = 30\npixel-format = \"{pixel_format}\"\n\n[camera.source]\nkind = \"scene\"\n{source}\n[camera.algo]\nstats-interval-secs = 0.5\n"
    )
}

const OBJECTS: &str = r#"
[[camera.source.object]]
shape = "rect"
width = 40
height = 30
color = [255, 0, 0]
start = [10, 20]
direction = 30
speed = 150

[[camera.source.object]]
shape = "circle"
radius = 15
color = [0, 255, 0]
path = "orbit"
center = [160, 120]
orbit-radius = 60
speed = 100

[[camera.source.object]]
width = 30
height = 50
color = [0, 0, 255]
start = [250, 150]
direction = 200
speed = 90
"#;

/// The scene the test's config describes, built by the same library function capture uses.
fn scene_of(config: &std::path::Path) -> Scene {
    let deployment = Deployment::load(config).expect("the test's config loads");
    let camera = deployment.camera(Some("cam0")).expect("cam0");
    let SourceConfig::Scene(source) = &camera.source else { panic!("a scene source") };
    Scene::from_config(camera, source)
}

/// A reader (the Rust `framebus::Camera`) gets BGR frames in which, for several frame ids, each
/// object's pixels (its centre and points inside its box) have its colour at the position the
/// test computes for that id, every sampled pixel outside the objects and stamp bands is the
/// background, the header flags the scene's stamp, and both stamps carry the frame id.
#[test]
fn scene_objects_are_where_the_formula_puts_them() {
    let d = TestDeployment::new(&scene_camera("BGR3", OBJECTS));
    let scene = scene_of(&d.config);
    assert_eq!(scene.objects().len(), 3);
    let mut capture = d.spawn("capture", &[]);
    let camera = framebus::Camera::builder(&d.config, "cam0")
        .and_then(|b| b.role("detector"))
        .and_then(|b| b.open())
        .expect("open the camera as `detector`");
    let (width, height) = (320u32, 240u32);
    let cell = framebus_common::pattern::stamp_cell(width);
    let pixel = |bytes: &[u8], x: i64, y: i64| {
        let at = (y as usize * width as usize + x as usize) * 3;
        [bytes[at + 2], bytes[at + 1], bytes[at]]
    };
    let until = Instant::now() + DEADLINE;
    let (mut checked, mut object_pixels, mut background_pixels) = (0, 0, 0);
    let mut ids = Vec::new();
    while checked < 12 {
        assert!(Instant::now() < until, "the camera stopped delivering frames");
        let frame = camera.frames().next().expect("the reader was stopped").expect("frame");
        let header = *frame.header();
        let id = header.frame_id;
        // Every fifth frame or so: ids spread over several seconds of motion.
        if !id.is_multiple_of(5) && checked > 0 {
            continue;
        }
        assert_eq!(header.flags, 0b11, "stamp + scene flags");
        assert_eq!(frame.pixel_format(), Some(PixelFormat::Bgr3));
        let bytes = frame.bytes();
        verify_stamps(PixelFormat::Bgr3, width, height, id, bytes).expect("both stamps carry the frame id");
        let boxes: Vec<_> = (0..3).map(|i| scene.object_box(i, id).expect("object")).collect();
        let owner = |x: i64, y: i64| (0..3).rev().find(|&i| scene.objects()[i].covers(boxes[i], x, y));
        for (i, (object, b)) in scene.objects().iter().zip(&boxes).enumerate() {
            let (cx, cy) = b.center();
            let (w, h) = (i64::from(b.width), i64::from(b.height));
            for (x, y) in [(cx, cy), (cx - w / 4, cy), (cx + w / 4, cy), (cx, cy - h / 4), (cx, cy + h / 4)] {
                let inside =
                    (0..i64::from(width)).contains(&x) && (i64::from(cell)..i64::from(height - cell)).contains(&y);
                if inside && owner(x, y) == Some(i) {
                    assert_eq!(pixel(bytes, x, y), object.color, "object {i} at {b:?}, pixel ({x}, {y}), frame {id}");
                    object_pixels += 1;
                }
            }
        }
        for y in (cell..height - cell).step_by(7) {
            for x in (0..width).step_by(9) {
                if owner(i64::from(x), i64::from(y)).is_none() {
                    assert_eq!(
                        pixel(bytes, i64::from(x), i64::from(y)),
                        background_rgb(x, y, width, height),
                        "background at ({x}, {y}), frame {id}, objects at {boxes:?}"
                    );
                    background_pixels += 1;
                }
            }
        }
        drop(frame);
        ids.push(id);
        checked += 1;
    }
    drop(camera);
    assert!(object_pixels >= 12 * 3 * 3, "most object pixels were checked: {object_pixels}");
    assert!(background_pixels > 12 * 1000, "background pixels checked: {background_pixels}");
    assert!(ids.last() > ids.first(), "{ids:?}");
    assert_eq!(capture.terminate(), Some(0), "capture stderr:\n{}", capture.stderr_text());
    d.assert_no_leftovers();
}

fn algo_report(body: &str) -> Value {
    let d = TestDeployment::new(body);
    let mut capture = d.spawn("capture", &[]);
    let mut algo = d.spawn("algo", &["--json", "--max-frames", "45"]);
    let report = algo.wait_json(DEADLINE, |v| v["frames"].as_u64() == Some(45));
    assert_eq!(algo.wait_exit(DEADLINE), Some(0), "algo stderr:\n{}", algo.stderr_text());
    assert_eq!(capture.terminate(), Some(0), "capture stderr:\n{}", capture.stderr_text());
    d.assert_no_leftovers();
    report
}

/// algo checks every scene frame's stamps (in a subsampled format too) and measures motion
/// where objects move, and almost none (only the stamp's changing cells) in a scene without
/// objects.
#[test]
fn algo_sees_motion_in_a_scene_and_almost_none_without_objects() {
    let moving = algo_report(&scene_camera("NV12", OBJECTS));
    let still = algo_report(&scene_camera("BGR3", "object = []\n"));
    for (report, name) in [(&moving, "moving"), (&still, "still")] {
        assert_eq!(report["stamp_ok"].as_u64(), Some(45), "{name}: {report}");
        assert_eq!(report["stamp_bad"].as_u64(), Some(0), "{name}: {report}");
    }
    let motion = |r: &Value| r["motion"].as_f64().unwrap_or_else(|| panic!("motion in {r}"));
    let difference = |r: &Value| r["difference"].as_f64().unwrap_or_else(|| panic!("difference in {r}"));
    // Both on the one 0..1 score scale: the share of a 64×48 thumbnail that changed, and the
    // mean grey-level change / 255; the stamp's changing cells alone change almost nothing.
    for r in [&moving, &still] {
        assert!((0.0..=1.0).contains(&motion(r)) && (0.0..=1.0).contains(&difference(r)), "{r}");
    }
    assert!(motion(&still) < 0.01, "no objects, (almost) no motion: {still}");
    assert!(
        motion(&moving) > 0.005 && motion(&moving) > 3.0 * motion(&still),
        "moving objects: {moving}, still: {still}"
    );
    assert!(difference(&moving) > 2.0 * difference(&still), "moving objects: {moving}, still: {still}");
}

/// A large object crossing the picture: its motion on the old 0–255 level scale was above 1.
const BIG_OBJECT: &str = r#"
[[camera.source.object]]
width = 120
height = 100
color = [255, 255, 255]
start = [20, 60]
direction = 0
speed = 200
path = "bounce"
"#;

/// One score scale (issue 20 item 5): with a large object moving, algo's motion in `ctl
/// status` lies in (0, 1], every result it publishes carries that same number as its score and
/// as `data.motion` (box scores and the mean difference on the same scale), and a recorder
/// trigger with a 0..1 threshold fires on it.
#[test]
fn motion_is_on_the_score_scale_in_status_results_and_triggers() {
    let body = format!(
        "{}[camera.recorder]\ndirectory = \"rec\"\nstats-interval-secs = 0.25\nmin-free-mb = 1\npost-roll-secs = 0.5\n\
         [[camera.recorder.trigger]]\nproducer = \"algo\"\nmin-score = 0.005\n",
        scene_camera("BGR3", BIG_OBJECT)
    );
    let d = TestDeployment::new(&body);
    let mut capture = d.spawn("capture", &[]);
    let mut algo = d.spawn("algo", &[]);
    let mut recorder = d.spawn("recorder", &["--json"]);
    recorder.wait_stderr(DEADLINE, "reading frames");

    let camera = framebus::Camera::builder(&d.config, "cam0")
        .and_then(|b| b.role("checker"))
        .and_then(|b| b.open())
        .expect("open the camera as `checker`");
    let until = Instant::now() + DEADLINE;
    let mut checked = 0;
    let _ = camera.results().expect("subscribe to results");
    while checked < 10 {
        assert!(Instant::now() < until, "algo published no motion results: {}", algo.stderr_text());
        drop(camera.frames().next().expect("frames").expect("frame"));
        for r in camera.results().expect("results").into_iter().filter(|r| r.producer == "algo" && !r.boxes.is_empty())
        {
            let score = r.score.expect("algo's result has a score");
            assert!(score > 0.0 && score <= 1.0, "result score on the 0..1 scale: {r:?}");
            let data = r.data["motion"].as_f64().expect("data.motion");
            assert!((data - score).abs() <= 1e-4, "data.motion is the score: {r:?}");
            let diff = r.data["difference"].as_f64().expect("data.difference");
            assert!(diff > 0.0 && diff <= 1.0, "{r:?}");
            assert!(r.boxes.iter().all(|b| b.score > 0.0 && b.score <= 1.0), "{r:?}");
            checked += 1;
        }
    }
    drop(camera);

    let motion_in = |s: &Value| -> Option<f64> {
        let message = process_status(s, "cam0", "algo")["message"].as_str()?;
        message.strip_prefix("motion ")?.split(',').next()?.parse().ok()
    };
    let status = d.wait_status(|s| motion_in(s).is_some_and(|m| m > 0.0));
    let motion = motion_in(&status).expect("motion in status");
    assert!(motion <= 1.0, "status shows motion on the 0..1 scale: {status}");
    let (code, text, _) = d.ctl(&["status"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("motion 0."), "the text status too: {text}");

    let fired = recorder.wait_json(DEADLINE, |v| v["state"] == "recording" || v["clips"].as_u64() >= Some(1));
    assert_eq!(fired["missed_triggers"].as_u64().unwrap_or(0), 0, "{fired}");
    assert_eq!(recorder.terminate(), Some(0), "{}", recorder.stderr_text());
    assert_eq!(algo.terminate(), Some(0), "{}", algo.stderr_text());
    assert_eq!(capture.terminate(), Some(0), "{}", capture.stderr_text());
    d.assert_no_leftovers();
}
