//! Wrong configs: `capture --check-config` exits 2 with the exact message naming the file, the
//! key, the bad value and what is allowed.

use framebus_e2e::Proc;

const CAMERA: &str = "[[camera]]\nname = \"cam0\"\nwidth = 640\nheight = 480\n[camera.source]\nkind = \"synthetic\"\n";

const V4L2: &str = "[[camera]]\nname = \"cam0\"\nwidth = 640\nheight = 480\n[camera.source]\nkind = \"v4l2\"\ndevice = \"/dev/video0\"\n";

/// A camera table with `extra` camera keys (placed before its `[camera.source]` sub-table).
fn camera(extra: &str) -> String {
    CAMERA.replace("[camera.source]", &format!("{extra}\n[camera.source]"))
}

/// (case name, file content, expected message after `capture: error: <file>`).
fn cases() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("unknown camera key", camera("colour = 1"), ":5:1: `camera[0].colour`: unknown field `colour`, expected one of `name`, `source`, `width`, `height`, `fps`, `pixel-format`, `slots`, `max-readers`, `algo`, `preview`, `recorder`, `streamer`, `reader`, `export`"),
        ("unknown source key", format!("{CAMERA}device = \"/dev/video0\"\n"), ":5:1: `camera[0].source`: unknown field `device`, there are no fields"),
        ("misspelt key", CAMERA.replace("width", "widht"), ":3:1: `camera[0].widht`: unknown field `widht`, expected one of `name`, `source`, `width`, `height`, `fps`, `pixel-format`, `slots`, `max-readers`, `algo`, `preview`, `recorder`, `streamer`, `reader`, `export`"),
        ("wrong type", CAMERA.replace("640", "\"640\""), ":3:9: `camera[0].width`: invalid type: string \"640\", expected u32"),
        ("unknown pixel format", camera("pixel-format = \"BGRA\""), ":5:16: `camera[0].pixel-format`: unknown pixel format `BGRA` (allowed: BGR3, RGB3, GREY, YUYV, NV12, NV21, NV16, MJPG)"),
        ("fps out of range", camera("fps = -5"), ": `camera[0].fps`: invalid value -5: allowed 0 (as fast as possible) to 1000"),
        ("unknown source kind", CAMERA.replace("synthetic", "usb"), ":6:8: `camera[0].source.kind`: unknown variant `usb`, expected one of `synthetic`, `scene`, `file`, `v4l2`"),
        ("unknown V4L2 source key", V4L2.replace("device =", "colour = 1\ndevice ="), ":5:1: `camera[0].source`: unknown field `colour`, expected one of `device`, `format`, `buffers`, `strict`, `memory`, `controls`, `media-pipeline`"),
        ("relative V4L2 device", V4L2.replace("/dev/video0", "video0"), ": `camera[0].source.device`: `video0` is not an absolute path: use e.g. `/dev/video0` or `/dev/v4l/by-id/<name>`"),
        ("V4L2 conversion capture cannot do", V4L2.replace("height = 480", "height = 480\npixel-format = \"RGB3\"").replace("kind = \"v4l2\"", "kind = \"v4l2\"\nformat = \"MJPG\""), ": `camera[0].pixel-format`: capture cannot publish RGB3 from a V4L2 device delivering MJPG (source.format): from MJPG it can publish BGR3, GREY, MJPG"),
        ("V4L2 buffers", format!("{V4L2}buffers = 1\n"), ": `camera[0].source.buffers`: invalid value 1: allowed 2 to 32"),
        ("control value of the wrong type", format!("{V4L2}[camera.source.controls]\nbrightness = 1.5\n"), ":5:1: `camera[0].source`: invalid type: floating point `1.5`, expected a V4L2 control value: an integer, true/false or a menu item name"),
        ("media pipeline without steps", format!("{V4L2}[camera.source.media-pipeline]\nkind = \"media-ctl\"\ndevice = \"/dev/media0\"\n"), ": `camera[0].source.media-pipeline`: no step configured: set `links`, `formats` or `reset = true` (or remove the table)"),
        ("too few slots", camera("slots = 4"), ": `camera[0].slots`: 4 slots cannot serve 5 readers: each needs a queue of at least 1 frame plus 1 it works on, and capture needs 1; use at least 11"),
        ("queue deeper than the slots allow", format!("{}[camera.algo]\nqueue-depth = 3\n", camera("slots = 11")), ": `camera[0].algo.queue-depth`: invalid value 3: allowed 1 to 1 with slots = 11 and max-readers = 5 (raise slots for deeper queues)"),
        ("unknown reader policy", format!("{}[camera.algo]\npolicy = \"fastest\"\n", camera("slots = 26")), ": `camera[0].algo.policy`: unknown policy `fastest`: allowed \"newest\", \"every\", \"max-fps\""),
        ("user reader with a built-in name", format!("{}[[camera.reader]]\nname = \"recorder\"\n", camera("slots = 26")), ": `camera[0].reader[0].name`: `recorder` is a built-in role: configure it in [camera.recorder], or name your reader differently"),
        ("duplicate camera", format!("{CAMERA}{CAMERA}"), ": `camera[1].name`: duplicate camera name `cam0`: names must be unique"),
        ("bad deployment name", format!("[deployment]\nname = \"My Lab\"\n{CAMERA}"), ": `deployment.name`: invalid name `My Lab`: use 1 to 14 characters of a-z, 0-9, `-` and `_`, starting with a letter or digit (iceoryx2 names the deployment's event sockets `/tmp/iceoryx2/framebus_<name>/framebus_<name>_<id of up to 39 digits>.event`, and a Unix socket path holds at most 107 bytes)"),
        ("missing video file", CAMERA.replace("kind = \"synthetic\"", "kind = \"file\"\npath = \"nowhere.mp4\""), ": `camera[0].source.path`: video file `DIR/nowhere.mp4` does not exist"),
        ("no camera", "[deployment]\nname = \"lab\"\n".to_string(), ": `camera`: no camera configured: add at least one `[[camera]]` or `[[remote-camera]]` table"),
        ("odd YUYV width", CAMERA.replace("640", "641").replace("480", "480\npixel-format = \"YUYV\""), ": `camera[0].width`: YUYV needs an even width and height, got 641x480"),
        ("TOML syntax error", camera("fps = = 3"), ":5:7: invalid string\nexpected `\"`, `'`"),
        ("recorder on the stream without a streamer", format!("{CAMERA}[camera.recorder]\nvideo = \"stream\"\n"), ": `camera[0].recorder.video`: video = \"stream\" records the H.264 of the camera's streamer, but this camera has no [camera.streamer]; add one, or set video = \"mjpg-avi\", \"mp4v-mp4\", \"h264-mp4\" or \"off\""),
        ("recorder on the stream with images", format!("{CAMERA}[camera.streamer]\n[camera.recorder]\nvideo = \"stream\"\nimages = \"jpeg\"\n"), ": `camera[0].recorder.images`: with video = \"stream\" the recorder writes the streamer's H.264 and decodes no frame: images need decoded frames; set images = \"off\" or video = \"mjpg-avi\", \"mp4v-mp4\" or \"h264-mp4\""),
        ("preview open to other machines without auth", format!("{CAMERA}[camera.preview]\nlisten = \"0.0.0.0:8080\"\n"), ": `camera[0].preview.listen`: `0.0.0.0:8080` can be reached from other machines and no viewer would be asked for a password: set `[auth] users-file` (viewers and their password hashes, see docs/configuration.md), or `[auth] allow-anonymous = true` to serve anyone who reaches it, or listen on 127.0.0.1"),
        ("missing users file", format!("[auth]\nusers-file = \"viewers.htdigest\"\n{CAMERA}"), ": `auth.users-file`: `DIR/viewers.htdigest`: does not exist; create it with `htdigest -c DIR/viewers.htdigest framebus USER` (apache2-utils) or as docs/configuration.md shows"),
    ]
}

#[test]
fn wrong_configs_fail_with_exact_messages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    for (i, (name, content, expected)) in cases().into_iter().enumerate() {
        let path = dir.path().join(format!("case{i}.toml"));
        std::fs::write(&path, &content).expect("write config");
        let path_text = path.to_str().expect("utf-8");
        let (code, _out, err) = Proc::output("capture", &["--config", path_text, "--check-config"]);
        let expected =
            format!("capture: error: {path_text}{}", expected.replace("DIR", &dir.path().display().to_string()));
        if code != Some(2) || err.trim_end() != expected {
            failures.push(format!("{name}: exit {code:?}\n  expected: {expected}\n  actual:   {}", err.trim_end()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The shipped configs are valid (those in sub-folders too, like `two-hosts/`).
#[test]
fn shipped_configs_load() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut folders = vec![root];
    let mut checked = 0;
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("configs/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                let (code, _, err) =
                    Proc::output("capture", &["--config", path.to_str().expect("utf-8"), "--check-config"]);
                assert_eq!(code, Some(0), "{}: {err}", path.display());
                checked += 1;
            }
        }
    }
    assert!(checked >= 7, "{checked} configs found");
}
