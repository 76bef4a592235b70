//! One recording segment: a video file, an optional folder of images and a sidecar index (JSON
//! lines), all named `<camera>_<UTC start>_<first frame id>`. While written, the video and the
//! sidecar carry `.partial` before their extension; [`Segment::finish`] closes the video (so it
//! plays), checks that the container holds exactly the frames the sidecar lists, ends the
//! sidecar and renames both. A killed recorder thus leaves every completed segment intact and
//! only the current one `.partial`.
//!
//! Write errors: the sidecar and the images go through the recorder's own file handles, so
//! their errors are seen; OpenCV's VideoWriter reports none (FFmpeg keeps the first error and
//! silently drops every later write, the container index included), so the video is checked
//! when the segment finishes: opened again and its frame count compared with the sidecar's.
//! A segment that fails either way is never given its final name: it is kept as
//! `<base>.failed.<ext>` (its sidecar ends with the error), or deleted when it saved no frame.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use framebus_common::config::{ImageFormat, VideoFormat};
use framebus_common::{clock, secure_fs, FrameHeader};
use framebus_vision::opencv::core::{Mat, Size, Vector};
use framebus_vision::opencv::imgcodecs;
use framebus_vision::opencv::prelude::*;
use framebus_vision::opencv::videoio::{self, VideoCapture, VideoWriter};
use serde_json::json;

use crate::mp4::StreamMp4;
use framebus_common::encoded::AccessUnitHeader;

/// Why a range of frames was not saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The recorder's queue overflowed (it was slower than the camera): frame-id gap.
    Dropped,
    /// Free space was below the floor.
    DiskLow,
    /// The frame could not be converted or written.
    Error,
    /// The recorder stopped before it could write these held frames of a clip.
    Stop,
    /// `video = "stream"`: an access unit that is not a key frame, where a segment starts or
    /// after lost access units (it cannot be decoded without the ones before it).
    KeyFrame,
}

impl SkipReason {
    /// Name written into the sidecar.
    pub fn name(self) -> &'static str {
        match self {
            SkipReason::Dropped => "dropped",
            SkipReason::DiskLow => "disk-low",
            SkipReason::Error => "error",
            SkipReason::Stop => "stop",
            SkipReason::KeyFrame => "wait-key-frame",
        }
    }
}

/// A contiguous range of frames not saved, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skip {
    /// First frame id not saved.
    pub first: u64,
    /// Last frame id not saved.
    pub last: u64,
    /// Why.
    pub reason: SkipReason,
}

/// Settings every segment of a run shares.
#[derive(Debug, Clone)]
pub struct SegmentSpec {
    /// Camera name (first part of every file name).
    pub camera: String,
    /// Folder of the recordings.
    pub directory: PathBuf,
    /// Video container/codec.
    pub video: VideoFormat,
    /// Frame rate written into the container.
    pub video_fps: f64,
    /// Still-image format.
    pub images: ImageFormat,
    /// Encoder parameters of images (JPEG quality).
    pub image_params: Vector<i32>,
}

/// What writes a segment's video.
enum Writer {
    /// OpenCV encodes the frames.
    OpenCv(VideoWriter),
    /// The streamer's access units, written as they are (`video = "stream"`).
    Stream(StreamMp4),
}

/// The video of a segment.
struct Video {
    writer: Writer,
    ext: &'static str,
    /// The `.partial` file OpenCV writes.
    path: PathBuf,
}

/// How a segment ended ([`Segment::finish`]).
#[derive(Debug)]
pub enum Finished {
    /// The video holds exactly the frames its sidecar lists; both have their final names.
    Completed {
        /// The final sidecar path.
        sidecar: PathBuf,
        /// The error that ended the segment early without breaking it (a failed image).
        error: Option<String>,
    },
    /// A write failed, or the video does not hold the frames its sidecar lists: the files are
    /// kept as `<base>.failed.<ext>` (or left `.partial` when even renaming failed).
    Failed {
        /// What went wrong.
        error: String,
        /// The sidecar as it is now named.
        sidecar: PathBuf,
    },
    /// No frame was saved: the files were deleted. The ranges the segment listed as skipped
    /// are returned so the next segment lists them.
    Discarded {
        /// The write error, if one ended the segment.
        error: Option<String>,
        /// Frames the segment had listed as skipped.
        skips: Vec<Skip>,
    },
}

/// The segment being written.
pub struct Segment {
    camera: String,
    base: String,
    directory: PathBuf,
    video: Option<Video>,
    images_dir: Option<PathBuf>,
    image_ext: Option<&'static str>,
    sidecar: BufWriter<File>,
    /// Capture time (CLOCK_MONOTONIC) of the first frame: segments end by capture time.
    pub first_mono_ns: u64,
    /// Frame size of the segment; a frame of another size starts a new segment.
    pub size: (u32, u32),
    /// Id of its first frame.
    pub first_frame_id: u64,
    /// Frames saved.
    pub frames: u64,
    /// Frames listed as skipped.
    pub skipped: u64,
    /// Id of the last frame saved or skipped.
    pub last_frame_id: u64,
    line: String,
    /// Encoded image, reused from frame to frame.
    image_buf: Vector<u8>,
    /// The first write error: the segment takes no more frames.
    error: Option<String>,
    /// A write error left the sidecar short of what was saved: the segment cannot complete.
    broken: bool,
    /// Skip ranges listed before the first saved frame (handed back if the segment is discarded).
    early_skips: Vec<Skip>,
}

fn partial_name(base: &str, ext: &str) -> String {
    format!("{base}.partial.{ext}")
}

fn failed_name(base: &str, ext: &str) -> String {
    format!("{base}.failed.{ext}")
}

/// The OpenCV back-end for writing and checking videos: FFmpeg when OpenCV has it (it does on
/// Debian). Naming it avoids OpenCV falling back to GStreamer when a file cannot be created,
/// which logs several lines per attempt.
fn video_backend() -> i32 {
    match videoio::has_backend(videoio::VideoCaptureAPIs::CAP_FFMPEG) {
        Ok(true) => videoio::CAP_FFMPEG,
        _ => videoio::CAP_ANY,
    }
}

/// Removes what a failed [`Segment::open`] created (a new segment's names are unique).
#[derive(Default)]
struct Created(Vec<PathBuf>);

impl Drop for Created {
    fn drop(&mut self) {
        for path in self.0.iter().rev() {
            let _ = if path.is_dir() { std::fs::remove_dir(path) } else { std::fs::remove_file(path) };
        }
    }
}

/// Opens the video of a new segment `base` (created exclusively first; listed in `created` so
/// an error removes it), or `None` without video.
fn open_video(
    spec: &SegmentSpec,
    base: &str,
    first: &FrameHeader,
    created: &mut Created,
) -> anyhow::Result<Option<Video>> {
    Ok(match spec.video.codec() {
        Some((code, ext)) => {
            let name = partial_name(base, ext);
            let path = spec.directory.join(&name);
            let fourcc = VideoWriter::fourcc(code[0], code[1], code[2], code[3])?;
            let size = Size::new(first.width as i32, first.height as i32);
            let backend = video_backend();
            // Created here first, exclusively: OpenCV then opens (and truncates) this user's
            // own regular file, never something planted under the name.
            secure_fs::create_new(&path, 0o666).with_context(|| format!("creating video `{}`", path.display()))?;
            created.0.push(path.clone());
            let writer = VideoWriter::new_with_backend(path_str(&path)?, backend, fourcc, spec.video_fps, size, true);
            let writer = writer.with_context(|| format!("opening video `{}`", path.display()))?;
            if !writer.is_opened()? {
                bail!(
                    "OpenCV cannot write {} video to `{}` (codec or folder unusable, or the disk is full)",
                    code.iter().collect::<String>(),
                    path.display()
                );
            }
            Some(Video { writer: Writer::OpenCv(writer), ext, path })
        }
        None if spec.video == VideoFormat::Stream => {
            let path = spec.directory.join(partial_name(base, "mp4"));
            let writer = StreamMp4::create(&path);
            if path.exists() {
                created.0.push(path.clone());
            }
            Some(Video { writer: Writer::Stream(writer?), ext: "mp4", path })
        }
        None => None,
    })
}

impl Segment {
    /// Opens a segment starting with `first` (not yet written): creates the sidecar (with its
    /// header line, written through at once, so a full disk or a missing inode fails here),
    /// the image folder and the video writer. `extra` keys are added to the header line (the
    /// clip it belongs to, its trigger). On error nothing of it is left behind.
    pub fn open(
        spec: &SegmentSpec,
        first: &FrameHeader,
        extra: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> anyhow::Result<Segment> {
        let base =
            format!("{}_{}_{:010}", spec.camera, clock::format_utc_compact(first.capture_realtime_ns), first.frame_id);
        let dir = &spec.directory;
        let mut created = Created::default();
        let sidecar_path = dir.join(partial_name(&base, "jsonl"));
        // Exclusively (O_EXCL, O_NOFOLLOW, O_NONBLOCK): a symlink, FIFO or file someone planted
        // under this name in a shared folder is an error, never followed or overwritten.
        let file = secure_fs::create_new(&sidecar_path, 0o666)
            .with_context(|| format!("creating sidecar `{}`", sidecar_path.display()))?;
        created.0.push(sidecar_path.clone());
        let images_dir = match spec.images.extension() {
            Some(_) => {
                let path = dir.join(format!("{base}.images"));
                std::fs::create_dir(&path).with_context(|| format!("creating `{}`", path.display()))?;
                created.0.push(path.clone());
                Some(path)
            }
            None => None,
        };
        let video = open_video(spec, &base, first, &mut created)?;
        let mut segment = Segment {
            camera: spec.camera.clone(),
            directory: dir.clone(),
            video,
            images_dir,
            image_ext: spec.images.extension(),
            sidecar: BufWriter::new(file),
            first_mono_ns: first.capture_mono_ns,
            size: (first.width, first.height),
            first_frame_id: first.frame_id,
            frames: 0,
            skipped: 0,
            last_frame_id: first.frame_id.saturating_sub(1),
            line: String::with_capacity(256),
            image_buf: Vector::new(),
            error: None,
            broken: false,
            early_skips: Vec::new(),
            base,
        };
        let mut header = json!({
            "type": "segment",
            "camera": spec.camera,
            "first_frame_id": first.frame_id,
            "started_utc": clock::format_utc(first.capture_realtime_ns),
            "started_realtime_ns": first.capture_realtime_ns,
            "video": segment.video.as_ref().map(|v| format!("{}.{}", segment.base, v.ext)),
            "codec": match spec.video {
                VideoFormat::Stream => Some("h264 (streamer)".to_string()),
                other => other.codec().map(|(code, _)| code.iter().collect::<String>()),
            },
            "fps": spec.video_fps,
            "width": first.width,
            "height": first.height,
            "images": segment.images_dir.as_ref().map(|_| format!("{}.images", segment.base)),
        });
        if let (Some(extra), Some(fields)) = (extra, header.as_object_mut()) {
            fields.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        segment.write_line(&header.to_string())?;
        segment.sidecar.flush().with_context(|| format!("writing sidecar `{}`", sidecar_path.display()))?;
        std::mem::take(&mut created.0);
        Ok(segment)
    }

    /// Base name (`<camera>_<UTC start>_<first frame id>`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Extension of its video (`avi`, `mp4`), `None` without video.
    pub fn video_ext(&self) -> Option<&'static str> {
        self.video.as_ref().map(|v| v.ext)
    }

    /// The first write error of this segment, if any: it then takes no more frames and the
    /// recorder should finish it.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Records the first error (the segment takes no more frames) and returns it.
    fn fail(&mut self, error: anyhow::Error) -> anyhow::Error {
        if self.error.is_none() {
            self.error = Some(format!("{error:#}"));
        }
        error
    }

    /// Records an error that lost sidecar lines: the segment cannot complete.
    fn break_with(&mut self, error: anyhow::Error) -> anyhow::Error {
        self.broken = true;
        self.fail(error)
    }

    fn write_line(&mut self, line: &str) -> anyhow::Result<()> {
        let written = self.sidecar.write_all(line.as_bytes()).and_then(|()| self.sidecar.write_all(b"\n"));
        written.context("writing the sidecar").map_err(|e| self.break_with(e))
    }

    /// Lists a range of frames that were not saved.
    pub fn skip(&mut self, skip: Skip) -> anyhow::Result<()> {
        let count = skip.last - skip.first + 1;
        self.skipped += count;
        self.last_frame_id = self.last_frame_id.max(skip.last);
        if self.frames == 0 && self.early_skips.len() < 1024 {
            self.early_skips.push(skip);
        }
        let line = json!({
            "type": "skipped", "first_frame_id": skip.first, "last_frame_id": skip.last,
            "count": count, "reason": skip.reason.name(),
        });
        self.write_line(&line.to_string())
    }

    /// Saves one frame (already converted to BGR in `bgr`): writes the image when `image` is
    /// set (first: a frame whose image fails is not put into the video either), appends it to
    /// the video and lists it in the sidecar. Returns whether an image was written. After an
    /// error the segment is failed ([`Segment::error`]) and takes no more frames.
    pub fn write(&mut self, header: &FrameHeader, bgr: &Mat, image: Option<&Vector<i32>>) -> anyhow::Result<bool> {
        if let Some(error) = &self.error {
            bail!("the segment failed earlier: {error}");
        }
        let mut image_written = None;
        if let (Some(params), Some(dir), Some(ext)) = (image, &self.images_dir, self.image_ext) {
            let name = format!(
                "{}_{}_{:010}.{ext}",
                self.camera,
                clock::format_utc_compact(header.capture_realtime_ns),
                header.frame_id
            );
            let path = dir.join(&name);
            if let Err(e) = write_image(&path, ext, bgr, params, &mut self.image_buf) {
                return Err(self.fail(e));
            }
            image_written = Some((name, path));
        }
        let video_frame = match &mut self.video {
            Some(Video { writer: Writer::Stream(_), .. }) => {
                bail!("this segment takes access units, not frames");
            }
            Some(Video { writer: Writer::OpenCv(writer), .. }) => {
                if let Err(e) = writer.write(bgr) {
                    if let Some((_, path)) = &image_written {
                        let _ = std::fs::remove_file(path);
                    }
                    return Err(self.fail(anyhow!("writing a video frame: {e}")));
                }
                Some(self.frames)
            }
            None => None,
        };
        self.index(header, video_frame, image_written.as_ref().map(|(name, _)| name.as_str()))?;
        Ok(image_written.is_some())
    }

    /// Saves one access unit (`video = "stream"`): appends it to the MP4 and lists its frame
    /// in the sidecar. After an error the segment is failed and takes no more.
    pub fn write_unit(&mut self, header: &FrameHeader, unit: &AccessUnitHeader, data: &[u8]) -> anyhow::Result<()> {
        if let Some(error) = &self.error {
            bail!("the segment failed earlier: {error}");
        }
        let Some(Video { writer: Writer::Stream(mp4), .. }) = &mut self.video else {
            bail!("this segment encodes frames itself");
        };
        if let Err(e) = mp4.write(unit, data) {
            return Err(self.fail(e));
        }
        self.index(header, Some(self.frames), None)
    }

    /// Counts a saved frame and appends its sidecar line.
    fn index(&mut self, header: &FrameHeader, video_frame: Option<u64>, image: Option<&str>) -> anyhow::Result<()> {
        self.frames += 1;
        self.last_frame_id = header.frame_id;
        use std::fmt::Write as _;
        self.line.clear();
        // Written by hand into a reused buffer: no allocation per frame for the index line.
        let _ = write!(
            self.line,
            "{{\"type\":\"frame\",\"frame_id\":{},\"sequence\":{},\"capture_mono_ns\":{},\"capture_realtime_ns\":{},\"video_frame\":",
            header.frame_id, header.sequence, header.capture_mono_ns, header.capture_realtime_ns,
        );
        let _ = match video_frame {
            Some(index) => write!(self.line, "{index}"),
            None => self.line.write_str("null"),
        };
        let _ = match image {
            Some(name) => write!(self.line, ",\"image\":\"{name}\"}}"),
            None => self.line.write_str(",\"image\":null}"),
        };
        self.line.push('\n');
        if let Err(e) = self.sidecar.write_all(self.line.as_bytes()) {
            return Err(self.break_with(anyhow::Error::from(e).context("writing the sidecar")));
        }
        Ok(())
    }

    /// Pushes buffered sidecar lines to the file (done periodically, so a killed recorder
    /// loses at most the last moments of the current segment's index, and a full disk is
    /// noticed within that period even when the video's own writes fail silently).
    pub fn flush(&mut self) -> anyhow::Result<()> {
        if let Err(e) = self.sidecar.flush() {
            return Err(self.break_with(anyhow::Error::from(e).context("writing the sidecar")));
        }
        Ok(())
    }

    /// Closes the video (OpenCV writes its index now), checks that it holds exactly the frames
    /// the sidecar lists, ends the sidecar with `reason` (and the error that stopped the
    /// segment, if any), fsyncs it and renames both: to their final names when video and
    /// sidecar agree (also after an error that kept them in step, like a failed image: that
    /// frame is in neither), else to `<base>.failed.<ext>`. A segment that saved no frame is
    /// deleted instead.
    pub fn finish(mut self, reason: &str) -> Finished {
        let mut problem = None;
        if let Some(video) = &mut self.video {
            let closed = match &mut video.writer {
                Writer::OpenCv(writer) => writer.release().map_err(|e| anyhow!("closing the video: {e}")),
                Writer::Stream(mp4) => mp4.finish(),
            };
            if let Err(e) = closed {
                problem = Some(e);
            } else if !self.broken {
                problem = verify_video(&video.path, self.frames).err();
            }
        }
        if let Some(e) = problem {
            let _ = self.break_with(e);
        }
        if self.frames == 0 {
            self.delete_files();
            return Finished::Discarded { error: self.error.take(), skips: std::mem::take(&mut self.early_skips) };
        }
        let mut end = json!({
            "type": "end", "frames": self.frames, "skipped": self.skipped,
            "last_frame_id": self.last_frame_id, "reason": reason,
        });
        if let Some(error) = &self.error {
            end["error"] = json!(error);
        }
        // A failed segment's sidecar may be unwritable: its end line is best effort.
        let ended = self
            .write_line(&end.to_string())
            .and_then(|()| self.sidecar.flush().context("writing the sidecar"))
            .and_then(|()| self.sidecar.get_ref().sync_all().context("syncing the sidecar"));
        if let Err(e) = ended {
            let _ = self.break_with(e);
        }
        let failed = self.broken;
        let name = |ext: &str| if failed { failed_name(&self.base, ext) } else { format!("{}.{ext}", self.base) };
        let mut renamed = Ok(());
        if let Some(video) = &self.video {
            renamed = rename(&self.directory, &partial_name(&self.base, video.ext), &name(video.ext));
        }
        let sidecar = name("jsonl");
        renamed = renamed.and_then(|()| rename(&self.directory, &partial_name(&self.base, "jsonl"), &sidecar));
        let error = self.error.take();
        match renamed {
            Ok(()) if !failed => Finished::Completed { sidecar: self.directory.join(sidecar), error },
            Ok(()) => Finished::Failed {
                error: error.unwrap_or_else(|| "the segment failed".into()),
                sidecar: self.directory.join(sidecar),
            },
            Err(e) => Finished::Failed {
                error: match error {
                    Some(error) => format!("{error}; {e:#}"),
                    None => format!("{e:#}"),
                },
                sidecar: self.directory.join(partial_name(&self.base, "jsonl")),
            },
        }
    }

    /// Deletes the segment's files (best effort): it saved nothing worth keeping.
    fn delete_files(&mut self) {
        if let Some(video) = &self.video {
            let _ = std::fs::remove_file(&video.path);
        }
        let _ = std::fs::remove_file(self.directory.join(partial_name(&self.base, "jsonl")));
        if let Some(dir) = &self.images_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Encodes `bgr` as `ext` and writes it to `path` through our own file handle (OpenCV's
/// `imwrite` leaves a truncated file behind on a full disk); nothing is left on error.
fn write_image(path: &Path, ext: &str, bgr: &Mat, params: &Vector<i32>, buf: &mut Vector<u8>) -> anyhow::Result<()> {
    let encoded = imgcodecs::imencode(&format!(".{ext}"), bgr, buf, params)
        .with_context(|| format!("encoding image `{}`", path.display()))?;
    if !encoded {
        bail!("OpenCV could not encode image `{}`", path.display());
    }
    let written = File::create(path).and_then(|mut file| file.write_all(buf.as_slice()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(path);
        return Err(e).with_context(|| format!("writing image `{}`", path.display()));
    }
    Ok(())
}

/// Checks a closed video: it opens and its container lists exactly `frames` frames. OpenCV's
/// writer reports no write error, and FFmpeg drops every write after the first failure,
/// including the index written on close: a video that lost frames either does not open (MP4
/// without its `moov` box) or reports fewer frames (AVI without its index reports 0). Costs
/// about 1 ms (AVI) to 40 ms (H.264 MP4) whatever the length: only the index is read.
pub fn verify_video(path: &Path, frames: u64) -> anyhow::Result<()> {
    let bytes = std::fs::metadata(path).with_context(|| format!("video `{}`", path.display()))?.len();
    if bytes == 0 {
        bail!("video `{}` is empty (0 bytes) while its sidecar lists {frames} frames", path.display());
    }
    let capture = VideoCapture::from_file(path_str(path)?, video_backend())
        .with_context(|| format!("reading back video `{}`", path.display()))?;
    if !capture.is_opened()? {
        bail!(
            "video `{}` ({bytes} bytes) does not open: its index was not written (disk full or a failed write)",
            path.display()
        );
    }
    let count = capture.get(videoio::CAP_PROP_FRAME_COUNT)?;
    if count != frames as f64 {
        bail!(
            "video `{}` ({bytes} bytes) holds {count} frames while its sidecar lists {frames} (disk full or a failed write)",
            path.display()
        );
    }
    Ok(())
}

fn rename(dir: &Path, from: &str, to: &str) -> anyhow::Result<()> {
    std::fs::rename(dir.join(from), dir.join(to))
        .with_context(|| format!("renaming `{from}` to `{to}` in `{}`", dir.display()))
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str().with_context(|| format!("path `{}` is not UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use framebus_vision::opencv::core::{randu, Scalar, CV_8UC3};

    fn spec(dir: &Path, video: VideoFormat, images: ImageFormat) -> SegmentSpec {
        SegmentSpec {
            camera: "cam".into(),
            directory: dir.to_path_buf(),
            video,
            video_fps: 30.0,
            images,
            image_params: Vector::new(),
        }
    }

    fn header(id: u64) -> FrameHeader {
        FrameHeader {
            frame_id: id,
            sequence: id,
            capture_mono_ns: id * 33_000_000,
            capture_realtime_ns: 1_700_000_000_000_000_000 + id * 33_000_000,
            width: 64,
            height: 48,
            ..FrameHeader::default()
        }
    }

    fn frame() -> Mat {
        let mut bgr = Mat::new_rows_cols_with_default(48, 64, CV_8UC3, Scalar::all(0.0)).expect("mat");
        randu(&mut bgr, &Scalar::all(0.0), &Scalar::all(255.0)).expect("noise");
        bgr
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A segment whose writes all succeeded gets its final names, and its video reads back
    /// with exactly the frames written (and not one more).
    #[test]
    fn a_complete_segment_gets_its_final_names_and_its_video_checks_out() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut segment =
            Segment::open(&spec(dir.path(), VideoFormat::MjpgAvi, ImageFormat::Off), &header(1), None).expect("open");
        for id in 1..=10 {
            segment.write(&header(id), &frame(), None).expect("write");
        }
        let Finished::Completed { sidecar, error: None } = segment.finish("stop") else { panic!("not completed") };
        let video = sidecar.with_extension("avi");
        verify_video(&video, 10).expect("10 frames");
        assert!(verify_video(&video, 11).is_err());
        assert!(names(dir.path()).iter().all(|n| !n.contains(".partial.") && !n.contains(".failed.")));
    }

    /// The read-back check refuses an empty video and an MP4 that lost its end (no `moov`
    /// box: what a full disk leaves).
    #[test]
    fn the_read_back_check_refuses_empty_and_truncated_videos() {
        let dir = tempfile::tempdir().expect("temp dir");
        let empty = dir.path().join("empty.avi");
        std::fs::write(&empty, b"").expect("write");
        assert!(verify_video(&empty, 0).is_err());
        let mut segment =
            Segment::open(&spec(dir.path(), VideoFormat::Mp4vMp4, ImageFormat::Off), &header(1), None).expect("open");
        for id in 1..=10 {
            segment.write(&header(id), &frame(), None).expect("write");
        }
        let Finished::Completed { sidecar, .. } = segment.finish("stop") else { panic!("not completed") };
        let video = sidecar.with_extension("mp4");
        let len = std::fs::metadata(&video).expect("video").len();
        File::options().write(true).open(&video).and_then(|f| f.set_len(len / 2)).expect("truncate");
        let error = verify_video(&video, 10).expect_err("truncated");
        assert!(error.to_string().contains("does not open"), "{error:#}");
    }

    /// A frame whose image cannot be written is in neither the video nor the sidecar: the
    /// segment stops there but still completes, video and sidecar in step, and its end line
    /// names the error.
    #[test]
    fn a_failed_image_leaves_its_frame_out_of_video_and_sidecar() {
        let dir = tempfile::tempdir().expect("temp dir");
        let spec = spec(dir.path(), VideoFormat::MjpgAvi, ImageFormat::Jpeg);
        let mut segment = Segment::open(&spec, &header(1), None).expect("open");
        let params = Vector::new();
        for id in 1..=3 {
            assert!(segment.write(&header(id), &frame(), Some(&params)).expect("write"));
        }
        let images = dir.path().join(format!("{}.images", segment.base()));
        std::fs::remove_dir_all(&images).expect("take the image folder away");
        assert!(segment.write(&header(4), &frame(), Some(&params)).is_err());
        assert!(segment.error().is_some());
        assert!(segment.write(&header(5), &frame(), None).is_err(), "a failed segment takes no more frames");
        let Finished::Completed { sidecar, error: Some(_) } = segment.finish("write-error") else {
            panic!("not completed")
        };
        verify_video(&sidecar.with_extension("avi"), 3).expect("3 frames in the video");
        let text = std::fs::read_to_string(&sidecar).expect("sidecar");
        assert_eq!(text.lines().filter(|l| l.contains("\"type\":\"frame\"")).count(), 3, "{text}");
        assert!(text.lines().last().is_some_and(|l| l.contains("\"error\"")), "{text}");
    }

    /// A segment that saved no frame is deleted and hands its skipped ranges back.
    #[test]
    fn a_segment_that_saved_nothing_is_deleted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut segment =
            Segment::open(&spec(dir.path(), VideoFormat::MjpgAvi, ImageFormat::Png), &header(7), None).expect("open");
        let skip = Skip { first: 7, last: 7, reason: SkipReason::Error };
        segment.skip(skip).expect("skip");
        let Finished::Discarded { error: None, skips } = segment.finish("stop") else { panic!("not discarded") };
        assert_eq!(skips, [skip]);
        assert_eq!(names(dir.path()), Vec::<String>::new());
    }
}
