//! Capture's side of the control protocol: answering status and stop requests between frames,
//! and sleeping in slices so a request never waits long while capture paces or backs off.

use std::time::{Duration, Instant};

use framebus_common::control::{Answer, Command, ControlServer, Metrics, ProcessState};
use framebus_common::ipc::IpcService;
use iceoryx2::prelude::*;

use crate::source::FrameSource;

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
