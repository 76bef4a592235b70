//! Opening framebus's services (frames, frame-ready, results, encoded video, control) with the
//! settings derived from the config only, so that every process opens them alike.

use iceoryx2::prelude::*;
use iceoryx2::service::builder::event::{EventOpenError, EventOpenOrCreateError};
use iceoryx2::service::builder::publish_subscribe::{PublishSubscribeOpenError, PublishSubscribeOpenOrCreateError};
use iceoryx2::service::builder::request_response::{Builder as RequestResponseBuilder, RequestResponseOpenError};
use iceoryx2::service::port_factory::{event, publish_subscribe, request_response};

use super::error::{IpcError, IpcService};
use super::settings::iceoryx_config;
use crate::config::{CameraConfig, Deployment, SlotLayout};
use crate::encoded::{AccessUnitHeader, ENCODED_MAX_NODES, ENCODED_MAX_SUBSCRIBERS};
use crate::header::FrameHeader;
use crate::limits::{CONTROL_MAX_CLIENTS, RESULTS_MAX_PUBLISHERS, RESULTS_MAX_SUBSCRIBERS, RESULTS_QUEUE};
use crate::names::{parse_control_service, service_name, Role, ServiceKind};
use crate::protocol::{ControlReply, ControlRequest};
use crate::results::ResultRecord;

/// The frame publish/subscribe service of one camera.
pub type FramePortFactory = publish_subscribe::PortFactory<IpcService, [u8], FrameHeader>;

/// The frame-ready event service of one camera.
pub type EventPortFactory = event::PortFactory<IpcService>;

/// The results publish/subscribe service of one camera.
pub type ResultsPortFactory = publish_subscribe::PortFactory<IpcService, ResultRecord, ()>;

/// The control request/response service of one process.
pub type ControlPortFactory = request_response::PortFactory<IpcService, ControlRequest, (), ControlReply, ()>;

fn to_service_name(name: &str) -> Result<ServiceName, IpcError> {
    ServiceName::new(name).map_err(|e| IpcError::new(format!("invalid service name `{name}`"), e))
}

/// The two services of a camera's frame bus: frames and the event that announces them.
#[derive(Debug)]
pub struct FrameBus {
    /// Publish/subscribe service carrying the frames.
    pub frames: FramePortFactory,
    /// Event service: capture notifies after every frame it sends.
    pub ready: EventPortFactory,
    /// The shared-memory layout both were opened with.
    pub layout: SlotLayout,
    /// Name of the frames service (for messages).
    pub frames_name: String,
}

/// Opens (or creates) the frame bus of `camera` with settings derived from its config only.
pub fn open_frame_bus(
    node: &Node<IpcService>,
    deployment: &Deployment,
    camera: &CameraConfig,
) -> Result<FrameBus, IpcError> {
    let layout = camera.slot_layout();
    let frames_name = service_name(deployment.name(), &camera.name, ServiceKind::Frames);
    let frames = node
        .service_builder(&to_service_name(&frames_name)?)
        .publish_subscribe::<[u8]>()
        .user_header::<FrameHeader>()
        .max_publishers(1)
        .max_subscribers(layout.max_readers)
        .subscriber_max_buffer_size(layout.max_queue_depth)
        .subscriber_max_borrowed_samples(layout.reader_borrows)
        .history_size(0)
        // A slow reader loses its oldest queued frame; capture never waits for a reader.
        .enable_safe_overflow(true)
        .max_nodes(layout.max_readers + 2)
        .open_or_create()
        .map_err(|e| match e {
            // Readers opening at once beyond `max-readers` run out of the service's node
            // places before they reach its subscriber places: the same limit, the same message.
            PublishSubscribeOpenOrCreateError::PublishSubscribeOpenError(
                PublishSubscribeOpenError::ExceedsMaxNumberOfNodes,
            ) => IpcError::new(reader_slots_taken(deployment, camera, &layout, &frames_name), e),
            e => IpcError::new(format!("opening frame service `{frames_name}` of camera `{}`", camera.name), e),
        })?;
    let ready_name = service_name(deployment.name(), &camera.name, ServiceKind::FrameReady);
    let ready = node
        .service_builder(&to_service_name(&ready_name)?)
        .event()
        .max_notifiers(2)
        .max_listeners(layout.max_readers)
        .max_nodes(layout.max_readers + 2)
        .open_or_create()
        .map_err(|e| match e {
            EventOpenOrCreateError::EventOpenError(EventOpenError::ExceedsMaxNumberOfNodes) => {
                IpcError::new(reader_slots_taken(deployment, camera, &layout, &frames_name), e)
            }
            e => IpcError::new(format!("opening event service `{ready_name}` of camera `{}`", camera.name), e),
        })?;
    Ok(FrameBus { frames, ready, layout, frames_name })
}

/// What a reader is told when `camera` has no reader place left: the keys to raise, in which
/// file, and what another reader costs.
pub(super) fn reader_slots_taken(
    deployment: &Deployment,
    camera: &CameraConfig,
    layout: &SlotLayout,
    frames_name: &str,
) -> String {
    let cam = &camera.name;
    let more = (layout.max_queue_depth + layout.reader_borrows) * layout.frame_bytes;
    format!(
        "camera `{cam}`: all {} reader slots of `{frames_name}` are taken: raise `max-readers` of camera `{cam}` in {} to {} and `slots` to {} (another reader costs {:.1} MiB of shared memory: {} slots of {} bytes)",
        layout.max_readers,
        deployment.source_file.display(),
        layout.max_readers + 1,
        layout.slots() + layout.max_queue_depth + layout.reader_borrows,
        more as f64 / (1024.0 * 1024.0),
        layout.max_queue_depth + layout.reader_borrows,
        layout.frame_bytes
    )
}

/// Opens (or creates) the results service of `camera`: fixed settings, so every producer and
/// reader opens it alike. Results are small (1880 bytes); a slow reader loses its oldest queued
/// results, a producer never waits.
pub fn open_results(node: &Node<IpcService>, deployment: &str, camera: &str) -> Result<ResultsPortFactory, IpcError> {
    let name = service_name(deployment, camera, ServiceKind::Results);
    node.service_builder(&to_service_name(&name)?)
        .publish_subscribe::<ResultRecord>()
        .max_publishers(RESULTS_MAX_PUBLISHERS)
        .max_subscribers(RESULTS_MAX_SUBSCRIBERS)
        .subscriber_max_buffer_size(RESULTS_QUEUE)
        .subscriber_max_borrowed_samples(2)
        .history_size(0)
        .enable_safe_overflow(true)
        .max_nodes(RESULTS_MAX_PUBLISHERS + RESULTS_MAX_SUBSCRIBERS + 2)
        .open_or_create()
        .map_err(|e| IpcError::new(format!("opening results service `{name}` of camera `{camera}`"), e))
}

/// Opens (or creates) the results-ready event of `camera`: every producer notifies it after a
/// result ([`ResultsPublisher`]), so a process that forwards results (the bridge) wakes at once
/// instead of polling.
pub fn open_results_ready(
    node: &Node<IpcService>,
    deployment: &str,
    camera: &str,
) -> Result<EventPortFactory, IpcError> {
    let name = service_name(deployment, camera, ServiceKind::ResultsReady);
    node.service_builder(&to_service_name(&name)?)
        .event()
        .max_notifiers(RESULTS_MAX_PUBLISHERS)
        .max_listeners(RESULTS_MAX_SUBSCRIBERS)
        .max_nodes(RESULTS_MAX_PUBLISHERS + RESULTS_MAX_SUBSCRIBERS + 2)
        .open_or_create()
        .map_err(|e| IpcError::new(format!("opening event service `{name}` of camera `{camera}`"), e))
}

/// A producer of one camera's results: its publisher on the results service and its notifier on
/// the results-ready event. Every result framebus publishes goes through [`Self::publish`].
#[derive(Debug)]
pub struct ResultsPublisher {
    publisher: iceoryx2::port::publisher::Publisher<IpcService, ResultRecord, ()>,
    notifier: iceoryx2::port::notifier::Notifier<IpcService>,
    camera: String,
}

impl ResultsPublisher {
    /// Opens both services of `camera` and creates the two ports.
    pub fn create(node: &Node<IpcService>, deployment: &str, camera: &str) -> Result<Self, IpcError> {
        let publisher = open_results(node, deployment, camera)?
            .publisher_builder()
            .create()
            .map_err(|e| IpcError::new(format!("camera `{camera}`: creating a results publisher"), e))?;
        let notifier = open_results_ready(node, deployment, camera)?
            .notifier_builder()
            .create()
            .map_err(|e| IpcError::new(format!("camera `{camera}`: creating a results-ready notifier"), e))?;
        Ok(ResultsPublisher { publisher, notifier, camera: camera.to_string() })
    }

    /// Sends `record` (a slow reader loses its oldest queued one; this never waits) and wakes
    /// whoever waits on the results-ready event.
    pub fn publish(&self, record: ResultRecord) -> Result<(), IpcError> {
        self.publisher
            .send_copy(record)
            .map_err(|e| IpcError::new(format!("camera `{}`: publishing a result", self.camera), e))?;
        // A missed wake-up costs the waiter its poll period, never a result: not an error.
        if let Err(e) = self.notifier.notify() {
            tracing::debug!(camera = self.camera, "results-ready notify: {e:?}");
        }
        Ok(())
    }
}

/// Publish/subscribe of a camera's encoded video: H.264 access units with their frame ids.
pub type EncodedPortFactory = publish_subscribe::PortFactory<IpcService, [u8], AccessUnitHeader>;

/// Opens (or creates) the encoded-video service of `camera` (streamer → media server and
/// recorder), sized from its config only ([`CameraConfig::encoded_layout`]). A slow
/// subscriber loses its oldest queued access units; the streamer never waits.
pub fn open_encoded(
    node: &Node<IpcService>,
    deployment: &str,
    camera: &CameraConfig,
) -> Result<EncodedPortFactory, IpcError> {
    let layout = camera.encoded_layout();
    let name = service_name(deployment, &camera.name, ServiceKind::Encoded);
    node.service_builder(&to_service_name(&name)?)
        .publish_subscribe::<[u8]>()
        .user_header::<AccessUnitHeader>()
        .max_publishers(1)
        .max_subscribers(ENCODED_MAX_SUBSCRIBERS)
        .subscriber_max_buffer_size(layout.queue)
        .subscriber_max_borrowed_samples(1)
        .history_size(0)
        .enable_safe_overflow(true)
        .max_nodes(ENCODED_MAX_NODES)
        .open_or_create()
        .map_err(|e| IpcError::new(format!("opening encoded-video service `{name}` of camera `{}`", camera.name), e))
}

/// The two services of one process's control: requests and the event that wakes the server.
#[derive(Debug)]
pub struct ControlServices {
    /// Request/response service carrying [`ControlRequest`]s and [`ControlReply`]s.
    pub requests: ControlPortFactory,
    /// Event service: a client notifies after sending a request, so a server sleeping in a
    /// waitset wakes. `None` for a client when it does not exist (the server is gone).
    pub ready: Option<EventPortFactory>,
    /// Name of the request/response service (for messages).
    pub name: String,
}

impl ControlServices {
    /// Whether a process serves this control service right now.
    pub fn has_server(&self) -> bool {
        self.requests.dynamic_config().number_of_servers() > 0
    }
}

/// The one place that sets the control service's settings, for servers and clients alike.
fn control_builder(
    node: &Node<IpcService>,
    name: &ServiceName,
) -> RequestResponseBuilder<ControlRequest, (), ControlReply, (), IpcService> {
    node.service_builder(name)
        .request_response::<ControlRequest, ControlReply>()
        // One server per process role and camera: a second instance is refused (see serve_control).
        .max_servers(1)
        .max_clients(CONTROL_MAX_CLIENTS)
        .max_nodes(CONTROL_MAX_CLIENTS + 2)
        .max_active_requests_per_client(2)
        .max_loaned_requests(2)
        .max_response_buffer_size(2)
        .max_borrowed_responses_per_pending_response(1)
        .enable_safe_overflow_for_requests(true)
        .enable_safe_overflow_for_responses(true)
        // On, so that a request whose client has gone (gave up at its deadline, exited) is still
        // handed to the server, which drops it unanswered (`ControlServer::poll`) and so
        // releases it. Off, iceoryx2 0.10 skips such a request without releasing it: the server
        // kept the gone client's data segment and connection open for good, two descriptors
        // and a mapping per request (the soak's descriptor growth under `ctl` bursts).
        .enable_fire_and_forget_requests(true)
}

fn control_ready_builder(
    node: &Node<IpcService>,
    name: &ServiceName,
) -> iceoryx2::service::builder::event::Builder<IpcService> {
    node.service_builder(name)
        .event()
        .max_notifiers(CONTROL_MAX_CLIENTS)
        .max_listeners(2)
        .max_nodes(CONTROL_MAX_CLIENTS + 2)
}

/// Opens (or creates) the control services of `role` for `camera`, as their server does.
pub fn serve_control(
    node: &Node<IpcService>,
    deployment: &str,
    camera: &str,
    role: &str,
) -> Result<ControlServices, IpcError> {
    let name = service_name(deployment, camera, ServiceKind::Control(role));
    let requests = control_builder(node, &to_service_name(&name)?)
        .open_or_create()
        .map_err(|e| IpcError::new(format!("opening control service `{name}` of {role} of camera `{camera}`"), e))?;
    let ready_name = service_name(deployment, camera, ServiceKind::ControlReady(role));
    let ready = control_ready_builder(node, &to_service_name(&ready_name)?).open_or_create().map_err(|e| {
        IpcError::new(format!("opening event service `{ready_name}` of {role} of camera `{camera}`"), e)
    })?;
    Ok(ControlServices { requests, ready: Some(ready), name })
}

/// Opens the control services of `role` for `camera` as a client; `Ok(None)` when the service
/// does not exist (nothing serves it). Never creates a service.
pub fn connect_control(
    node: &Node<IpcService>,
    deployment: &str,
    camera: &str,
    role: &str,
) -> Result<Option<ControlServices>, IpcError> {
    let name = service_name(deployment, camera, ServiceKind::Control(role));
    let requests = match control_builder(node, &to_service_name(&name)?).open() {
        Ok(requests) => requests,
        Err(RequestResponseOpenError::DoesNotExist | RequestResponseOpenError::IsMarkedForDestruction) => {
            return Ok(None)
        }
        Err(e @ RequestResponseOpenError::ExceedsMaxNumberOfNodes) => {
            return Err(IpcError::busy(format!("opening control service `{name}` (too many clients at once)"), e))
        }
        Err(e) => return Err(IpcError::new(format!("opening control service `{name}`"), e)),
    };
    let ready_name = service_name(deployment, camera, ServiceKind::ControlReady(role));
    let ready = match control_ready_builder(node, &to_service_name(&ready_name)?).open() {
        Ok(ready) => Some(ready),
        Err(EventOpenError::DoesNotExist | EventOpenError::IsMarkedForDestruction) => None,
        Err(e @ EventOpenError::ExceedsMaxNumberOfNodes) => {
            return Err(IpcError::busy(format!("opening event service `{ready_name}` (too many clients at once)"), e))
        }
        Err(e) => return Err(IpcError::new(format!("opening event service `{ready_name}`"), e)),
    };
    Ok(Some(ControlServices { requests, ready, name }))
}

/// Every control service of `deployment` that exists right now, as (camera, role): how
/// `ctl status` finds user readers the config does not name.
pub fn control_roles(deployment: &str) -> Result<Vec<(String, Role)>, IpcError> {
    let config = iceoryx_config(deployment)?;
    let mut found = Vec::new();
    IpcService::list(&config, |details| {
        if let Some(entry) = parse_control_service(deployment, details.static_details.name().as_str()) {
            found.push(entry);
        }
        CallbackProgression::Continue
    })
    .map_err(|e| IpcError::new(format!("listing the services of deployment `{deployment}`"), e))?;
    found.sort();
    found.dedup();
    Ok(found)
}
