//! The RTSP side, on gst-rtsp-server: per camera one shared PLAY mount `/<camera>` (every
//! RTSP client of the camera shares one media: the stream is payloaded once and sent to each).
//! There is no RECORD mount: video only enters from shared memory ([`crate::ingest`]), so an
//! `ANNOUNCE`/`RECORD` from a client is refused (gst-rtsp-server answers a play-only mount with
//! an error status) and a viewer can only ever see the camera.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use framebus_common::config::{TlsFiles, ViewerUsers, REALM};
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::gst_rtsp::RTSPStatusCode;
use gstreamer_rtsp_server::prelude::*;

use crate::hub::{Channel, Hub, SinkKind};

/// The play media of a camera: the hub feeds `src`; one payloader for every client.
/// h264parse puts SPS/PPS in front of every key frame (once per access unit); the payloader
/// must not (it would put them before every IDR *slice*, and players such as ffmpeg then split
/// a multi-slice key frame into two pictures).
const PLAY_LAUNCH: &str = "( appsrc name=src is-live=true format=time max-bytes=0 \
    ! h264parse config-interval=-1 ! video/x-h264,alignment=au \
    ! rtph264pay name=pay0 pt=96 config-interval=0 aggregate-mode=zero-latency )";

/// Threads for RTSP connections; more connections share them.
const MAX_CLIENT_THREADS: i32 = 64;

/// The camera a request path names: `/<camera>` or `/<camera>/<anything>`.
pub fn camera_of_path(path: &str) -> &str {
    path.trim_start_matches('/').split('/').next().unwrap_or_default()
}

fn path_of_uri(uri: &str) -> &str {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    rest.find('/').map_or("/", |at| &rest[at..])
}

/// The role of an authenticated viewer (the token every user of the users file gets).
const VIEWER_ROLE: &str = "viewer";

/// With `viewers`, RTSP digest authentication against the users file: a client without valid
/// credentials gets `401` with a digest challenge of the realm [`REALM`], an authenticated one
/// the viewer role, which may only play the camera mounts. Digest only: basic would send the
/// password in the clear. With `tls`, RTSPS only (every connection starts with a TLS
/// handshake); without `viewers` every client then gets the viewer role.
fn authentication(viewers: Option<&ViewerUsers>, tls: Option<&TlsFiles>) -> anyhow::Result<rtsp::RTSPAuth> {
    let auth = rtsp::RTSPAuth::new();
    let mut token = rtsp::RTSPToken::builder().field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, VIEWER_ROLE).build();
    match viewers {
        Some(viewers) => {
            auth.set_realm(Some(REALM));
            auth.set_supported_methods(rtsp::gst_rtsp::RTSPAuthMethod::Digest);
            // The file was read and checked with the config (`Deployment::viewer_users`);
            // gst-rtsp-server reads the same lines (user, realm, HA1).
            anyhow::ensure!(
                auth.parse_htdigest(&viewers.file, &token),
                "RTSP: cannot read the users file `{}` (`[auth] users-file`)",
                viewers.file.display()
            );
        }
        None => auth.set_default_token(Some(&mut token)),
    }
    if let Some(tls) = tls {
        let certificate = rtsp::gio::TlsCertificate::from_files(&tls.certificate, &tls.key).with_context(|| {
            format!("RTSPS: the certificate `{}` and key `{}` ([tls])", tls.certificate.display(), tls.key.display())
        })?;
        auth.set_tls_certificate(Some(&certificate));
    }
    Ok(auth)
}

/// Starts the RTSP server on the default main context (the caller runs its loop); with
/// `viewers`, only they may play, with `tls` over RTSPS (see `authentication`).
pub fn start(
    listen: SocketAddr,
    hub: &Arc<Hub>,
    viewers: Option<&ViewerUsers>,
    tls: Option<&TlsFiles>,
) -> anyhow::Result<(rtsp::RTSPServer, glib::SourceId)> {
    let server = rtsp::RTSPServer::new();
    let guarded = viewers.is_some() || tls.is_some();
    if guarded {
        server.set_auth(Some(&authentication(viewers, tls)?));
    }
    server.set_address(&listen.ip().to_string());
    server.set_service(&listen.port().to_string());
    // Each RTSP connection gets its own thread: preparing a play media waits for the stream (up
    // to a key frame); with connections sharing one thread (the default) one client's wait
    // would hold up every other client.
    if let Some(pool) = server.thread_pool() {
        pool.set_max_threads(MAX_CLIENT_THREADS);
    }
    let mounts = server.mount_points().context("the RTSP server has no mount points")?;
    for camera in hub.cameras() {
        let Some(channel) = hub.channel(camera) else { continue };

        let play = rtsp::RTSPMediaFactory::new();
        play.set_launch(PLAY_LAUNCH);
        play.set_shared(true);
        play.set_suspend_mode(rtsp::RTSPSuspendMode::None);
        if guarded {
            play.add_role_from_structure(
                &gst::Structure::builder(VIEWER_ROLE)
                    .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                    .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                    .build(),
            );
        }
        {
            let channel = Arc::clone(&channel);
            play.connect_media_configure(move |_, media| {
                let element = media.element();
                let Some(appsrc) = element
                    .downcast_ref::<gst::Bin>()
                    .and_then(|bin| bin.by_name_recurse_up("src"))
                    .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                else {
                    tracing::error!(camera = channel.camera(), "the play media has no appsrc");
                    return;
                };
                // Every RTP packet of the shared media goes to each RTSP client playing it.
                match bin_element(&element, "pay0").and_then(|pay| pay.static_pad("src")) {
                    Some(pad) => crate::hub::count_bytes_out(&pad, &channel, true),
                    None => tracing::warn!(
                        camera = channel.camera(),
                        "the play media has no payloader: bytes out are not counted"
                    ),
                }
                let id = channel.add_sink(appsrc, SinkKind::Rtsp);
                let channel = Arc::clone(&channel);
                media.connect_unprepared(move |_| channel.remove_sink(id));
            });
        }
        mounts.add_factory(&format!("/{camera}"), play);
    }

    // A player asking for a camera nobody publishes gets 503 at once instead of waiting for a
    // stream that may never come. With authentication, a request without credentials is left
    // to it (401): whether a camera publishes is not told to anonymous clients.
    let served = Arc::clone(hub);
    let auth_on = viewers.is_some();
    server.connect_client_connected(move |_, client| {
        count_viewers(client, &served);
        let served = Arc::clone(&served);
        client.connect_pre_describe_request(move |_, ctx| {
            if auth_on && ctx.request().is_none_or(|r| r.parse_auth_credentials().is_empty()) {
                return RTSPStatusCode::Ok;
            }
            let Some(uri) = ctx.uri().map(|u| u.request_uri()) else { return RTSPStatusCode::Ok };
            let path = path_of_uri(&uri);
            let camera = camera_of_path(path);
            match served.channel(camera) {
                Some(channel) if !channel.is_publishing() => {
                    tracing::debug!(camera, "DESCRIBE while nobody publishes: 503");
                    RTSPStatusCode::ServiceUnavailable
                }
                _ => RTSPStatusCode::Ok,
            }
        });
    });

    let source =
        server.attach(None).with_context(|| format!("RTSP server: cannot listen on {listen} (is the port taken?)"))?;
    Ok((server, source))
}

/// The element `name` inside a media's bin.
fn bin_element(element: &gst::Element, name: &str) -> Option<gst::Element> {
    element.downcast_ref::<gst::Bin>().and_then(|bin| bin.by_name_recurse_up(name))
}

/// Counts the RTSP clients playing each camera: a client counts once per camera from its
/// successful PLAY until its TEARDOWN of that camera or its connection closes.
fn count_viewers(client: &rtsp::RTSPClient, hub: &Arc<Hub>) {
    let playing: Arc<Mutex<Vec<Arc<Channel>>>> = Arc::default();
    let lock = |p: &Mutex<Vec<Arc<Channel>>>| -> Vec<Arc<Channel>> { p.lock().map(|v| v.clone()).unwrap_or_default() };
    let channel_of = {
        let hub = Arc::clone(hub);
        move |ctx: &rtsp::RTSPContext| {
            let uri = ctx.uri()?.request_uri();
            hub.channel(camera_of_path(path_of_uri(&uri)))
        }
    };
    {
        let playing = Arc::clone(&playing);
        let channel_of = channel_of.clone();
        client.connect_play_request(move |_, ctx| {
            // gst-rtsp-server emits `play-request` only after a PLAY it answered with 200.
            let Some(channel) = channel_of(ctx) else { return };
            let mut playing = playing.lock().unwrap_or_else(|e| e.into_inner());
            if !playing.iter().any(|c| Arc::ptr_eq(c, &channel)) {
                channel.rtsp_viewer_joined();
                tracing::debug!(camera = channel.camera(), "RTSP viewer playing");
                playing.push(channel);
            }
        });
    }
    {
        let playing = Arc::clone(&playing);
        client.connect_teardown_request(move |_, ctx| {
            let Some(channel) = channel_of(ctx) else { return };
            let mut playing = playing.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(at) = playing.iter().position(|c| Arc::ptr_eq(c, &channel)) {
                playing.swap_remove(at).rtsp_viewer_left();
            }
        });
    }
    client.connect_closed(move |_| {
        for channel in lock(&playing) {
            channel.rtsp_viewer_left();
        }
        if let Ok(mut playing) = playing.lock() {
            playing.clear();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths map to their camera, with or without a trailing control part.
    #[test]
    fn paths_name_their_camera() {
        assert_eq!(camera_of_path("/cam0"), "cam0");
        assert_eq!(camera_of_path("/cam0/stream=0"), "cam0");
        assert_eq!(path_of_uri("rtsp://127.0.0.1:8554/cam0/stream=0"), "/cam0/stream=0");
        assert_eq!(path_of_uri("rtsp://host"), "/");
    }
}
