//! A reader's end of a camera's frame bus, and the waitset every framebus process sleeps in.

use iceoryx2::port::subscriber::SubscriberCreateError;
use iceoryx2::prelude::*;

use super::error::{IpcError, IpcService};
use super::services::{open_frame_bus, reader_slots_taken};
use crate::config::{CameraConfig, Deployment};
use crate::header::FrameHeader;

/// A received frame: the sample stays in shared memory until dropped.
pub type FrameSample = iceoryx2::sample::Sample<IpcService, [u8], FrameHeader>;

/// A reader's end of a camera's frame bus: its subscriber (with its own queue depth) and the
/// listener that capture's frame-ready event wakes. The reader loop (crate `framebus`) is
/// built on it: [`FrameReader::wait`], then [`FrameReader::next`] until empty.
#[derive(Debug)]
pub struct FrameReader {
    subscriber: iceoryx2::port::subscriber::Subscriber<IpcService, [u8], FrameHeader>,
    listener: iceoryx2::port::listener::Listener<IpcService>,
    service: String,
    camera: String,
}

impl FrameReader {
    /// Subscribes to `camera` with a queue of `queue_depth` frames (older ones are dropped
    /// when it is full, never blocking capture).
    pub fn open(
        node: &Node<IpcService>,
        deployment: &Deployment,
        camera: &CameraConfig,
        queue_depth: usize,
    ) -> Result<FrameReader, IpcError> {
        let bus = open_frame_bus(node, deployment, camera)?;
        let cam = &camera.name;
        let subscriber = bus.frames.subscriber_builder().buffer_size(queue_depth).create().map_err(|e| match e {
            SubscriberCreateError::ExceedsMaxSupportedSubscribers => {
                IpcError::new(reader_slots_taken(deployment, camera, &bus.layout, &bus.frames_name), e)
            }
            e => IpcError::new(
                format!("camera `{cam}`: subscribing to `{}` with queue depth {queue_depth}", bus.frames_name),
                e,
            ),
        })?;
        let listener = bus
            .ready
            .listener_builder()
            .create()
            .map_err(|e| IpcError::new(format!("camera `{cam}`: creating the frame-ready listener"), e))?;
        Ok(FrameReader { subscriber, listener, service: bus.frames_name, camera: cam.clone() })
    }

    /// The listener to attach to a waitset.
    pub fn listener(&self) -> &iceoryx2::port::listener::Listener<IpcService> {
        &self.listener
    }

    /// Name of the frames service (for messages).
    pub fn service_name(&self) -> &str {
        &self.service
    }

    /// Consumes the pending frame-ready wake-ups (call before taking frames).
    pub fn clear_wakeups(&self) {
        if let Err(e) = self.listener.try_wait(|_| {}) {
            tracing::debug!(camera = self.camera, "frame-ready listener: {e:?}");
        }
    }

    /// The oldest queued frame, if any.
    pub fn next(&self) -> Result<Option<FrameSample>, IpcError> {
        self.subscriber
            .receive()
            .map_err(|e| IpcError::new(format!("camera `{}`: receiving from `{}`", self.camera, self.service), e))
    }

    /// Whether more frames are queued.
    pub fn has_more(&self) -> bool {
        self.subscriber.has_samples().unwrap_or(false)
    }

    /// Sleeps until capture announces a frame or `timeout` passes (a signal also ends the
    /// wait); consumes the pending wake-ups.
    pub fn wait(&self, timeout: core::time::Duration) {
        if let Err(e) = self.listener.timed_wait(|_| {}, timeout) {
            tracing::debug!(camera = self.camera, "frame-ready listener: {e:?}");
        }
    }
}

/// A waitset for a framebus process: signals interrupt its wait but do not end it (see
/// [`crate::signals`]).
pub fn waitset() -> Result<WaitSet<IpcService>, IpcError> {
    WaitSetBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<IpcService>()
        .map_err(|e| IpcError::new("creating the waitset", e))
}
