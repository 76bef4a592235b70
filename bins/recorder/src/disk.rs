//! Free space, the removal of old segments (disk guard) and retention (`max-age-days`,
//! `max-total-mb`).

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Room on the recorder's file system: the shared `statvfs` of `framebus-common`.
pub use framebus_common::fs_space::{space, Space};

/// The segment base of `name` if it is a file or folder of a segment of `camera`:
/// `<camera>_<YYYYMMDD>T<HHMMSS.mmm>Z_<frame id>` followed by `.` and an extension.
fn segment_base<'a>(camera: &str, name: &'a str) -> Option<&'a str> {
    let rest = name.strip_prefix(camera)?.strip_prefix('_')?;
    let stamp = rest.as_bytes();
    let dated = stamp.len() > 9 && stamp[..8].iter().all(u8::is_ascii_digit) && stamp[8] == b'T';
    if !dated {
        return None;
    }
    // The time has a `.` of its own: the extension starts at the first `.` after the id.
    let id_at = rest.find("Z_")? + 2;
    let end = rest[id_at..].find('.').map_or(rest.len(), |dot| id_at + dot);
    Some(&name[..camera.len() + 1 + end])
}

/// Finished segments of `camera` in `dir`, oldest first, as base paths (without extension):
/// completed ones (a final sidecar `<base>.jsonl`) and failed ones (`<base>.failed.jsonl`,
/// kept after a write error). What the disk guard may delete; never `.partial` files.
pub fn finished_segments(dir: &Path, camera: &str) -> io::Result<Vec<PathBuf>> {
    let mut bases: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let name = name.to_str()?;
            let base = segment_base(camera, name)?;
            let rest = &name[base.len()..];
            (rest == ".jsonl" || rest == ".failed.jsonl").then(|| dir.join(base))
        })
        .collect();
    // Names start with the wall-clock time, so name order is age order.
    bases.sort();
    bases.dedup();
    Ok(bases)
}

/// Segments of `camera` left incomplete by an earlier run (e.g. killed): `*.partial.*` files.
pub fn partial_files(dir: &Path, camera: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let name = name.to_str()?;
            (segment_base(camera, name).is_some() && name.contains(".partial.")).then(|| entry.path())
        })
        .collect();
    found.sort();
    found
}

/// A path with the bytes it holds.
type SizedPath = (PathBuf, u64);

/// The files of one finished segment (completed or failed) named by its `base` path (folder
/// and base name): video and sidecar, and the image folder, each with its size in bytes.
fn segment_files(base: &Path) -> (Vec<SizedPath>, Option<SizedPath>) {
    let name = base.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let dir = base.parent().unwrap_or(Path::new("."));
    let files = ["avi", "mp4", "jsonl", "failed.avi", "failed.mp4", "failed.jsonl"]
        .iter()
        .map(|ext| dir.join(format!("{name}.{ext}")))
        .filter_map(|path| std::fs::symlink_metadata(&path).ok().map(|meta| (path, meta.len())))
        .collect();
    let images = dir.join(format!("{name}.images"));
    let images = images.is_dir().then(|| {
        let bytes = std::fs::read_dir(&images)
            .map(|entries| entries.flatten().map(|e| e.metadata().map(|m| m.len()).unwrap_or(0)).sum())
            .unwrap_or(0);
        (images, bytes)
    });
    (files, images)
}

/// Bytes one finished segment holds on disk.
pub fn segment_bytes(base: &Path) -> u64 {
    let (files, images) = segment_files(base);
    files.iter().map(|(_, bytes)| bytes).sum::<u64>() + images.map_or(0, |(_, bytes)| bytes)
}

/// Deletes one finished segment (completed or failed): its video, sidecar and image folder.
/// Returns bytes freed.
pub fn delete_segment(base: &Path) -> io::Result<u64> {
    let (files, images) = segment_files(base);
    let mut freed = 0;
    for (path, bytes) in files {
        std::fs::remove_file(&path)?;
        freed += bytes;
    }
    if let Some((images, bytes)) = images {
        std::fs::remove_dir_all(&images)?;
        freed += bytes;
    }
    Ok(freed)
}

/// A finished segment (completed or failed) with what retention needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedSegment {
    /// Folder and base name (no extension).
    pub base: PathBuf,
    /// Bytes it holds (video, sidecar, images).
    pub bytes: u64,
    /// When it was completed (its sidecar's last write).
    pub completed: SystemTime,
}

/// Finished segments of `camera` in `dir`, oldest first, with their sizes and completion times.
pub fn finished_segments_with_sizes(dir: &Path, camera: &str) -> io::Result<Vec<FinishedSegment>> {
    let bases = finished_segments(dir, camera)?;
    Ok(bases
        .into_iter()
        .map(|base| {
            let name = base.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            let completed = ["jsonl", "failed.jsonl"]
                .iter()
                .find_map(|ext| std::fs::metadata(dir.join(format!("{name}.{ext}"))).ok())
                .and_then(|m| m.modified().ok())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let bytes = segment_bytes(&base);
            FinishedSegment { base, bytes, completed }
        })
        .collect())
}

/// Bytes of the segment being written, named by its base path: its `.partial` video and
/// sidecar and its image folder.
pub fn partial_bytes(base: &Path) -> u64 {
    let name = base.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let dir = base.parent().unwrap_or(Path::new("."));
    let files: u64 = ["avi", "mp4", "jsonl"]
        .iter()
        .filter_map(|ext| std::fs::metadata(dir.join(format!("{name}.partial.{ext}"))).ok())
        .map(|m| m.len())
        .sum();
    let images = std::fs::read_dir(dir.join(format!("{name}.images")))
        .map(|entries| entries.flatten().map(|e| e.metadata().map(|m| m.len()).unwrap_or(0)).sum())
        .unwrap_or(0);
    files + images
}

/// Why retention deletes a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Older than `max-age-days`.
    MaxAge,
    /// The camera's segments hold more than `max-total-mb`.
    MaxTotal,
}

impl Retention {
    /// Name in logs and the journal.
    pub fn name(self) -> &'static str {
        match self {
            Retention::MaxAge => "max-age",
            Retention::MaxTotal => "max-total",
        }
    }
}

/// Which of `segments` (finished, oldest first) to delete: every one completed more than
/// `max_age` before `now`, then the oldest ones while all of them plus `current_bytes` (the
/// segment being written, never deleted) hold more than `max_total` bytes. Indexes into
/// `segments`, oldest first.
pub fn retention_plan(
    segments: &[FinishedSegment],
    current_bytes: u64,
    now: SystemTime,
    max_age: Option<Duration>,
    max_total: Option<u64>,
) -> Vec<(usize, Retention)> {
    let mut total = segments.iter().map(|s| s.bytes).sum::<u64>().saturating_add(current_bytes);
    let mut plan = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        let old = max_age.is_some_and(|max| now.duration_since(segment.completed).is_ok_and(|age| age > max));
        let why = if old {
            Retention::MaxAge
        } else if max_total.is_some_and(|max| total > max) {
            Retention::MaxTotal
        } else {
            continue;
        };
        total = total.saturating_sub(segment.bytes);
        plan.push((i, why));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Retention deletes what is too old wherever it is, then the oldest until the total (the
    /// current segment included) fits; the current segment is never in the plan.
    #[test]
    fn retention_deletes_old_segments_then_the_oldest_until_the_total_fits() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let seg = |n: u64, bytes: u64, age_secs: u64| FinishedSegment {
            base: PathBuf::from(format!("cam_{n}")),
            bytes,
            completed: now - Duration::from_secs(age_secs),
        };
        let segments = [seg(1, 100, 500), seg(2, 100, 400), seg(3, 100, 300), seg(4, 100, 10)];
        assert_eq!(retention_plan(&segments, 50, now, None, None), []);
        assert_eq!(
            retention_plan(&segments, 50, now, Some(Duration::from_secs(350)), None),
            [(0, Retention::MaxAge), (1, Retention::MaxAge)]
        );
        // 450 bytes in all with the current 50: down to 250 or less takes the two oldest.
        assert_eq!(
            retention_plan(&segments, 50, now, None, Some(250)),
            [(0, Retention::MaxTotal), (1, Retention::MaxTotal)]
        );
        assert_eq!(
            retention_plan(&segments, 50, now, Some(Duration::from_secs(450)), Some(250)),
            [(0, Retention::MaxAge), (1, Retention::MaxTotal)]
        );
        // A limit below the current segment deletes every finished one, never the current.
        assert_eq!(retention_plan(&segments, 5000, now, None, Some(1)).len(), 4);
    }

    /// Only this camera's finished segments (completed or failed) are listed, oldest first;
    /// partial ones and other cameras' files (even with a name prefix in common) are left alone.
    #[test]
    fn finished_segments_are_this_cameras_final_sidecars_oldest_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        for name in [
            "cam_20240102T000000.000Z_0000000001.jsonl",
            "cam_20240101T000000.000Z_0000000001.jsonl",
            "cam_20240101T000000.000Z_0000000001.avi",
            "cam_20240103T000000.000Z_0000000009.partial.jsonl",
            "cam_20240104T000000.000Z_0000000020.failed.jsonl",
            "cam_20240104T000000.000Z_0000000020.failed.avi",
            "cam_x_20240101T000000.000Z_0000000001.jsonl",
            "notes.jsonl",
        ] {
            std::fs::write(dir.path().join(name), b"x").expect("write");
        }
        let found = finished_segments(dir.path(), "cam").expect("list");
        let names: Vec<_> = found.iter().map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).collect();
        assert_eq!(
            names,
            [
                Some("cam_20240101T000000.000Z_0000000001".into()),
                Some("cam_20240102T000000.000Z_0000000001".into()),
                Some("cam_20240104T000000.000Z_0000000020".into())
            ]
        );
        assert_eq!(partial_files(dir.path(), "cam").len(), 1);
        assert_eq!(delete_segment(&found[0]).expect("delete"), 2);
        assert_eq!(delete_segment(&found[2]).expect("delete failed segment"), 2);
        assert_eq!(finished_segments(dir.path(), "cam").expect("list").len(), 1);
        let space = space(dir.path()).expect("statvfs");
        assert!(space.bytes > 0 && space.inodes != Some(0), "{space:?}");
    }
}
