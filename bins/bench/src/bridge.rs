//! The bridge across hosts (docs/multi-host.md), over TCP on loopback, beside plain Zenoh
//! put/subscribe of the same payloads in the same run (the engine's own figure): results p50,
//! raw 1080p frames per second, loss and p50 (capture on the site → a reader on the viewer),
//! H.264 capture → decoded picture in a reader's hands on the viewer beside the same decoder
//! fed from the site's own encoded service (local), and the CPU of each bridge process per
//! stream.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use framebus::{Camera, Event, ReaderPolicy};
use framebus_common::ipc::{create_node, open_encoded, open_results, ResultsPublisher};
use framebus_common::results::ResultRecord;
use framebus_common::stats::LatencyWindow;
use framebus_common::{clock, Deployment};
use zenoh::Wait;

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
const FPS: u32 = 30;
/// Seconds of frames measured (after the first frame arrived).
const SECS: u64 = 10;
/// Results sent per run, at [`RESULTS_PER_SEC`].
const RESULTS: usize = 300;
const RESULTS_PER_SEC: u64 = 100;

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Kills a child when dropped (a failed run leaves nothing running).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn spawn(binary: &str, args: &[&str]) -> anyhow::Result<Running> {
    Ok(Running(
        Command::new(super::sibling(binary)?)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {binary}"))?,
    ))
}

struct Figures {
    p50_us: u64,
    received: usize,
    sent: usize,
    fps: f64,
}

fn p50(window: &mut LatencyWindow) -> u64 {
    window.percentile_us(50.0).unwrap_or(0)
}

/// Plain Zenoh: a publisher session listening on loopback, a subscriber session connected to
/// it, `count` payloads of `bytes` at `rate` per second, the send time in the first 8 bytes.
fn plain_zenoh(bytes: usize, count: usize, rate: u64) -> anyhow::Result<Figures> {
    let port = free_port()?;
    let config = |role: &str| {
        let endpoints = format!("[\"tcp/127.0.0.1:{port}\"]");
        let (listen, connect) =
            if role == "pub" { (endpoints, "[]".to_string()) } else { ("[]".to_string(), endpoints) };
        zenoh::Config::from_json5(&format!(
            "{{ mode: \"peer\", listen: {{ endpoints: {listen} }}, connect: {{ endpoints: {connect} }}, scouting: {{ multicast: {{ enabled: false }} }}, transport: {{ link: {{ rx: {{ buffer_size: 16777216 }} }} }} }}"
        ))
        .map_err(|e| anyhow!("zenoh config: {e}"))
    };
    let publisher_session = zenoh::open(config("pub")?).wait().map_err(|e| anyhow!("zenoh open: {e}"))?;
    let subscriber_session = zenoh::open(config("sub")?).wait().map_err(|e| anyhow!("zenoh open: {e}"))?;
    let subscriber = subscriber_session
        .declare_subscriber("bench/plain")
        .with(zenoh::handlers::FifoChannel::new(64))
        .wait()
        .map_err(|e| anyhow!("zenoh subscriber: {e}"))?;
    let publisher = publisher_session
        .declare_publisher("bench/plain")
        .congestion_control(zenoh::qos::CongestionControl::Drop)
        .wait()
        .map_err(|e| anyhow!("zenoh publisher: {e}"))?;
    // Until the subscriber is known to the publisher's side.
    let until = Instant::now() + Duration::from_secs(10);
    while publisher.matching_status().wait().map(|m| !m.matching()).unwrap_or(true) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    let done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut window = LatencyWindow::new();
            let (mut received, mut first, mut last) = (0usize, None, Instant::now());
            while !done.load(Ordering::Relaxed) {
                if let Ok(Some(sample)) = subscriber.recv_timeout(Duration::from_millis(50)) {
                    let payload = sample.payload().to_bytes();
                    let sent = payload.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes).unwrap_or(0);
                    window.record_ns(clock::realtime_ns().saturating_sub(sent));
                    received += 1;
                    first.get_or_insert_with(Instant::now);
                    last = Instant::now();
                }
            }
            let span = first.map(|f| last.duration_since(f).as_secs_f64()).unwrap_or(0.0);
            (window, received, span)
        })
    };
    let mut payload = vec![7u8; bytes];
    let period = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now();
    for i in 0..count {
        let due = start + period * i as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        payload[..8].copy_from_slice(&clock::realtime_ns().to_le_bytes());
        publisher.put(payload.clone()).wait().map_err(|e| anyhow!("zenoh put: {e}"))?;
    }
    std::thread::sleep(Duration::from_millis(500));
    done.store(true, Ordering::Relaxed);
    let (mut window, received, span) = receiver.join().map_err(|_| anyhow!("receiver thread panicked"))?;
    let fps = if span > 0.0 { (received.saturating_sub(1)) as f64 / span } else { 0.0 };
    Ok(Figures { p50_us: p50(&mut window), received, sent: count, fps })
}

/// The bridge table.
pub fn bench(dir: &Path) -> anyhow::Result<()> {
    let (site_path, viewer_path) = write_configs(dir)?;
    let (site_text, viewer_text) = (site_path.to_string_lossy().to_string(), viewer_path.to_string_lossy().to_string());
    let site = Deployment::load(&site_path)?;
    let viewer = Deployment::load(&viewer_path)?;
    let capture = spawn("capture", &["--config", &site_text])?;
    let export = spawn("bridge", &["--config", &site_text])?;
    let import = spawn("bridge", &["--config", &viewer_text, "--camera", "cam"])?;
    let (bridge_frames, export_cpu, import_cpu) = measure_frames(&viewer_path, export.0.id(), import.0.id())?;
    // Results while 1080p30 raw frames cross the same link (both bridges busy copying them),
    // then alone (capture stopped).
    let beside_frames = measure_results(&site, &viewer)?;
    drop(capture);
    let bridge_results = measure_results(&site, &viewer)?;
    drop((import, export));

    let plain_results = plain_zenoh(core::mem::size_of::<ResultRecord>() + 8, RESULTS, RESULTS_PER_SEC)?;
    let frame_bytes = (WIDTH * HEIGHT * 3) as usize + 96;
    let plain_frames = plain_zenoh(frame_bytes, (FPS as u64 * SECS) as usize, FPS as u64)?;
    print_table(
        &[&bridge_results, &beside_frames, &plain_results],
        &bridge_frames,
        &plain_frames,
        export_cpu,
        import_cpu,
    );
    h264(dir)
}

/// The H.264 rows: a 1080p30 synthetic camera with a streamer (x264), exported; the viewer
/// imports it with `video = "h264"`. Local = the same decoder as the importing bridge's, fed
/// from the site's encoded service in this process (capture → encoder → decoder on one host);
/// remote = capture → encoder → Zenoh → the viewer's bridge's decoder → shared memory → a
/// reader. Both measured at once, for `SECS` seconds.
fn h264(dir: &Path) -> anyhow::Result<()> {
    let (site_path, viewer_path) = write_configs(dir)?;
    let site_text = std::fs::read_to_string(&site_path)?.replace(
        "[camera.export]\n[camera.export.frames]\nmax-fps = 1000\n",
        "[camera.streamer]\nencoder = \"x264\"\ngop = 30\n[camera.export]\n",
    );
    std::fs::write(&site_path, site_text)?;
    let viewer_text =
        std::fs::read_to_string(&viewer_path)?.replace("camera = \"cam\"\n", "camera = \"cam\"\nvideo = \"h264\"\n");
    std::fs::write(&viewer_path, viewer_text)?;
    let site = Deployment::load(&site_path)?;
    let (site_arg, viewer_arg) = (site_path.to_string_lossy().to_string(), viewer_path.to_string_lossy().to_string());
    let capture = spawn("capture", &["--config", &site_arg])?;
    let streamer = spawn("streamer", &["--config", &site_arg, "--camera", "cam"])?;
    let export = spawn("bridge", &["--config", &site_arg])?;
    let import = spawn("bridge", &["--config", &viewer_arg, "--camera", "cam"])?;
    let local = std::thread::spawn(move || decode_locally(&site));
    let (remote, export_cpu, import_cpu) = measure_frames(&viewer_path, export.0.id(), import.0.id())?;
    let local = local.join().map_err(|_| anyhow!("the local decoder thread panicked"))??;
    drop((import, export, streamer, capture));
    println!(
        "\n### Across hosts: H.264 (x264, 1080p30, GOP 30) decoded on the viewer beside the same decoder on the site\n"
    );
    println!(
        "| path | pictures | fps | p50 capture → decoded picture | difference to local | bridge CPU (export, import) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| local: encoded service → decoder (on the site) | {} | {:.1} | {:.1} ms | – | – |",
        local.received,
        local.fps,
        local.p50_us as f64 / 1000.0
    );
    println!(
        "| remote: encoded → Zenoh → viewer's bridge (decoder) → shared memory → reader | {} | {:.1} | {:.1} ms | {:+.1} ms | {export_cpu:.0} %, {import_cpu:.0} % of a core |",
        remote.received,
        remote.fps,
        remote.p50_us as f64 / 1000.0,
        (remote.p50_us as f64 - local.p50_us as f64) / 1000.0
    );
    println!("\nboth p50 = capture time → decoded picture (remote: in a reader's hands on the viewer; local: out of the decoder, in this process); target: remote ≤ local + 10 ms.");
    Ok(())
}

/// The site's encoded video decoded in this process for `SECS` seconds after the first
/// picture (by the bridge's own decoder): capture → decoded picture.
fn decode_locally(site: &Deployment) -> anyhow::Result<Figures> {
    let camera = site.camera(Some("cam"))?.clone();
    let node = create_node(site, "benchdec", "cam")?;
    let subscriber = open_encoded(&node, site.name(), &camera)?
        .subscriber_builder()
        .create()
        .map_err(|e| anyhow!("encoded subscriber: {e:?}"))?;
    let mut decoder = framebus_bridge::decoder::Decoder::new(camera.width, camera.height)?;
    let mut window = LatencyWindow::new();
    let (mut pictures, mut first) = (0usize, None::<Instant>);
    let deadline = Instant::now() + Duration::from_secs(SECS + 30);
    while first.is_none_or(|f| f.elapsed() < Duration::from_secs(SECS)) && Instant::now() < deadline {
        let mut idle = true;
        while let Ok(Some(sample)) = subscriber.receive() {
            decoder.push(sample.user_header(), sample.payload(), 0)?;
            idle = false;
        }
        while let Some((header, _)) = decoder.pull() {
            idle = false;
            if first.is_none() {
                first = Some(Instant::now());
                continue;
            }
            window.record_ns(clock::monotonic_ns().saturating_sub(header.capture_mono_ns));
            pictures += 1;
        }
        if idle {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    let span = first.map(|f| f.elapsed().as_secs_f64()).unwrap_or(0.0);
    Ok(Figures { p50_us: p50(&mut window), received: pictures, sent: pictures, fps: pictures as f64 / span.max(1e-9) })
}

/// Writes the site's deployment (a synthetic camera, exported) and the viewer's (that camera
/// imported) into `dir`, on a free port; returns their paths.
fn write_configs(dir: &Path) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let port = free_port()?;
    let tag = std::process::id() % 100_000;
    let site_path = dir.join("site.toml");
    let viewer_path = dir.join("viewer.toml");
    std::fs::write(
        &site_path,
        format!(
            "[deployment]\nname = \"zs{tag}\"\n[zenoh]\nsite = \"bench\"\nlisten = [\"tcp/127.0.0.1:{port}\"]\n[[camera]]\nname = \"cam\"\nwidth = {WIDTH}\nheight = {HEIGHT}\nfps = {FPS}\nslots = 16\nmax-readers = 3\n[camera.source]\nkind = \"synthetic\"\n[camera.export]\n[camera.export.frames]\nmax-fps = 1000\n"
        ),
    )?;
    std::fs::write(
        &viewer_path,
        format!(
            "[deployment]\nname = \"zv{tag}\"\n[zenoh]\nsite = \"view\"\nlisten = []\nconnect = [\"tcp/127.0.0.1:{port}\"]\n[[remote-camera]]\nname = \"cam\"\nsite = \"bench\"\ndeployment = \"zs{tag}\"\ncamera = \"cam\"\nwidth = {WIDTH}\nheight = {HEIGHT}\nfps = {FPS}\nslots = 16\nmax-readers = 3\n"
        ),
    )?;
    Ok((site_path, viewer_path))
}

/// Reads the imported camera for `SECS` seconds: the frames' figures and the CPU of the
/// exporting and the importing bridge (percent of a core).
fn measure_frames(viewer_path: &Path, export_pid: u32, import_pid: u32) -> anyhow::Result<(Figures, f64, f64)> {
    // Frames: a reader of the imported camera, capture time (moved into this host's clock by
    // the importing bridge) → frame in the reader's hands.
    let camera = Camera::builder(viewer_path, "cam")?.role("benchview")?.policy(ReaderPolicy::Every).open()?;
    let mut window = LatencyWindow::new();
    let (mut frames, mut lost, mut last_origin) = (0u64, 0u64, None::<u64>);
    let mut cpu_start = None;
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(SECS + 30);
    while first.is_none_or(|f: Instant| f.elapsed() < Duration::from_secs(SECS)) && Instant::now() < deadline {
        if let Event::Frame(frame) = camera.next_event()? {
            let header = *frame.header();
            drop(frame);
            if first.is_none() {
                first = Some(Instant::now());
                cpu_start = Some((super::proc_cpu_secs(export_pid), super::proc_cpu_secs(import_pid)));
                last_origin = Some(header.sequence);
                continue;
            }
            window.record_ns(clock::monotonic_ns().saturating_sub(header.capture_mono_ns));
            if let Some(last) = last_origin {
                lost += header.sequence.saturating_sub(last + 1);
            }
            last_origin = Some(header.sequence);
            frames += 1;
        }
    }
    let span = first.map(|f| f.elapsed().as_secs_f64()).unwrap_or(0.0);
    let (export_cpu, import_cpu) = cpu_start.unwrap_or((f64::NAN, f64::NAN));
    let export_cpu = (super::proc_cpu_secs(export_pid) - export_cpu) / span.max(1e-9) * 100.0;
    let import_cpu = (super::proc_cpu_secs(import_pid) - import_cpu) / span.max(1e-9) * 100.0;
    let bridge_frames = Figures {
        p50_us: p50(&mut window),
        received: frames as usize,
        sent: (frames + lost) as usize,
        fps: frames as f64 / span.max(1e-9),
    };
    drop(camera);
    Ok((bridge_frames, export_cpu, import_cpu))
}

/// Sends `RESULTS` results into the site camera's results service and reads them from the
/// viewer's: their figures.
fn measure_results(site: &Deployment, viewer: &Deployment) -> anyhow::Result<Figures> {
    // Results: published into the site camera's results service, read from the viewer's.
    let site_node = create_node(site, "benchres", "cam")?;
    let viewer_node = create_node(viewer, "benchres", "cam")?;
    // As every producer publishes (the crate's `publish_result`, Python's): result, then the
    // results-ready event.
    let publisher = ResultsPublisher::create(&site_node, site.name(), "cam")?;
    let subscriber = open_results(&viewer_node, viewer.name(), "cam")?
        .subscriber_builder()
        .create()
        .map_err(|e| anyhow!("results subscriber: {e:?}"))?;
    let mut results = LatencyWindow::new();
    let mut received = 0usize;
    let period = Duration::from_nanos(1_000_000_000 / RESULTS_PER_SEC);
    let start = Instant::now();
    let drain = |window: &mut LatencyWindow, received: &mut usize| {
        while let Ok(Some(sample)) = subscriber.receive() {
            let record: ResultRecord = *sample.payload();
            let text = String::from_utf8_lossy(&record.json[..record.json_len as usize]).to_string();
            if let Some(sent) = text.strip_prefix("{\"t\":").and_then(|t| t.trim_end_matches('}').parse::<u64>().ok()) {
                window.record_ns(clock::realtime_ns().saturating_sub(sent));
                *received += 1;
            }
        }
    };
    for i in 0..RESULTS {
        let due = start + period * i as u32;
        while Instant::now() < due {
            drain(&mut results, &mut received);
            std::thread::sleep(Duration::from_micros(100));
        }
        let record =
            ResultRecord::new("bench", (0, 0, 0), Some(1.0), &[], &format!("{{\"t\":{}}}", clock::realtime_ns()))?;
        publisher.publish(record)?;
    }
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        drain(&mut results, &mut received);
        std::thread::sleep(Duration::from_micros(100));
    }
    let bridge_results = Figures { p50_us: p50(&mut results), received, sent: RESULTS, fps: 0.0 };
    drop((publisher, subscriber, site_node, viewer_node));
    Ok(bridge_results)
}

/// Prints the bridge table; `results` = alone, beside raw frames, plain Zenoh.
fn print_table(
    results: &[&Figures; 3],
    bridge_frames: &Figures,
    plain_frames: &Figures,
    export_cpu: f64,
    import_cpu: f64,
) {
    println!("\n### Across hosts: the bridge over Zenoh (TCP on 127.0.0.1) beside plain Zenoh put/subscribe\n");
    println!(
        "| payload | path | received / sent | fps | p50 | ratio of p50 to plain Zenoh | bridge CPU (export, import) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    let ratio = |a: u64, b: u64| if b > 0 { format!("{:.2}x", a as f64 / b as f64) } else { "–".into() };
    let [alone, beside, plain] = *results;
    for (figures, path) in [
        (alone, "bridge: results service → Zenoh → results service"),
        (beside, "the same while 1080p30 raw frames cross the link"),
    ] {
        println!(
            "| result (1880 B) at {RESULTS_PER_SEC}/s | {path} | {} / {} | – | {} µs | {} | – |",
            figures.received,
            figures.sent,
            figures.p50_us,
            ratio(figures.p50_us, plain.p50_us)
        );
    }
    println!(
        "| result (1880 B) at {RESULTS_PER_SEC}/s | plain Zenoh put → subscriber | {} / {} | – | {} µs | 1.00x | – |",
        plain.received, plain.sent, plain.p50_us
    );
    println!(
        "| 1080p BGR3 frame (6.2 MB) at {FPS} fps | bridge: capture → Zenoh → shared memory → reader | {} / {} | {:.1} | {:.1} ms | {} | {export_cpu:.0} %, {import_cpu:.0} % of a core |",
        bridge_frames.received, bridge_frames.sent, bridge_frames.fps, bridge_frames.p50_us as f64 / 1000.0, ratio(bridge_frames.p50_us, plain_frames.p50_us)
    );
    println!(
        "| 1080p-sized payload (6.2 MB) at {FPS}/s | plain Zenoh put → subscriber | {} / {} | {:.1} | {:.1} ms | 1.00x | – |",
        plain_frames.received, plain_frames.sent, plain_frames.fps, plain_frames.p50_us as f64 / 1000.0
    );
    println!("\nbridge frames p50 = capture time → frame in a reader's hands on the viewer (includes the site's reader loop, the copy into a message, Zenoh, the copy into shared memory); plain Zenoh p50 = put → subscriber callback of the same bytes. received / sent for the bridge counts the origin's frame ids (gaps = frames lost).");
}
