//! Room left on a file system for an unprivileged writer (`statvfs`, through rustix): the
//! free space of /dev/shm ([`crate::shm_budget`]) and of the recorder's folder.

use std::path::Path;

/// Free and total room on one file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Bytes available to an unprivileged writer (`f_bavail × f_frsize`).
    pub bytes: u64,
    /// Size of the file system in bytes (`f_blocks × f_frsize`).
    pub total_bytes: u64,
    /// Inodes available (`f_favail`); `None` when the file system does not count inodes
    /// (`f_files` = 0: vfat, exFAT, btrfs), so there is no inode limit to watch.
    pub inodes: Option<u64>,
}

/// Free bytes and inodes on the file system holding `path` (one `statvfs`, about a
/// microsecond, cheap enough to ask before every frame written).
pub fn space(path: &Path) -> std::io::Result<Space> {
    let st = rustix::fs::statvfs(path)?;
    Ok(Space {
        bytes: st.f_bavail.saturating_mul(st.f_frsize),
        total_bytes: st.f_blocks.saturating_mul(st.f_frsize),
        inodes: (st.f_files > 0).then_some(st.f_favail),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The temporary folder's file system has room and counts it.
    #[test]
    fn a_real_file_system_has_room() {
        let dir = std::env::temp_dir();
        let s = space(&dir).expect("statvfs");
        assert!(s.bytes > 0 && s.total_bytes >= s.bytes, "{s:?}");
        assert!(space(Path::new("/no/such/folder")).is_err());
    }
}
