//! `[[deployment.webhook]]`: an HTTP endpoint told about every clip that starts or ends (a
//! JSON POST per event, sent by the supervisor, `ctl up`, from the recorders' events journals).

use std::path::PathBuf;

use serde::Deserialize;

use super::files::Access;
use super::tls::CERTIFICATE_PEM;
use super::{ConfigError, Deployment};

/// What a webhook is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookEvent {
    /// A clip started (journal record `clip-started`).
    Start,
    /// A clip ended, with its files (journal record `clip-completed`).
    End,
}

impl WebhookEvent {
    /// The name used in the config and in the POSTed JSON (`event`).
    pub fn name(self) -> &'static str {
        match self {
            WebhookEvent::Start => "start",
            WebhookEvent::End => "end",
        }
    }
}

/// `[[deployment.webhook]]`: where to POST and what.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WebhookConfig {
    /// `http[s]://host[:port][/path]` the JSON is POSTed to.
    pub url: String,
    /// Events sent: `start`, `end` (default both).
    #[serde(default = "default_events")]
    pub events: Vec<WebhookEvent>,
    /// Seconds one attempt may take (connect, send, response head); then it is retried.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: f64,
    /// Events held for this endpoint while it is down; beyond that the oldest is dropped
    /// (counted and logged).
    #[serde(default = "default_max_queue")]
    pub max_queue: u32,
    /// PEM certificates trusted for an `https://` endpoint besides the system's (e.g. a site's
    /// own CA), relative to the config file.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// File holding the shared secret each POST is signed with (HMAC-SHA256, header
    /// `X-Framebus-Signature`), relative to the config file; readable by this user only.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
}

fn default_events() -> Vec<WebhookEvent> {
    vec![WebhookEvent::Start, WebhookEvent::End]
}

fn default_timeout_secs() -> f64 {
    5.0
}

fn default_max_queue() -> u32 {
    256
}

/// Where a webhook's URL points: parsed by the `http` crate (hyper's own URI type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    /// `https://`: the POST goes over TLS, the server's certificate checked.
    pub tls: bool,
    /// Host name or address as written (an IPv6 address without brackets).
    pub host: String,
    /// Port, given or the scheme's (80, 443).
    pub port: u16,
    /// `Host` header value: the authority as written.
    pub authority: String,
    /// Path and query the POST asks for (`/` when none is written).
    pub path: String,
}

/// Parses an `http://` or `https://` URL with a host and no credentials or fragment; `None`
/// for anything else.
pub fn parse_webhook_url(url: &str) -> Option<WebhookUrl> {
    if url.contains('#') || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let uri: http::Uri = url.parse().ok()?;
    let tls = match uri.scheme_str()? {
        "http" => false,
        "https" => true,
        _ => return None,
    };
    let authority = uri.authority()?;
    let host = authority.host();
    if host.is_empty() || authority.as_str().contains('@') {
        return None;
    }
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Some(WebhookUrl {
        tls,
        host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
        port,
        authority: authority.as_str().to_string(),
        path: uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
    })
}

/// What one webhook needs from files, read when `ctl up` starts.
#[derive(Default)]
pub struct WebhookFiles {
    /// PEM of `ca-file`.
    pub ca_pem: Option<String>,
    /// Content of `secret-file`, surrounding white space removed.
    pub secret: Option<Vec<u8>>,
}

impl Deployment {
    /// The files of webhook `index` (`ca-file`, `secret-file`), read and checked now. Errors
    /// name the config file, the key and the fix.
    pub fn webhook_files(&self, index: usize) -> Result<WebhookFiles, ConfigError> {
        let Some(hook) = self.deployment.webhook.get(index) else { return Ok(WebhookFiles::default()) };
        let key = |name: &str| format!("deployment.webhook[{index}].{name}");
        let ca_pem = match &hook.ca_file {
            Some(path) => {
                Some(self.read_config_file(&key("ca-file"), path, Access::Public, Some(CERTIFICATE_PEM), "")?.text)
            }
            None => None,
        };
        let secret = match &hook.secret_file {
            Some(path) => {
                let text = self
                    .read_config_file(
                        &key("secret-file"),
                        path,
                        Access::OwnerOnly("lets other users read the secret, and with it sign events of their own"),
                        None,
                        "",
                    )?
                    .text;
                let secret = text.trim();
                if secret.len() < 16 {
                    let file = self.resolve_path(path);
                    return Err(ConfigError::value(
                        &self.source_file,
                        &format!("deployment.webhook[{index}].secret-file"),
                        format!(
                            "`{}`: the secret has {} characters; use at least 16 (e.g. `openssl rand -hex 32 > {}`)",
                            file.display(),
                            secret.len(),
                            file.display()
                        ),
                    ));
                }
                Some(secret.as_bytes().to_vec())
            }
            None => None,
        };
        Ok(WebhookFiles { ca_pem, secret })
    }
}

/// Checks one webhook; the error names the key (relative to the webhook) and what is allowed.
pub(super) fn validate(hook: &WebhookConfig) -> Result<(), (String, String)> {
    let Some(url) = parse_webhook_url(&hook.url) else {
        return Err((
            "url".into(),
            format!(
                "invalid URL `{}`: use http[s]://host[:port][/path], e.g. `http://127.0.0.1:9000/framebus` (no credentials, no fragment)",
                hook.url
            ),
        ));
    };
    if hook.ca_file.is_some() && !url.tls {
        return Err(("ca-file".into(), format!("`{}` is not https: a CA file is only used over TLS", hook.url)));
    }
    if hook.events.is_empty() {
        return Err(("events".into(), "no event: allowed values are \"start\" and \"end\"".into()));
    }
    if !hook.timeout_secs.is_finite() || !(0.1..=60.0).contains(&hook.timeout_secs) {
        return Err((
            "timeout-secs".into(),
            format!("invalid value {}: allowed 0.1 to 60 (seconds)", hook.timeout_secs),
        ));
    }
    if !(1..=100_000).contains(&hook.max_queue) {
        return Err(("max-queue".into(), format!("invalid value {}: allowed 1 to 100000 (events)", hook.max_queue)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_webhook_url;

    /// Scheme, host, port and path are taken apart; anything but http(s) with a host and no
    /// credentials or fragment is refused.
    #[test]
    fn webhook_urls_are_parsed_and_others_refused() {
        let url = parse_webhook_url("http://127.0.0.1:9000/hook?x=1");
        let url = url.map(|u| (u.tls, u.host, u.port, u.authority, u.path));
        assert_eq!(url, Some((false, "127.0.0.1".into(), 9000, "127.0.0.1:9000".into(), "/hook?x=1".into())));
        let url = parse_webhook_url("https://example.com").map(|u| (u.tls, u.host, u.port, u.path));
        assert_eq!(url, Some((true, "example.com".into(), 443, "/".into())));
        let url = parse_webhook_url("http://[::1]/h").map(|u| (u.host, u.port, u.authority));
        assert_eq!(url, Some(("::1".into(), 80, "[::1]".into())));
        for bad in
            ["ftp://a", "http://", "http:///x", "http://u:p@h/", "http://h/ x", "http://h/#f", "/relative", "h:80"]
        {
            assert_eq!(parse_webhook_url(bad), None, "{bad}");
        }
    }
}
