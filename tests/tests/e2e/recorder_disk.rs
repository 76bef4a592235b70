//! Recorder on a full disk (issue 11, item 5), on a real small filesystem: a tmpfs mounted for
//! the test (skipped with a message when mounting is impossible, e.g. without root). The
//! recorder runs as in use (no frame limit) while the disk fills under it: every segment that
//! gets its final name must play in ffprobe with exactly the frames its sidecar lists; a
//! segment that could not be written consistently is named `.failed`; nothing stays
//! `.partial` after a stop; no empty segments pile up; status and log say what happened.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use framebus_e2e::{ffprobe_frames, process_status, Proc, TestDeployment, DEADLINE};
use serde_json::Value;

use super::recorder::{check_segment, files, sidecar, u};

/// A synthetic VGA camera at 30 fps recording 1-second MJPG segments into `<test dir>/rec`
/// with no free-space floor of its own (`min-free-mb = 0`, the case that used to fill the disk
/// to the last byte); `extra` goes into the recorder table.
fn camera(extra: &str) -> String {
    format!(
        "[[camera]]\nname = \"cam0\"\nwidth = 640\nheight = 480\nfps = 30\n\n[camera.source]\nkind = \"synthetic\"\n\n[camera.recorder]\ndirectory = \"rec\"\nenabled = true\nstats-interval-secs = 0.25\nsegment-secs = 1.0\nmin-free-mb = 0\n{extra}"
    )
}

/// A tmpfs mounted over a folder for one test, unmounted on drop (declare it after the
/// deployment and before the processes, so the processes are gone first).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs with `options` (`size=16m,nr_inodes=64`) on `dir`, or says why the test
    /// is skipped and returns `None`.
    fn mount(dir: &Path, options: &str, test: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mount point");
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", options, "tmpfs"]).arg(dir).output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs { dir: dir.to_path_buf() }),
            Ok(out) => {
                eprintln!(
                    "SKIPPED {test}: cannot mount a tmpfs on {} (needs root or CAP_SYS_ADMIN): {}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED {test}: cannot run `mount`: {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.dir).status().is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// What another program does to the disk: writes `path` until the filesystem is full.
/// Returns the bytes written.
fn fill_disk(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("create filler");
    let chunk = vec![0x5a_u8; 1 << 20];
    let mut total = 0;
    for size in [1 << 20, 4096, 1] {
        while let Ok(n @ 1..) = file.write(&chunk[..size]) {
            total += n as u64;
        }
    }
    total
}

/// Creates empty files in `dir` until no inode is left; returns their paths.
fn fill_inodes(dir: &Path) -> Vec<PathBuf> {
    let mut made = Vec::new();
    loop {
        let path = dir.join(format!("filler-{}", made.len()));
        match std::fs::File::create(&path) {
            Ok(_) => made.push(path),
            Err(_) => return made,
        }
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("cam0_"))
        .collect();
    names.sort();
    names
}

/// After a stop: nothing is `.partial`; every completed segment plays and matches its sidecar
/// ([`check_segment`]); every failed one is a `.failed` pair whose sidecar, when its end line
/// could be written, names the error. Returns (completed, failed).
fn check_folder(rec: &Path) -> (usize, usize) {
    let all = names(rec);
    assert!(!all.iter().any(|n| n.contains(".partial.")), "left `.partial` after the stop: {all:?}");
    let (mut completed, mut failed) = (0, 0);
    for index in files(rec, "jsonl") {
        let name = index.file_name().expect("name").to_string_lossy().into_owned();
        if name.contains(".failed.") {
            failed += 1;
            let video = rec.join(name.replace(".jsonl", ".avi"));
            assert!(video.exists(), "{name} has no video");
            let text = String::from_utf8_lossy(&std::fs::read(&index).expect("read")).into_owned();
            let end = text.lines().last().and_then(|l| serde_json::from_str::<Value>(l).ok());
            if let Some(end) = end.filter(|v| v["type"] == "end") {
                assert!(end["error"].is_string(), "{name}: a failed segment's end line names the error: {end}");
            }
            eprintln!(
                "{name}: failed segment, ffprobe reads {:?} frames of {}",
                ffprobe_frames(&video),
                text.lines().filter(|l| l.contains("\"type\":\"frame\"")).count()
            );
        } else {
            completed += 1;
            check_segment(&index);
            // A completed segment names an error only when one ended it early without breaking
            // it (a failed image: that frame is in neither the video nor the sidecar).
            let end = sidecar(&index).pop().expect("end line");
            assert!(end.get("error").is_none() || end["reason"] == "write-error", "{name}: {end}");
        }
    }
    (completed, failed)
}

/// Error lines the recorder logged.
fn error_lines(p: &Proc) -> Vec<String> {
    p.stderr_text().lines().filter(|l| l.contains(" ERROR ") || l.contains("GStreamer")).map(str::to_string).collect()
}

/// Another program fills the disk while the recorder records with `min-free-mb = 0`: the
/// recorder stops writing (state `disk-low`, `degraded` in `ctl status` with the reason), the
/// segment it was writing is either completed (its video checks out) or kept as `.failed`,
/// never renamed as complete with a broken video; while the disk is full no segment files
/// appear; once space is back it records again. After the stop nothing is `.partial`, every
/// completed segment plays with exactly the frames its sidecar lists, and the log has a
/// handful of error lines, not one per frame.
#[test]
fn a_disk_filled_by_another_program_never_leaves_a_broken_completed_segment() {
    let d = TestDeployment::new(&camera(""));
    let rec = d.dir.path().join("rec");
    let Some(_tmpfs) = Tmpfs::mount(&rec, "size=16m", "a_disk_filled_by_another_program") else { return };
    let mut capture = d.spawn("capture", &[]);
    let mut recorder = d.spawn("recorder", &["--json"]);
    recorder.wait_json(DEADLINE, |v| v["segments"].as_u64() >= Some(2));

    let filler = rec.join("filler");
    let filled = fill_disk(&filler);
    let low = recorder.wait_json(DEADLINE, |v| v["state"] == "disk-low");
    eprintln!("filled {filled} bytes; {low}");
    let status = d.wait_status(|s| process_status(s, "cam0", "recorder")["state"] == "degraded");
    let entry = process_status(&status, "cam0", "recorder");
    assert_eq!(entry["activity"], "disk-low", "{entry}");
    assert!(
        entry["message"].as_str().is_some_and(|m| m.starts_with("disk-low") && m.contains("free space")),
        "{entry}"
    );
    // While the disk stays full, frames go by and no segment is started.
    let before = names(&rec);
    assert!(!before.iter().any(|n| n.contains(".partial.")), "a segment stays open on a full disk: {before:?}");
    let frames = u(&low, "frames");
    let still = recorder.wait_json(DEADLINE, |v| v["frames"].as_u64() >= Some(frames + 90));
    assert_eq!(still["state"], "disk-low", "{still}");
    assert_eq!(names(&rec), before, "files appeared while the disk was full");

    std::fs::remove_file(&filler).expect("free the disk");
    let segments = u(&still, "segments");
    recorder.wait_json(DEADLINE, |v| v["state"] == "recording" && v["segments"].as_u64() >= Some(segments + 2));
    assert_eq!(recorder.terminate(), Some(0), "{}", recorder.stderr_text());
    let (completed, failed) = check_folder(&rec);
    assert!(completed >= 4 && failed <= 1, "completed {completed}, failed {failed}: {:?}", names(&rec));
    let errors = error_lines(&recorder);
    assert!((1..=4).contains(&errors.len()), "{errors:#?}");
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// The recorder fills the disk by itself (`min-free-mb = 0`, PNG images of every frame): it
/// stops while there is still room to close its segment, so every segment completes and
/// checks out (none failed); then `delete-oldest = true` (SIGHUP) lets it go on by deleting its
/// oldest segments, and what remains still plays and matches its sidecars.
#[test]
fn the_recorder_filling_the_disk_itself_stops_in_time_and_delete_oldest_keeps_it_going() {
    let d = TestDeployment::new(&camera("images = \"png\"\ndelete-oldest = false\n"));
    let rec = d.dir.path().join("rec");
    let Some(_tmpfs) = Tmpfs::mount(&rec, "size=12m", "the_recorder_filling_the_disk_itself") else { return };
    let mut capture = d.spawn("capture", &[]);
    let mut recorder = d.spawn("recorder", &["--json"]);
    let low = recorder.wait_json(DEADLINE, |v| v["state"] == "disk-low");
    assert_eq!(u(&low, "failed_segments"), 0, "{low}");
    assert!(u(&low, "written") > 0, "{low}");
    let full = names(&rec);

    let config = std::fs::read_to_string(&d.config).expect("config");
    std::fs::write(&d.config, config.replace("delete-oldest = false", "delete-oldest = true")).expect("config");
    recorder.signal(libc::SIGHUP);
    let segments = u(&low, "segments");
    let going =
        recorder.wait_json(DEADLINE, |v| v["state"] == "recording" && v["segments"].as_u64() >= Some(segments + 3));
    assert_eq!(recorder.terminate(), Some(0), "{}", recorder.stderr_text());
    let oldest = full.first().expect("segments before the floor");
    assert!(!names(&rec).contains(oldest), "the oldest segment {oldest} was not deleted");
    let (completed, failed) = check_folder(&rec);
    assert!(completed >= 2, "{completed}");
    assert_eq!(failed, 0, "{:?}", names(&rec));
    assert!(recorder.stderr_text().contains("deleted the oldest segment"), "{going}");
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// Inodes run out (a tmpfs with few inodes, an image per frame, `min-free-inodes = 0`, then
/// another program takes every inode left): the guard sees it (statvfs `f_favail`) or the
/// image cannot be created; either way the segment ends with video and sidecar in step (a
/// frame whose image failed is in neither), state `disk-low` names inodes, and it records
/// again when inodes are back.
#[test]
fn inode_exhaustion_ends_segments_with_video_and_sidecar_in_step() {
    let d = TestDeployment::new(&camera("images = \"jpeg\"\nmin-free-inodes = 0\n"));
    let rec = d.dir.path().join("rec");
    let Some(_tmpfs) = Tmpfs::mount(&rec, "size=64m,nr_inodes=400", "inode_exhaustion") else { return };
    let mut capture = d.spawn("capture", &[]);
    let mut recorder = d.spawn("recorder", &["--json"]);
    recorder.wait_json(DEADLINE, |v| v["segments"].as_u64() >= Some(1));
    let fillers = fill_inodes(&rec);
    let low = recorder.wait_json(DEADLINE, |v| v["state"] == "disk-low");
    assert!(low["last_error"].as_str().is_some_and(|e| e.contains("free inodes")), "{low}");
    let status = d.wait_status(|s| process_status(s, "cam0", "recorder")["state"] == "degraded");
    let message = process_status(&status, "cam0", "recorder")["message"].as_str().unwrap_or_default().to_string();
    assert!(message.starts_with("disk-low") && message.contains("inodes"), "{message}");
    eprintln!("{} inode fillers; {low}", fillers.len());

    for filler in &fillers {
        std::fs::remove_file(filler).expect("free an inode");
    }
    let segments = u(&low, "segments");
    recorder.wait_json(DEADLINE, |v| v["state"] == "recording" && v["segments"].as_u64() >= Some(segments + 1));
    assert_eq!(recorder.terminate(), Some(0), "{}", recorder.stderr_text());
    let (completed, failed) = check_folder(&rec);
    assert!(completed >= 2 && failed == 0, "completed {completed}, failed {failed}: {:?}", names(&rec));
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// A write error that free space does not explain (here EFBIG: a file-size limit, standing
/// for EIO or a quota): OpenCV's video writer reports nothing, so the recorder checks each
/// video when its segment closes; the ones that lost frames are kept as `.failed`, never
/// under a completed name, the state becomes `write-error` (`degraded` in `ctl status`), new
/// segments are tried after a growing delay, and the log stays short. Runs without root.
#[test]
fn silent_video_write_errors_mark_segments_failed_and_back_off() {
    let d = TestDeployment::new(&camera("").replace("segment-secs = 1.0", "segment-secs = 3.0"));
    let rec = d.dir.path().join("rec");
    let mut capture = d.spawn("capture", &[]);
    let mut command = Command::new(framebus_e2e::bin("recorder"));
    command.args(["--config", d.config.to_str().expect("utf-8"), "--json"]);
    // SAFETY: only an async-signal-safe call between fork and exec.
    unsafe {
        command.pre_exec(|| {
            // Without this SIGXFSZ would kill it: a write past the limit fails with EFBIG instead.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut recorder = Proc::spawn_command("recorder", &mut command);
    recorder.wait_json(DEADLINE, |v| v["state"] == "recording" && v["written"].as_u64() >= Some(1));
    // From now on every file it writes stops at 400 KB (a video reaches that in about 1.5 s,
    // a sidecar never). Set once it runs: its shared-memory segments are larger than that.
    let limit = libc::rlimit { rlim_cur: 400 * 1024, rlim_max: 400 * 1024 };
    // SAFETY: prlimit only reads `limit`; the old-limit pointer may be null.
    let rc =
        unsafe { libc::prlimit(recorder.child.id() as libc::pid_t, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    let failing = recorder.wait_json(DEADLINE, |v| v["state"] == "write-error");
    let status = d.wait_status(|s| process_status(s, "cam0", "recorder")["state"] == "degraded");
    let message = process_status(&status, "cam0", "recorder")["message"].as_str().unwrap_or_default().to_string();
    assert!(message.starts_with("write-error"), "{message}");
    recorder.wait_json(DEADLINE, |v| v["failed_segments"].as_u64() >= Some(2));
    assert_eq!(recorder.terminate(), Some(0), "{}", recorder.stderr_text());
    let (completed, failed) = check_folder(&rec);
    assert!(failed >= 2, "completed {completed}, failed {failed}: {failing}");
    assert!(error_lines(&recorder).len() <= 2 * failed, "{:#?}", error_lines(&recorder));
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}
