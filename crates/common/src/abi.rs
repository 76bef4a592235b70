//! The byte layouts of every record that crosses a process boundary, as the compiler lays them
//! out (`size_of`, `align_of`, `offset_of!`), for other languages to check theirs against:
//! `ctl abi --json` prints them and the Python package's tests compare its ctypes structures
//! field by field, so a Rust layout change that Python does not follow fails CI.

use core::mem::{align_of, offset_of, size_of};

use iceoryx2::prelude::ZeroCopySend;
use serde::Serialize;

use crate::header::FrameHeader;
use crate::protocol::{ControlReply, ControlRequest};
use crate::results::{ResultBox, ResultRecord};

/// The fixed settings of the services other languages open or serve (iceoryx2 refuses to open
/// a service with settings other than its creator's): the constants of [`crate::limits`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceSettings {
    /// Clients one control service admits ([`crate::limits::CONTROL_MAX_CLIENTS`]).
    pub control_max_clients: usize,
    /// Producers of one camera's results ([`crate::limits::RESULTS_MAX_PUBLISHERS`]).
    pub results_max_publishers: usize,
    /// Readers of one camera's results ([`crate::limits::RESULTS_MAX_SUBSCRIBERS`]).
    pub results_max_subscribers: usize,
    /// Results a results reader may have queued ([`crate::limits::RESULTS_QUEUE`]).
    pub results_queue: usize,
}

/// The service settings as this build uses them.
pub fn service_settings() -> ServiceSettings {
    ServiceSettings {
        control_max_clients: crate::limits::CONTROL_MAX_CLIENTS,
        results_max_publishers: crate::limits::RESULTS_MAX_PUBLISHERS,
        results_max_subscribers: crate::limits::RESULTS_MAX_SUBSCRIBERS,
        results_queue: crate::limits::RESULTS_QUEUE,
    }
}

/// One field of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldLayout {
    /// Field name, as in the Rust struct.
    pub name: &'static str,
    /// Byte offset from the start of the record.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// Rust type without module paths: `u32`, `f64`, `[u8; 256]`, `[ResultBox; 16]`.
    #[serde(rename = "type")]
    pub ty: String,
}

/// One record: its size, alignment, iceoryx2 type name and fields in declaration order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TypeLayout {
    /// Rust struct name.
    pub name: &'static str,
    /// The iceoryx2 type name other languages must declare (`framebus::FrameHeader`).
    pub type_name: &'static str,
    /// `size_of`.
    pub size: usize,
    /// `align_of`.
    pub alignment: usize,
    /// Every field, in declaration order.
    pub fields: Vec<FieldLayout>,
}

/// `core::any::type_name` without module paths (`[framebus_common::results::ResultBox; 16]` →
/// `[ResultBox; 16]`).
fn short_type_name<T>() -> String {
    let full = core::any::type_name::<T>();
    let mut out = String::with_capacity(full.len());
    let mut word = String::new();
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            out.push_str(word.rsplit("::").next().unwrap_or_default());
            word.clear();
            out.push(c);
        }
    }
    out.push_str(word.rsplit("::").next().unwrap_or_default());
    out
}

/// The size and short type name of the field that `pick` selects (the closure is never called).
fn field_type<T, F>(_pick: fn(&T) -> &F) -> (usize, String) {
    (size_of::<F>(), short_type_name::<F>())
}

/// The iceoryx2 type name of `T`.
fn iceoryx_type_name<T: ZeroCopySend>() -> &'static str {
    // SAFETY: `type_name` only returns the static string given by `#[type_name]`.
    unsafe { <T as ZeroCopySend>::type_name() }
}

macro_rules! layout {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        TypeLayout {
            name: stringify!($ty),
            type_name: iceoryx_type_name::<$ty>(),
            size: size_of::<$ty>(),
            alignment: align_of::<$ty>(),
            fields: vec![$({
                let (size, ty) = field_type(|v: &$ty| &v.$field);
                FieldLayout { name: stringify!($field), offset: offset_of!($ty, $field), size, ty }
            }),*],
        }
    };
}

/// The layouts of the frame header, the control messages and the results record.
pub fn layouts() -> Vec<TypeLayout> {
    vec![
        layout!(FrameHeader {
            layout_version,
            header_size,
            frame_id,
            sequence,
            capture_mono_ns,
            capture_realtime_ns,
            publish_mono_ns,
            width,
            height,
            stride,
            pixel_format,
            payload_len,
            flags,
            source_drops,
            run_id,
        }),
        layout!(ControlRequest { version, command, argument, text_len, nonce, text }),
        layout!(ControlReply {
            version,
            result,
            command,
            role,
            pid,
            state,
            preview,
            saving,
            width,
            height,
            pixel_format,
            policy,
            nonce,
            uptime_ms,
            frames,
            skipped,
            latency_p50_us,
            latency_p99_us,
            fps,
            target_fps,
            overwritten,
            driver_drops,
            first_frame_id,
            last_frame_id,
            queue_depth,
            role_name_len,
            camera_len,
            message_len,
            role_name,
            camera,
            message,
            latency_buckets,
            latency_sum_us,
            latency_count,
            cost_ns,
            bytes_written,
            segments,
            deletions,
            viewers,
            reserved,
        }),
        layout!(ResultBox { x, y, w, h, score, label_len, label }),
        layout!(ResultRecord {
            layout_version,
            box_count,
            frame_id,
            run_id,
            capture_mono_ns,
            publish_mono_ns,
            score,
            producer_len,
            json_len,
            producer,
            boxes,
            json,
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record has no implicit padding and its fields follow each other, so a field added
    /// to a struct but not listed here makes this fail (the listed sizes no longer add up).
    #[test]
    fn listed_fields_cover_every_byte() {
        for layout in layouts() {
            let mut at = 0;
            for field in &layout.fields {
                assert_eq!(field.offset, at, "{}.{} is not where the previous field ends", layout.name, field.name);
                at += field.size;
            }
            assert_eq!(at, layout.size, "{}: fields do not add up to its size", layout.name);
        }
    }

    /// Type names are short and stable (what the Python side maps its ctypes to).
    #[test]
    fn field_types_are_short_names() {
        let all = layouts();
        let record = all.iter().find(|l| l.name == "ResultRecord").expect("ResultRecord");
        let boxes = record.fields.iter().find(|f| f.name == "boxes").expect("boxes");
        assert_eq!(boxes.ty, "[ResultBox; 16]");
        let header = all.iter().find(|l| l.name == "FrameHeader").expect("FrameHeader");
        assert_eq!(header.type_name, "framebus::FrameHeader");
        assert_eq!(header.fields[2].ty, "u64");
    }
}
