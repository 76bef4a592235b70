//! One recording segment: a video file, an optional folder of images and a sidecar index (JSON
//! lines), all named `<camera>_<UTC start>_<first frame id>`. While written, the video and the
//! sidecar carry `.partial` before their extension; [`Segment::finish`] closes the video (so it
//! plays), ends the sidecar and renames both. A killed recorder thus leaves every completed
//! segment intact and only the current one `.partial`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use framebus_common::config::{ImageFormat, VideoFormat};
use framebus_common::{clock, FrameHeader};
use framebus_vision::opencv::core::{Mat, Size, Vector};
use framebus_vision::opencv::imgcodecs;
use framebus_vision::opencv::prelude::*;
use framebus_vision::opencv::videoio::VideoWriter;
use serde_json::json;

/// Why a range of frames was not saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The recorder's queue overflowed (it was slower than the camera): frame-id gap.
    Dropped,
    /// Free space was below the floor.
    DiskLow,
    /// The frame could not be converted or written.
    Error,
}

impl SkipReason {
    /// Name written into the sidecar.
    pub fn name(self) -> &'static str {
        match self {
            SkipReason::Dropped => "dropped",
            SkipReason::DiskLow => "disk-low",
            SkipReason::Error => "error",
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

/// The segment being written.
pub struct Segment {
    camera: String,
    base: String,
    directory: PathBuf,
    video: Option<(VideoWriter, String)>,
    images_dir: Option<PathBuf>,
    image_ext: Option<&'static str>,
    sidecar: BufWriter<File>,
    /// Capture time (CLOCK_MONOTONIC) of the first frame: segments end by capture time.
    pub first_mono_ns: u64,
    /// Frame size of the segment; a frame of another size starts a new segment.
    pub size: (u32, u32),
    /// Frames saved.
    pub frames: u64,
    /// Frames listed as skipped.
    pub skipped: u64,
    /// Id of the last frame saved or skipped.
    pub last_frame_id: u64,
    line: String,
}

fn partial_name(base: &str, ext: &str) -> String {
    format!("{base}.partial.{ext}")
}

impl Segment {
    /// Opens a segment starting with `first` (not yet written): creates the video writer, the
    /// image folder and the sidecar, and writes the sidecar's header line.
    pub fn open(spec: &SegmentSpec, first: &FrameHeader) -> anyhow::Result<Segment> {
        let base =
            format!("{}_{}_{:010}", spec.camera, clock::format_utc_compact(first.capture_realtime_ns), first.frame_id);
        let dir = &spec.directory;
        let video = match spec.video.codec() {
            Some((code, ext)) => {
                let name = partial_name(&base, ext);
                let path = dir.join(&name);
                let fourcc = VideoWriter::fourcc(code[0], code[1], code[2], code[3])?;
                let size = Size::new(first.width as i32, first.height as i32);
                let writer = VideoWriter::new(path_str(&path)?, fourcc, spec.video_fps, size, true)
                    .with_context(|| format!("opening video `{}`", path.display()))?;
                if !writer.is_opened()? {
                    bail!(
                        "OpenCV cannot write {} video to `{}` (codec or folder unusable)",
                        code.iter().collect::<String>(),
                        path.display()
                    );
                }
                Some((writer, ext.to_string()))
            }
            None => None,
        };
        let images_dir = match spec.images.extension() {
            Some(_) => {
                let path = dir.join(format!("{base}.images"));
                std::fs::create_dir_all(&path).with_context(|| format!("creating `{}`", path.display()))?;
                Some(path)
            }
            None => None,
        };
        let sidecar_path = dir.join(partial_name(&base, "jsonl"));
        let file =
            File::create(&sidecar_path).with_context(|| format!("creating sidecar `{}`", sidecar_path.display()))?;
        let mut segment = Segment {
            camera: spec.camera.clone(),
            directory: dir.clone(),
            video,
            images_dir,
            image_ext: spec.images.extension(),
            sidecar: BufWriter::new(file),
            first_mono_ns: first.capture_mono_ns,
            size: (first.width, first.height),
            frames: 0,
            skipped: 0,
            last_frame_id: first.frame_id.saturating_sub(1),
            line: String::with_capacity(256),
            base,
        };
        let header = json!({
            "type": "segment",
            "camera": spec.camera,
            "first_frame_id": first.frame_id,
            "started_utc": clock::format_utc(first.capture_realtime_ns),
            "started_realtime_ns": first.capture_realtime_ns,
            "video": segment.video.as_ref().map(|(_, ext)| format!("{}.{ext}", segment.base)),
            "codec": spec.video.codec().map(|(code, _)| code.iter().collect::<String>()),
            "fps": spec.video_fps,
            "width": first.width,
            "height": first.height,
            "images": segment.images_dir.as_ref().map(|_| format!("{}.images", segment.base)),
        });
        segment.write_line(&header.to_string())?;
        Ok(segment)
    }

    /// Base name (`<camera>_<UTC start>_<first frame id>`).
    pub fn base(&self) -> &str {
        &self.base
    }

    fn write_line(&mut self, line: &str) -> anyhow::Result<()> {
        self.sidecar.write_all(line.as_bytes())?;
        self.sidecar.write_all(b"\n")?;
        Ok(())
    }

    /// Lists a range of frames that were not saved.
    pub fn skip(&mut self, skip: Skip) -> anyhow::Result<()> {
        let count = skip.last - skip.first + 1;
        self.skipped += count;
        self.last_frame_id = self.last_frame_id.max(skip.last);
        let line = json!({
            "type": "skipped", "first_frame_id": skip.first, "last_frame_id": skip.last,
            "count": count, "reason": skip.reason.name(),
        });
        self.write_line(&line.to_string())
    }

    /// Saves one frame (already converted to BGR in `bgr`): appends it to the video, writes an
    /// image when `image` is set, and lists it in the sidecar. Returns whether an image was
    /// written.
    pub fn write(&mut self, header: &FrameHeader, bgr: &Mat, image: Option<&Vector<i32>>) -> anyhow::Result<bool> {
        let video_frame = match &mut self.video {
            Some((writer, _)) => {
                writer.write(bgr).context("writing a video frame")?;
                Some(self.frames)
            }
            None => None,
        };
        let mut image_name = None;
        if let (Some(params), Some(dir), Some(ext)) = (image, &self.images_dir, self.image_ext) {
            let name = format!(
                "{}_{}_{:010}.{ext}",
                self.camera,
                clock::format_utc_compact(header.capture_realtime_ns),
                header.frame_id
            );
            let path = dir.join(&name);
            let ok = imgcodecs::imwrite(&path, bgr, params).with_context(|| format!("writing `{}`", path.display()))?;
            if !ok {
                bail!("OpenCV could not write image `{}`", path.display());
            }
            image_name = Some(name);
        }
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
        let _ = match &image_name {
            Some(name) => write!(self.line, ",\"image\":\"{name}\"}}"),
            None => self.line.write_str(",\"image\":null}"),
        };
        self.line.push('\n');
        self.sidecar.write_all(self.line.as_bytes())?;
        Ok(image_name.is_some())
    }

    /// Pushes buffered sidecar lines to the file (done periodically, so a killed recorder
    /// loses at most the last moments of the current segment's index).
    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.sidecar.flush()?;
        Ok(())
    }

    /// Closes the video (it plays from now on), ends the sidecar with `reason` and gives both
    /// their final names. Returns the final sidecar path.
    pub fn finish(mut self, reason: &str) -> anyhow::Result<PathBuf> {
        if let Some((writer, _)) = &mut self.video {
            writer.release().context("closing the video")?;
        }
        let end = json!({
            "type": "end", "frames": self.frames, "skipped": self.skipped,
            "last_frame_id": self.last_frame_id, "reason": reason,
        });
        self.write_line(&end.to_string())?;
        self.sidecar.flush()?;
        self.sidecar.get_ref().sync_all()?;
        if let Some((_, ext)) = &self.video {
            rename(&self.directory, &partial_name(&self.base, ext), &format!("{}.{ext}", self.base))?;
        }
        let sidecar = format!("{}.jsonl", self.base);
        rename(&self.directory, &partial_name(&self.base, "jsonl"), &sidecar)?;
        Ok(self.directory.join(sidecar))
    }
}

fn rename(dir: &Path, from: &str, to: &str) -> anyhow::Result<()> {
    std::fs::rename(dir.join(from), dir.join(to))
        .with_context(|| format!("renaming `{from}` to `{to}` in `{}`", dir.display()))
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str().with_context(|| format!("path `{}` is not UTF-8", path.display()))
}
