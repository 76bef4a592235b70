//! A reader of your own: opens a camera of a deployment, prints one line per frame (id, size,
//! latency from publish to frame in hand) and, when it ends (Ctrl-C, SIGTERM or `ctl stop cam0
//! rust-reader`), how many frames it processed and skipped.
//!
//! ```sh
//! just up                                                          # a deployment (other terminal)
//! cargo run --release --manifest-path examples/rust-reader/Cargo.toml -- --config configs/default.toml --camera cam0
//! ```
//!
//! While it runs, `ctl status` lists it as `rust-reader` (its role: the program's file name,
//! or `--role`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Prints id, size and latency of each frame of a framebus camera until Ctrl-C.
#[derive(Parser)]
struct Args {
    /// Deployment config file (the one the deployment runs with).
    #[arg(long, default_value = "configs/default.toml")]
    config: PathBuf,
    /// Camera name (`[[camera]] name`).
    #[arg(long, default_value = "cam0")]
    camera: String,
    /// Role to serve `ctl` under (default: the program's file name); a `[[camera.reader]]`
    /// table of that name in the config sets its policy.
    #[arg(long)]
    role: Option<String>,
    /// Stop after this many frames (default: until Ctrl-C, SIGTERM or `ctl stop`).
    #[arg(long)]
    frames: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut builder = framebus::Camera::builder(&args.config, &args.camera)
        .with_context(|| format!("opening camera `{}` of {}", args.camera, args.config.display()))?;
    if let Some(role) = &args.role {
        builder = builder.role(role)?;
    }
    let camera = builder.open().with_context(|| format!("opening camera `{}`", args.camera))?;
    eprintln!(
        "reading {} ({}) as `{}`, policy {}; Ctrl-C to stop",
        args.camera,
        camera.service_name(),
        camera.role(),
        camera.policy()
    );
    let mut seen = 0u64;
    // The iterator ends after the frame in progress on Ctrl-C, SIGTERM or `ctl stop`.
    for frame in camera.frames() {
        let frame = frame?; // valid until the end of this iteration: copy what you keep
        seen += 1;
        println!(
            "frame {} {}x{} {} bytes, latency {} us",
            frame.id(),
            frame.width(),
            frame.height(),
            frame.bytes().len(),
            frame.latency_ns() / 1000
        );
        if args.frames == Some(seen) {
            break;
        }
    }
    eprintln!("stopped after {seen} frames");
    Ok(())
}
