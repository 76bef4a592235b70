//! The V4L2 capture table: capture against the emulated device (`tests/fixtures/fake-v4l2`,
//! LD_PRELOADed) at 1080p and 4K YUYV, mmap + one copy next to USERPTR, CPU per frame and its
//! ratio to one memcpy of the frame.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context};

use crate::{f, memcpy_ns, sibling, slots_for};

/// One emulated-device configuration.
struct DeviceCase {
    label: &'static str,
    width: u32,
    height: u32,
    fps: u32,
    frames: u64,
}

const DEVICE_CASES: [DeviceCase; 2] = [
    DeviceCase { label: "1920x1080", width: 1920, height: 1080, fps: 60, frames: 240 },
    DeviceCase { label: "3840x2160", width: 3840, height: 2160, fps: 30, frames: 100 },
];

/// Builds the emulated V4L2 device into `dir`; `None` (with the reason) when `cc` or the source
/// is missing.
fn build_fake_device(dir: &Path) -> Result<PathBuf, String> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/fake-v4l2/fake_v4l2.c");
    let lib = dir.join("libfake_v4l2.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&lib)
        .arg(&source)
        .args(["-ldl", "-lpthread"])
        .status()
        .map_err(|e| format!("running cc: {e}"))?;
    if !status.success() {
        return Err(format!("cc could not build {}", source.display()));
    }
    Ok(lib)
}

/// What one capture run against the emulated device cost.
struct DeviceRun {
    /// Capture's CPU time (user + system) while its loop ran, ns.
    cpu_ns: f64,
    /// Of it, the emulated sensor writing frames, ns.
    fill_ns: f64,
    capture: serde_json::Value,
    reader: serde_json::Value,
}

fn device_run(dir: &Path, lib: &Path, case: &DeviceCase, memory: &str, run: usize) -> anyhow::Result<DeviceRun> {
    // At most 14 characters: iceoryx2's socket paths contain it.
    let frames = case.frames;
    let name = format!("v{}{}{}-{run}", std::process::id() % 1_000_000, &memory[..1], case.width / 1000);
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "[deployment]\nname = \"{name}\"\n\n[[camera]]\nname = \"bench\"\nwidth = {}\nheight = {}\nfps = {}\npixel-format = \"YUYV\"\nslots = {}\nmax-readers = 1\n\n[camera.source]\nkind = \"v4l2\"\ndevice = \"/dev/video-bench\"\nmemory = \"{memory}\"\n",
            case.width,
            case.height,
            case.fps,
            slots_for(1)
        ),
    )?;
    let config_text = config.to_str().ok_or_else(|| anyhow!("non-UTF-8 temp path"))?.to_string();
    let stats = dir.join(format!("{name}.stats"));
    let reader = Command::new(std::env::current_exe()?)
        .args(["reader", &config_text, &frames.to_string(), "every", "fake-v4l2"])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting a reader")?;
    let capture = Command::new(sibling("capture")?)
        .args(["--config", &config_text, "--max-frames", &frames.to_string(), "--wait-for-readers", "1", "--summary"])
        .env("RUST_LOG", "warn")
        .env("LD_PRELOAD", lib)
        .env("FAKE_V4L2_DEVICE", "/dev/video-bench")
        .env("FAKE_V4L2_FORMATS", "YUYV")
        .env("FAKE_V4L2_SIZES", format!("{}x{}", case.width, case.height))
        .env("FAKE_V4L2_MAX_FPS", case.fps.to_string())
        .env("FAKE_V4L2_STATS", &stats)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting capture")?;
    let out = capture.wait_with_output().context("waiting for capture")?;
    if !out.status.success() {
        bail!("capture on the emulated device failed: {:?}", out.status);
    }
    let capture: serde_json::Value = serde_json::from_slice(&out.stdout).context("capture summary")?;
    let cpu_ns = f(&capture, "cpu_ns");
    let stats_text = std::fs::read_to_string(&stats).with_context(|| format!("reading {}", stats.display()))?;
    let fill_ns = stats_text
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("fill_cpu_ns="))
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| anyhow!("no fill_cpu_ns in `{stats_text}`"))?;
    let mut reader = reader;
    let out = reader.stdout.take().ok_or_else(|| anyhow!("reader stdout"))?;
    let line = BufReader::new(out).lines().next().ok_or_else(|| anyhow!("reader printed nothing"))??;
    reader.wait()?;
    Ok(DeviceRun { cpu_ns, fill_ns, capture, reader: serde_json::from_str(&line).context("reader report")? })
}

pub fn device_bench(dir: &Path) -> anyhow::Result<()> {
    let lib = match build_fake_device(dir) {
        Ok(lib) => lib,
        Err(why) => {
            println!("\n(emulated-device capture rows skipped: {why})");
            return Ok(());
        }
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nV4L2 capture from the emulated device, YUYV as delivered, 1 reader checking every frame (load average {}):\n",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!("| frame | memory | memcpy of 1 frame | capture CPU/frame | ratio to memcpy | publish cost/frame | frames written by device / by capture | torn | stale |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for case in &DEVICE_CASES {
        let memcpy = memcpy_ns((case.width * case.height * 2) as usize, 1);
        for memory in ["mmap", "userptr"] {
            // The lowest of three runs: on a shared machine other work only adds (cache and TLB
            // misses after every wake-up, context switches).
            let mut runs = Vec::new();
            for run in 0..3 {
                runs.push(device_run(dir, &lib, case, memory, run)?);
            }
            let per_frame = |r: &DeviceRun| (r.cpu_ns - r.fill_ns) / f(&r.capture, "frames").max(1.0);
            runs.sort_by(|a, b| per_frame(a).total_cmp(&per_frame(b)));
            let torn: f64 = runs.iter().map(|r| f(&r.reader, "torn")).sum();
            let stale: f64 = runs.iter().map(|r| f(&r.reader, "stale")).sum();
            let long = &runs[0];
            let cpu = per_frame(long);
            println!(
                "| {} | {} | {:.0} µs | {:.1} µs | {:.3}x | {:.1} µs | {} / {} | {torn} | {stale} |",
                case.label,
                long.capture["memory"].as_str().unwrap_or("?"),
                memcpy / 1000.0,
                cpu / 1000.0,
                cpu / memcpy,
                f(&long.capture, "publish_cost_ns") / 1000.0,
                long.capture["zero_copy_frames"],
                long.capture["written_frames"],
            );
        }
    }
    println!("\ncapture CPU/frame = (capture's CPU time while its loop ran − the emulated sensor's CPU time writing frames, which a real device does by DMA) / frames; lowest of 3 runs of {}/{} frames.",
        DEVICE_CASES[0].frames, DEVICE_CASES[1].frames);
    println!("It includes poll, DQBUF/QBUF (answered in-process by the emulated device), loan, copy (mmap only), header, send, notify and control polling.");
    println!("publish cost = capture's own wall-clock timing from loan (or the filled sample) to notify, mean over that run.");
    Ok(())
}
