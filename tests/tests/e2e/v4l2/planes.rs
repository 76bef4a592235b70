//! Multi-planar capture nodes (`V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE`), as on Rockchip ISPs, NXP
//! i.MX8 and most CSI bridges: NV12, NV21 and NV16 in one memory plane or two (NV12M, NV16M),
//! YUYV, with tight or padded rows, through USERPTR or mmap + one copy, and converted to BGR from
//! two planes.

use framebus_common::PixelFormat;
use framebus_e2e::DEADLINE;

use super::{check_frame, read_frames, spawn_capture, stop_with_summary, u, v4l2_deployment};

/// One multi-planar case: what the emulated node offers, what capture publishes, and which
/// buffer memory capture must end up using.
struct Case {
    formats: &'static str,
    stride_align: &'static str,
    published: &'static str,
    device: PixelFormat,
    memory: &'static str,
    /// The device's name for the granted format in capture's log.
    granted: &'static str,
}

/// On a multi-planar node every combination arrives byte for byte (padding bytes, which the
/// emulated device fills with 0xEE, never reach a published frame): contiguous NV12 and tight
/// two-plane NV12M go through USERPTR (the driver writes both planes into one sample); padded
/// rows fall back to mmap and are packed in the one copy; NV12M is converted to BGR from its two
/// planes. The summary says which memory was used and how many frames capture wrote itself.
#[test]
fn multi_planar_nv12_and_yuyv_arrive_byte_for_byte() {
    let cases = [
        Case {
            formats: "NV12",
            stride_align: "1",
            published: "NV12",
            device: PixelFormat::Nv12,
            memory: "userptr",
            granted: "NV12",
        },
        Case {
            formats: "NV12M",
            stride_align: "1",
            published: "NV12",
            device: PixelFormat::Nv12,
            memory: "userptr",
            granted: "NV12M",
        },
        Case {
            formats: "NV12M",
            stride_align: "256",
            published: "NV12",
            device: PixelFormat::Nv12,
            memory: "mmap",
            granted: "NV12M",
        },
        Case {
            formats: "YUYV,NV12M",
            stride_align: "1",
            published: "YUYV",
            device: PixelFormat::Yuyv,
            memory: "userptr",
            granted: "YUYV",
        },
        Case {
            formats: "YUYV",
            stride_align: "1024",
            published: "YUYV",
            device: PixelFormat::Yuyv,
            memory: "mmap",
            granted: "YUYV",
        },
        Case {
            formats: "NV12M",
            stride_align: "128",
            published: "BGR3",
            device: PixelFormat::Nv12,
            memory: "mmap",
            granted: "NV12M",
        },
        Case {
            formats: "NV21",
            stride_align: "1",
            published: "NV21",
            device: PixelFormat::Nv21,
            memory: "userptr",
            granted: "NV21",
        },
        Case {
            formats: "NV21M",
            stride_align: "1",
            published: "BGR3",
            device: PixelFormat::Nv21,
            memory: "mmap",
            granted: "NV21M",
        },
        Case {
            formats: "NV16M",
            stride_align: "1",
            published: "NV16",
            device: PixelFormat::Nv16,
            memory: "userptr",
            granted: "NV16M",
        },
        Case {
            formats: "NV16",
            stride_align: "256",
            published: "NV16",
            device: PixelFormat::Nv16,
            memory: "mmap",
            granted: "NV16",
        },
    ];
    for case in cases {
        let what = format!("{} (stride align {}) → {}", case.formats, case.stride_align, case.published);
        let d = v4l2_deployment((320, 240), 30, case.published, &format!("format = \"{}\"", case.device), false);
        let env = [
            ("FAKE_V4L2_MPLANE", "1"),
            ("FAKE_V4L2_FORMATS", case.formats),
            ("FAKE_V4L2_STRIDE_ALIGN", case.stride_align),
        ];
        let mut capture = spawn_capture(&d, &env, &["--summary"]);
        let line = capture.wait_stderr(DEADLINE, "streaming ");
        assert!(line.contains(&format!("320x240 {}, multi-planar", case.granted)), "{what}: {line}");
        read_frames(&d, 12, |h, p| check_frame(case.device, h, p));
        let summary = stop_with_summary(&mut capture);
        assert_eq!(summary["memory"].as_str(), Some(case.memory), "{what}: {summary}");
        let (frames, zero_copy, written) =
            (u(&summary, "frames"), u(&summary, "zero_copy_frames"), u(&summary, "written_frames"));
        assert!(frames >= 12, "{what}: {summary}");
        if case.memory == "userptr" {
            assert_eq!((zero_copy, written), (frames, 0), "{what}: capture never writes a USERPTR frame: {summary}");
        } else {
            assert_eq!((zero_copy, written), (0, frames), "{what}: {summary}");
        }
        assert!(!capture.stderr_text().contains("unusable frame"), "{what}:\n{}", capture.stderr_text());
        d.assert_no_leftovers();
    }
}

/// A multi-planar node offering a format capture cannot publish from is refused with what the
/// node offers; a single-planar-only format name (`NV12M` exists only on multi-planar nodes) is
/// not offered to a single-planar node.
#[test]
fn a_multi_planar_node_without_the_asked_format_is_refused_with_what_it_offers() {
    let d = v4l2_deployment((320, 240), 30, "NV12", "", false);
    let mut capture = spawn_capture(&d, &[("FAKE_V4L2_MPLANE", "1"), ("FAKE_V4L2_FORMATS", "MJPG")], &[]);
    assert_eq!(capture.wait_exit(DEADLINE), Some(2));
    let stderr = capture.stderr_text();
    assert!(
        stderr.contains("delivers MJPG instead of NV12 and capture cannot publish NV12 from MJPG")
            && stderr.contains("the device offers: MJPG"),
        "{stderr}"
    );
    d.assert_no_leftovers();
}
