//! The command line of `framebus-bench` (`framebus-bench --help`), in the library so that tests
//! (the docs test) parse command lines with it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Measures the frame bus with the real binaries (release build: `cargo build --release --bins`)
/// and prints the tables of docs/benchmarks.md. Without a command it runs every table, as `just
/// bench` does; a command runs one table.
#[derive(Debug, Parser)]
#[command(name = "framebus-bench", version)]
pub struct Cli {
    /// One table only (default: all of them).
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
}

/// A `framebus-bench` command: one table, or a process the bench starts itself.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Only the Python reader next to the Rust one (`FRAMEBUS_PYTHON` picks the interpreter,
    /// default `.venv/bin/python`).
    Python,
    /// Only the V4L2 rows (emulated device, mmap and USERPTR).
    V4l2,
    /// Only the recorder's pre-roll table.
    Recorder,
    /// Only the streaming figures (they need GStreamer and ffmpeg).
    Stream,
    /// Only the recording-beside-the-streamer table (part of `stream`).
    StreamRecord,
    /// Only the streamer with and without `overlay = true` (part of `stream`).
    StreamOverlay,
    /// Only the bridge across hosts (Zenoh on loopback) beside plain Zenoh.
    Bridge,
    /// A reader process the bench starts: `<config> <frames> [policy] [touch] [fake-v4l2]`.
    #[command(hide = true)]
    Reader(ReaderArgs),
    /// The RTSP server embedded in the encoding process, measured against the media server:
    /// `<config> <port>` (the bench starts it).
    #[command(hide = true)]
    Embedded {
        /// The deployment file of the camera.
        config: PathBuf,
        /// RTSP port to serve on.
        port: u16,
    },
}

/// The arguments of the reader process the bench starts.
#[derive(Debug, Args, PartialEq)]
pub struct ReaderArgs {
    /// The deployment file of the camera.
    pub config: PathBuf,
    /// Frames to read before it reports.
    pub frames: u64,
    /// Reader policy (`every` unless given; `-` also means `every`).
    pub policy: Option<String>,
    /// `touch`: read every byte of each frame taken, as an algorithm would; `fake-v4l2`: frames
    /// come from the emulated V4L2 device (checked against its formula, not the synthetic stamp);
    /// `-`: neither.
    pub flags: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("framebus-bench").chain(words.iter().copied()))
    }

    #[test]
    fn help_is_help_and_no_command_runs_everything() {
        let help = parse(&["--help"]).expect_err("help is not a run");
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(help.to_string().contains("stream-record"), "{help}");
        assert!(help.to_string().contains("stream-overlay"), "{help}");
        assert!(parse(&[]).expect("parses").command.is_none());
        assert!(parse(&["everything"]).is_err());
    }

    #[test]
    fn the_processes_it_starts_keep_their_arguments() {
        match parse(&["reader", "cfg.toml", "100", "every", "touch"]).expect("parses").command {
            Some(BenchCommand::Reader(args)) => assert_eq!(
                args,
                ReaderArgs {
                    config: "cfg.toml".into(),
                    frames: 100,
                    policy: Some("every".into()),
                    flags: vec!["touch".into()]
                }
            ),
            other => panic!("{other:?}"),
        }
        match parse(&["embedded", "cfg.toml", "8554"]).expect("parses").command {
            Some(BenchCommand::Embedded { config, port }) => assert_eq!((config, port), ("cfg.toml".into(), 8554)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse(&["v4l2"]).expect("parses").command, Some(BenchCommand::V4l2)));
        assert!(parse(&["reader", "cfg.toml", "many"]).is_err(), "the frame count is a number");
        assert!(parse(&["embedded", "cfg.toml"]).is_err(), "the port is required");
    }
}
