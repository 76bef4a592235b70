//! The recorder process: a reader of one camera on the reader loop (crate `framebus`, policy
//! `every`, a deeper queue to ride out slow writes) that writes clips: video segments and/or
//! images with a sidecar index (JSON lines) that lists every frame saved and
//! every frame skipped. A disk guard stops writing below a free-space floor and resumes when
//! space is back (optionally deleting the oldest segments first); retention deletes segments
//! older than `max-age-days` or beyond `max-total-mb`.
//!
//! What is recorded: without triggers, every frame while saving is on (continuous recording).
//! With `[[camera.recorder.trigger]]`s the recorder is armed whenever it runs: it keeps a
//! pre-roll of recent frames (JPEG, in memory, [`preroll`]) and a result that matches a
//! trigger opens a clip from `pre-roll-secs` before the result's frame to `post-roll-secs`
//! after the last matching one ([`clip`]). Saving on (`ctl record on`) is a manual trigger
//! either way: its clip starts with the pre-roll and lasts until saving is off. Every clip is
//! journaled (`<directory>/events/<camera>.jsonl`, [`framebus_common::journal::write`]) for `ctl events`.
//!
//! The pieces, one concern each: [`clip`] (the clip state machine: windows of capture time
//! and the clip being written), [`preroll`] (the held frames), [`writer`] (the segment
//! writer, over [`segment`]), [`guard`] (disk guard and retention, over [`disk`]), [`status`]
//! (what is reported), the journal ([`framebus_common::journal::write`]); [`recorder`] wires them, and this file runs the loop (one
//! set-up for frames and for the stream, [`stream`]).
//!
//! The saving state lives in [`Recorder`] and changes only through [`Recorder::set_saving`];
//! the reader loop's control thread forwards `ctl record on|off` and the status reply carries
//! [`Recorder::report`]. The initial state is the camera's recorded saving flag (so a killed,
//! restarted recorder resumes saving), else `[camera.recorder] enabled`; `--saving` on the
//! command line is recorded like a command. SIGHUP re-reads the disk-guard and retention
//! settings (`min-free-mb`, `min-free-inodes`, `delete-oldest`, `max-age-days`,
//! `max-total-mb`) from the config file.

pub mod cli;
pub mod clip;
pub mod disk;
pub mod guard;
pub mod mp4;
pub mod preroll;
pub mod recorder;
pub mod segment;
pub mod status;
pub mod stream;
pub mod writer;

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context};
use framebus::{Camera, Command, Event, Frame, TimerId};
use framebus_common::config::VideoFormat;
use framebus_common::{signals, CameraConfig, Deployment, ProcessRole};

pub use crate::recorder::{Disposition, Recorder};
pub use crate::status::{RecorderState, RecorderStatus};

/// Options of one recorder run beyond the config.
#[derive(Debug, Clone, Default)]
pub struct RecorderOptions {
    /// Saving on or off, recorded like `ctl record on|off`; `None` resumes the camera's
    /// recorded flag, else takes `enabled` from the config.
    pub saving: Option<bool>,
    /// Print every statistics report as one JSON line on stdout.
    pub json: bool,
}

/// How often the disk guard looks at free space.
const HOUSEKEEPING: Duration = Duration::from_millis(250);

/// What the shared part of a loop turn leaves to the loop.
pub(crate) enum Turn<'a> {
    /// A frame: the loop's own business.
    Frame(Frame<'a>),
    /// Handled (a command, a timer).
    Handled,
    /// Stop: the loop ends.
    Stop,
}

/// The reader loop both recorders (frames, stream) run on: the camera's reader (control,
/// stop, timers and frames), the housekeeping and statistics timers, and what every turn does
/// but take frames.
pub(crate) struct RecorderLoop<'d> {
    deployment: &'d Deployment,
    camera: String,
    /// The camera's reader.
    pub reader: Camera,
    json: bool,
    house: Option<TimerId>,
    stats: Option<TimerId>,
    stats_interval: Duration,
    /// Results are read (the recorder has triggers).
    triggered: bool,
    results_failed: std::cell::Cell<bool>,
}

impl<'d> RecorderLoop<'d> {
    /// Opens the recorder's reader of `camera`. Precedence of the saving flag: `--saving`
    /// (recorded like a command, so a restart without it resumes it), else the camera's
    /// recorded flag (a killed recorder resumes saving), else `enabled` from the config (the
    /// control server resolves those two).
    pub fn open(
        deployment: &'d Deployment,
        camera: &CameraConfig,
        options: &RecorderOptions,
        stats_interval: Duration,
    ) -> anyhow::Result<RecorderLoop<'d>> {
        let mut builder = Camera::builder_for(deployment, Some(&camera.name))
            .role(ProcessRole::Recorder.name())?
            .stats_interval(stats_interval)
            .handles_saving();
        if let Some(on) = options.saving {
            builder = builder.record(Command::SetSaving(on));
        }
        Ok(RecorderLoop {
            deployment,
            camera: camera.name.clone(),
            reader: builder.open()?,
            json: options.json,
            house: None,
            stats: None,
            stats_interval,
            triggered: false,
            results_failed: std::cell::Cell::new(false),
        })
    }

    /// Starts: results are subscribed to (with triggers: from here on they are seen), the
    /// recorder takes the saving flag, the status is published and the timers run.
    pub fn start(&mut self, recorder: &mut Recorder) -> anyhow::Result<()> {
        self.triggered = recorder.has_triggers();
        if self.triggered {
            let camera = &self.camera;
            self.reader
                .results()
                .with_context(|| format!("camera `{camera}`: reading results for the recorder's triggers"))?;
        }
        recorder.set_saving(self.reader.flags().saving);
        self.reader.report(|r| *r = recorder.report());
        self.house = Some(self.reader.add_timer(HOUSEKEEPING));
        self.stats = Some(self.reader.add_timer(self.stats_interval));
        Ok(())
    }

    /// Every turn, before the frames or access units: the results published since the last
    /// turn (a result about a frame decides whether it is wanted).
    pub fn take_results(&self, recorder: &mut Recorder) {
        if !self.triggered {
            return;
        }
        match self.reader.results() {
            Ok(results) => recorder.on_results(&results),
            Err(e) if !self.results_failed.replace(true) => {
                tracing::error!(camera = self.camera, "reading results: {e}");
            }
            Err(_) => {}
        }
    }

    /// Handles `event` but a frame: `ctl record on|off` (after `before`, which brings the
    /// recorder up to date), the timers, the stop (also after `before`).
    pub fn handle<'a>(
        &self,
        event: Event<'a>,
        recorder: &mut Recorder,
        before: &mut dyn FnMut(&mut Recorder) -> anyhow::Result<()>,
    ) -> anyhow::Result<Turn<'a>> {
        match event {
            Event::Frame(frame) => return Ok(Turn::Frame(frame)),
            Event::Command(Command::SetSaving(on)) => {
                before(recorder)?;
                recorder.set_saving(on);
                self.reader.report(|r| *r = recorder.report());
            }
            Event::Command(_) => {}
            Event::Timer(timer) if Some(timer) == self.house => self.housekeeping(recorder),
            Event::Timer(timer) if Some(timer) == self.stats => self.print_stats(recorder),
            Event::Timer(_) | Event::Gap(_) => {}
            Event::Stop(_) => {
                before(recorder)?;
                return Ok(Turn::Stop);
            }
        }
        Ok(Turn::Handled)
    }

    /// The housekeeping timer: a SIGHUP re-reads the disk-guard and retention settings, then
    /// the disk guard and retention run and the status is refreshed.
    fn housekeeping(&self, recorder: &mut Recorder) {
        let camera = self.camera.as_str();
        if signals::take_hangup() {
            tracing::info!(
                camera,
                "SIGHUP: re-reading the disk-guard and retention settings from {}",
                self.deployment.source_file.display()
            );
            reload_settings(&self.deployment.source_file, camera, recorder);
        }
        recorder.housekeeping();
        self.reader.report(|r| *r = recorder.report());
    }

    /// The statistics timer: the status line, on stdout with `--json`.
    fn print_stats(&self, recorder: &mut Recorder) {
        let line = recorder.report_line();
        if self.json {
            println!("{line}");
        }
    }

    /// Ends the run: off the bus first (the held frames a clip still wants may take a few
    /// seconds to write, and `ctl stop` should see the process gone from control meanwhile),
    /// then the recorder finishes and prints its last status line.
    pub fn close(self, mut recorder: Recorder, outcome: anyhow::Result<()>) -> anyhow::Result<RecorderStatus> {
        let json = self.json;
        drop(self.reader);
        recorder.finish();
        let line = recorder.report_line();
        if json {
            println!("{line}");
        }
        outcome?;
        Ok(recorder.status())
    }
}

fn reload_settings(config_file: &Path, camera: &str, recorder: &mut Recorder) {
    match Deployment::load(config_file).map_err(anyhow::Error::from).and_then(|d| {
        let cam = d.camera(Some(camera))?;
        cam.recorder.clone().ok_or_else(|| anyhow!("camera `{camera}` has no [camera.recorder] table any more"))
    }) {
        Ok(cfg) => {
            recorder.set_disk_guard(cfg.min_free_mb, cfg.min_free_inodes, cfg.delete_oldest);
            recorder.set_retention(cfg.max_age_days, cfg.max_total_mb);
        }
        Err(e) => tracing::error!(camera, "SIGHUP: keeping the current disk-guard and retention settings: {e:#}"),
    }
}

/// Runs the recorder of `camera` until SIGINT/SIGTERM or `ctl stop <camera> recorder`;
/// finalizes the current segment and returns the final status.
pub fn run(
    deployment: &Deployment,
    camera: &CameraConfig,
    options: &RecorderOptions,
) -> anyhow::Result<RecorderStatus> {
    let config = camera.recorder.clone().unwrap_or_default();
    let directory = deployment.resolve_path(&config.directory);
    let stats_interval = Duration::from_secs_f64(config.stats_interval_secs);
    let stream_video = config.video == VideoFormat::Stream;
    let recorder = Recorder::new(camera, config, directory)?;
    signals::install_hangup();
    let run = RecorderLoop::open(deployment, camera, options, stats_interval)?;
    if stream_video {
        return stream::run_stream(deployment, camera, run, recorder);
    }
    run_frames(run, recorder)
}

/// The frame recorder's loop: results before every frame, then the frame written, held or
/// ignored, then held frames written for at most the turn's budget.
fn run_frames(mut run: RecorderLoop<'_>, mut recorder: Recorder) -> anyhow::Result<RecorderStatus> {
    run.start(&mut recorder)?;
    let budget = recorder.budget();
    let outcome = (|| loop {
        let event = run.reader.next_event()?;
        run.take_results(&mut recorder);
        match run.handle(event, &mut recorder, &mut |_| Ok(()))? {
            Turn::Frame(frame) => take_frame(&mut recorder, frame),
            Turn::Handled => {}
            Turn::Stop => return Ok::<(), anyhow::Error>(()),
        }
        recorder.pump(Some(budget));
    })();
    run.close(recorder, outcome)
}

/// Writes, holds or ignores a frame; the sample is released before the slow part (encode,
/// disk).
fn take_frame(recorder: &mut Recorder, frame: Frame<'_>) {
    let header = *frame.header();
    if !header.is_current_layout() {
        return;
    }
    match recorder.on_frame(&header) {
        Disposition::Write => {
            let converted = recorder.convert(&header, frame.bytes());
            drop(frame);
            if converted {
                recorder.save(&header);
            }
        }
        Disposition::Hold => {
            let encode = recorder.hold_received(&header, frame.bytes());
            drop(frame);
            if encode {
                recorder.hold_converted(&header);
            }
        }
        Disposition::Ignore => {}
    }
}

#[cfg(test)]
mod tests;
