//! USERPTR: capture queues loaned shared-memory samples as the driver's buffers, the emulated
//! driver writes each frame straight into one (it checks, as `get_user_pages` would, that the
//! memory is writable and logs which mapping holds it), and capture publishes the sample
//! without touching a pixel.

use std::time::{Duration, Instant};

use framebus_common::ipc::{create_named_node, open_frame_bus, DeploymentGuard};
use framebus_common::names::shm_prefix;
use framebus_common::{Deployment, PixelFormat};
use framebus_e2e::DEADLINE;

use super::{check_frame, fixture_raw, run_to_exit, spawn_capture, stop_with_summary, u, v4l2_deployment, DEVICE};

/// USERPTR frames reach readers byte for byte and capture never writes them: every buffer the
/// driver fills lies in this deployment's iceoryx2 data segment (the device says so), the
/// summary counts every published frame as written by the device and none by capture, and the
/// write phase is only the header. A reader that holds one sample and never takes another
/// (its queue overflows) sees that sample unchanged while 60 more frames — and a device
/// unplug with new samples lent after the reconnect — go by: the driver never writes into a
/// sample a reader holds.
#[test]
fn userptr_frames_reach_readers_byte_for_byte_and_capture_never_copies_them() {
    let d = v4l2_deployment((640, 480), 30, "YUYV", "memory = \"userptr\"", false);
    let env = [("FAKE_V4L2_LOG", "1"), ("FAKE_V4L2_VANISH_AFTER", "25"), ("FAKE_V4L2_VANISH_MS", "300")];
    let mut capture = spawn_capture(&d, &env, &["--summary"]);
    let line = capture.wait_stderr(DEADLINE, "shared memory:");
    assert!(line.contains("4 of them the driver's USERPTR buffers"), "{line}");
    capture.wait_stderr(DEADLINE, "capturing:");

    let deployment = Deployment::load(&d.config).expect("test config loads");
    let camera = deployment.camera(None).expect("one camera").clone();
    let _release = DeploymentGuard::new(&d.name);
    let node = create_named_node(&d.name, "test-reader").expect("reader node");
    let bus = open_frame_bus(&node, &deployment, &camera).expect("frame bus");
    let stuck = bus.frames.subscriber_builder().buffer_size(1).create().expect("stuck subscriber");
    let checker = bus.frames.subscriber_builder().buffer_size(bus.layout.max_queue_depth).create().expect("checker");
    let until = Instant::now() + DEADLINE;
    let held = loop {
        assert!(Instant::now() < until, "no frame for the stuck reader");
        match stuck.receive().expect("receive") {
            Some(sample) => break sample,
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    };
    let held_header = *held.user_header();
    check_frame(PixelFormat::Yuyv, &held_header, held.payload()).expect("held frame is the device's");
    let (mut checked, mut first_id, mut last_id) = (0, None, 0);
    while checked < 60 {
        assert!(Instant::now() < until, "only {checked} frames checked within {DEADLINE:?}");
        match checker.receive().expect("receive") {
            Some(sample) => {
                let h = *sample.user_header();
                if let Err(e) = check_frame(PixelFormat::Yuyv, &h, sample.payload()) {
                    panic!("frame {} (sequence {}): {e}", h.frame_id, h.sequence);
                }
                assert!(h.frame_id > last_id, "ids rise: {} after {last_id}", h.frame_id);
                first_id.get_or_insert(h.frame_id);
                last_id = h.frame_id;
                checked += 1;
            }
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    let want = fixture_raw(PixelFormat::Yuyv, 640, 480, held_header.sequence);
    assert!(held.payload() == want.as_slice(), "the held sample changed while the reader held it");
    drop(held);
    drop((stuck, checker, bus, node));

    capture.wait_stderr(DEADLINE, "V4L2 device reopened");
    let summary = stop_with_summary(&mut capture);
    assert_eq!(summary["memory"].as_str(), Some("userptr"), "{summary}");
    let frames = u(&summary, "frames");
    assert!(frames > 60 && u(&summary, "reconnects") >= 1, "{summary}");
    assert_eq!((u(&summary, "zero_copy_frames"), u(&summary, "written_frames")), (frames, 0), "{summary}");
    let stderr = capture.stderr_text();
    let segment = format!("/dev/shm/{}", shm_prefix(&d.name));
    let buffers: Vec<&str> = stderr.lines().filter(|l| l.contains("fake_v4l2: USERPTR")).collect();
    assert!(buffers.len() >= 4, "the device saw the USERPTR buffers:\n{stderr}");
    for line in buffers {
        assert!(line.contains(&segment) && line.ends_with(".data (rw-s)"), "not in the frame segment: {line}");
    }
    d.assert_no_leftovers();
}

/// The same camera with `memory = "mmap"`: capture copies every frame once (the summary
/// counts them as written by capture) and the result is identical byte for byte.
#[test]
fn mmap_stays_selectable_and_copies_every_frame_once() {
    let d = v4l2_deployment((320, 240), 30, "YUYV", "memory = \"mmap\"", false);
    let mut capture = spawn_capture(&d, &[], &["--summary"]);
    capture.wait_stderr(DEADLINE, "with 4 mmap buffers, one copy per frame");
    super::read_frames(&d, 10, |h, p| check_frame(PixelFormat::Yuyv, h, p));
    let summary = stop_with_summary(&mut capture);
    let frames = u(&summary, "frames");
    assert_eq!(summary["memory"].as_str(), Some("mmap"), "{summary}");
    assert_eq!((u(&summary, "zero_copy_frames"), u(&summary, "written_frames")), (0, frames), "{summary}");
    let line = capture.stderr_text();
    assert!(line.contains("+ 1 loaned)"), "mmap reserves no slots for the driver:\n{line}");
    d.assert_no_leftovers();
}

/// `memory = "userptr"` on a driver without USERPTR (like rkisp1, mmap + DMABUF only) is an
/// error naming the reason and the alternatives; under `auto` the same device falls back to
/// mmap and says why. USERPTR with a conversion is a config error.
#[test]
fn userptr_is_refused_where_it_cannot_work_and_auto_falls_back() {
    let d = v4l2_deployment((320, 240), 30, "YUYV", "memory = \"userptr\"", false);
    let (code, stderr) = run_to_exit(&d, &[("FAKE_V4L2_MEMORY", "mmap")], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{DEVICE} cannot capture into shared memory (memory = \"userptr\"): the driver does not support USERPTR buffers"))
            && stderr.contains("use memory = \"auto\" or \"mmap\""),
        "{stderr}"
    );
    d.assert_no_leftovers();

    let auto = v4l2_deployment((320, 240), 30, "YUYV", "", false);
    let (code, stderr) = run_to_exit(&auto, &[("FAKE_V4L2_MEMORY", "mmap")], &["--max-frames", "3"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("using mmap buffers and one copy per frame: the driver does not support USERPTR"),
        "{stderr}"
    );
    auto.assert_no_leftovers();

    let converting = v4l2_deployment((320, 240), 30, "BGR3", "format = \"YUYV\"\nmemory = \"userptr\"", false);
    let (code, stderr) = run_to_exit(&converting, &[], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("camera[0].source.memory") && stderr.contains("use `auto` or `mmap`"), "{stderr}");
    converting.assert_no_leftovers();
}

/// A driver that advertises USERPTR but refuses the samples at QBUF (here: it wants
/// page-aligned memory; iceoryx2 payloads are 8-byte aligned): under `auto` capture reopens the
/// device with mmap, says why, and the frames keep arriving byte for byte; under `userptr` it
/// stops with the driver's reason.
#[test]
fn a_driver_refusing_the_samples_falls_back_to_mmap_under_auto() {
    let d = v4l2_deployment((320, 240), 30, "YUYV", "", false);
    let env = [("FAKE_V4L2_USERPTR_ALIGN", "4096")];
    let mut capture = spawn_capture(&d, &env, &["--summary"]);
    let line = capture.wait_stderr(DEADLINE, "reopening with mmap buffers");
    assert!(line.contains("the driver refused a shared-memory sample as a USERPTR buffer"), "{line}");
    capture.wait_stderr(DEADLINE, "with 4 mmap buffers, one copy per frame");
    super::read_frames(&d, 10, |h, p| check_frame(PixelFormat::Yuyv, h, p));
    let summary = stop_with_summary(&mut capture);
    assert_eq!(summary["memory"].as_str(), Some("mmap"), "{summary}");
    assert_eq!(u(&summary, "written_frames"), u(&summary, "frames"), "{summary}");
    d.assert_no_leftovers();

    let strict = v4l2_deployment((320, 240), 30, "YUYV", "memory = \"userptr\"", false);
    let (code, stderr) = run_to_exit(&strict, &env, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot capture into shared memory (memory = \"userptr\"): the driver refused a shared-memory sample as a USERPTR buffer"),
        "{stderr}"
    );
    strict.assert_no_leftovers();
}
