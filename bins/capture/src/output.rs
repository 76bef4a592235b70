//! The frame output: capture's publisher (sized from the config and from the samples a
//! zero-copy source keeps at its device), the frame-ready notifier, and the two ways a frame
//! is published — written into a freshly loaned sample, or already written by the device into
//! a sample it was lent — with per-phase timing and the count of frames of each way.

use anyhow::Context;
use framebus_common::config::SlotLayout;
use framebus_common::header::FRAME_HEADER_VERSION;
use framebus_common::ipc::{FrameBus, IpcService};
use framebus_common::{clock, CameraConfig, FrameHeader};
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::prelude::*;

use crate::source::{self, header_flags, FrameSource, Grab, Loan, SourceError, SourceFormat};

type FramePublisher = Publisher<IpcService, [u8], FrameHeader>;

/// Publisher, notifier and what publishing cost so far.
pub(crate) struct FrameOutput {
    publisher: FramePublisher,
    notifier: Notifier<IpcService>,
    /// Published format (the header of every frame).
    format: SourceFormat,
    /// Header flags of every frame.
    flags: u32,
    /// This capture run (header `run_id`).
    run_id: u64,
    /// Bytes of the samples lent to a zero-copy source.
    lend_bytes: usize,
    /// Nanoseconds spent per phase: loan, write, send, notify.
    pub phase_totals: [u64; 4],
    /// Nanoseconds spent from the loan (or the filled sample) to the notify.
    pub publish_ns_total: u128,
    /// Frames the device wrote into shared memory itself (capture did not touch the pixels).
    pub zero_copy_frames: u64,
    /// Frames capture wrote into a sample (copied, converted, decoded or generated).
    pub written_frames: u64,
}

/// The shared-memory layout of a camera whose source keeps `lent` samples at its device: the
/// config's layout, with the publisher able to loan them all at once.
pub(crate) fn layout_for(camera: &CameraConfig, lent: usize) -> SlotLayout {
    let mut layout = camera.slot_layout();
    layout.publisher_loans = layout.publisher_loans.max(lent);
    layout
}

impl FrameOutput {
    /// Creates the publisher (`layout.publisher_loans` samples loanable at once) and notifier.
    pub fn create(
        deployment: &str,
        bus: &FrameBus,
        layout: &SlotLayout,
        camera: &CameraConfig,
        source: &dyn FrameSource,
    ) -> anyhow::Result<FrameOutput> {
        let cam = camera.name.as_str();
        let publisher = bus
            .frames
            .publisher_builder()
            .initial_max_slice_len(layout.frame_bytes)
            .allocation_strategy(AllocationStrategy::Static)
            .max_loaned_samples(layout.publisher_loans)
            .create()
            .map_err(|e| {
                let context = format!(
                    "camera `{cam}`: creating the publisher on `{}` with {}: {e:?}",
                    bus.frames_name,
                    describe_layout(layout, source.lending().map_or(0, |l| l.buffers))
                );
                // A /dev/shm filled since the budget check may fail the creation: say so (the
                // supervisor retries).
                match framebus_common::shm_budget::short_of(
                    camera.shared_memory_bytes(),
                    &format!("camera `{cam}`'s frame segment"),
                ) {
                    Some(short) => anyhow::Error::new(short).context(context),
                    None => anyhow::anyhow!(
                        "{context} (is /dev/shm large enough? lower `slots`, `buffers` or the frame size)"
                    ),
                }
            })?;
        // iceoryx2 only sizes the segment (a sparse tmpfs file): take every page now, so a
        // /dev/shm filled later never faults capture on a slot it had not written yet.
        let reserved = framebus_common::shm_budget::reserve_data_segment(
            deployment,
            publisher.id().value(),
            &format!("camera `{cam}`'s frame segment"),
        )
        .with_context(|| format!("camera `{cam}`: reserving the shared memory of `{}`", bus.frames_name))?;
        tracing::debug!(camera = cam, bytes = reserved, "frame segment reserved");
        let notifier = bus
            .ready
            .notifier_builder()
            .create()
            .map_err(|e| anyhow::anyhow!("camera `{cam}`: creating the frame-ready notifier: {e:?}"))?;
        Ok(FrameOutput {
            publisher,
            notifier,
            format: source.format(),
            flags: header_flags(camera),
            run_id: clock::realtime_ns(),
            lend_bytes: source.lending().map_or(0, |l| l.sample_bytes),
            phase_totals: [0; 4],
            publish_ns_total: 0,
            zero_copy_frames: 0,
            written_frames: 0,
        })
    }

    /// Lends a zero-copy source the samples its device lacks (at start, after each frame and
    /// after a reconnect). A loan the publisher refuses means the layout is wrong: fatal.
    pub fn supply(&mut self, source: &mut dyn FrameSource) -> Result<(), SourceError> {
        for _ in 0..source.loans_missing() {
            let loan = self.publisher.loan_slice_uninit(self.lend_bytes).map_err(|e| {
                SourceError::Fatal(anyhow::anyhow!(
                    "loaning a {}-byte sample for the device: {e:?} (the shared memory holds too few slots)",
                    self.lend_bytes
                ))
            })?;
            source.lend(loan)?;
        }
        Ok(())
    }

    /// Publishes the grabbed frame as frame `frame_id`: the sample the device filled, or a loaned
    /// one the source writes into; `Ok(Ok(ns))` with the publish cost of this frame (loan to
    /// notify). `Ok(Err(why))`: the source could not write this frame (the sample goes back
    /// unsent). Notifies readers after a send.
    pub fn publish(
        &mut self,
        source: &mut dyn FrameSource,
        frame_id: u64,
        grab: &Grab,
    ) -> anyhow::Result<Result<u64, String>> {
        let start = clock::monotonic_ns();
        let (sample, loaned) = match source.take_filled() {
            Some(filled) => {
                self.zero_copy_frames += 1;
                (filled, start)
            }
            None => {
                let mut sample = self
                    .publisher
                    .loan_slice_uninit(grab.payload_len)
                    .map_err(|e| anyhow::anyhow!("loaning a sample: {e:?}"))?;
                let loaned = clock::monotonic_ns();
                match source.write_into(frame_id, sample.payload_mut()) {
                    Ok(()) => {}
                    Err(SourceError::BadFrame(why)) => return Ok(Err(why)),
                    Err(SourceError::Fatal(e)) => return Err(e),
                    Err(other) => anyhow::bail!("writing the frame: {}", source::describe_error(&other)),
                }
                self.written_frames += 1;
                (sample, loaned)
            }
        };
        let (written, sent) = self.send(sample, frame_id, grab).context("sending")?;
        // Readers wait on this event; a failed notify only delays them until the next frame.
        if let Err(e) = self.notifier.notify() {
            tracing::debug!("notify failed: {e:?}");
        }
        let done = clock::monotonic_ns();
        self.phase_totals[0] += loaned.saturating_sub(start);
        self.phase_totals[1] += written.saturating_sub(loaned);
        self.phase_totals[2] += sent.saturating_sub(written);
        self.phase_totals[3] += done.saturating_sub(sent);
        let cost = done.saturating_sub(start);
        self.publish_ns_total += u128::from(cost);
        Ok(Ok(cost))
    }

    /// Fills the header, marks the sample written and sends it; returns when the header was
    /// written and when the send returned.
    fn send(&mut self, mut sample: Loan, frame_id: u64, grab: &Grab) -> anyhow::Result<(u64, u64)> {
        let format = self.format;
        *sample.user_header_mut() = FrameHeader {
            layout_version: FRAME_HEADER_VERSION,
            header_size: core::mem::size_of::<FrameHeader>() as u32,
            frame_id,
            sequence: grab.sequence,
            capture_mono_ns: grab.capture_mono_ns,
            capture_realtime_ns: grab.capture_realtime_ns,
            publish_mono_ns: clock::monotonic_ns(),
            width: format.width,
            height: format.height,
            stride: format.format.stride(format.width),
            pixel_format: format.format.fourcc(),
            payload_len: grab.payload_len as u32,
            flags: self.flags,
            source_drops: grab.source_drops,
            run_id: self.run_id,
        };
        // SAFETY: every one of the `payload_len` bytes was written: by `write_into` (its
        // contract) or by the device, which returned the buffer as done and whose `bytesused`
        // the source checked against the frame size.
        let sample = unsafe { sample.assume_init() };
        let written = clock::monotonic_ns();
        sample.send().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok((written, clock::monotonic_ns()))
    }

    /// Readers attached now.
    pub fn readers(&self, bus: &FrameBus) -> usize {
        bus.frames.dynamic_config().number_of_subscribers()
    }

    /// Mean nanoseconds per frame of each phase and in total, over `frames`.
    pub fn means(&self, frames: u64) -> (f64, [f64; 4]) {
        if frames == 0 {
            return (0.0, [0.0; 4]);
        }
        (self.publish_ns_total as f64 / frames as f64, self.phase_totals.map(|t| t as f64 / frames as f64))
    }
}

/// The line capture logs at start: how much shared memory the camera reserves and for what.
pub(crate) fn describe_layout(layout: &SlotLayout, lent: usize) -> String {
    let driver = if lent > 0 { format!(", {lent} of them the driver's USERPTR buffers") } else { String::new() };
    format!(
        "{} slots x {} bytes = {:.1} MiB ({} readers x (queue {} + {} borrowed) + {} loaned{driver})",
        layout.slots(),
        layout.frame_bytes,
        layout.payload_bytes() as f64 / (1024.0 * 1024.0),
        layout.max_readers,
        layout.max_queue_depth,
        layout.reader_borrows,
        layout.publisher_loans,
    )
}
