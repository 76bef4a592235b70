//! Running it in production (issue 13): the Prometheus metrics endpoint agrees with
//! `ctl status`, and counts the supervisor's restarts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use framebus_e2e::{http_get, process_status, TestDeployment, DEADLINE};
use serde_json::Value;

/// `name{labels} value` lines of a scrape, keyed by the whole `name{labels}` text.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn metric(m: &HashMap<String, f64>, name: &str, role: &str) -> f64 {
    let key = format!("{name}{{camera=\"cam0\",role=\"{role}\"}}");
    *m.get(&key).unwrap_or_else(|| {
        panic!("no `{key}` in the scrape: {:?}", m.keys().filter(|k| k.starts_with(name)).collect::<Vec<_>>())
    })
}

fn frames(status: &Value, role: &str) -> f64 {
    process_status(status, "cam0", role)["frames"].as_f64().unwrap_or(-1.0)
}

/// Under `ctl up` with `[deployment] metrics`, a scrape lies between two `ctl status` taken
/// around it (frames, skips), every process is up, histograms are well formed, and a killed
/// algo shows one restart.
#[test]
fn the_metrics_scrape_matches_status() {
    let d = TestDeployment::new("");
    std::fs::write(
        &d.config,
        format!(
            "[deployment]\nname = \"{}\"\nstate-dir = \"state\"\nmetrics = \"127.0.0.1:0\"\n\n[[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\nfps = 30\n\n[camera.source]\nkind = \"synthetic\"\n\n[camera.algo]\n\n[camera.preview]\nlisten = \"127.0.0.1:0\"\n\n[camera.recorder]\ndirectory = \"rec\"\nenabled = true\nmin-free-mb = 1\nsegment-secs = 0.5\n",
            d.name
        ),
    )
    .expect("config");
    let mut up = d.spawn("ctl", &["up"]);
    let line = up.wait_stderr(DEADLINE, "metrics at http://");
    let url = line[line.find("http://").expect("url")..].trim().trim_end_matches("metrics").to_string();
    let roles = ["capture", "algo", "preview", "recorder"];
    d.wait_status(|s| {
        roles.iter().all(|r| frames(s, r) > 10.0)
            && process_status(s, "cam0", "recorder")["segments"].as_u64() >= Some(1)
    });

    let before = d.wait_status(|_| true);
    let (code, head, body) = http_get(&url, "/metrics");
    let after = d.wait_status(|_| true);
    assert_eq!(code, 200, "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let text = String::from_utf8(body).expect("utf-8");
    let m = parse_metrics(&text);
    for role in roles {
        assert_eq!(metric(&m, "framebus_up", role), 1.0, "{role} up");
        let scraped = metric(&m, "framebus_frames_total", role);
        assert!(
            frames(&before, role) <= scraped && scraped <= frames(&after, role),
            "{role}: frames {} <= {scraped} <= {}",
            frames(&before, role),
            frames(&after, role)
        );
        // A histogram: cumulative buckets, +Inf equal to the count.
        let prefix = format!("framebus_latency_seconds_bucket{{camera=\"cam0\",role=\"{role}\",le=");
        let mut buckets: Vec<(f64, f64)> = m
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| {
                let le = k[prefix.len()..].trim_end_matches('}').trim_matches('"');
                (if le == "+Inf" { f64::INFINITY } else { le.parse().expect("le") }, *v)
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(buckets.len(), 16, "{role}: {buckets:?}");
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{role}: not cumulative: {buckets:?}");
        let count = metric(&m, "framebus_latency_seconds_count", role);
        assert_eq!(buckets.last().map(|b| b.1), Some(count), "{role}");
        assert!(count > 0.0, "{role}: no latency samples");
    }
    let skipped = metric(&m, "framebus_reader_skipped_total", "algo");
    let algo_skipped = |s: &Value| process_status(s, "cam0", "algo")["skipped"].as_f64().unwrap_or(-1.0);
    assert!(algo_skipped(&before) <= skipped && skipped <= algo_skipped(&after));
    assert!(metric(&m, "framebus_capture_publish_cost_seconds", "capture") > 0.0);
    assert_eq!(metric(&m, "framebus_recorder_saving", "recorder"), 1.0);
    assert!(metric(&m, "framebus_recorder_segments_total", "recorder") >= 1.0);
    // The completed segments' files, all of them.
    let on_disk: u64 = std::fs::read_dir(d.dir.path().join("rec"))
        .expect("recordings")
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().contains(".partial."))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    let written = metric(&m, "framebus_recorder_bytes_written_total", "recorder");
    assert!(written > 0.0 && written <= on_disk as f64, "{written} bytes written, {on_disk} on disk");
    assert_eq!(metric(&m, "framebus_preview_viewers", "preview"), 0.0);
    assert_eq!(
        m.get("framebus_state{camera=\"cam0\",role=\"capture\",state=\"running\"}"),
        Some(&1.0),
        "capture's state"
    );

    // kill -9 algo: the supervisor restarts it, the scrape counts it.
    let pid = process_status(&after, "cam0", "algo")["pid"].as_u64().expect("pid") as i32;
    // SAFETY: kill has no memory-safety preconditions; the pid is a child of our ctl up.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let until = Instant::now() + DEADLINE;
    loop {
        let (_, _, body) = http_get(&url, "/metrics");
        let m = parse_metrics(&String::from_utf8_lossy(&body));
        if m.get("framebus_restarts_total{camera=\"cam0\",role=\"algo\"}") == Some(&1.0)
            && m.get("framebus_up{camera=\"cam0\",role=\"algo\"}") == Some(&1.0)
        {
            break;
        }
        assert!(Instant::now() < until, "no restart counted: {m:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, _, _) = http_get(&url, "/nothing");
    assert_eq!(code, 404);
    assert_eq!(up.terminate(), Some(0), "{}", up.stderr_text());
    d.assert_no_leftovers();
}

/// `ctl state reset cam0` forgets what `ctl record on` recorded: the running recorder stops
/// saving at once (the config says off), the state file holds no flag, and a restarted recorder
/// starts from the config too.
#[test]
fn state_reset_returns_a_camera_to_its_config() {
    let d = TestDeployment::new(
        "[[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\nfps = 30\n\n[camera.source]\nkind = \"synthetic\"\n\n[camera.recorder]\ndirectory = \"rec\"\nenabled = false\nmin-free-mb = 1\n",
    );
    let mut capture = d.spawn("capture", &[]);
    let mut recorder = d.spawn("recorder", &[]);
    d.wait_status(|s| process_status(s, "cam0", "recorder")["activity"] == "off");
    let (code, out, err) = d.ctl(&["record", "on", "cam0"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    d.wait_status(|s| process_status(s, "cam0", "recorder")["activity"] == "recording");

    let (code, out, err) = d.ctl(&["state", "reset", "cam0", "--json"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let reset: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(reset["saving"], false, "{reset}");
    assert_eq!(reset["ok"], true, "{reset}");
    let status = d.wait_status(|s| process_status(s, "cam0", "recorder")["activity"] == "off");
    assert_eq!(process_status(&status, "cam0", "recorder")["saving"], false, "{status}");
    let file = reset["state_file"].as_str().expect("state file");
    let text = std::fs::read_to_string(file).unwrap_or_default();
    assert!(!text.lines().any(|l| l.starts_with("saving") || l.starts_with("preview")), "flags left: {text}");

    assert_eq!(recorder.terminate(), Some(0));
    let mut recorder = d.spawn("recorder", &[]);
    let status = d.wait_status(|s| process_status(s, "cam0", "recorder")["frames"].as_u64() > Some(0));
    assert_eq!(process_status(&status, "cam0", "recorder")["activity"], "off", "{status}");
    assert_eq!(recorder.terminate(), Some(0));
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}
