//! Every iceoryx2 node and service of framebus is created or opened here, so that all processes
//! use the same iceoryx2 config and the same service settings (iceoryx2 refuses to open a
//! service whose settings differ from its creator's).

use core::fmt;
use core::time::Duration;

use iceoryx2::config::Config;
use iceoryx2::node::{NodeCreationFailure, NodeState, NodeView};
use iceoryx2::port::subscriber::SubscriberCreateError;
use iceoryx2::prelude::*;
use iceoryx2::service::builder::event::{EventOpenError, EventOpenOrCreateError};
use iceoryx2::service::builder::publish_subscribe::{PublishSubscribeOpenError, PublishSubscribeOpenOrCreateError};
use iceoryx2::service::builder::request_response::{Builder as RequestResponseBuilder, RequestResponseOpenError};
use iceoryx2::service::port_factory::{event, publish_subscribe, request_response};

use crate::config::{CameraConfig, Deployment, SlotLayout};
use crate::encoded::AccessUnitHeader;
use crate::header::FrameHeader;
use crate::names::{node_name, parse_control_service, service_name, shm_prefix, Role, ServiceKind};
use crate::node_counter;
use crate::protocol::{ControlReply, ControlRequest};
use crate::results::ResultRecord;
use crate::signals;

/// The iceoryx2 service flavour framebus uses: inter-process, shared memory.
pub type IpcService = ipc::Service;

/// The frame publish/subscribe service of one camera.
pub type FramePortFactory = publish_subscribe::PortFactory<IpcService, [u8], FrameHeader>;

/// The frame-ready event service of one camera.
pub type EventPortFactory = event::PortFactory<IpcService>;

/// The results publish/subscribe service of one camera.
pub type ResultsPortFactory = publish_subscribe::PortFactory<IpcService, ResultRecord, ()>;

/// Producers of results for one camera at once (algo, user readers).
pub const RESULTS_MAX_PUBLISHERS: usize = 8;

/// Readers of results for one camera at once (preview, recorder, `ctl events`, users).
pub const RESULTS_MAX_SUBSCRIBERS: usize = 8;

/// Results a results reader may have queued.
pub const RESULTS_QUEUE: usize = 64;

/// The control request/response service of one process.
pub type ControlPortFactory = request_response::PortFactory<IpcService, ControlRequest, (), ControlReply, ()>;

/// Clients that may talk to one process's control service at once (ctl runs, the supervisor,
/// tools). More wait their turn (ctl retries within its `--timeout`, then reports "busy"). Each
/// place costs the serving process about 30 KiB of shared memory (measured with the 1432-byte
/// reply: 0.9 MiB per process for 32 places), counted by `SlotLayout::shared_memory_bytes`.
pub const CONTROL_MAX_CLIENTS: usize = 32;

/// Shared memory one process's control service takes, counted generously (see
/// [`CONTROL_MAX_CLIENTS`]).
pub const CONTROL_BYTES_PER_PROCESS: u64 = CONTROL_MAX_CLIENTS as u64 * 32 * 1024;

/// An iceoryx2 operation that failed, with what framebus was doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpcError {
    /// What was attempted, naming the service or node.
    pub context: String,
    /// iceoryx2's error.
    pub cause: String,
    /// A capacity limit of a service was reached (too many nodes or clients at once): the
    /// peer is there, and trying again later may succeed.
    pub busy: bool,
}

impl IpcError {
    /// Wraps an iceoryx2 error with context.
    pub fn new(context: impl Into<String>, cause: impl fmt::Debug) -> IpcError {
        IpcError { context: context.into(), cause: format!("{cause:?}"), busy: false }
    }

    /// An error framebus found itself (no iceoryx2 error value): `cause` is shown as written.
    pub fn text(context: impl Into<String>, cause: impl Into<String>) -> IpcError {
        IpcError { context: context.into(), cause: cause.into(), busy: false }
    }

    /// Like [`IpcError::new`] for a capacity limit that was reached ([`IpcError::busy`]).
    pub fn busy(context: impl Into<String>, cause: impl fmt::Debug) -> IpcError {
        IpcError { busy: true, ..IpcError::new(context, cause) }
    }
}

impl fmt::Display for IpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.cause)
    }
}

impl std::error::Error for IpcError {}

/// The iceoryx2 config of a deployment: iceoryx2's defaults with a per-deployment file prefix,
/// so deployments (and parallel tests) never share a file. Passed explicitly to every node, so
/// iceoryx2 never looks for a config file of its own.
pub fn iceoryx_config(deployment: &str) -> Result<Config, IpcError> {
    let mut config = Config::default();
    let prefix = shm_prefix(deployment);
    config.global.prefix = FileName::new(prefix.as_bytes()).map_err(|e| {
        IpcError::new(format!("deployment name `{deployment}` gives an invalid file prefix `{prefix}`"), e)
    })?;
    let root = deployment_root(deployment);
    let root_path =
        Path::new(root.as_bytes()).map_err(|e| IpcError::new(format!("invalid iceoryx2 root path `{root}`"), e))?;
    config.global.set_root_path(&root_path);
    // Dead nodes are looked for once when a node is created (`create_named_node_with`, which
    // reports them) and when a node or the deployment is released (iceoryx2 on destruction,
    // `release_if_last`). iceoryx2 would also scan on creation again and on every service open:
    // each scan reads every node's files, so a burst of 150 `ctl` runs cost quadratic time.
    config.global.node.cleanup_dead_nodes_on_creation = false;
    config.global.service.cleanup_dead_nodes_on_open = false;
    Ok(config)
}

/// Makes `config` iceoryx2's process-wide config too, once per process. iceoryx2 falls back to
/// its global config in a few places (e.g. cleaning up a dead node whose details are gone); left
/// unset it would search for a config file, warn that none was found and use the defaults, with
/// another prefix and folder than the deployment's. The only way in is a file: the config is
/// written to an anonymous memory file (`memfd_create`) and loaded through its
/// `/proc/self/fd/<n>` path. It has no name in any folder, so no other user can plant or read
/// it, and a process killed at any moment leaves nothing behind.
fn install_global_config(config: &Config) {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let loaded = memory_file("framebus-iceoryx2").and_then(|mut file| {
            use std::io::Write as _;
            use std::os::fd::AsRawFd as _;
            let text = toml::to_string(config).map_err(|e| e.to_string())?;
            file.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
            let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
            let path = FilePath::new(proc_path.as_bytes()).map_err(|e| format!("{e:?}"))?;
            Config::setup_global_config_from_file(&path).map(|_| ()).map_err(|e| format!("{e:?}"))
        });
        if let Err(e) = loaded {
            tracing::debug!("could not install the deployment's iceoryx2 config as the global one: {e}");
        }
    });
}

/// An anonymous file in memory (`memfd_create`, close-on-exec), gone when its last descriptor closes.
fn memory_file(name: &str) -> Result<std::fs::File, String> {
    let name = std::ffi::CString::new(name).map_err(|e| e.to_string())?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call; the flags are valid.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by nothing else.
    Ok(std::fs::File::from(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }))
}

/// The folder above every deployment's iceoryx2 folder ([`deployment_root`]).
pub const ICEORYX2_BASE: &str = "/tmp/iceoryx2";

/// Makes sure nobody but this user controls the folders iceoryx2 keeps `deployment`'s node and
/// service files in: [`ICEORYX2_BASE`] and [`deployment_root`] must be real folders (not
/// symlinks) owned by this user and not writable by group or others (each is created with mode
/// 0700 when missing), and every folder above them owned by this user or root and not writable
/// by others unless sticky (`/tmp`). Another user who owned one of them could rename or replace
/// the deployment's files (every `ctl` command then said "not running"). Called before every
/// node is created.
pub fn secure_root(deployment: &str) -> Result<(), IpcError> {
    let root = deployment_root(deployment);
    let root = root.trim_end_matches('/');
    for dir in [ICEORYX2_BASE, root] {
        let dir = std::path::Path::new(dir);
        crate::secure_fs::ensure_own_dir(dir)
            .and_then(|()| crate::secure_fs::check_private_dir(dir).map(|_| ()))
            .map_err(|unsafe_dir| {
                IpcError::text(
                    format!("iceoryx2 folder of deployment `{deployment}`"),
                    format!(
                        "{unsafe_dir}; iceoryx2 keeps the deployment's node and service files there, so only this user may control it: when no iceoryx2 program runs, remove it (`rm -r {}` as root or its owner) and start again, or give it to this user with mode 0700 (`chown {} {}; chmod 0700 {}`)",
                        unsafe_dir.path.display(),
                        crate::secure_fs::euid(),
                        unsafe_dir.path.display(),
                        unsafe_dir.path.display()
                    ),
                )
            })?;
    }
    Ok(())
}

/// Folder where iceoryx2 keeps the node and service files of `deployment`.
pub fn deployment_root(deployment: &str) -> String {
    format!("{ICEORYX2_BASE}/{}/", shm_prefix(deployment).trim_end_matches('_'))
}

/// Longest path a Unix socket may have on Linux (`sun_path` holds 108 bytes with the NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// Length of the longest event-socket path of `deployment`: iceoryx2 0.10 binds every listener
/// (frame-ready, control wake-ups) to `<root folder><prefix><listener id>.event`, the id a u128
/// in decimal of up to 39 digits (it grows with the ports a process has created). The name
/// appears twice (folder and prefix), which is what limits its length.
pub fn longest_event_socket_path(deployment: &str) -> usize {
    deployment_root(deployment).len() + shm_prefix(deployment).len() + 39 + ".event".len()
}

/// Removes what iceoryx2 keeps for a deployment between runs, once its last process is gone:
/// first the resources of dead nodes (a reader killed with SIGKILL while the others ran), then,
/// when no node of the deployment is left, the small node-counter segment in /dev/shm and the
/// deployment's empty folders. Called by [`DeploymentGuard`] when a process ends; leaves
/// everything of live nodes alone.
pub fn release_if_last(deployment: &str) {
    let Ok(config) = iceoryx_config(deployment) else { return };
    let mut removed = 0usize;
    let mut remaining = 0usize;
    // One scan: dead nodes are removed, every other node (alive, starting, inaccessible) keeps
    // the deployment's shared files in place.
    let listed = Node::<IpcService>::list(&config, |state| {
        match state {
            // Blocking (bounded): a process leaving at the same moment may be removing the same
            // dead node; once it is done the node is gone, and this process may be the last.
            NodeState::Dead(view) => {
                let id = view.id().value();
                match view.blocking_remove_stale_resources(Duration::from_secs(1)) {
                    Ok(()) => removed += 1,
                    // Seen once in a 30-minute soak (222 kill -9): a node killed half-made
                    // or half-removed that iceoryx2 cannot clean. Its process is gone (the
                    // owner lock is free), so its files go, or the deployment would never be
                    // released again.
                    Err(iceoryx2::node::NodeCleanupFailure::InternalError) => {
                        tracing::warn!(
                            deployment,
                            node = id,
                            "iceoryx2 could not clean a dead node (InternalError): removing its files"
                        );
                        remove_dead_node_files(deployment, id);
                        removed += 1;
                    }
                    Err(e) => {
                        remaining += 1;
                        log_cleanup_failure(e);
                    }
                }
            }
            _ => remaining += 1,
        }
        CallbackProgression::Continue
    });
    if removed > 0 {
        tracing::info!(deployment, removed, "removed resources of dead processes on exit");
    }
    if listed.is_err() || remaining > 0 {
        return;
    }
    let prefix = shm_prefix(deployment);
    if let Ok(entries) = std::fs::read_dir("/dev/shm") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && name.ends_with(".global_mgmt") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let root = deployment_root(deployment);
    remove_abandoned_node_folders(deployment);
    // remove_dir only removes empty folders: a concurrently starting process keeps its files.
    for sub in ["services", "nodes", "events", ""] {
        let _ = std::fs::remove_dir(format!("{root}{sub}"));
    }
}

/// How old a node folder iceoryx2 does not list must be before it counts as abandoned: a
/// starting process completes its node within milliseconds.
const ABANDONED_NODE_FOLDER_AGE: Duration = Duration::from_secs(5);

/// Removes abandoned nodes from the deployment's `nodes/`, once no node iceoryx2 lists is
/// left: every node folder older than [`ABANDONED_NODE_FOLDER_AGE`] (younger ones may be a
/// process starting right now) with its monitor files. A process killed while creating its
/// node leaves one that iceoryx2 does not list (no monitor, or one not yet usable), so nothing
/// else removes it, and it kept the deployment's folder for ever.
fn remove_abandoned_node_folders(deployment: &str) {
    let nodes = format!("{}nodes", deployment_root(deployment));
    let Ok(entries) = std::fs::read_dir(&nodes) else { return };
    for entry in entries.flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else { continue };
        let old =
            meta.modified().ok().and_then(|m| m.elapsed().ok()).is_some_and(|age| age >= ABANDONED_NODE_FOLDER_AGE);
        let id = entry.file_name().to_string_lossy().parse::<u128>();
        if let (true, true, Ok(id)) = (meta.is_dir(), old, id) {
            remove_dead_node_files(deployment, id);
        }
    }
}

/// Removes the files of dead node `id` of `deployment` that iceoryx2 could not clean: its
/// monitor files, the tags and details in its folder, the folder, and the shared memory of the
/// ports its tags name. Only for a node whose process is gone.
fn remove_dead_node_files(deployment: &str, id: u128) {
    let root = deployment_root(deployment);
    let prefix = shm_prefix(deployment);
    let nodes = format!("{root}nodes");
    let folder = format!("{nodes}/{id}");
    let mut ports = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&folder) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(port) = name.strip_prefix(&prefix).and_then(|n| n.strip_suffix(".port_tag")) {
                ports.push(port.to_string());
            }
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let _ = std::fs::remove_dir(&folder);
    let monitor = format!("{prefix}{id}.node_monitor");
    remove_matching(&nodes, |name| name.starts_with(&monitor));
    if !ports.is_empty() {
        let owned_by_port =
            |name: &str| name.starts_with(&prefix) && ports.iter().any(|p| name.contains(&format!("_{p}.")));
        remove_matching("/dev/shm", owned_by_port);
        remove_matching(root.trim_end_matches('/'), owned_by_port);
    }
}

/// Removes the files (never folders) in `dir` whose names match.
fn remove_matching(dir: &str, matches: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if matches(&name) && entry.file_type().is_ok_and(|t| !t.is_dir()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Another process cleaning the same dead node at the same moment is normal (several processes
/// start or stop at once); anything else is worth a warning.
fn log_cleanup_failure(e: iceoryx2::node::NodeCleanupFailure) {
    use iceoryx2::node::NodeCleanupFailure as F;
    match e {
        F::AnotherInstanceIsCleaningUpTheNode | F::ResourcesAlreadyCleanedUp => {
            tracing::debug!("a dead node's resources are being removed by another process: {e:?}")
        }
        e => tracing::warn!("could not remove a dead node's resources: {e:?}"),
    }
}

/// Calls [`release_if_last`] when dropped: declare it before the node so it runs after the
/// node is gone.
#[derive(Debug)]
pub struct DeploymentGuard {
    deployment: String,
}

impl DeploymentGuard {
    /// A guard for `deployment`.
    pub fn new(deployment: &str) -> DeploymentGuard {
        DeploymentGuard { deployment: deployment.to_string() }
    }
}

impl Drop for DeploymentGuard {
    fn drop(&mut self) {
        release_if_last(&self.deployment);
    }
}

/// Creates the node of one process (`role` of `camera`) and removes what dead processes of the
/// deployment left behind (their shared memory and service registrations), so a restart needs
/// no manual clean-up. SIGINT/SIGTERM are owned by [`crate::signals`] (installed here), not by
/// iceoryx2: a wait interrupted by a signal returns, and the caller looks at
/// [`signals::termination_requested`].
pub fn create_node(deployment: &Deployment, role: &str, camera: &str) -> Result<Node<IpcService>, IpcError> {
    create_named_node(deployment.name(), &node_name(role, camera))
}

/// Like [`create_node`] for a process that is not tied to a camera (ctl, supervisor, tests),
/// or for a second node of a process (a reader's control thread).
pub fn create_named_node(deployment: &str, name: &str) -> Result<Node<IpcService>, IpcError> {
    signals::install();
    create_named_node_with(deployment, name, SignalHandlingMode::Disabled)
}

/// Like [`create_named_node`] with a choice of signal handling and without installing
/// framebus's handlers: ctl's one-shot commands pass `HandleTerminationRequests` so that
/// Ctrl-C ends their waits, a process owning its signals otherwise passes `Disabled`.
pub fn create_named_node_with(
    deployment: &str,
    name: &str,
    signals: SignalHandlingMode,
) -> Result<Node<IpcService>, IpcError> {
    let config = iceoryx_config(deployment)?;
    let removed = remove_dead_nodes(&config);
    if removed > 0 {
        tracing::info!(deployment, removed, "removed resources of dead processes");
    }
    build_node(deployment, name, signals, config)
}

/// The node of a short-lived client (a `ctl` command): like [`create_named_node`], but it does
/// not look for dead nodes when created or dropped. Each look reads every node's files, so a
/// burst of 150 commands would cost quadratic time; hold a [`DeploymentGuard`], whose single
/// look when the command ends removes dead nodes and releases the deployment if it was last.
pub fn create_client_node(deployment: &str, name: &str) -> Result<Node<IpcService>, IpcError> {
    signals::install();
    let mut config = iceoryx_config(deployment)?;
    config.global.node.cleanup_dead_nodes_on_destruction = false;
    build_node(deployment, name, SignalHandlingMode::Disabled, config)
}

fn build_node(
    deployment: &str,
    name: &str,
    signals: SignalHandlingMode,
    config: Config,
) -> Result<Node<IpcService>, IpcError> {
    let node_name = NodeName::new(name).map_err(|e| IpcError::new(format!("invalid node name `{name}`"), e))?;
    // Before the first page of shared memory is touched: a full /dev/shm is an exit 75.
    signals::install_sigbus();
    secure_root(deployment)?;
    install_global_config(&config);
    node_counter::secure(deployment, &config)?;
    let node = NodeBuilder::new()
        .name(&node_name)
        .config(&config)
        .signal_handling_mode(signals)
        .create::<IpcService>()
        .map_err(|e| {
            let context = format!("creating iceoryx2 node `{name}` of deployment `{deployment}`");
            match e {
                NodeCreationFailure::UnableToGenerateUniqueNodeId => {
                    IpcError::new(format!("{context}: {}", node_counter::failure_hint(deployment)), e)
                }
                e => IpcError::new(context, e),
            }
        })?;
    node_counter::recheck(deployment);
    Ok(node)
}

/// Removes the stale resources of every dead node that used `config`; returns how many.
pub fn remove_dead_nodes(config: &Config) -> usize {
    let mut removed = 0;
    let listed = Node::<IpcService>::list(config, |state| {
        if let NodeState::Dead(view) = state {
            let id = format!("{:?}", view.id());
            match view.try_remove_stale_resources() {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::debug!(node = id, "dead node not removed");
                    log_cleanup_failure(e)
                }
            }
        }
        CallbackProgression::Continue
    });
    if let Err(e) = listed {
        tracing::warn!("could not list iceoryx2 nodes: {e:?}");
    }
    removed
}

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
fn reader_slots_taken(
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

/// Publish/subscribe of a camera's encoded video: H.264 access units with their frame ids.
pub type EncodedPortFactory = publish_subscribe::PortFactory<IpcService, [u8], AccessUnitHeader>;

/// Opens (or creates) the encoded-video service of `camera` (streamer → media server and
/// recorder), sized from its config only ([`crate::encoded::encoded_layout`]). A slow
/// subscriber loses its oldest queued access units; the streamer never waits.
pub fn open_encoded(
    node: &Node<IpcService>,
    deployment: &str,
    camera: &CameraConfig,
) -> Result<EncodedPortFactory, IpcError> {
    let layout = crate::encoded::encoded_layout(camera);
    let name = service_name(deployment, &camera.name, ServiceKind::Encoded);
    node.service_builder(&to_service_name(&name)?)
        .publish_subscribe::<[u8]>()
        .user_header::<AccessUnitHeader>()
        .max_publishers(1)
        .max_subscribers(crate::encoded::ENCODED_MAX_SUBSCRIBERS)
        .subscriber_max_buffer_size(layout.queue)
        .subscriber_max_borrowed_samples(1)
        .history_size(0)
        .enable_safe_overflow(true)
        .max_nodes(crate::encoded::ENCODED_MAX_NODES)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// After the first node, iceoryx2's global config is the deployment's (its fallback paths
    /// then clean up in the deployment's folders, and it never warns about a missing file).
    #[test]
    fn the_first_node_installs_the_deployment_config_globally() {
        let deployment = format!("unit{}", std::process::id());
        let guard = DeploymentGuard::new(&deployment);
        let node = create_named_node(&deployment, "unit-test").expect("node");
        // The global config is set once per process: by this test's node, or by the node
        // counter's test when it ran first in this test binary. Either way a deployment's,
        // never iceoryx2's default.
        let first =
            [deployment.clone(), format!("nc{}", std::process::id())].map(|d| iceoryx_config(&d).expect("config"));
        assert!(first.contains(Config::global_config()), "{:?}", Config::global_config());
        assert_ne!(Config::global_config(), &Config::default());
        drop(node);
        drop(guard);
        assert!(!std::path::Path::new(&deployment_root(&deployment)).exists());
    }

    /// What a node killed half-made leaves: its monitor files, a folder with a port tag, the
    /// port's shared memory and socket. The fallback removes exactly those, never another
    /// node's or another deployment's files.
    #[test]
    fn a_dead_node_iceoryx2_cannot_clean_is_removed_by_its_files() {
        let deployment = format!("dn{}", std::process::id());
        let (root, prefix) = (deployment_root(&deployment), shm_prefix(&deployment));
        let (dead, alive, port, other_port) = (1234u128, 5678u128, "99887766", "11223344");
        let nodes = format!("{root}nodes");
        std::fs::create_dir_all(format!("{nodes}/{dead}")).expect("node folder");
        std::fs::create_dir_all(format!("{nodes}/{alive}")).expect("other node folder");
        let files = |id: u128| {
            [
                format!("{nodes}/{prefix}{id}.node_monitor"),
                format!("{nodes}/{prefix}{id}.node_monitor_context"),
                format!("{nodes}/{prefix}{id}.node_monitor_owner_lock"),
            ]
        };
        let dead_files = [
            files(dead).to_vec(),
            vec![
                format!("{nodes}/{dead}/{prefix}{port}.port_tag"),
                format!("/dev/shm/{prefix}abcdef_{port}.data"),
                format!("{root}{prefix}{port}.event"),
            ],
        ]
        .concat();
        let kept = [
            files(alive).to_vec(),
            vec![format!("/dev/shm/{prefix}abcdef_{other_port}.data"), format!("{root}{prefix}{other_port}.event")],
        ]
        .concat();
        for f in dead_files.iter().chain(&kept) {
            std::fs::write(f, b"x").expect(f);
        }
        remove_dead_node_files(&deployment, dead);
        for f in &dead_files {
            assert!(!std::path::Path::new(f).exists(), "{f} left");
        }
        assert!(!std::path::Path::new(&format!("{nodes}/{dead}")).exists());
        for f in &kept {
            assert!(std::path::Path::new(f).exists(), "{f} removed");
        }
        // Once no listed node is left (the caller's condition), a node folder is abandoned
        // only when old: a fresh one may be a node being created right now.
        let (half_made, minute_ago) = (4321u128, std::time::SystemTime::now() - Duration::from_secs(60));
        std::fs::create_dir(format!("{nodes}/{half_made}")).expect("half-made node folder");
        std::fs::write(format!("{nodes}/{half_made}/{prefix}node.details"), b"").expect("details");
        remove_abandoned_node_folders(&deployment);
        assert!(std::path::Path::new(&format!("{nodes}/{half_made}")).exists(), "a fresh folder is kept");
        std::fs::File::open(format!("{nodes}/{half_made}"))
            .and_then(|dir| dir.set_modified(minute_ago))
            .expect("age the folder");
        remove_abandoned_node_folders(&deployment);
        assert!(!std::path::Path::new(&format!("{nodes}/{half_made}")).exists(), "an old half-made node goes");
        assert!(std::path::Path::new(&format!("{nodes}/{alive}")).exists(), "a fresh one stays");
        for f in &kept {
            let _ = std::fs::remove_file(f);
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
