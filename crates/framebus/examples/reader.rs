//! A reader of your own, in a dozen lines: prints one line per frame (id, size, latency).
//!
//! ```sh
//! target/release/capture --config configs/default.toml &        # or `just up`
//! cargo run --release --example reader -- --config configs/default.toml --camera cam0 --frames 100
//! ```
//!
//! `ctl status` lists it as `reader` (the program's name) while it runs; `ctl stop cam0 reader`
//! or Ctrl-C ends it.

use clap::Parser;

/// Prints id, size and latency of each frame of a camera.
#[derive(Parser)]
struct Args {
    /// Deployment config file.
    #[arg(long, default_value = "configs/default.toml")]
    config: std::path::PathBuf,
    /// Camera name.
    #[arg(long, default_value = "cam0")]
    camera: String,
    /// Stop after this many frames (default: until Ctrl-C or `ctl stop`).
    #[arg(long)]
    frames: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let camera = framebus::Camera::open(&args.config, &args.camera)?;
    for (n, frame) in (1..).zip(camera.frames()) {
        let frame = frame?;
        let (id, width, height) = (frame.id(), frame.width(), frame.height());
        println!("frame {id} {width}x{height} {} bytes, latency {} us", frame.bytes().len(), frame.latency_ns() / 1000);
        if args.frames == Some(n) {
            break;
        }
    }
    Ok(())
}
