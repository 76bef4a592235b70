//! The checks of one camera's own keys: its name, frame size, format and rate, its slots
//! within the deployment's shared-memory cap, and its readers.

use std::collections::HashSet;

use super::reader::ReaderEntry;
use super::{defaults, human_bytes, invalid, is_valid_name, CameraConfig, Invalid, SourceConfig, NAME_RULE};
use crate::names::Role;
use crate::pattern::MIN_SYNTHETIC_SIZE;

/// A camera's name, frame size and format, rate, and its slot budget.
pub(super) fn validate_frame(cam: &CameraConfig) -> Result<(), Invalid> {
    if !is_valid_name(&cam.name) {
        return invalid("name", format!("invalid name `{}`: use {NAME_RULE}", cam.name));
    }
    for (field, value) in [("width", cam.width), ("height", cam.height)] {
        if !(16..=16384).contains(&value) {
            return invalid(field, format!("invalid value {value}: allowed 16 to 16384 pixels"));
        }
    }
    let format = cam.pixel_format;
    if format.info().even_size && (!cam.width.is_multiple_of(2) || !cam.height.is_multiple_of(2)) {
        return invalid("width", format!("{format} needs an even width and height, got {}x{}", cam.width, cam.height));
    }
    if matches!(cam.source, SourceConfig::Synthetic(_) | SourceConfig::Scene(_))
        && (cam.width < MIN_SYNTHETIC_SIZE.0 || cam.height < MIN_SYNTHETIC_SIZE.1)
    {
        return invalid(
            "width",
            format!(
                "the {} source needs at least {}x{}, got {}x{}",
                cam.source.kind(),
                MIN_SYNTHETIC_SIZE.0,
                MIN_SYNTHETIC_SIZE.1,
                cam.width,
                cam.height
            ),
        );
    }
    if !cam.fps.is_finite() || !(0.0..=1000.0).contains(&cam.fps) {
        return invalid("fps", format!("invalid value {}: allowed 0 (as fast as possible) to 1000", cam.fps));
    }
    if !(1..=64).contains(&cam.max_readers) {
        return invalid("max-readers", format!("invalid value {}: allowed 1 to 64", cam.max_readers));
    }
    let min_slots = cam.max_readers * (1 + defaults::READER_BORROWS) + defaults::PUBLISHER_LOANS;
    if cam.slots < min_slots {
        return invalid(
            "slots",
            format!(
                "{} slots cannot serve {} readers: each needs a queue of at least 1 frame plus {} it works on, and capture needs {}; use at least {min_slots}",
                cam.slots, cam.max_readers, defaults::READER_BORROWS, defaults::PUBLISHER_LOANS
            ),
        );
    }
    Ok(())
}

/// Why a camera does not fit the deployment's shared-memory cap.
pub(super) fn memory_budget_message(cam: &CameraConfig, need: u64, before: u64, max_bytes: u64) -> String {
    let layout = cam.slot_layout();
    format!(
        "camera `{}` needs {} of shared memory ({} slots of {}x{} {}, {} bytes each), and the deployment may reserve at most {} (`deployment.max-shared-memory-mb` = {}{}); lower `slots`, `max-readers` or the frame size, or raise `deployment.max-shared-memory-mb`",
        cam.name,
        human_bytes(need),
        layout.slots(),
        cam.width,
        cam.height,
        cam.pixel_format,
        layout.frame_bytes,
        human_bytes(max_bytes),
        max_bytes / (1024 * 1024),
        if before > 0 { format!(", {} already taken by the cameras before it", human_bytes(before)) } else { String::new() },
    )
}

/// A camera's readers: user reader names, how many, queue depths within the slots, policies,
/// algo's own keys.
pub(super) fn validate_readers(cam: &CameraConfig) -> Result<(), Invalid> {
    let mut roles = HashSet::new();
    for (j, user) in cam.reader.iter().enumerate() {
        let key = |field: &str| format!("reader[{j}].{field}");
        let role = Role::new(&user.name).map_err(|e| (key("name"), e.to_string()))?;
        if user.name == crate::names::BRIDGE_ROLE {
            return invalid(
                &key("name"),
                "`bridge` is the bridge's reader of exported frames: name your reader differently".into(),
            );
        }
        if let Some(builtin) = role.builtin() {
            return invalid(
                &key("name"),
                format!(
                    "`{}` is a built-in role: configure it in [camera.{builtin}], or name your reader differently",
                    user.name
                ),
            );
        }
        if !roles.insert(user.name.as_str()) {
            return invalid(
                &key("name"),
                format!("duplicate reader name `{}`: names must be unique per camera", user.name),
            );
        }
        if user.command.first().is_some_and(|program| program.trim().is_empty()) {
            return invalid(&key("command"), "the program (first element) is empty".into());
        }
    }
    let readers = cam.reader_entries();
    if readers.len() > cam.max_readers as usize {
        return invalid(
            "max-readers",
            format!(
                "{} readers are configured ({}), more than max-readers = {}",
                readers.len(),
                readers.iter().map(|r| r.role.as_str()).collect::<Vec<_>>().join(", "),
                cam.max_readers
            ),
        );
    }
    let layout = cam.slot_layout();
    for ReaderEntry { key: reader_key, queue_depth: depth, policy, .. } in readers {
        if depth < 1 || depth as usize > layout.max_queue_depth {
            return invalid(
                &format!("{reader_key}.queue-depth"),
                format!(
                    "invalid value {depth}: allowed 1 to {} with slots = {} and max-readers = {} (raise slots for deeper queues)",
                    layout.max_queue_depth, cam.slots, cam.max_readers
                ),
            );
        }
        policy.map_err(|e| (format!("{reader_key}.policy"), e))?;
    }
    if let Some(algo) = &cam.algo {
        if !(algo.stats_interval_secs > 0.0 && algo.stats_interval_secs <= 3600.0) {
            return invalid(
                "algo.stats-interval-secs",
                format!("invalid value {}: allowed more than 0 up to 3600", algo.stats_interval_secs),
            );
        }
    }
    Ok(())
}
