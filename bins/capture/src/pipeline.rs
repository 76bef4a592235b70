//! The media-pipeline hook: board-specific set-up that must run before the video device is
//! opened (media-controller links and pad formats for CSI sensors), again before every
//! reconnect, and undone at teardown. A new board is one implementation of [`MediaPipeline`],
//! chosen by the camera's config in [`pipeline_for`].

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use framebus_common::config::{MediaCtlConfig, MediaPipelineConfig, SourceConfig};
use framebus_common::CameraConfig;

/// Board-specific media-pipeline set-up around a camera's capture session.
pub trait MediaPipeline {
    /// Short name for logs.
    fn name(&self) -> &str;
    /// Runs before the source is opened (and again before each reconnect).
    fn setup(&mut self, camera: &CameraConfig) -> anyhow::Result<()>;
    /// Runs when capture stops; errors are logged, not fatal.
    fn teardown(&mut self, camera: &CameraConfig) -> anyhow::Result<()> {
        let _ = camera;
        Ok(())
    }
}

/// The default: nothing to set up (USB cameras, synthetic and file sources).
#[derive(Debug, Default)]
pub struct NoPipeline;

impl MediaPipeline for NoPipeline {
    fn name(&self) -> &str {
        "none"
    }

    fn setup(&mut self, _camera: &CameraConfig) -> anyhow::Result<()> {
        Ok(())
    }
}

/// One `media-ctl` invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaCtlStep {
    /// Arguments after the program name.
    pub args: Vec<String>,
}

impl MediaCtlStep {
    /// The step as a shell-like command line, for messages.
    pub fn command_line(&self, program: &str) -> String {
        let quote = |a: &String| {
            if a.chars().all(|c| c.is_ascii_alphanumeric() || "/-_.:=".contains(c)) {
                a.clone()
            } else {
                format!("\"{}\"", a.replace('"', "\\\""))
            }
        };
        std::iter::once(program.to_string()).chain(self.args.iter().map(quote)).collect::<Vec<_>>().join(" ")
    }
}

/// Media-controller set-up with `media-ctl` (v4l-utils), described in the TOML: an optional
/// reset, then every link (`-l`), then every pad format (`-V`), in the order written. Each
/// step's exit status is checked; the first failing one stops the set-up and is reported with
/// its output.
#[derive(Debug, Clone)]
pub struct MediaCtl {
    program: String,
    steps: Vec<MediaCtlStep>,
    timeout: Duration,
}

impl MediaCtl {
    /// The steps of a `[camera.source.media-pipeline] kind = "media-ctl"` table.
    pub fn new(config: &MediaCtlConfig) -> MediaCtl {
        let device = config.device.display().to_string();
        let step = |flag: &str, value: Option<&String>| MediaCtlStep {
            args: ["-d".to_string(), device.clone(), flag.to_string()].into_iter().chain(value.cloned()).collect(),
        };
        let mut steps = Vec::new();
        if config.reset {
            steps.push(step("-r", None));
        }
        steps.extend(config.links.iter().map(|link| step("-l", Some(link))));
        steps.extend(config.formats.iter().map(|format| step("-V", Some(format))));
        MediaCtl { program: config.command.clone(), steps, timeout: Duration::from_secs_f64(config.timeout_secs) }
    }

    /// The steps, in the order they run.
    pub fn steps(&self) -> &[MediaCtlStep] {
        &self.steps
    }

    fn run_step(&self, step: &MediaCtlStep) -> anyhow::Result<()> {
        let mut child = Command::new(&self.program)
            .args(&step.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run `{}` (is v4l-utils installed?)", self.program))?;
        // Drain both pipes while waiting, so a chatty step cannot block on a full pipe.
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_string(&mut text);
                }
                text
            })
        };
        let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
        let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
        let until = Instant::now() + self.timeout;
        let status = loop {
            if let Some(status) = child.try_wait().context("waiting for the step")? {
                break Some(status);
            }
            if Instant::now() >= until {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let output = [stderr, stdout]
            .into_iter()
            .filter_map(|t| t.join().ok())
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        let output = if output.is_empty() { "no output".to_string() } else { output };
        match status {
            None => bail!("timed out after {:?}; output: {output}", self.timeout),
            Some(status) if !status.success() => bail!("{status}; output: {output}"),
            Some(_) => Ok(()),
        }
    }
}

impl MediaPipeline for MediaCtl {
    fn name(&self) -> &str {
        "media-ctl"
    }

    fn setup(&mut self, camera: &CameraConfig) -> anyhow::Result<()> {
        let total = self.steps.len();
        for (i, step) in self.steps.iter().enumerate() {
            let line = step.command_line(&self.program);
            tracing::info!(camera = camera.name, "media pipeline step {}/{total}: {line}", i + 1);
            self.run_step(step).map_err(|e| anyhow!("step {}/{total} `{line}` failed: {e:#}", i + 1))?;
        }
        Ok(())
    }
}

/// The pipeline a camera's config selects: `[camera.source.media-pipeline]` of a V4L2 source,
/// or none.
pub fn pipeline_for(camera: &CameraConfig) -> Box<dyn MediaPipeline> {
    match &camera.source {
        SourceConfig::V4l2(v4l2) => match &v4l2.media_pipeline {
            Some(MediaPipelineConfig::MediaCtl(config)) => Box::new(MediaCtl::new(config)),
            Some(MediaPipelineConfig::None) | None => Box::new(NoPipeline),
        },
        _ => Box::new(NoPipeline),
    }
}
