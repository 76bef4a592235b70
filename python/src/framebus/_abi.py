"""The records framebus exchanges with other processes, as ctypes structures.

They mirror the Rust `#[repr(C)]` structs field by field (crates/common: header.rs,
control/mod.rs, results.rs). `ctl abi --json` prints the Rust layouts and the package's tests
compare them with these, so a Rust change that is not followed here fails CI. `type_name()`
is the iceoryx2 type name the Rust side declares with `#[type_name]`: iceoryx2 refuses to open
a service whose types differ.
"""

import ctypes

FRAME_HEADER_VERSION = 1
FLAG_SYNTHETIC_STAMP = 1 << 0
CONTROL_PROTOCOL_VERSION = 2
RESULT_LAYOUT_VERSION = 1

NAME_TEXT = 32
MESSAGE_TEXT = 1024
REQUEST_TEXT = 256
MAX_BOXES = 16
LABEL_TEXT = 24
PRODUCER_TEXT = 32
JSON_TEXT = 1024
#: Upper bounds (µs, inclusive) of the status latency histogram; the last bucket is +Inf.
LATENCY_BUCKETS_US = (50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
                      1_000_000, 2_500_000)
LATENCY_BUCKETS = len(LATENCY_BUCKETS_US) + 1

u32 = ctypes.c_uint32
u64 = ctypes.c_uint64
f32 = ctypes.c_float
f64 = ctypes.c_double


class FrameHeader(ctypes.Structure):
    """Metadata of one frame (88 bytes): the user header of every frame sample."""

    _fields_ = [
        ("layout_version", u32),
        ("header_size", u32),
        ("frame_id", u64),
        ("sequence", u64),
        ("capture_mono_ns", u64),
        ("capture_realtime_ns", u64),
        ("publish_mono_ns", u64),
        ("width", u32),
        ("height", u32),
        ("stride", u32),
        ("pixel_format", u32),
        ("payload_len", u32),
        ("flags", u32),
        ("source_drops", u64),
        ("run_id", u64),
    ]

    @staticmethod
    def type_name() -> str:
        """The iceoryx2 type name of the Rust header."""
        return "framebus::FrameHeader"


class ControlRequest(ctypes.Structure):
    """A control command as sent over the wire (280 bytes)."""

    _fields_ = [
        ("version", u32),
        ("command", u32),
        ("argument", u32),
        ("text_len", u32),
        ("nonce", u64),
        ("text", ctypes.c_uint8 * REQUEST_TEXT),
    ]

    @staticmethod
    def type_name() -> str:
        """The iceoryx2 type name of the Rust request."""
        return "framebus::ControlRequestV2"


class ControlReply(ctypes.Structure):
    """The reply to every control request (1248 bytes)."""

    _fields_ = [
        ("version", u32),
        ("result", u32),
        ("command", u32),
        ("role", u32),
        ("pid", u32),
        ("state", u32),
        ("preview", u32),
        ("saving", u32),
        ("width", u32),
        ("height", u32),
        ("pixel_format", u32),
        ("policy", u32),
        ("nonce", u64),
        ("uptime_ms", u64),
        ("frames", u64),
        ("skipped", u64),
        ("latency_p50_us", u64),
        ("latency_p99_us", u64),
        ("fps", f64),
        ("target_fps", f64),
        ("overwritten", u64),
        ("driver_drops", u64),
        ("first_frame_id", u64),
        ("last_frame_id", u64),
        ("queue_depth", u32),
        ("role_name_len", u32),
        ("camera_len", u32),
        ("message_len", u32),
        ("role_name", ctypes.c_uint8 * NAME_TEXT),
        ("camera", ctypes.c_uint8 * NAME_TEXT),
        ("message", ctypes.c_uint8 * MESSAGE_TEXT),
        ("latency_buckets", u64 * LATENCY_BUCKETS),
        ("latency_sum_us", u64),
        ("latency_count", u64),
        ("cost_ns", u64),
        ("bytes_written", u64),
        ("segments", u64),
        ("deletions", u64),
        ("viewers", u32),
        ("reserved", u32),
    ]

    @staticmethod
    def type_name() -> str:
        """The iceoryx2 type name of the Rust reply."""
        return "framebus::ControlReplyV2"


class ResultBox(ctypes.Structure):
    """One labelled box of a result, in pixels (48 bytes)."""

    _fields_ = [
        ("x", f32),
        ("y", f32),
        ("w", f32),
        ("h", f32),
        ("score", f32),
        ("label_len", u32),
        ("label", ctypes.c_uint8 * LABEL_TEXT),
    ]

    @staticmethod
    def type_name() -> str:
        """The iceoryx2 type name of the Rust box."""
        return "framebus::ResultBox"


class ResultRecord(ctypes.Structure):
    """One result about one frame (1880 bytes), published on the camera's results service."""

    _fields_ = [
        ("layout_version", u32),
        ("box_count", u32),
        ("frame_id", u64),
        ("run_id", u64),
        ("capture_mono_ns", u64),
        ("publish_mono_ns", u64),
        ("score", f64),
        ("producer_len", u32),
        ("json_len", u32),
        ("producer", ctypes.c_uint8 * PRODUCER_TEXT),
        ("boxes", ResultBox * MAX_BOXES),
        ("json", ctypes.c_uint8 * JSON_TEXT),
    ]

    @staticmethod
    def type_name() -> str:
        """The iceoryx2 type name of the Rust record."""
        return "framebus::ResultRecordV1"


#: Every record, by its Rust struct name (what `ctl abi --json` calls them).
LAYOUTS = {
    "FrameHeader": FrameHeader,
    "ControlRequest": ControlRequest,
    "ControlReply": ControlReply,
    "ResultBox": ResultBox,
    "ResultRecord": ResultRecord,
}


def put_text(field, text: str) -> int:
    """Writes `text` into a fixed byte field like the Rust side (`control::put_text`): non-ASCII
    and control characters become `?`, the text is cut to the field and the rest zeroed.
    Returns the bytes used."""
    data = bytes(b if 32 <= b < 127 else ord("?") for b in text.encode("utf-8"))[: len(field)]
    # A slice copy, not ctypes.memmove: a foreign call releases the GIL, and the control thread
    # answers without giving it up (see _control.py).
    (ctypes.c_char * len(field)).from_buffer(field)[:] = data + bytes(len(field) - len(data))
    return len(data)


def copy_from(struct_type, address: int):
    """A copy of the `struct_type` record at `address` (shared memory), made without releasing
    the GIL."""
    return struct_type.from_buffer_copy(struct_type.from_address(address))


def copy_to(record, address: int) -> None:
    """Writes `record` to `address` (a loaned sample), without releasing the GIL."""
    size = ctypes.sizeof(record)
    (ctypes.c_char * size).from_address(address)[:] = bytes(record)


def text_of(field, length: int) -> str:
    """The text of a received field, checking its length first."""
    if length > len(field):
        return "<malformed text>"
    return bytes(field[:length]).decode("utf-8", "replace")
