//! The metric families `ctl up`/`ctl metrics` answer with, from a [`Snapshot`] of every
//! process's status and figures: one function per kind of process (names and help texts in
//! docs/metrics.md).

use framebus_common::control::{ProcessState, ProcessStatus, Target};
use framebus_common::figures::{BridgeCamera, BridgeFlow, Figures, MediaServerCamera, RecorderEvents, StreamerFigures};
use framebus_common::names::DeploymentProcess;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::Snapshot;
use crate::figures::RowFigures;

/// A labelled value of one metric family.
type Labels = Vec<(&'static str, String)>;

/// One family of gauges or counters (nothing when `values` is empty).
fn encode_family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    values: Vec<(Labels, f64)>,
) -> Result<(), std::fmt::Error> {
    if values.is_empty() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in values {
        let mut sample = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => sample.encode_counter::<Labels, f64, f64>(&value, None)?,
            _ => sample.encode_gauge(&value)?,
        }
    }
    Ok(())
}

fn labels(target: &Target) -> Labels {
    vec![("camera", target.camera.clone()), ("role", target.role.as_str().to_string())]
}

impl Snapshot {
    /// The streamers' gauges: encoder, bitrates and rate.
    fn encode_streamers(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = |name: &str, help: &str, kind: MetricType, values: Vec<(Labels, f64)>| {
            encode_family(encoder, name, help, kind, values)
        };
        let streamers: Vec<(Labels, &StreamerFigures)> = self
            .with_figures()
            .filter_map(|(t, f)| match f {
                RowFigures::Process(Figures::Streamer(f)) => Some((labels(t), f)),
                _ => None,
            })
            .collect();
        let streamer = |f: &dyn Fn(&StreamerFigures) -> f64| -> Vec<(Labels, f64)> {
            streamers.iter().map(|(l, s)| (l.clone(), f(s))).collect()
        };
        family(
            "framebus_streamer_encoder_info",
            "1, labelled with the encoder the streamer uses (x264, v4l2:<device>, vaapi:<element>).",
            MetricType::Gauge,
            streamers
                .iter()
                .map(|(l, s)| {
                    let mut l = l.clone();
                    l.push(("encoder", s.encoder.clone()));
                    (l, 1.0)
                })
                .collect(),
        )?;
        family(
            "framebus_streamer_target_bitrate_bits_per_second",
            "The streamer's configured bitrate (bitrate-kbps).",
            MetricType::Gauge,
            streamer(&|s| f64::from(s.bitrate_kbps) * 1000.0),
        )?;
        family(
            "framebus_streamer_bitrate_bits_per_second",
            "Bitrate of the access units the streamer published over the last second.",
            MetricType::Gauge,
            streamer(&|s| s.measured_kbps * 1000.0),
        )?;
        family(
            "framebus_streamer_access_units_per_second",
            "Access units the streamer published per second over the last second.",
            MetricType::Gauge,
            streamer(&|s| s.fps),
        )?;
        Ok(())
    }

    /// The streamers' counters: what they published, dropped and skipped, and encoder restarts.
    fn encode_streamer_counters(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = |name: &str, help: &str, kind: MetricType, values: Vec<(Labels, f64)>| {
            encode_family(encoder, name, help, kind, values)
        };
        let streamers: Vec<(Labels, &StreamerFigures)> = self
            .with_figures()
            .filter_map(|(t, f)| match f {
                RowFigures::Process(Figures::Streamer(f)) => Some((labels(t), f)),
                _ => None,
            })
            .collect();
        let streamer = |f: &dyn Fn(&StreamerFigures) -> f64| -> Vec<(Labels, f64)> {
            streamers.iter().map(|(l, s)| (l.clone(), f(s))).collect()
        };
        family(
            "framebus_streamer_access_units",
            "Access units the streamer published on the camera's encoded service.",
            MetricType::Counter,
            streamer(&|s| s.access_units as f64),
        )?;
        family(
            "framebus_streamer_access_units_dropped",
            "Access units the streamer could not publish (queue full, too large, no sample).",
            MetricType::Counter,
            streamer(&|s| s.access_units_dropped as f64),
        )?;
        family(
            "framebus_streamer_bytes",
            "Bytes of the access units the streamer published.",
            MetricType::Counter,
            streamer(&|s| s.bytes as f64),
        )?;
        family(
            "framebus_streamer_key_frames",
            "Key frames (IDR access units) the streamer published.",
            MetricType::Counter,
            streamer(&|s| s.key_frames as f64),
        )?;
        family(
            "framebus_streamer_frames_skipped",
            "Frames the streamer did not encode (encoder busy, stalled or restarting).",
            MetricType::Counter,
            streamer(&|s| s.skipped as f64),
        )?;
        family(
            "framebus_streamer_encoder_restarts",
            "Encoder runs the streamer started after the first.",
            MetricType::Counter,
            streamer(&|s| s.restarts as f64),
        )?;
        Ok(())
    }

    /// The recorders' event families.
    fn encode_recorders(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = |name: &str, help: &str, kind: MetricType, values: Vec<(Labels, f64)>| {
            encode_family(encoder, name, help, kind, values)
        };
        let recorders: Vec<(Labels, &RecorderEvents)> = self
            .with_figures()
            .filter_map(|(t, f)| match f {
                RowFigures::Process(Figures::Recorder(f)) => Some((labels(t), f)),
                _ => None,
            })
            .collect();
        let recorder = |f: &dyn Fn(&RecorderEvents) -> f64| -> Vec<(Labels, f64)> {
            recorders.iter().map(|(l, r)| (l.clone(), f(r))).collect()
        };
        family(
            "framebus_recorder_clips",
            "Clips the recorder completed (triggers and ctl record on/off).",
            MetricType::Counter,
            recorder(&|r| r.clips as f64),
        )?;
        family(
            "framebus_recorder_triggers",
            "Results that matched one of the recorder's triggers.",
            MetricType::Counter,
            recorder(&|r| r.triggers as f64),
        )?;
        family(
            "framebus_recorder_missed_triggers",
            "Triggers whose frames were gone (the result came later than the pre-roll holds).",
            MetricType::Counter,
            recorder(&|r| r.missed_triggers as f64),
        )?;
        family(
            "framebus_recorder_preroll_frames",
            "Frames the recorder holds in memory (pre-roll, frames waiting to be written).",
            MetricType::Gauge,
            recorder(&|r| r.preroll_frames as f64),
        )?;
        family(
            "framebus_recorder_preroll_bytes",
            "Bytes of the frames the recorder holds in memory (JPEG).",
            MetricType::Gauge,
            recorder(&|r| r.preroll_bytes as f64),
        )?;
        family(
            "framebus_recorder_disk_free_bytes",
            "Free bytes on the recorder's disk at its last check.",
            MetricType::Gauge,
            recorder(&|r| r.disk_guard.free_bytes as f64),
        )?;
        family(
            "framebus_recorder_last_event_timestamp_seconds",
            "Capture time (Unix seconds) of the event that started the recorder's last clip, labelled with its label and source.",
            MetricType::Gauge,
            recorders
                .iter()
                .filter_map(|(l, r)| {
                    let event = r.last_event.as_ref()?;
                    let mut l = l.clone();
                    l.push(("label", event.label.clone()));
                    l.push(("source", event.source.clone()));
                    Some((l, event.unix_secs))
                })
                .collect(),
        )?;
        Ok(())
    }

    /// The media server's families, per camera it serves.
    fn encode_media_server(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = |name: &str, help: &str, kind: MetricType, values: Vec<(Labels, f64)>| {
            encode_family(encoder, name, help, kind, values)
        };
        let served: Vec<(Labels, &MediaServerCamera)> = self
            .with_figures()
            .flat_map(|(t, f)| {
                let cameras: Vec<&MediaServerCamera> = match f {
                    RowFigures::MediaServer(cameras) => cameras.iter().collect(),
                    RowFigures::Process(Figures::MediaServer(c)) => vec![c],
                    RowFigures::Process(_) | RowFigures::Bridge(_) => Vec::new(),
                };
                cameras
                    .into_iter()
                    .map(move |c| (vec![("camera", c.camera.clone()), ("role", t.role.as_str().to_string())], c))
            })
            .collect();
        let server = |f: &dyn Fn(&MediaServerCamera) -> f64| -> Vec<(Labels, f64)> {
            served.iter().map(|(l, c)| (l.clone(), f(c))).collect()
        };
        family(
            "framebus_mediaserver_viewers",
            "Viewers of the camera on the media server, by protocol (rtsp, rtsps, webrtc).",
            MetricType::Gauge,
            served
                .iter()
                .flat_map(|(l, c)| {
                    c.viewers.by_protocol().into_iter().map(move |(protocol, n)| {
                        let mut l = l.clone();
                        l.push(("protocol", protocol.to_string()));
                        (l, f64::from(n))
                    })
                })
                .collect(),
        )?;
        family(
            "framebus_mediaserver_publishing",
            "1 while the camera's streamer publishes access units the media server reads.",
            MetricType::Gauge,
            server(&|c| if c.publishing { 1.0 } else { 0.0 }),
        )?;
        family(
            "framebus_mediaserver_bytes_out",
            "Bytes of RTP packets the media server sent to the camera's viewers (every viewer counted).",
            MetricType::Counter,
            server(&|c| c.bytes_out as f64),
        )?;
        family(
            "framebus_mediaserver_access_units",
            "Access units the media server read from the camera's encoded service.",
            MetricType::Counter,
            server(&|c| c.access_units_in as f64),
        )?;
        family(
            "framebus_mediaserver_access_units_lost",
            "Access units missing from the sequence the media server read (its queue overflowed, or the streamer dropped them).",
            MetricType::Counter,
            server(&|c| c.access_units_lost as f64),
        )?;
        family(
            "framebus_mediaserver_access_units_skipped",
            "Access units viewers that fell behind skipped (they resume at the next key frame).",
            MetricType::Counter,
            server(&|c| c.access_units_skipped as f64),
        )?;
        Ok(())
    }

    /// The bridge's families: per camera it exports (role `bridge`) or imports (role
    /// `capture`), and per flow (`flow`, `dir`).
    fn encode_bridge(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = |name: &str, help: &str, kind: MetricType, values: Vec<(Labels, f64)>| {
            encode_family(encoder, name, help, kind, values)
        };
        let bridged = self.bridge_cameras();
        let camera = |f: &dyn Fn(&BridgeCamera) -> Option<f64>| -> Vec<(Labels, f64)> {
            bridged.iter().filter_map(|(l, c)| f(c).map(|v| (l.clone(), v))).collect()
        };
        let flows: Vec<(Labels, &BridgeFlow)> = bridged
            .iter()
            .flat_map(|(l, c)| {
                c.flows.iter().map(move |f| {
                    let mut l = l.clone();
                    l.push(("flow", f.flow.clone()));
                    l.push(("dir", f.dir.clone()));
                    (l, f)
                })
            })
            .collect();
        let flow = |f: &dyn Fn(&BridgeFlow) -> Option<f64>| -> Vec<(Labels, f64)> {
            flows.iter().filter_map(|(l, b)| f(b).map(|v| (l.clone(), v))).collect()
        };
        family(
            "framebus_bridge_peers",
            "Zenoh peers and routers the bridge's session is connected to.",
            MetricType::Gauge,
            camera(&|c| Some(f64::from(c.peers))),
        )?;
        family(
            "framebus_bridge_link_up",
            "1 while the bridged camera's link is up (export: a peer is connected; import: frames arrive).",
            MetricType::Gauge,
            camera(&|c| Some(if c.link == "up" { 1.0 } else { 0.0 })),
        )?;
        family(
            "framebus_bridge_degraded_since_timestamp_seconds",
            "Since when (Unix seconds) the bridged camera's link is degraded; absent while it is not.",
            MetricType::Gauge,
            camera(&|c| c.degraded_since_unix_secs),
        )?;
        family(
            "framebus_bridge_link_downs",
            "Times the bridged camera's link went from up to degraded.",
            MetricType::Counter,
            camera(&|c| Some(c.link_downs as f64)),
        )?;
        family(
            "framebus_bridge_messages",
            "Messages the bridge sent (dir=out) or received (dir=in), per camera and flow.",
            MetricType::Counter,
            flow(&|f| Some(f.messages as f64)),
        )?;
        family(
            "framebus_bridge_bytes",
            "Bytes of the messages the bridge sent or received, per camera and flow.",
            MetricType::Counter,
            flow(&|f| Some(f.bytes as f64)),
        )?;
        family(
            "framebus_bridge_bytes_per_second",
            "Bytes per second the bridge sent or received over the last second, per camera and flow.",
            MetricType::Gauge,
            flow(&|f| Some(f.bytes_per_sec as f64)),
        )?;
        family(
            "framebus_bridge_drops",
            "Messages lost, per camera and flow: out, refused by the session; in, missing from the sender's sequence.",
            MetricType::Counter,
            flow(&|f| Some(f.drops as f64)),
        )?;
        family(
            "framebus_bridge_latency_p50_seconds",
            "Median latency over the last second (frames, encoded): out, capture to sent; in, origin capture to published here.",
            MetricType::Gauge,
            flow(&|f| f.latency_p50_us.map(|us| us as f64 / 1e6)),
        )?;
        Ok(())
    }

    /// The cameras the bridge exports or imports, labelled with camera, role and direction.
    fn bridge_cameras(&self) -> Vec<(Labels, &BridgeCamera)> {
        self.with_figures()
            .flat_map(|(t, f)| {
                let cameras: Vec<&BridgeCamera> = match f {
                    RowFigures::Bridge(cameras) => cameras.iter().collect(),
                    RowFigures::Process(Figures::Bridge(c)) => vec![c],
                    RowFigures::Process(_) | RowFigures::MediaServer(_) => Vec::new(),
                };
                cameras.into_iter().map(move |c| {
                    let labels = vec![
                        ("camera", c.camera.clone()),
                        ("role", t.role.as_str().to_string()),
                        ("direction", c.direction.clone()),
                    ];
                    (labels, c)
                })
            })
            .collect()
    }

    /// The rows that have figures.
    fn with_figures(&self) -> impl Iterator<Item = (&Target, &RowFigures)> {
        self.rows.iter().zip(&self.figures).filter_map(|((t, _), f)| f.as_ref().map(|f| (t, f)))
    }
}

impl Snapshot {
    /// Every process: up, state, uptime, restarts, frames and rate.
    fn encode_processes(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let up = |s: &Option<ProcessStatus>| s.is_some();
        let mut family = |name: &str, help: &str, kind: MetricType, values: Vec<(Labels, f64)>| {
            encode_family(encoder, name, help, kind, values)
        };
        let answered = || self.rows.iter().filter_map(|(t, s)| s.as_ref().map(|s| (t, s)));
        let per = |f: &dyn Fn(&ProcessStatus) -> Option<f64>| -> Vec<(Labels, f64)> {
            answered().filter_map(|(t, s)| f(s).map(|v| (labels(t), v))).collect()
        };
        family(
            "framebus_up",
            "1 when the process answered its status request within 0.5 s, else 0.",
            MetricType::Gauge,
            self.rows.iter().map(|(t, s)| (labels(t), if up(s) { 1.0 } else { 0.0 })).collect(),
        )?;
        family(
            "framebus_state",
            "1 for the state the process reports (running, waiting, degraded, stopping).",
            MetricType::Gauge,
            answered()
                .flat_map(|(t, s)| {
                    [ProcessState::Running, ProcessState::Waiting, ProcessState::Degraded, ProcessState::Stopping]
                        .into_iter()
                        .map(move |state| {
                            let mut l = labels(t);
                            l.push(("state", state.name().to_string()));
                            (l, if s.state == state { 1.0 } else { 0.0 })
                        })
                })
                .collect(),
        )?;
        family(
            "framebus_uptime_seconds",
            "Seconds since the process started.",
            MetricType::Gauge,
            per(&|s| Some(s.uptime_secs)),
        )?;
        family(
            "framebus_restarts",
            "Times the supervisor restarted the process (ctl up only).",
            MetricType::Counter,
            self.rows
                .iter()
                .filter_map(|(t, _)| {
                    let key = (t.camera.clone(), t.role.as_str().to_string());
                    self.restarts.get(&key).map(|n| (labels(t), *n as f64))
                })
                .collect(),
        )?;
        family(
            "framebus_frames",
            "Frames published (capture) or processed (readers) since the process started.",
            MetricType::Counter,
            per(&|s| Some(s.frames as f64)),
        )?;
        family(
            "framebus_fps",
            "Frames per second over the last statistics window.",
            MetricType::Gauge,
            per(&|s| Some(s.fps)),
        )?;
        Ok(())
    }

    /// Capture's and the readers' figures from their status reply.
    fn encode_capture_and_readers(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = |name: &str, help: &str, kind: MetricType, values: Vec<(Labels, f64)>| {
            encode_family(encoder, name, help, kind, values)
        };
        let answered = || self.rows.iter().filter_map(|(t, s)| s.as_ref().map(|s| (t, s)));
        let per = |f: &dyn Fn(&ProcessStatus) -> Option<f64>| -> Vec<(Labels, f64)> {
            answered().filter_map(|(t, s)| f(s).map(|v| (labels(t), v))).collect()
        };
        family(
            "framebus_capture_driver_drops",
            "Frames the camera's driver dropped (never published).",
            MetricType::Counter,
            per(&|s| (s.role == "capture").then_some(s.skipped as f64)),
        )?;
        family(
            "framebus_capture_publish_cost_seconds",
            "Capture's cost of publishing one frame (write into shared memory, header, send, notify), smoothed mean.",
            MetricType::Gauge,
            per(&|s| (s.role == "capture").then_some(s.cost_ns as f64 / 1e9)),
        )?;
        family(
            "framebus_reader_skipped",
            "Frames the reader's policy released unread (newest, max-fps).",
            MetricType::Counter,
            per(&|s| s.reader.map(|r| r.skipped as f64)),
        )?;
        family(
            "framebus_reader_overwritten",
            "Frames lost to the reader's queue overflowing although its policy wanted them (every).",
            MetricType::Counter,
            per(&|s| s.reader.map(|r| r.overwritten as f64)),
        )?;
        family(
            "framebus_reader_driver_drops",
            "Frames the camera's driver dropped while the reader was attached.",
            MetricType::Counter,
            per(&|s| s.reader.map(|r| r.driver_drops as f64)),
        )?;
        family(
            "framebus_reader_frame_work_seconds",
            "Time the reader's code held one frame, smoothed mean.",
            MetricType::Gauge,
            per(&|s| s.reader.map(|_| s.cost_ns as f64 / 1e9)),
        )?;
        Ok(())
    }

    /// The recorder's and the preview's figures from their status reply.
    fn encode_recorder_and_preview(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = |name: &str, help: &str, kind: MetricType, values: Vec<(Labels, f64)>| {
            encode_family(encoder, name, help, kind, values)
        };
        let answered = || self.rows.iter().filter_map(|(t, s)| s.as_ref().map(|s| (t, s)));
        let per = |f: &dyn Fn(&ProcessStatus) -> Option<f64>| -> Vec<(Labels, f64)> {
            answered().filter_map(|(t, s)| f(s).map(|v| (labels(t), v))).collect()
        };
        family(
            "framebus_recorder_bytes_written",
            "Bytes of video, images and sidecars the recorder wrote.",
            MetricType::Counter,
            per(&|s| (s.role == "recorder").then_some(s.bytes_written as f64)),
        )?;
        family(
            "framebus_recorder_segments",
            "Segments the recorder completed.",
            MetricType::Counter,
            per(&|s| (s.role == "recorder").then_some(s.segments as f64)),
        )?;
        family(
            "framebus_recorder_deletions",
            "Old segments the recorder deleted (retention, disk floor).",
            MetricType::Counter,
            per(&|s| (s.role == "recorder").then_some(s.deletions as f64)),
        )?;
        family(
            "framebus_recorder_disk_low",
            "1 while the recorder's disk is below its free-space floor (nothing is written).",
            MetricType::Gauge,
            per(&|s| (s.role == "recorder").then_some(if s.activity == Some("disk-low") { 1.0 } else { 0.0 })),
        )?;
        family(
            "framebus_recorder_saving",
            "1 while the recorder saves (ctl record on).",
            MetricType::Gauge,
            per(&|s| (s.role == "recorder").then_some(if s.saving { 1.0 } else { 0.0 })),
        )?;
        family(
            "framebus_preview_viewers",
            "HTTP viewers connected to the preview.",
            MetricType::Gauge,
            per(&|s| (s.role == "preview").then_some(f64::from(s.viewers))),
        )?;
        Ok(())
    }

    /// The webhooks of this `ctl up` (none in `ctl metrics` or without `[[deployment.webhook]]`).
    fn encode_webhooks(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = |name: &str, help: &str, kind: MetricType, values: Vec<(Labels, f64)>| {
            encode_family(encoder, name, help, kind, values)
        };
        // Webhooks of this `ctl up` (none in `ctl metrics` or without `[[deployment.webhook]]`).
        let hooks = crate::webhooks::counters();
        let per_hook = |f: &dyn Fn(&crate::webhooks::Counters) -> u64| -> Vec<(Labels, f64)> {
            hooks.iter().map(|c| (vec![("url", c.url.clone())], f(c) as f64)).collect()
        };
        use std::sync::atomic::Ordering::Relaxed;
        for (name, help, kind, value) in [
            (
                "framebus_webhook_sent",
                "Events a webhook endpoint accepted (2xx).",
                MetricType::Counter,
                &(|c: &crate::webhooks::Counters| c.sent.load(Relaxed)) as &dyn Fn(&crate::webhooks::Counters) -> u64,
            ),
            (
                "framebus_webhook_retries",
                "Webhook attempts that failed and are tried again.",
                MetricType::Counter,
                &|c: &crate::webhooks::Counters| c.retries.load(Relaxed),
            ),
            (
                "framebus_webhook_failed",
                "Webhook events refused for good (4xx other than 408, 429).",
                MetricType::Counter,
                &|c: &crate::webhooks::Counters| c.failed.load(Relaxed),
            ),
            (
                "framebus_webhook_dropped",
                "Webhook events dropped because the endpoint's queue was full (max-queue).",
                MetricType::Counter,
                &|c: &crate::webhooks::Counters| c.dropped.load(Relaxed),
            ),
            (
                "framebus_webhook_queued",
                "Webhook events waiting to be sent.",
                MetricType::Gauge,
                &|c: &crate::webhooks::Counters| c.queued.load(Relaxed),
            ),
        ] {
            family(name, help, kind, per_hook(value))?;
        }
        Ok(())
    }

    /// The latency histograms of every process a frame passes.
    fn encode_latency(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let answered = || self.rows.iter().filter_map(|(t, s)| s.as_ref().map(|s| (t, s)));
        // Latency histograms: capture → published (capture), capture → frame in the reader's
        // hands (readers; preview: → image ready, recorder: → written).
        // Not for the per-deployment processes (the media server): no frame passes them.
        let answered: Vec<_> =
            answered().filter(|(t, _)| DeploymentProcess::from_name(t.role.as_str()).is_none()).collect();
        if !answered.is_empty() {
            let mut metric = encoder.encode_descriptor(
                "framebus_latency_seconds",
                "Latency from capture: to publish (capture), to the frame in the reader's code (readers).",
                None,
                MetricType::Histogram,
            )?;
            for (t, s) in answered {
                let h = &s.latency_histogram;
                let mut previous = 0;
                let buckets: Vec<(f64, u64)> = h
                    .buckets
                    .iter()
                    .map(|(bound, cumulative)| {
                        let count = cumulative.saturating_sub(previous);
                        previous = *cumulative;
                        (bound.map_or(f64::INFINITY, |us| us as f64 / 1e6), count)
                    })
                    .collect();
                let l = labels(t);
                metric.encode_family(&l)?.encode_histogram::<Labels>(h.sum_us as f64 / 1e6, h.count, &buckets, None)?;
            }
        }
        Ok(())
    }
}

impl prometheus_client::collector::Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Gauges and counters over every process that answered (and `up` for all).
        self.encode_processes(&mut encoder)?;
        self.encode_capture_and_readers(&mut encoder)?;
        self.encode_recorder_and_preview(&mut encoder)?;
        self.encode_webhooks(&mut encoder)?;
        // The processes' own figures (`figures` requests), one function per kind of process.
        self.encode_streamers(&mut encoder)?;
        self.encode_streamer_counters(&mut encoder)?;
        self.encode_recorders(&mut encoder)?;
        self.encode_media_server(&mut encoder)?;
        self.encode_bridge(&mut encoder)?;
        self.encode_latency(&mut encoder)?;
        Ok(())
    }
}
