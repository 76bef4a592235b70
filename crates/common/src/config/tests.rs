//! Config parsing and validation: good files load, bad ones give exact messages.

use std::path::Path;

use super::*;
use crate::policy::ReaderPolicy;

fn load(text: &str) -> Result<Deployment, ConfigError> {
    Deployment::from_toml(Path::new("test.toml"), text)
}

const GOOD: &str = r#"
[deployment]
name = "lab"

[[camera]]
name = "cam0"
width = 640
height = 480
[camera.source]
kind = "synthetic"
[camera.algo]
"#;

#[test]
fn a_minimal_deployment_loads_with_defaults() {
    let d = load(GOOD).expect("valid config");
    let cam = d.camera(None).expect("one camera");
    assert_eq!(cam.fps, defaults::FPS);
    assert_eq!(cam.format(), PixelFormat::Bgr3);
    assert_eq!(cam.algo.as_ref().map(|a| a.queue_depth), Some(1));
    let layout = cam.slot_layout();
    assert_eq!(layout.slots(), 26);
    assert_eq!(layout.max_queue_depth, 4);
    assert_eq!(layout.max_readers, 5, "room for two user readers beside algo, preview and recorder");
    assert_eq!(layout.payload_bytes(), 26 * 921_600);
    let algo = cam.reader_spec(&Role::from(ProcessRole::Algo)).expect("algo is a configured reader");
    assert_eq!(algo.policy, ReaderPolicy::Newest);
}

/// Policies: the built-in defaults, per-reader choices, user readers; bad ones name the key.
#[test]
fn reader_policies_load_and_bad_ones_name_the_key() {
    let text = format!(
        "{GOOD}[camera.recorder]\n[[camera.reader]]\nname = \"plates\"\npolicy = \"max-fps\"\nmax-fps = 2.5\ncommand = [\"python3\", \"plates.py\"]\n"
    );
    let d = load(&text).expect("valid config");
    let cam = d.camera(None).expect("one camera");
    let roles: Vec<String> = cam.roles().iter().map(|r| r.as_str().to_string()).collect();
    assert_eq!(roles, ["capture", "algo", "recorder", "plates"]);
    assert_eq!(cam.reader_spec(&Role::from(ProcessRole::Recorder)).map(|r| r.policy), Some(ReaderPolicy::Every));
    let plates = cam.reader_spec(&Role::new("plates").expect("role")).expect("user reader");
    assert_eq!((plates.policy, plates.queue_depth), (ReaderPolicy::MaxFps(2.5), 1));
    assert_eq!(cam.processes(), [ProcessRole::Capture, ProcessRole::Algo, ProcessRole::Recorder]);

    let check = |extra: &str, expected: &str| {
        let e = load(&format!("{GOOD}{extra}")).expect_err("must be rejected");
        assert_eq!(format!("`{}`: {}", e.key, e.message), expected, "{extra}");
    };
    check(
        "policy = \"latest\"\n",
        "`camera[0].algo.policy`: unknown policy `latest`: allowed \"newest\", \"every\", \"max-fps\"",
    );
    check(
        "policy = \"max-fps\"\n",
        "`camera[0].algo.policy`: policy \"max-fps\" needs `max-fps = <frames per second>`",
    );
    check(
        "[[camera.reader]]\nname = \"algo\"\n",
        "`camera[0].reader[0].name`: `algo` is a built-in role: configure it in [camera.algo], or name your reader differently",
    );
    check(
        "[[camera.reader]]\nname = \"Plates!\"\n",
        "`camera[0].reader[0].name`: invalid reader role name `Plates!`: use 1 to 24 characters of a-z, 0-9, `-` and `_`, starting with a letter",
    );
}

/// `[camera.preview]` and `[camera.recorder]` load with their documented defaults.
/// The reader settings are defined once (`reader_table!`) but stay keys of each table: each
/// table lists its own keys in its own order when one is misspelt, and each reader's
/// settings are read through the one `reader()`.
#[test]
fn every_reader_table_keeps_its_keys_and_their_order() {
    let check = |extra: &str, expected: &str| {
        let e = load(&format!("{GOOD}{extra}")).expect_err("must be rejected");
        assert_eq!(format!("`{}`: {}", e.key, e.message), expected, "{extra}");
    };
    check(
        "queue-dept = 1\n",
        "`camera[0].algo.queue-dept`: unknown field `queue-dept`, expected one of `queue-depth`, `policy`, `max-fps`, `stats-interval-secs`",
    );
    check(
        "[camera.preview]\nmaxfps = 1\n",
        "`camera[0].preview.maxfps`: unknown field `maxfps`, expected one of `enabled`, `queue-depth`, `policy`, `max-fps`, `fps`, `max-width`, `max-height`, `jpeg-quality`, `overlay`, `results`, `result-max-age-ms`, `listen`, `max-viewers`, `max-connections`, `request-timeout-secs`, `stats-interval-secs`",
    );
    check(
        "[camera.streamer]\nrate = 1\n",
        "`camera[0].streamer.rate`: unknown field `rate`, expected one of `queue-depth`, `policy`, `max-fps`, `encoder`, `bitrate-kbps`, `gop`, `low-latency`, `stall-secs`, `overlay`, `stats-interval-secs`",
    );
    check(
        "[camera.streamer]\noverlay = \"yes\"\n",
        "`camera[0].streamer.overlay`: invalid type: string \"yes\", expected a boolean",
    );
    check(
        "[[camera.reader]]\nname = \"plates\"\nqueue = 1\n",
        "`camera[0].reader[0].queue`: unknown field `queue`, expected one of `name`, `policy`, `max-fps`, `queue-depth`, `command`",
    );
    let text = format!("{GOOD}queue-depth = 2\npolicy = \"every\"\n[camera.recorder]\nmax-fps = 5\n");
    let d = load(&text).expect("valid config");
    let cam = d.camera(None).expect("one camera");
    let algo = cam.algo.as_ref().expect("algo").reader();
    assert_eq!(algo, ReaderSettings { queue_depth: 2, policy: Some("every"), max_fps: None });
    assert_eq!(algo.policy(ReaderPolicy::Newest), Ok(ReaderPolicy::Every));
    let recorder = cam.reader_spec(&Role::from(ProcessRole::Recorder)).expect("recorder");
    assert_eq!((recorder.policy, recorder.key.as_str()), (ReaderPolicy::MaxFps(5.0), "recorder"));
}

#[test]
fn preview_and_recorder_tables_load_with_defaults() {
    let d = load(&format!("{GOOD}[camera.preview]\n[camera.recorder]\n")).expect("valid config");
    let cam = d.camera(None).expect("one camera");
    let preview = cam.preview.as_ref().expect("preview table");
    assert!(preview.enabled);
    assert_eq!(preview.fps, defaults::PREVIEW_FPS);
    assert_eq!(preview.listen_addr().to_string(), "127.0.0.1:8080");
    assert_eq!(preview.request_timeout_secs, defaults::PREVIEW_REQUEST_TIMEOUT_SECS);
    assert_eq!(preview.max_connections, defaults::PREVIEW_MAX_CONNECTIONS);
    let recorder = cam.recorder.as_ref().expect("recorder table");
    assert!(!recorder.enabled, "saving is off until asked for");
    assert_eq!(recorder.queue_depth, defaults::RECORDER_QUEUE_DEPTH);
    assert_eq!(recorder.video, VideoFormat::MjpgAvi);
    assert_eq!(recorder.images, ImageFormat::Off);
    assert_eq!(recorder.effective_video_fps(cam.fps), defaults::FPS);
}

/// Events on a camera with a streamer record its H.264 by default (with the 5 s pre-roll);
/// without triggers, or without a streamer, MJPG AVI stays the default; a written `video`
/// always wins, and the stream takes a pre-roll and triggers.
#[test]
fn events_on_a_streaming_camera_record_the_stream_by_default() {
    let trigger = "[[camera.recorder.trigger]]\nproducer = \"algo\"\n";
    let video = |tables: &str| {
        let d = load(&format!("{GOOD}{tables}")).expect("valid config");
        let recorder = d.camera(None).expect("one camera").recorder.clone().expect("recorder table");
        (recorder.video, recorder.effective_pre_roll_secs())
    };
    let pre = defaults::RECORDER_PRE_ROLL_SECS;
    assert_eq!(video(&format!("[camera.streamer]\n[camera.recorder]\n{trigger}")), (VideoFormat::Stream, pre));
    assert_eq!(video("[camera.streamer]\n[camera.recorder]\n"), (VideoFormat::MjpgAvi, 0.0));
    assert_eq!(video(&format!("[camera.recorder]\n{trigger}")), (VideoFormat::MjpgAvi, pre));
    let written = format!("[camera.streamer]\n[camera.recorder]\nvideo = \"h264-mp4\"\n{trigger}");
    assert_eq!(video(&written), (VideoFormat::H264Mp4, pre));
    let stream = "[camera.streamer]\n[camera.recorder]\nvideo = \"stream\"\npre-roll-secs = 3\n";
    assert_eq!(video(stream), (VideoFormat::Stream, 3.0));
}

/// Bad preview and recorder values name `camera[i].<table>.<key>` and what is allowed.
#[test]
fn bad_preview_and_recorder_values_name_the_key() {
    let check = |table: &str, expected: &str| {
        let e = load(&format!("{GOOD}{table}")).expect_err("must be rejected");
        assert_eq!(format!("`{}`: {}", e.key, e.message), expected, "{table}");
    };
    check(
        "[camera.preview]\nfps = 0\n",
        "`camera[0].preview.fps`: invalid value 0: allowed 0.1 to 60 preview images per second",
    );
    check(
        "[camera.preview]\nlisten = \"localhost\"\n",
        "`camera[0].preview.listen`: invalid address `localhost`: use ip:port, e.g. `127.0.0.1:8080` (port 0 picks a free port)",
    );
    check(
        "[camera.preview]\njpeg-quality = 0\n",
        "`camera[0].preview.jpeg-quality`: invalid value 0: allowed 1 to 100",
    );
    check(
        "[camera.preview]\nrequest-timeout-secs = 0\n",
        "`camera[0].preview.request-timeout-secs`: invalid value 0: allowed 0.1 to 300 seconds",
    );
    check(
        "[camera.preview]\nmax-connections = 0\n",
        "`camera[0].preview.max-connections`: invalid value 0: allowed 1 to 4096",
    );
    check(
        "[camera.recorder]\nqueue-depth = 5\n",
        "`camera[0].recorder.queue-depth`: invalid value 5: allowed 1 to 4 with slots = 26 and max-readers = 5 (raise slots for deeper queues)",
    );
    check(
        "[camera.recorder]\nvideo = \"off\"\n",
        "`camera[0].recorder.video`: nothing to record: video = \"off\" and images = \"off\"; set video = \"mjpg-avi\", \"mp4v-mp4\", \"h264-mp4\" or \"stream\", or images = \"jpeg\" or \"png\"",
    );
    check(
        "[camera.recorder]\nvideo = \"stream\"\n",
        "`camera[0].recorder.video`: video = \"stream\" records the H.264 of the camera's streamer, but this camera has no [camera.streamer]; add one, or set video = \"mjpg-avi\", \"mp4v-mp4\", \"h264-mp4\" or \"off\"",
    );
    check(
        "[camera.streamer]\n[camera.recorder]\nvideo = \"stream\"\nimages = \"jpeg\"\n",
        "`camera[0].recorder.images`: with video = \"stream\" the recorder writes the streamer's H.264 and decodes no frame: images need decoded frames; set images = \"off\" or video = \"mjpg-avi\", \"mp4v-mp4\" or \"h264-mp4\"",
    );
    check(
        "[camera.recorder]\nsegment-secs = 0\n",
        "`camera[0].recorder.segment-secs`: invalid value 0: allowed 0.1 to 86400 seconds",
    );
    check(
        "[camera.recorder]\nimage-every = 0\n",
        "`camera[0].recorder.image-every`: invalid value 0: allowed 1 (every frame) or more",
    );
    check(
        "[camera.recorder]\nfile-mode = \"0755\"\n",
        "`camera[0].recorder.file-mode`: invalid mode 0755: allowed read/write bits only, with read and write for the owner: \"0600\" (only the recording user, default), \"0640\" (its group may read), \"0644\" (everyone may read)",
    );
    check(
        "[camera.recorder]\nfile-mode = 0o400\n",
        "`camera[0].recorder.file-mode`: invalid mode 0400: allowed read/write bits only, with read and write for the owner: \"0600\" (only the recording user, default), \"0640\" (its group may read), \"0644\" (everyone may read)",
    );
    check(
        "[camera.recorder]\nvideo = \"h265\"\n",
        "`camera[0].recorder.video`: unknown variant `h265`, expected one of `mjpg-avi`, `mp4v-mp4`, `h264-mp4`, `stream`, `off`",
    );
    check(
        "[camera.recorder]\nfree-mb = 3\n",
        "`camera[0].recorder.free-mb`: unknown field `free-mb`, expected one of `enabled`, `queue-depth`, `policy`, `max-fps`, `directory`, `video`, `video-fps`, `images`, `image-every`, `image-max-fps`, `jpeg-quality`, `segment-secs`, `min-free-mb`, `min-free-inodes`, `delete-oldest`, `stats-interval-secs`, `pre-roll-secs`, `post-roll-secs`, `max-clip-secs`, `result-delay-secs`, `pre-roll-max-mb`, `max-age-days`, `max-total-mb`, `trigger`, `file-mode`",
    );
}

/// Triggers load in file order with the pre-roll on by default; a trigger without a condition,
/// a bad producer, label or number names `camera[i].recorder.trigger[j].<key>`.
#[test]
fn recorder_triggers_load_and_bad_ones_name_the_key() {
    let text = format!(
        "{GOOD}[camera.recorder]\npost-roll-secs = 2\nmax-total-mb = 100\nmax-age-days = 7\n[[camera.recorder.trigger]]\nproducer = \"algo\"\nmin-score = 0.05\n[[camera.recorder.trigger]]\nlabel = \"person\"\nmin-box-score = 0.5\n"
    );
    let d = load(&text).expect("valid config");
    let recorder = d.camera(None).expect("camera").recorder.clone().expect("recorder");
    assert_eq!(recorder.trigger.len(), 2);
    assert_eq!(recorder.trigger[0].producer.as_deref(), Some("algo"));
    assert_eq!(recorder.trigger[1].describe(), "label = \"person\", min-box-score = 0.5");
    assert_eq!(recorder.effective_pre_roll_secs(), defaults::RECORDER_PRE_ROLL_SECS, "on with triggers");
    assert_eq!((recorder.post_roll_secs, recorder.max_total_mb, recorder.max_age_days), (2.0, Some(100), Some(7.0)));
    assert_eq!(RecorderConfig::default().effective_pre_roll_secs(), 0.0, "off without triggers: continuous as before");

    let check = |table: &str, expected: &str| {
        let e = load(&format!("{GOOD}[camera.recorder]\n{table}")).expect_err("must be rejected");
        assert_eq!(format!("`{}`: {}", e.key, e.message), expected, "{table}");
    };
    check(
        "[[camera.recorder.trigger]]\n",
        "`camera[0].recorder.trigger[0]`: a trigger needs at least one condition: `producer`, `min-score`, `label` or `min-box-score`",
    );
    check(
        "[[camera.recorder.trigger]]\nproducer = \"Algo!\"\n",
        "`camera[0].recorder.trigger[0].producer`: invalid reader role name `Algo!`: use 1 to 24 characters of a-z, 0-9, `-` and `_`, starting with a letter (the producer's role name, e.g. \"algo\")",
    );
    check(
        "[[camera.recorder.trigger]]\nlabel = \"a-label-longer-than-24-bytes\"\n",
        "`camera[0].recorder.trigger[0].label`: invalid label `a-label-longer-than-24-bytes`: allowed 1 to 24 printable ASCII characters (what results carry)",
    );
    check(
        "[[camera.recorder.trigger]]\nmin-score = nan\n",
        "`camera[0].recorder.trigger[0].min-score`: invalid value NaN: allowed a number from 0 to 1 (every score is on that scale, docs/results.md)",
    );
    // A threshold on the old 0–255 motion scale never fires: refused, naming the scale.
    check(
        "[[camera.recorder.trigger]]\nproducer = \"algo\"\nmin-score = 12\n",
        "`camera[0].recorder.trigger[0].min-score`: invalid value 12: allowed a number from 0 to 1 (every score is on that scale, docs/results.md)",
    );
    check(
        "[[camera.recorder.trigger]]\nlabel = \"person\"\nmin-box-score = -0.5\n",
        "`camera[0].recorder.trigger[0].min-box-score`: invalid value -0.5: allowed a number from 0 to 1 (every score is on that scale, docs/results.md)",
    );
    check(
        "[[camera.recorder.trigger]]\nproducer = \"algo\"\nscore = 1\n",
        "`camera[0].recorder.trigger[0].score`: unknown field `score`, expected one of `producer`, `min-score`, `label`, `min-box-score`",
    );
    check("post-roll-secs = -1\n", "`camera[0].recorder.post-roll-secs`: invalid value -1: allowed 0 to 3600 seconds");
    check(
        "max-total-mb = 0\n",
        "`camera[0].recorder.max-total-mb`: invalid value 0: allowed 1 or more MiB (leave it out for no size limit)",
    );
    check(
        "max-age-days = 0\n",
        "`camera[0].recorder.max-age-days`: invalid value 0: allowed more than 0 days (leave it out for no age limit)",
    );
}

/// The pre-roll's memory estimate: frames × a JPEG size per frame; a config whose estimate
/// exceeds `pre-roll-max-mb` is refused with the figures.
#[test]
fn a_pre_roll_beyond_the_memory_limit_is_refused_with_its_figures() {
    let recorder = RecorderConfig { pre_roll_secs: Some(5.0), ..RecorderConfig::default() };
    let estimate = recorder.pre_roll_estimate(1920, 1080, 30.0);
    assert_eq!(estimate.secs, 6.0, "5 s + 1 s for late results");
    assert_eq!(estimate.frames, 180);
    assert_eq!(estimate.frame_bytes, 1_036_800, "0.5 byte a pixel at quality 90");
    assert!(estimate.bytes < recorder.pre_roll_max_bytes(), "1080p30 fits the default limit");
    let text = GOOD.replace("width = 640\nheight = 480", "width = 3840\nheight = 2160")
        + "[camera.recorder]\npre-roll-secs = 5\n";
    let e = load(&text).expect_err("4K at 5 s is over 256 MiB");
    assert_eq!(e.key, "camera[0].recorder.pre-roll-secs");
    assert_eq!(
        e.message,
        "a pre-roll of 5 s (+ result-delay-secs = 1 s) at 3840x2160, 30 fps holds 180 JPEG frames of about 3.96 MiB (jpeg-quality = 90): about 712 MiB, more than pre-roll-max-mb = 256; lower pre-roll-secs or jpeg-quality, or raise pre-roll-max-mb"
    );
    load(&(text + "pre-roll-max-mb = 1024\n")).expect("a higher limit accepts it");
}

/// Every configured reader counts against max-readers.
#[test]
fn preview_and_recorder_count_as_readers() {
    let e = load(
        &format!("{GOOD}[camera.preview]\n[camera.recorder]\n")
            .replace("height = 480", "height = 480\nmax-readers = 2"),
    )
    .expect_err("three readers, two allowed");
    assert_eq!(e.key, "camera[0].max-readers");
    assert_eq!(e.message, "3 readers are configured (algo, preview, recorder), more than max-readers = 2");
}

/// A V4L2 camera: device and published formats, controls in file order, media-ctl steps.
#[test]
fn a_v4l2_camera_keeps_its_controls_in_file_order() {
    let text = GOOD.replace(
        "kind = \"synthetic\"",
        "kind = \"v4l2\"\ndevice = \"/dev/v4l/by-id/usb-cam\"\nformat = \"MJPG\"\n[camera.source.controls]\nwhite_balance_automatic = false\nauto_exposure = \"Manual Mode\"\nexposure_time_absolute = 300\n[camera.source.media-pipeline]\nkind = \"media-ctl\"\ndevice = \"/dev/media0\"\nlinks = [\"'a':0 -> 'b':0 [1]\"]",
    );
    let d = load(&text).expect("valid config");
    let cam = d.camera(None).expect("one camera");
    let SourceConfig::V4l2(v4l2) = &cam.source else { panic!("a v4l2 source: {:?}", cam.source) };
    assert_eq!(v4l2.device_format(cam.format()), PixelFormat::Mjpg);
    assert_eq!(v4l2.buffers, defaults::V4L2_BUFFERS);
    let names: Vec<&str> = v4l2.controls.0.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["white_balance_automatic", "auto_exposure", "exposure_time_absolute"]);
    assert_eq!(v4l2.controls.0[0].1, ControlValue::Bool(false));
    assert_eq!(v4l2.controls.0[1].1, ControlValue::Menu("Manual Mode".into()));
    assert!(matches!(v4l2.media_pipeline, Some(MediaPipelineConfig::MediaCtl(_))));
}

/// Control names are normalised like `v4l2-ctl` prints them.
#[test]
fn control_names_are_normalised() {
    assert_eq!(normalize_control_name("Exposure Time, Absolute"), "exposure_time_absolute");
    assert_eq!(normalize_control_name("White Balance, Automatic"), "white_balance_automatic");
    assert_eq!(normalize_control_name("brightness"), "brightness");
}

/// Which device → published format pairs capture converts in one pass.
#[test]
fn v4l2_conversions_are_single_pass_only() {
    use PixelFormat::*;
    assert_eq!(v4l2_conversion(Mjpg, Bgr3), Some(Conversion::Decode));
    assert_eq!(v4l2_conversion(Yuyv, Bgr3), Some(Conversion::Convert));
    assert_eq!(v4l2_conversion(Nv12, Nv12), Some(Conversion::Passthrough));
    assert_eq!(v4l2_conversion(Mjpg, Rgb3), None);
    assert_eq!(v4l2_conversion(Bgr3, Yuyv), None);
}

/// `memory` takes auto (the default), userptr or mmap; userptr needs the device format
/// published as it is.
#[test]
fn v4l2_memory_is_checked_against_the_conversion() {
    let v4l2 = |published: &str, source: &str| {
        format!(
            "[deployment]\nname = \"lab\"\n[[camera]]\nname = \"cam0\"\nwidth = 640\nheight = 480\npixel-format = \"{published}\"\n[camera.source]\nkind = \"v4l2\"\ndevice = \"/dev/video0\"\n{source}"
        )
    };
    let memory = |text: &str| {
        let d = load(text).expect("loads");
        match &d.camera(None).expect("one camera").source {
            SourceConfig::V4l2(v) => v.memory,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(memory(&v4l2("YUYV", "")), V4l2Memory::Auto);
    assert_eq!(memory(&v4l2("NV12", "memory = \"userptr\"")), V4l2Memory::Userptr);
    assert_eq!(memory(&v4l2("BGR3", "format = \"MJPG\"\nmemory = \"mmap\"")), V4l2Memory::Mmap);
    let e = load(&v4l2("BGR3", "format = \"YUYV\"\nmemory = \"userptr\"")).expect_err("a conversion");
    assert_eq!(e.key, "camera[0].source.memory");
    assert!(
        e.message.contains("the device delivers YUYV and the camera publishes BGR3; use `auto` or `mmap`"),
        "{}",
        e.message
    );
    let e = load(&v4l2("MJPG", "memory = \"userptr\"")).expect_err("compressed");
    assert_eq!(e.key, "camera[0].source.memory");
    let e = load(&v4l2("YUYV", "memory = \"dmabuf\"")).expect_err("unknown");
    assert_eq!(e.message, "unknown variant `dmabuf`, expected one of `auto`, `userptr`, `mmap`");
}

/// A V4L2 camera that may capture with USERPTR reserves its driver buffers in shared memory
/// (and the budget counts them); one that converts, or uses mmap, does not. Reader queues are
/// the same either way.
#[test]
fn userptr_buffers_count_in_the_shared_memory() {
    let camera = |published: &str, source: &str| {
        let text = format!(
            "[deployment]\nname = \"lab\"\n[[camera]]\nname = \"cam0\"\nwidth = 640\nheight = 480\npixel-format = \"{published}\"\n[camera.source]\nkind = \"v4l2\"\ndevice = \"/dev/video0\"\n{source}"
        );
        let d = load(&text).expect("loads");
        d.camera(None).expect("one camera").slot_layout()
    };
    let userptr = camera("YUYV", "");
    let mmap = camera("YUYV", "memory = \"mmap\"");
    let converted = camera("BGR3", "format = \"YUYV\"");
    assert_eq!((userptr.publisher_loans, userptr.slots()), (4, mmap.slots() + 3));
    assert_eq!((mmap.publisher_loans, converted.publisher_loans), (1, 1));
    assert_eq!(userptr.max_queue_depth, mmap.max_queue_depth);
    assert_eq!(camera("NV12", "buffers = 8").publisher_loans, 8);
}

/// `name=value` arguments become control settings; values are integers, booleans or menu
/// item names; malformed arguments are errors naming them.
#[test]
fn control_assignments_parse_from_arguments() {
    let parsed = parse_control_assignments(&[
        "Exposure Time, Absolute=200",
        "auto_exposure=\"Manual Mode\"",
        "awb=false",
        "x=-3",
    ]);
    assert_eq!(
        parsed,
        Ok(vec![
            ("exposure_time_absolute".to_string(), ControlValue::Integer(200)),
            ("auto_exposure".to_string(), ControlValue::Menu("Manual Mode".into())),
            ("awb".to_string(), ControlValue::Bool(false)),
            ("x".to_string(), ControlValue::Integer(-3)),
        ])
    );
    assert_eq!(
        parse_control_assignments(&["brightness"]),
        Err("`brightness` is not a control assignment: write name=value, e.g. brightness=128".to_string())
    );
    assert!(parse_control_assignments(&["=3"]).is_err_and(|e| e.contains("no control name")));
    assert!(parse_control_assignments(&["gain="]).is_err_and(|e| e.contains("no value")));
    assert!(parse_control_assignments(&["gain=1", "Gain=2"]).is_err_and(|e| e.contains("set twice")));
}

/// Arguments travel as one text and come back as the same arguments, values with spaces quoted.
#[test]
fn control_arguments_round_trip_through_the_request_text() {
    let args = ["auto_exposure=Manual Mode", "gain=10", "x=\"a b\""];
    let text = control_assignments_text(&args, 256).expect("fits");
    assert_eq!(text, "auto_exposure=\"Manual Mode\" gain=10 x=\"a b\"");
    let back = split_control_text(&text);
    assert_eq!(back, ["auto_exposure=\"Manual Mode\"", "gain=10", "x=\"a b\""]);
    assert_eq!(
        parse_control_assignments(&back).map(|v| v.into_iter().map(|(_, v)| v).collect::<Vec<_>>()),
        Ok(vec![ControlValue::Menu("Manual Mode".into()), ControlValue::Integer(10), ControlValue::Menu("a b".into())])
    );
    assert!(control_assignments_text(&["gain=10"; 40], 256).is_err_and(|e| e.contains("set fewer at once")));
    assert!(control_assignments_text(&["name=caf\u{e9}"], 256).is_err_and(|e| e.contains("printable ASCII")));
    assert!(control_assignments_text(&["name=a\"b"], 256).is_err_and(|e| e.contains("double quote")));
}

/// A streamer with a media server: defaults, its role among the processes, the publish URL
/// derived from the server; bad values name their key and what is allowed.
#[test]
fn streamer_and_media_server_load_and_bad_values_name_the_key() {
    let text = format!("[media-server]\n{GOOD}[camera.streamer]\n");
    let d = load(&text).expect("valid config");
    let cam = d.camera(None).expect("one camera");
    let streamer = cam.streamer.as_ref().expect("streamer");
    assert_eq!(
        (streamer.encoder, streamer.bitrate_kbps, streamer.gop, streamer.low_latency),
        (EncoderChoice::Auto, 4000, 30, true)
    );
    assert_eq!(cam.processes(), [ProcessRole::Capture, ProcessRole::Algo, ProcessRole::Streamer]);
    assert_eq!(cam.reader_spec(&Role::from(ProcessRole::Streamer)).map(|r| r.policy), Some(ReaderPolicy::Newest));
    let server = d.media_server.as_ref().expect("server");
    assert!(server.start);
    assert_eq!(server.ice_addresses(), ["127.0.0.1"]);

    let everywhere =
        load(&format!("[auth]\nallow-anonymous = true\n[media-server]\nrtsp = \"0.0.0.0:9554\"\nhttp = \"0.0.0.0:9889\"\n{GOOD}[camera.streamer]\n"))
            .expect("valid config");
    assert!(everywhere.media_server.as_ref().expect("server").ice_addresses().is_empty());

    // WHEP's CORS origins: the preview's own by default, the configured ones when set.
    let with_preview =
        load(&format!("[media-server]\n{GOOD}[camera.preview]\nlisten = \"127.0.0.1:8080\"\n[camera.streamer]\n"))
            .expect("valid");
    assert_eq!(with_preview.media_server_origins(), ["http://127.0.0.1:8080", "http://localhost:8080"]);
    let configured =
        load(&format!("[media-server]\nallowed-origins = [\"https://nvr.example:8443\"]\n{GOOD}[camera.streamer]\n"))
            .expect("valid");
    assert_eq!(configured.media_server_origins(), ["https://nvr.example:8443"]);
    for bad in ["*", "http://x/y", "ftp://x", "http://", "null"] {
        let e =
            load(&format!("[media-server]\nallowed-origins = [\"{bad}\"]\n{GOOD}[camera.streamer]\n")).expect_err(bad);
        assert_eq!(e.key, "media-server.allowed-origins", "{bad}: {e}");
    }
    // A streamer needs no media server: it publishes on shared memory (the recorder may be
    // its only reader). Publishing anywhere over the network is gone: `url` is refused.
    load(&format!("{GOOD}[camera.streamer]\nencoder = \"x264\"\n")).expect("valid without a media server");
    let e = load(&format!("{GOOD}[camera.streamer]\nurl = \"rtsp://nvr:8554/gate\"\n")).expect_err("url is gone");
    assert!(e.to_string().contains("url"), "{e}");

    let check = |before: &str, after: &str, expected: &str| {
        let e = load(&format!("{before}{GOOD}[camera.streamer]\n{after}")).expect_err("must be rejected");
        assert_eq!(format!("`{}`: {}", e.key, e.message), expected, "{before} {after}");
    };
    check("[media-server]\n", "policy = \"every\"\n", "`camera[0].streamer.policy`: `every` is not allowed for the streamer: a live stream must not fall behind; use `newest` or `max-fps`");
    check(
        "[media-server]\n",
        "bitrate-kbps = 10\n",
        "`camera[0].streamer.bitrate-kbps`: invalid value 10: allowed 64 to 200000 kbit/s",
    );
    check("[media-server]\n", "gop = 0\n", "`camera[0].streamer.gop`: invalid value 0: allowed 1 to 1000 frames");
    check(
        "[media-server]\nrtsp = \"nowhere\"\n",
        "",
        "`media-server.rtsp`: invalid address `nowhere`: use ip:port, e.g. `127.0.0.1:8554`",
    );
    check(
        "[media-server]\nhttp = \"127.0.0.1:8554\"\n",
        "",
        "`media-server.http`: `127.0.0.1:8554` is also the RTSP address: use another port",
    );
    check(
        "[media-server]\nwebrtc-viewers = 0\n",
        "",
        "`media-server.webrtc-viewers`: invalid value 0: allowed 1 to 256",
    );
    let e =
        load(&format!("[media-server]\n{GOOD}[camera.streamer]\nencoder = \"nvenc\"\n")).expect_err("unknown encoder");
    assert!(e.to_string().contains("encoder"), "{e}");
}

/// `file-mode` takes an octal string or a TOML integer; folders get x where r is set.
#[test]
fn the_recordings_file_mode_loads_in_both_spellings() {
    for (text, mode) in [("", 0o600), ("file-mode = \"0640\"\n", 0o640), ("file-mode = 0o644\n", 0o644)] {
        let d = load(&format!("{GOOD}[camera.recorder]\n{text}")).expect("valid config");
        let recorder = d.camera(None).expect("camera").recorder.clone().expect("recorder");
        assert_eq!(recorder.file_mode.0, mode, "{text}");
    }
    assert_eq!(FileMode(0o600).dir_mode(), 0o700);
    assert_eq!(FileMode(0o640).dir_mode(), 0o750);
    assert_eq!(FileMode(0o644).dir_mode(), 0o755);
}

/// Deployment names are limited by iceoryx2's event-socket paths: 14 characters fit, 15 do not;
/// the cap on shared memory counts every camera.
#[test]
fn names_and_shared_memory_are_limited_to_what_runs() {
    assert_eq!(max_deployment_name_len(), 14);
    assert!(crate::limits::longest_event_socket_path(&"a".repeat(14)) <= crate::limits::MAX_SOCKET_PATH);
    let named = |name: &str| GOOD.replace("name = \"lab\"", &format!("name = \"{name}\""));
    assert!(load(&named(&"a".repeat(14))).is_ok());
    let e = load(&named(&"a".repeat(15))).expect_err("15 characters");
    assert_eq!(e.key, "deployment.name");
    let two = format!(
        "[deployment]\nname = \"lab\"\nmax-shared-memory-mb = 40\n{}{}",
        &GOOD[GOOD.find("[[camera]]").expect("camera")..],
        GOOD[GOOD.find("[[camera]]").expect("camera")..].replace("cam0", "cam1")
    );
    let e = load(&two).expect_err("two cameras of 24 MiB each exceed 40 MiB");
    assert_eq!(e.key, "camera[1].slots", "{}", e.message);
    assert!(e.message.contains("already taken by the cameras before it"), "{}", e.message);
}

/// A streamer adds the encoded service to the camera's shared memory (and so to the budget),
/// sized for every subscriber it may have (media server, recorder, bridge); without one the
/// camera needs exactly its frame service.
#[test]
fn a_streamer_counts_the_encoded_service_in_shared_memory() {
    let plain = load(GOOD).expect("valid");
    let plain = plain.camera(None).expect("camera");
    assert_eq!(plain.shared_memory_bytes(), plain.slot_layout().shared_memory_bytes());
    let stream = load(&format!("{GOOD}[camera.streamer]\n[camera.recorder]\nvideo = \"stream\"\n")).expect("valid");
    let stream = stream.camera(None).expect("camera");
    let layout = stream.encoded_layout();
    let extra = stream.shared_memory_bytes() - stream.slot_layout().shared_memory_bytes();
    let subscribers = crate::encoded::ENCODED_MAX_SUBSCRIBERS;
    assert_eq!(subscribers, 3, "recorder + media server + bridge");
    assert!(extra >= (subscribers * layout.queue * layout.max_au_bytes) as u64, "{extra}");
}

const SCENE: &str = r#"
[deployment]
name = "lab"

[[camera]]
name = "cam0"
width = 640
height = 480
[camera.source]
kind = "scene"
"#;

/// A scene loads with its defaults: no objects listed is the default scene, `object = []` the
/// background only, listed objects keep their order and keys.
#[test]
fn a_scene_source_loads_with_defaults() {
    let d = load(SCENE).expect("valid config");
    let SourceConfig::Scene(scene) = &d.camera(None).expect("camera").source else { panic!("a scene source") };
    assert!(scene.objects.is_none());
    assert_eq!(
        (scene.noise, scene.lighting, scene.lighting_period_secs),
        (0, 0.0, defaults::SCENE_LIGHTING_PERIOD_SECS)
    );
    let d = load(&SCENE.replace("kind = \"scene\"", "kind = \"scene\"\nobject = []")).expect("valid config");
    let SourceConfig::Scene(scene) = &d.camera(None).expect("camera").source else { panic!("a scene source") };
    assert_eq!(scene.objects.as_ref().map(Vec::len), Some(0));
    let text = format!(
        "{SCENE}noise = 4\nlighting = 0.3\n[[camera.source.object]]\nshape = \"circle\"\nradius = 20\ncolor = [255, 255, 0]\npath = \"orbit\"\ncenter = [100, 100]\norbit-radius = 50\n[[camera.source.object]]\nwidth = 10\nspeed = 0\n"
    );
    let d = load(&text).expect("valid config");
    let SourceConfig::Scene(scene) = &d.camera(None).expect("camera").source else { panic!("a scene source") };
    let objects = scene.objects.as_deref().expect("objects");
    assert_eq!(
        (objects[0].shape(), objects[0].path(), objects[0].radius),
        (SceneShape::Circle, ScenePath::Orbit, Some(20))
    );
    assert_eq!(
        (objects[1].shape(), objects[1].path(), objects[1].width),
        (SceneShape::Rect, ScenePath::Bounce, Some(10))
    );
    assert_eq!(d.camera(None).expect("camera").source.kind(), "scene");
}

/// Every bad scene key is refused naming the file's key and what is allowed.
#[test]
fn bad_scene_keys_name_the_key_and_the_allowed_values() {
    let check = |extra: &str, expected: &str| {
        let e = load(&format!("{SCENE}{extra}")).expect_err("must be rejected");
        assert_eq!(format!("`{}`: {}", e.key, e.message), expected, "{extra}");
    };
    let object = "[[camera.source.object]]\n";
    check("noise = 65\n", "`camera[0].source.noise`: invalid value 65: allowed 0 (off) to 64");
    check("lighting = 1.5\n", "`camera[0].source.lighting`: invalid value 1.5: allowed 0.0 (off) to 0.9");
    check(
        "lighting-period-secs = 0\n",
        "`camera[0].source.lighting-period-secs`: invalid value 0: allowed 0.1 to 3600",
    );
    check(&format!("{object}width = 641\n"), "`camera[0].source.object[0].width`: invalid value 641: allowed 1 to 640");
    check(
        &format!("{object}{object}height = 0\n"),
        "`camera[0].source.object[1].height`: invalid value 0: allowed 1 to 480",
    );
    check(
        &format!("{object}shape = \"circle\"\nradius = 300\n"),
        "`camera[0].source.object[0].radius`: invalid value 300: allowed 1 to 240",
    );
    check(
        &format!("{object}radius = 10\n"),
        "`camera[0].source.object[0].radius`: only a `circle` has a radius: give a `rect` width and height",
    );
    check(
        &format!("{object}shape = \"circle\"\nwidth = 10\n"),
        "`camera[0].source.object[0].width`: a `circle` has a radius, not a width or height",
    );
    check(
        &format!("{object}color = [0, 256, 0]\n"),
        "`camera[0].source.object[0].color`: invalid value [0, 256, 0]: allowed [r, g, b], each 0 to 255",
    );
    check(
        &format!("{object}speed = -1\n"),
        "`camera[0].source.object[0].speed`: invalid value -1: allowed 0 to 10000 pixels per second",
    );
    check(
        &format!("{object}start = [600, 0]\n"),
        "`camera[0].source.object[0].start`: [600, 0] puts the object (80x60) outside the 640x480 frame: allowed x 0 to 560, y 0 to 420",
    );
    check(
        &format!("{object}center = [1, 2]\n"),
        "`camera[0].source.object[0].center`: `center` belongs to `path = \"orbit\"`; a bounce has `start` and `direction`",
    );
    check(
        &format!("{object}path = \"orbit\"\ndirection = 10\n"),
        "`camera[0].source.object[0].direction`: `direction` belongs to `path = \"bounce\"`; an orbit has `center`, `orbit-radius` and `phase`",
    );
    check(
        &format!("{object}path = \"orbit\"\norbit-radius = -2\n"),
        "`camera[0].source.object[0].orbit-radius`: invalid value -2: allowed 0 to 640",
    );
    check(
        &format!("{object}shape = \"triangle\"\n"),
        "`camera[0].source.object[0].shape`: unknown shape `triangle`: allowed `rect`, `circle`",
    );
    check(
        &format!("{object}path = \"zigzag\"\n"),
        "`camera[0].source.object[0].path`: unknown path `zigzag`: allowed `bounce`, `orbit`",
    );
    // An unknown key inside the tagged `[camera.source]` table is reported at the table (serde
    // buffers it), with the line and the allowed keys.
    let e = load(&format!("{SCENE}{object}colour = [1, 2, 3]\n")).expect_err("unknown key");
    assert_eq!(e.key, "camera[0].source");
    assert!(e.message.starts_with("unknown field `colour`, expected one of `shape`, `width`"), "{e}");
    let mjpg = SCENE.replace("height = 480", "height = 480\npixel-format = \"MJPG\"");
    let e = load(&mjpg).expect_err("MJPG is refused");
    assert_eq!(
        format!("`{}`: {}", e.key, e.message),
        "`camera[0].pixel-format`: the scene source produces raw frames: allowed BGR3, RGB3, GREY, YUYV, NV12"
    );
}

/// A listener other machines can reach (media server `rtsp`/`http`, a preview's `listen`,
/// `[deployment] metrics`) with no users file is refused naming the file, the key and the fix,
/// unless `[auth] allow-anonymous = true`; loopback needs neither. A users file must exist, be
/// private to its owner (and group) and hold valid lines; it and `allow-anonymous` exclude each
/// other.
#[test]
fn listeners_beyond_loopback_need_auth_or_allow_anonymous() {
    let streamer = format!("{GOOD}[camera.streamer]\n");
    let exposed = [
        ("media-server.rtsp", format!("[media-server]\nrtsp = \"0.0.0.0:9554\"\n{streamer}")),
        ("media-server.http", format!("[media-server]\nhttp = \"192.0.2.7:9889\"\n{streamer}")),
        ("camera[0].preview.listen", format!("{GOOD}[camera.preview]\nlisten = \"0.0.0.0:8080\"\n")),
        ("deployment.metrics", GOOD.replace("name = \"lab\"", "name = \"lab\"\nmetrics = \"[::]:9464\"")),
    ];
    for (key, text) in &exposed {
        let e = load(text).expect_err(key);
        assert_eq!(e.key, *key, "{e}");
        assert_eq!(e.file, Path::new("test.toml"));
        assert!(e.message.contains("can be reached from other machines"), "{e}");
        assert!(e.message.contains("[auth] users-file") && e.message.contains("allow-anonymous = true"), "{e}");
        load(&format!("[auth]\nallow-anonymous = true\n{text}")).unwrap_or_else(|e| panic!("{key}: {e}"));
    }
    // Loopback (v4 and v6) needs no auth.
    load(&format!("[media-server]\nrtsp = \"127.0.0.2:9554\"\nhttp = \"[::1]:9889\"\n{streamer}")).expect("loopback");
    load(&GOOD.replace("name = \"lab\"", "name = \"lab\"\nmetrics = \"127.0.0.1:0\"")).expect("loopback metrics");

    // A users file instead of allow-anonymous.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("deployment.toml");
    let users = dir.path().join("viewers.htdigest");
    let with_users =
        |text: &str| Deployment::from_toml(&config, &format!("[auth]\nusers-file = \"viewers.htdigest\"\n{text}"));
    let e = with_users(&exposed[0].1).expect_err("missing users file");
    assert_eq!(e.key, "auth.users-file");
    assert!(e.message.contains("does not exist") && e.message.contains("htdigest -c"), "{e}");
    std::fs::write(&users, "viewer:framebus:0a802798b50121af1f43c3da67e0b568\n").expect("write");
    std::fs::set_permissions(&users, std::os::unix::fs::PermissionsExt::from_mode(0o644)).expect("chmod");
    let e = with_users(&exposed[0].1).expect_err("world-readable users file");
    assert!(e.key == "auth.users-file" && e.message.contains("chmod 600"), "{e}");
    std::fs::set_permissions(&users, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    for (key, text) in &exposed {
        let d = with_users(text).unwrap_or_else(|e| panic!("{key} with a users file: {e}"));
        let viewers = d.viewer_users().expect("readable").expect("users");
        assert_eq!(viewers.users.len(), 1);
        assert_eq!(viewers.users[0].name, "viewer");
    }
    std::fs::write(&users, "viewer:other-realm:0a802798b50121af1f43c3da67e0b568\n").expect("write");
    let e = with_users(GOOD).expect_err("wrong realm");
    assert!(e.key == "auth.users-file" && e.message.contains("line 1") && e.message.contains("realm"), "{e}");
    let e = load(&format!("[auth]\nusers-file = \"x\"\nallow-anonymous = true\n{GOOD}")).expect_err("both");
    assert_eq!(e.key, "auth.allow-anonymous");
    // Without [auth] nothing is asked.
    assert_eq!(load(GOOD).expect("valid").viewer_users().expect("no file"), None);
}

/// `[tls]`: both files must exist and hold PEM blocks of the right kind; the key must be
/// private. The scheme of the servers' URLs follows.
#[test]
fn tls_files_are_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("deployment.toml");
    let with_tls =
        || Deployment::from_toml(&config, &format!("[tls]\ncertificate = \"c.pem\"\nkey = \"k.pem\"\n{GOOD}"));
    let e = with_tls().expect_err("missing certificate");
    assert!(e.key == "tls.certificate" && e.message.contains("does not exist"), "{e}");
    std::fs::write(dir.path().join("c.pem"), "not pem").expect("write");
    let e = with_tls().expect_err("not PEM");
    assert!(e.key == "tls.certificate" && e.message.contains("BEGIN CERTIFICATE"), "{e}");
    std::fs::write(dir.path().join("c.pem"), "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n")
        .expect("write");
    let e = with_tls().expect_err("missing key");
    assert_eq!(e.key, "tls.key", "{e}");
    let key = dir.path().join("k.pem");
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n").expect("write");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).expect("chmod");
    let e = with_tls().expect_err("world-readable key");
    assert!(e.key == "tls.key" && e.message.contains("chmod 600"), "{e}");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    let d = with_tls().expect("valid");
    assert_eq!(d.http_scheme(), "https");
    assert!(d.tls_files().expect("readable").is_some());
    assert_eq!(load(GOOD).expect("valid").http_scheme(), "http");
}

/// `[zenoh]`, `[camera.export]` and `[[remote-camera]]`: a site and a viewer load; a remote
/// camera becomes a camera with a remote source; errors name the table and key.
#[test]
fn zenoh_export_and_remote_cameras_load_and_bad_ones_name_the_key() {
    let site = format!(
        "{GOOD}[camera.export]\nresults-back = true\n[camera.export.frames]\nmax-fps = 15\nwidth = 320\nheight = 240\n[zenoh]\nsite = \"hq\"\n"
    );
    let d = load(&site).expect("valid site");
    let zenoh = d.zenoh.as_ref().expect("[zenoh]");
    assert_eq!(zenoh.listen, [defaults::ZENOH_LISTEN]);
    assert_eq!(zenoh.mode, ZenohMode::Peer);
    let cam = d.camera(None).expect("one camera");
    let export = cam.export.as_ref().expect("export");
    assert_eq!(export.frames.as_ref().map(|f| f.size(cam)), Some((320, 240)));
    assert!(!export.allow_remote_control);
    let bridge = cam.reader_spec(&Role::new("bridge").expect("role")).expect("the bridge reads exported frames");
    assert_eq!(bridge.policy, ReaderPolicy::MaxFps(15.0));

    let viewer = "[deployment]\nname = \"view\"\n[zenoh]\nsite = \"desk\"\nlisten = []\nconnect = [\"tcp/127.0.0.1:7447\"]\n[[remote-camera]]\nname = \"site-cam0\"\nsite = \"hq\"\ndeployment = \"lab\"\ncamera = \"cam0\"\nwidth = 320\nheight = 240\n[remote-camera.preview]\n";
    let d = load(viewer).expect("valid viewer");
    let cam = d.camera(Some("site-cam0")).expect("the remote camera is a camera");
    assert_eq!(cam.source.kind(), "remote");
    assert!(matches!(&cam.source, SourceConfig::Remote(r) if r.camera == "cam0" && r.video == RemoteVideo::Raw));

    let check = |text: &str, expected: &str| {
        let e = load(text).expect_err("must be rejected");
        assert_eq!(format!("`{}`: {}", e.key, e.message), expected);
    };
    check(
        &format!("{GOOD}[zenoh]\nsite = \"hq\"\nlisten = [\"tcp/0.0.0.0:7447\"]\n"),
        "`zenoh.listen[0]`: `tcp/0.0.0.0:7447` would carry frames, results and control in plain text beyond this host: use `tls/0.0.0.0:7447` with a [zenoh.tls] table (mutual TLS, docs/multi-host.md), or set `allow-plaintext = true` in [zenoh] for a network you trust",
    );
    assert!(load(&format!("{GOOD}[zenoh]\nsite = \"hq\"\nlisten = [\"tcp/0.0.0.0:7447\"]\nallow-plaintext = true\n"))
        .is_ok());
    check(
        &format!("{GOOD}[camera.export]\n"),
        "`camera[0].export`: the bridge exports over Zenoh: add a [zenoh] table (site, listen), or remove [camera.export]",
    );
    check(
        &format!("{GOOD}[camera.export]\nencoded = true\n[zenoh]\nsite = \"hq\"\n"),
        "`camera[0].export.encoded`: encoded = true exports the H.264 of the camera's streamer, but this camera has no [camera.streamer]: add one, or remove `encoded`",
    );
    check(
        &viewer.replace("width = 320", "width = 320\nvideo = \"h264\"\npixel-format = \"GREY\""),
        "`remote-camera[0].pixel-format`: video = \"h264\" is decoded into BGR3: set pixel-format = \"BGR3\" (not GREY)",
    );
    check(
        &viewer.replace("[zenoh]\nsite = \"desk\"\nlisten = []\nconnect = [\"tcp/127.0.0.1:7447\"]\n", ""),
        "`remote-camera`: remote cameras are imported by the bridge over Zenoh: add a [zenoh] table (site, connect)",
    );
}

/// The two-host example configs load (site exports, viewer imports).
#[test]
fn the_two_host_examples_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/two-hosts");
    for name in ["site.toml", "viewer.toml"] {
        let d = Deployment::load(&root.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(d.zenoh.is_some(), "{name}");
    }
}

/// `[[deployment.webhook]]` loads with its defaults; a bad URL, event, timeout or queue names
/// the key and what is allowed.
#[test]
fn webhooks_load_and_bad_ones_name_the_key() {
    let with = |hook: &str| GOOD.replace("name = \"lab\"", &format!("name = \"lab\"\n[[deployment.webhook]]\n{hook}"));
    let d = load(&with("url = \"http://127.0.0.1:9000/hook\"")).expect("loads");
    let hook = &d.deployment.webhook[0];
    assert_eq!(hook.events, vec![WebhookEvent::Start, WebhookEvent::End]);
    assert_eq!((hook.timeout_secs, hook.max_queue), (5.0, 256));
    let check = |hook: &str, expected: &str| {
        let e = load(&with(hook)).expect_err("must be rejected");
        assert_eq!(format!("`{}`: {}", e.key, e.message), expected, "{hook}");
    };
    check(
        "url = \"ftp://x\"",
        "`deployment.webhook[0].url`: invalid URL `ftp://x`: use http[s]://host[:port][/path], e.g. `http://127.0.0.1:9000/framebus` (no credentials, no fragment)",
    );
    check(
        "url = \"http://h/\"\nca-file = \"ca.pem\"",
        "`deployment.webhook[0].ca-file`: `http://h/` is not https: a CA file is only used over TLS",
    );
    check(
        "url = \"http://h/\"\nevents = []",
        "`deployment.webhook[0].events`: no event: allowed values are \"start\" and \"end\"",
    );
    check(
        "url = \"http://h/\"\ntimeout-secs = 0",
        "`deployment.webhook[0].timeout-secs`: invalid value 0: allowed 0.1 to 60 (seconds)",
    );
    check(
        "url = \"http://h/\"\nmax-queue = 0",
        "`deployment.webhook[0].max-queue`: invalid value 0: allowed 1 to 100000 (events)",
    );
    let e = load(&with("url = \"http://h/\"\nevents = [\"begin\"]")).expect_err("unknown event");
    assert!(e.message.contains("unknown variant `begin`, expected `start` or `end`"), "{e}");
}

/// A camera may not take the name of a per-deployment process: `ctl restart mediaserver` must
/// mean one thing. The media server is listed as the deployment's process only with its table.
#[test]
fn a_camera_named_like_the_media_server_is_refused() {
    let text = GOOD.replace("name = \"cam0\"", "name = \"mediaserver\"");
    let err = load(&text).expect_err("refused").to_string();
    assert!(err.contains("camera[0].name") && err.contains("camera name `mediaserver`"), "{err}");
    assert!(load(GOOD).expect("valid").deployment_processes().is_empty());
    let with_server = GOOD.replace("[[camera]]", "[media-server]\n\n[[camera]]");
    let d = load(&with_server).expect("valid");
    assert_eq!(d.deployment_processes(), vec![crate::names::DeploymentProcess::MediaServer]);
}

/// A webhook's `ca-file` must hold certificates and its `secret-file` must be private and long
/// enough; errors name the key.
#[test]
fn webhook_files_are_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("deployment.toml");
    let hook =
        "[[deployment.webhook]]\nurl = \"https://127.0.0.1:9443/h\"\nca-file = \"ca.pem\"\nsecret-file = \"secret\"";
    let d = Deployment::from_toml(&config, &GOOD.replace("name = \"lab\"", &format!("name = \"lab\"\n{hook}")))
        .expect("loads");
    let e = d.webhook_files(0).err().expect("no CA file");
    assert!(e.key == "deployment.webhook[0].ca-file" && e.message.contains("does not exist"), "{e}");
    std::fs::write(dir.path().join("ca.pem"), "not pem").expect("write");
    let e = d.webhook_files(0).err().expect("not PEM");
    assert!(e.key == "deployment.webhook[0].ca-file" && e.message.contains("BEGIN CERTIFICATE"), "{e}");
    std::fs::write(dir.path().join("ca.pem"), "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n")
        .expect("write");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "short\n").expect("write");
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o640)).expect("chmod");
    let e = d.webhook_files(0).err().expect("readable by the group");
    assert!(e.key == "deployment.webhook[0].secret-file" && e.message.contains("chmod 600"), "{e}");
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    let e = d.webhook_files(0).err().expect("too short");
    assert!(e.message.contains("has 5 characters"), "{e}");
    std::fs::write(&secret, "0123456789abcdef0123\n").expect("write");
    let files = d.webhook_files(0).expect("valid");
    assert_eq!(files.secret.as_deref(), Some(&b"0123456789abcdef0123"[..]));
    assert!(files.ca_pem.is_some_and(|p| p.contains("BEGIN CERTIFICATE")));
}
