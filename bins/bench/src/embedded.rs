//! The alternative the media-server choice was measured against: the RTSP server embedded in
//! the encoding process. `framebus-bench embedded <config> <port>` reads the camera (policy
//! `newest`), encodes with the streamer's own x264 settings and serves the result from
//! gst-rtsp-server in the same process, through the media server's own hub and mounts. Only
//! the bench runs it; the product publishes on shared memory, read by a separate `mediaserver`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use framebus::{Camera, Event};
use framebus_common::config::StreamerConfig;
use framebus_mediaserver::{hub::Hub, rtsp};
use framebus_streamer::encoder::Encoder;
use framebus_streamer::publisher::{frame_buffer, RawLayout};
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// Runs until SIGTERM.
pub fn run(config: &std::path::Path, port: u16) -> anyhow::Result<()> {
    gst::init()?;
    let camera = Camera::builder(config, "bench")?.role("embedded")?.open()?;
    let cam = camera.config().clone();
    let streamer = cam.streamer.clone().unwrap_or_else(StreamerConfig::default);
    let hub = Arc::new(Hub::new(std::slice::from_ref(&cam.name)));
    let channel = hub.channel(&cam.name).ok_or_else(|| anyhow!("no channel"))?;
    let (_server, _source) = rtsp::start(SocketAddr::from(([127, 0, 0, 1], port)), &hub, None, None)?;
    let main_loop = glib::MainLoop::new(None, false);
    let looping = main_loop.clone();
    std::thread::spawn(move || looping.run());

    let layout = RawLayout { format: cam.format(), width: cam.width, height: cam.height };
    let launch = format!(
        "appsrc name=src is-live=true format=time do-timestamp=true max-bytes=0 caps=\"video/x-raw,format=BGR,width={},height={},framerate={}/1\" \
         ! {} ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=out sync=false",
        cam.width,
        cam.height,
        cam.fps.round().max(1.0) as u32,
        Encoder::X264.launch(&streamer)
    );
    let pipeline = gst::parse::launch(&launch)?.downcast::<gst::Pipeline>().map_err(|_| anyhow!("not a pipeline"))?;
    let appsrc = pipeline.by_name("src").and_then(|e| e.downcast::<gst_app::AppSrc>().ok()).context("appsrc")?;
    let appsink = pipeline.by_name("out").and_then(|e| e.downcast::<gst_app::AppSink>().ok()).context("appsink")?;
    let token = channel.begin_publish();
    let feed = Arc::clone(&channel);
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                feed.push(token, &sample);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline.set_state(gst::State::Playing)?;
    loop {
        match camera.next_event()? {
            Event::Frame(frame) => {
                if appsrc.current_level_buffers() >= 1 {
                    continue;
                }
                let buffer = frame_buffer(&layout, frame.bytes());
                drop(frame);
                let _ = appsrc.push_buffer(buffer?);
            }
            Event::Stop(_) => break,
            _ => {}
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    main_loop.quit();
    Ok(())
}
