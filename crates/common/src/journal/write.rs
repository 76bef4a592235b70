//! Writes an events journal (`<directory>/events/<camera>.jsonl`, format in
//! [`crate::journal`]): one line per record, appended with one write each, rotated at
//! [`JOURNAL_MAX_BYTES`]. The recorder writes its camera's; the bridge writes the copy of a
//! remote camera's origin journal ([`super::origin_directory`]). Best effort: a journal that
//! cannot be written (full disk) never stops recording; the failure is logged as a warning at
//! most once a minute.
//!
//! The recordings folder may be shared with other users, so the journal is opened like the
//! state files: `events/` must be a real folder of this user (not a symlink), the file is
//! opened with `O_NOFOLLOW | O_NONBLOCK` and written only when it is a regular file owned by
//! this user. A symlink or a FIFO planted in its place is an error naming it, never followed
//! and never a hang.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{journal_path, rotated_journal_path, JournalRecord, JOURNAL_MAX_BYTES};
use crate::secure_fs;

/// How often a failing journal is reported.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The journal of one camera.
pub struct Journal {
    camera: String,
    path: PathBuf,
    rotated: PathBuf,
    max_bytes: u64,
    failures: u64,
    warned: Option<Instant>,
    /// The last failure logged: a different one (a symlink replaced by a FIFO) is logged at once.
    last_warning: String,
    line: String,
}

impl Journal {
    /// The journal of `camera` in the recordings `directory` (created at the first record).
    pub fn new(directory: &std::path::Path, camera: &str) -> Journal {
        Journal {
            camera: camera.to_string(),
            path: journal_path(directory, camera),
            rotated: rotated_journal_path(directory, camera),
            max_bytes: JOURNAL_MAX_BYTES,
            failures: 0,
            warned: None,
            last_warning: String::new(),
            line: String::new(),
        }
    }

    /// The journal's path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Records that could not be written.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Appends `record` (rotating first when the file is full).
    pub fn write(&mut self, record: &JournalRecord) {
        match serde_json::to_string(record) {
            Ok(line) => self.write_line(&line),
            Err(e) => self.fail(&format!("encoding a record: {e}")),
        }
    }

    /// Appends one record already encoded as a JSON line (without its newline).
    pub fn write_line(&mut self, line: &str) {
        self.line.clear();
        self.line.push_str(line);
        self.line.push('\n');
        if let Err(e) = self.append() {
            let message = format!("writing `{}`: {e}", self.path.display());
            self.fail(&message);
        }
    }

    /// Opens, appends and closes (records are rare: a few per clip), so a journal deleted or
    /// moved by someone else is simply started again.
    fn append(&mut self) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            secure_fs::ensure_real_dir(dir, 0o777)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        }
        // The entry itself, never what a symlink points to (renaming moves the link, if any).
        let size = std::fs::symlink_metadata(&self.path).map_or(0, |m| m.len());
        if size >= self.max_bytes {
            match std::fs::rename(&self.path, &self.rotated) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let mut file = secure_fs::open_append(&self.path, 0o666)?;
        file.write_all(self.line.as_bytes())
    }

    fn fail(&mut self, message: &str) {
        self.failures += 1;
        if self.warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) || message != self.last_warning {
            self.warned = Some(Instant::now());
            self.last_warning = message.to_string();
            tracing::warn!(
                camera = self.camera,
                "events journal: {message} ({} record(s) lost so far; recording goes on)",
                self.failures
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deleted(n: u64) -> JournalRecord {
        JournalRecord::SegmentDeleted {
            utc: "2026-01-01T00:00:00.000Z".into(),
            segment: format!("cam0_20260101T000000.000Z_{n:010}"),
            reason: "max-total".into(),
            bytes: n,
        }
    }

    /// Records are appended as lines that parse back; at the size limit the file is rotated,
    /// so the journal never holds more than two files' worth.
    #[test]
    fn records_append_as_lines_and_the_file_rotates() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut journal = Journal::new(dir.path(), "cam0");
        journal.max_bytes = 1000;
        for n in 0..30 {
            journal.write(&deleted(n));
        }
        assert_eq!(journal.failures(), 0);
        let current = std::fs::read_to_string(journal.path()).expect("journal");
        let rotated = std::fs::read_to_string(rotated_journal_path(dir.path(), "cam0")).expect("rotated");
        assert!(rotated.len() as u64 >= 1000 && rotated.len() < 1200, "{}", rotated.len());
        let records: Vec<JournalRecord> =
            rotated.lines().chain(current.lines()).map(|l| JournalRecord::parse(l).expect("parses")).collect();
        assert_eq!(records.last(), Some(&deleted(29)));
        assert!(records.len() < 30, "the oldest rotated out: {}", records.len());
    }

    /// A symlink in the journal's place is refused and its target left untouched; a FIFO is
    /// refused without blocking; a symlinked `events` folder is refused.
    #[test]
    fn planted_symlinks_and_fifos_are_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("temp dir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"secret\n").expect("victim");
        std::fs::create_dir(dir.path().join("events")).expect("events");
        let mut journal = Journal::new(dir.path(), "cam0");
        std::os::unix::fs::symlink(&victim, journal.path()).expect("symlink");
        journal.write(&deleted(1));
        assert_eq!(journal.failures(), 1);
        assert_eq!(std::fs::read(&victim).expect("victim"), b"secret\n");
        std::fs::remove_file(journal.path()).expect("rm link");
        let c = std::ffi::CString::new(journal.path().to_string_lossy().as_bytes()).expect("path");
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        journal.write(&deleted(2));
        assert_eq!(journal.failures(), 2);
        let other = tempfile::tempdir().expect("temp dir");
        std::fs::remove_dir_all(dir.path().join("events")).expect("rm events");
        std::os::unix::fs::symlink(other.path(), dir.path().join("events")).expect("symlink events");
        journal.write(&deleted(3));
        assert_eq!(journal.failures(), 3);
        assert!(!other.path().join("cam0.jsonl").exists(), "written through a symlinked folder");
    }

    /// A journal that cannot be written loses records without failing.
    #[test]
    fn an_unwritable_journal_only_counts_failures() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("events"), b"a file where the folder should be").expect("block");
        let mut journal = Journal::new(dir.path(), "cam0");
        journal.write(&deleted(1));
        journal.write(&deleted(2));
        assert_eq!(journal.failures(), 2);
    }
}
