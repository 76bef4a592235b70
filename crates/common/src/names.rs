//! The one place where iceoryx2 service names are derived from the config. Producers and
//! readers both call these functions, so names can never disagree.
//!
//! Layout: `framebus/<deployment>/<camera>/<what>`.

use core::fmt;

/// A framebus process kind; each serves its own control service per camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcessRole {
    /// Reads the camera and publishes frames.
    Capture,
    /// Runs the per-frame computation.
    Algo,
    /// Serves live preview images.
    Preview,
    /// Writes images and video to disk.
    Recorder,
    /// Encodes H.264 and publishes it on the camera's encoded service.
    Streamer,
}

impl ProcessRole {
    /// Every role, in start-up order.
    pub const ALL: [ProcessRole; 5] =
        [ProcessRole::Capture, ProcessRole::Algo, ProcessRole::Preview, ProcessRole::Recorder, ProcessRole::Streamer];

    /// Lower-case name, as used in service names, node names and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            ProcessRole::Capture => "capture",
            ProcessRole::Algo => "algo",
            ProcessRole::Preview => "preview",
            ProcessRole::Recorder => "recorder",
            ProcessRole::Streamer => "streamer",
        }
    }

    /// The built-in role called `name`, if any.
    pub fn from_name(name: &str) -> Option<ProcessRole> {
        ProcessRole::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl fmt::Display for ProcessRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Longest role name (it is part of service and node names, and of control replies).
pub const MAX_ROLE_NAME: usize = 24;

/// The name a process of a camera serves its control service under: a built-in role
/// (`capture`, `algo`, `preview`, `recorder`) or a user reader's own name (`motion`,
/// `plate-reader`, ...). Validated: 1 to [`MAX_ROLE_NAME`] characters of `a-z`, `0-9`, `-`,
/// `_`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Role(String);

/// Why a role name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reader role name `{name}`: use 1 to {MAX_ROLE_NAME} characters of a-z, 0-9, `-` and `_`, starting with a letter")]
pub struct RoleNameError {
    /// The refused name.
    pub name: String,
}

impl Role {
    /// A role by name: a built-in role's name or a user reader's.
    pub fn new(name: &str) -> Result<Role, RoleNameError> {
        let valid = !name.is_empty()
            && name.len() <= MAX_ROLE_NAME
            && name.as_bytes()[0].is_ascii_lowercase()
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if valid {
            Ok(Role(name.to_string()))
        } else {
            Err(RoleNameError { name: name.to_string() })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The built-in role this is, if it is one.
    pub fn builtin(&self) -> Option<ProcessRole> {
        ProcessRole::from_name(&self.0)
    }
}

impl From<ProcessRole> for Role {
    fn from(role: ProcessRole) -> Role {
        Role(role.name().to_string())
    }
}

impl PartialEq<ProcessRole> for Role {
    fn eq(&self, other: &ProcessRole) -> bool {
        self.0 == other.name()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What stands in place of a camera name in the names of services that belong to the whole
/// deployment (the supervisor's control service). No camera can be called so: camera names
/// start with a letter or a digit.
pub const DEPLOYMENT_SCOPE: &str = "_deployment";

/// A process of the whole deployment (one per deployment, not one per camera), such as the
/// media server. It serves its control service under [`DEPLOYMENT_SCOPE`] with its name as the
/// role (`framebus/<deployment>/_deployment/mediaserver/control`); `ctl status` and the metrics
/// ask it for its status and its figures (see [`crate::figures`]), and `ctl restart|start|logs
/// <name>` reach it through the supervisor. A new one (the bridge) adds a variant here, its
/// figures in [`crate::figures`], and when the config has it in
/// [`crate::Deployment::deployment_processes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeploymentProcess {
    /// The media server (`[media-server]`): fans each camera's H.264 stream out to viewers.
    MediaServer,
    /// The bridge (`[zenoh]` and a camera with `[camera.export]`): exports cameras to other
    /// hosts over Zenoh (docs/multi-host.md).
    Bridge,
}

impl DeploymentProcess {
    /// Every per-deployment process, in start-up order.
    pub const ALL: [DeploymentProcess; 2] = [DeploymentProcess::MediaServer, DeploymentProcess::Bridge];

    /// Its name: the role of its control service, its binary, and what `ctl restart` takes.
    pub fn name(self) -> &'static str {
        match self {
            DeploymentProcess::MediaServer => "mediaserver",
            DeploymentProcess::Bridge => BRIDGE_ROLE,
        }
    }

    /// The per-deployment process called `name`, if any.
    pub fn from_name(name: &str) -> Option<DeploymentProcess> {
        DeploymentProcess::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Its control role.
    pub fn role(self) -> Role {
        Role(self.name().to_string())
    }
}

impl fmt::Display for DeploymentProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The role name of the supervisor (`ctl up`) on its control service
/// (`framebus/<deployment>/_deployment/supervisor/control`, see [`DEPLOYMENT_SCOPE`]).
pub const SUPERVISOR_ROLE: &str = "supervisor";

/// A service of one camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind<'a> {
    /// Publish/subscribe: frames (`[u8]` payload with a `FrameHeader` user header).
    Frames,
    /// Event: capture notifies after each sent frame, readers wait on it.
    FrameReady,
    /// Publish/subscribe: algorithm results about the camera's frames (`ResultRecord`).
    Results,
    /// Event: every producer notifies after it sends a result; the bridge's exporter waits on
    /// it instead of polling.
    ResultsReady,
    /// Publish/subscribe: the streamer's H.264 access units (`[u8]` payload with an
    /// `AccessUnitHeader` user header), read by the recorder with `video = "stream"`.
    Encoded,
    /// Request/response: commands to one process (by role name) of the camera.
    Control(&'a str),
    /// Event: a client notifies after sending a control request, the server wakes on it.
    ControlReady(&'a str),
}

/// The iceoryx2 service name of `kind` for `camera` in `deployment`.
pub fn service_name(deployment: &str, camera: &str, kind: ServiceKind<'_>) -> String {
    let base = format!("framebus/{deployment}/{camera}");
    match kind {
        ServiceKind::Frames => format!("{base}/frames"),
        ServiceKind::FrameReady => format!("{base}/frames/ready"),
        ServiceKind::Results => format!("{base}/results"),
        ServiceKind::ResultsReady => format!("{base}/results/ready"),
        ServiceKind::Encoded => format!("{base}/encoded"),
        ServiceKind::Control(role) => format!("{base}/{role}/control"),
        ServiceKind::ControlReady(role) => format!("{base}/{role}/control/ready"),
    }
}

/// The camera and role of a control service name of `deployment` (the inverse of
/// [`service_name`] for [`ServiceKind::Control`]); `None` for any other name. `ctl status`
/// finds user readers through it.
pub fn parse_control_service(deployment: &str, name: &str) -> Option<(String, Role)> {
    let rest = name.strip_prefix("framebus/")?.strip_prefix(deployment)?.strip_prefix('/')?;
    let rest = rest.strip_suffix("/control")?;
    let (camera, role) = rest.split_once('/')?;
    let role = Role::new(role).ok()?;
    (!camera.is_empty() && !camera.contains('/')).then(|| (camera.to_string(), role))
}

/// The role name of the bridge (`bins/bridge`): its control service is
/// `framebus/<deployment>/_deployment/bridge/control`, and the reader it runs on a camera
/// whose raw frames are exported is called so.
pub const BRIDGE_ROLE: &str = "bridge";

/// What a Zenoh key expression of a camera carries (docs/multi-host.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZenohKind {
    /// Raw frames: a [`crate::FrameHeader`] then the pixels.
    Frames,
    /// H.264 access units of the camera's streamer.
    Encoded,
    /// The camera's results ([`crate::results::ResultRecord`] bytes).
    Results,
    /// Results other hosts send back about the camera's frames.
    ResultsBack,
    /// The recorder's events (journal records, JSON).
    Events,
    /// The camera's status (JSON, once a second).
    Status,
    /// Control requests of other hosts (a Zenoh query; the reply is the control reply).
    Control,
}

impl ZenohKind {
    /// The last part of the key.
    pub fn name(self) -> &'static str {
        match self {
            ZenohKind::Frames => "frames",
            ZenohKind::Encoded => "encoded",
            ZenohKind::Results => "results",
            ZenohKind::ResultsBack => "results-back",
            ZenohKind::Events => "events",
            ZenohKind::Status => "status",
            ZenohKind::Control => "control",
        }
    }
}

/// The Zenoh key expression of `kind` for `camera` of `deployment` at `site`:
/// `framebus/<site>/<deployment>/<camera>/<kind>`. Every name part is a validated config
/// name (no `/`, `*`, `$`, `?` or `#`), so the key is always a plain key expression.
pub fn zenoh_key(site: &str, deployment: &str, camera: &str, kind: ZenohKind) -> String {
    format!("framebus/{site}/{deployment}/{camera}/{}", kind.name())
}

/// The iceoryx2 node name of a process (shown by `iox2 node list`).
pub fn node_name(role: &str, camera: &str) -> String {
    format!("{role}-{camera}")
}

/// Prefix of every file iceoryx2 creates for `deployment` (in /dev/shm and its root folder).
pub fn shm_prefix(deployment: &str) -> String {
    format!("framebus_{deployment}_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_deployment_camera_and_role() {
        assert_eq!(service_name("lab", "cam0", ServiceKind::Frames), "framebus/lab/cam0/frames");
        assert_eq!(service_name("lab", "cam0", ServiceKind::FrameReady), "framebus/lab/cam0/frames/ready");
        assert_eq!(
            service_name("lab", "cam1", ServiceKind::Control(ProcessRole::Recorder.name())),
            "framebus/lab/cam1/recorder/control"
        );
        assert_ne!(service_name("a", "cam0", ServiceKind::Frames), service_name("b", "cam0", ServiceKind::Frames));
        let encoded = service_name("lab", "cam0", ServiceKind::Encoded);
        assert_eq!(encoded, "framebus/lab/cam0/encoded");
        assert_eq!(parse_control_service("lab", &encoded), None, "not taken for a reader's control service");
        assert_eq!(
            service_name("lab", DEPLOYMENT_SCOPE, ServiceKind::Control(SUPERVISOR_ROLE)),
            "framebus/lab/_deployment/supervisor/control"
        );
    }

    /// Zenoh keys live under one prefix and carry site, deployment and camera.
    #[test]
    fn zenoh_keys_carry_site_deployment_and_camera() {
        assert_eq!(zenoh_key("hq", "lab", "cam0", ZenohKind::Frames), "framebus/hq/lab/cam0/frames");
        assert_eq!(zenoh_key("hq", "lab", "cam0", ZenohKind::ResultsBack), "framebus/hq/lab/cam0/results-back");
        assert_eq!(zenoh_key("hq", "lab", DEPLOYMENT_SCOPE, ZenohKind::Status), "framebus/hq/lab/_deployment/status");
    }

    /// A control service name parses back into its camera and role; other names do not.
    #[test]
    fn control_service_names_parse_back() {
        let name = service_name("lab", "cam1", ServiceKind::Control("plate-reader"));
        assert_eq!(
            parse_control_service("lab", &name),
            Some(("cam1".into(), Role::new("plate-reader").expect("role")))
        );
        assert_eq!(parse_control_service("other", &name), None);
        assert_eq!(parse_control_service("lab", "framebus/lab/cam1/frames"), None);
        assert_eq!(parse_control_service("lab", "framebus/lab/cam1/algo/control/ready"), None);
        assert_eq!(parse_control_service("lab", "framebus/lab/cam1/Bad Role/control"), None);
    }

    /// Role names are validated; built-in names map back to their role.
    #[test]
    fn role_names_are_validated() {
        assert_eq!(Role::new("algo").expect("role").builtin(), Some(ProcessRole::Algo));
        assert_eq!(Role::new("motion-2").expect("role").builtin(), None);
        for bad in ["", "Motion", "2fast", "a/b", "with space", "abcdefghijklmnopqrstuvwxyz"] {
            assert!(Role::new(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
