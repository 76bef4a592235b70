//! Whether the shared memory a deployment's cameras reserve fits in /dev/shm right now.
//!
//! iceoryx2 sizes a camera's frame segment up front (`ftruncate` of a tmpfs file); when the
//! pages are then touched and tmpfs is full, the process dies of SIGBUS. So capture checks its
//! camera's need against the free space of /dev/shm before it creates the segment, and
//! `capture --check-config` and `ctl up` check the whole deployment's. The config's own cap
//! (`[deployment] max-shared-memory-mb`) is checked at load, without I/O.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::config::{human_bytes, ConfigError, Deployment};
use crate::names::shm_prefix;

/// The folder iceoryx2's segments live in.
pub const SHM_DIR: &str = "/dev/shm";

/// Free and total bytes of the file system at `path` (statvfs: blocks available to this user).
pub fn free_space(path: &Path) -> std::io::Result<(u64, u64)> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let block = st.f_frsize as u64;
    Ok(((st.f_bavail as u64).saturating_mul(block), (st.f_blocks as u64).saturating_mul(block)))
}

/// Bytes the files of `deployment` already hold in /dev/shm (a running deployment's own
/// memory is available to it when its config is checked again).
fn own_bytes(deployment: &str) -> u64 {
    let prefix = shm_prefix(deployment);
    std::fs::read_dir(SHM_DIR)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.blocks().saturating_mul(512))
                .sum()
        })
        .unwrap_or(0)
}

/// Checks that the cameras of `deployment` (only `camera` when given) fit in the free space
/// of /dev/shm; with `count_own`, memory the deployment already holds counts as free. The
/// error names the config file, the camera's `slots` key and the figures.
pub fn check(deployment: &Deployment, camera: Option<&str>, count_own: bool) -> Result<(), ConfigError> {
    let file = &deployment.source_file;
    let (free, total) = free_space(Path::new(SHM_DIR)).map_err(|e| {
        ConfigError::value(
            file,
            "camera",
            format!("cannot read the free space of {SHM_DIR} (iceoryx2 keeps frames there): {e}"),
        )
    })?;
    let available = if count_own { free.saturating_add(own_bytes(deployment.name())) } else { free };
    let mut needed = 0u64;
    for (i, cam) in deployment.camera.iter().enumerate() {
        if camera.is_some_and(|name| name != cam.name) {
            continue;
        }
        let need = cam.shared_memory_bytes();
        let before = needed;
        needed = needed.saturating_add(need);
        if needed > available {
            let layout = cam.slot_layout();
            return Err(ConfigError::value(
                file,
                &format!("camera[{i}].slots"),
                format!(
                    "camera `{}` needs {} of shared memory ({} slots of {}x{} {}, {} bytes each){}, but {SHM_DIR} has only {} free (of {}); lower `slots`, `max-readers` or the frame size, or free or enlarge {SHM_DIR} (`mount -o remount,size=...`)",
                    cam.name,
                    human_bytes(need),
                    layout.slots(),
                    cam.width,
                    cam.height,
                    cam.pixel_format,
                    layout.frame_bytes,
                    if before > 0 { format!(" after {} for the cameras before it", human_bytes(before)) } else { String::new() },
                    human_bytes(available),
                    human_bytes(total),
                ),
            ));
        }
    }
    Ok(())
}
