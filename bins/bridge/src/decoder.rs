//! The H.264 of a remote camera decoded once, on the importing host, into BGR3 of the camera's
//! configured size (GStreamer: `h264parse ! openh264dec ! videoconvert ! videoscale`). Each
//! access unit carries its header along (by presentation time) to the picture it decodes to.
//! After a lost access unit the decoder is fed nothing until the next key frame.

use std::collections::VecDeque;

use anyhow::Context;
use framebus_common::encoded::AccessUnitHeader;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// Headers kept for pictures still in the decoder.
const PENDING: usize = 64;

/// A decoder of one camera's access units.
pub struct Decoder {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    appsink: gst_app::AppSink,
    pending: VecDeque<AccessUnitHeader>,
    waiting_for_key: bool,
    /// Access units not decoded because one before them was lost.
    pub skipped: u64,
}

impl Decoder {
    /// A decoder producing `width`x`height` BGR3 pictures.
    pub fn new(width: u32, height: u32) -> anyhow::Result<Decoder> {
        gst::init().context("initialising GStreamer")?;
        for (name, package) in [
            ("h264parse", "gstreamer1.0-plugins-bad"),
            ("openh264dec", "gstreamer1.0-plugins-bad"),
            ("videoconvert", "gstreamer1.0-plugins-base"),
        ] {
            anyhow::ensure!(
                gst::ElementFactory::find(name).is_some(),
                "GStreamer element `{name}` is missing: apt-get install {package} (video = \"h264\" decodes with it)"
            );
        }
        let description = format!(
            "appsrc name=src is-live=true format=time do-timestamp=false caps=video/x-h264,stream-format=byte-stream,alignment=au \
             ! h264parse ! openh264dec ! videoconvert ! videoscale \
             ! video/x-raw,format=BGR,width={width},height={height} \
             ! appsink name=sink sync=false max-buffers=4 drop=false"
        );
        let pipeline = gst::parse::launch(&description)
            .context("building the H.264 decoder")?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow::anyhow!("the decoder is not a pipeline"))?;
        let appsrc = pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .context("the decoder's appsrc")?;
        let appsink = pipeline
            .by_name("sink")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .context("the decoder's appsink")?;
        pipeline.set_state(gst::State::Playing).context("starting the H.264 decoder")?;
        Ok(Decoder { pipeline, appsrc, appsink, pending: VecDeque::new(), waiting_for_key: true, skipped: 0 })
    }

    /// Feeds one access unit; `lost` = access units lost just before it (then only a key frame
    /// is taken).
    pub fn push(&mut self, header: &AccessUnitHeader, bytes: &[u8], lost: u64) -> anyhow::Result<()> {
        if lost > 0 {
            self.waiting_for_key = true;
        }
        if self.waiting_for_key && !header.is_key_frame() {
            self.skipped += 1;
            return Ok(());
        }
        self.waiting_for_key = false;
        let mut buffer = gst::Buffer::from_slice(bytes.to_vec());
        if let Some(buffer) = buffer.get_mut() {
            buffer.set_pts(gst::ClockTime::from_nseconds(header.pts_ns));
            buffer.set_dts(gst::ClockTime::from_nseconds(header.dts_ns));
        }
        if self.pending.len() == PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(*header);
        self.appsrc
            .push_buffer(buffer)
            .map_err(|e| anyhow::anyhow!("the H.264 decoder refused an access unit: {e:?}"))?;
        Ok(())
    }

    /// The next decoded picture, if one is ready, with the header of its access unit.
    pub fn pull(&mut self) -> Option<(AccessUnitHeader, Vec<u8>)> {
        let sample = self.appsink.try_pull_sample(gst::ClockTime::ZERO)?;
        let buffer = sample.buffer()?;
        let pts = buffer.pts().map(|t| t.nseconds());
        let header = match self.pending.iter().position(|h| Some(h.pts_ns) == pts) {
            Some(i) => {
                let header = self.pending[i];
                self.pending.drain(..=i);
                header
            }
            None => *self.pending.front()?,
        };
        let map = buffer.map_readable().ok()?;
        Some((header, map.as_slice().to_vec()))
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
