//! `[[deployment.webhook]]`: an HTTP endpoint told about every clip that starts or ends (a
//! JSON POST per event, sent by the supervisor, `ctl up`, from the recorders' events journals).

use serde::Deserialize;

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
    /// `http://host[:port][/path]` the JSON is POSTed to.
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

/// The host (and port) and path of an `http://` URL, `None` when it is not one.
pub fn split_http_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let valid = !authority.is_empty()
        && !authority.contains('@')
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        && !path.contains('#');
    valid.then_some((authority, path))
}

/// Checks one webhook; the error names the key (relative to the webhook) and what is allowed.
pub(super) fn validate(hook: &WebhookConfig) -> Result<(), (String, String)> {
    if hook.url.starts_with("https://") {
        return Err((
            "url".into(),
            format!(
                "`{}`: https is not supported by webhooks yet; use an http:// receiver (on loopback or a trusted network, or a local relay that forwards over TLS)",
                hook.url
            ),
        ));
    }
    if split_http_url(&hook.url).is_none() {
        return Err((
            "url".into(),
            format!(
                "invalid URL `{}`: use http://host[:port][/path], e.g. `http://127.0.0.1:9000/framebus` (no credentials, no fragment)",
                hook.url
            ),
        ));
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
    use super::split_http_url;

    /// Host and path are split; anything but plain http with a host is refused.
    #[test]
    fn http_urls_are_split_and_others_refused() {
        assert_eq!(split_http_url("http://127.0.0.1:9000/hook?x=1"), Some(("127.0.0.1:9000", "/hook?x=1")));
        assert_eq!(split_http_url("http://example.com"), Some(("example.com", "/")));
        for bad in ["https://a/", "ftp://a", "http://", "http:///x", "http://u:p@h/", "http://h/ x", "http://h/#f"] {
            assert_eq!(split_http_url(bad), None, "{bad}");
        }
    }
}
