//! One control request to a process of the origin of a `[[remote-camera]]`, on another host,
//! over its `control` key (a Zenoh query): what `ctl record on|off <camera> --origin` and
//! `ctl preview on|off <camera> --origin` send. The origin answers only for a camera exported
//! with `allow-remote-control = true`, and never for stop, restart, start or logs; without it
//! nothing answers and the error says so.

use std::time::Duration;

use anyhow::Context;
use framebus_common::config::SourceConfig;
use framebus_common::control::{Command, ControlReply};
use framebus_common::names::{zenoh_key, Role, ZenohKind};
use framebus_common::Deployment;
use zenoh::Wait;

use crate::wire;

/// Longest wait for the answer (the origin waits up to 2 s for its local process).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a link to the origin before the request is sent.
const LINK_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `command` for the process `role` of the origin of the remote camera `camera` and
/// returns its reply (an error reply when the origin refused); an error when `camera` is not a
/// `[[remote-camera]]` or nothing answered within the bounded waits.
pub fn request(deployment: &Deployment, camera: &str, role: &Role, command: &Command) -> anyhow::Result<ControlReply> {
    let cam = deployment.camera(Some(camera))?;
    let SourceConfig::Remote(origin) = &cam.source else {
        anyhow::bail!(
            "camera `{camera}` is not a [[remote-camera]] of {}: --origin is for cameras imported from another host",
            deployment.source_file.display()
        );
    };
    let session = crate::session::open(deployment, crate::session::Listening::ConnectOnly)?;
    let until = std::time::Instant::now() + LINK_TIMEOUT;
    while crate::session::peers(&session) == 0 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut payload = role.as_str().as_bytes().to_vec();
    payload.push(0);
    payload.extend_from_slice(wire::bytes_of(&command.to_request(1)));
    let key = zenoh_key(&origin.site, &origin.deployment, &origin.camera, ZenohKind::Control);
    let replies = session
        .get(&key)
        .payload(payload)
        .timeout(ANSWER_TIMEOUT)
        .wait()
        .map_err(|e| anyhow::anyhow!("querying `{key}`: {e}"))?;
    let linked = crate::session::peers(&session) > 0;
    let reply = replies.recv().ok().and_then(|r| r.into_result().ok()).with_context(|| {
        if linked {
            format!(
                "no answer on `{key}` within {}s: camera `{}` is not exported with allow-remote-control = true there, or its bridge is busy with other requests (each waits up to 2 s for its process): try again",
                ANSWER_TIMEOUT.as_secs(),
                origin.camera
            )
        } else {
            format!(
                "no answer on `{key}`: no link to any peer came up within {}s: the origin is unreachable",
                LINK_TIMEOUT.as_secs()
            )
        }
    })?;
    let bytes = reply.payload().to_bytes();
    let (answer, _) = wire::read::<ControlReply>(&bytes).context("a malformed control reply")?;
    Ok(answer)
}
