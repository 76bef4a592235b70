//! Ingest: per camera, a thread that reads the camera's encoded service
//! (`framebus/<dep>/<cam>/encoded`, iceoryx2, written by its streamer) as one subscriber and
//! hands every access unit to the camera's channel in the [`Hub`]. This is the only way video
//! enters the media server: nothing listens for publishers on the network.
//!
//! The streamer never waits for this reader (the service drops the oldest queued access unit
//! when the queue is full); a gap in the sequence numbers or a new encoder run makes every sink
//! wait for the next key frame. A media server that stops or restarts costs capture and the
//! streamer nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use framebus_common::encoded::{AccessUnitHeader, ACCESS_UNIT_VERSION};
use framebus_common::ipc;
use framebus_common::{signals, CameraConfig, Deployment};
use gstreamer as gst;

use crate::hub::{Channel, Hub};

/// How often the encoded service is polled when it had nothing (the added latency is at most
/// this; a streamer at 30 fps produces an access unit every 33 ms).
const POLL: Duration = Duration::from_millis(2);
/// A run that sent nothing for this long is no longer publishing (the streamer stopped or is
/// restarting its encoder).
const IDLE: Duration = Duration::from_secs(2);
/// Pause before subscribing again after a failure.
const RETRY: Duration = Duration::from_secs(1);
/// Role name of the media server's nodes.
pub const ROLE: &str = "mediaserver";

/// The ingest threads; they end when the process is asked to terminate.
pub struct Ingest {
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Ingest {
    /// Starts one ingest thread per camera of `hub`.
    pub fn start(deployment: &Deployment, hub: &Arc<Hub>) -> anyhow::Result<Ingest> {
        let mut threads = Vec::new();
        for name in hub.cameras() {
            let camera = deployment.camera(Some(name)).context("a served camera is in the config")?.clone();
            let channel = hub.channel(name).context("every served camera has a channel")?;
            let deployment = deployment.clone();
            let thread = std::thread::Builder::new()
                .name(format!("ingest-{name}"))
                .spawn(move || run(&deployment, &camera, &channel))
                .with_context(|| format!("starting the ingest thread of camera `{name}`"))?;
            threads.push(thread);
        }
        Ok(Ingest { threads })
    }

    /// Waits for the threads (after a termination request).
    pub fn join(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Subscribes (again after any failure) until termination.
fn run(deployment: &Deployment, camera: &CameraConfig, channel: &Channel) {
    while !signals::termination_requested() {
        if let Err(e) = subscribe_and_feed(deployment, camera, channel) {
            framebus_common::logging::repeated(
                tracing::Level::WARN,
                "ingest",
                format_args!("camera `{}`: reading the encoded stream: {e:#}; retrying", camera.name),
            );
            sleep_unless_terminating(RETRY);
        }
    }
}

fn sleep_unless_terminating(total: Duration) {
    let until = Instant::now() + total;
    while Instant::now() < until && !signals::termination_requested() {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the thread knows of the run it is passing on.
struct Feed {
    token: Option<u64>,
    run: u64,
    next_sequence: u64,
    last: Instant,
    caps: Option<(u32, u32, gst::Caps)>,
    wrong_version: u64,
}

fn subscribe_and_feed(deployment: &Deployment, camera: &CameraConfig, channel: &Channel) -> anyhow::Result<()> {
    let cam = camera.name.as_str();
    let node = ipc::create_node(deployment, ROLE, cam)?;
    let service = ipc::open_encoded(&node, deployment.name(), camera)?;
    let subscriber = service
        .subscriber_builder()
        .buffer_size(camera.encoded_layout().queue)
        .create()
        .map_err(|e| anyhow::anyhow!("camera `{cam}`: subscribing to the encoded service: {e:?}"))?;
    tracing::info!(camera = cam, "reading the streamer's access units from shared memory");
    let mut feed = Feed { token: None, run: 0, next_sequence: 0, last: Instant::now(), caps: None, wrong_version: 0 };
    let result = (|| {
        while !signals::termination_requested() {
            let Some(sample) =
                subscriber.receive().map_err(|e| anyhow::anyhow!("camera `{cam}`: reading access units: {e:?}"))?
            else {
                if let Some(token) = feed.token {
                    if feed.last.elapsed() > IDLE {
                        channel.end_publish(token);
                        feed.token = None;
                    }
                }
                std::thread::sleep(POLL);
                continue;
            };
            let unit = *sample.user_header();
            let len = (unit.payload_len as usize).min(sample.payload().len());
            feed.pass(channel, &unit, &sample.payload()[..len]);
        }
        Ok(())
    })();
    if let Some(token) = feed.token {
        channel.end_publish(token);
    }
    drop(subscriber);
    drop(service);
    drop(node);
    result
}

impl Feed {
    /// Passes one access unit on (copied once out of shared memory into a GStreamer buffer, so
    /// the sample goes back at once).
    fn pass(&mut self, channel: &Channel, unit: &AccessUnitHeader, data: &[u8]) {
        if unit.layout_version != ACCESS_UNIT_VERSION {
            self.wrong_version += 1;
            if self.wrong_version == 1 {
                tracing::error!(
                    camera = channel.camera(),
                    "access unit of layout version {} (this media server reads {ACCESS_UNIT_VERSION}): skipped; are streamer and media server of one build?",
                    unit.layout_version
                );
            }
            return;
        }
        self.last = Instant::now();
        let token = match self.token {
            Some(token) if unit.run == self.run => {
                if unit.sequence != self.next_sequence {
                    tracing::debug!(
                        camera = channel.camera(),
                        expected = self.next_sequence,
                        got = unit.sequence,
                        "access units lost: sinks wait for the next key frame"
                    );
                    channel.discontinuity(unit.sequence.saturating_sub(self.next_sequence));
                }
                token
            }
            _ => {
                if let Some(old) = self.token.take() {
                    channel.end_publish(old);
                }
                self.run = unit.run;
                let token = channel.begin_publish();
                self.token = Some(token);
                token
            }
        };
        self.next_sequence = unit.sequence.wrapping_add(1);
        let caps = match &self.caps {
            Some((w, h, caps)) if *w == unit.width && *h == unit.height => caps.clone(),
            _ => {
                let caps = gst::Caps::builder("video/x-h264")
                    .field("stream-format", "byte-stream")
                    .field("alignment", "au")
                    .field("width", unit.width as i32)
                    .field("height", unit.height as i32)
                    .build();
                self.caps = Some((unit.width, unit.height, caps.clone()));
                caps
            }
        };
        let mut buffer = gst::Buffer::from_slice(data.to_vec());
        if let Some(buffer) = buffer.get_mut() {
            buffer.set_pts(gst::ClockTime::from_nseconds(unit.pts_ns));
            buffer.set_dts(gst::ClockTime::from_nseconds(unit.dts_ns));
            if !unit.is_key_frame() {
                buffer.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        channel.push_buffer(token, buffer.as_ref(), Some(caps.as_ref()));
    }
}
