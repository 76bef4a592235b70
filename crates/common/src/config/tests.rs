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

/// A V4L2 camera: device and published formats, controls in file order, media-ctl steps.
#[test]
fn a_v4l2_camera_keeps_its_controls_in_file_order() {
    let text = GOOD.replace(
        "kind = \"synthetic\"",
        "kind = \"v4l2\"\ndevice = \"/dev/v4l/by-id/usb-cam\"\nformat = \"MJPG\"\n[camera.source.controls]\nwhite_balance_automatic = false\nauto_exposure = \"Manual Mode\"\nexposure_time_absolute = 300\n[camera.source.media-pipeline]\nkind = \"media-ctl\"\ndevice = \"/dev/media0\"\nlinks = [\"'a':0 -> 'b':0 [1]\"]",
    );
    let d = load(&text).expect("valid config");
    let cam = d.camera(None).expect("one camera");
    let SourceConfig::V4l2(v4l2) = &cam.source else { panic!("a v4l2 source: {:?}", cam.source) };
    assert_eq!(v4l2.device_format(cam.format()), PixelFormat::Mjpg);
    assert_eq!(v4l2.buffers, defaults::V4L2_BUFFERS);
    let names: Vec<&str> = v4l2.controls.0.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["white_balance_automatic", "auto_exposure", "exposure_time_absolute"]);
    assert_eq!(v4l2.controls.0[0].1, ControlValue::Bool(false));
    assert_eq!(v4l2.controls.0[1].1, ControlValue::Menu("Manual Mode".into()));
    assert!(matches!(v4l2.media_pipeline, Some(MediaPipelineConfig::MediaCtl(_))));
}

/// Control names are normalised like `v4l2-ctl` prints them.
#[test]
fn control_names_are_normalised() {
    assert_eq!(normalize_control_name("Exposure Time, Absolute"), "exposure_time_absolute");
    assert_eq!(normalize_control_name("White Balance, Automatic"), "white_balance_automatic");
    assert_eq!(normalize_control_name("brightness"), "brightness");
}

/// Which device → published format pairs capture converts in one pass.
#[test]
fn v4l2_conversions_are_single_pass_only() {
    use PixelFormat::*;
    assert_eq!(v4l2_conversion(Mjpg, Bgr3), Some(Conversion::Decode));
    assert_eq!(v4l2_conversion(Yuyv, Bgr3), Some(Conversion::Convert));
    assert_eq!(v4l2_conversion(Nv12, Nv12), Some(Conversion::Passthrough));
    assert_eq!(v4l2_conversion(Mjpg, Rgb3), None);
    assert_eq!(v4l2_conversion(Bgr3, Yuyv), None);
}
