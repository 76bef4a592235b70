//! `video = "stream"`: the recorder writes the H.264 the camera's streamer already encodes
//! instead of encoding a second time. The streamer publishes every access unit with the id of
//! the frame it encodes on `framebus/<dep>/<cam>/encoded` ([`framebus_common::encoded`]); this
//! loop takes them and hands each to [`Recorder::on_unit`], which keeps everything else as in
//! the frame recorder: saving on/off, segments of `segment-secs` (cut at the first key frame
//! after that), the sidecar listing every frame id saved and skipped, disk guard, retention.
//!
//! With a pre-roll (triggers, or `pre-roll-secs`), the access units are held in memory like
//! the JPEG frames of the frame recorder ([`crate::preroll`]), in whole GOPs: a clip reaches
//! back to the last key frame at or before its start, and a GOP is let go only once the next
//! one starts early enough for any clip. Holding one costs a copy of its bytes (no decode, no
//! encode). What the order of access units says (a new encoder run, a capture restart, lost
//! units: [`UnitEvent`]) acts when the unit leaves the queue, so it cuts the segment at the
//! right unit.
//!
//! The reader loop still runs on the camera's frames, for its control, stop and timers: a
//! frame wakes the loop (it is released at once, never converted), and the access units that
//! arrived meanwhile are written. The streamer never waits for the recorder: a recorder that
//! falls more than a second behind loses its oldest queued access units (counted as skipped,
//! and the segment waits for the next key frame).

use anyhow::Context;
use framebus_common::encoded::{AccessUnitHeader, ACCESS_UNIT_VERSION};
use framebus_common::ipc;
use framebus_common::{CameraConfig, Deployment, FrameHeader, ProcessRole};

use crate::{Recorder, RecorderLoop, RecorderStatus, Turn};

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

/// What an access unit's place in the stream says, against the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitEvent {
    /// It follows the last one.
    None,
    /// The streamer started a new encoder run: the segment ends, the next starts at a key frame.
    NewRun,
    /// Capture restarted (frame ids begin again): the segment ends.
    CaptureRestart,
    /// Access units were lost before it: nothing is written before the next key frame.
    Lost,
}

/// What `unit` says after the unit `last` (encoder run, sequence, frame id).
pub fn unit_event(last: Option<(u64, u64, u64)>, unit: &AccessUnitHeader) -> UnitEvent {
    match last {
        Some((run, _, _)) if run != unit.run => UnitEvent::NewRun,
        Some((_, _, id)) if unit.frame_id <= id => UnitEvent::CaptureRestart,
        Some((_, sequence, _)) if unit.sequence != sequence + 1 => UnitEvent::Lost,
        _ => UnitEvent::None,
    }
}

/// Runs the recorder of `camera` on the streamer's access units (see the module text).
pub(crate) fn run_stream(
    deployment: &Deployment,
    camera: &CameraConfig,
    mut run: RecorderLoop<'_>,
    mut recorder: Recorder,
) -> anyhow::Result<RecorderStatus> {
    let cam = camera.name.as_str();
    // Made after the reader, and dropped before it (also on errors): the reader's clean-up
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
    run.start(&mut recorder)?;
    let budget = recorder.budget();
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
        let event = run.reader.next_event()?;
        run.take_results(&mut recorder);
        match run.handle(event, &mut recorder, &mut drain)? {
            // The frame only wakes the loop; the access units are what is written.
            Turn::Frame(frame) => drop(frame),
            Turn::Handled => {}
            Turn::Stop => return Ok::<(), anyhow::Error>(()),
        }
        drain(&mut recorder)?;
        // Held access units (pre-roll) a clip wants.
        recorder.pump(Some(budget));
    })();
    drop(subscriber);
    drop(service);
    drop(node);
    run.close(recorder, outcome.with_context(|| format!("camera `{cam}`: recording the stream")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(run: u64, sequence: u64, frame_id: u64) -> AccessUnitHeader {
        AccessUnitHeader { run, sequence, frame_id, ..AccessUnitHeader::default() }
    }

    /// The order of access units tells a new encoder run, a capture restart and losses apart.
    #[test]
    fn unit_order_tells_runs_restarts_and_losses_apart() {
        assert_eq!(unit_event(None, &unit(1, 5, 50)), UnitEvent::None);
        assert_eq!(unit_event(Some((1, 5, 50)), &unit(1, 6, 52)), UnitEvent::None, "a frame the streamer skipped");
        assert_eq!(unit_event(Some((1, 5, 50)), &unit(2, 0, 51)), UnitEvent::NewRun);
        assert_eq!(unit_event(Some((1, 5, 50)), &unit(1, 6, 3)), UnitEvent::CaptureRestart);
        assert_eq!(unit_event(Some((1, 5, 50)), &unit(1, 8, 53)), UnitEvent::Lost);
    }
}
