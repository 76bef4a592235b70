//! Prints the results published on a camera (by algo or by your own readers, in Rust or
//! Python), one JSON line each, until Ctrl-C or `ctl stop <camera> results`.
//!
//! ```sh
//! cargo run --release --example results -- --config configs/default.toml --camera cam0
//! ```
//!
//! The first line, `{"subscribed": "<camera>"}`, says it is listening: results published
//! before it are not seen.

use std::io::Write;
use std::time::Duration;

use clap::Parser;
use framebus::{Camera, Event};

/// Prints the results published on a camera as JSON lines.
#[derive(Parser)]
struct Args {
    /// Deployment config file.
    #[arg(long, default_value = "configs/default.toml")]
    config: std::path::PathBuf,
    /// Camera name.
    #[arg(long, default_value = "cam0")]
    camera: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let camera = Camera::open(&args.config, &args.camera)?;
    // The first call subscribes; anything published from here on is printed.
    let mut pending = camera.results()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::json!({ "subscribed": args.camera }))?;
    out.flush()?;
    camera.add_timer(Duration::from_millis(20));
    loop {
        for outcome in pending.drain(..) {
            writeln!(out, "{}", serde_json::to_string(&outcome)?)?;
        }
        out.flush()?;
        match camera.next_event()? {
            Event::Stop(_) => return Ok(()),
            // Frames are not what this program is about: dropped at once.
            Event::Frame(_) | Event::Command(_) | Event::Gap(_) => {}
            Event::Timer(_) => pending = camera.results()?,
        }
    }
}
