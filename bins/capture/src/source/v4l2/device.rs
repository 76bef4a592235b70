//! The V4L2 device file and the ioctls capture issues on it. The ioctls are our own, over the
//! kernel ABI structs that the `v4l` crate generates from `videodev2.h` with bindgen
//! (`v4l::v4l_sys`), issued through `v4l::v4l2::ioctl` (a `syscall(SYS_ioctl)`).

use core::ffi::c_void;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub(super) use v4l::v4l2::vidioc;
pub(super) use v4l::v4l_sys as sys;

// Kernel ABI values (include/uapi/linux/videodev2.h) that bindgen does not emit as constants
// of the right type, or that read better by name here.
pub(super) const BUF_TYPE_CAPTURE: u32 = 1;
pub(super) const BUF_TYPE_CAPTURE_MPLANE: u32 = 9;
pub(super) const MEMORY_MMAP: u32 = 1;
pub(super) const MEMORY_USERPTR: u32 = 2;
pub(super) const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
pub(super) const CAP_VIDEO_CAPTURE_MPLANE: u32 = 0x0000_1000;
pub(super) const CAP_STREAMING: u32 = 0x0400_0000;
pub(super) const CAP_DEVICE_CAPS: u32 = 0x8000_0000;
pub(super) const BUF_FLAG_ERROR: u32 = 0x0040;
pub(super) const BUF_FLAG_TIMESTAMP_MASK: u32 = 0xe000;
pub(super) const BUF_FLAG_TIMESTAMP_MONOTONIC: u32 = 0x2000;
/// Planes a multi-planar buffer may have (`VIDEO_MAX_PLANES`).
pub(super) const MAX_PLANES: usize = 8;

/// An open V4L2 device node (non-blocking, close-on-exec).
#[derive(Debug)]
pub(super) struct Device {
    fd: OwnedFd,
}

/// What QUERYCAP says about a device.
#[derive(Debug, Clone)]
pub(super) struct Caps {
    /// Driver name (`uvcvideo`, `rkisp1`).
    pub driver: String,
    /// Device name (`HD Webcam`).
    pub card: String,
    /// Capabilities of this node (`device_caps` when the driver gives them).
    pub caps: u32,
}

impl Caps {
    /// Human-readable list of the capture-related capability bits.
    pub fn describe(&self) -> String {
        let mut names = Vec::new();
        for (bit, name) in [
            (CAP_VIDEO_CAPTURE, "VIDEO_CAPTURE"),
            (CAP_VIDEO_CAPTURE_MPLANE, "VIDEO_CAPTURE_MPLANE"),
            (0x0000_0002, "VIDEO_OUTPUT"),
            (0x0000_2000, "VIDEO_OUTPUT_MPLANE"),
            (0x0000_4000, "VIDEO_M2M_MPLANE"),
            (0x0000_8000, "VIDEO_M2M"),
            (0x0080_0000, "META_CAPTURE"),
            (0x0100_0000, "READWRITE"),
            (CAP_STREAMING, "STREAMING"),
        ] {
            if self.caps & bit != 0 {
                names.push(name);
            }
        }
        if names.is_empty() {
            format!("0x{:08x}", self.caps)
        } else {
            names.join(" | ")
        }
    }
}

/// A fixed-size C string field as text.
pub(super) fn c_text(bytes: &[u8]) -> String {
    CStr::from_bytes_until_nul(bytes)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned())
}

impl Device {
    /// Opens `path` read-write, non-blocking (every wait is capture's own `poll`), close-on-exec
    /// (a child such as `media-ctl` never keeps the device, or its buffers, alive).
    pub fn open(path: &Path) -> io::Result<Device> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "device path contains a NUL byte"))?;
        // SAFETY: `c_path` is a valid NUL-terminated string for the duration of the call.
        let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(Device { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// The file descriptor (for `poll`).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Issues `request` with `arg`, retrying when a signal interrupts it.
    ///
    /// # Safety
    /// `T` must be the argument type the kernel defines for `request`, and every pointer inside
    /// `arg` must be valid for what the ioctl does with it.
    pub unsafe fn ioctl<T>(&self, request: vidioc::_IOC_TYPE, arg: &mut T) -> io::Result<()> {
        loop {
            // SAFETY: forwarded from the caller's contract.
            match unsafe { v4l::v4l2::ioctl(self.fd(), request, (arg as *mut T).cast::<c_void>()) } {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    /// QUERYCAP.
    pub fn query_caps(&self) -> io::Result<Caps> {
        // SAFETY: plain old data; all-zero is a valid value.
        let mut cap: sys::v4l2_capability = unsafe { core::mem::zeroed() };
        // SAFETY: the argument type matches the request.
        unsafe { self.ioctl(vidioc::VIDIOC_QUERYCAP, &mut cap) }?;
        let caps = if cap.capabilities & CAP_DEVICE_CAPS != 0 { cap.device_caps } else { cap.capabilities };
        Ok(Caps { driver: c_text(&cap.driver), card: c_text(&cap.card), caps })
    }

    /// The fourccs ENUM_FMT lists for `buf_type`, in the driver's order.
    pub fn formats(&self, buf_type: u32) -> Vec<u32> {
        let mut out = Vec::new();
        for index in 0..64 {
            // SAFETY: plain old data; all-zero is a valid value.
            let mut desc: sys::v4l2_fmtdesc = unsafe { core::mem::zeroed() };
            desc.index = index;
            desc.type_ = buf_type;
            // SAFETY: the argument type matches the request.
            if unsafe { self.ioctl(vidioc::VIDIOC_ENUM_FMT, &mut desc) }.is_err() {
                break;
            }
            out.push(desc.pixelformat);
        }
        out
    }
}

/// The four characters of a fourcc, `?` for unprintable bytes.
pub(super) fn fourcc_text(code: u32) -> String {
    code.to_le_bytes().iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '?' }).collect()
}

/// The fourcc of four ASCII characters.
pub(super) const fn fourcc(name: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written ABI constants agree with the kernel header bindings.
    #[test]
    fn abi_constants_match_the_kernel_header() {
        assert_eq!(BUF_TYPE_CAPTURE, sys::v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE);
        assert_eq!(BUF_TYPE_CAPTURE_MPLANE, sys::v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE);
        assert_eq!(MEMORY_MMAP, sys::v4l2_memory_V4L2_MEMORY_MMAP);
        assert_eq!(MEMORY_USERPTR, sys::v4l2_memory_V4L2_MEMORY_USERPTR);
        assert_eq!(CAP_VIDEO_CAPTURE, sys::V4L2_CAP_VIDEO_CAPTURE);
        assert_eq!(CAP_VIDEO_CAPTURE_MPLANE, sys::V4L2_CAP_VIDEO_CAPTURE_MPLANE);
        assert_eq!(CAP_STREAMING, sys::V4L2_CAP_STREAMING);
        assert_eq!(CAP_DEVICE_CAPS, sys::V4L2_CAP_DEVICE_CAPS);
        assert_eq!(BUF_FLAG_ERROR, sys::V4L2_BUF_FLAG_ERROR);
        assert_eq!(BUF_FLAG_TIMESTAMP_MASK, sys::V4L2_BUF_FLAG_TIMESTAMP_MASK);
        assert_eq!(BUF_FLAG_TIMESTAMP_MONOTONIC, sys::V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC);
        assert_eq!(MAX_PLANES as u32, sys::VIDEO_MAX_PLANES);
        assert_eq!(fourcc_text(fourcc(b"NV12")), "NV12");
    }
}
