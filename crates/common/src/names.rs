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
}

impl ProcessRole {
    /// Every role, in start-up order.
    pub const ALL: [ProcessRole; 4] =
        [ProcessRole::Capture, ProcessRole::Algo, ProcessRole::Preview, ProcessRole::Recorder];

    /// Lower-case name, as used in service names, node names and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            ProcessRole::Capture => "capture",
            ProcessRole::Algo => "algo",
            ProcessRole::Preview => "preview",
            ProcessRole::Recorder => "recorder",
        }
    }
}

impl fmt::Display for ProcessRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A service of one camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    /// Publish/subscribe: frames (`[u8]` payload with a `FrameHeader` user header).
    Frames,
    /// Event: capture notifies after each sent frame, readers wait on it.
    FrameReady,
    /// Request/response: commands to one process of the camera.
    Control(ProcessRole),
    /// Event: a client notifies after sending a control request, the server wakes on it.
    ControlReady(ProcessRole),
}

/// The iceoryx2 service name of `kind` for `camera` in `deployment`.
pub fn service_name(deployment: &str, camera: &str, kind: ServiceKind) -> String {
    let base = format!("framebus/{deployment}/{camera}");
    match kind {
        ServiceKind::Frames => format!("{base}/frames"),
        ServiceKind::FrameReady => format!("{base}/frames/ready"),
        ServiceKind::Control(role) => format!("{base}/{role}/control"),
        ServiceKind::ControlReady(role) => format!("{base}/{role}/control/ready"),
    }
}

/// The iceoryx2 node name of a process (shown by `iox2 node list`).
pub fn node_name(role: ProcessRole, camera: &str) -> String {
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
            service_name("lab", "cam1", ServiceKind::Control(ProcessRole::Recorder)),
            "framebus/lab/cam1/recorder/control"
        );
        assert_ne!(service_name("a", "cam0", ServiceKind::Frames), service_name("b", "cam0", ServiceKind::Frames));
    }
}
