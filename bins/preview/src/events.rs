//! The events page's data: every camera's clips of the deployment (each preview has the whole
//! config, so any of them lists all cameras), read from the recorders' events journals through
//! [`framebus_common::journal::read`], newest first, filtered and paged for `/api/events`; the
//! clip files a request may name; and the thumbnails (the trigger's frame taken from the clip
//! with OpenCV, the trigger's boxes drawn by the preview's own rules), cached as JPEG.
//!
//! What a request may read is decided here, never from the path alone: a clip file is served
//! only when it is the video of a completed, not deleted segment that its camera's journal
//! lists, named as the recorder names files (letters, digits, `_`, `-`, `.`, not starting with
//! a dot), opened without following a symlink, a regular file of this user, inside the
//! camera's recordings folder.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use framebus_common::journal::clips::{aggregate_lines, trigger_label, trigger_score, ClipView, Entry};
use framebus_common::journal::read::{journal_stamp, read_journal, FileStamp};
use framebus_common::journal::TriggerSource;
use framebus_common::{secure_fs, Deployment, FrameHeader};
use framebus_vision::opencv::core::{Mat, Vector};
use framebus_vision::opencv::prelude::*;
use framebus_vision::opencv::videoio;
use serde_json::{json, Value};

use crate::render::Renderer;
use framebus_vision::overlay::Shown;

/// Largest thumbnail, pixels (the frame is downscaled to fit, aspect kept).
const THUMB_MAX: (u32, u32) = (480, 360);
/// JPEG quality of thumbnails.
const THUMB_QUALITY: u32 = 80;
/// Thumbnails kept in memory (about 20–40 KiB each); the oldest made is dropped beyond.
const THUMB_CACHE: usize = 256;
/// Largest sidecar read to find the trigger's frame (a 1 h segment at 30 fps is ~16 MiB).
const MAX_SIDECAR_BYTES: u64 = 64 * 1024 * 1024;
/// Frames decoded at most to reach the trigger's frame in a clip.
const MAX_SEEK_FRAMES: u64 = 36_000;
/// Events per page of `/api/events` by default, and at most.
pub const DEFAULT_LIMIT: usize = 50;
/// Most events one `/api/events` answer lists.
pub const MAX_LIMIT: usize = 500;

/// A camera whose recorder's events are listed.
#[derive(Debug, Clone)]
struct CameraEvents {
    name: String,
    directory: PathBuf,
    width: u32,
    height: u32,
}

/// A camera's clips as of one version of its journal.
#[derive(Debug, Clone, Default)]
struct Cached {
    stamp: Vec<Option<FileStamp>>,
    clips: Arc<Vec<ClipView>>,
}

/// What `/api/events` is asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// Only this camera.
    pub camera: Option<String>,
    /// Only this label.
    pub label: Option<String>,
    /// Events skipped (newest first).
    pub offset: usize,
    /// Events listed.
    pub limit: usize,
}

impl Query {
    /// Parses `camera=..&label=..&offset=..&limit=..` (percent-decoded; unknown keys ignored;
    /// a bad number is the default).
    pub fn parse(query: Option<&str>) -> Query {
        let mut q = Query { limit: DEFAULT_LIMIT, ..Query::default() };
        for (key, value) in query.unwrap_or_default().split('&').filter_map(|kv| kv.split_once('=')) {
            let value = percent_decode(value);
            match key {
                "camera" if !value.is_empty() => q.camera = Some(value),
                "label" if !value.is_empty() => q.label = Some(value),
                "offset" => q.offset = value.parse().unwrap_or(0),
                "limit" => q.limit = value.parse().unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT),
                _ => {}
            }
        }
        q
    }
}

/// `%XX` and `+` decoded; invalid escapes and non-UTF-8 results are kept as they are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

/// A file name as the recorder makes them: letters, digits, `_`, `-`, `.`, not starting with a
/// dot, at most 200 bytes. Anything else (`..`, a slash, an encoded slash, a NUL) is refused.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A clip file opened for serving.
#[derive(Debug)]
pub struct ClipFile {
    /// The open file (no symlink followed, regular, this user's).
    pub file: File,
    /// Its size.
    pub len: u64,
    /// `video/mp4` or `video/x-msvideo`.
    pub content_type: &'static str,
}

/// Every camera's events, thumbnails and clip files.
pub struct Events {
    cameras: Vec<CameraEvents>,
    cache: Mutex<HashMap<String, Cached>>,
    thumbs: Mutex<ThumbCache>,
}

/// Thumbnails by (camera, clip), and the order they were made in (the oldest is dropped first);
/// and the ones that could not be made, with when (not tried again for [`FAILED_RETRY`]).
#[derive(Default)]
struct ThumbCache {
    jpegs: HashMap<(String, String), Arc<Vec<u8>>>,
    order: VecDeque<(String, String)>,
    failed: HashMap<(String, String), (std::time::Instant, String)>,
}

/// A thumbnail that could not be made is not tried again for this long (a broken clip would
/// otherwise be decoded again at every request).
const FAILED_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

impl Events {
    /// The events of every camera of `deployment` that has a recorder.
    pub fn new(deployment: &Deployment) -> Events {
        let cameras = deployment
            .camera
            .iter()
            .filter_map(|c| {
                c.recorder.as_ref().map(|r| CameraEvents {
                    name: c.name.clone(),
                    directory: deployment.resolve_path(&r.directory),
                    width: c.width,
                    height: c.height,
                })
            })
            .collect();
        Events { cameras, cache: Mutex::new(HashMap::new()), thumbs: Mutex::new(ThumbCache::default()) }
    }

    fn camera(&self, name: &str) -> Option<&CameraEvents> {
        self.cameras.iter().find(|c| c.name == name)
    }

    /// `camera`'s clips, oldest first, read again only when its journal changed. Blocking
    /// (file reads): call it off the HTTP thread.
    fn clips(&self, camera: &CameraEvents) -> Arc<Vec<ClipView>> {
        let stamp = journal_stamp(&camera.directory, &camera.name);
        if let Some(cached) = self.cache.lock().ok().and_then(|c| c.get(&camera.name).cloned()) {
            if cached.stamp == stamp {
                return cached.clips;
            }
        }
        let mut report = |s: &framebus_common::journal::read::SkippedLine| {
            framebus_common::logging::repeated(
                tracing::Level::WARN,
                "preview.events",
                format_args!("events page: {s}"),
            );
        };
        let lines = match read_journal(&camera.directory, &camera.name, &mut report) {
            Ok(lines) => lines,
            Err(e) => {
                framebus_common::logging::repeated(
                    tracing::Level::WARN,
                    "preview.events",
                    format_args!("events page: camera `{}`: {e}", camera.name),
                );
                Vec::new()
            }
        };
        let clips: Vec<ClipView> = aggregate_lines(&lines)
            .into_iter()
            .filter_map(|e| match e {
                Entry::Clip(view) => Some(*view),
                Entry::Missed { .. } => None,
            })
            .collect();
        let clips = Arc::new(clips);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(camera.name.clone(), Cached { stamp, clips: Arc::clone(&clips) });
        }
        clips
    }

    /// The `/api/events` document: events newest first, filtered and paged, with the cameras
    /// and labels there are to filter by. Blocking.
    pub fn list(&self, query: &Query) -> Value {
        let mut all: Vec<(&CameraEvents, ClipView)> = Vec::new();
        let mut labels = BTreeSet::new();
        for camera in &self.cameras {
            let clips = self.clips(camera);
            for clip in clips.iter() {
                let label = clip.trigger.as_ref().map_or_else(|| "unknown".to_string(), trigger_label);
                labels.insert(label.clone());
                let camera_matches = query.camera.as_ref().is_none_or(|c| *c == camera.name);
                let label_matches = query.label.as_ref().is_none_or(|l| *l == label);
                if camera_matches && label_matches {
                    all.push((camera, clip.clone()));
                }
            }
        }
        // Newest first: by the capture time of the first frame (ISO 8601 UTC sorts as text).
        all.sort_by(|(_, a), (_, b)| {
            let key = |c: &ClipView| c.first_frame_utc.clone().or_else(|| c.started_utc.clone()).unwrap_or_default();
            key(b).cmp(&key(a)).then_with(|| b.clip.cmp(&a.clip))
        });
        let total = all.len();
        let events: Vec<Value> =
            all.iter().skip(query.offset).take(query.limit).map(|(camera, clip)| event_json(camera, clip)).collect();
        let next = query.offset + events.len();
        json!({
            "total": total,
            "offset": query.offset,
            "limit": query.limit,
            "next_offset": (next < total).then_some(next),
            "cameras": self.cameras.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
            "labels": labels,
            "events": events,
        })
    }

    /// The clip `clip` of `camera`, if its journal lists it. Blocking.
    fn find(&self, camera: &CameraEvents, clip: &str) -> Option<ClipView> {
        self.clips(camera).iter().rev().find(|c| c.clip == clip).cloned()
    }

    /// Opens the clip file `file` of `camera` for serving (see the module docs for what is
    /// allowed); the error says why not (answered 404). Blocking.
    pub fn open_clip(&self, camera: &str, file: &str) -> anyhow::Result<ClipFile> {
        let Some(cam) = self.camera(camera) else { bail!("no camera `{camera}` with a recorder") };
        if !is_plain_name(file) {
            bail!("not a clip file name");
        }
        let listed = self.clips(cam).iter().any(|c| {
            c.segments
                .iter()
                .any(|s| s.deleted.is_none() && s.files.status == "completed" && s.files.video.as_deref() == Some(file))
        });
        if !listed {
            bail!("`{file}` is not a clip of camera `{camera}`");
        }
        let content_type = if file.ends_with(".mp4") {
            "video/mp4"
        } else if file.ends_with(".avi") {
            "video/x-msvideo"
        } else {
            bail!("`{file}` is not a video");
        };
        let path = cam.directory.join(file);
        let file = open_own_regular(&path)?;
        let len = file.metadata().with_context(|| format!("reading {}", path.display()))?.len();
        Ok(ClipFile { file, len, content_type })
    }

    /// The thumbnail of `camera`'s clip `clip`: made once, then from the cache. Blocking (decodes
    /// video): call it off the HTTP thread, one at a time.
    pub fn thumbnail(&self, camera: &str, clip: &str) -> anyhow::Result<Arc<Vec<u8>>> {
        let key = (camera.to_string(), clip.to_string());
        if let Ok(thumbs) = self.thumbs.lock() {
            if let Some(jpeg) = thumbs.jpegs.get(&key) {
                return Ok(Arc::clone(jpeg));
            }
            if let Some((at, error)) = thumbs.failed.get(&key) {
                if at.elapsed() < FAILED_RETRY {
                    bail!("{error} (not tried again for {FAILED_RETRY:?})");
                }
            }
        }
        let Some(cam) = self.camera(camera) else { bail!("no camera `{camera}` with a recorder") };
        let Some(view) = self.find(cam, clip) else { bail!("no clip `{clip}` of camera `{camera}`") };
        let made = make_thumbnail(cam, &view).with_context(|| format!("camera `{camera}`, clip `{clip}`"));
        let jpeg = match made {
            Ok(jpeg) => Arc::new(jpeg),
            Err(e) => {
                if let Ok(mut thumbs) = self.thumbs.lock() {
                    if thumbs.failed.len() >= THUMB_CACHE {
                        thumbs.failed.retain(|_, (at, _)| at.elapsed() < FAILED_RETRY);
                    }
                    if thumbs.failed.len() < THUMB_CACHE {
                        thumbs.failed.insert(key, (std::time::Instant::now(), format!("{e:#}")));
                    }
                }
                return Err(e);
            }
        };
        if let Ok(mut thumbs) = self.thumbs.lock() {
            if thumbs.jpegs.len() >= THUMB_CACHE {
                if let Some(oldest) = thumbs.order.pop_front() {
                    thumbs.jpegs.remove(&oldest);
                }
            }
            thumbs.jpegs.insert(key.clone(), Arc::clone(&jpeg));
            thumbs.order.push_back(key);
        }
        Ok(jpeg)
    }
}

/// Opens `path` for reading only when it is a regular file of this user (a symlink is not
/// followed, a FIFO never blocks, another user's file planted there is refused).
fn open_own_regular(path: &Path) -> anyhow::Result<File> {
    let file = secure_fs::open_regular(path)
        .with_context(|| format!("opening {}", path.display()))?
        .with_context(|| format!("{} does not exist (deleted since?)", path.display()))?;
    let meta = file.metadata().with_context(|| format!("reading {}", path.display()))?;
    if meta.uid() != secure_fs::euid() {
        bail!("{} is owned by uid {}, not by this user: refused", path.display(), meta.uid());
    }
    Ok(file)
}

/// One event of `/api/events`.
fn event_json(camera: &CameraEvents, clip: &ClipView) -> Value {
    let trigger = clip.trigger.as_ref();
    let video = clip.playable_segment(trigger.map_or(0, |t| t.frame_id)).and_then(|s| s.video.clone());
    let completed = clip.completed.as_ref();
    let video_json = video.as_ref().map(|v| {
        let mp4 = v.ends_with(".mp4");
        json!({
            "url": format!("/events/clip/{}/{v}", camera.name),
            "file": v,
            "type": if mp4 { "video/mp4" } else { "video/x-msvideo" },
            // MJPEG AVI (the JPEG path's default) does not play in browsers: offered as a
            // download with the thumbnail.
            "plays_in_browser": mp4,
        })
    });
    json!({
        "camera": camera.name,
        "clip": clip.clip,
        "label": trigger.map_or_else(|| "unknown".to_string(), trigger_label),
        "score": trigger.and_then(trigger_score),
        "source": trigger.map(|t| match t.source {
            TriggerSource::Result => "result",
            TriggerSource::Manual => "manual",
            TriggerSource::Continued => "continued",
        }),
        "producer": trigger.and_then(|t| t.results.first()).map(|r| r.producer.clone()),
        "trigger_frame_id": trigger.map(|t| t.frame_id),
        "started_utc": clip.first_frame_utc.clone().or_else(|| clip.started_utc.clone()),
        "duration_secs": completed.map(|c| c.duration_secs),
        "frames": completed.map(|c| c.frames),
        "status": if completed.is_some() { "completed" } else { "recording" },
        "reason": completed.map(|c| c.reason.clone()),
        "summary": clip.status(),
        "thumbnail": video.as_ref().map(|_| format!("/events/thumb/{}/{}.jpg", camera.name, clip.clip)),
        "video": video_json,
        "segments": clip.segments.len(),
    })
}

/// The trigger's frame of the clip (or the nearest one the clip holds) with the trigger's boxes
/// drawn, as JPEG.
fn make_thumbnail(camera: &CameraEvents, clip: &ClipView) -> anyhow::Result<Vec<u8>> {
    let trigger = clip.trigger.as_ref();
    let frame_id = trigger.map_or(clip.first_live_frame_id.unwrap_or(0), |t| t.frame_id);
    let Some(segment) = clip.playable_segment(frame_id) else { bail!("no playable segment") };
    let Some(video) = &segment.video else { bail!("the clip has no video") };
    if !is_plain_name(video) || !is_plain_name(&segment.sidecar) {
        bail!("unexpected file names in the journal");
    }
    let sidecar_path = camera.directory.join(&segment.sidecar);
    let sidecar = secure_fs::read_regular(&sidecar_path, MAX_SIDECAR_BYTES)
        .with_context(|| format!("reading {}", sidecar_path.display()))?
        .with_context(|| format!("{} does not exist", sidecar_path.display()))?;
    let (index, shown_id) = video_frame_of(&sidecar, frame_id)
        .with_context(|| format!("{} lists no frame of the video", sidecar_path.display()))?;
    if index > MAX_SEEK_FRAMES {
        bail!("the trigger's frame is {index} frames into the video (at most {MAX_SEEK_FRAMES} are decoded)");
    }
    let path = camera.directory.join(video);
    let file = open_own_regular(&path)?;
    // OpenCV opens by name: the file just opened (no symlink followed) is named through
    // /proc, so what is decoded is what was checked.
    let name = format!("/proc/self/fd/{}", file.as_raw_fd());
    let mut capture = videoio::VideoCapture::from_file(&name, videoio::CAP_FFMPEG)
        .with_context(|| format!("opening {}", path.display()))?;
    if !capture.is_opened().unwrap_or(false) {
        bail!("OpenCV cannot open {}", path.display());
    }
    for _ in 0..index {
        if !capture.grab().unwrap_or(false) {
            bail!("{} ends before its frame {index}", path.display());
        }
    }
    let mut frame = Mat::default();
    if !capture.read(&mut frame).unwrap_or(false) || frame.empty() {
        bail!("cannot decode frame {index} of {}", path.display());
    }
    drop(capture);
    drop(file);
    let header =
        FrameHeader { frame_id: shown_id, width: camera.width, height: camera.height, ..FrameHeader::default() };
    let shown: Vec<Shown> = trigger
        .map(|t| {
            t.results
                .iter()
                .map(|r| Shown {
                    outcome: framebus::Outcome {
                        producer: r.producer.clone(),
                        frame_id: r.frame_id,
                        run_id: r.run_id,
                        capture_mono_ns: 0,
                        publish_mono_ns: 0,
                        score: r.score,
                        boxes: r.boxes.clone(),
                        data: Value::Null,
                    },
                    age_ms: 0.0,
                    strength: 1.0,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut renderer = Renderer::new(THUMB_QUALITY);
    renderer.load_bgr(frame);
    renderer.compose(&camera.name, &header, THUMB_MAX, None).context("downscaling the frame")?;
    renderer.draw_results(&header, &shown, false).context("drawing the boxes")?;
    let mut jpeg = Vector::<u8>::new();
    renderer.encode(&mut jpeg).context("encoding the thumbnail")?;
    Ok(jpeg.to_vec())
}

/// The index in the video of the frame `frame_id` in a sidecar (else of the first frame after
/// it, else of the last frame), and that frame's id.
fn video_frame_of(sidecar: &str, frame_id: u64) -> Option<(u64, u64)> {
    let mut last = None;
    for line in sidecar.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        if v["type"] != "frame" {
            continue;
        }
        let (Some(id), Some(index)) = (v["frame_id"].as_u64(), v["video_frame"].as_u64()) else { continue };
        if id >= frame_id {
            return Some((index, id));
        }
        last = Some((index, id));
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names that could leave the recordings folder or name something else are refused.
    #[test]
    fn only_plain_file_names_are_accepted() {
        assert!(is_plain_name("cam0_20260101T120000.000Z_0000000001.mp4"));
        for bad in ["", "..", "../x.mp4", ".hidden", "a/b.mp4", "a%2Fb.mp4", "a\0b", "a b", "x\\y"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
        assert!(!is_plain_name(&"a".repeat(201)));
    }

    /// Query strings are decoded and bounded.
    #[test]
    fn queries_are_decoded_and_bounded() {
        let q = Query::parse(Some("camera=cam%200&label=person&offset=5&limit=100000&x=1"));
        assert_eq!(
            q,
            Query { camera: Some("cam 0".into()), label: Some("person".into()), offset: 5, limit: MAX_LIMIT }
        );
        assert_eq!(Query::parse(Some("limit=abc&offset=-1")), Query { limit: DEFAULT_LIMIT, ..Query::default() });
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    /// The trigger's frame is found in the sidecar, else the next one, else the last.
    #[test]
    fn the_trigger_frame_is_found_in_the_sidecar() {
        let sidecar = "{\"type\":\"segment\"}\n{\"type\":\"frame\",\"frame_id\":10,\"video_frame\":0}\n\
                       {\"type\":\"skipped\",\"first_frame_id\":11,\"last_frame_id\":11}\n\
                       {\"type\":\"frame\",\"frame_id\":12,\"video_frame\":1}\n";
        assert_eq!(video_frame_of(sidecar, 10), Some((0, 10)));
        assert_eq!(video_frame_of(sidecar, 11), Some((1, 12)));
        assert_eq!(video_frame_of(sidecar, 99), Some((1, 12)));
        assert_eq!(video_frame_of("", 1), None);
    }
}
