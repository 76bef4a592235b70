//! The disk guard and retention of one camera's recordings folder: free space and inodes
//! against `min-free-mb` / `min-free-inodes` plus a reserve (the room needed to close the
//! segment being written), the removal of the oldest finished segments when allowed
//! (`delete-oldest`), and retention (`max-age-days`, `max-total-mb`).
//!
//! It decides and deletes; it never touches the segment being written. What it did comes back
//! as [`GuardEvent`]s (deletions to journal, errors to count) and a [`Change`] of state, which
//! the recorder acts on (it finishes the segment when the disk goes low).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use framebus_common::config::RecorderConfig;

use crate::disk::{self, Space};

/// Room the recorder keeps on top of `min-free-mb` whatever the frames: FFmpeg's and the
/// sidecar's buffers, the container's header rewrite, filesystem metadata.
const RESERVE_BASE: u64 = 1024 * 1024;
/// Raw frames' worth of room also kept: the next video frame, the next image (a PNG can be
/// as large as the raw frame) and the frames an encoder holds back until the file is closed.
const RESERVE_FRAMES: u64 = 3;
/// Room per frame of the current segment for the index written when it closes (AVI: 16 +
/// 8 bytes per frame; MP4: under 32).
const RESERVE_PER_FRAME: u64 = 64;
/// Inodes kept on top of `min-free-inodes`: a new segment needs up to 3 (sidecar, video,
/// image folder), an image 1.
pub const INODE_RESERVE: u64 = 4;
/// How often retention looks at the folder (also after every finished segment).
const RETENTION_EVERY: Duration = Duration::from_secs(5);

/// The guard's settings (re-read on SIGHUP).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuardSettings {
    /// `min-free-mb`.
    pub min_free_mb: u64,
    /// `min-free-inodes`.
    pub min_free_inodes: u64,
    /// `delete-oldest`: below the floor, delete the oldest finished segments first.
    pub delete_oldest: bool,
    /// `max-age-days`.
    pub max_age_days: Option<f64>,
    /// `max-total-mb`.
    pub max_total_mb: Option<u64>,
}

impl GuardSettings {
    /// The settings of a `[camera.recorder]` table.
    pub fn of(config: &RecorderConfig) -> GuardSettings {
        GuardSettings {
            min_free_mb: config.min_free_mb,
            min_free_inodes: config.min_free_inodes,
            delete_oldest: config.delete_oldest,
            max_age_days: config.max_age_days,
            max_total_mb: config.max_total_mb,
        }
    }
}

/// Something the guard did that the recorder reports.
#[derive(Debug, Clone, PartialEq)]
pub enum GuardEvent {
    /// A finished segment was deleted (`reason`: `disk-floor`, `max-age`, `max-total`).
    Deleted {
        /// Folder and base name of the segment.
        base: PathBuf,
        /// Why.
        reason: &'static str,
        /// Bytes freed.
        bytes: u64,
    },
    /// Something failed (`kind` rate-limits its log line).
    Error {
        /// Kind of error (`statvfs`, `delete`, `retention`).
        kind: &'static str,
        /// What failed.
        message: String,
    },
}

/// A change of the guard's state.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Space went below the floor plus the reserve: stop writing (why).
    Low(String),
    /// Space is back: write again.
    Back,
}

/// What one check found.
#[derive(Debug, Default)]
pub struct Check {
    /// Deletions and errors, in order.
    pub events: Vec<GuardEvent>,
    /// The state changed.
    pub change: Option<Change>,
}

/// The disk guard and retention of one folder.
#[derive(Debug)]
pub struct DiskGuard {
    camera: String,
    directory: PathBuf,
    settings: GuardSettings,
    /// Why writing stopped (while the disk is low).
    low: Option<String>,
    /// Space at the last measure.
    space: Option<Space>,
    /// Bytes of a raw (BGR) frame: sizes the reserve.
    frame_bytes: u64,
    retention_at: Instant,
}

impl DiskGuard {
    /// A guard of `directory` for `camera`, for frames of `frame_bytes` (BGR).
    pub fn new(camera: &str, directory: &Path, settings: GuardSettings, frame_bytes: u64) -> DiskGuard {
        DiskGuard {
            camera: camera.to_string(),
            directory: directory.to_path_buf(),
            settings,
            low: None,
            space: None,
            frame_bytes,
            retention_at: Instant::now(),
        }
    }

    /// The current settings.
    pub fn settings(&self) -> GuardSettings {
        self.settings
    }

    /// Changes the settings (the caller checks or applies them again).
    pub fn set(&mut self, settings: GuardSettings) {
        self.settings = settings;
    }

    /// Whether writing is stopped for want of space.
    pub fn is_low(&self) -> bool {
        self.low.is_some()
    }

    /// Why writing is stopped.
    pub fn low_reason(&self) -> Option<&str> {
        self.low.as_deref()
    }

    /// Space at the last measure.
    pub fn space(&self) -> Option<Space> {
        self.space
    }

    /// Sizes the reserve for frames of `width`×`height`.
    pub fn set_frame_size(&mut self, width: u32, height: u32) {
        self.frame_bytes = u64::from(width) * u64::from(height) * 3;
    }

    /// Bytes kept free on top of `min-free-mb` while the current segment holds
    /// `segment_frames`: the room to finish it cleanly (its index grows with its frames) and
    /// to write the next frame.
    pub fn reserve_bytes(&self, segment_frames: u64) -> u64 {
        RESERVE_BASE
            .saturating_add(RESERVE_FRAMES.saturating_mul(self.frame_bytes))
            .saturating_add(RESERVE_PER_FRAME.saturating_mul(segment_frames))
    }

    /// Why `space` is too little for a `reserve` (bytes or inodes below the floor plus the
    /// reserve; `slack` extra of each is asked for to resume, so the state does not flap), or
    /// `None`.
    pub fn shortage(&self, space: Space, reserve: u64, slack: bool) -> Option<String> {
        let s = &self.settings;
        let need = s.min_free_mb.saturating_mul(1024 * 1024).saturating_add(reserve).saturating_add(if slack {
            reserve
        } else {
            0
        });
        let dir = self.directory.display();
        if space.bytes < need {
            return Some(format!(
                "free space on `{dir}` is {} MiB, below the floor of {} MiB (min-free-mb) + {:.1} MiB the recorder keeps to close its segment",
                space.bytes / (1024 * 1024),
                s.min_free_mb,
                reserve as f64 / (1024.0 * 1024.0)
            ));
        }
        let inode_need = s.min_free_inodes.saturating_add(INODE_RESERVE * if slack { 2 } else { 1 });
        match space.inodes {
            Some(inodes) if inodes < inode_need => Some(format!(
                "free inodes on `{dir}`: {inodes}, below the floor of {} (min-free-inodes) + {INODE_RESERVE} the recorder keeps",
                s.min_free_inodes
            )),
            _ => None,
        }
    }

    /// Measures free space and inodes; below the floor plus `reserve` deletes the oldest
    /// finished segments (when allowed and `active`) and, if still below, goes low (only when
    /// `active`: a recorder that writes nothing has nothing to stop). Above it again, comes back.
    pub fn check(&mut self, active: bool, reserve: u64) -> Check {
        let mut check = Check::default();
        let mut space = match disk::space(&self.directory) {
            Ok(space) => space,
            Err(e) => {
                let message = format!("measuring free space of `{}`: {e}", self.directory.display());
                check.events.push(GuardEvent::Error { kind: "statvfs", message });
                return check;
            }
        };
        let low = self.is_low();
        if active && self.settings.delete_oldest && self.shortage(space, reserve, low).is_some() {
            space = self.delete_oldest(space, reserve, &mut check.events);
        }
        self.space = Some(space);
        match self.shortage(space, reserve, low) {
            Some(why) if !low && active => {
                self.low = Some(why.clone());
                check.change = Some(Change::Low(why));
            }
            None if low => {
                self.low = None;
                check.change = Some(Change::Back);
            }
            _ => {}
        }
        check
    }

    /// Deletes the oldest finished segments while `space` is short; returns the space after.
    fn delete_oldest(&self, mut space: Space, reserve: u64, events: &mut Vec<GuardEvent>) -> Space {
        let segments = match disk::finished_segments(&self.directory, &self.camera) {
            Ok(s) => s,
            Err(e) => {
                let message = format!("listing segments in `{}`: {e}", self.directory.display());
                events.push(GuardEvent::Error { kind: "delete", message });
                return space;
            }
        };
        for base in segments {
            if self.shortage(space, reserve, self.is_low()).is_none() {
                break;
            }
            match disk::delete_segment(&base) {
                Ok(bytes) => events.push(GuardEvent::Deleted { base, reason: "disk-floor", bytes }),
                Err(e) => {
                    let message = format!("deleting segment `{}`: {e}", base.display());
                    events.push(GuardEvent::Error { kind: "delete", message });
                    break;
                }
            }
            space = disk::space(&self.directory).unwrap_or(space);
        }
        space
    }

    /// Whether retention is due on the housekeeping timer.
    pub fn retention_due(&self) -> bool {
        self.retention_at.elapsed() >= RETENTION_EVERY
    }

    /// Retention: deletes this camera's finished segments (completed or failed, never the one
    /// being written, whose `current` base name holds bytes too) older than `max-age-days`,
    /// then the oldest while all of them hold more than `max-total-mb`.
    pub fn apply_retention(&mut self, current: Option<&str>) -> Vec<GuardEvent> {
        self.retention_at = Instant::now();
        let max_age = self.settings.max_age_days.map(|days| Duration::from_secs_f64(days * 86_400.0));
        let max_total = self.settings.max_total_mb.map(|mb| mb.saturating_mul(1024 * 1024));
        if max_age.is_none() && max_total.is_none() {
            return Vec::new();
        }
        let dir = &self.directory;
        let segments = match disk::finished_segments_with_sizes(dir, &self.camera) {
            Ok(segments) => segments,
            Err(e) => {
                let message = format!("listing segments in `{}`: {e}", dir.display());
                return vec![GuardEvent::Error { kind: "retention", message }];
            }
        };
        let current = current.map_or(0, |base| disk::partial_bytes(&dir.join(base)));
        let mut events = Vec::new();
        for (i, why) in disk::retention_plan(&segments, current, SystemTime::now(), max_age, max_total) {
            let base = &segments[i].base;
            match disk::delete_segment(base) {
                Ok(bytes) => events.push(GuardEvent::Deleted { base: base.clone(), reason: why.name(), bytes }),
                Err(e) => {
                    let message = format!("retention: deleting segment `{}`: {e}", base.display());
                    events.push(GuardEvent::Error { kind: "delete", message });
                    break;
                }
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(min_free_mb: u64) -> GuardSettings {
        GuardSettings { min_free_mb, min_free_inodes: 0, delete_oldest: false, max_age_days: None, max_total_mb: None }
    }

    /// Writes a finished segment `name` of `bytes` (sidecar + video) into `dir`.
    fn segment(dir: &Path, name: &str, bytes: usize) {
        std::fs::write(dir.join(format!("{name}.jsonl")), b"{}\n").expect("sidecar");
        std::fs::write(dir.join(format!("{name}.avi")), vec![0u8; bytes]).expect("video");
    }

    /// The reserve grows with the frame size and the segment's frames; the floor counts it,
    /// and resuming asks for one reserve more (no flapping).
    #[test]
    fn the_floor_counts_the_reserve_and_resuming_asks_for_slack() {
        let dir = tempfile::tempdir().expect("dir");
        let mut guard = DiskGuard::new("cam", dir.path(), settings(10), 0);
        assert_eq!(guard.reserve_bytes(0), RESERVE_BASE);
        guard.set_frame_size(100, 100);
        assert_eq!(guard.reserve_bytes(10), RESERVE_BASE + 3 * 30_000 + 640);
        let mib = 1024 * 1024;
        let space = |bytes| Space { bytes, inodes: Some(1000) };
        assert!(guard.shortage(space(11 * mib), mib, false).is_none());
        assert!(guard.shortage(space(11 * mib - 1), mib, false).is_some());
        assert!(guard.shortage(space(11 * mib), mib, true).is_some(), "resuming wants the slack");
        let inodes = Space { bytes: u64::MAX, inodes: Some(INODE_RESERVE - 1) };
        assert!(guard.shortage(inodes, 0, false).is_some_and(|why| why.contains("inodes")));
        assert!(guard.shortage(Space { bytes: u64::MAX, inodes: None }, 0, true).is_none());
    }

    /// An impossible floor makes an active guard go low (an idle one stays), deleting the
    /// oldest segments first when allowed; a floor of 0 brings it back.
    #[test]
    fn below_the_floor_it_deletes_the_oldest_then_goes_low_and_comes_back() {
        let dir = tempfile::tempdir().expect("dir");
        segment(dir.path(), "cam_20260101T000000.000Z_1", 10);
        segment(dir.path(), "cam_20260102T000000.000Z_2", 10);
        let mut guard = DiskGuard::new("cam", dir.path(), settings(u64::MAX / (2 * 1024 * 1024)), 0);
        assert!(guard.check(false, 0).change.is_none(), "idle: nothing to stop");
        assert!(!guard.is_low());
        guard.set(GuardSettings { delete_oldest: true, ..guard.settings() });
        let check = guard.check(true, 0);
        let deleted: Vec<_> = check
            .events
            .iter()
            .filter_map(|e| match e {
                GuardEvent::Deleted { base, reason, .. } => Some((base.file_name().map(|n| n.to_owned()), *reason)),
                _ => None,
            })
            .collect();
        assert_eq!(deleted.len(), 2, "{:?}", check.events);
        assert_eq!(deleted[0].0.as_deref(), Some(std::ffi::OsStr::new("cam_20260101T000000.000Z_1")), "oldest first");
        assert!(matches!(check.change, Some(Change::Low(_))) && guard.is_low() && guard.low_reason().is_some());
        guard.set(settings(0));
        assert_eq!(guard.check(true, 0).change, Some(Change::Back));
        assert!(!guard.is_low() && guard.space().is_some());
    }

    /// Retention deletes the oldest while the camera's segments hold more than the total,
    /// never another camera's nor the one being written.
    #[test]
    fn retention_deletes_the_oldest_beyond_the_total() {
        let dir = tempfile::tempdir().expect("dir");
        let mib = 1024 * 1024;
        segment(dir.path(), "cam_20260101T000000.000Z_1", mib * 6 / 10);
        segment(dir.path(), "cam_20260102T000000.000Z_2", mib * 6 / 10);
        segment(dir.path(), "other_20260101T000000.000Z_1", mib * 6 / 10);
        let mut guard = DiskGuard::new("cam", dir.path(), GuardSettings { max_total_mb: Some(1), ..settings(0) }, 0);
        let events = guard.apply_retention(None);
        assert!(
            matches!(&events[..], [GuardEvent::Deleted { reason: "max-total", .. }]),
            "only the oldest goes: {events:?}"
        );
        assert!(dir.path().join("cam_20260102T000000.000Z_2.avi").exists());
        assert!(dir.path().join("other_20260101T000000.000Z_1.avi").exists());
        assert!(!guard.retention_due());
    }
}
