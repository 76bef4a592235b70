//! Browsers over WebRTC, signalled with WHEP (one HTTP POST of the browser's SDP offer, answered
//! with the server's SDP answer; DELETE of the returned resource ends the session). Each viewer
//! is one GStreamer pipeline `appsrc → h264parse → rtph264pay → webrtcbin`, fed by the camera's
//! channel in the hub: the H.264 from the streamer is only re-packetised, never re-encoded.
//!
//! Candidates are gathered before answering (no trickle ICE), on the configured local addresses
//! only (by default the HTTP address's IP), over UDP only; no STUN/TURN server is contacted, UPnP
//! (SSDP port mapping) is off, and remote mDNS (`.local`) candidates are dropped from the offer
//! rather than resolved, so the server sends nothing to multicast groups and opens no socket on
//! an interface the config did not name.
//!
//! Each session is named by a random 128-bit id (32 hex digits, from the OS's generator) and
//! belongs to its camera: `DELETE /<camera>/whep/<id>` ends it only with both right.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;

use crate::hub::{Hub, SinkKind};

/// How long answering may take (negotiation and gathering candidates).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for candidates before answering with those gathered so far.
const GATHER_TIMEOUT: Duration = Duration::from_secs(2);
/// A viewer that has not connected within this long is removed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a WHEP request failed; each maps to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum WhepError {
    /// No such camera (404).
    #[error("no camera `{0}` is streamed here")]
    UnknownCamera(String),
    /// The offer is unusable (400).
    #[error("{0}")]
    BadOffer(String),
    /// Too many viewers (503).
    #[error("camera `{camera}` already has {max} WebRTC viewers")]
    Full {
        /// Camera.
        camera: String,
        /// The limit.
        max: u32,
    },
    /// GStreamer failed (500).
    #[error("{0}")]
    Internal(String),
}

/// The H.264 format chosen from a browser's offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedCodec {
    /// RTP payload type the browser assigned.
    pub payload: u32,
    /// `profile-level-id` of that payload type (hex).
    pub profile_level_id: String,
}

/// Picks the H.264 payload type of the first video section of an SDP offer: packetization
/// mode 1, preferring constrained baseline (`42e0..`), then baseline, then any profile.
pub fn choose_h264(offer: &str) -> Option<OfferedCodec> {
    // The SDP parser (GStreamer's) panics before `gst::init`; init is a no-op once done.
    gst::init().ok()?;
    let sdp = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes()).ok()?;
    let video = sdp.medias().find(|m| m.media() == Some("video"))?;
    let mut h264: Vec<u32> = Vec::new();
    let mut fmtp: HashMap<u32, String> = HashMap::new();
    for attribute in video.attributes() {
        let Some((pt, rest)) = attribute.value().and_then(|v| v.trim().split_once(' ')) else { continue };
        let Ok(pt) = pt.parse::<u32>() else { continue };
        match attribute.key() {
            "rtpmap" if rest.trim().to_ascii_uppercase().starts_with("H264/90000") => h264.push(pt),
            "fmtp" => {
                fmtp.insert(pt, rest.to_string());
            }
            _ => {}
        }
    }
    let param = |pt: u32, key: &str| -> Option<String> {
        fmtp.get(&pt)?.split(';').map(str::trim).find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_ascii_lowercase())
        })
    };
    let candidates: Vec<(u32, String)> = h264
        .into_iter()
        .filter(|&pt| param(pt, "packetization-mode").as_deref() == Some("1"))
        .map(|pt| (pt, param(pt, "profile-level-id").unwrap_or_else(|| "42e01f".into())))
        .collect();
    let rank = |profile: &str| {
        if profile.starts_with("42e0") {
            0
        } else if profile.starts_with("42") {
            1
        } else if profile.starts_with("4d") {
            2
        } else {
            3
        }
    };
    candidates
        .into_iter()
        .min_by_key(|(_, profile)| rank(profile))
        .map(|(payload, profile_level_id)| OfferedCodec { payload, profile_level_id })
}

/// A WHEP session id: 128 random bits as 32 lower-case hex digits.
pub type SessionId = String;

/// A new random session id (128 bits from the operating system's generator).
pub fn new_session_id() -> Result<SessionId, WhepError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| WhepError::Internal(format!("no random numbers for a session id: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether `id` has the shape of a session id (so a malformed one is refused before a lookup).
pub fn is_session_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The offer without remote candidates that need an mDNS lookup (`<uuid>.local`): resolving
/// them would send multicast queries from the server. Browsers that hide their addresses this
/// way still connect through the server's own candidates (the browser is the controlled side's
/// peer-reflexive candidate).
pub fn without_mdns_candidates(offer: &str) -> String {
    let mut out = String::with_capacity(offer.len());
    for line in offer.split_inclusive('\n') {
        let trimmed = line.trim_end();
        let is_mdns = trimmed
            .strip_prefix("a=candidate:")
            .and_then(|c| c.split_whitespace().nth(4))
            .is_some_and(|addr| addr.to_ascii_lowercase().ends_with(".local"));
        if !is_mdns {
            out.push_str(line);
        }
    }
    out
}

/// Refuses offers that crash GStreamer's webrtcbin instead of being refused by it: two
/// session-level `a=ice-ufrag` (or `a=ice-pwd`) lines make webrtcbin 1.22 abort the process
/// (`_get_ice_credentials_from_sdp_media: assertion failed: (!*ufrag)`, found by the WHEP fuzz
/// test). At most one of each is allowed at session level and in each media section.
pub fn check_offer_shape(offer: &str) -> Result<(), String> {
    let (mut ufrag, mut pwd, mut section) = (0u32, 0u32, "the session level".to_string());
    for line in offer.lines().map(str::trim) {
        if line.starts_with("m=") {
            (ufrag, pwd, section) = (0, 0, format!("the media section `{line}`"));
            continue;
        }
        let key = line.strip_prefix("a=").and_then(|a| a.split(':').next()).unwrap_or_default();
        match key {
            "ice-ufrag" => ufrag += 1,
            "ice-pwd" => pwd += 1,
            _ => continue,
        }
        if ufrag > 1 || pwd > 1 {
            return Err(format!("more than one a={key} in {section}"));
        }
    }
    Ok(())
}

struct Viewer {
    camera: String,
    pipeline: gst::Pipeline,
    webrtc: gst::Element,
    sink_id: u64,
    created: Instant,
}

/// The WebRTC viewers of every camera.
pub struct Viewers {
    hub: Arc<Hub>,
    max_per_camera: u32,
    ice_addresses: Vec<String>,
    viewers: Mutex<HashMap<SessionId, Viewer>>,
    /// Offers being answered per camera (they count against the limit too).
    pending: Mutex<HashMap<String, u32>>,
    ended: Mutex<mpsc::Sender<SessionId>>,
}

/// Holds one pending slot of a camera until the offer is answered or refused.
struct PendingSlot<'a> {
    viewers: &'a Viewers,
    camera: String,
}

impl Drop for PendingSlot<'_> {
    fn drop(&mut self) {
        let mut pending = self.viewers.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = pending.get_mut(&self.camera) {
            *n = n.saturating_sub(1);
        }
    }
}

impl Viewers {
    /// Viewer management; starts the thread that tears ended viewers down.
    pub fn start(hub: Arc<Hub>, max_per_camera: u32, ice_addresses: Vec<String>) -> std::io::Result<Arc<Viewers>> {
        let (tx, rx) = mpsc::channel();
        let viewers = Arc::new(Viewers {
            hub,
            max_per_camera,
            ice_addresses,
            viewers: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            ended: Mutex::new(tx),
        });
        let weak = Arc::downgrade(&viewers);
        std::thread::Builder::new().name("webrtc-reaper".into()).spawn(move || loop {
            let id = match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(id) => Some(id),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let Some(viewers) = weak.upgrade() else { return };
            if let Some(id) = id {
                viewers.remove(&id, "ended");
            }
            viewers.sweep();
        })?;
        Ok(viewers)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Viewer>> {
        self.viewers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Viewers of `camera`.
    pub fn count(&self, camera: &str) -> usize {
        self.lock().values().filter(|v| v.camera == camera).count()
    }

    /// Ends session `id` of `camera` (a `DELETE`); false when that camera has no such session
    /// (another camera's session is never touched).
    pub fn end(&self, camera: &str, id: &str) -> bool {
        let owned = self.lock().get(id).is_some_and(|v| v.camera == camera);
        owned && self.remove(id, "closed by the browser")
    }

    /// Ends viewer `id`; false when there is none.
    fn remove(&self, id: &str, why: &str) -> bool {
        let Some(viewer) = self.lock().remove(id) else { return false };
        if let Some(channel) = self.hub.channel(&viewer.camera) {
            channel.remove_sink(viewer.sink_id);
        }
        retire(viewer.pipeline);
        tracing::info!(camera = viewer.camera, viewer = id, "WebRTC viewer {why}");
        true
    }

    /// Ends every viewer (shutdown).
    pub fn close_all(&self) {
        let ids: Vec<SessionId> = self.lock().keys().cloned().collect();
        for id in ids {
            self.remove(&id, "closed at shutdown");
        }
    }

    /// Removes viewers that never connected.
    fn sweep(&self) {
        let stale: Vec<SessionId> = self
            .lock()
            .iter()
            .filter(|(_, v)| {
                v.created.elapsed() > CONNECT_TIMEOUT
                    && v.webrtc.property::<gst_webrtc::WebRTCPeerConnectionState>("connection-state")
                        != gst_webrtc::WebRTCPeerConnectionState::Connected
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            self.remove(&id, "never connected");
        }
    }

    fn notify_ended(&self, id: SessionId) {
        let _ = self.ended.lock().unwrap_or_else(|e| e.into_inner()).send(id);
    }

    /// Answers a WHEP offer for `camera`: (viewer id, SDP answer). Blocks up to a few seconds.
    pub fn answer(self: &Arc<Self>, camera: &str, offer: &str) -> Result<(SessionId, String), WhepError> {
        let channel = self.hub.channel(camera).ok_or_else(|| WhepError::UnknownCamera(camera.to_string()))?;
        let _slot = {
            let viewers = self.lock();
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let waiting = pending.entry(camera.to_string()).or_default();
            let active = viewers.values().filter(|v| v.camera == camera).count() as u32;
            if active + *waiting >= self.max_per_camera {
                return Err(WhepError::Full { camera: camera.to_string(), max: self.max_per_camera });
            }
            *waiting += 1;
            PendingSlot { viewers: self, camera: camera.to_string() }
        };
        let codec = choose_h264(offer).ok_or_else(|| {
            WhepError::BadOffer("the offer has no H.264 video with packetization-mode=1 (nothing else is sent)".into())
        })?;
        let offer = without_mdns_candidates(offer);
        check_offer_shape(&offer).map_err(WhepError::BadOffer)?;
        let sdp = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes())
            .map_err(|e| WhepError::BadOffer(format!("the offer is not valid SDP: {e}")))?;
        if !codec.profile_level_id.bytes().all(|b| b.is_ascii_hexdigit()) || codec.profile_level_id.len() != 6 {
            return Err(WhepError::BadOffer(format!("invalid profile-level-id `{}`", codec.profile_level_id)));
        }
        let launch = format!(
            "appsrc name=src is-live=true format=time max-bytes=0 \
             ! h264parse config-interval=-1 \
             ! rtph264pay name=pay pt={pt} config-interval=0 aggregate-mode=zero-latency \
             ! capssetter join=true replace=false caps=\"application/x-rtp,profile-level-id=(string){profile},packetization-mode=(string)1\" \
             ! webrtcbin name=webrtc bundle-policy=max-bundle",
            pt = codec.payload,
            profile = codec.profile_level_id
        );
        let internal = |what: &str, e: &dyn std::fmt::Display| WhepError::Internal(format!("{what}: {e}"));
        let pipeline = gst::parse::launch(&launch)
            .map_err(|e| internal("building the viewer pipeline", &e))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| WhepError::Internal("the viewer pipeline is not a pipeline".into()))?;
        let guard = PipelineGuard(Some(pipeline.clone()));
        let webrtc = pipeline.by_name("webrtc").ok_or_else(|| WhepError::Internal("no webrtcbin".into()))?;
        let appsrc = pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| WhepError::Internal("no appsrc".into()))?;
        self.restrict_ice(&webrtc);
        match pipeline.by_name("pay").and_then(|pay| pay.static_pad("src")) {
            Some(pad) => crate::hub::count_bytes_out(&pad, &channel, false),
            None => tracing::warn!(camera, "the viewer pipeline has no payloader: its bytes are not counted"),
        }

        let id = new_session_id()?;
        {
            let weak = Arc::downgrade(self);
            let id = id.clone();
            webrtc.connect_notify(Some("connection-state"), move |webrtc, _| {
                let state = webrtc.property::<gst_webrtc::WebRTCPeerConnectionState>("connection-state");
                tracing::debug!(viewer = id, ?state, "WebRTC connection state");
                if matches!(
                    state,
                    gst_webrtc::WebRTCPeerConnectionState::Failed | gst_webrtc::WebRTCPeerConnectionState::Closed
                ) {
                    if let Some(viewers) = weak.upgrade() {
                        viewers.notify_ended(id.clone());
                    }
                }
            });
        }
        // A browser that goes away without DELETE (closed tab, crash, lost network): its RTCP
        // receiver reports stop and RTP's source timeout ends the session (ICE keep-alives
        // need no answer, so the connection state alone would stay "connected").
        let rtpbin = webrtc.downcast_ref::<gst::Bin>().and_then(|bin| {
            bin.iterate_recurse().into_iter().flatten().find(|e| e.factory().is_some_and(|f| f.name() == "rtpbin"))
        });
        if let Some(rtpbin) = rtpbin {
            for signal in ["on-timeout", "on-bye-ssrc"] {
                let weak = Arc::downgrade(self);
                let id = id.clone();
                rtpbin.connect(signal, false, move |_| {
                    tracing::debug!(viewer = id, "{signal}");
                    if let Some(viewers) = weak.upgrade() {
                        viewers.notify_ended(id.clone());
                    }
                    None
                });
            }
        } else {
            tracing::warn!("webrtcbin has no rtpbin: a vanished browser is only removed after {CONNECT_TIMEOUT:?} without a connection");
        }
        if let Some(bus) = pipeline.bus() {
            let weak = Arc::downgrade(self);
            let id = id.clone();
            bus.set_sync_handler(move |_, message| {
                if let gst::MessageView::Error(e) = message.view() {
                    tracing::warn!(viewer = id, "WebRTC viewer pipeline error: {} ({:?})", e.error(), e.debug());
                    if let Some(viewers) = weak.upgrade() {
                        viewers.notify_ended(id.clone());
                    }
                }
                gst::BusSyncReply::Drop
            });
        }
        pipeline.set_state(gst::State::Playing).map_err(|e| internal("starting the viewer pipeline", &e))?;

        let offer = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, sdp);
        promise_call(&webrtc, "set-remote-description", Some(&offer))
            .map_err(|e| WhepError::BadOffer(format!("the offer was refused: {e}")))?;
        let reply = promise_call(&webrtc, "create-answer", None).map_err(|e| internal("creating the answer", &e))?;
        let answer = reply
            .and_then(|s| s.get::<gst_webrtc::WebRTCSessionDescription>("answer").ok())
            .ok_or_else(|| WhepError::BadOffer("no answer could be made for this offer".into()))?;
        promise_call(&webrtc, "set-local-description", Some(&answer))
            .map_err(|e| internal("setting the answer", &e))?;
        wait_for_candidates(&webrtc);
        let local = webrtc
            .property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description")
            .ok_or_else(|| WhepError::Internal("no local description after answering".into()))?;
        // webrtcbin rejects a section it cannot use with port 0 and copies the offer's lines
        // into it (candidates included): such an answer carries no media and only echoes the
        // offer, so it is refused.
        let accepted = local.sdp().medias().any(|m| m.media() == Some("video") && m.port() != 0);
        if !accepted {
            return Err(WhepError::BadOffer("the offer's video section could not be accepted".into()));
        }
        let text = local.sdp().as_text().map_err(|e| internal("writing the answer", &e))?;
        if !text.contains("a=candidate") {
            return Err(WhepError::Internal(
                "no ICE candidate could be gathered on the configured addresses ([media-server] webrtc-addresses)"
                    .into(),
            ));
        }

        let sink_id = channel.add_sink(appsrc, SinkKind::WebRtc);
        let pipeline = guard.release();
        self.lock().insert(
            id.clone(),
            Viewer { camera: camera.to_string(), pipeline, webrtc, sink_id, created: Instant::now() },
        );
        tracing::info!(
            camera,
            viewer = id,
            payload = codec.payload,
            profile = codec.profile_level_id,
            "WebRTC viewer added"
        );
        Ok((id, text))
    }

    /// Limits ICE to the configured local addresses, over UDP, without UPnP.
    fn restrict_ice(&self, webrtc: &gst::Element) {
        let ice = webrtc.property::<gst_webrtc::WebRTCICE>("ice-agent");
        // Candidates over TCP would open listening sockets for nothing: browsers use UDP.
        if ice.find_property("ice-tcp").is_some() {
            ice.set_property("ice-tcp", false);
        }
        // libnice's UPnP (on by default when built with gupnp-igd) sends SSDP discovery out of
        // every interface and listens on UDP 1900 there, whatever the local addresses.
        match ice.find_property("agent").map(|_| ice.property::<glib::Object>("agent")) {
            Some(agent) if agent.find_property("upnp").is_some() => agent.set_property("upnp", false),
            _ => tracing::warn!("this GStreamer does not expose its ICE agent: UPnP may stay on"),
        }
        if self.ice_addresses.is_empty() {
            return;
        }
        if glib::subclass::signal::SignalId::lookup("add-local-ip-address", ice.type_()).is_none() {
            tracing::warn!("this GStreamer cannot restrict WebRTC to chosen addresses; every interface is used");
            return;
        }
        for addr in &self.ice_addresses {
            if !ice.emit_by_name::<bool>("add-local-ip-address", &[addr]) {
                tracing::warn!("WebRTC: could not use local address {addr}");
            }
        }
    }
}

/// Sets a pipeline to Null when an answer fails half-way.
struct PipelineGuard(Option<gst::Pipeline>);

impl PipelineGuard {
    fn release(mut self) -> gst::Pipeline {
        self.0.take().unwrap_or_default()
    }
}

impl Drop for PipelineGuard {
    fn drop(&mut self) {
        if let Some(pipeline) = self.0.take() {
            retire(pipeline);
        }
    }
}

/// Stops a viewer pipeline (before its last reference goes: a webrtcbin freed while playing
/// leaves work queued on its own thread that then touches freed memory).
fn retire(pipeline: gst::Pipeline) {
    if let Err(e) = pipeline.set_state(gst::State::Null) {
        tracing::warn!("a WebRTC viewer pipeline did not stop: {e:?}");
    }
}

impl Drop for Viewers {
    /// Viewers still in the map are stopped, never freed while playing (the WHEP fuzz test
    /// crashed with SIGSEGV in webrtcbin's thread when a set of viewers was dropped with live
    /// sessions in it).
    fn drop(&mut self) {
        self.close_all();
    }
}

/// Emits a webrtcbin action signal that takes a promise and waits for its reply.
fn promise_call(
    webrtc: &gst::Element,
    signal: &str,
    description: Option<&gst_webrtc::WebRTCSessionDescription>,
) -> Result<Option<gst::Structure>, String> {
    let (tx, rx) = mpsc::channel();
    let promise = gst::Promise::with_change_func(move |reply| {
        let _ = tx.send(reply.map(|s| s.map(|s| s.to_owned())).map_err(|e| format!("{e:?}")));
    });
    match description {
        Some(description) => webrtc.emit_by_name::<()>(signal, &[description, &promise]),
        None => webrtc.emit_by_name::<()>(signal, &[&None::<gst::Structure>, &promise]),
    }
    let reply =
        rx.recv_timeout(ANSWER_TIMEOUT).map_err(|_| format!("{signal}: no reply within {ANSWER_TIMEOUT:?}"))??;
    if let Some(error) = reply.as_ref().and_then(|s| s.get::<glib::Error>("error").ok()) {
        return Err(error.to_string());
    }
    Ok(reply)
}

/// Waits until webrtcbin has gathered its candidates (bounded).
fn wait_for_candidates(webrtc: &gst::Element) {
    let complete = |w: &gst::Element| {
        w.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state")
            == gst_webrtc::WebRTCICEGatheringState::Complete
    };
    let (tx, rx) = mpsc::channel();
    let handler = webrtc.connect_notify(Some("ice-gathering-state"), move |w, _| {
        if complete(w) {
            let _ = tx.send(());
        }
    });
    if !complete(webrtc) {
        let _ = rx.recv_timeout(GATHER_TIMEOUT);
    }
    webrtc.disconnect(handler);
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROMIUM_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 106 107\r\n\
a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\n\
a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
a=rtpmap:103 H264/90000\r\na=fmtp:103 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n\
a=rtpmap:106 H264/90000\r\na=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:107 H264/90000\r\na=fmtp:107 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n";

    /// Constrained baseline with packetization mode 1 is preferred over baseline and mode 0.
    #[test]
    fn the_constrained_baseline_payload_is_chosen() {
        assert_eq!(choose_h264(CHROMIUM_OFFER), Some(OfferedCodec { payload: 106, profile_level_id: "42e01f".into() }));
    }

    /// An offer without usable H.264 (VP8 only, or mode 0 only) yields nothing.
    #[test]
    fn offers_without_h264_mode_1_are_refused() {
        let vp8 = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n";
        assert_eq!(choose_h264(vp8), None);
        let mode0 = "m=video 9 RTP/SAVPF 107\r\na=rtpmap:107 H264/90000\r\na=fmtp:107 packetization-mode=0\r\n";
        assert_eq!(choose_h264(mode0), None);
        assert_eq!(choose_h264(""), None);
        let audio_only = "m=audio 9 RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1\r\n";
        assert_eq!(choose_h264(audio_only), None);
    }

    /// Session ids are 128 random bits in hex, never repeated; the id check takes exactly that
    /// shape.
    #[test]
    fn session_ids_are_random_128_bit_hex() {
        let a = new_session_id().expect("id");
        let b = new_session_id().expect("id");
        assert_ne!(a, b);
        assert!(is_session_id(&a) && is_session_id(&b), "{a} {b}");
        assert!(!is_session_id("1"));
        assert!(!is_session_id(&a.to_uppercase()));
        assert!(!is_session_id(&format!("{a}0")));
        assert!(!is_session_id(&"g".repeat(32)));
    }

    /// Candidates that need an mDNS lookup are dropped; every other line stays as it was.
    #[test]
    fn mdns_candidates_are_dropped_from_offers() {
        let offer = "v=0\r\na=candidate:1 1 udp 2122260223 abc-def.local 51234 typ host\r\n\
                     a=candidate:2 1 udp 2122260223 10.0.0.2 51235 typ host\r\na=candidate:3 1 udp 1 X.LOCAL 1 typ host\r\na=mid:0\r\n";
        assert_eq!(
            without_mdns_candidates(offer),
            "v=0\r\na=candidate:2 1 udp 2122260223 10.0.0.2 51235 typ host\r\na=mid:0\r\n"
        );
        assert_eq!(without_mdns_candidates(""), "");
    }
}
