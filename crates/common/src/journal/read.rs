//! Reading the events journal: the whole of it (rotated file, then the current one) and
//! following it as the recorder appends, across rotations. The one reader of the journal:
//! `ctl events`, the preview's events page and the supervisor's webhooks use it.
//!
//! A journal is read only when it is a regular file (a FIFO or a symlink in its place is an
//! error naming it, never a hang and never followed). A line that is not UTF-8 (a damaged or
//! tampered journal) is skipped and handed to the caller's `on_skip` with its file, line number
//! and a running count; the rest is read.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::secure_fs;

use super::{journal_path, rotated_journal_path};

/// A journal file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct ReadError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> ReadError + '_ {
    move |source| ReadError { path: path.to_path_buf(), source }
}

/// A line that was skipped because it is not UTF-8.
#[derive(Debug, Clone)]
pub struct SkippedLine {
    /// The journal file.
    pub path: PathBuf,
    /// 1-based line number in that file.
    pub line: u64,
    /// What is wrong with it.
    pub error: std::str::Utf8Error,
    /// Lines of that file skipped so far, this one included.
    pub skipped: u64,
}

impl std::fmt::Display for SkippedLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: line {} skipped: not valid UTF-8 ({}); {} line(s) skipped so far",
            self.path.display(),
            self.line,
            self.error,
            self.skipped
        )
    }
}

/// Turns the raw lines of one journal file into text, counting lines and skipped ones.
#[derive(Debug)]
struct LineDecoder {
    path: PathBuf,
    line: u64,
    skipped: u64,
}

impl LineDecoder {
    fn new(path: &Path) -> LineDecoder {
        LineDecoder { path: path.to_path_buf(), line: 0, skipped: 0 }
    }

    fn decode(&mut self, mut raw: Vec<u8>, on_skip: &mut dyn FnMut(&SkippedLine)) -> Option<String> {
        self.line += 1;
        if raw.last() == Some(&b'\r') {
            raw.pop();
        }
        match String::from_utf8(raw) {
            Ok(text) => Some(text),
            Err(e) => {
                self.skipped += 1;
                on_skip(&SkippedLine {
                    path: self.path.clone(),
                    line: self.line,
                    error: e.utf8_error(),
                    skipped: self.skipped,
                });
                None
            }
        }
    }
}

/// Opens a journal file for reading: `None` when it does not exist; a symlink, FIFO or device
/// is an error naming it.
fn open(path: &Path) -> Result<Option<File>, ReadError> {
    secure_fs::open_regular(path).map_err(at(path))
}

/// The lines of one journal file (none when it does not exist); lines that are not UTF-8 go
/// to `on_skip`.
pub fn read_lines(path: &Path, on_skip: &mut dyn FnMut(&SkippedLine)) -> Result<Vec<String>, ReadError> {
    let Some(file) = open(path)? else { return Ok(Vec::new()) };
    let mut decoder = LineDecoder::new(path);
    let mut lines = Vec::new();
    for raw in BufReader::new(file).split(b'\n') {
        lines.extend(decoder.decode(raw.map_err(at(path))?, on_skip));
    }
    Ok(lines)
}

/// Every line of `camera`'s journal in `directory`, oldest first: the rotated file, then the
/// current one.
pub fn read_journal(
    directory: &Path,
    camera: &str,
    on_skip: &mut dyn FnMut(&SkippedLine),
) -> Result<Vec<String>, ReadError> {
    let mut lines = read_lines(&rotated_journal_path(directory, camera), on_skip)?;
    lines.extend(read_lines(&journal_path(directory, camera), on_skip)?);
    Ok(lines)
}

/// One journal file's device, inode, size and modification time (s, ns).
pub type FileStamp = (u64, u64, u64, i64, i64);

/// What identifies one version of a camera's journal (both files' [`FileStamp`]; `None` for a
/// missing file): the same stamp means nothing was appended or rotated.
pub fn journal_stamp(directory: &Path, camera: &str) -> Vec<Option<FileStamp>> {
    [rotated_journal_path(directory, camera), journal_path(directory, camera)]
        .iter()
        .map(|p| std::fs::symlink_metadata(p).ok().map(|m| (m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec())))
        .collect()
}

/// One open journal file being followed: which file (it follows its inode across a rotation),
/// how far it was read, and the part of a line not finished yet.
#[derive(Debug)]
struct Tail {
    file: File,
    inode: (u64, u64),
    offset: u64,
    partial: Vec<u8>,
    decoder: LineDecoder,
}

impl Tail {
    fn open(path: &Path) -> Result<Option<Tail>, ReadError> {
        let Some(file) = open(path)? else { return Ok(None) };
        let meta = file.metadata().map_err(at(path))?;
        let decoder = LineDecoder::new(path);
        Ok(Some(Tail { file, inode: (meta.dev(), meta.ino()), offset: 0, partial: Vec::new(), decoder }))
    }

    /// Complete lines appended since the last call.
    fn read_new(&mut self, on_skip: &mut dyn FnMut(&SkippedLine)) -> Result<Vec<String>, ReadError> {
        let path = self.decoder.path.clone();
        if self.file.metadata().map_err(at(&path))?.len() < self.offset {
            // Truncated in place (not by the recorder): read it again from the start.
            self.offset = 0;
            self.partial.clear();
            self.decoder.line = 0;
        }
        self.file.seek(SeekFrom::Start(self.offset)).map_err(at(&path))?;
        let read = self.file.read_to_end(&mut self.partial).map_err(at(&path))?;
        self.offset += read as u64;
        let mut lines = Vec::new();
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let mut raw: Vec<u8> = self.partial.drain(..=end).collect();
            raw.pop();
            lines.extend(self.decoder.decode(raw, on_skip));
        }
        Ok(lines)
    }

    /// Skips what the file holds now (whole lines only; a line being written is read when it
    /// is finished).
    fn skip_to_end(&mut self) -> Result<(), ReadError> {
        self.read_new(&mut |_| {}).map(drop)
    }
}

/// Follows one camera's journal: [`Follower::poll`] returns the lines appended since the last
/// call, finishing the old file at a rotation and then reading the new one from its start; a
/// journal that does not exist yet is read from its start once the recorder creates it.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    rotated: PathBuf,
    tail: Option<Tail>,
}

impl Follower {
    /// Follows `camera`'s journal in `directory` from its current end: only records appended
    /// from now on are returned.
    pub fn from_end(directory: &Path, camera: &str) -> Result<Follower, ReadError> {
        let path = journal_path(directory, camera);
        let mut tail = Tail::open(&path)?;
        if let Some(t) = tail.as_mut() {
            t.skip_to_end()?;
        }
        Ok(Follower { path, rotated: rotated_journal_path(directory, camera), tail })
    }

    /// Follows `camera`'s journal in `directory` and returns what it already holds (rotated
    /// file, then the current one), oldest first.
    pub fn with_history(
        directory: &Path,
        camera: &str,
        on_skip: &mut dyn FnMut(&SkippedLine),
    ) -> Result<(Follower, Vec<String>), ReadError> {
        let rotated = rotated_journal_path(directory, camera);
        let mut history = read_lines(&rotated, on_skip)?;
        let path = journal_path(directory, camera);
        let mut tail = Tail::open(&path)?;
        if let Some(t) = tail.as_mut() {
            history.extend(t.read_new(on_skip)?);
        }
        Ok((Follower { path, rotated, tail }, history))
    }

    /// The current journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The rotated journal file.
    pub fn rotated_path(&self) -> &Path {
        &self.rotated
    }

    /// Whether the current journal file exists (was opened).
    pub fn is_open(&self) -> bool {
        self.tail.is_some()
    }

    /// Lines appended since the last call, oldest first.
    pub fn poll(&mut self, on_skip: &mut dyn FnMut(&SkippedLine)) -> Result<Vec<String>, ReadError> {
        let mut lines = Vec::new();
        if let Some(t) = self.tail.as_mut() {
            lines.extend(t.read_new(on_skip)?);
        }
        // Rotated (or created): finish the old file above, then read the new one from its start.
        let current = std::fs::symlink_metadata(&self.path).ok().map(|m| (m.dev(), m.ino()));
        if current.is_some() && current != self.tail.as_ref().map(|t| t.inode) {
            self.tail = Tail::open(&self.path)?;
            if let Some(t) = self.tail.as_mut() {
                lines.extend(t.read_new(on_skip)?);
            }
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, text: &[u8]) {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open");
        file.write_all(text).expect("write");
    }

    /// A follower started at the end sees only new whole lines, reads a line only once it is
    /// finished, and goes on across a rotation (the rest of the old file, then the new one).
    #[test]
    fn a_follower_reads_new_lines_across_a_rotation() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir(dir.path().join("events")).expect("events");
        let path = journal_path(dir.path(), "cam0");
        append(&path, b"old 1\nold 2\n");
        let mut follower = Follower::from_end(dir.path(), "cam0").expect("follower");
        let mut none = |s: &SkippedLine| panic!("{s}");
        assert!(follower.poll(&mut none).expect("poll").is_empty());
        append(&path, b"new 1\nnew 2 half");
        assert_eq!(follower.poll(&mut none).expect("poll"), vec!["new 1"]);
        append(&path, b"\n");
        std::fs::rename(&path, rotated_journal_path(dir.path(), "cam0")).expect("rotate");
        append(&path, b"after rotation\n");
        assert_eq!(follower.poll(&mut none).expect("poll"), vec!["new 2 half", "after rotation"]);
    }

    /// A line that is not UTF-8 is skipped and reported with its line number and a count.
    #[test]
    fn undecodable_lines_are_skipped_and_reported() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir(dir.path().join("events")).expect("events");
        append(&journal_path(dir.path(), "cam0"), b"one\n\xff\xfe\r\nthree\r\n");
        let mut reports = Vec::new();
        let lines = read_journal(dir.path(), "cam0", &mut |s| reports.push(s.to_string())).expect("read");
        assert_eq!(lines, vec!["one", "three"]);
        assert_eq!(reports.len(), 1);
        assert!(
            reports[0].contains("line 2 skipped: not valid UTF-8") && reports[0].ends_with("1 line(s) skipped so far")
        );
    }

    /// A FIFO in the journal's place is an error naming it, not a hang.
    #[test]
    fn a_fifo_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir(dir.path().join("events")).expect("events");
        let path = journal_path(dir.path(), "cam0");
        let c = std::ffi::CString::new(path.to_string_lossy().as_bytes()).expect("path");
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_journal(dir.path(), "cam0", &mut |_| {}).expect_err("fifo");
        assert!(e.to_string().contains("cam0.jsonl") && e.to_string().contains("FIFO"), "{e}");
    }
}
