//! Webhooks (`[[deployment.webhook]]`): under `ctl up`, a JSON POST to each configured endpoint
//! per clip that starts or ends, read from the recorders' events journals (so the recorder is
//! untouched and never waits for a receiver).
//!
//! One thread follows every camera's journal (from its end at start-up: clips journaled while
//! no supervisor ran are not sent) and puts each event into every matching endpoint's queue;
//! one thread per endpoint sends them in order. An attempt that fails (no connection, no answer
//! within `timeout-secs`, a 5xx, 408 or 429) is retried after 1 s, doubling up to 60 s, until it
//! is delivered; another 4xx is not retried (counted as failed). A queue holds at most
//! `max-queue` events; beyond that the oldest waiting one is dropped. Sent, retried, failed and
//! dropped events are counted ([`counters`], in the metrics) and logged (rate-limited). A TLS
//! failure (an https endpoint whose certificate is not trusted) is retried like no connection.
//! The POST itself (http or https, signed or not): [`crate::webhook_client`].

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context;
use framebus_common::config::{parse_webhook_url, WebhookConfig, WebhookEvent};
use framebus_common::journal::clips::{trigger_label, trigger_score};
use framebus_common::journal::read::Follower;
use framebus_common::journal::{JournalRecord, Trigger};
use framebus_common::Deployment;
use hyper::body::Bytes;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::webhook_client::Client;

/// How often the journals are looked at.
const POLL: Duration = Duration::from_millis(250);
/// First wait before a retry; doubled per failed attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Clips remembered between their start and end records (for the end's label and score).
const MAX_OPEN_CLIPS: usize = 1024;

/// What one endpoint has done since `ctl up` started.
#[derive(Debug, Default)]
pub struct Counters {
    /// The endpoint's URL.
    pub url: String,
    /// Events delivered (a 2xx answer).
    pub sent: AtomicU64,
    /// Attempts that failed and were (or will be) tried again.
    pub retries: AtomicU64,
    /// Events refused for good (a 4xx other than 408 and 429).
    pub failed: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Events waiting now.
    pub queued: AtomicU64,
    /// An event is being sent now.
    pub busy: AtomicBool,
}

static COUNTERS: OnceLock<Vec<Arc<Counters>>> = OnceLock::new();

/// The counters of every endpoint of this `ctl up` (empty without webhooks).
pub fn counters() -> &'static [Arc<Counters>] {
    COUNTERS.get().map_or(&[], Vec::as_slice)
}

/// One event as POSTed.
#[derive(Debug, Clone)]
struct Delivery {
    event: WebhookEvent,
    body: Bytes,
}

/// One endpoint's queue.
struct Endpoint {
    config: WebhookConfig,
    /// `None` only in unit tests of the queue.
    client: Option<Client>,
    queue: Mutex<VecDeque<Delivery>>,
    wake: Condvar,
    counters: Arc<Counters>,
}

impl Endpoint {
    fn push(&self, delivery: Delivery) {
        let Ok(mut queue) = self.queue.lock() else { return };
        if queue.len() >= self.config.max_queue as usize {
            queue.pop_front();
            let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            framebus_common::logging::repeated(
                tracing::Level::WARN,
                "webhook.dropped",
                format_args!(
                    "webhook {}: queue full ({} events, `max-queue`): the oldest event was dropped, {dropped} dropped so far",
                    self.config.url, self.config.max_queue
                ),
            );
        }
        queue.push_back(delivery);
        self.counters.queued.store(queue.len() as u64, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// The next event to send, waiting for one while `stop` is not set.
    fn next(&self, stop: &AtomicBool) -> Option<Delivery> {
        let mut queue = self.queue.lock().ok()?;
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            if let Some(delivery) = queue.pop_front() {
                self.counters.queued.store(queue.len() as u64, Ordering::Relaxed);
                self.counters.busy.store(true, Ordering::Relaxed);
                return Some(delivery);
            }
            queue = self.wake.wait_timeout(queue, Duration::from_millis(200)).ok()?.0;
        }
    }
}

/// The running webhooks; stopping them is setting the flag given to [`start`] and joining.
pub struct Webhooks {
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Webhooks {
    /// Gives the events journaled last (at a stop) up to `within` to be picked up and sent:
    /// returns once every queue is empty after one more look at the journals, or at the limit.
    pub fn drain(&self, within: Duration) {
        let until = std::time::Instant::now() + within;
        std::thread::sleep(POLL * 2);
        while std::time::Instant::now() < until
            && counters().iter().any(|c| c.queued.load(Ordering::Relaxed) > 0 || c.busy.load(Ordering::Relaxed))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        for c in counters() {
            let left = c.queued.load(Ordering::Relaxed) + u64::from(c.busy.load(Ordering::Relaxed));
            if left > 0 {
                tracing::warn!("webhook {}: {left} event(s) not delivered at the stop: lost", c.url);
            }
        }
    }

    /// Waits for the threads (after the stop flag was set): at most one attempt's timeout.
    pub fn join(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// The client of each of the deployment's webhooks, their files (`ca-file`, `secret-file`) read
/// and checked now: `ctl up` calls it before it starts anything, so a wrong file is an error
/// that names the config file and the key.
pub fn clients(deployment: &Deployment) -> anyhow::Result<Vec<Client>> {
    let mut clients = Vec::new();
    for (i, config) in deployment.deployment.webhook.iter().enumerate() {
        let files = deployment.webhook_files(i)?;
        let url = parse_webhook_url(&config.url).with_context(|| {
            format!("{}: webhook `{}`: not an http(s) URL", deployment.source_file.display(), config.url)
        })?;
        let client = Client::new(url, files).map_err(|e| {
            anyhow::anyhow!("{}: `deployment.webhook[{i}]` ({}): {e}", deployment.source_file.display(), config.url)
        })?;
        clients.push(client);
    }
    Ok(clients)
}

/// Starts following the journals and sending to the deployment's webhooks with their
/// [`clients`]; `None` when it has none.
pub fn start(deployment: &Deployment, clients: Vec<Client>, stop: Arc<AtomicBool>) -> anyhow::Result<Option<Webhooks>> {
    let hooks = &deployment.deployment.webhook;
    if hooks.is_empty() {
        return Ok(None);
    }
    let endpoints: Vec<Arc<Endpoint>> = hooks
        .iter()
        .zip(clients)
        .map(|(config, client)| {
            Arc::new(Endpoint {
                config: config.clone(),
                client: Some(client),
                queue: Mutex::new(VecDeque::new()),
                wake: Condvar::new(),
                counters: Arc::new(Counters { url: config.url.clone(), ..Counters::default() }),
            })
        })
        .collect();
    let _ = COUNTERS.set(endpoints.iter().map(|e| Arc::clone(&e.counters)).collect());
    let mut threads = Vec::new();
    for (i, endpoint) in endpoints.iter().enumerate() {
        let (endpoint, stop) = (Arc::clone(endpoint), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name(format!("webhook-{i}"))
            .spawn(move || send_loop(&endpoint, &stop))
            .context("starting a webhook thread")?;
        threads.push(thread);
    }
    let cameras: Vec<(String, PathBuf)> = deployment
        .camera
        .iter()
        .filter_map(|c| c.recorder.as_ref().map(|r| (c.name.clone(), deployment.resolve_path(&r.directory))))
        .collect();
    let deployment = deployment.clone();
    let follow = std::thread::Builder::new()
        .name("webhook-journals".into())
        .spawn(move || follow_loop(&deployment, &cameras, &endpoints, &stop))
        .context("starting the webhook journal thread")?;
    threads.push(follow);
    for hook in hooks {
        let events: Vec<&str> = hook.events.iter().map(|e| e.name()).collect();
        tracing::info!("webhook {}: sending {}", hook.url, events.join(", "));
    }
    Ok(Some(Webhooks { threads }))
}

/// What is remembered of a clip between its start and its end.
#[derive(Debug, Clone)]
struct OpenClip {
    trigger: Trigger,
    first_frame_utc: String,
}

/// Follows every camera's journal and queues an event per clip start and end.
fn follow_loop(deployment: &Deployment, cameras: &[(String, PathBuf)], endpoints: &[Arc<Endpoint>], stop: &AtomicBool) {
    let mut followers: Vec<Option<Follower>> = cameras.iter().map(|_| None).collect();
    let mut open: HashMap<(String, String), OpenClip> = HashMap::new();
    let mut report = |s: &framebus_common::journal::read::SkippedLine| {
        framebus_common::logging::repeated(tracing::Level::WARN, "webhook.journal", format_args!("webhooks: {s}"));
    };
    while !stop.load(Ordering::Relaxed) {
        for ((camera, directory), follower) in cameras.iter().zip(followers.iter_mut()) {
            if follower.is_none() {
                // From the end: the clips already journaled were there before this supervisor.
                // The open ones among them are remembered for their end's label.
                match Follower::with_history(directory, camera, &mut report) {
                    Ok((f, history)) => {
                        for record in history.iter().filter_map(|l| JournalRecord::parse(l)) {
                            remember(&mut open, camera, &record);
                        }
                        *follower = Some(f);
                    }
                    Err(e) => {
                        framebus_common::logging::repeated(
                            tracing::Level::WARN,
                            "webhook.journal",
                            format_args!("webhooks: camera `{camera}`: {e}"),
                        );
                        continue;
                    }
                }
            }
            let Some(f) = follower.as_mut() else { continue };
            let lines = match f.poll(&mut report) {
                Ok(lines) => lines,
                Err(e) => {
                    framebus_common::logging::repeated(
                        tracing::Level::WARN,
                        "webhook.journal",
                        format_args!("webhooks: camera `{camera}`: {e}"),
                    );
                    *follower = None;
                    continue;
                }
            };
            for record in lines.iter().filter_map(|l| JournalRecord::parse(l)) {
                let clip = remember(&mut open, camera, &record);
                if let Some((event, body)) = payload(deployment, camera, directory, &record, clip.as_ref()) {
                    let body = Bytes::from(body.to_string());
                    for endpoint in endpoints.iter().filter(|e| e.config.events.contains(&event)) {
                        endpoint.push(Delivery { event, body: body.clone() });
                    }
                }
            }
        }
        std::thread::sleep(POLL);
    }
}

/// Keeps the start of each open clip; returns what is known of the record's clip.
fn remember(open: &mut HashMap<(String, String), OpenClip>, camera: &str, record: &JournalRecord) -> Option<OpenClip> {
    match record {
        JournalRecord::ClipStarted { clip, trigger, first_frame_utc, .. } => {
            if open.len() >= MAX_OPEN_CLIPS {
                open.clear();
            }
            let kept = OpenClip { trigger: trigger.clone(), first_frame_utc: first_frame_utc.clone() };
            open.insert((camera.to_string(), clip.clone()), kept.clone());
            Some(kept)
        }
        JournalRecord::ClipCompleted { clip, .. } => open.remove(&(camera.to_string(), clip.clone())),
        _ => None,
    }
}

/// The JSON document of a clip's start or end; `None` for the other records.
fn payload(
    deployment: &Deployment,
    camera: &str,
    directory: &std::path::Path,
    record: &JournalRecord,
    clip: Option<&OpenClip>,
) -> Option<(WebhookEvent, Value)> {
    let base = deployment.events_page_base(camera);
    let page_url = |clip: &str| base.as_ref().map(|b| format!("{b}/events?camera={camera}#{clip}"));
    let trigger = clip.map(|c| &c.trigger);
    let mut doc = json!({
        "deployment": deployment.name(),
        "camera": camera,
        "label": trigger.map(trigger_label),
        "score": trigger.and_then(trigger_score),
        "trigger": trigger,
        "started_utc": clip.map(|c| c.first_frame_utc.clone()),
    });
    match record {
        JournalRecord::ClipStarted { clip: id, utc, first_frame_id, .. } => {
            doc["event"] = json!("start");
            doc["clip"] = json!(id);
            doc["utc"] = json!(utc);
            doc["first_frame_id"] = json!(first_frame_id);
            doc["page_url"] = json!(page_url(id));
            Some((WebhookEvent::Start, doc))
        }
        JournalRecord::ClipCompleted {
            clip: id,
            utc,
            first_frame_id,
            last_frame_id,
            frames,
            duration_secs,
            reason,
            segments,
            ..
        } => {
            let files: Vec<Value> = segments
                .iter()
                .filter_map(|s| s.video.as_ref().map(|v| (s, v)))
                .map(|(s, video)| {
                    json!({
                        "path": directory.join(video),
                        "url": base.as_ref().map(|b| format!("{b}/events/clip/{camera}/{video}")),
                        "status": s.status,
                        "frames": s.frames,
                    })
                })
                .collect();
            doc["event"] = json!("end");
            doc["clip"] = json!(id);
            doc["utc"] = json!(utc);
            doc["ended_utc"] = json!(utc);
            doc["first_frame_id"] = json!(first_frame_id);
            doc["last_frame_id"] = json!(last_frame_id);
            doc["frames"] = json!(frames);
            doc["duration_secs"] = json!(duration_secs);
            doc["reason"] = json!(reason);
            doc["clip_path"] = files.first().map_or(Value::Null, |f| f["path"].clone());
            doc["clip_url"] = files.first().map_or(Value::Null, |f| f["url"].clone());
            doc["files"] = json!(files);
            doc["page_url"] = json!(page_url(id));
            Some((WebhookEvent::End, doc))
        }
        _ => None,
    }
}

/// Sends one endpoint's events in order, retrying each until it is delivered or refused.
fn send_loop(endpoint: &Endpoint, stop: &AtomicBool) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("webhook {}: cannot start its runtime: {e}; nothing is sent", endpoint.config.url);
            return;
        }
    };
    while let Some(delivery) = endpoint.next(stop) {
        deliver(&runtime, endpoint, &delivery, stop);
        endpoint.counters.busy.store(false, Ordering::Relaxed);
    }
}

/// Sends one event until it is delivered or refused (or `stop`).
fn deliver(runtime: &tokio::runtime::Runtime, endpoint: &Endpoint, delivery: &Delivery, stop: &AtomicBool) {
    let url = &endpoint.config.url;
    let Some(client) = &endpoint.client else { return };
    let timeout = Duration::from_secs_f64(endpoint.config.timeout_secs);
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1u64;
    loop {
        let outcome = runtime.block_on(async {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            tokio::time::timeout(timeout, client.post(delivery.body.clone(), now))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {timeout:?} (`timeout-secs`)")))
        });
        match outcome {
            Ok(status) if status.is_success() => {
                endpoint.counters.sent.fetch_add(1, Ordering::Relaxed);
                if attempt > 1 {
                    tracing::info!("webhook {url}: {} event delivered at attempt {attempt}", delivery.event.name());
                }
                break;
            }
            Ok(status)
                if status.is_client_error()
                    && status != StatusCode::REQUEST_TIMEOUT
                    && status != StatusCode::TOO_MANY_REQUESTS =>
            {
                endpoint.counters.failed.fetch_add(1, Ordering::Relaxed);
                framebus_common::logging::repeated(
                    tracing::Level::WARN,
                    "webhook.refused",
                    format_args!("webhook {url}: {} event refused with {status}: not retried", delivery.event.name()),
                );
                break;
            }
            outcome => {
                let why = match outcome {
                    Ok(status) => format!("answered {status}"),
                    Err(e) => e,
                };
                let retries = endpoint.counters.retries.fetch_add(1, Ordering::Relaxed) + 1;
                framebus_common::logging::repeated(
                    tracing::Level::WARN,
                    "webhook.retry",
                    format_args!(
                        "webhook {url}: {} event, attempt {attempt} failed: {why}; retry in {backoff:?} ({retries} retries so far)",
                        delivery.event.name()
                    ),
                );
                if !sleep_unless_stopped(backoff, stop) {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                attempt += 1;
            }
        }
    }
}

/// Sleeps for `pause`; `false` when `stop` was set meanwhile.
fn sleep_unless_stopped(pause: Duration, stop: &AtomicBool) -> bool {
    let until = std::time::Instant::now() + pause;
    while std::time::Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50).min(until - std::time::Instant::now()));
    }
    !stop.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full queue drops its oldest event and counts it.
    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_it() {
        let config = WebhookConfig {
            url: "http://127.0.0.1:9/".into(),
            events: vec![WebhookEvent::Start],
            timeout_secs: 1.0,
            max_queue: 2,
            ca_file: None,
            secret_file: None,
        };
        let endpoint = Endpoint {
            config,
            client: None,
            queue: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            counters: Arc::default(),
        };
        for i in 0..3 {
            endpoint.push(Delivery { event: WebhookEvent::Start, body: Bytes::from(format!("{i}")) });
        }
        assert_eq!(endpoint.counters.dropped.load(Ordering::Relaxed), 1);
        let stop = AtomicBool::new(false);
        assert_eq!(endpoint.next(&stop).map(|d| d.body), Some(Bytes::from("1")));
        assert_eq!(endpoint.next(&stop).map(|d| d.body), Some(Bytes::from("2")));
        stop.store(true, Ordering::Relaxed);
        assert!(endpoint.next(&stop).is_none());
    }
}
