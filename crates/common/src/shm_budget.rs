//! Whether the shared memory a deployment's cameras reserve fits in /dev/shm right now.
//!
//! iceoryx2 0.10 sizes every segment with `ftruncate` only (a sparse tmpfs file): a page is
//! taken from tmpfs when it is first touched, and when tmpfs is full that touch is a SIGBUS. So
//! capture checks its camera's need against the free space of /dev/shm before it creates the
//! segment, and `capture --check-config` and `ctl up` check the whole deployment's; the config's
//! own cap (`[deployment] max-shared-memory-mb`) is checked at load, without I/O. Right after
//! creating its publisher, capture reserves every page of its frame segment
//! ([`reserve_data_segment`], `posix_fallocate`), so space taken between the check and then is
//! an error at start, and capture never faults on its own frames later. Pages iceoryx2 takes at
//! run time (connections, other ports) cannot be reserved from outside; a SIGBUS on one of them
//! ends the process with [`EXIT_SHORT_OF_MEMORY`] (see [`crate::signals::install_sigbus`]).
//!
//! Two outcomes differ: a need larger than the whole of /dev/shm can never run (a config error,
//! exit 2); a need larger than the space free right now ([`ShortOfMemory`]) may run once space
//! comes back, so a process exits with [`EXIT_SHORT_OF_MEMORY`] and the supervisor retries it
//! without giving up.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::config::{human_bytes, ConfigError, Deployment};
use crate::names::shm_prefix;

/// The folder iceoryx2's segments live in.
pub const SHM_DIR: &str = "/dev/shm";

pub use crate::limits::EXIT_SHORT_OF_MEMORY;

/// /dev/shm has less free space than a process needs right now (but the whole of it would do).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not enough shared memory: need {} MiB, {SHM_DIR} has {} MiB free{detail}", mib(*need), mib(*free))]
pub struct ShortOfMemory {
    /// Bytes needed.
    pub need: u64,
    /// Bytes free (counting the deployment's own when that applies).
    pub free: u64,
    /// What needs it and what to do, starting with `; ` (or empty).
    pub detail: String,
}

/// Why a deployment's shared memory does not fit.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// Larger than /dev/shm as a whole, or /dev/shm unreadable: the config must change.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Larger than the free space now: may fit once space comes back.
    #[error(transparent)]
    Short(#[from] ShortOfMemory),
}

impl BudgetError {
    /// The shortage, when the space may come back.
    pub fn shortage(&self) -> Option<&ShortOfMemory> {
        match self {
            BudgetError::Short(short) => Some(short),
            BudgetError::Config(_) => None,
        }
    }
}

/// Finds a [`ShortOfMemory`] in an error and its causes (an `anyhow::Error` passes `as_ref()`).
pub fn find_shortage<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a ShortOfMemory> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(short) = e.downcast_ref::<ShortOfMemory>() {
            return Some(short);
        }
        if let Some(short) = e.downcast_ref::<BudgetError>().and_then(BudgetError::shortage) {
            return Some(short);
        }
        if let Some(ReserveError::Short(short)) = e.downcast_ref::<ReserveError>() {
            return Some(short);
        }
        next = e.source();
    }
    None
}

/// A [`ShortOfMemory`] when /dev/shm has less than `need` bytes free now: what a process that
/// failed to create a segment reports (the free space may have gone between the check and the
/// creation). `None` when the space is there (the failure had another cause).
pub fn short_of(need: u64, what: &str) -> Option<ShortOfMemory> {
    let (free, _) = free_space(Path::new(SHM_DIR)).ok()?;
    (free < need).then(|| ShortOfMemory {
        need,
        free,
        detail: format!("; {what}; free space in {SHM_DIR} (another process may have filled it): `ctl up` retries"),
    })
}

/// Why a data segment's pages could not be reserved.
#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    /// /dev/shm could not back every page now (ENOSPC): may work once space comes back.
    #[error(transparent)]
    Short(#[from] ShortOfMemory),
    /// The segment file was not found, or was not this user's regular file, or another error.
    #[error("{0}")]
    Other(String),
}

/// The file in `dir` of the data segment of the port `port_id` of `deployment`: iceoryx2 0.10
/// names it `<prefix><type hash>_<port id>.data` (`iceoryx2::service::naming_scheme::
/// data_segment_name` with the data-segment suffix, through `iceoryx2-cal`'s dynamic storage,
/// which puts the hash of the stored type after the prefix).
pub fn data_segment_file(dir: &Path, deployment: &str, port_id: u128) -> std::io::Result<std::path::PathBuf> {
    let prefix = shm_prefix(deployment);
    let suffix = format!("_{port_id}.data");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(&suffix) {
            found.push(entry.path());
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        n => Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{n} files `{prefix}*{suffix}` in {} (expected one)", dir.display()),
        )),
    }
}

/// Reserves every page of the data segment of the port `port_id` of `deployment` in /dev/shm
/// (`posix_fallocate` over the whole file), so touching it later never faults for want of
/// space. Returns the bytes reserved. `what` names the segment in the error (e.g. "camera
/// `cam0`'s frame segment"). A segment /dev/shm cannot back now is [`ReserveError::Short`].
pub fn reserve_data_segment(deployment: &str, port_id: u128, what: &str) -> Result<u64, ReserveError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_segment_file(Path::new(SHM_DIR), deployment, port_id)
        .map_err(|e| ReserveError::Other(format!("finding {what} of port {port_id}: {e}")))?;
    let context =
        |e: &dyn std::fmt::Display| ReserveError::Other(format!("reserving {what} (`{}`): {e}", path.display()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| context(&e))?;
    let meta = file.metadata().map_err(|e| context(&e))?;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if !meta.file_type().is_file() || meta.uid() != euid {
        return Err(context(&format_args!("not a regular file of uid {euid}; refused")));
    }
    let size = meta.len();
    let len = libc::off_t::try_from(size).map_err(|e| context(&e))?;
    loop {
        // SAFETY: a valid open descriptor; posix_fallocate returns the error number.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
        match rc {
            0 => return Ok(size),
            libc::EINTR => continue,
            libc::ENOSPC => {
                let free = free_space(Path::new(SHM_DIR)).map_or(0, |(free, _)| free);
                return Err(ShortOfMemory {
                    need: size,
                    free,
                    detail: format!(
                        "; reserving the pages of {what} (`{}`); free space in {SHM_DIR} (another process may have filled it): `ctl up` retries",
                        path.display()
                    ),
                }
                .into());
            }
            errno => return Err(context(&std::io::Error::from_raw_os_error(errno))),
        }
    }
}

fn mib(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 10.0 {
        format!("{mib:.0}")
    } else {
        format!("{mib:.1}")
    }
}

/// Free and total bytes of the file system at `path` (statvfs: blocks available to this user).
pub fn free_space(path: &Path) -> std::io::Result<(u64, u64)> {
    let space = crate::fs_space::space(path)?;
    Ok((space.bytes, space.total_bytes))
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
pub fn check(deployment: &Deployment, camera: Option<&str>, count_own: bool) -> Result<(), BudgetError> {
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
            let what = format!(
                "camera `{}` needs {} ({} slots of {}x{} {}, {} bytes each){}",
                cam.name,
                human_bytes(need),
                layout.slots(),
                cam.width,
                cam.height,
                cam.pixel_format,
                layout.frame_bytes,
                if before > 0 {
                    format!(" after {} for the cameras before it", human_bytes(before))
                } else {
                    String::new()
                },
            );
            let own = available.saturating_sub(free);
            if needed > total.saturating_add(own) {
                return Err(ConfigError::value(
                    file,
                    &format!("camera[{i}].slots"),
                    format!(
                        "not enough shared memory: need {} MiB, {SHM_DIR} has {} MiB free: {what}, but {SHM_DIR} has only {} free (of {}); lower `slots`, `max-readers` or the frame size, or enlarge {SHM_DIR} (`mount -o remount,size=...`)",
                        mib(needed),
                        mib(available),
                        human_bytes(available),
                        human_bytes(total),
                    ),
                )
                .into());
            }
            return Err(ShortOfMemory {
                need: needed,
                free: available,
                detail: format!(
                    "; {what} (config `{}`, key `camera[{i}].slots`); {SHM_DIR} holds {} in all: free space in it (another process may have filled it), or lower `slots`, `max-readers` or the frame size",
                    file.display(),
                    human_bytes(total)
                ),
            }
            .into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data segment of a port is found by the deployment's prefix and the port id, and
    /// reserving it backs every page of the (sparse) file.
    #[test]
    fn a_data_segment_is_found_by_port_id_and_reserved_whole() {
        let deployment = format!("reservetest{}", std::process::id());
        let prefix = shm_prefix(&deployment);
        let path = Path::new(SHM_DIR).join(format!("{prefix}0354a209_4242.data"));
        let other = Path::new(SHM_DIR).join(format!("{prefix}0354a209_14242.data"));
        std::fs::File::create(&path).and_then(|f| f.set_len(1 << 20)).expect("segment");
        std::fs::File::create(&other).and_then(|f| f.set_len(4096)).expect("other segment");
        assert_eq!(data_segment_file(Path::new(SHM_DIR), &deployment, 4242).ok().as_deref(), Some(path.as_path()));
        assert!(data_segment_file(Path::new(SHM_DIR), &deployment, 7).is_err(), "no such port");
        let sparse = std::fs::metadata(&path).expect("meta").blocks() * 512;
        let reserved = reserve_data_segment(&deployment, 4242, "the test segment");
        let backed = std::fs::metadata(&path).expect("meta").blocks() * 512;
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&other);
        assert_eq!(reserved.expect("reserved"), 1 << 20);
        assert!(sparse < 1 << 20 && backed >= 1 << 20, "{sparse} -> {backed}");
        assert!(matches!(reserve_data_segment(&deployment, 4242, "gone"), Err(ReserveError::Other(_))));
    }
}
