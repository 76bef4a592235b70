//! Capture's side of the control protocol: answering status and stop requests between frames,
//! sleeping in slices so a request never waits long while capture paces or backs off, and
//! camera controls ([`camera_controls`]: list, or set while capturing and record in the
//! camera's state).

use std::time::{Duration, Instant};

use framebus_common::config::{parse_control_assignments, split_control_text, ControlValue};
use framebus_common::control::{Answer, Command, ControlServer, Metrics, ProcessState, MESSAGE_TEXT};
use framebus_common::ipc::IpcService;
use framebus_common::signals;
use framebus_common::state::StateStore;
use iceoryx2::prelude::*;

use crate::source::{ControlError, ControlInfo, FrameSource};

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
    /// The camera's state (controls set at runtime are recorded there).
    pub store: StateStore,
    /// Camera name.
    pub camera: String,
}

impl Control {
    /// Answers pending control requests. Camera-control commands act on the source between two
    /// frames.
    pub fn poll(&mut self, source: &mut dyn FrameSource) {
        let metrics = &self.metrics;
        let stop = &mut self.stop;
        let (store, camera) = (&self.store, self.camera.as_str());
        self.server.poll(|command| match command {
            Command::Status => Answer::Status(Box::new(metrics.clone())),
            Command::Stop => {
                *stop = true;
                Answer::Done("capture stopping".into())
            }
            // Capture carries the flags in its status; preview and recorder act on them. The
            // supervisor's commands are not for capture (refused by the server).
            Command::SetPreview(_)
            | Command::SetSaving(_)
            | Command::Restart(_)
            | Command::Start(_)
            | Command::Supervised(_)
            | Command::Logs(..)
            | Command::Figures(_) => Answer::Ignored,
            Command::ListControls(from) => match source.controls() {
                Ok(list) => Answer::Done(list_page(&list, from as usize, MESSAGE_TEXT)),
                Err(e) => Answer::Refused(format!("camera `{camera}`: {e}")),
            },
            Command::SetControls(text) => {
                let request = parse_control_assignments(&split_control_text(&text)).map(ControlsRequest::Set);
                match request.map_err(ControlError::Rejected).and_then(|r| camera_controls(source, store, camera, &r)) {
                    Ok(done) => {
                        tracing::info!(camera, "{done} (control request)");
                        Answer::Done(done)
                    }
                    Err(e) => Answer::Refused(format!("camera `{camera}`: {e}")),
                }
            }
        });
        if self.stop {
            self.metrics.state = ProcessState::Stopping;
        }
    }

    /// Sleeps `duration` in slices, answering control requests in between (at least once);
    /// returns early after a stop command. `false` when termination was requested (SIGINT or
    /// SIGTERM; any other signal, e.g. the SIGCONT after a SIGSTOP, only shortens a slice).
    pub fn wait(&mut self, node: &Node<IpcService>, duration: Duration, source: &mut dyn FrameSource) -> bool {
        let until = Instant::now() + duration;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            // An interrupted sleep returns early; whether it was a termination request is the
            // signal flag's to say, not the interruption's.
            let _ = node.wait(left.min(CONTROL_SLICE));
            if signals::termination_requested() {
                return false;
            }
            self.poll(source);
            if self.stop || Instant::now() >= until {
                return true;
            }
        }
    }
}

/// One reply's worth of the control list, from control `from`: `controls F-L of N: <control>;
/// <control>; ...` within `capacity` bytes (at least one control per page; a client asks again
/// from L+1 while L+1 < N).
pub fn list_page(list: &[ControlInfo], from: usize, capacity: usize) -> String {
    let total = list.len();
    if total == 0 {
        return "controls 0-0 of 0:".to_string();
    }
    let from = from.min(total - 1);
    let header = |last: usize| format!("controls {from}-{last} of {total}:");
    let mut body = String::new();
    let mut last = from;
    for (i, control) in list.iter().enumerate().skip(from) {
        let line = control.to_string();
        let grown = if body.is_empty() { format!(" {line}") } else { format!("{body}; {line}") };
        if i > from && header(i).len() + grown.len() > capacity {
            break;
        }
        body = grown;
        last = i;
    }
    format!("{}{body}", header(last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::ControlKind;

    fn control(i: usize) -> ControlInfo {
        ControlInfo {
            name: format!("control_{i}"),
            label: format!("Control {i}"),
            kind: ControlKind::Integer,
            minimum: 0,
            maximum: 255,
            step: 1,
            default: 128,
            current: Some(i as i64),
            menu: vec![],
            read_only: false,
            inactive: false,
        }
    }

    /// A long list is split into pages that each fit a reply; asking from the next index
    /// returns the rest; every control appears exactly once.
    #[test]
    fn a_long_control_list_is_paged_to_fit_a_reply() {
        let list: Vec<ControlInfo> = (0..40).map(control).collect();
        let mut seen = Vec::new();
        let mut from = 0;
        loop {
            let page = list_page(&list, from, 300);
            assert!(page.len() <= 300, "{page}");
            let (header, body) = page.split_once(": ").expect("header");
            let range = header.trim_start_matches("controls ").split(" of ").next().expect("range");
            let (first, last) = range.split_once('-').expect("first-last");
            let (first, last): (usize, usize) = (first.parse().expect("first"), last.parse().expect("last"));
            assert_eq!(first, from);
            seen.extend(body.split("; ").map(str::to_string));
            if last + 1 >= list.len() {
                break;
            }
            from = last + 1;
        }
        let want: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(seen, want);
        assert_eq!(list_page(&[], 0, 300), "controls 0-0 of 0:");
    }
}
