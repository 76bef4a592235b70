//! Video-file source: OpenCV `VideoCapture`, paced at the file's or the configured frame rate,
//! looping at the end. Decoded frames are written straight into the loaned sample; a resize or
//! colour conversion, when the file differs from the configured format, writes its output
//! there too.

use core::mem::MaybeUninit;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use framebus_common::clock;
use framebus_common::config::{FilePace, FileSourceConfig};
use framebus_common::{CameraConfig, PixelFormat};
use framebus_vision::opencv::core::{Mat, Size};
use framebus_vision::opencv::prelude::*;
use framebus_vision::opencv::{imgproc, videoio};
use framebus_vision::{mat_shape, uninit_mat};

use super::{FrameSource, Grab, Pacing, SourceError, SourceFormat};

/// A video file played as a camera.
pub struct FileSource {
    capture: videoio::VideoCapture,
    path: String,
    format: SourceFormat,
    period: Option<Duration>,
    looping: bool,
    file_size: (i32, i32),
    /// Frame index within the file of the grabbed frame.
    index: u64,
    /// Decoded frame when it must be resized or converted before landing in the sample.
    scratch: Mat,
    resized: Mat,
    warned_realloc: bool,
}

fn fatal(e: impl Into<anyhow::Error>) -> SourceError {
    SourceError::Fatal(e.into())
}

impl FileSource {
    /// Opens the file and reads its size and frame rate.
    pub fn open(camera: &CameraConfig, config: &FileSourceConfig, path: &Path) -> anyhow::Result<FileSource> {
        let path_text = path.to_string_lossy().into_owned();
        let capture = videoio::VideoCapture::from_file(&path_text, videoio::CAP_ANY)
            .with_context(|| format!("opening video file `{path_text}`"))?;
        if !capture.is_opened().unwrap_or(false) {
            bail!("OpenCV cannot open video file `{path_text}` (missing, unreadable or an unsupported codec)");
        }
        let width = capture.get(videoio::CAP_PROP_FRAME_WIDTH).unwrap_or(0.0) as i32;
        let height = capture.get(videoio::CAP_PROP_FRAME_HEIGHT).unwrap_or(0.0) as i32;
        let file_fps = capture.get(videoio::CAP_PROP_FPS).unwrap_or(0.0);
        let fps = match config.pace {
            FilePace::File if file_fps > 0.0 && file_fps.is_finite() => file_fps,
            _ => camera.fps,
        };
        tracing::info!(
            camera = camera.name,
            file = path_text,
            width,
            height,
            file_fps,
            paced_at = fps,
            "opened video file"
        );
        Ok(FileSource {
            capture,
            path: path_text,
            format: SourceFormat { format: camera.format(), width: camera.width, height: camera.height },
            period: (fps > 0.0).then(|| Duration::from_secs_f64(1.0 / fps)),
            looping: config.looping,
            file_size: (width, height),
            index: 0,
            scratch: Mat::default(),
            resized: Mat::default(),
            warned_realloc: false,
        })
    }

    fn grab_frame(&mut self) -> Result<bool, SourceError> {
        self.capture.grab().map_err(|e| fatal(anyhow::Error::new(e).context(format!("reading `{}`", self.path))))
    }
}

impl FrameSource for FileSource {
    fn describe(&self) -> String {
        format!(
            "file `{}` ({}x{} → {}x{} {})",
            self.path, self.file_size.0, self.file_size.1, self.format.width, self.format.height, self.format.format
        )
    }

    fn format(&self) -> SourceFormat {
        self.format
    }

    fn pacing(&self) -> Pacing {
        self.period.map_or(Pacing::Unpaced, Pacing::Period)
    }

    fn grab(&mut self) -> Result<Grab, SourceError> {
        if !self.grab_frame()? {
            if !self.looping {
                return Err(SourceError::Ended);
            }
            // Back to the first frame; a file that cannot seek is opened again.
            let rewound = self.capture.set(videoio::CAP_PROP_POS_FRAMES, 0.0).unwrap_or(false);
            if !rewound || !self.grab_frame()? {
                self.capture = videoio::VideoCapture::from_file(&self.path, videoio::CAP_ANY).map_err(fatal)?;
                if !self.grab_frame()? {
                    return Err(fatal(anyhow::anyhow!("video file `{}` has no frame to loop over", self.path)));
                }
            }
            tracing::debug!(file = self.path, "looped to the first frame");
            self.index = 0;
        }
        self.index += 1;
        Ok(Grab {
            payload_len: self.format.max_frame_bytes(),
            sequence: self.index,
            capture_mono_ns: clock::monotonic_ns(),
            capture_realtime_ns: clock::realtime_ns(),
            source_drops: 0,
        })
    }

    fn write_into(&mut self, _frame_id: u64, dst: &mut [MaybeUninit<u8>]) -> Result<(), SourceError> {
        let SourceFormat { format, width, height } = self.format;
        let Some((rows, cols, typ)) = mat_shape(format, width, height) else {
            return Err(fatal(anyhow::anyhow!("the file source cannot produce {format}")));
        };
        let target_ptr = dst.as_ptr() as usize;
        let mut target = uninit_mat(rows, cols, typ, dst).map_err(fatal)?;
        let same_size = self.file_size == (width as i32, height as i32);
        if same_size && format == PixelFormat::Bgr3 {
            // Decode straight into the sample.
            self.capture.retrieve_def(&mut target).map_err(fatal)?;
        } else {
            self.capture.retrieve_def(&mut self.scratch).map_err(fatal)?;
            let decoded = if same_size {
                &self.scratch
            } else {
                imgproc::resize(
                    &self.scratch,
                    &mut self.resized,
                    Size::new(width as i32, height as i32),
                    0.0,
                    0.0,
                    imgproc::INTER_AREA,
                )
                .map_err(fatal)?;
                &self.resized
            };
            match format {
                PixelFormat::Bgr3 => decoded.copy_to(&mut target).map_err(fatal)?,
                PixelFormat::Rgb3 => {
                    imgproc::cvt_color_def(decoded, &mut target, imgproc::COLOR_BGR2RGB).map_err(fatal)?
                }
                _ => imgproc::cvt_color_def(decoded, &mut target, imgproc::COLOR_BGR2GRAY).map_err(fatal)?,
            }
        }
        // OpenCV reallocates a destination whose size or type does not match; then the sample
        // would not have been written. Fall back to a copy, and say so once.
        if target.data() as usize != target_ptr {
            if !self.warned_realloc {
                tracing::warn!(
                    file = self.path,
                    "OpenCV decoded into its own buffer; copying frames into shared memory"
                );
                self.warned_realloc = true;
            }
            let bytes = target.data_bytes().map_err(fatal)?;
            if bytes.len() != dst_len(rows, cols, typ) {
                return Err(fatal(anyhow::anyhow!(
                    "decoded frame has {} bytes, expected {}",
                    bytes.len(),
                    dst_len(rows, cols, typ)
                )));
            }
            let copy = bytes.to_vec();
            drop(target);
            for (d, s) in dst.iter_mut().zip(copy) {
                *d = MaybeUninit::new(s);
            }
        }
        Ok(())
    }
}

fn dst_len(rows: i32, cols: i32, typ: i32) -> usize {
    let channels = match typ {
        t if t == framebus_vision::opencv::core::CV_8UC3 => 3,
        t if t == framebus_vision::opencv::core::CV_8UC2 => 2,
        _ => 1,
    };
    rows as usize * cols as usize * channels
}
