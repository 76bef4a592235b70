//! Streaming figures at 1080p30: capture → decoded frame at an RTSP client (from the stamped
//! frame id), CPU of the streamer per encoder, and CPU of the framebus processes (capture +
//! streamer) and of the media server (reading the encoded service) with 1 and 20 RTSP viewers.
//!
//! The deployment is started by hand (capture, mediaserver, streamer), exactly as `ctl up`
//! would. The RTSP client is ffmpeg (`-fflags nobuffer -flags low_delay`, one decoding
//! thread) writing the top 16 rows of each decoded frame as grey to a pipe; the bench reads the
//! stamp of each and looks up that frame's capture time, which a reader of its own (`every`
//! policy) recorded from the frame headers. Viewers beyond the first copy the stream without
//! decoding (`-c copy -f null`), like an NVR recording it.

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use framebus::{Camera, Event, ReaderPolicy};
use framebus_common::clock;
use framebus_common::format::PixelFormat;
use framebus_common::pattern::read_stamp;
use framebus_common::stats::LatencyWindow;

use crate::sibling;

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
const FPS: u32 = 30;
/// Seconds each CPU figure is measured over.
const MEASURE: Duration = Duration::from_secs(10);

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// CPU time (user + system) of a process so far.
fn cpu(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return Duration::ZERO };
    let Some(close) = stat.rfind(')') else { return Duration::ZERO };
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// Share of one core each pid used over `window`.
fn cpu_over(pids: &[u32], window: Duration) -> Vec<f64> {
    let before: Vec<Duration> = pids.iter().map(|&p| cpu(p)).collect();
    let start = Instant::now();
    std::thread::sleep(window);
    let wall = start.elapsed().as_secs_f64();
    pids.iter().zip(before).map(|(&p, b)| (cpu(p).saturating_sub(b)).as_secs_f64() / wall * 100.0).collect()
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for child in self.0.iter_mut().rev() {
            // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        for child in self.0.iter_mut().rev() {
            let until = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start(name: &str, config: &str, extra: &[&str]) -> anyhow::Result<Child> {
    Command::new(sibling(name)?)
        .args(["--config", config])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {name}"))
}

/// Waits until the RTSP stream answers ffprobe.
fn wait_for_stream(url: &str) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = Command::new("ffprobe")
            .args([
                "-v",
                "quiet",
                "-rtsp_transport",
                "tcp",
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=codec_name",
            ])
            .arg(url)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(());
        }
        if Instant::now() > until {
            bail!("{url} did not play within 60 s");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Capture times of recent frame ids, recorded by a reader of the bench's own.
type Captured = Arc<Mutex<HashMap<u64, u64>>>;

fn record_capture_times(
    config: &str,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<(Captured, std::thread::JoinHandle<()>)> {
    let map: Captured = Arc::default();
    let out = Arc::clone(&map);
    let config = config.to_string();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    // The reader is not Send: it is opened on the thread that reads.
    let handle = std::thread::spawn(move || {
        let opened = Camera::builder(&config, "bench")
            .and_then(|b| b.role("bench-ids"))
            .map(|b| b.policy(ReaderPolicy::Every).queue_depth(2))
            .and_then(|b| b.open());
        let camera = match opened {
            Ok(camera) => {
                let _ = ready_tx.send(Ok(()));
                camera
            }
            Err(e) => {
                let _ = ready_tx.send(Err(anyhow!("opening the bench reader: {e}")));
                return;
            }
        };
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            match camera.next_event() {
                Ok(Event::Frame(frame)) => {
                    let header = *frame.header();
                    drop(frame);
                    if let Ok(mut m) = out.lock() {
                        m.insert(header.frame_id, header.capture_mono_ns);
                        if m.len() > 2000 {
                            let oldest = header.frame_id.saturating_sub(1000);
                            m.retain(|id, _| *id >= oldest);
                        }
                    }
                }
                Ok(Event::Stop(_)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    ready_rx.recv().map_err(|_| anyhow!("the bench reader thread ended"))??;
    Ok((map, handle))
}

/// Decodes the stream with ffmpeg for `frames` frames; latency per frame from its stamp.
fn rtsp_latency(url: &str, captured: &Captured, frames: usize) -> anyhow::Result<(LatencyWindow, usize)> {
    let rows = 16u32;
    let mut ffmpeg = Command::new("ffmpeg")
        .args(["-v", "error", "-fflags", "nobuffer", "-flags", "low_delay", "-threads", "1"])
        .args(["-rtsp_transport", "tcp", "-i", url])
        .args(["-vf", &format!("crop={WIDTH}:{rows}:0:0"), "-pix_fmt", "gray", "-f", "rawvideo", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting ffmpeg (scripts/bootstrap.sh installs it)")?;
    let mut out = ffmpeg.stdout.take().ok_or_else(|| anyhow!("ffmpeg stdout"))?;
    let size = (WIDTH * rows) as usize;
    let mut buf = vec![0u8; size];
    let mut latency = LatencyWindow::new();
    let mut unmatched = 0;
    // The first second warms the decoder up; it is not counted.
    let warm_up = FPS as usize;
    for n in 0..frames + warm_up {
        out.read_exact(&mut buf).context("reading decoded frames from ffmpeg")?;
        let now = clock::monotonic_ns();
        if n < warm_up {
            continue;
        }
        let id = read_stamp(PixelFormat::Grey, WIDTH as usize, WIDTH as usize, 0, &buf);
        match captured.lock().ok().and_then(|m| m.get(&id).copied()) {
            Some(at) => latency.record_ns(now.saturating_sub(at)),
            None => unmatched += 1,
        }
    }
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    Ok((latency, unmatched))
}

/// Viewers that receive the RTSP stream without decoding it.
fn copy_viewers(url: &str, n: usize) -> anyhow::Result<Procs> {
    let mut viewers = Procs(Vec::new());
    for _ in 0..n {
        viewers.0.push(
            Command::new("ffmpeg")
                .args(["-v", "quiet", "-rtsp_transport", "tcp", "-i", url, "-c", "copy", "-f", "null", "-"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting an ffmpeg viewer")?,
        );
    }
    Ok(viewers)
}

/// What one arrangement measured.
struct Measured {
    latency: LatencyWindow,
    unmatched: usize,
    /// (viewers, CPU % of each watched pid).
    rows: Vec<(usize, Vec<f64>)>,
    /// Mean CPU of one copying viewer.
    copy_cpu: f64,
}

/// Latency at an RTSP client, then CPU of `watched` with 0, 1 and 20 viewers.
fn measure(config: &str, url: &str, watched: &[u32]) -> anyhow::Result<Measured> {
    wait_for_stream(url)?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (captured, recorder) = record_capture_times(config, Arc::clone(&stop))?;
    let measured = rtsp_latency(url, &captured, 300);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = recorder.join();
    let (latency, unmatched) = measured?;
    // No viewer (what the arrangement costs by itself), 1 and 20 viewers copying the stream
    // (as an NVR does; a decoding viewer would compete for this machine's 2 cores and blur the
    // figures). Two interleaved rounds; each figure is their mean.
    let counts = [0usize, 1, 20];
    let mut sums: Vec<Vec<f64>> = vec![vec![0.0; watched.len()]; counts.len()];
    let mut copy_sum = (0.0, 0usize);
    const ROUNDS: usize = 2;
    for _ in 0..ROUNDS {
        for (i, &viewers) in counts.iter().enumerate() {
            let all = copy_viewers(url, viewers)?;
            std::thread::sleep(Duration::from_secs(3));
            let mut pids = watched.to_vec();
            pids.extend(all.0.iter().map(Child::id));
            let cpu = cpu_over(&pids, MEASURE);
            for (sum, value) in sums[i].iter_mut().zip(&cpu) {
                *sum += value / ROUNDS as f64;
            }
            for value in &cpu[watched.len()..] {
                copy_sum.0 += value;
                copy_sum.1 += 1;
            }
            drop(all);
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let rows = counts.iter().copied().zip(sums).collect();
    let copy_cpu = if copy_sum.1 > 0 { copy_sum.0 / copy_sum.1 as f64 } else { f64::NAN };
    Ok(Measured { latency, unmatched, rows, copy_cpu })
}

fn write_config(path: &Path, body: &str) -> anyhow::Result<String> {
    std::fs::write(path, body).with_context(|| format!("writing {}", path.display()))?;
    path.to_str().map(str::to_string).ok_or_else(|| anyhow!("non-UTF-8 temp path"))
}

const CAMERA: &str =
    "[[camera]]\nname = \"bench\"\nwidth = 1920\nheight = 1080\nfps = 30\n\n[camera.source]\nkind = \"synthetic\"\n\n\
    [[camera.reader]]\nname = \"bench-ids\"\npolicy = \"every\"\nqueue-depth = 2\n\n";
const STREAMER: &str = "[camera.streamer]\nencoder = \"auto\"\nbitrate-kbps = 6000\ngop = 30\n";

/// Runs the streaming benchmark and prints its tables.
pub fn bench(dir: &Path) -> anyhow::Result<()> {
    let pid = std::process::id() % 1_000_000;
    // The product: streamer → separate media server.
    let (rtsp, http) = (free_port()?, free_port()?);
    let config = write_config(
        &dir.join("stream.toml"),
        &format!(
            "[deployment]\nname = \"b{pid}-str\"\n\n[media-server]\nrtsp = \"127.0.0.1:{rtsp}\"\nhttp = \"127.0.0.1:{http}\"\n\n{CAMERA}{STREAMER}"
        ),
    )?;
    let probe = Command::new(sibling("streamer")?).args(["--config", &config, "--probe"]).output()?;
    let probe_text = String::from_utf8_lossy(&probe.stdout).trim().to_string();
    let mut procs = Procs(Vec::new());
    procs.0.push(start("capture", &config, &[])?);
    procs.0.push(start("mediaserver", &config, &[])?);
    std::thread::sleep(Duration::from_millis(500));
    procs.0.push(start("streamer", &config, &[])?);
    let pids: Vec<u32> = procs.0.iter().map(Child::id).collect();
    let driven = measure(&config, &format!("rtsp://127.0.0.1:{rtsp}/bench"), &[pids[0], pids[2], pids[1]])?;
    drop(procs);

    // The alternative: the RTSP server inside the encoding process.
    let port = free_port()?;
    let config = write_config(
        &dir.join("embedded.toml"),
        &format!("[deployment]\nname = \"b{pid}-emb\"\n\n{CAMERA}[[camera.reader]]\nname = \"embedded\"\n\n{STREAMER}"),
    )?;
    let mut procs = Procs(Vec::new());
    procs.0.push(start("capture", &config, &[])?);
    procs.0.push(
        Command::new(std::env::current_exe()?)
            .args(["embedded", &config, &port.to_string()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting the embedded server")?,
    );
    let pids: Vec<u32> = procs.0.iter().map(Child::id).collect();
    let embedded = measure(&config, &format!("rtsp://127.0.0.1:{port}/bench"), &pids)?;
    drop(procs);

    println!("\nStreaming, {WIDTH}x{HEIGHT} BGR3 at {FPS} fps, H.264 6000 kbit/s, GOP 30, low latency, streamer → media server over shared memory (iceoryx2), viewers on RTSP over TCP on loopback:\n");
    println!("encoder probe: {}\n", probe_text.replace('\n', "; "));
    println!("| arrangement | capture → decoded at RTSP client p50 | p99 | frames | unmatched stamps |");
    println!("|---|---:|---:|---:|---:|");
    for (label, m) in [
        ("streamer → encoded service → mediaserver (the product)", &driven),
        ("server embedded in the encoder", &embedded),
    ] {
        let mut latency = m.latency.clone();
        println!(
            "| {label} | {:.1} ms | {:.1} ms | {} | {} |",
            latency.percentile_us(50.0).unwrap_or(0) as f64 / 1000.0,
            latency.percentile_us(99.0).unwrap_or(0) as f64 / 1000.0,
            latency.len(),
            m.unmatched
        );
    }
    println!("\n| RTSP viewers | capture CPU | streamer CPU (x264) | framebus (capture + streamer) | media server CPU | embedded: encoder + server process |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for ((viewers, cpu), (_, emb)) in driven.rows.iter().zip(&embedded.rows) {
        println!(
            "| {viewers} | {:.1} % | {:.1} % | {:.1} % | {:.1} % | {:.1} % |",
            cpu[0],
            cpu[1],
            cpu[0] + cpu[1],
            cpu[2],
            emb[1]
        );
    }
    println!(
        "\nCPU = share of one core (user + system) over {} s, mean of 2 interleaved rounds; viewers copy the stream (ffmpeg -c copy, as an NVR records it).",
        MEASURE.as_secs()
    );
    println!(
        "One viewer copying the stream (what recording it without encoding again costs, ffmpeg -c copy): {:.1} % of a core.",
        driven.copy_cpu
    );
    println!("Encoders not on this machine are not measured (see the probe line).");
    recording(dir)?;
    overlay(dir)
}

/// The recorder's `written` count in the last `--json` line of `log`.
fn written(log: &Path) -> u64 {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let Some(line) = text.lines().rev().find(|l| l.contains("\"written\":")) else { return 0 };
    let at = line.find("\"written\":").map_or(0, |i| i + "\"written\":".len());
    line[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0)
}

/// One recording arrangement: capture + media server + streamer + recorder with `video`;
/// returns CPU % of (capture, streamer, recorder, media server) and frames written per second.
fn record_once(dir: &Path, video: &str, tag: &str) -> anyhow::Result<[f64; 5]> {
    let pid = std::process::id() % 1_000_000;
    let (rtsp, http) = (free_port()?, free_port()?);
    let rec = dir.join(format!("rec-{tag}"));
    let config = write_config(
        &dir.join(format!("record-{tag}.toml")),
        &format!(
            "[deployment]\nname = \"b{pid}-{tag}\"\n\n[media-server]\nrtsp = \"127.0.0.1:{rtsp}\"\nhttp = \"127.0.0.1:{http}\"\n\n\
             [[camera]]\nname = \"bench\"\nwidth = {WIDTH}\nheight = {HEIGHT}\nfps = {FPS}\n\n[camera.source]\nkind = \"synthetic\"\n\n\
             {STREAMER}\n[camera.recorder]\ndirectory = \"{}\"\nenabled = true\nvideo = \"{video}\"\nsegment-secs = 5\nmin-free-mb = 1\nstats-interval-secs = 1\n",
            rec.display()
        ),
    )?;
    let log = dir.join(format!("recorder-{tag}.jsonl"));
    let mut procs = Procs(Vec::new());
    procs.0.push(start("capture", &config, &[])?);
    procs.0.push(start("mediaserver", &config, &[])?);
    std::thread::sleep(Duration::from_millis(500));
    procs.0.push(start("streamer", &config, &[])?);
    procs.0.push(
        Command::new(sibling("recorder")?)
            .args(["--config", &config, "--json"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?)
            .spawn()
            .context("starting the recorder")?,
    );
    wait_for_stream(&format!("rtsp://127.0.0.1:{rtsp}/bench"))?;
    // Settled: encoders warmed up, the first segment open.
    std::thread::sleep(Duration::from_secs(3));
    let pids: Vec<u32> = procs.0.iter().map(Child::id).collect();
    let before = written(&log);
    let started = Instant::now();
    let cpu = cpu_over(&[pids[0], pids[2], pids[3], pids[1]], MEASURE);
    // The recorder reports every second: the count is at most a second old at both ends.
    let rate = (written(&log).saturating_sub(before)) as f64 / started.elapsed().as_secs_f64();
    drop(procs);
    Ok([cpu[0], cpu[1], cpu[2], cpu[3], rate])
}

/// Recording beside the streamer at 1080p30: the recorder encoding its own H.264
/// (`video = "h264-mp4"`, OpenCV + libx264) against writing the streamer's access units
/// (`video = "stream"`), CPU of each process and of framebus in all; two interleaved rounds.
pub fn recording(dir: &Path) -> anyhow::Result<()> {
    const ROUNDS: usize = 2;
    let arrangements =
        [("h264-mp4", "recorder encodes (`h264-mp4`)"), ("stream", "recorder writes the stream (`stream`)")];
    let mut sums = [[0.0f64; 5]; 2];
    for round in 0..ROUNDS {
        for (i, (video, _)) in arrangements.iter().enumerate() {
            let m = record_once(dir, video, &format!("r{round}{i}"))?;
            for (sum, value) in sums[i].iter_mut().zip(m) {
                *sum += value / ROUNDS as f64;
            }
        }
    }
    println!("\nRecording beside the streamer, {WIDTH}x{HEIGHT} BGR3 at {FPS} fps (streamer x264 6000 kbit/s, GOP 30), same run:\n");
    println!("| arrangement | recorder CPU | frames written/s | capture CPU | streamer CPU | framebus (capture + streamer + recorder) | media server CPU |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for ((_, label), m) in arrangements.iter().zip(&sums) {
        println!(
            "| {label} | {:.1} % | {:.1} | {:.1} % | {:.1} % | {:.1} % | {:.1} % |",
            m[2],
            m[4],
            m[0],
            m[1],
            m[0] + m[1] + m[2],
            m[3]
        );
    }
    let total = |m: &[f64; 5]| m[0] + m[1] + m[2];
    println!(
        "\nRatios (h264-mp4 / stream): recorder CPU {:.1}×, framebus CPU {:.2}×. CPU = share of one core over {} s, mean of {ROUNDS} interleaved rounds.",
        sums[0][2] / sums[1][2].max(0.01),
        total(&sums[0]) / total(&sums[1]).max(0.01),
        MEASURE.as_secs()
    );
    Ok(())
}

/// The box the overlay table publishes about every frame (frame pixels).
const OVERLAY_BOX: (f32, f32, f32, f32) = (600.0, 300.0, 480.0, 360.0);

/// Publishes one labelled box about every frame of `config`'s camera (as a detector would)
/// until `stop`; returns the results published.
fn publish_boxes(config: &str, stop: &std::sync::atomic::AtomicBool) -> anyhow::Result<u64> {
    let camera = Camera::builder(Path::new(config), "bench")?.role("bench-boxes")?.open()?;
    let (x, y, w, h) = OVERLAY_BOX;
    let boxes = [framebus::Detection { x, y, w, h, label: "person".into(), score: 0.9 }];
    let mut published = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        match camera.next_event()? {
            Event::Frame(frame) => {
                let header = *frame.header();
                drop(frame);
                camera.publish_result(&header, Some(0.9), &boxes, None)?;
                published += 1;
            }
            Event::Stop(_) => break,
            _ => {}
        }
    }
    Ok(published)
}

/// The last `--json` line of the streamer in `log`.
fn last_json(log: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().rev().find_map(|l| serde_json::from_str(l).ok()).unwrap_or(serde_json::Value::Null)
}

/// One overlay arrangement: capture (`format`) + streamer (x264) with `overlay`, results
/// published about every frame either way; returns CPU % of (capture, streamer), frames encoded
/// per second and the share of them with the box drawn.
fn overlay_once(dir: &Path, format: PixelFormat, overlay: bool, tag: &str) -> anyhow::Result<[f64; 4]> {
    let config = write_config(&dir.join(format!("overlay-{tag}.toml")), &overlay_config(format, overlay, tag))?;
    let log = dir.join(format!("streamer-{tag}.jsonl"));
    let mut procs = Procs(Vec::new());
    procs.0.push(start("capture", &config, &[])?);
    procs.0.push(
        Command::new(sibling("streamer")?)
            .args(["--config", &config, "--json"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?)
            .spawn()
            .context("starting the streamer")?,
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let (config, stop) = (config.clone(), Arc::clone(&stop));
        std::thread::spawn(move || publish_boxes(&config, &stop))
    };
    // Settled: the encoder warmed up, results flowing.
    std::thread::sleep(Duration::from_secs(3));
    let pids: Vec<u32> = procs.0.iter().map(Child::id).collect();
    let before = last_json(&log);
    let started = Instant::now();
    let cpu = cpu_over(&pids, MEASURE);
    let after = last_json(&log);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let published = publisher.join().map_err(|_| anyhow!("the result publisher panicked"))??;
    drop(procs);
    let count = |v: &serde_json::Value, key: &str| v[key].as_f64().unwrap_or(0.0);
    let encoded = count(&after, "encoded") - count(&before, "encoded");
    let drawn = count(&after, "overlaid") - count(&before, "overlaid");
    if published == 0 {
        bail!("no result was published about the bench camera's frames");
    }
    Ok([cpu[0], cpu[1], encoded / elapsed, if encoded > 0.0 { drawn / encoded * 100.0 } else { 0.0 }])
}

/// The deployment of one overlay arrangement (`tag` makes its name unique).
fn overlay_config(format: PixelFormat, overlay: bool, tag: &str) -> String {
    let pid = std::process::id() % 1_000_000;
    format!(
        "[deployment]\nname = \"b{pid}-{tag}\"\n\n[[camera]]\nname = \"bench\"\nwidth = {WIDTH}\nheight = {HEIGHT}\nfps = {FPS}\npixel-format = \"{}\"\n\n\
         [camera.source]\nkind = \"synthetic\"\n\n[camera.streamer]\nencoder = \"x264\"\nbitrate-kbps = 6000\ngop = 30\n\
         stats-interval-secs = 1\noverlay = {overlay}\n",
        format.name()
    )
}

/// Milliseconds per frame (median of 60) of what the streamer does with a `format` frame
/// before the encoder: (plain copy into a GStreamer buffer, overlay: convert to BGR + draw one
/// box + copy), in this process, on one core.
fn overlay_step_ms(dir: &Path, format: PixelFormat) -> anyhow::Result<(f64, f64)> {
    use framebus_common::header::FRAME_HEADER_VERSION;
    use framebus_streamer::overlay::Overlay;
    use framebus_streamer::publisher::{frame_buffer, RawLayout};
    gstreamer::init().context("initialising GStreamer")?;
    let config = write_config(&dir.join("overlay-step.toml"), &overlay_config(format, true, "step"))?;
    let deployment = framebus_common::Deployment::load(Path::new(&config))?;
    let camera = deployment.camera(Some("bench")).map_err(|e| anyhow!("{e}"))?;
    let mut pattern = framebus_common::pattern::SyntheticPattern::new(format, WIDTH, HEIGHT)
        .ok_or_else(|| anyhow!("no synthetic pattern for {format}"))?;
    let mut frame = vec![std::mem::MaybeUninit::new(0u8); pattern.frame_bytes()];
    pattern.render(1, &mut frame);
    // SAFETY: every byte was initialised to 0 above and then rendered.
    let frame: Vec<u8> = frame.iter().map(|b| unsafe { b.assume_init() }).collect();
    let header = framebus_common::FrameHeader {
        layout_version: FRAME_HEADER_VERSION,
        width: WIDTH,
        height: HEIGHT,
        stride: format.stride(WIDTH),
        pixel_format: format.fourcc(),
        payload_len: frame.len() as u32,
        run_id: 1,
        frame_id: 1,
        ..Default::default()
    };
    let (x, y, w, h) = OVERLAY_BOX;
    let mut overlay = Overlay::new(camera);
    overlay.add(vec![framebus_common::results::Outcome {
        producer: "bench-boxes".into(),
        frame_id: 1,
        run_id: 1,
        capture_mono_ns: 0,
        publish_mono_ns: 0,
        score: Some(0.9),
        boxes: vec![framebus::Detection { x, y, w, h, label: "person".into(), score: 0.9 }],
        data: serde_json::Value::Null,
    }]);
    let layout = RawLayout { format, width: WIDTH, height: HEIGHT };
    let median = |mut step: Box<dyn FnMut() -> anyhow::Result<()> + '_>| -> anyhow::Result<f64> {
        let mut times = Vec::new();
        for i in 0..70 {
            let at = Instant::now();
            step()?;
            if i >= 10 {
                times.push(at.elapsed().as_secs_f64() * 1000.0);
            }
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    };
    let plain = median(Box::new(|| frame_buffer(&layout, &frame).map(drop)))?;
    let drawn = median(Box::new(|| {
        overlay.convert(&header, &frame)?;
        overlay.render(&header).map(drop)
    }))?;
    anyhow::ensure!(overlay.drawn > 0, "the overlay drew nothing");
    Ok((plain, drawn))
}

/// The streamer at 1080p30 with and without `overlay = true` (the same results published about
/// every frame both times), for a BGR3 and an NV12 camera: CPU of the streamer and capture,
/// frames encoded per second, share of frames with the box drawn; two interleaved rounds, in
/// one run. Then the overlay step alone per frame, against the plain copy and one memcpy.
pub fn overlay(dir: &Path) -> anyhow::Result<()> {
    const ROUNDS: usize = 2;
    let cases = [
        (PixelFormat::Bgr3, false, "BGR3 camera, overlay off"),
        (PixelFormat::Bgr3, true, "BGR3 camera, overlay on"),
        (PixelFormat::Nv12, false, "NV12 camera, overlay off"),
        (PixelFormat::Nv12, true, "NV12 camera, overlay on"),
    ];
    let mut sums = [[0.0f64; 4]; 4];
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    for round in 0..ROUNDS {
        for (i, (format, on, _)) in cases.iter().enumerate() {
            let m = overlay_once(dir, *format, *on, &format!("o{round}{i}"))?;
            for (sum, value) in sums[i].iter_mut().zip(m) {
                *sum += value / ROUNDS as f64;
            }
        }
    }
    println!(
        "\nOverlay in the stream, {WIDTH}x{HEIGHT} at {FPS} fps, streamer x264 6000 kbit/s, GOP 30, one box published about every frame, same run (load average before: {}):\n",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!("| camera, streamer | streamer CPU | ratio to overlay off | frames encoded/s | frames with the box drawn | capture CPU |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (i, ((_, _, label), m)) in cases.iter().zip(&sums).enumerate() {
        let off = sums[i - i % 2][1];
        println!(
            "| {label} | {:.1} % | {:.2} | {:.1} | {:.0} % | {:.1} % |",
            m[1],
            m[1] / off.max(0.01),
            m[2],
            m[3],
            m[0]
        );
    }
    println!(
        "\nCPU = share of one core over {} s, mean of {ROUNDS} interleaved rounds (x264 dominates and varies by several points between runs on a shared machine).",
        MEASURE.as_secs()
    );
    let memcpy = crate::memcpy_ns((WIDTH * HEIGHT * 3) as usize, 1) / 1e6;
    println!("\n| camera | plain copy for the encoder | overlay: to BGR + draw + copy | ratio | in memcpys of a BGR frame ({memcpy:.2} ms) |");
    println!("|---|---:|---:|---:|---:|");
    for format in [PixelFormat::Bgr3, PixelFormat::Nv12] {
        let (plain, drawn) = overlay_step_ms(dir, format)?;
        println!(
            "| {format} | {plain:.2} ms | {drawn:.2} ms | {:.1}× | {:.1} |",
            drawn / plain.max(1e-6),
            drawn / memcpy.max(1e-6)
        );
    }
    println!("Per frame, median of 60, in the bench process (the streamer's own code); the overlay also makes the encoder take BGR (videoconvert BGR → I420), in the CPU rows above.");
    Ok(())
}
