//! Camera controls: enumerated with raw QUERY_EXT_CTRL (the `v4l` crate's own enumeration
//! panics on control types it does not know), checked against the device's range, type and menu
//! before anything is set, set one at a time with S_EXT_CTRLS (drivers reject mixing control
//! classes in one call) and read back with G_EXT_CTRLS, so the caller learns what the driver
//! actually kept (a driver may clamp or round).

use std::io;

use framebus_common::config::{normalize_control_name, ControlValue};

use super::device::{c_text, sys, vidioc, Device};
use crate::source::{ControlApplied, ControlError, ControlInfo, ControlKind};

// Kernel ABI values (include/uapi/linux/videodev2.h).
const CTRL_TYPE_INTEGER: u32 = 1;
const CTRL_TYPE_BOOLEAN: u32 = 2;
const CTRL_TYPE_MENU: u32 = 3;
const CTRL_TYPE_BUTTON: u32 = 4;
const CTRL_TYPE_INTEGER64: u32 = 5;
const CTRL_TYPE_CTRL_CLASS: u32 = 6;
const CTRL_TYPE_STRING: u32 = 7;
const CTRL_TYPE_BITMASK: u32 = 8;
const CTRL_TYPE_INTEGER_MENU: u32 = 9;
const CTRL_FLAG_DISABLED: u32 = 0x0001;
const CTRL_FLAG_READ_ONLY: u32 = 0x0004;
const CTRL_FLAG_INACTIVE: u32 = 0x0010;
const CTRL_FLAG_WRITE_ONLY: u32 = 0x0040;
const CTRL_FLAG_NEXT_CTRL: u32 = 0x8000_0000;
const CTRL_WHICH_CUR_VAL: u32 = 0;

fn kind_of(typ: u32) -> ControlKind {
    match typ {
        CTRL_TYPE_INTEGER => ControlKind::Integer,
        CTRL_TYPE_BOOLEAN => ControlKind::Boolean,
        CTRL_TYPE_MENU => ControlKind::Menu,
        CTRL_TYPE_BUTTON => ControlKind::Button,
        CTRL_TYPE_INTEGER64 => ControlKind::Integer64,
        CTRL_TYPE_STRING => ControlKind::String,
        CTRL_TYPE_BITMASK => ControlKind::Bitmask,
        CTRL_TYPE_INTEGER_MENU => ControlKind::IntegerMenu,
        other => ControlKind::Compound(other),
    }
}

/// A control of the device and the id to address it with.
#[derive(Debug, Clone)]
pub(super) struct DeviceControl {
    pub id: u32,
    pub info: ControlInfo,
}

/// Every control of the device with its current value (class headings and disabled ones left
/// out), in the driver's order.
pub(super) fn query(device: &Device) -> io::Result<Vec<DeviceControl>> {
    let mut controls = Vec::new();
    let mut id = 0u32;
    loop {
        // SAFETY: plain old data; all-zero is a valid value.
        let mut query: sys::v4l2_query_ext_ctrl = unsafe { core::mem::zeroed() };
        query.id = id | CTRL_FLAG_NEXT_CTRL;
        // SAFETY: the argument type matches the request.
        match unsafe { device.ioctl(vidioc::VIDIOC_QUERY_EXT_CTRL, &mut query) } {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
            Err(e) => return Err(e),
        }
        if query.id <= id {
            break; // a driver that does not move on: stop rather than loop forever
        }
        id = query.id;
        if query.type_ == CTRL_TYPE_CTRL_CLASS || query.flags & CTRL_FLAG_DISABLED != 0 {
            continue;
        }
        let raw_name: Vec<u8> = query.name.iter().map(|&c| c as u8).collect();
        let label = c_text(&raw_name);
        let menu = if matches!(query.type_, CTRL_TYPE_MENU | CTRL_TYPE_INTEGER_MENU) {
            menu_items(device, &query)
        } else {
            Vec::new()
        };
        let kind = kind_of(query.type_);
        let readable = query.flags & CTRL_FLAG_WRITE_ONLY == 0 && kind.has_value();
        let current = if readable { get(device, query.id, kind).ok() } else { None };
        controls.push(DeviceControl {
            id: query.id,
            info: ControlInfo {
                name: normalize_control_name(&label),
                label,
                kind,
                minimum: query.minimum,
                maximum: query.maximum,
                step: query.step,
                default: query.default_value,
                current,
                menu,
                read_only: query.flags & CTRL_FLAG_READ_ONLY != 0,
                inactive: query.flags & CTRL_FLAG_INACTIVE != 0,
            },
        });
    }
    Ok(controls)
}

fn menu_items(device: &Device, query: &sys::v4l2_query_ext_ctrl) -> Vec<(i64, String)> {
    let mut menu = Vec::new();
    if query.maximum - query.minimum >= 256 {
        return menu;
    }
    for index in query.minimum.max(0)..=query.maximum {
        // SAFETY: plain old data; all-zero is a valid value.
        let mut item: sys::v4l2_querymenu = unsafe { core::mem::zeroed() };
        item.id = query.id;
        item.index = index as u32;
        // SAFETY: the argument type matches the request.
        if unsafe { device.ioctl(vidioc::VIDIOC_QUERYMENU, &mut item) }.is_err() {
            continue; // drivers may leave holes in a menu
        }
        let label = if query.type_ == CTRL_TYPE_MENU {
            // SAFETY: for MENU controls the union holds the item's name.
            c_text(&unsafe { item.__bindgen_anon_1.name })
        } else {
            // SAFETY: for INTEGER_MENU controls the union holds the item's value.
            unsafe { item.__bindgen_anon_1.value }.to_string()
        };
        menu.push((index, label));
    }
    menu
}

/// G_EXT_CTRLS of one control's current value.
pub(super) fn get(device: &Device, id: u32, kind: ControlKind) -> io::Result<i64> {
    // SAFETY: plain old data; all-zero is a valid value.
    let mut control: sys::v4l2_ext_control = unsafe { core::mem::zeroed() };
    control.id = id;
    ext_ctrls(device, vidioc::VIDIOC_G_EXT_CTRLS, &mut control)?;
    // SAFETY: integer-valued controls use `value` (or `value64` for 64-bit ones).
    Ok(unsafe {
        if kind == ControlKind::Integer64 {
            control.__bindgen_anon_1.value64
        } else {
            i64::from(control.__bindgen_anon_1.value)
        }
    })
}

/// S_EXT_CTRLS of one control.
fn set(device: &Device, id: u32, kind: ControlKind, value: i64) -> io::Result<()> {
    // SAFETY: plain old data; all-zero is a valid value.
    let mut control: sys::v4l2_ext_control = unsafe { core::mem::zeroed() };
    control.id = id;
    if kind == ControlKind::Integer64 {
        control.__bindgen_anon_1.value64 = value;
    } else {
        control.__bindgen_anon_1.value = i32::try_from(value).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{value} does not fit a 32-bit control"))
        })?;
    }
    ext_ctrls(device, vidioc::VIDIOC_S_EXT_CTRLS, &mut control)
}

fn ext_ctrls(device: &Device, request: vidioc::_IOC_TYPE, control: &mut sys::v4l2_ext_control) -> io::Result<()> {
    // SAFETY: plain old data; all-zero is a valid value.
    let mut controls: sys::v4l2_ext_controls = unsafe { core::mem::zeroed() };
    controls.__bindgen_anon_1.which = CTRL_WHICH_CUR_VAL;
    controls.count = 1;
    controls.controls = control;
    // SAFETY: the argument type matches the request; `control` outlives the call.
    unsafe { device.ioctl(request, &mut controls) }
}

/// The integer to write for `value` into `control`, or why it is not allowed.
pub(super) fn control_value(control: &ControlInfo, value: &ControlValue) -> Result<i64, String> {
    match (control.kind, value) {
        (ControlKind::Boolean, ControlValue::Bool(b)) => Ok(i64::from(*b)),
        (ControlKind::Boolean, ControlValue::Integer(v @ (0 | 1))) => Ok(*v),
        (ControlKind::Boolean, _) => Err("is a boolean control: use true or false".into()),
        (ControlKind::Menu | ControlKind::IntegerMenu, ControlValue::Integer(v)) => {
            if control.menu.iter().any(|(i, _)| i == v) {
                Ok(*v)
            } else {
                Err(format!("has no menu item {v} (items: {})", control.menu_text()))
            }
        }
        (ControlKind::Menu, ControlValue::Menu(name)) => {
            let wanted = normalize_control_name(name);
            control
                .menu
                .iter()
                .find(|(_, label)| normalize_control_name(label) == wanted)
                .map(|(i, _)| *i)
                .ok_or_else(|| format!("has no menu item `{name}` (items: {})", control.menu_text()))
        }
        (ControlKind::Menu | ControlKind::IntegerMenu, _) => {
            Err(format!("is a menu control: use an item number (items: {})", control.menu_text()))
        }
        (ControlKind::Integer | ControlKind::Integer64, ControlValue::Integer(v)) => {
            let step = control.step.clamp(1, i64::MAX as u64) as i64;
            if *v < control.minimum || *v > control.maximum {
                Err(format!("is out of range: allowed {}..{} (step {step})", control.minimum, control.maximum))
            } else if (v - control.minimum) % step != 0 {
                Err(format!(
                    "is not on the control's step: allowed {}..{} in steps of {step}",
                    control.minimum, control.maximum
                ))
            } else {
                Ok(*v)
            }
        }
        (ControlKind::Integer | ControlKind::Integer64, _) => {
            Err(format!("is an integer control: allowed {}..{}", control.minimum, control.maximum))
        }
        _ => Err(format!("is a {} control, which framebus cannot set", control.kind.name())),
    }
}

/// What the device offers, for an error message: `brightness (int 0..255), ...`.
pub(super) fn offered_text(controls: &[DeviceControl]) -> String {
    controls.iter().map(|c| c.info.summary()).collect::<Vec<_>>().join(", ")
}

/// Checks every setting against the device before anything is set: the name exists, it can be
/// written, the value fits. Returns the controls and raw values in order.
pub(super) fn check<'a>(
    controls: &'a [DeviceControl],
    settings: &[(String, ControlValue)],
    path: &str,
) -> Result<Vec<(&'a DeviceControl, i64)>, ControlError> {
    let mut checked = Vec::with_capacity(settings.len());
    for (name, value) in settings {
        let key = normalize_control_name(name);
        let Some(control) = controls.iter().find(|c| c.info.name == key) else {
            return Err(ControlError::Rejected(format!(
                "{path} has no control `{key}`; it offers: {}",
                offered_text(controls)
            )));
        };
        if control.info.read_only {
            return Err(ControlError::Rejected(format!(
                "control `{key}` of {path} is read-only; it offers: {}",
                offered_text(controls)
            )));
        }
        let raw = control_value(&control.info, value)
            .map_err(|why| ControlError::Rejected(format!("control `{key}` = {value} {why} on {path}")))?;
        checked.push((control, raw));
    }
    Ok(checked)
}

/// Sets checked controls one at a time, in order, reading each back. Stops at the first one the
/// driver refuses: `Err((applied so far, error))`; a refusal that says the value is wrong
/// (EINVAL, ERANGE, EACCES, EPERM, EBUSY) is [`ControlError::Rejected`], anything else means the
/// device is in trouble ([`ControlError::Unavailable`]).
pub(super) fn apply(
    device: &Device,
    checked: &[(&DeviceControl, i64)],
    path: &str,
    camera: &str,
) -> Result<Vec<ControlApplied>, (Vec<ControlApplied>, ControlError)> {
    let mut applied = Vec::with_capacity(checked.len());
    for (control, raw) in checked {
        let key = &control.info.name;
        if control.info.inactive {
            tracing::warn!(
                camera,
                device = path,
                "control `{key}` is inactive: an automatic mode may override the value set"
            );
        }
        if let Err(e) = set(device, control.id, control.info.kind, *raw) {
            let refused = matches!(
                e.raw_os_error(),
                Some(libc::ERANGE | libc::EINVAL | libc::EACCES | libc::EPERM | libc::EBUSY)
            );
            let error = if refused {
                ControlError::Rejected(format!("{path} rejected control `{key}` = {raw}: {e}"))
            } else {
                ControlError::Unavailable(format!("setting control `{key}` on {path}: {e}"))
            };
            return Err((applied, error));
        }
        let readable = control.info.current.is_some();
        let accepted = if readable { get(device, control.id, control.info.kind).unwrap_or(*raw) } else { *raw };
        tracing::info!(camera, device = path, "control {key} = {raw} (device reads back {accepted})");
        applied.push(ControlApplied { name: key.clone(), requested: *raw, accepted });
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int_control() -> ControlInfo {
        ControlInfo {
            name: "brightness".into(),
            label: "Brightness".into(),
            kind: ControlKind::Integer,
            minimum: 0,
            maximum: 255,
            step: 1,
            default: 128,
            current: Some(128),
            menu: vec![],
            read_only: false,
            inactive: false,
        }
    }

    /// Control values are checked against the device's range, step, type and menu.
    #[test]
    fn control_values_are_checked_against_the_device() {
        let int = int_control();
        assert_eq!(control_value(&int, &ControlValue::Integer(200)), Ok(200));
        assert!(control_value(&int, &ControlValue::Integer(300)).is_err_and(|e| e.contains("0..255")));
        let stepped = ControlInfo { step: 10, ..int_control() };
        assert!(control_value(&stepped, &ControlValue::Integer(15)).is_err_and(|e| e.contains("steps of 10")));
        let menu = ControlInfo {
            kind: ControlKind::Menu,
            name: "auto_exposure".into(),
            minimum: 0,
            maximum: 3,
            menu: vec![(1, "Manual Mode".into()), (3, "Aperture Priority Mode".into())],
            ..int_control()
        };
        assert_eq!(control_value(&menu, &ControlValue::Menu("manual mode".into())), Ok(1));
        assert!(control_value(&menu, &ControlValue::Integer(2)).is_err_and(|e| e.contains("1 = Manual Mode")));
        let boolean = ControlInfo { kind: ControlKind::Boolean, maximum: 1, ..int_control() };
        assert_eq!(control_value(&boolean, &ControlValue::Bool(false)), Ok(0));
        let button = ControlInfo { kind: ControlKind::Button, ..int_control() };
        assert!(control_value(&button, &ControlValue::Integer(1)).is_err_and(|e| e.contains("button")));
    }

    /// Every setting is checked before anything is set: one bad name rejects the whole list and
    /// the message lists what the device offers.
    #[test]
    fn a_bad_setting_rejects_the_whole_list_with_what_the_device_offers() {
        let controls = vec![
            DeviceControl { id: 1, info: int_control() },
            DeviceControl { id: 2, info: ControlInfo { name: "gain".into(), read_only: true, ..int_control() } },
        ];
        let ok = check(&controls, &[("Brightness".into(), ControlValue::Integer(7))], "/dev/video0");
        assert_eq!(ok.map(|v| v.iter().map(|(c, raw)| (c.id, *raw)).collect::<Vec<_>>()).ok(), Some(vec![(1, 7)]));
        let settings = [("brightness".into(), ControlValue::Integer(7)), ("bogus".into(), ControlValue::Integer(1))];
        match check(&controls, &settings, "/dev/video0") {
            Err(ControlError::Rejected(m)) => assert_eq!(
                m,
                "/dev/video0 has no control `bogus`; it offers: brightness (int 0..255), gain (int 0..255, read-only)"
            ),
            other => panic!("{other:?}"),
        }
        let read_only = check(&controls, &[("gain".into(), ControlValue::Integer(1))], "/dev/video0");
        assert!(matches!(read_only, Err(ControlError::Rejected(m)) if m.contains("read-only")));
    }
}
