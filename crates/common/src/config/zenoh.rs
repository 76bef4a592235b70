//! `[zenoh]`: the deployment's link to other hosts (the `bridge` process, docs/multi-host.md):
//! endpoints to listen on and connect to, the Zenoh mode, mutual-TLS files and the site name
//! that starts every key expression the deployment publishes.
//!
//! Default: listen on 127.0.0.1 only. A listener or a peer beyond loopback over plain `tcp/`
//! is refused unless `allow-plaintext = true`: frames, results and control would cross the
//! network readable and forgeable by anyone on the path.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::files::Access;
use super::tls::{CERTIFICATE_PEM, PRIVATE_KEY_PEM};
use super::{ConfigError, Deployment, Invalid};

/// `[zenoh]`: how the deployment's bridge joins the Zenoh network.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ZenohConfig {
    /// This deployment's site (the second part of every key expression it publishes, see
    /// [`crate::names::zenoh_key`]); a remote camera names it.
    pub site: String,
    /// Zenoh mode: `peer` (default), `client` or `router`.
    #[serde(default)]
    pub mode: ZenohMode,
    /// Endpoints to listen on (`tcp/127.0.0.1:7447`, `tls/0.0.0.0:7447`); default loopback only.
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// Endpoints of other sites (or a router) to connect to.
    #[serde(default)]
    pub connect: Vec<String>,
    /// `[zenoh.tls]`: mutual TLS for `tls/` endpoints.
    #[serde(default)]
    pub tls: Option<ZenohTls>,
    /// Accept `tcp/` endpoints beyond loopback (plain text on the network).
    #[serde(default)]
    pub allow_plaintext: bool,
    /// Zenoh access-control file (JSON5, Zenoh's own `access_control` section), relative to
    /// the config file; none = no access control beyond TLS.
    #[serde(default)]
    pub access_control: Option<PathBuf>,
}

/// `[zenoh] mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ZenohMode {
    /// Talks to the peers it connects to and that connect to it.
    #[default]
    Peer,
    /// Talks only through the router it connects to.
    Client,
    /// Routes for clients and other routers.
    Router,
}

impl ZenohMode {
    /// The mode's name in Zenoh's own config.
    pub fn name(self) -> &'static str {
        match self {
            ZenohMode::Peer => "peer",
            ZenohMode::Client => "client",
            ZenohMode::Router => "router",
        }
    }
}

/// `[zenoh.tls]`: PEM files of mutual TLS, relative to the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ZenohTls {
    /// The certificate authority both sides' certificates are signed by.
    pub ca: PathBuf,
    /// This site's certificate chain.
    pub certificate: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// The files `[zenoh]` names, read and checked ([`Deployment::zenoh_files`]).
#[derive(Debug, Clone, Default)]
pub struct ZenohFiles {
    /// `[zenoh.tls]` files, resolved against the config's folder: (ca, certificate, key).
    pub tls: Option<(PathBuf, PathBuf, PathBuf)>,
    /// The text of `access-control` (Zenoh's own `access_control` section).
    pub access_control: Option<String>,
}

impl Deployment {
    /// The files of `[zenoh]`, checked now (`Ok(default)` without `[zenoh]`): the TLS authority
    /// and certificate are PEM certificates that not every user may change, the key a PEM key
    /// only its owner (and group) may read, the access-control file one that not every user may
    /// change (a changed rule would let anyone in). Errors name the file, the key and the fix.
    pub fn zenoh_files(&self) -> Result<ZenohFiles, ConfigError> {
        let Some(zenoh) = &self.zenoh else { return Ok(ZenohFiles::default()) };
        let tls = match &zenoh.tls {
            Some(tls) => {
                let ca = self.read_config_file("zenoh.tls.ca", &tls.ca, Access::Public, Some(CERTIFICATE_PEM), "")?;
                let certificate = self.read_config_file(
                    "zenoh.tls.certificate",
                    &tls.certificate,
                    Access::Public,
                    Some(CERTIFICATE_PEM),
                    "",
                )?;
                let key = self.read_config_file(
                    "zenoh.tls.key",
                    &tls.key,
                    Access::GroupReadable(
                        "lets other users read or change the private key, and with it join the site's link",
                    ),
                    Some(PRIVATE_KEY_PEM),
                    "",
                )?;
                Some((ca.path, certificate.path, key.path))
            }
            None => None,
        };
        let access_control = match &zenoh.access_control {
            Some(path) => Some(self.read_config_file("zenoh.access-control", path, Access::Public, None, "")?.text),
            None => None,
        };
        Ok(ZenohFiles { tls, access_control })
    }
}

fn default_listen() -> Vec<String> {
    vec![super::defaults::ZENOH_LISTEN.to_string()]
}

/// A checked endpoint: its protocol and host.
struct Endpoint<'a> {
    protocol: &'a str,
    host: &'a str,
}

fn parse_endpoint(endpoint: &str) -> Option<Endpoint<'_>> {
    let (protocol, address) = endpoint.split_once('/')?;
    // Zenoh endpoints may carry `#config` or `?metadata` after the address.
    let address = address.split(['#', '?']).next()?;
    let (host, port) = address.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some(Endpoint { protocol, host })
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Checks `[zenoh]`; keys are below `zenoh.`.
pub(super) fn validate(zenoh: &ZenohConfig) -> Result<(), Invalid> {
    if !super::is_valid_name(&zenoh.site) {
        return Err(("site".into(), format!("invalid name `{}`: use {}", zenoh.site, super::NAME_RULE)));
    }
    for (key, endpoints) in [("listen", &zenoh.listen), ("connect", &zenoh.connect)] {
        for (i, text) in endpoints.iter().enumerate() {
            let at = format!("{key}[{i}]");
            let Some(endpoint) = parse_endpoint(text) else {
                return Err((at, format!("invalid endpoint `{text}`: use `tcp/<host>:<port>` or `tls/<host>:<port>`")));
            };
            match endpoint.protocol {
                "tcp" if !is_loopback(endpoint.host) && !zenoh.allow_plaintext => {
                    return Err((
                        at,
                        format!(
                            "`{text}` would carry frames, results and control in plain text beyond this host: use `tls/{}` with a [zenoh.tls] table (mutual TLS, docs/multi-host.md), or set `allow-plaintext = true` in [zenoh] for a network you trust",
                            text.trim_start_matches("tcp/")
                        ),
                    ));
                }
                "tcp" => {}
                "tls" if zenoh.tls.is_none() => {
                    return Err((at, format!("`{text}` needs a [zenoh.tls] table (ca, certificate, key)")));
                }
                "tls" => {}
                other => {
                    return Err((at, format!("unsupported protocol `{other}` in `{text}`: allowed `tcp` and `tls`")));
                }
            }
        }
    }
    if zenoh.mode == ZenohMode::Client && zenoh.connect.is_empty() {
        return Err(("connect".into(), "mode = \"client\" needs at least one endpoint to connect to".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listen: &[&str], plaintext: bool, tls: bool) -> ZenohConfig {
        ZenohConfig {
            site: "lab".into(),
            mode: ZenohMode::Peer,
            listen: listen.iter().map(|s| s.to_string()).collect(),
            connect: Vec::new(),
            tls: tls.then(|| ZenohTls { ca: "ca.pem".into(), certificate: "c.pem".into(), key: "k.pem".into() }),
            allow_plaintext: plaintext,
            access_control: None,
        }
    }

    /// Loopback listeners are fine; plain TCP beyond loopback needs `allow-plaintext`; TLS
    /// needs its files.
    #[test]
    fn plaintext_beyond_loopback_is_refused() {
        assert!(validate(&config(&["tcp/127.0.0.1:7447", "tcp/[::1]:7447", "tcp/localhost:1"], false, false)).is_ok());
        let err = validate(&config(&["tcp/0.0.0.0:7447"], false, false)).expect_err("refused");
        assert_eq!(err.0, "listen[0]");
        assert!(err.1.contains("allow-plaintext = true"), "{}", err.1);
        assert!(validate(&config(&["tcp/0.0.0.0:7447"], true, false)).is_ok());
        assert!(validate(&config(&["tls/0.0.0.0:7447"], false, false)).is_err());
        assert!(validate(&config(&["tls/0.0.0.0:7447"], false, true)).is_ok());
        assert!(validate(&config(&["udp/127.0.0.1:7447"], false, false)).is_err());
        assert!(validate(&config(&["127.0.0.1:7447"], false, false)).is_err());
    }
}
