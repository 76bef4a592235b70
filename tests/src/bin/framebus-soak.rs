//! `framebus-soak --minutes N`: runs a deployment under `ctl up` (synthetic 640x480 camera at
//! 30 fps, algo, preview, recorder saving 10 s segments) for N minutes under random chaos —
//! kill -9 of a child, SIGSTOP/SIGCONT of a child, bursts of `ctl` commands, preview viewers
//! coming and going — then stops it and checks: capture's rate held, every completed segment
//! plays with as many frames as its sidecar lists, nothing is left in /dev/shm, and memory and
//! file descriptors of every process stayed flat. Prints a report (Markdown) and exits 1 when a
//! check fails; then it lists what each grown process's new descriptors point at. `--seed N`
//! replays a run. `just soak MINUTES` runs it on the release build.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use framebus_e2e::{ffprobe_frames, process_status, Proc, TestDeployment, DEADLINE};
use serde_json::Value;

/// Deterministic pseudo-random numbers (xorshift), seeded from the clock; the seed is printed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// RSS (KiB) and open FDs of a process, from /proc.
fn resources(pid: u32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss, fds))
}

/// What each open descriptor of a process points at (`readlink /proc/<pid>/fd/<n>`), with the
/// kernel's object numbers dropped (`socket:[123]` → `socket`), so two listings compare by kind.
fn fd_targets(pid: u32) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    let mut targets: Vec<String> = entries
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|t| {
            let t = t.to_string_lossy().into_owned();
            match t.split_once(":[") {
                Some((kind, _)) if !t.starts_with('/') => kind.to_string(),
                _ => t,
            }
        })
        .collect();
    targets.sort();
    targets
}

/// The descriptors in `last` that were not in `first` (as a multiset), counted per target.
fn fd_growth(first: &[String], last: &[String]) -> BTreeMap<String, usize> {
    let mut count: BTreeMap<String, i64> = BTreeMap::new();
    for t in last {
        *count.entry(t.clone()).or_default() += 1;
    }
    for t in first {
        *count.entry(t.clone()).or_default() -= 1;
    }
    count.into_iter().filter(|(_, n)| *n > 0).map(|(t, n)| (t, n as usize)).collect()
}

/// A process's descriptor targets at its first sample and at its latest one.
type Listing = (Vec<String>, Vec<String>);

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

const ROLES: [&str; 4] = ["capture", "algo", "preview", "recorder"];

/// Descriptors a process may hold at its last sample beyond its first: its live peers'
/// iceoryx2 segments (a `.connection` per port it talks to and the data segment of a peer's
/// publisher, which a peer restarted by the chaos re-creates), so the count moves with which
/// peers happen to be up at either sample. The deployment has four processes with two to three
/// ports each; 8 holds them all. A leak (one descriptor per event, as the abandoned-request leak
/// was: +77 in 8 minutes) passes it within minutes.
const FD_GROWTH_BOUND: usize = 8;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let minutes: f64 = args
        .iter()
        .position(|a| a == "--minutes")
        .and_then(|i| args.get(i + 1))
        .and_then(|m| m.parse().ok())
        .unwrap_or(1.0);
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
    let seed = args
        .iter()
        .position(|a| a == "--seed")
        .and_then(|i| args.get(i + 1))
        .and_then(|m| m.parse::<u64>().ok())
        .map_or(seed, |s| s | 1);
    let mut rng = Rng(seed);
    let d = TestDeployment::new(
        "[[camera]]\nname = \"cam0\"\nwidth = 640\nheight = 480\nfps = 30\n\n[camera.source]\nkind = \"synthetic\"\n\n[camera.algo]\n\n[camera.preview]\nlisten = \"127.0.0.1:0\"\n\n[camera.recorder]\ndirectory = \"rec\"\nenabled = true\nsegment-secs = 10\nmin-free-mb = 64\n",
    );
    let mut up: Proc = d.spawn("ctl", &["up", "--max-restarts", "1000"]);
    let status = d.wait_status(|s| ROLES.iter().all(|r| process_status(s, "cam0", r)["frames"].as_u64() > Some(10)));
    let url = process_status(&status, "cam0", "preview")["message"]
        .as_str()
        .and_then(|m| m.split_whitespace().find(|w| w.starts_with("http://")))
        .map(|u| u.trim_end_matches([',', ';']).to_string())
        .expect("preview URL in its status message");

    let started = Instant::now();
    let run_for = Duration::from_secs_f64(minutes * 60.0);
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut fps_samples = Vec::new();
    // (role) → [(elapsed s, pid, rss KiB, fds)]
    let mut samples: BTreeMap<&str, Vec<(f64, u32, u64, usize)>> = BTreeMap::new();
    let mut listings: BTreeMap<(&str, u32), Listing> = BTreeMap::new();
    let mut viewers: Vec<std::net::TcpStream> = Vec::new();
    let mut next_sample = Instant::now();
    while started.elapsed() < run_for {
        if Instant::now() >= next_sample {
            next_sample += Duration::from_secs(5);
            let (_, out, _) = d.ctl(&["status", "--json", "--timeout", "2"]);
            if let Ok(s) = serde_json::from_str::<Value>(&out) {
                if let Some(fps) = process_status(&s, "cam0", "capture")["fps"].as_f64() {
                    fps_samples.push(fps);
                }
                for role in ROLES {
                    if let Some(pid) = process_status(&s, "cam0", role)["pid"].as_u64() {
                        if let Some((rss, fds)) = resources(pid as u32) {
                            // The preview holds one socket per viewer of ours: not a leak.
                            let fds = if role == "preview" { fds.saturating_sub(viewers.len()) } else { fds };
                            let targets = fd_targets(pid as u32);
                            listings
                                .entry((role, pid as u32))
                                .and_modify(|(_, last)| last.clone_from(&targets))
                                .or_insert_with(|| (targets.clone(), targets));
                            samples.entry(role).or_default().push((
                                started.elapsed().as_secs_f64(),
                                pid as u32,
                                rss,
                                fds,
                            ));
                        }
                    }
                }
            }
        }
        let action = rng.below(100);
        let (_, out, _) = d.ctl(&["status", "--json", "--timeout", "2"]);
        let pids: Vec<(String, u32)> = serde_json::from_str::<Value>(&out)
            .ok()
            .and_then(|s| s["processes"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|p| Some((p["role"].as_str()?.to_string(), p["pid"].as_u64()? as u32)))
            .collect();
        match action {
            // kill -9 of a random child (capture less often: it restarts the camera's run).
            0..=7 if !pids.is_empty() => {
                let (role, pid) = &pids[rng.below(pids.len() as u64) as usize];
                if role != "capture" || rng.below(3) == 0 {
                    // SAFETY: kill has no memory-safety preconditions; the pid is a child of our ctl up.
                    unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
                    *counts.entry("kill -9").or_default() += 1;
                }
            }
            8..=17 if !pids.is_empty() => {
                let (_, pid) = &pids[rng.below(pids.len() as u64) as usize];
                // SAFETY: as above.
                unsafe { libc::kill(*pid as i32, libc::SIGSTOP) };
                std::thread::sleep(Duration::from_millis(200 + rng.below(1800)));
                // SAFETY: as above.
                unsafe { libc::kill(*pid as i32, libc::SIGCONT) };
                *counts.entry("SIGSTOP+SIGCONT").or_default() += 1;
            }
            18..=32 => {
                let burst: Vec<std::process::Child> = (0..20 + rng.below(30))
                    .filter_map(|i| {
                        let args: &[&str] = match i % 4 {
                            0 => &["status", "--json"],
                            1 => &["preview", "on", "cam0"],
                            2 => &["record", "on", "cam0"],
                            _ => &["list"],
                        };
                        std::process::Command::new(framebus_e2e::bin("ctl"))
                            .arg("--config")
                            .arg(&d.config)
                            .args(args)
                            .stdout(std::process::Stdio::null())
                            .stderr(std::process::Stdio::null())
                            .spawn()
                            .ok()
                    })
                    .collect();
                *counts.entry("ctl commands").or_default() += burst.len() as u64;
                for mut child in burst {
                    let _ = child.wait();
                }
            }
            33..=60 => {
                // Viewers come and go; some read, some stall.
                if viewers.len() < 30 && rng.below(2) == 0 {
                    let host = url.trim_start_matches("http://").trim_end_matches('/');
                    if let Ok(mut s) = std::net::TcpStream::connect(host) {
                        use std::io::Write;
                        let _ = write!(s, "GET /stream.mjpg HTTP/1.1\r\nHost: {host}\r\n\r\n");
                        let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
                        viewers.push(s);
                        *counts.entry("viewers opened").or_default() += 1;
                    }
                } else if !viewers.is_empty() {
                    let i = rng.below(viewers.len() as u64) as usize;
                    viewers.swap_remove(i);
                    *counts.entry("viewers closed").or_default() += 1;
                }
                let mut buf = [0u8; 65536];
                for v in viewers.iter_mut().step_by(2) {
                    let _ = v.read(&mut buf);
                }
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    viewers.clear();
    let stopped = up.terminate();
    let leftovers = {
        // Let the last processes' clean-up finish (bounded).
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let left = d.leftovers();
            if left.is_empty() || Instant::now() > until {
                break left;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let (checked, bad) = check_segments(&d.dir.path().join("rec"));

    let mut failures = Vec::new();
    let fps_median = median(fps_samples.clone());
    let fps_low = fps_samples.iter().filter(|f| **f < 27.0).count();
    if fps_median < 29.0 {
        failures.push(format!("capture's median rate was {fps_median:.1} fps"));
    }
    if !bad.is_empty() {
        failures.push(format!("{} segment(s) do not match their sidecar: {bad:?}", bad.len()));
    }
    if !leftovers.is_empty() {
        failures.push(format!("left in /dev/shm: {leftovers:?}"));
    }
    if stopped != Some(0) {
        failures.push(format!("ctl up exited with {stopped:?}"));
    }
    println!("## framebus soak: {minutes} min, seed {seed}\n");
    println!("| chaos | count |\n|---|---:|");
    for (what, n) in &counts {
        println!("| {what} | {n} |");
    }
    println!(
        "\ncapture fps: median {fps_median:.1}, min {:.1} over {} samples (5 s apart; {fps_low} below 27 — kill -9 of capture, pauses)",
        fps_samples.iter().copied().fold(f64::INFINITY, f64::min),
        fps_samples.len()
    );
    println!("segments checked: {checked}, not matching their sidecar: {}", bad.len());
    println!("left in /dev/shm after stop: {}", leftovers.len());
    println!("\n| process | RSS first → last (same pid, KiB) | FDs first → last (preview: minus our viewers) | pids seen |\n|---|---|---|---:|");
    let mut growth = Vec::new();
    for (role, s) in &samples {
        // Growth is judged within the longest-lived instance (restarts start over).
        let mut by_pid: BTreeMap<u32, Vec<(f64, u64, usize)>> = BTreeMap::new();
        for (t, pid, rss, fds) in s {
            by_pid.entry(*pid).or_default().push((*t, *rss, *fds));
        }
        if let Some((pid, longest)) = by_pid.iter().max_by_key(|(_, v)| v.len()) {
            let quarter = (longest.len() / 4).max(1);
            let first_rss = median(longest[..quarter].iter().map(|x| x.1 as f64).collect());
            let last_rss = median(longest[longest.len() - quarter..].iter().map(|x| x.1 as f64).collect());
            let (first_fds, last_fds) = (longest[0].2, longest[longest.len() - 1].2);
            println!("| {role} | {first_rss:.0} → {last_rss:.0} | {first_fds} → {last_fds} | {} |", by_pid.len());
            if longest.len() >= 8 && last_rss > first_rss * 1.25 + 4096.0 {
                failures.push(format!("{role}: RSS grew from {first_rss:.0} to {last_rss:.0} KiB"));
            }
            if longest.len() >= 8 && last_fds > first_fds + FD_GROWTH_BOUND {
                failures.push(format!(
                    "{role}: FDs grew from {first_fds} to {last_fds} (more than the {FD_GROWTH_BOUND} its peers' segments explain)"
                ));
            }
            if last_fds > first_fds {
                if let Some((first, last)) = listings.get(&(*role, *pid)) {
                    let added: Vec<String> = fd_growth(first, last).iter().map(|(t, n)| format!("{n} × {t}")).collect();
                    growth.push(format!("{role} (pid {pid}) gained: {}", added.join(", ")));
                }
            }
        }
    }
    if !growth.is_empty() {
        println!("\nDescriptors opened since the first sample (readlink of /proc/<pid>/fd):");
        for line in &growth {
            println!("- {line}");
        }
    }
    if failures.is_empty() {
        println!("\nall checks passed");
    } else {
        println!("\nFAILED:\n- {}", failures.join("\n- "));
        std::process::exit(1);
    }
    let _ = DEADLINE;
}

/// Every completed segment's sidecar against its video (ffprobe): (checked, mismatches).
fn check_segments(dir: &Path) -> (usize, Vec<String>) {
    let mut sidecars: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|e| e.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    sidecars.retain(|p| {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        name.ends_with(".jsonl")
            && !name.contains(".partial.")
            && !name.contains(".failed.")
            && !name.contains(".events.")
    });
    let mut bad = Vec::new();
    for sidecar in &sidecars {
        let text = std::fs::read_to_string(sidecar).unwrap_or_default();
        let lines: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let listed = lines.iter().filter(|l| l["type"] == "frame").count() as u64;
        let video = lines.first().and_then(|l| l["video"].as_str()).map(|v| dir.join(v));
        match video {
            Some(video) => {
                let decoded = ffprobe_frames(&video);
                if decoded != Some(listed) {
                    bad.push(format!("{}: sidecar {listed}, ffprobe {decoded:?}", sidecar.display()));
                }
            }
            None => bad.push(format!("{}: no video named", sidecar.display())),
        }
    }
    (sidecars.len(), bad)
}
