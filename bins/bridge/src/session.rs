//! The Zenoh session of a bridge, configured from `[zenoh]` only: mode, endpoints, mutual TLS,
//! access control; multicast scouting off (a bridge talks to the endpoints its config names,
//! never to whatever answers on the LAN); short link lease and reconnect period, so a cut link
//! is seen within seconds and a link back is used within about one.

use anyhow::Context;
use framebus_common::config::{ZenohConfig, ZenohFiles};
use framebus_common::Deployment;
use serde_json::json;
use zenoh::Wait;

/// Milliseconds without traffic after which a link is declared dead.
const LINK_LEASE_MS: u64 = 3000;
/// Longest wait between two attempts to connect an endpoint.
const RECONNECT_MAX_MS: u64 = 500;
/// Longest a connection attempt may take (TCP and TLS handshakes, Zenoh's open): an attempt
/// started while the link was down is given up soon, so the next one, after the link is
/// back, comes within about a second (Zenoh's default is 10 s).
const OPEN_TIMEOUT_MS: u64 = 1000;
/// Receive buffer per link: a raw 1080p frame is 6 MB.
const RX_BUFFER_BYTES: u64 = 16 * 1024 * 1024;

/// Whether a session listens on the config's `listen` endpoints (the deployment's bridges) or
/// only connects (a short-lived client such as `ctl ... --origin`, which must not take the
/// port the running bridge holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listening {
    /// Listen on `[zenoh] listen`.
    Listen,
    /// Listen nowhere; connect only.
    ConnectOnly,
}

/// Zenoh's own config for `zenoh`, as JSON (the TLS files as [`Deployment::zenoh_files`] checked
/// and resolved them).
pub fn zenoh_config_json(zenoh: &ZenohConfig, files: &ZenohFiles, listening: Listening) -> serde_json::Value {
    let listen = match listening {
        Listening::Listen => zenoh.listen.clone(),
        Listening::ConnectOnly => Vec::new(),
    };
    let retry = json!({ "period_init_ms": 100, "period_max_ms": RECONNECT_MAX_MS, "period_increase_factor": 2 });
    let mut config = json!({
        "mode": zenoh.mode.name(),
        "listen": { "endpoints": listen, "retry": retry },
        "connect": { "endpoints": zenoh.connect, "retry": retry, "timeout_ms": -1, "exit_on_failure": false },
        "scouting": { "multicast": { "enabled": false }, "gossip": { "enabled": false } },
        "transport": { "unicast": { "open_timeout": OPEN_TIMEOUT_MS }, "link": {
            "tx": { "lease": LINK_LEASE_MS, "keep_alive": 4 },
            "rx": { "buffer_size": RX_BUFFER_BYTES },
        } },
    });
    if let Some((ca, certificate, key)) = &files.tls {
        let path = |p: &std::path::Path| p.display().to_string();
        config["transport"]["link"]["tls"] = json!({
            "root_ca_certificate": path(ca),
            "listen_certificate": path(certificate),
            "listen_private_key": path(key),
            "connect_certificate": path(certificate),
            "connect_private_key": path(key),
            "enable_mtls": true,
        });
    }
    config
}

/// Opens the session of `deployment`'s `[zenoh]` table.
pub fn open(deployment: &Deployment, listening: Listening) -> anyhow::Result<zenoh::Session> {
    let file = deployment.source_file.display();
    let zenoh = deployment.zenoh.as_ref().with_context(|| format!("{file}: no [zenoh] table: nothing to bridge"))?;
    // Checked again here, not only at load: the files may have changed since.
    let files = deployment.zenoh_files()?;
    let json = zenoh_config_json(zenoh, &files, listening);
    let mut config = zenoh::Config::from_json5(&json.to_string())
        .map_err(|e| anyhow::anyhow!("{file}: [zenoh]: Zenoh refused the config: {e}"))?;
    if let (Some(text), Some(path)) = (&files.access_control, &zenoh.access_control) {
        config.insert_json5("access_control", text).map_err(|e| {
            anyhow::anyhow!(
                "{file}: zenoh.access-control: `{}` is not a Zenoh access_control section: {e}",
                deployment.resolve_path(path).display()
            )
        })?;
    }
    zenoh::open(config).wait().map_err(|e| {
        anyhow::anyhow!(
            "{file}: [zenoh]: opening the session (listen {:?}, connect {:?}): {e}",
            zenoh.listen,
            zenoh.connect
        )
    })
}

/// Zenoh peers and routers this session has a link to right now.
pub fn peers(session: &zenoh::Session) -> usize {
    session.info().peers_zid().wait().count() + session.info().routers_zid().wait().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connect-only session (`ctl ... --origin`) listens nowhere, so it never takes the port
    /// of the deployment's running bridge; the bridges listen where the config says.
    #[test]
    fn only_the_bridges_listen() {
        let zenoh: ZenohConfig =
            toml::from_str("site = \"hq\"\nlisten = [\"tcp/127.0.0.1:17448\"]\nconnect = [\"tcp/127.0.0.1:7447\"]\n")
                .expect("a [zenoh] table");
        let files = ZenohFiles::default();
        let listen = |l| zenoh_config_json(&zenoh, &files, l)["listen"]["endpoints"].clone();
        assert_eq!(listen(Listening::Listen), json!(["tcp/127.0.0.1:17448"]));
        assert_eq!(listen(Listening::ConnectOnly), json!([]));
        assert_eq!(
            zenoh_config_json(&zenoh, &files, Listening::ConnectOnly)["connect"]["endpoints"],
            json!(["tcp/127.0.0.1:7447"])
        );
    }
}
