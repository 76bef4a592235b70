//! The media server's control service, `framebus/<deployment>/_deployment/mediaserver/control`
//! (camera [`DEPLOYMENT_SCOPE`]: one media server per deployment), served on a thread of its
//! own like every process's: `status` (state, pid, uptime, access units in and their rate,
//! viewers in all), `figures <camera>` (that camera's viewers per protocol, bytes out, access
//! units in, lost and skipped, from the [`Hub`], see [`framebus_common::figures`]) and `stop`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use framebus_common::control::{Answer, Command, ControlServer, Metrics, ProcessState};
use framebus_common::figures::Figures;
use framebus_common::ipc::create_named_node;
use framebus_common::names::{DeploymentProcess, DEPLOYMENT_SCOPE};
use framebus_common::stats::StatusWindow;
use framebus_common::{signals, Deployment};

use crate::hub::Hub;

/// Longest wait for a request before the thread looks at the stop flags again.
const TICK: Duration = Duration::from_millis(50);
/// Window of the access-unit rate reported as `fps`.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// The running control thread; stopped and joined by [`Control::stop`].
pub struct Control {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Control {
    /// Serves the media server's control service until [`Control::stop`]; returns once it
    /// serves (or why it could not: another media server of the deployment runs).
    pub fn start(deployment: &Deployment, hub: &Arc<Hub>, tls: bool, summary: String) -> anyhow::Result<Control> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
        let (deployment, hub, flag) = (deployment.clone(), Arc::clone(hub), Arc::clone(&stop));
        let handle = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                let role = DeploymentProcess::MediaServer.role();
                let started =
                    create_named_node(deployment.name(), &format!("mediaserver-control-{}", std::process::id()))
                        .and_then(|node| {
                            ControlServer::create(&node, &deployment, DEPLOYMENT_SCOPE, &role).map(|s| (node, s))
                        });
                let (_node, server) = match started {
                    Ok(started) => started,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                serve(&server, &hub, tls, &summary, &flag);
            })
            .context("starting the control thread")?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Control { stop, handle: Some(handle) }),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(e)
            }
            Err(_) => anyhow::bail!("the control thread ended before serving"),
        }
    }

    /// Stops serving and waits for the thread.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn serve(server: &ControlServer, hub: &Hub, tls: bool, summary: &str, stop: &AtomicBool) {
    let mut rate = StatusWindow::new(RATE_WINDOW);
    while !stop.load(Ordering::Relaxed) {
        rate.roll(hub.access_units_in());
        server.poll(|command| answer(command, hub, tls, summary, &mut rate));
        // An error (a signal interrupted the wait) only ends the wait early.
        let _ = server.listener().timed_wait(|_| {}, TICK);
    }
}

fn answer(command: Command, hub: &Hub, tls: bool, summary: &str, rate: &mut StatusWindow) -> Answer {
    match command {
        Command::Status => {
            let cameras: Vec<_> = hub.cameras().iter().filter_map(|c| hub.channel(c)).map(|c| c.figures(tls)).collect();
            let viewers: u32 = cameras.iter().map(|c| c.viewers.total()).sum();
            let publishing = cameras.iter().filter(|c| c.publishing).count();
            let frames = hub.access_units_in();
            rate.roll(frames);
            let flowing = rate.fps > 0.0 || rate.frames_in_open_window(frames) > 0;
            Answer::Status(Box::new(Metrics {
                state: if publishing > 0 && flowing { ProcessState::Running } else { ProcessState::Waiting },
                frames,
                fps: rate.fps,
                viewers,
                message: format!(
                    "{summary}; {publishing} of {} camera(s) publishing, {viewers} viewer(s)",
                    cameras.len()
                ),
                ..Metrics::default()
            }))
        }
        Command::Figures(camera) => match hub.channel(&camera) {
            Some(channel) => match Figures::MediaServer(channel.figures(tls)).to_message() {
                Ok(json) => Answer::Done(json),
                Err(e) => Answer::Refused(e.to_string()),
            },
            None => Answer::Refused(format!(
                "`figures {camera}`: the media server serves no camera `{camera}` (it serves: {})",
                hub.cameras().join(", ")
            )),
        },
        Command::Stop => {
            signals::request_termination();
            Answer::Done("stopping: viewers are disconnected".into())
        }
        _ => Answer::Ignored,
    }
}
