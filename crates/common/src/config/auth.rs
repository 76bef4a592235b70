//! `[auth]`: who may watch. One table for every server of the deployment that viewers reach: the
//! media server (RTSP and HTTP/WHEP), every camera's preview and the metrics endpoint. Without a
//! users file nobody is asked for credentials, which is only allowed while every one of those
//! servers listens on loopback (or when `allow-anonymous = true` says so explicitly).
//!
//! The users file is in Apache's htdigest format, one `user:realm:HA1` line per user, with
//! `HA1 = md5("user:realm:password")` in lower-case hex and the realm [`REALM`]: the password
//! itself is never written anywhere. RTSP checks it with digest authentication (gst-rtsp-server),
//! HTTP with basic authentication (`crates/httpserve`, which hashes the password it is sent and
//! compares the result in constant time). An HA1 lets its holder answer an RTSP digest challenge,
//! so the file is refused when users other than its owner (and its group) can read it.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::files::{Access, ConfigFile};
use super::{ConfigError, Deployment};

/// The realm of every framebus server: the middle field of each users-file line (`htdigest -c
/// FILE framebus USER` writes it), and what RTSP and HTTP challenges name.
pub const REALM: &str = "framebus";

/// `[auth]`: viewer authentication of every server of the deployment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AuthConfig {
    /// The users file (htdigest: `user:framebus:md5hex` lines), relative to the config file; none
    /// = no authentication (`auth none`).
    #[serde(default)]
    pub users_file: Option<PathBuf>,
    /// Serve without authentication on addresses other machines can reach (a non-loopback
    /// `listen`, `rtsp`, `http` or `metrics`). Without it such a config is refused.
    #[serde(default)]
    pub allow_anonymous: bool,
}

/// One viewer: name and HA1 (`md5("name:framebus:password")`).
#[derive(Clone, PartialEq, Eq)]
pub struct ViewerUser {
    /// The user name.
    pub name: String,
    /// `md5("name:framebus:password")`.
    pub ha1: [u8; 16],
}

impl std::fmt::Debug for ViewerUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewerUser").field("name", &self.name).field("ha1", &"<redacted>").finish()
    }
}

/// The viewers of a deployment, as read from its users file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerUsers {
    /// The users file (absolute, or relative to the working folder when the config's was).
    pub file: PathBuf,
    /// Every user, in file order; at least one.
    pub users: Vec<ViewerUser>,
}

/// Parses htdigest text: one `user:framebus:<32 hex digits>` per line; empty lines are allowed,
/// nothing else (no comments: gst-rtsp-server would read them as users). Errors give the line.
pub fn parse_users(text: &str) -> Result<Vec<ViewerUser>, String> {
    let mut users: Vec<ViewerUser> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        let [name, realm, hash] = fields.as_slice() else {
            return Err(format!(
                "line {n}: expected `user:{REALM}:<md5 hex>` (3 fields separated by `:`), got {} fields",
                fields.len()
            ));
        };
        if name.is_empty() || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!("line {n}: the user name is empty or has spaces or control characters"));
        }
        if *realm != REALM {
            return Err(format!(
                "line {n}: realm `{realm}`, but framebus servers use the realm `{REALM}` (`htdigest FILE {REALM} {name}`)"
            ));
        }
        let ha1 = parse_md5_hex(hash).ok_or_else(|| {
            format!("line {n}: the hash of `{name}` is not 32 hex digits (md5 of `{name}:{REALM}:<password>`)")
        })?;
        if users.iter().any(|u| u.name == *name) {
            return Err(format!("line {n}: user `{name}` is listed twice"));
        }
        users.push(ViewerUser { name: (*name).to_string(), ha1 });
    }
    if users.is_empty() {
        return Err("no user in the file: add one line `user:framebus:<md5 hex>` per viewer".into());
    }
    Ok(users)
}

fn parse_md5_hex(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Deployment {
    /// The viewers of `[auth] users-file`, read and checked now; `None` without a users file
    /// (no authentication). The error names the config file, the key and what to fix.
    pub fn viewer_users(&self) -> Result<Option<ViewerUsers>, ConfigError> {
        let Some(users_file) = &self.auth.users_file else { return Ok(None) };
        let missing = format!(
            "; create it with `htdigest -c {} {REALM} USER` (apache2-utils) or as docs/configuration.md shows",
            self.resolve_path(users_file).display()
        );
        let ConfigFile { path: file, text } = self.read_config_file(
            "auth.users-file",
            users_file,
            Access::GroupReadable(
                "lets other users read or change it, and its hashes are enough to pass RTSP digest authentication",
            ),
            None,
            &missing,
        )?;
        let fail = |message: String| {
            ConfigError::value(&self.source_file, "auth.users-file", format!("`{}`: {message}", file.display()))
        };
        let users = parse_users(&text).map_err(fail)?;
        Ok(Some(ViewerUsers { file, users }))
    }

    /// Refuses `addr` (the listener at config key `key`) when other machines can reach it (not
    /// loopback) while nobody is asked for credentials and `[auth] allow-anonymous` is not set.
    pub fn check_exposed(&self, key: &str, addr: SocketAddr) -> Result<(), ConfigError> {
        if addr.ip().is_loopback() || self.auth.users_file.is_some() || self.auth.allow_anonymous {
            return Ok(());
        }
        Err(ConfigError::value(
            &self.source_file,
            key,
            format!(
                "`{addr}` can be reached from other machines and no viewer would be asked for a password: set `[auth] users-file` (viewers and their password hashes, see docs/configuration.md), or `[auth] allow-anonymous = true` to serve anyone who reaches it, or listen on 127.0.0.1"
            ),
        ))
    }
}

/// `[auth]` and every listener it guards: the users file reads, and no listener is open to
/// other machines without authentication unless `allow-anonymous` says so.
pub(super) fn validate(deployment: &Deployment) -> Result<(), ConfigError> {
    let auth = &deployment.auth;
    if auth.users_file.is_some() && auth.allow_anonymous {
        return Err(ConfigError::value(
            &deployment.source_file,
            "auth.allow-anonymous",
            "`allow-anonymous = true` and `users-file` contradict each other: remove one (with a users file every viewer is asked for a password)".into(),
        ));
    }
    deployment.viewer_users()?;
    if let Some(server) = &deployment.media_server {
        deployment.check_exposed("media-server.rtsp", server.rtsp_addr())?;
        deployment.check_exposed("media-server.http", server.http_addr())?;
    }
    for (i, camera) in deployment.camera.iter().enumerate() {
        if let Some(preview) = &camera.preview {
            deployment.check_exposed(&format!("camera[{i}].preview.listen"), preview.listen_addr())?;
        }
    }
    if let Some(metrics) = deployment.deployment.metrics_addr() {
        deployment.check_exposed("deployment.metrics", metrics)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// htdigest lines parse; every malformed line is refused naming its number.
    #[test]
    fn users_files_parse_strictly() {
        // md5("viewer:framebus:secret")
        let users = parse_users(
            "viewer:framebus:0123456789abcdef0123456789ABCDEF\n\nnvr:framebus:00000000000000000000000000000000\n",
        )
        .expect("valid");
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].name, "viewer");
        assert_eq!(users[0].ha1[..2], [0x01, 0x23]);
        assert_eq!(users[0].ha1[15], 0xef);
        assert!(!format!("{:?}", users[0]).contains("01"), "Debug shows no hash");
        for (text, needle) in [
            ("", "no user"),
            ("viewer:framebus\n", "3 fields"),
            ("viewer:other:0123456789abcdef0123456789abcdef\n", "realm `other`"),
            ("viewer:framebus:0123\n", "32 hex"),
            ("viewer:framebus:0123456789abcdef0123456789abcdeg\n", "32 hex"),
            ("a b:framebus:0123456789abcdef0123456789abcdef\n", "spaces"),
            ("v:framebus:0123456789abcdef0123456789abcdef\nv:framebus:0123456789abcdef0123456789abcdef\n", "line 2"),
            ("# viewers\n", "line 1"),
        ] {
            let e = parse_users(text).expect_err(text);
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
