//! `bridge --remote <site>/<deployment>/<camera> [--role R] <command>`: one control request to
//! a process of a camera of another site, over its `control` key (a Zenoh query). The site
//! answers only for a camera exported with `allow-remote-control = true`; without that
//! nothing answers and this says so.

use std::time::Duration;

use anyhow::{bail, Context};
use framebus_common::control::{Command, ControlReply};
use framebus_common::names::{zenoh_key, Role, ZenohKind};
use framebus_common::Deployment;
use zenoh::Wait;

use crate::wire;

/// Longest wait for the answer (the site waits up to 2 s for its local process).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a link to the site before the request is sent.
const LINK_TIMEOUT: Duration = Duration::from_secs(5);

/// The command of `words`.
pub fn parse_command(words: &[String]) -> anyhow::Result<Command> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    Ok(match words.as_slice() {
        [] | ["status"] => Command::Status,
        ["record", "on"] => Command::SetSaving(true),
        ["record", "off"] => Command::SetSaving(false),
        ["preview", "on"] => Command::SetPreview(true),
        ["preview", "off"] => Command::SetPreview(false),
        other => bail!("unknown remote command `{}`: use status, record on|off or preview on|off", other.join(" ")),
    })
}

/// Sends the request, prints the reply's message; an error when refused or unanswered.
pub fn run(deployment: &Deployment, target: &str, role: &str, words: &[String]) -> anyhow::Result<()> {
    let parts: Vec<&str> = target.split('/').collect();
    let [site, origin, camera] = parts.as_slice() else {
        bail!("--remote `{target}`: use <site>/<deployment>/<camera>");
    };
    let role = Role::new(role)?;
    let command = parse_command(words)?;
    let session = crate::session::open(deployment)?;
    let until = std::time::Instant::now() + LINK_TIMEOUT;
    while crate::session::peers(&session) == 0 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut payload = role.as_str().as_bytes().to_vec();
    payload.push(0);
    payload.extend_from_slice(wire::bytes_of(&command.to_request(1)));
    let key = zenoh_key(site, origin, camera, ZenohKind::Control);
    let replies = session
        .get(&key)
        .payload(payload)
        .timeout(ANSWER_TIMEOUT)
        .wait()
        .map_err(|e| anyhow::anyhow!("querying `{key}`: {e}"))?;
    let reply = replies
        .recv()
        .ok()
        .and_then(|r| r.into_result().ok())
        .context(format!(
            "no answer on `{key}`: the site is unreachable, or camera `{camera}` is not exported with allow-remote-control = true"
        ))?;
    let bytes = reply.payload().to_bytes();
    let (answer, _) = wire::read::<ControlReply>(&bytes).context("a malformed control reply")?;
    println!("{target} {role}: {}", answer.message_text());
    if !answer.is_ok() {
        bail!("refused: {}", answer.message_text());
    }
    Ok(())
}
