//! `framebus-bench`: measures the frame bus with the real `capture` binary and reader processes,
//! and prints a table with ratios to a plain memcpy of one frame measured in the same run.
//!
//! For each frame size and reader count it runs capture twice: flat out (fps = 0) for the cost
//! per frame and the max frame rate, then paced for the reader latency (frame sent → reader
//! wakes with the sample). Readers verify every frame's integrity stamp (torn) and that ids only
//! rise (stale). `framebus-bench reader ...` is the reader process it starts. A second table puts
//! a Python reader (`python -m framebus._bench`, from the repository's `.venv`) next to a Rust
//! reader on the same 1080p capture run, each attached first once: latency and CPU
//! (`framebus-bench python` runs only that table).
//!
//! Then it measures V4L2 capture against the emulated device (`tests/fixtures/fake-v4l2`,
//! built with `cc` and LD_PRELOADed into capture) at 1080p and 4K YUYV, mmap + one copy next to
//! USERPTR: capture's CPU time per frame while its loop runs (from its `--summary`), minus the CPU
//! the emulated sensor spends writing the frame (a real device does that by DMA), and its ratio
//! to one memcpy of the frame. Last, the recorder process's CPU and memory with and without a
//! 5 s pre-roll at 1080p30 (`framebus-bench recorder` runs only that table).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod bridge;
mod device;
mod embedded;
mod stream;

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use framebus::{Camera, Event, ReaderPolicy};
use framebus_bench::cli::{BenchCommand, Cli, ReaderArgs};
use framebus_common::clock;
use framebus_common::pattern::SyntheticPattern;
use framebus_common::stats::LatencyWindow;

/// One measured configuration.
struct Case {
    label: &'static str,
    width: u32,
    height: u32,
    flat_out_frames: u64,
    paced_fps: u32,
    paced_frames: u64,
}

const CASES: [Case; 3] = [
    Case { label: "640x480", width: 640, height: 480, flat_out_frames: 3000, paced_fps: 100, paced_frames: 500 },
    Case { label: "1920x1080", width: 1920, height: 1080, flat_out_frames: 600, paced_fps: 60, paced_frames: 300 },
    Case { label: "3840x2160", width: 3840, height: 2160, flat_out_frames: 150, paced_fps: 30, paced_frames: 150 },
];

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(BenchCommand::Reader(args)) => reader(&args),
        Some(BenchCommand::Python) => in_temp_dir(python_vs_rust),
        Some(BenchCommand::V4l2) => in_temp_dir(device::device_bench),
        Some(BenchCommand::Recorder) => in_temp_dir(recorder_table),
        Some(BenchCommand::Embedded { config, port }) => embedded::run(&config, port),
        Some(BenchCommand::Stream) => in_temp_dir(stream::bench),
        Some(BenchCommand::StreamRecord) => in_temp_dir(stream::recording),
        Some(BenchCommand::StreamOverlay) => in_temp_dir(stream::overlay),
        Some(BenchCommand::Bridge) => in_temp_dir(bridge::bench),
        None => bench(),
    };
    if let Err(e) = result {
        eprintln!("framebus-bench: error: {e:#}");
        std::process::exit(2);
    }
}

/// Runs one table in a temporary folder (removed afterwards).
fn in_temp_dir(table: fn(&Path) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    table(dir.path())
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the bench executable")?;
    let path = exe.parent().map(|d| d.join(name)).ok_or_else(|| anyhow!("no parent folder"))?;
    if !path.is_file() {
        bail!("{} is not built: run `cargo build --release --bins`", path.display());
    }
    Ok(path)
}

/// Median nanoseconds of copying `bytes` from one warm buffer into `destinations` buffers in
/// turn: with 1 the plain memcpy reference, with the run's slot count the same memory pattern as
/// capture writing into rotating shared-memory slots.
fn memcpy_ns(bytes: usize, destinations: usize) -> f64 {
    let src = vec![7u8; bytes];
    // Non-zero fill: every page is touched now, so no page fault lands in a measured copy.
    let mut dst: Vec<Vec<u8>> = (0..destinations.max(1)).map(|_| vec![1u8; bytes]).collect();
    let mut times = Vec::new();
    let warm_up = 10.max(dst.len() * 2);
    let rounds = warm_up + 50.max(dst.len() * 6);
    for i in 0..rounds {
        let target = &mut dst[i % destinations.max(1)];
        let start = Instant::now();
        target.copy_from_slice(&src);
        std::hint::black_box(&mut *target);
        if i >= warm_up {
            times.push(start.elapsed().as_nanos() as f64);
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

struct Run {
    capture: serde_json::Value,
    readers: Vec<serde_json::Value>,
}

/// Frame slots of a run: each reader a queue of 2 plus 1 borrowed, capture 1 loaned.
fn slots_for(readers: usize) -> usize {
    readers * 3 + 1
}

fn write_config(dir: &Path, name: &str, case: &Case, fps: u32, readers: usize) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{name}.toml"));
    let slots = slots_for(readers);
    std::fs::write(
        &path,
        format!(
            "[deployment]\nname = \"{name}\"\n\n[[camera]]\nname = \"bench\"\nwidth = {}\nheight = {}\nfps = {fps}\nslots = {slots}\nmax-readers = {readers}\n\n[camera.source]\nkind = \"synthetic\"\n",
            case.width, case.height
        ),
    )
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// One capture run with a reader per entry of `policies` (`every`, `newest`, `max-fps=5`);
/// with `touch` each reader reads every byte of the frames it takes.
fn run_once(
    dir: &Path,
    name: &str,
    case: &Case,
    fps: u32,
    frames: u64,
    policies: &[&str],
    touch: bool,
) -> anyhow::Result<Run> {
    let readers = policies.len();
    let config = write_config(dir, name, case, fps, readers)?;
    let config_text = config.to_str().ok_or_else(|| anyhow!("non-UTF-8 temp path"))?.to_string();
    let mut reader_procs: Vec<Child> = Vec::new();
    for policy in policies {
        reader_procs.push(
            Command::new(std::env::current_exe()?)
                .args(["reader", &config_text, &frames.to_string(), policy, if touch { "touch" } else { "-" }])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped())
                .spawn()
                .context("starting a reader")?,
        );
    }
    let capture = Command::new(sibling("capture")?)
        .args([
            "--config",
            &config_text,
            "--max-frames",
            &frames.to_string(),
            "--wait-for-readers",
            &readers.to_string(),
            "--summary",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .context("starting capture")?;
    let capture_out = capture.wait_with_output().context("waiting for capture")?;
    if !capture_out.status.success() {
        bail!("capture failed: {:?}", capture_out.status);
    }
    let capture: serde_json::Value = serde_json::from_slice(&capture_out.stdout).context("capture summary")?;
    let mut reports = Vec::new();
    for mut r in reader_procs {
        let stdout = r.stdout.take().ok_or_else(|| anyhow!("reader stdout"))?;
        let line = BufReader::new(stdout).lines().next().ok_or_else(|| anyhow!("reader printed nothing"))??;
        r.wait()?;
        reports.push(serde_json::from_str(&line).context("reader report")?);
    }
    Ok(Run { capture, readers: reports })
}

fn f(v: &serde_json::Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

fn bench() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!("framebus-bench on {cpu}, {cores} cores (BGR3 synthetic frames, release build)\n");
    println!("| frame | readers | memcpy of 1 frame | memcpy, rotating slots | capture cost/frame | ratio to memcpy | ratio to rotating | max fps (fps=0) | latency p50 | latency p99 | torn | stale |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for case in &CASES {
        let bytes = (case.width * case.height * 3) as usize;
        for readers in [1usize, 4] {
            let memcpy = memcpy_ns(bytes, 1);
            let rotating = memcpy_ns(bytes, slots_for(readers));
            // Deployment names are short (at most 14 characters, see the config docs).
            let name = format!("b{}-{}-{}", std::process::id() % 1_000_000, readers, case.width / 10);
            let policies = vec!["every"; readers];
            let flat = run_once(dir.path(), &format!("{name}f"), case, 0, case.flat_out_frames, &policies, false)?;
            let paced =
                run_once(dir.path(), &format!("{name}p"), case, case.paced_fps, case.paced_frames, &policies, false)?;
            let cost = f(&flat.capture, "publish_cost_ns");
            let p50 = paced.readers.iter().map(|r| f(r, "latency_p50_us")).fold(0.0, f64::max);
            let p99 = paced.readers.iter().map(|r| f(r, "latency_p99_us")).fold(0.0, f64::max);
            let torn: f64 = flat.readers.iter().chain(&paced.readers).map(|r| f(r, "torn")).sum();
            let stale: f64 = flat.readers.iter().chain(&paced.readers).map(|r| f(r, "stale")).sum();
            println!(
                "| {} | {readers} | {:.0} µs | {:.0} µs | {:.0} µs | {:.2}x | {:.2}x | {:.0} | {p50:.0} µs | {p99:.0} µs | {torn} | {stale} |",
                case.label,
                memcpy / 1000.0,
                rotating / 1000.0,
                cost / 1000.0,
                cost / memcpy,
                cost / rotating,
                f(&flat.capture, "fps"),
            );
        }
    }
    println!("\nmemcpy, rotating slots = the same copy into as many buffers in turn as the run has slots (capture's memory pattern).");
    println!("capture cost = loan + write the frame into shared memory + header + send + notify, mean over the flat-out run.");
    println!("latency = publish timestamp (just before send) → frame in the reader's hands (reader loop of the framebus crate, policy every), paced run, worst reader.");
    policy_table(dir.path())?;
    python_vs_rust(dir.path())?;
    device::device_bench(dir.path())?;
    recorder_table(dir.path())?;
    stream::bench(dir.path())?;
    bridge::bench(dir.path())
}

/// Length of one [`recorder_table`] run, seconds.
const SECS: u64 = 15;
/// What [`recorder_table`] leaves out before measuring (the pre-roll fills).
const WARM_UP: Duration = Duration::from_secs(7);

/// One recorder run for [`recorder_table`].
struct RecorderCase {
    label: &'static str,
    /// Lines added to `[camera.recorder]`.
    table: &'static str,
    /// A streamer runs beside the recorder (`video = "stream"`).
    streamer: bool,
}

/// The config of one [`RecorderCase`]: deployment `name`, recordings in `rec`.
fn recorder_case_config(name: &str, rec: &Path, case: &RecorderCase) -> String {
    // A trigger no result matches: the recorder is armed and never records.
    const NEVER: &str = "[[camera.recorder.trigger]]\nproducer = \"nobody\"\n";
    // With a streamer: two readers, each with the recorder's default queue.
    let (slots, readers, streamer) = match case.streamer {
        true => (12, 2, "[camera.streamer]\nencoder = \"x264\"\nbitrate-kbps = 4000\ngop = 30\n\n"),
        false => (6, 1, ""),
    };
    format!(
        "[deployment]\nname = \"{name}\"\nstate-dir = \"{name}-state\"\n\n[[camera]]\nname = \"bench\"\nwidth = 1920\nheight = 1080\nfps = 30\nslots = {slots}\nmax-readers = {readers}\n\n[camera.source]\nkind = \"synthetic\"\n\n{streamer}[camera.recorder]\ndirectory = \"{}\"\nmin-free-mb = 0\nstats-interval-secs = 0.5\n{}{NEVER}",
        rec.display(),
        case.table
    )
}

/// The recorder process on a 1080p30 synthetic camera for 15 s: armed with triggers and no
/// pre-roll, armed holding a 5 s pre-roll, and recording (saving on) for reference. CPU and
/// memory of the recorder process over the last 8 s (after the pre-roll has filled).
fn recorder_table(dir: &Path) -> anyhow::Result<()> {
    let cases = [
        RecorderCase { label: "armed, pre-roll off", table: "pre-roll-secs = 0\n", streamer: false },
        RecorderCase {
            label: "armed, pre-roll 5 s (JPEG)",
            table: "video = \"mjpg-avi\"\npre-roll-secs = 5\n",
            streamer: false,
        },
        RecorderCase {
            label: "armed, pre-roll 5 s from the stream (streamer beside)",
            table: "video = \"stream\"\npre-roll-secs = 5\n",
            streamer: true,
        },
        RecorderCase {
            label: "recording (saving on), MJPG AVI",
            table: "enabled = true\npre-roll-secs = 0\n",
            streamer: false,
        },
    ];
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nThe recorder process on one 1080p30 camera (BGR3, synthetic), {SECS} s, figures over the last {} s (load average before: {}):\n",
        SECS - WARM_UP.as_secs(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!("| recorder | CPU | CPU per frame received | private memory (RssAnon) | resident (VmRSS) | held frames | held bytes | frames lost |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (i, case) in cases.iter().enumerate() {
        recorder_case(dir, i, case)?;
    }
    println!("CPU = user + system time of the recorder process over the last 8 s (the streamer's own encoding is not counted: it runs for viewers anyway). held = frames the recorder keeps for its pre-roll (5 s + 1 s for late results; JPEG, or the streamer's access units in whole GOPs), from its status. frames lost = frames published that the recorder did not receive.");
    Ok(())
}

/// The last stdout line of a process, kept up to date by a thread.
type LastLine = std::sync::Arc<std::sync::Mutex<String>>;

/// Starts the recorder with `--json` on `config`; returns it, its last stdout line and the
/// thread that reads it.
fn spawn_recorder(config: &str) -> anyhow::Result<(std::process::Child, LastLine, std::thread::JoinHandle<()>)> {
    let mut recorder = Command::new(sibling("recorder")?)
        .args(["--config", config, "--json"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the recorder")?;
    let stdout = recorder.stdout.take().ok_or_else(|| anyhow!("recorder stdout"))?;
    let last_line = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = std::sync::Arc::clone(&last_line);
    let lines = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(mut last) = sink.lock() {
                *last = line;
            }
        }
    });
    Ok((recorder, last_line, lines))
}

/// Runs one [`RecorderCase`] (the `i`th) for [`recorder_table`] and prints its row.
fn recorder_case(dir: &Path, i: usize, case: &RecorderCase) -> anyhow::Result<()> {
    // Deployment names are at most 14 characters (iceoryx2's socket paths).
    let name = format!("b{}r{i}", std::process::id() % 1_000_000);
    let config = dir.join(format!("{name}.toml"));
    let rec = dir.join(format!("{name}-rec"));
    std::fs::write(&config, recorder_case_config(&name, &rec, case))
        .with_context(|| format!("writing {}", config.display()))?;
    let config_text = config.to_str().ok_or_else(|| anyhow!("non-UTF-8 temp path"))?.to_string();
    let (mut recorder, last_line, lines) = spawn_recorder(&config_text)?;
    let mut streamer = match case.streamer {
        true => Some(
            Command::new(sibling("streamer")?)
                .args(["--config", &config_text])
                .env("RUST_LOG", "warn")
                .spawn()
                .context("starting the streamer")?,
        ),
        false => None,
    };
    let readers = if case.streamer { "2" } else { "1" };
    let mut capture = Command::new(sibling("capture")?)
        .args(["--config", &config_text, "--max-frames", &(SECS * 30).to_string(), "--wait-for-readers", readers])
        .env("RUST_LOG", "warn")
        .spawn()
        .context("starting capture")?;
    // The recorder attaches, capture starts, the pre-roll fills.
    let pid = recorder.id();
    let started = Instant::now();
    let mut first: Option<(f64, Instant, f64)> = None;
    let frames_now = || {
        let line = last_line.lock().map(|l| l.clone()).unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(&line).map_or(f64::NAN, |v| f(&v, "frames"))
    };
    let status = loop {
        if first.is_none() && started.elapsed() >= WARM_UP {
            first = Some((proc_cpu_secs(pid), Instant::now(), frames_now()));
        }
        if let Some(status) = capture.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !status.success() {
        bail!("capture failed: {status}");
    }
    let used = first.map(|(cpu, at, frames)| (proc_cpu_secs(pid) - cpu, at.elapsed().as_secs_f64(), frames));
    let memory = proc_status_kib(pid);
    // The last status line before the stop.
    std::thread::sleep(Duration::from_millis(600));
    let report: serde_json::Value = serde_json::from_str(&last_line.lock().map(|l| l.clone()).unwrap_or_default())
        .unwrap_or(serde_json::Value::Null);
    // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    recorder.wait()?;
    if let Some(streamer) = &mut streamer {
        // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
        unsafe { libc::kill(streamer.id() as i32, libc::SIGTERM) };
        streamer.wait()?;
    }
    let _ = lines.join();
    let stats = last_line.lock().map(|l| l.clone()).unwrap_or_default();
    let last: serde_json::Value = serde_json::from_str(&stats).unwrap_or(serde_json::Value::Null);
    let lost = (SECS * 30) as f64 - f(&last, "frames").max(0.0);
    // Frames received over the measured window (the status line is at most 0.5 s old).
    let received = used.map_or(f64::NAN, |(_, _, at_start)| f(&last, "frames") - at_start);
    println!(
        "| {} | {} | {} | {:.0} MiB | {:.0} MiB | {:.0} | {:.1} MiB | {lost:.0} of {} |",
        case.label,
        used.map_or("?".into(), |(cpu, secs, _)| format!("{:.1} % of a core", cpu / secs * 100.0)),
        used.map_or("?".into(), |(cpu, _, _)| format!("{:.1} ms", cpu * 1000.0 / received.max(1.0))),
        memory.0 / 1024.0,
        memory.1 / 1024.0,
        f(&report, "held_frames"),
        f(&report, "held_bytes") / (1024.0 * 1024.0),
        SECS * 30,
    );
    let _ = std::fs::remove_dir_all(&rec);
    Ok(())
}

/// CPU seconds (user + system) of process `pid`, from `/proc/<pid>/stat`.
fn proc_cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return f64::NAN };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { return f64::NAN };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|t| t.parse::<f64>().ok()).unwrap_or(f64::NAN)
        + fields.get(12).and_then(|t| t.parse::<f64>().ok()).unwrap_or(f64::NAN);
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks / hz
}

/// (RssAnon, VmRSS) of process `pid` in KiB, from `/proc/<pid>/status`.
fn proc_status_kib(pid: u32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (field("RssAnon:"), field("VmRSS:"))
}

/// Readers under different policies side by side on one 1080p30 camera for 10 s: frames they
/// took, CPU they used, latency. Each reads a frame the same way (integrity check).
fn policy_table(dir: &Path) -> anyhow::Result<()> {
    let case =
        Case { label: "1920x1080", width: 1920, height: 1080, flat_out_frames: 0, paced_fps: 30, paced_frames: 300 };
    let policies = ["newest", "max-fps=5", "every"];
    let name = format!("b{}-pol", std::process::id() % 1_000_000);
    let run = run_once(dir, &name, &case, case.paced_fps, case.paced_frames, &policies, true)?;
    println!("\nReader policies on one 1080p30 camera, 300 frames (10 s), all three readers at once, each reading every byte of the frames it takes:\n");
    println!(
        "| policy | frames taken | skipped | overwritten | CPU | CPU per taken frame | latency p50 | latency p99 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (policy, r) in policies.iter().zip(&run.readers) {
        let frames = f(r, "frames");
        let cpu = f(r, "cpu_secs");
        println!(
            "| {policy} | {frames:.0} | {:.0} | {:.0} | {:.1} % of a core | {:.0} µs | {:.0} µs | {:.0} µs |",
            f(r, "skipped"),
            f(r, "overwritten"),
            100.0 * cpu / (case.paced_frames as f64 / f64::from(case.paced_fps)),
            1e6 * cpu / frames.max(1.0),
            f(r, "latency_p50_us"),
            f(r, "latency_p99_us"),
        );
    }
    println!("CPU = user + system time of the reader process from its first frame to the end of the run.");
    Ok(())
}

/// The Python interpreter with the `framebus` package: `FRAMEBUS_PYTHON`, else the repository's
/// `.venv` (made by `scripts/bootstrap.sh`) found from the bench executable
/// (`<repo>/target/<profile>/framebus-bench`).
fn python_interpreter() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FRAMEBUS_PYTHON") {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    let repo = exe.parent()?.parent()?.parent()?;
    let python = repo.join(".venv/bin/python");
    python.is_file().then_some(python)
}

/// Stops a reader the bench started: SIGTERM, so it removes its shared-memory files, then
/// SIGKILL if it is still there after 5 s.
fn stop_reader(child: &mut Child) {
    // SAFETY: kill has no memory-safety preconditions; the pid is the bench's own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One paced 1080p run read by a Rust reader and a Python reader side by side (both `every`,
/// both verifying every frame), printed as a second table.
fn python_vs_rust(dir: &Path) -> anyhow::Result<()> {
    const CASE: Case =
        Case { label: "1920x1080", width: 1920, height: 1080, flat_out_frames: 0, paced_fps: 30, paced_frames: 300 };
    println!("\nPython reader (package `framebus`, python/) next to the Rust reader, same capture run: {} BGR3 at {} fps, {} frames, policy every, both verify every frame\n", CASE.label, CASE.paced_fps, CASE.paced_frames);
    println!("| reader | frames | latency p50 | latency p99 | CPU (one core = 100 %) | torn | stale |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let Some(python) = python_interpreter() else {
        println!(
            "| Python | skipped: no .venv/bin/python (run `bash scripts/bootstrap.sh`) or FRAMEBUS_PYTHON | | | | | |"
        );
        return Ok(());
    };
    // iceoryx2 wakes a camera's readers one after the other, in the order they attached: the
    // second one pays for the first one's wake-up (tens of µs on 2 cores). So the pair runs
    // twice, each reader attached first once, and the table says which.
    for python_first in [false, true] {
        let name = format!("b{}py{}", std::process::id() % 1_000_000, u8::from(python_first));
        let config = write_config(dir, &name, &CASE, CASE.paced_fps, 2)?;
        let config_text = config.to_str().ok_or_else(|| anyhow!("non-UTF-8 temp path"))?.to_string();
        let frames = CASE.paced_frames.to_string();
        let start_rust = || {
            Command::new(std::env::current_exe()?)
                .args(["reader", &config_text, &frames])
                .stdout(Stdio::piped())
                .spawn()
                .context("starting the Rust reader")
        };
        let start_python = || {
            Command::new(&python)
                .args(["-m", "framebus._bench", &config_text, &frames])
                .stdout(Stdio::piped())
                .spawn()
                .with_context(|| format!("starting the Python reader with {}", python.display()))
        };
        // Capture waits for both readers; the pause lets the first one attach before the
        // second starts (the Python interpreter takes a few hundred ms to import the package).
        // A second reader that cannot start takes the first one down with it.
        let second = |mut first: Child, start: &dyn Fn() -> anyhow::Result<Child>| match start() {
            Ok(second) => Ok((first, second)),
            Err(e) => {
                stop_reader(&mut first);
                Err(e)
            }
        };
        let (rust, py) = if python_first {
            let py = start_python()?;
            std::thread::sleep(Duration::from_secs(2));
            second(py, &start_rust).map(|(py, rust)| (rust, py))?
        } else {
            let rust = start_rust()?;
            std::thread::sleep(Duration::from_millis(200));
            second(rust, &start_python)?
        };
        let capture = Command::new(sibling("capture")?)
            .args(["--config", &config_text, "--max-frames", &frames, "--wait-for-readers", "2"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .status()
            .context("running capture")?;
        if !capture.success() {
            bail!("capture failed: {capture:?}");
        }
        print_reader_rows(&CASE, python_first, rust, py)?;
    }
    Ok(())
}

/// The table's two rows of one run: each reader's report, and which one attached first.
fn print_reader_rows(case: &Case, python_first: bool, rust: Child, py: Child) -> anyhow::Result<()> {
    let (rust_order, python_order) = if python_first { ("second", "first") } else { ("first", "second") };
    for (label, order, child) in
        [("Rust (crate framebus)", rust_order, rust), ("Python (package framebus)", python_order, py)]
    {
        let out = child.wait_with_output().with_context(|| format!("waiting for the {label} reader"))?;
        let line = String::from_utf8_lossy(&out.stdout);
        let report: serde_json::Value = serde_json::from_str(line.lines().last().unwrap_or_default())
            .with_context(|| format!("{label} reader report: {line}"))?;
        println!(
            "| {label}, attached {order} | {} | {:.0} µs | {:.0} µs | {:.1} % | {} | {} |",
            report["frames"],
            f(&report, "latency_p50_us"),
            f(&report, "latency_p99_us"),
            100.0 * f(&report, "cpu_secs") / (case.paced_frames as f64 / f64::from(case.paced_fps)),
            report["torn"],
            report["stale"],
        );
    }
    Ok(())
}

/// `framebus-bench reader <config> <frames> [policy]`: reads through the reader loop of the
/// `framebus` crate (policy `every` unless given), records publish → frame-in-hand latency,
/// verifies every frame, prints one JSON line.
fn reader(args: &ReaderArgs) -> anyhow::Result<()> {
    let frames = args.frames;
    let policy = match args.policy.as_deref() {
        Some(text) if text != "-" => ReaderPolicy::parse(text, None).map_err(|e| anyhow!(e))?,
        _ => ReaderPolicy::Every,
    };
    let touch = args.flags.iter().any(|a| a == "touch");
    let fake_device = args.flags.iter().any(|a| a == "fake-v4l2");
    let camera = Camera::builder(&args.config, "bench")?
        .role(&format!("bench-{}", std::process::id()))?
        .policy(policy)
        .open()?;
    let pattern = SyntheticPattern::new(camera.config().format(), camera.config().width, camera.config().height);
    if pattern.is_none() && !fake_device {
        bail!("no synthetic pattern for this camera");
    }
    let mut latency = LatencyWindow::new();
    let (mut seen, mut torn, mut stale, mut last) = (0u64, 0u64, 0u64, 0u64);
    let mut cpu_at_first = None;
    let mut checksum = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    camera.add_timer(Duration::from_millis(500));
    while last < frames && Instant::now() < deadline {
        match camera.next_event()? {
            Event::Frame(frame) => {
                let in_hand = clock::monotonic_ns();
                let header = *frame.header();
                latency.record_ns(in_hand.saturating_sub(header.publish_mono_ns));
                if header.frame_id <= last {
                    stale += 1;
                }
                last = header.frame_id;
                let intact = match &pattern {
                    _ if fake_device => fake_frame_intact(&header, frame.bytes()),
                    Some(pattern) => pattern.verify(header.frame_id, frame.bytes()).is_ok(),
                    None => false,
                };
                if !intact {
                    torn += 1;
                }
                if touch {
                    checksum = frame.bytes().iter().fold(checksum, |sum, b| sum.wrapping_add(u64::from(*b)));
                }
                cpu_at_first.get_or_insert_with(process_cpu_secs);
                seen += 1;
            }
            Event::Stop(_) => break,
            Event::Timer(_) | Event::Command(_) | Event::Gap(_) => {}
        }
    }
    let figures = camera.stats();
    let p = |w: &mut LatencyWindow, q| w.percentile_us(q).unwrap_or(0);
    std::hint::black_box(checksum);
    let cpu = process_cpu_secs() - cpu_at_first.unwrap_or(0.0);
    println!(
        "{}",
        serde_json::json!({
            "frames": seen,
            "last_id": last,
            "torn": torn,
            "stale": stale,
            "skipped": figures.skipped,
            "overwritten": figures.overwritten,
            "latency_p50_us": p(&mut latency, 50.0),
            "latency_p99_us": p(&mut latency, 99.0),
            "cpu_secs": cpu,
        })
    );
    Ok(())
}

/// CPU time (user + system) this process used so far, in seconds.
fn process_cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut usage: libc::rusage = unsafe { core::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return f64::NAN;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Whether a YUYV frame of the emulated device is what its documented formula says for the
/// frame's sequence: the 32-pixel sequence stamp of row 0 and 64 sampled pixels.
fn fake_frame_intact(header: &framebus_common::FrameHeader, bytes: &[u8]) -> bool {
    let (w, h, s) = (header.width as usize, header.height as usize, header.sequence);
    if bytes.len() < w * h * 2 || w < 32 || h < 2 {
        return false;
    }
    let luma = |x: usize, y: usize| bytes[(y * w + x) * 2];
    let stamp = (0..32).all(|x| luma(x, 0) == if (s >> x) & 1 == 1 { 255 } else { 0 });
    let samples = (0..64).all(|i| {
        let (x, y) = ((i * 7919) % w, 1 + (i * 104_729) % (h - 1));
        luma(x, y) == ((x + y) as u64 + s) as u8 && bytes[(y * w + x) * 2 + 1] == 128
    });
    stamp && samples
}
