//! Unit tests of the control protocol's encoding.

use super::*;

/// Every command survives encode → decode; malformed requests are errors, not panics.
#[test]
fn requests_decode_and_malformed_ones_are_errors() {
    for command in [
        Command::Status,
        Command::Stop,
        Command::SetPreview(true),
        Command::SetPreview(false),
        Command::SetSaving(true),
        Command::SetSaving(false),
        Command::ListControls(0),
        Command::ListControls(17),
        Command::SetControls("gain=10 exposure_time_absolute=200".into()),
        Command::Restart("cam0".into()),
        Command::Restart("cam0 algo".into()),
        Command::Start("cam0 plate-reader".into()),
        Command::Supervised("cam0 capture".into()),
        Command::Logs(0, "cam0 algo".into()),
        Command::Logs(41, "cam0 algo".into()),
        Command::Figures(String::new()),
        Command::Figures("cam0".into()),
    ] {
        assert_eq!(command.to_request(7).decode(), Ok(command));
    }
    let good = Command::Status.to_request(1);
    assert_eq!(ControlRequest { command: 99, ..good }.decode(), Err(DecodeError::UnknownCommand(99)));
    assert_eq!(ControlRequest { version: 1, ..good }.decode(), Err(DecodeError::Version(1)));
    assert_eq!(
        ControlRequest { command: code::SET_SAVING, argument: 5, ..good }.decode(),
        Err(DecodeError::BadArgument { command: code::SET_SAVING, argument: 5 })
    );
    let set = Command::SetControls("gain=1".into()).to_request(1);
    assert!(matches!(ControlRequest { text_len: 10_000, ..set }.decode(), Err(DecodeError::BadText(_))));
    let mut binary = set;
    binary.text[0] = 0xff;
    assert!(matches!(binary.decode(), Err(DecodeError::BadText(_))));
}

/// Any byte pattern decodes to a command or an error, never a panic.
#[test]
fn every_byte_pattern_decodes_without_panicking() {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..20_000 {
        let mut request = ControlRequest::default();
        // SAFETY: ControlRequest is repr(C) plain data of integers and bytes; every bit pattern
        // is a valid value of it.
        let bytes = unsafe {
            core::slice::from_raw_parts_mut(
                (&mut request as *mut ControlRequest).cast::<u8>(),
                core::mem::size_of::<ControlRequest>(),
            )
        };
        for b in bytes.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        request.version = CONTROL_PROTOCOL_VERSION;
        request.command = (state % 12) as u32;
        request.text_len %= 300;
        let _ = request.decode();
    }
}

/// The layouts are the documented ones (docs/control-protocol.md); Python mirrors
/// them.
#[test]
fn layouts_match_the_documented_offsets() {
    use core::mem::{offset_of, size_of};
    assert_eq!(size_of::<ControlRequest>(), 280);
    assert_eq!(offset_of!(ControlRequest, command), 4);
    assert_eq!(offset_of!(ControlRequest, argument), 8);
    assert_eq!(offset_of!(ControlRequest, text_len), 12);
    assert_eq!(offset_of!(ControlRequest, nonce), 16);
    assert_eq!(offset_of!(ControlRequest, text), 24);
    assert_eq!(size_of::<ControlReply>(), 1432);
    assert_eq!(offset_of!(ControlReply, latency_buckets), 1248);
    assert_eq!(offset_of!(ControlReply, latency_sum_us), 1376);
    assert_eq!(offset_of!(ControlReply, cost_ns), 1392);
    assert_eq!(offset_of!(ControlReply, viewers), 1424);
    assert_eq!(offset_of!(ControlReply, policy), 44);
    assert_eq!(offset_of!(ControlReply, nonce), 48);
    assert_eq!(offset_of!(ControlReply, fps), 96);
    assert_eq!(offset_of!(ControlReply, overwritten), 112);
    assert_eq!(offset_of!(ControlReply, last_frame_id), 136);
    assert_eq!(offset_of!(ControlReply, queue_depth), 144);
    assert_eq!(offset_of!(ControlReply, message_len), 156);
    assert_eq!(offset_of!(ControlReply, role_name), 160);
    assert_eq!(offset_of!(ControlReply, camera), 192);
    assert_eq!(offset_of!(ControlReply, message), 224);
}

/// Texts are made ASCII and cut; a reply's status decodes back, a user reader by its name.
#[test]
fn texts_are_sanitised_and_status_decodes() {
    let mut field = [0u8; 8];
    let used = put_text(&mut field, "héllo wörld");
    assert_eq!(text_of(&field, used as u32), "h??llo w");
    assert_eq!(text_of(&field, 9), "<malformed text>");
    let mut reply = ControlReply::empty();
    reply.set_role(&Role::from(ProcessRole::Algo));
    reply.state = ProcessState::Waiting.code();
    reply.set_camera("cam0");
    reply.saving = 1;
    reply.width = 640;
    reply.height = 480;
    reply.pixel_format = PixelFormat::Bgr3.fourcc();
    reply.policy = 1;
    reply.frames = 10;
    reply.skipped = 5;
    let status = reply.status().expect("status decodes");
    assert_eq!(status.role, "algo");
    assert!(!status.user_reader);
    assert_eq!(status.camera, "cam0");
    assert!(status.saving && !status.preview);
    assert_eq!(status.latency_p50_us, None);
    assert_eq!(status.format.map(|f| f.fourcc.to_string()), Some("BGR3".to_string()));
    let accounting = status.reader.expect("a reader's accounting");
    assert_eq!((accounting.policy, accounting.published), ("newest", 15));

    reply.set_role(&Role::new("plates").expect("role"));
    let status = reply.status().expect("status decodes");
    assert_eq!((status.role.as_str(), status.user_reader), ("plates", true));
    // A role name that does not match its code is not a status.
    reply.role = role_code(ProcessRole::Capture);
    assert_eq!(reply.status(), None);
}

/// The histogram files samples by inclusive upper bound and cumulates them.
#[test]
fn latency_histogram_buckets_are_cumulative() {
    let mut h = LatencyHistogram::default();
    for us in [10, 50, 51, 3_000_000] {
        h.record_us(us);
    }
    let cumulative = h.cumulative();
    assert_eq!(cumulative[0], 2, "≤ 50 µs");
    assert_eq!(cumulative[1], 3, "≤ 100 µs");
    assert_eq!(cumulative[LATENCY_BUCKETS - 2], 3, "≤ 2.5 s");
    assert_eq!(cumulative[LATENCY_BUCKETS - 1], 4, "+Inf");
    assert_eq!((h.count(), h.sum_us), (4, 3_000_111));
}
