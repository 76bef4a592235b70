//! Issue 21 item 5: every process in `ctl status` and the metrics. A deployment under `ctl up`
//! with a streamer, a recorder and the media server, one RTSP viewer (ffmpeg): the metrics
//! endpoint's figures agree with `ctl status --json` (same viewer count, bytes out rising, key
//! frames as often as the GOP says, the recorder's clip after `ctl record on/off`); and `ctl
//! restart|start|stop|logs mediaserver` reach the media server through the supervisor.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

use framebus_e2e::{http_get, process_status, TestDeployment, DEADLINE};

/// Key frame interval of the test's streamer.
const GOP: u64 = 15;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A deployment with a streamer, a recorder and the media server; metrics on `metrics`.
fn deployment(rtsp: u16, http: u16, metrics: u16) -> TestDeployment {
    let d = TestDeployment::new(&format!(
        "[media-server]\nrtsp = \"127.0.0.1:{rtsp}\"\nhttp = \"127.0.0.1:{http}\"\n\n\
         [[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\nfps = 30\n\n\
         [camera.source]\nkind = \"scene\"\n\n\
         [camera.streamer]\nbitrate-kbps = 800\ngop = {GOP}\nstats-interval-secs = 0.5\n\n\
         [camera.recorder]\ndirectory = \"rec\"\nsegment-secs = 1.0\nmin-free-mb = 1\nstats-interval-secs = 0.5\n"
    ));
    // `[deployment]` is written by the testkit: the metrics address goes in that table.
    let text = std::fs::read_to_string(&d.config).expect("config");
    let text = text.replacen(
        "state-dir = \"state\"\n",
        &format!("state-dir = \"state\"\nmetrics = \"127.0.0.1:{metrics}\"\n"),
        1,
    );
    std::fs::write(&d.config, text).expect("config");
    d
}

/// The media server's row of a status.
fn media_server(status: &serde_json::Value) -> &serde_json::Value {
    process_status(status, "_deployment", "mediaserver")
}

/// The media server's figures of cam0 in a status.
fn served(status: &serde_json::Value) -> serde_json::Value {
    media_server(status)["cameras"][0].clone()
}

/// The streamer's figures in a status.
fn streamer(status: &serde_json::Value) -> serde_json::Value {
    process_status(status, "cam0", "streamer")["streamer"].clone()
}

fn number(value: &serde_json::Value) -> u64 {
    value.as_u64().unwrap_or_else(|| panic!("not a count: {value}"))
}

/// A count inside a wait: a status whose process did not answer in time (a loaded machine)
/// has no figure yet, which is not a reason to stop waiting.
fn count_or_zero(value: &serde_json::Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

/// The value of the series `name{labels}` in a scrape (labels as they are printed).
fn series(scrape: &str, name: &str, labels: &str) -> f64 {
    let head = format!("{name}{{{labels}}} ");
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(&head))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no series {head} in the scrape:\n{scrape}"))
}

fn scrape(metrics: u16) -> String {
    let (code, _, body) = http_get(&format!("http://127.0.0.1:{metrics}/"), "/metrics");
    assert_eq!(code, 200);
    String::from_utf8(body).expect("utf-8 scrape")
}

/// An RTSP viewer (ffmpeg decoding the stream to nowhere), killed on drop.
struct Viewer(Child);

impl Viewer {
    fn start(url: &str) -> Viewer {
        let child = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-f", "null", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg is installed (scripts/bootstrap.sh)");
        Viewer(child)
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The scrape and `ctl status --json` show the same figures, each from the process that
/// produces it: one RTSP viewer on both, bytes out rising between them, key frames once per
/// GOP, the media server's access units following the streamer's; after `ctl record on/off`
/// the recorder counts one clip whose event is manual, on both; the viewer gone, 0 viewers.
#[test]
fn metrics_and_status_agree_on_the_media_server_streamer_and_recorder_events() {
    let (rtsp, http, metrics) = (free_port(), free_port(), free_port());
    let d = deployment(rtsp, http, metrics);
    let mut up = d.spawn("ctl", &["up"]);
    d.wait_status(|s| served(s)["publishing"] == true && count_or_zero(&streamer(s)["access_units"]) > 0);

    let viewer = Viewer::start(&format!("rtsp://127.0.0.1:{rtsp}/cam0"));
    let status = d.wait_status(|s| served(s)["viewers"]["rtsp"] == 1 && count_or_zero(&served(s)["bytes_out"]) > 0);
    let server = media_server(&status);
    assert_eq!(server["state"], "running", "{server}");
    assert_eq!(server["user_reader"], false, "{server}");
    assert!(server["reader"].is_null(), "the media server has no reader accounting: {server}");
    let at_status = served(&status);
    assert_eq!(at_status["viewers"], serde_json::json!({ "rtsp": 1, "rtsps": 0, "webrtc": 0 }));

    let text = scrape(metrics);
    let cam = "camera=\"cam0\",role=\"mediaserver\"";
    assert_eq!(series(&text, "framebus_mediaserver_viewers", &format!("{cam},protocol=\"rtsp\"")), 1.0);
    assert_eq!(series(&text, "framebus_mediaserver_viewers", &format!("{cam},protocol=\"webrtc\"")), 0.0);
    assert_eq!(series(&text, "framebus_up", "camera=\"_deployment\",role=\"mediaserver\""), 1.0);
    assert_eq!(series(&text, "framebus_mediaserver_publishing", cam), 1.0);
    let bytes_scraped = series(&text, "framebus_mediaserver_bytes_out_total", cam) as u64;
    assert!(bytes_scraped >= number(&at_status["bytes_out"]), "bytes out went down: {bytes_scraped} < {at_status}");
    let s = "camera=\"cam0\",role=\"streamer\"";
    let keys_scraped = series(&text, "framebus_streamer_key_frames_total", s) as u64;
    let units_scraped = series(&text, "framebus_streamer_access_units_total", s) as u64;
    let streamer_bytes_scraped = series(&text, "framebus_streamer_bytes_total", s) as u64;
    assert!(keys_scraped > 0, "no key frame counted:\n{text}");
    // One key frame per GOP: counting every access unit as a key frame (or none) fails here.
    assert!(
        keys_scraped * GOP + GOP >= units_scraped && keys_scraped <= units_scraped / GOP + 2,
        "{keys_scraped} key frames in {units_scraped} access units with gop {GOP}"
    );
    assert_eq!(series(&text, "framebus_streamer_target_bitrate_bits_per_second", s), 800_000.0);
    assert_eq!(series(&text, "framebus_streamer_encoder_info", &format!("{s},encoder=\"x264\"")), 1.0);

    // Later: every counter has risen, on both sides.
    let later = d.wait_status(|s| {
        count_or_zero(&served(s)["bytes_out"]) > bytes_scraped
            && count_or_zero(&streamer(s)["key_frames"]) > keys_scraped
            && streamer(s)["access_units"].is_u64()
            && streamer(s)["bytes"].is_u64()
    });
    let (served_later, streamer_later) = (served(&later), streamer(&later));
    assert_eq!(served_later["viewers"]["rtsp"], 1);
    assert!(number(&streamer_later["access_units"]) > units_scraped);
    // One viewer since it joined: the RTP bytes sent stay under what the streamer published
    // (plus RTP headers); counting each packet twice would not.
    let bytes_out = number(&served_later["bytes_out"]);
    assert!(
        bytes_out < number(&streamer_later["bytes"]) * 11 / 10,
        "{bytes_out} bytes out to one viewer, the streamer published {}",
        streamer_later["bytes"]
    );
    assert!(streamer_bytes_scraped < number(&streamer_later["bytes"]));
    let measured = streamer_later["measured_kbps"].as_f64().unwrap_or(0.0);
    assert!(measured > 0.0 && measured < 8000.0, "measured bitrate {measured} kbit/s for 800 configured");
    assert_eq!(streamer_later["encoder"], "x264");
    assert_eq!(streamer_later["bitrate_kbps"], 800);
    // The media server never counts more units than the streamer published: compared with a
    // streamer figure taken after the media server's (one status asks the processes one after
    // another, so within one status the media server may be answered later than the streamer).
    assert!(number(&served_later["access_units_in"]) > 0);
    let afterwards = d.wait_status(|s| streamer(s)["access_units"].is_u64());
    assert!(
        number(&served_later["access_units_in"]) <= number(&streamer(&afterwards)["access_units"]),
        "the media server read {} access units, the streamer published {} by a later status",
        served_later["access_units_in"],
        streamer(&afterwards)["access_units"]
    );

    drop(viewer);
    d.wait_status(|s| served(s)["viewers"]["rtsp"] == 0);
    let text = scrape(metrics);
    assert_eq!(series(&text, "framebus_mediaserver_viewers", &format!("{cam},protocol=\"rtsp\"")), 0.0);

    // The recorder's events: a manual clip.
    let status = d.wait_status(|_| true);
    let events = &process_status(&status, "cam0", "recorder")["events"];
    assert_eq!(events["clips"], 0, "{events}");
    assert!(events["last_event"].is_null(), "{events}");
    assert_eq!(events["disk_guard"]["state"], "ok", "{events}");
    let r = "camera=\"cam0\",role=\"recorder\"";
    assert_eq!(series(&scrape(metrics), "framebus_recorder_clips_total", r), 0.0);
    let (code, _, err) = d.ctl(&["record", "on", "cam0"]);
    assert_eq!(code, Some(0), "{err}");
    d.wait_status(|s| process_status(s, "cam0", "recorder")["activity"] == "recording");
    let (code, _, err) = d.ctl(&["record", "off", "cam0"]);
    assert_eq!(code, Some(0), "{err}");
    let status = d.wait_status(|s| process_status(s, "cam0", "recorder")["events"]["clips"] == 1);
    let event = &process_status(&status, "cam0", "recorder")["events"]["last_event"];
    assert_eq!(event["source"], "manual", "{event}");
    assert!(event["unix_secs"].as_f64().unwrap_or(0.0) > 1.6e9, "{event}");
    let text = scrape(metrics);
    assert_eq!(series(&text, "framebus_recorder_clips_total", r), 1.0);
    let stamp = series(
        &text,
        "framebus_recorder_last_event_timestamp_seconds",
        &format!("{r},label=\"manual\",source=\"manual\""),
    );
    assert!((stamp - event["unix_secs"].as_f64().unwrap_or(0.0)).abs() < 1e-3, "{stamp} vs {event}");

    up.signal(libc::SIGINT);
    assert_eq!(up.wait_exit(DEADLINE), Some(0), "{}", up.stderr_text());
    d.assert_no_leftovers();
}

/// `ctl restart mediaserver` gives a new media server (new pid, serving again), `ctl logs
/// mediaserver` prints its kept lines, `ctl stop mediaserver` stops it for good (the supervisor
/// says why in `ctl status`) and `ctl start mediaserver` brings it back; a role after it is a
/// usage error.
#[test]
fn restart_start_stop_and_logs_reach_the_media_server() {
    let (rtsp, http, metrics) = (free_port(), free_port(), free_port());
    let d = deployment(rtsp, http, metrics);
    let mut up = d.spawn("ctl", &["up"]);
    let status = d.wait_status(|s| media_server(s)["state"] == "running");
    let first = number(&media_server(&status)["pid"]);

    let (code, out, err) = d.ctl(&["restart", "mediaserver", "--timeout", "20"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(&format!("mediaserver restarted (pid {first} -> ")), "{out}");
    let status = d.wait_status(|s| media_server(s)["pid"].as_u64().is_some_and(|p| p != first));
    let second = number(&media_server(&status)["pid"]);
    assert_eq!(media_server(&status)["supervisor"]["restarts"], 0, "{status}");
    d.wait_status(|s| served(s)["publishing"] == true);

    let (code, out, err) = d.ctl(&["logs", "mediaserver"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("media server ready"), "{out}");
    let (code, _, err) = d.ctl(&["restart", "mediaserver", "algo"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a camera"), "{err}");

    let (code, out, err) = d.ctl(&["stop", "mediaserver"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(&format!("mediaserver (pid {second}) stopped")), "{out}");
    let (code, out, _) = d.ctl(&["status"]);
    assert_eq!(code, Some(1), "a process not running: {out}");
    assert!(out.lines().any(|l| l.contains("mediaserver") && l.contains("stopped: exited 0")), "{out}");

    let (code, out, err) = d.ctl(&["start", "mediaserver", "--timeout", "20"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("mediaserver started (pid "), "{out}");
    let status = d.wait_status(|s| media_server(s)["state"] == "running" && served(s)["publishing"] == true);
    assert!(![first, second].contains(&number(&media_server(&status)["pid"])), "{status}");

    up.signal(libc::SIGINT);
    assert_eq!(up.wait_exit(DEADLINE), Some(0), "{}", up.stderr_text());
    d.assert_no_leftovers();
}
