//! Capture's side of the control protocol: answering status and stop requests between frames,
//! sleeping in slices so a request never waits long while capture paces or backs off, and
//! camera controls ([`camera_controls`]: list, or set while capturing and record in the
//! camera's state).

use std::time::{Duration, Instant};

use framebus_common::config::ControlValue;
use framebus_common::control::{Answer, Command, ControlServer, Metrics, ProcessState};
use framebus_common::ipc::IpcService;
use framebus_common::state::StateStore;
use iceoryx2::prelude::*;

use crate::source::{ControlError, FrameSource};

/// What an operator asks of a camera's controls (`ctl control <camera> list|set k=v ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlsRequest {
    /// Every control with type, range, step, default, current value and menu items.
    List,
    /// Set these controls, in order, while capturing.
    Set(Vec<(String, ControlValue)>),
}

/// Carries out `request` on `source`: a listing, one control per line; or sets the controls
/// (all checked against the device first: nothing is set when one name or value is wrong, and
/// the error lists what the device offers), records what was set in the camera's state (so a
/// restarted capture sets it again; the source itself sets it again after a reconnect) and
/// reports what the device reads back, e.g. `set gain = 10, exposure_time_absolute = 300`.
pub fn camera_controls(
    source: &mut dyn FrameSource,
    store: &StateStore,
    camera: &str,
    request: &ControlsRequest,
) -> Result<String, ControlError> {
    match request {
        ControlsRequest::List => {
            let list = source.controls()?;
            if list.is_empty() {
                return Ok(format!("camera `{camera}` has no controls"));
            }
            Ok(list.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
        }
        ControlsRequest::Set(settings) => {
            let result = source.set_controls(settings);
            // What the device took is recorded even when a later setting failed.
            let applied = match &result {
                Ok(applied) | Err(ControlError::Partly { applied, .. }) => applied.len(),
                Err(_) => 0,
            };
            let applied_settings = &settings[..applied.min(settings.len())];
            let recorded = if applied_settings.is_empty() {
                Ok(Vec::new())
            } else {
                store.record_controls(camera, applied_settings)
            };
            let applied = result?;
            let text = applied
                .iter()
                .map(|a| {
                    if a.accepted == a.requested {
                        format!("{} = {}", a.name, a.accepted)
                    } else {
                        format!("{} = {} (asked {})", a.name, a.accepted, a.requested)
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            match recorded {
                Ok(_) => Ok(format!("set {text}")),
                Err(e) => Ok(format!("set {text}; not recorded for a restart: {e}")),
            }
        }
    }
}

/// Sleep slices between control polls: bounds how long a command waits while capture paces.
const CONTROL_SLICE: Duration = Duration::from_millis(20);

/// Capture's control server and what it reports.
pub(crate) struct Control {
    pub server: ControlServer,
    pub metrics: Metrics,
    pub stop: bool,
}

impl Control {
    /// Answers pending control requests. The source is at hand for commands that act on the
    /// camera.
    pub fn poll(&mut self, source: &mut dyn FrameSource) {
        let _ = source;
        let metrics = &self.metrics;
        let stop = &mut self.stop;
        self.server.poll(|command| match command {
            Command::Status => Answer::Status(metrics.clone()),
            Command::Stop => {
                *stop = true;
                Answer::Done("capture stopping".into())
            }
            // Capture carries the flags in its status; preview and recorder act on them.
            Command::SetPreview(_) | Command::SetSaving(_) => Answer::Ignored,
        });
        if self.stop {
            self.metrics.state = ProcessState::Stopping;
        }
    }

    /// Sleeps `duration` in slices, answering control requests in between (at least once);
    /// returns early after a stop command. `false` when termination was requested (signal).
    pub fn wait(&mut self, node: &Node<IpcService>, duration: Duration, source: &mut dyn FrameSource) -> bool {
        let until = Instant::now() + duration;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if node.wait(left.min(CONTROL_SLICE)).is_err() {
                return false;
            }
            self.poll(source);
            if self.stop || Instant::now() >= until {
                return true;
            }
        }
    }
}
