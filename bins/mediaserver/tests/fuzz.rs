//! Fuzzing the WHEP offer handling the media server owns (proptest, stable toolchain; issue
//! 17 item 11): the codec choice, the mDNS candidate filter and the session-id check never
//! panic and keep their contracts on any text and on mutated browser offers, and the whole
//! answer path (SDP parsing and webrtcbin negotiation) answers every mutated offer with an
//! answer or an error, never a panic or a hang. hyper parses the HTTP around it.
//!
//! `PROPTEST_CASES` sets the cases per property (default 1000; the GStreamer property runs a
//! tenth of them, each builds a pipeline). Failures are kept in `fuzz/regressions/whep.txt`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use framebus_mediaserver::hub::Hub;
use framebus_mediaserver::webrtc::{choose_h264, is_session_id, without_mdns_candidates, Viewers, WhepError};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(1000)
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fuzz/regressions/whep.txt"
        )))),
        ..Config::default()
    }
}

/// A browser's offer (Chromium's shape), the seed the mutations start from.
const OFFER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0\r\na=msid-semantic: WMS\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 102 103 106\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=candidate:1 1 udp 2122260223 1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b.local 51234 typ host generation 0\r\n\
a=candidate:2 1 udp 2122260223 127.0.0.1 51235 typ host generation 0\r\n\
a=ice-ufrag:Ab3d\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0\r\n\
a=setup:actpass\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=rtcp-rsize\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
a=rtpmap:103 H264/90000\r\na=fmtp:103 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n\
a=rtpmap:106 H264/90000\r\na=rtcp-fb:106 nack pli\r\n\
a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";

/// Tokens an attacker would try inside an offer.
const TOKENS: &[&str] = &[
    "m=video 9 UDP/TLS/RTP/SAVPF 106",
    "m=audio 9 RTP/AVP 0",
    "a=rtpmap:106 H264/90000",
    "a=rtpmap:4294967296 H264/90000",
    "a=rtpmap:-1 H264/90000",
    "a=fmtp:106 packetization-mode=1;profile-level-id=zzzzzz",
    "a=fmtp:106 profile-level-id=42e01f4242",
    "a=fmtp:106 ;;;==;",
    "a=candidate:9 1 udp 1 x.local 1 typ host",
    "a=candidate:",
    "a=candidate:1 1 tcp 1 10.0.0.1 9 typ host tcptype active",
    "a=mid:\u{0}",
    "a=setup:active",
    "a=fingerprint:sha-256 00",
    "c=IN IP6 ::1",
    "a=ice-ufrag:Zz99",
    "a=ice-pwd:zzzzzzzzzzzzzzzzzzzzzzzz",
    "\u{feff}",
    "\r",
    "",
];

/// The seed offer mutated: lines dropped, repeated, swapped for tokens, or bytes flipped.
fn mutated() -> impl Strategy<Value = String> {
    let lines: Vec<String> = OFFER.split_inclusive('\n').map(str::to_string).collect();
    let n = lines.len();
    (
        proptest::collection::vec((0..n, 0..4u8, 0..TOKENS.len()), 0..8),
        proptest::collection::vec((0..OFFER.len(), any::<u8>()), 0..4),
    )
        .prop_map(move |(edits, flips)| {
            let mut out = lines.clone();
            for (at, kind, token) in edits {
                let at = at.min(out.len().saturating_sub(1));
                match kind {
                    0 if !out.is_empty() => {
                        out.remove(at);
                    }
                    1 if !out.is_empty() => {
                        let line = out[at].clone();
                        out.insert(at, line);
                    }
                    2 => out.insert(at.min(out.len()), format!("{}\r\n", TOKENS[token])),
                    _ if !out.is_empty() => out[at] = format!("{}\r\n", TOKENS[token]),
                    _ => {}
                }
            }
            let mut bytes = out.concat().into_bytes();
            for (at, byte) in flips {
                if let Some(b) = bytes.get_mut(at) {
                    *b = byte;
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
}

fn any_offer() -> impl Strategy<Value = String> {
    prop_oneof![
        mutated(),
        ".{0,400}",
        proptest::collection::vec(any::<u8>(), 0..400).prop_map(|b| String::from_utf8_lossy(&b).into_owned())
    ]
}

proptest! {
    #![proptest_config(config(cases()))]

    /// The chosen payload is one the offer declares as H.264 with packetization mode 1 and a
    /// six-hex-digit (or defaulted) profile; any text is handled without a panic.
    #[test]
    fn the_codec_choice_takes_only_what_the_offer_declares(offer in any_offer()) {
        if let Some(codec) = choose_h264(&offer) {
            let declared = format!("a=rtpmap:{} ", codec.payload);
            prop_assert!(
                offer.lines().any(|l| l.trim().starts_with(&declared) && l.to_ascii_uppercase().contains("H264/90000")),
                "payload {} is not declared as H.264", codec.payload
            );
            prop_assert!(offer.contains("packetization-mode=1"));
        }
    }

    /// After filtering, no candidate needs an mDNS lookup; filtering again changes nothing;
    /// every other line is kept in order.
    #[test]
    fn no_mdns_candidate_survives_the_filter(offer in any_offer()) {
        let filtered = without_mdns_candidates(&offer);
        for line in filtered.lines() {
            let addr = line.trim_end().strip_prefix("a=candidate:").and_then(|c| c.split_whitespace().nth(4));
            prop_assert!(!addr.is_some_and(|a| a.to_ascii_lowercase().ends_with(".local")), "{line}");
        }
        prop_assert_eq!(without_mdns_candidates(&filtered), filtered.clone());
        let kept: Vec<&str> = offer.lines().filter(|l| !l.starts_with("a=candidate:")).collect();
        let after: Vec<&str> = filtered.lines().filter(|l| !l.starts_with("a=candidate:")).collect();
        prop_assert_eq!(kept, after);
    }

    /// Only 32 lower-case hex digits are a session id.
    #[test]
    fn session_ids_have_one_shape(id in ".{0,40}") {
        let expected = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        prop_assert_eq!(is_session_id(&id), expected);
    }
}

proptest! {
    #![proptest_config(config((cases() / 10).max(10)))]

    /// The whole answer path (SDP parsing, webrtcbin negotiation, candidate gathering on
    /// 127.0.0.1) answers every mutated offer within its bounds with an answer or a WHEP error;
    /// an answer always names a 128-bit session and carries candidates on 127.0.0.1 only.
    #[test]
    fn every_offer_gets_an_answer_or_an_error(offer in mutated()) {
        let (viewers, _hub) = viewers();
        let started = Instant::now();
        if let Ok(path) = std::env::var("DBG_LAST_OFFER") { let _ = std::fs::write(path, &offer); }
        match viewers.answer("cam0", &offer) {
            Ok((id, answer)) => {
                // Ended first, so that a failed check leaves no viewer behind for the next case.
                prop_assert!(viewers.end("cam0", &id));
                prop_assert!(is_session_id(&id), "{id}");
                for line in answer.lines().filter(|l| l.starts_with("a=candidate")) {
                    prop_assert!(line.contains(" 127.0.0.1 ") && !line.to_ascii_lowercase().contains(" tcp "), "candidate {:?} in answer {:?}", line, answer);
                }
            }
            Err(WhepError::BadOffer(_) | WhepError::Internal(_)) => {}
            Err(e) => prop_assert!(false, "unexpected error: {e}"),
        }
        // Negotiation (5 s) and gathering (2 s) are bounded.
        prop_assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    }
}

/// One camera's hub and its viewers, made once (as in the server: one set for the process's
/// life), with GStreamer initialised.
fn viewers() -> (Arc<Viewers>, Arc<Hub>) {
    static ONE: std::sync::OnceLock<(Arc<Viewers>, Arc<Hub>)> = std::sync::OnceLock::new();
    ONE.get_or_init(|| {
        gstreamer::init().expect("GStreamer");
        let hub = Arc::new(Hub::new(&["cam0".to_string()]));
        let viewers = Viewers::start(Arc::clone(&hub), 4, vec!["127.0.0.1".into()]).expect("viewers");
        (viewers, hub)
    })
    .clone()
}

/// The seed itself is answered (so the mutations start from an offer that works, and the
/// property above sees answers, not only errors).
#[test]
fn the_seed_offer_is_answered_without_its_mdns_candidate() {
    let (viewers, _hub) = viewers();
    let (id, answer) = viewers.answer("cam0", OFFER).expect("the seed offer is answered");
    assert!(is_session_id(&id), "{id}");
    assert!(answer.contains("a=candidate"), "{answer}");
    assert!(!viewers.end("cam1", &id), "another camera's path ends nothing");
    assert!(viewers.end("cam0", &id));
    assert!(!viewers.end("cam0", &id), "ended once");
    viewers.close_all();
}

/// Regression (found by the property above): two session-level `a=ice-ufrag` lines, with a
/// media section lacking its own, made webrtcbin abort the whole process; it is refused.
#[test]
fn duplicate_ice_credentials_are_refused_not_a_crash() {
    let (viewers, _hub) = viewers();
    let session_twice = OFFER
        .replace("a=group:BUNDLE 0\r\n", "a=group:BUNDLE 0\r\na=ice-ufrag:one1\r\na=ice-ufrag:two2\r\n")
        .replace("a=ice-ufrag:Ab3d\r\n", "");
    match viewers.answer("cam0", &session_twice) {
        Err(WhepError::BadOffer(why)) => assert!(why.contains("ice-ufrag"), "{why}"),
        other => panic!("{:?}", other.map(|(id, _)| id)),
    }
    let media_twice = OFFER
        .replace("a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n", "a=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-pwd:x\r\n");
    assert!(matches!(viewers.answer("cam0", &media_twice), Err(WhepError::BadOffer(_))));
}
