//! `video = "stream"`: the recorder writes the H.264 the camera's streamer already encodes
//! instead of encoding a second time. The streamer publishes every access unit with the id of
//! the frame it encodes on `framebus/<dep>/<cam>/encoded` ([`framebus_common::encoded`]); this
//! loop takes them and hands each to [`Recorder::on_unit`], which keeps everything else as in
//! the frame recorder: saving on/off, segments of `segment-secs` (cut at the first key frame
//! after that), the sidecar listing every frame id saved and skipped, disk guard, retention.
//!
//! The reader loop still runs on the camera's frames, for its control, stop and timers: a
//! frame wakes the loop (it is released at once, never converted), and the access units that
//! arrived meanwhile are written. The streamer never waits for the recorder: a recorder that
//! falls more than a second behind loses its oldest queued access units (counted as skipped,
//! and the segment waits for the next key frame).

use anyhow::Context;
use framebus::{Camera, Command, Event};
use framebus_common::encoded::{AccessUnitHeader, ACCESS_UNIT_VERSION};
use framebus_common::ipc;
use framebus_common::{CameraConfig, Deployment, FrameHeader, ProcessRole};

use crate::{housekeeping_tick, print_stats, Recorder, RecorderOptions, RecorderStatus, HOUSEKEEPING};

/// The frame header the sidecar and the segment logic see for an access unit (its frame's
/// id, capture times and size; `sequence` is 0: the source's sequence does not travel with
/// the access unit).
pub fn frame_header(unit: &AccessUnitHeader) -> FrameHeader {
    FrameHeader {
        frame_id: unit.frame_id,
        capture_mono_ns: unit.capture_mono_ns,
        capture_realtime_ns: unit.capture_realtime_ns,
        width: unit.width,
        height: unit.height,
        payload_len: unit.payload_len,
        ..FrameHeader::default()
    }
}

/// Runs the recorder of `camera` on the streamer's access units (see the module text).
pub fn run_stream(
    deployment: &Deployment,
    camera: &CameraConfig,
    options: &RecorderOptions,
    mut recorder: Recorder,
    stats_interval: std::time::Duration,
) -> anyhow::Result<RecorderStatus> {
    let cam = camera.name.as_str();
    let mut builder = Camera::builder_for(deployment, Some(cam))
        .role(ProcessRole::Recorder.name())?
        .stats_interval(stats_interval)
        .handles_saving();
    if let Some(on) = options.saving {
        builder = builder.record(Command::SetSaving(on));
    }
    let reader = builder.open()?;
    // Declared after the reader, so dropped before it (also on errors): the reader's clean-up
    // of a finished deployment must find no node of this process left.
    let node = ipc::create_node(deployment, ProcessRole::Recorder.name(), cam)?;
    let service = ipc::open_encoded(&node, deployment.name(), camera)?;
    let layout = camera.encoded_layout();
    let subscriber = service
        .subscriber_builder()
        .buffer_size(layout.queue)
        .create()
        .map_err(|e| anyhow::anyhow!("camera `{cam}`: subscribing to the streamer's access units: {e:?}"))?;
    tracing::info!(
        camera = cam,
        "video = \"stream\": writing the streamer's H.264 into MP4 segments (no encoding here); {} access units queued at most",
        layout.queue
    );
    recorder.set_saving(reader.flags().saving);
    reader.report(|r| *r = recorder.report());
    let house = reader.add_timer(HOUSEKEEPING);
    let stats = reader.add_timer(stats_interval);
    let mut wrong_version = 0u64;
    let mut drain = |recorder: &mut Recorder| -> anyhow::Result<()> {
        while let Some(sample) =
            subscriber.receive().map_err(|e| anyhow::anyhow!("camera `{cam}`: reading access units: {e:?}"))?
        {
            let unit = *sample.user_header();
            if unit.layout_version != ACCESS_UNIT_VERSION {
                wrong_version += 1;
                if wrong_version == 1 {
                    tracing::error!(
                        camera = cam,
                        "access unit of layout version {} (this recorder reads {ACCESS_UNIT_VERSION}): skipped; are streamer and recorder of one build?",
                        unit.layout_version
                    );
                }
                continue;
            }
            let len = (unit.payload_len as usize).min(sample.payload().len());
            recorder.on_unit(&unit, &sample.payload()[..len]);
        }
        Ok(())
    };
    let outcome = (|| loop {
        let event = reader.next_event()?;
        match event {
            // The frame only wakes the loop; the access units are what is written.
            Event::Frame(frame) => drop(frame),
            Event::Command(Command::SetSaving(on)) => {
                drain(&mut recorder)?;
                recorder.set_saving(on);
                reader.report(|r| *r = recorder.report());
            }
            Event::Command(_) => {}
            Event::Timer(timer) if timer == house => housekeeping_tick(deployment, cam, &mut recorder, &reader),
            Event::Timer(timer) if timer == stats => print_stats(&mut recorder, options.json),
            Event::Timer(_) => {}
            Event::Stop(_) => {
                drain(&mut recorder)?;
                return Ok::<(), anyhow::Error>(());
            }
        }
        drain(&mut recorder)?;
    })();
    // This node goes before the reader: the reader's clean-up of a finished deployment runs
    // when it is dropped and must find no node of this process left.
    drop(subscriber);
    drop(service);
    drop(node);
    drop(reader);
    recorder.finish();
    let line = recorder.report_line();
    if options.json {
        println!("{line}");
    }
    outcome.with_context(|| format!("camera `{cam}`: recording the stream"))?;
    Ok(recorder.status())
}
