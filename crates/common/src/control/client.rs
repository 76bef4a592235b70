//! Sending control commands with a bounded wait. iceoryx2 accepts a request even when no server
//! exists and never answers it, so the client checks for a server before sending, resends when
//! the request reached none, and gives up at its own deadline, naming the service it tried.
//!
//! A process that runs but cannot take the request yet (all client places of its service taken
//! by a burst of other clients) is retried until the deadline, and a process that received the
//! request but did not reply in time is reported as busy ([`ControlError::is_busy`]), never as
//! not running.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use iceoryx2::pending_response::PendingResponse;
use iceoryx2::port::client::Client;
use iceoryx2::prelude::*;

use super::{Command, ControlReply, ControlRequest};
use iceoryx2::service::port_factory::client::ClientCreateError;

use crate::ipc::{
    connect_control, iceoryx_config, remove_dead_nodes, ControlServices, IpcError, IpcService, CONTROL_MAX_CLIENTS,
};
use crate::names::{service_name, Role, ServiceKind};
use crate::signals;

/// One process of one camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Camera name.
    pub camera: String,
    /// Process role.
    pub role: Role,
}

impl Target {
    /// The process `role` of `camera`.
    pub fn new(camera: &str, role: impl Into<Role>) -> Target {
        Target { camera: camera.to_string(), role: role.into() }
    }
}

/// Why a command got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// Nothing served the control service before the deadline.
    #[error("{role} of camera `{camera}` is not running: no server on `{service}` within {:.1}s ({detail})", waited.as_secs_f64())]
    NotRunning {
        /// Camera name.
        camera: String,
        /// Process role.
        role: Role,
        /// The service tried.
        service: String,
        /// How long the client waited.
        waited: Duration,
        /// What was seen last.
        detail: String,
    },
    /// A server received the request but did not reply before the deadline: the process runs
    /// but is busy (many requests at once, no CPU time) or paused.
    #[error("{role} of camera `{camera}` is busy: it received the request on `{service}` but did not reply within {:.1}s (too many requests at once, no CPU time, or paused); try again or raise --timeout", waited.as_secs_f64())]
    Timeout {
        /// Camera name.
        camera: String,
        /// Process role.
        role: Role,
        /// The service tried.
        service: String,
        /// How long the client waited.
        waited: Duration,
    },
    /// The process serves its control service, but too many clients were connected to it
    /// until the deadline.
    #[error("{role} of camera `{camera}` is busy: it serves `{service}` but {detail} until the deadline ({:.1}s); try again or raise --timeout", waited.as_secs_f64())]
    Busy {
        /// Camera name.
        camera: String,
        /// Process role.
        role: Role,
        /// The service tried.
        service: String,
        /// How long the client waited.
        waited: Duration,
        /// What was seen last.
        detail: String,
    },
    /// An iceoryx2 operation failed.
    #[error("{0}")]
    Ipc(IpcError),
}

impl ControlError {
    /// Whether the process runs but did not answer in time ([`ControlError::Timeout`],
    /// [`ControlError::Busy`]): not a dead process, trying again may succeed.
    pub fn is_busy(&self) -> bool {
        matches!(self, ControlError::Timeout { .. } | ControlError::Busy { .. })
    }
}

type ControlClientPort = Client<IpcService, ControlRequest, (), ControlReply, ()>;
type Pending = PendingResponse<IpcService, ControlRequest, (), ControlReply, ()>;

enum Slot {
    /// Not sent yet; `busy` when the last attempt hit a capacity limit (the server is there),
    /// `retry_at` spaces out attempts then.
    Connecting {
        services: Option<ControlServices>,
        detail: String,
        busy: bool,
        retry_at: Instant,
    },
    // Field order is drop order: the pending response before its client, the client before the service.
    Waiting {
        pending: Pending,
        nonce: u64,
        _client: ControlClientPort,
        _services: ControlServices,
    },
    Done(Box<Result<ControlReply, ControlError>>),
}

impl Slot {
    fn failed(e: IpcError) -> Slot {
        if e.busy {
            return Slot::busy(e.to_string());
        }
        Slot::Done(Box::new(Err(ControlError::Ipc(e))))
    }

    fn connecting(services: Option<ControlServices>, detail: &str) -> Slot {
        Slot::Connecting { services, detail: detail.to_string(), busy: false, retry_at: Instant::now() }
    }

    /// A capacity limit was hit: try again a little later (spread over the clients waiting).
    fn busy(detail: String) -> Slot {
        let jitter = Duration::from_micros(u64::from(std::process::id() % 8 + 1) * 2_000);
        Slot::Connecting { services: None, detail, busy: true, retry_at: Instant::now() + jitter }
    }
}

static NONCE: AtomicU32 = AtomicU32::new(1);

/// Sends commands to processes of one deployment.
#[derive(Debug)]
pub struct ControlClient<'node> {
    node: &'node Node<IpcService>,
    deployment: String,
}

impl<'node> ControlClient<'node> {
    /// A client using `node` (of the deployment named `deployment`).
    pub fn new(node: &'node Node<IpcService>, deployment: &str) -> ControlClient<'node> {
        ControlClient { node, deployment: deployment.to_string() }
    }

    /// Sends `command` to one process and waits at most `timeout` for its reply.
    pub fn send(&self, target: &Target, command: &Command, timeout: Duration) -> Result<ControlReply, ControlError> {
        let mut results = self.send_all(std::slice::from_ref(target), command, timeout);
        results.pop().unwrap_or_else(|| Err(ControlError::Ipc(IpcError::new("sending a command", "no result"))))
    }

    /// Sends `command` to every target at once and waits at most `timeout` in total; one result
    /// per target, in order. A target whose service has no server yet is retried until the
    /// deadline (it may be starting).
    pub fn send_all(
        &self,
        targets: &[Target],
        command: &Command,
        timeout: Duration,
    ) -> Vec<Result<ControlReply, ControlError>> {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut slots: Vec<Slot> = targets.iter().map(|_| Slot::connecting(None, "service does not exist")).collect();
        // Polled, so the pause grows (1, 2, 4, 8, 10 ms): a reply usually comes within the first
        // rounds, and a burst of waiting clients does not keep the CPUs busy polling.
        let mut pause = Duration::from_millis(1);
        let mut swept = false;
        loop {
            // Places held by clients that were killed (SIGKILL) stay taken until someone removes
            // their dead nodes: do it once when places are missing, then keep retrying.
            if !swept && slots.iter().any(|s| matches!(s, Slot::Connecting { busy: true, .. })) {
                swept = true;
                if let Ok(config) = iceoryx_config(&self.deployment) {
                    remove_dead_nodes(&config);
                }
            }
            for (slot, target) in slots.iter_mut().zip(targets) {
                let next = match std::mem::replace(slot, Slot::Done(Box::new(Ok(ControlReply::empty())))) {
                    waiting @ Slot::Connecting { busy: true, retry_at, .. } if Instant::now() < retry_at => waiting,
                    Slot::Connecting { services, .. } => self.connect(target, services, command),
                    Slot::Waiting { _services, _client, pending, nonce } => match pending.receive() {
                        Ok(Some(response)) if response.payload().nonce == nonce => {
                            Slot::Done(Box::new(Ok(*response.payload())))
                        }
                        Ok(_) if pending.number_of_server_connections() == 0 || !pending.is_connected() => {
                            Slot::connecting(None, "the server went away before replying")
                        }
                        Ok(_) => Slot::Waiting { _services, _client, pending, nonce },
                        Err(e) => {
                            Slot::failed(IpcError::new(format!("receiving the reply on `{}`", self.service(target)), e))
                        }
                    },
                    done @ Slot::Done(_) => done,
                };
                *slot = next;
            }
            let pending = slots.iter().any(|s| !matches!(s, Slot::Done(_)));
            // A signal ends the wait early; only SIGINT/SIGTERM end the command.
            let interrupted = pending && self.node.wait(pause).is_err() && signals::termination_requested();
            pause = (pause * 2).min(Duration::from_millis(10));
            if !pending || interrupted || Instant::now() >= deadline {
                break;
            }
        }
        let waited = started.elapsed();
        slots
            .into_iter()
            .zip(targets)
            .map(|(slot, target)| match slot {
                Slot::Done(result) => *result,
                Slot::Connecting { detail, busy: true, .. } => Err(ControlError::Busy {
                    camera: target.camera.clone(),
                    role: target.role.clone(),
                    service: self.service(target),
                    waited,
                    detail,
                }),
                Slot::Connecting { detail, .. } => Err(ControlError::NotRunning {
                    camera: target.camera.clone(),
                    role: target.role.clone(),
                    service: self.service(target),
                    waited,
                    detail,
                }),
                Slot::Waiting { .. } => Err(ControlError::Timeout {
                    camera: target.camera.clone(),
                    role: target.role.clone(),
                    service: self.service(target),
                    waited,
                }),
            })
            .collect()
    }

    fn service(&self, target: &Target) -> String {
        service_name(&self.deployment, &target.camera, ServiceKind::Control(target.role.as_str()))
    }

    /// One connection attempt: open the service, check for a server, send, notify.
    fn connect(&self, target: &Target, services: Option<ControlServices>, command: &Command) -> Slot {
        let services = match services {
            Some(services) => services,
            None => match connect_control(self.node, &self.deployment, &target.camera, target.role.as_str()) {
                Ok(Some(services)) => services,
                Ok(None) => return Slot::connecting(None, "service does not exist"),
                Err(e) => return Slot::failed(e),
            },
        };
        if !services.has_server() {
            return Slot::connecting(Some(services), "the service exists but has no server");
        }
        let client = match services.requests.client_builder().create() {
            Ok(client) => client,
            Err(e @ ClientCreateError::ExceedsMaxSupportedClients) => {
                return Slot::busy(format!("all {CONTROL_MAX_CLIENTS} client places were taken ({e:?})"))
            }
            Err(e) => {
                let mut error = IpcError::new(format!("creating a client of `{}`", services.name), e);
                // In a full /dev/shm the client's segment may fail to be made: say why. (A page
                // that cannot be backed later is an exit 75, see `signals::install_sigbus`.)
                if let Some(short) =
                    crate::shm_budget::short_of(crate::ipc::CONTROL_BYTES_PER_PROCESS, "a control client")
                {
                    error.cause = format!("{}: {short}", error.cause);
                }
                return Slot::failed(error);
            }
        };
        let nonce = u64::from(std::process::id()) << 32 | u64::from(NONCE.fetch_add(1, Ordering::Relaxed));
        let pending = match client.send_copy(command.to_request(nonce)) {
            Ok(pending) => pending,
            Err(e) => {
                return Slot::failed(IpcError::new(
                    format!("sending `{}` to `{}`", command.describe(), services.name),
                    e,
                ))
            }
        };
        if pending.number_of_server_connections() == 0 {
            // The server is not connected to this client yet (or just left): send again next round.
            return Slot::connecting(None, "the request reached no server");
        }
        // Wake a server sleeping in a waitset; one polling in its loop finds the request anyway.
        if let Some(ready) = &services.ready {
            match ready.notifier_builder().create() {
                Ok(notifier) => {
                    if let Err(e) = notifier.notify() {
                        tracing::debug!(service = services.name, "control notify failed: {e:?}");
                    }
                }
                Err(e) => tracing::debug!(service = services.name, "control notifier: {e:?}"),
            }
        }
        Slot::Waiting { _services: services, _client: client, pending, nonce }
    }
}
