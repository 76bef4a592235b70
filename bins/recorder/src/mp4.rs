//! MP4 from H.264 access units that are already encoded (`video = "stream"`): a GStreamer
//! pipeline `appsrc → h264parse → mp4mux → filesink` per segment. Nothing is decoded or
//! encoded; the access units go into the file as they are, with their timestamps.
//!
//! MP4 needs its index (`moov`) written at the end: [`StreamMp4::finish`] sends end-of-stream
//! and waits (bounded) until the muxer has written it, which every clean stop (`ctl stop`,
//! SIGTERM, SIGINT) goes through. Memory is bounded: access units the disk has not taken yet
//! are held up to [`MAX_QUEUED_BYTES`]; beyond that the write fails (the segment ends as a
//! failed one, like any other write error).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use framebus_common::encoded::AccessUnitHeader;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// Access units waiting for the disk, at most (bytes): about 30 s at 8 Mbit/s.
pub const MAX_QUEUED_BYTES: u64 = 32 * 1024 * 1024;

/// Longest wait for the muxer to write the index on finish.
const FINISH_TIMEOUT: Duration = Duration::from_secs(15);

/// One MP4 being written from access units.
pub struct StreamMp4 {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    bus: gst::Bus,
    path: PathBuf,
    /// DTS of the first access unit: timestamps in the file start at 0.
    base_ns: Option<u64>,
    finished: bool,
}

impl StreamMp4 {
    /// Starts a pipeline writing to `path` (created now).
    pub fn create(path: &Path) -> anyhow::Result<StreamMp4> {
        gst::init().context("initialising GStreamer")?;
        for (element, package) in [
            ("appsrc", "gstreamer1.0-plugins-base"),
            ("h264parse", "gstreamer1.0-plugins-bad"),
            ("mp4mux", "gstreamer1.0-plugins-good"),
            ("filesink", "gstreamer1.0 core"),
        ] {
            if gst::ElementFactory::find(element).is_none() {
                bail!("GStreamer element `{element}` is missing ({package}); run scripts/bootstrap.sh");
            }
        }
        let pipeline = gst::Pipeline::new();
        let appsrc = gst_app::AppSrc::builder()
            .caps(
                &gst::Caps::builder("video/x-h264")
                    .field("stream-format", "byte-stream")
                    .field("alignment", "au")
                    .build(),
            )
            .format(gst::Format::Time)
            .is_live(false)
            .block(false)
            .max_bytes(MAX_QUEUED_BYTES)
            .build();
        let parse = gst::ElementFactory::make("h264parse").build().context("creating h264parse")?;
        let mux = gst::ElementFactory::make("mp4mux").build().context("creating mp4mux")?;
        let location = path.to_str().with_context(|| format!("path `{}` is not UTF-8", path.display()))?;
        let sink = gst::ElementFactory::make("filesink")
            .property("location", location)
            .property("sync", false)
            .build()
            .context("creating filesink")?;
        pipeline.add_many([appsrc.upcast_ref(), &parse, &mux, &sink]).context("assembling the MP4 pipeline")?;
        gst::Element::link_many([appsrc.upcast_ref(), &parse, &mux, &sink]).context("linking the MP4 pipeline")?;
        let bus = pipeline.bus().context("the MP4 pipeline has no bus")?;
        let mp4 = StreamMp4 { pipeline, appsrc, bus, path: path.to_path_buf(), base_ns: None, finished: false };
        mp4.pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| anyhow!("cannot start writing `{}`", path.display()))?;
        mp4.check()?;
        Ok(mp4)
    }

    /// The first error the pipeline reported, if any.
    fn check(&self) -> anyhow::Result<()> {
        if let Some(message) = self.bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = message.view() {
                bail!("writing `{}`: {} ({:?})", self.path.display(), e.error(), e.debug());
            }
        }
        Ok(())
    }

    /// Appends one access unit (copied). Fails on a pipeline error (disk full, unwritable) or
    /// when the disk is [`MAX_QUEUED_BYTES`] behind.
    pub fn write(&mut self, unit: &AccessUnitHeader, data: &[u8]) -> anyhow::Result<()> {
        self.check()?;
        if self.appsrc.current_level_bytes() >= MAX_QUEUED_BYTES {
            bail!("writing `{}`: the disk is {} MiB behind", self.path.display(), MAX_QUEUED_BYTES / (1024 * 1024));
        }
        let base = *self.base_ns.get_or_insert(unit.dts_ns.min(unit.pts_ns));
        let mut buffer = gst::Buffer::from_slice(data.to_vec());
        {
            let buffer = buffer.get_mut().context("a new buffer is writable")?;
            buffer.set_pts(gst::ClockTime::from_nseconds(unit.pts_ns.saturating_sub(base)));
            buffer.set_dts(gst::ClockTime::from_nseconds(unit.dts_ns.saturating_sub(base)));
            if !unit.is_key_frame() {
                buffer.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        self.appsrc
            .push_buffer(buffer)
            .map(|_| ())
            .map_err(|e| anyhow!("writing `{}`: the pipeline refused an access unit: {e:?}", self.path.display()))
    }

    /// Ends the stream and waits until the muxer wrote the index and the file is closed.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        self.finished = true;
        let ended = (|| {
            self.appsrc.end_of_stream().map_err(|e| anyhow!("ending `{}`: {e:?}", self.path.display()))?;
            let timeout = gst::ClockTime::from_nseconds(FINISH_TIMEOUT.as_nanos() as u64);
            match self.bus.timed_pop_filtered(timeout, &[gst::MessageType::Eos, gst::MessageType::Error]) {
                Some(message) => match message.view() {
                    gst::MessageView::Eos(_) => Ok(()),
                    gst::MessageView::Error(e) => {
                        Err(anyhow!("finishing `{}`: {} ({:?})", self.path.display(), e.error(), e.debug()))
                    }
                    _ => Ok(()),
                },
                None => Err(anyhow!(
                    "finishing `{}`: the index was not written within {FINISH_TIMEOUT:?}",
                    self.path.display()
                )),
            }
        })();
        let stopped = self.pipeline.set_state(gst::State::Null);
        ended?;
        stopped.map_err(|_| anyhow!("closing `{}`", self.path.display()))?;
        Ok(())
    }
}

impl Drop for StreamMp4 {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.pipeline.set_state(gst::State::Null);
        }
    }
}
