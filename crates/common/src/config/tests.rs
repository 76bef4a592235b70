//! Config parsing and validation: good files load, bad ones give exact messages.

use std::path::Path;

use super::*;

fn load(text: &str) -> Result<Deployment, ConfigError> {
    Deployment::from_toml(Path::new("test.toml"), text)
}

const GOOD: &str = r#"
[deployment]
name = "lab"

[[camera]]
name = "cam0"
width = 640
height = 480
[camera.source]
kind = "synthetic"
[camera.algo]
"#;

#[test]
fn a_minimal_deployment_loads_with_defaults() {
    let d = load(GOOD).expect("valid config");
    let cam = d.camera(None).expect("one camera");
    assert_eq!(cam.fps, defaults::FPS);
    assert_eq!(cam.format(), PixelFormat::Bgr3);
    assert_eq!(cam.algo.as_ref().map(|a| a.queue_depth), Some(1));
    let layout = cam.slot_layout();
    assert_eq!(layout.slots(), 16);
    assert_eq!(layout.max_queue_depth, 4);
    assert_eq!(layout.payload_bytes(), 16 * 921_600);
}
