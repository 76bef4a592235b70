//! `ctl record on|off <camera> --origin` and `ctl preview on|off <camera> --origin`: for a
//! `[[remote-camera]]`, the switch goes to the recorder (or preview) of the camera it imports,
//! on the other host, through Zenoh ([`framebus_bridge::remote`]). Nothing is recorded here:
//! the origin records its own flag. Answered only where the origin's `[camera.export]` has
//! `allow-remote-control = true`.

use framebus_common::config::SourceConfig;
use framebus_common::control::Command;
use framebus_common::{Deployment, ProcessRole, Role};
use serde_json::json;

use crate::Outcome;

/// Sends `command` to the origin of `camera`; prints what it answered.
pub fn set_flag(
    deployment: &Deployment,
    json_output: bool,
    camera: &str,
    command: &Command,
) -> anyhow::Result<Outcome> {
    let actor = match command {
        Command::SetPreview(_) => ProcessRole::Preview,
        _ => ProcessRole::Recorder,
    };
    let cam = deployment.camera(Some(camera))?;
    let SourceConfig::Remote(source) = &cam.source else {
        anyhow::bail!(
            "camera `{camera}` is not a [[remote-camera]] of {}: --origin is for cameras imported from another host",
            deployment.source_file.display()
        );
    };
    let origin = format!("{}/{}/{}", source.site, source.deployment, source.camera);
    let (ok, message) = match framebus_bridge::remote::request(deployment, camera, &Role::from(actor), command) {
        Ok(reply) if reply.is_ok() => (true, reply.message_text()),
        Ok(reply) => (false, format!("refused: {}", reply.message_text())),
        Err(e) => (false, format!("{e:#}")),
    };
    if json_output {
        println!(
            "{}",
            json!({ "camera": camera, "origin": origin, "command": command.describe(), "role": actor.name(), "ok": ok, "message": message })
        );
    } else if ok {
        println!("{camera}: origin {origin} {actor}: {message}");
    } else {
        eprintln!("ctl: {camera}: origin {origin} {actor}: {message}");
    }
    Ok(if ok { Outcome::Done } else { Outcome::Incomplete })
}
