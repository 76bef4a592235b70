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
    ] {
        assert_eq!(command.to_request(7).decode(), Ok(command));
    }
    let good = Command::Status.to_request(1);
    assert_eq!(ControlRequest { command: 99, ..good }.decode(), Err(DecodeError::UnknownCommand(99)));
    assert_eq!(ControlRequest { version: 2, ..good }.decode(), Err(DecodeError::Version(2)));
    assert_eq!(
        ControlRequest { command: code::SET_SAVING, argument: 5, ..good }.decode(),
        Err(DecodeError::BadArgument { command: code::SET_SAVING, argument: 5 })
    );
}

/// The request layout is the documented one (ARCHITECTURE.md, "Control protocol").
#[test]
fn request_layout_matches_the_documented_offsets() {
    use core::mem::{offset_of, size_of};
    assert_eq!(size_of::<ControlRequest>(), 24);
    assert_eq!(offset_of!(ControlRequest, command), 4);
    assert_eq!(offset_of!(ControlRequest, argument), 8);
    assert_eq!(offset_of!(ControlRequest, nonce), 16);
    assert_eq!(offset_of!(ControlReply, nonce), 48);
    assert_eq!(offset_of!(ControlReply, fps), 96);
}

/// Texts are made ASCII and truncated; a reply's status decodes back.
#[test]
fn texts_are_sanitised_and_status_decodes() {
    let text: StaticString<8> = static_text("héllo wörld");
    assert_eq!(text_of(&text), "h??llo w");
    let mut reply = ControlReply::empty();
    reply.role = role_code(ProcessRole::Algo);
    reply.state = ProcessState::Waiting.code();
    reply.camera = static_text("cam0");
    reply.saving = 1;
    reply.width = 640;
    reply.height = 480;
    reply.pixel_format = PixelFormat::Bgr3.fourcc();
    let status = reply.status().expect("status decodes");
    assert_eq!(status.role, ProcessRole::Algo);
    assert_eq!(status.camera, "cam0");
    assert!(status.saving && !status.preview);
    assert_eq!(status.latency_p50_us, None);
    assert_eq!(status.format.map(|f| f.fourcc.to_string()), Some("BGR3".to_string()));
}
