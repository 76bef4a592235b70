use super::*;

fn m2m() -> M2mEncoder {
    M2mEncoder {
        device: PathBuf::from("/dev/video11"),
        driver: "bcm2835-codec".into(),
        card: "bcm2835-codec-encode".into(),
        inputs: vec!["YU12".into(), "NV12".into()],
    }
}

fn vaapi() -> VaapiEncoder {
    VaapiEncoder { render_node: PathBuf::from("/dev/dri/renderD128"), element: "vah264enc".into() }
}

/// Without any hardware, `auto` falls back to x264 and says why for both hardware paths.
#[test]
fn auto_falls_back_to_x264_and_says_why() {
    let probe = Probe { vaapi: Err("no render node /dev/dri/renderD*".into()), ..Probe::default() };
    let choice = choose(EncoderChoice::Auto, &probe).expect("x264 is always possible");
    assert_eq!(choice.encoder, Encoder::X264);
    assert!(choice.reason.contains("no V4L2 M2M H.264 encoder (no /dev/video* device)"), "{}", choice.reason);
    assert!(choice.reason.contains("no VAAPI H.264 encoder (no render node"), "{}", choice.reason);
}

/// A V4L2 M2M encoder wins over VAAPI; VAAPI wins over x264; an M2M device GStreamer has no
/// element for is passed over with its reason.
#[test]
fn hardware_is_preferred_in_order() {
    let both =
        Probe { v4l2: Some(m2m()), v4l2_element: Some("v4l2h264enc".into()), vaapi: Ok(vaapi()), ..Probe::default() };
    let choice = choose(EncoderChoice::Auto, &both).expect("choice");
    assert_eq!(choice.encoder, Encoder::V4l2 { element: "v4l2h264enc".into(), device: "/dev/video11".into() });
    assert!(choice.reason.contains("bcm2835-codec"), "{}", choice.reason);

    let unregistered = Probe { v4l2: Some(m2m()), v4l2_element: None, vaapi: Ok(vaapi()), ..Probe::default() };
    assert_eq!(
        choose(EncoderChoice::Auto, &unregistered).expect("choice").encoder,
        Encoder::Vaapi { element: "vah264enc".into() }
    );
    let none = Probe { v4l2: Some(m2m()), v4l2_element: None, vaapi: Err("x".into()), ..Probe::default() };
    let choice = choose(EncoderChoice::Auto, &none).expect("choice");
    assert_eq!(choice.encoder, Encoder::X264);
    assert!(choice.reason.contains("registered no element"), "{}", choice.reason);
}

/// Asking for hardware the machine lacks is an error that names what is missing; x264 is
/// always available.
#[test]
fn explicit_hardware_that_is_missing_is_an_error() {
    let probe = Probe {
        v4l2_notes: vec!["/dev/video0: not a V4L2 device".into()],
        vaapi: Err("no render node".into()),
        ..Probe::default()
    };
    let e = choose(EncoderChoice::V4l2, &probe).expect_err("no v4l2");
    assert!(e.contains("encoder = \"v4l2\"") && e.contains("/dev/video0: not a V4L2 device"), "{e}");
    let e = choose(EncoderChoice::Vaapi, &probe).expect_err("no vaapi");
    assert!(e.contains("no render node"), "{e}");
    assert_eq!(choose(EncoderChoice::X264, &probe).expect("x264").encoder, Encoder::X264);
}

/// Files that are not V4L2 devices (a regular file, a character device that refuses the ioctl)
/// are skipped with a reason; other names are ignored.
#[test]
fn devices_that_are_not_encoders_are_skipped_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("video0"), b"").expect("file");
    std::os::unix::fs::symlink("/dev/null", dir.path().join("video2")).expect("symlink");
    std::fs::write(dir.path().join("videoX"), b"").expect("file");
    std::fs::write(dir.path().join("media0"), b"").expect("file");
    let (found, notes) = probe_v4l2(dir.path());
    assert_eq!(found, None);
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].contains("video0") && notes[0].contains("not a V4L2 device"), "{notes:?}");
    assert!(notes[1].contains("video2") && notes[1].contains("not a V4L2 device"), "{notes:?}");

    assert!(probe_vaapi(dir.path(), &|_| true).expect_err("no node").contains("no render node"));
    std::fs::write(dir.path().join("renderD128"), b"").expect("file");
    assert!(probe_vaapi(dir.path(), &|_| false).expect_err("no element").contains("no VAAPI H.264 encoder"));
    assert_eq!(probe_vaapi(dir.path(), &|e| e == "vaapih264enc").expect("va").element, "vaapih264enc");
}

/// This machine's real probe: whatever it finds, `auto` yields a usable choice with a reason.
#[test]
fn the_real_probe_yields_a_choice() {
    let probe = probe(Path::new("/dev"), &|_| false, &|_| None);
    let choice = choose(EncoderChoice::Auto, &probe).expect("choice");
    assert!(!choice.reason.is_empty());
}

/// The struct layouts match the kernel's ioctl sizes.
#[test]
fn ioctl_structs_have_the_kernel_sizes() {
    assert_eq!(std::mem::size_of::<V4l2Capability>(), 104);
    assert_eq!(std::mem::size_of::<V4l2FmtDesc>(), 64);
    assert_eq!((VIDIOC_QUERYCAP >> 16) & 0x3fff, 104);
    assert_eq!((VIDIOC_ENUM_FMT >> 16) & 0x3fff, 64);
    assert_eq!(fourcc_text(FOURCC_H264), "H264");
}
