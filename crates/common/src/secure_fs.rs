//! File-system checks for files framebus shares with nobody: folders that only their owner
//! can change, files opened without following symlinks and read only when they are regular
//! files of a bounded size. Used for the command state (`state`), iceoryx2's node counter
//! (`ipc`) and recordings.
//!
//! The threat is another local user on the same machine (framebus often runs as root): they
//! must not make framebus write through a symlink they planted, feed it state it trusts, or
//! hang it with a FIFO.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The effective user id of this process (the owner of everything it creates).
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Why a folder or file is not safe to use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{}` {reason}", path.display())]
pub struct Unsafe {
    /// The folder or file.
    pub path: PathBuf,
    /// What is wrong with it (owner, mode, type).
    pub reason: String,
}

impl Unsafe {
    fn new(path: &Path, reason: String) -> Unsafe {
        Unsafe { path: path.to_path_buf(), reason }
    }
}

/// Checks that only this user (and root) can change `dir` and the folders above it: `dir` is a
/// folder owned by this user and not writable by group or others; every folder above it is
/// owned by this user or root and not writable by group or others unless its sticky bit is set
/// (as on `/tmp`). Symlinks in `dir` are resolved first; the resolved path is returned, to be
/// used for every file operation afterwards.
pub fn check_private_dir(dir: &Path) -> Result<PathBuf, Unsafe> {
    let canonical = std::fs::canonicalize(dir).map_err(|e| Unsafe::new(dir, format!("cannot be resolved: {e}")))?;
    let me = euid();
    let meta = std::fs::metadata(&canonical).map_err(|e| Unsafe::new(&canonical, format!("cannot be read: {e}")))?;
    if !meta.is_dir() {
        return Err(Unsafe::new(&canonical, "is not a folder".into()));
    }
    if meta.uid() != me {
        return Err(Unsafe::new(
            &canonical,
            format!(
                "is owned by uid {}, not by this user (uid {me}): another user could change what is in it",
                meta.uid()
            ),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(Unsafe::new(
            &canonical,
            format!("has mode {:04o}: group or others may write in it (allowed: not writable by group and others, e.g. 0700)", meta.mode() & 0o7777),
        ));
    }
    for ancestor in canonical.ancestors().skip(1) {
        let meta = std::fs::metadata(ancestor).map_err(|e| Unsafe::new(ancestor, format!("cannot be read: {e}")))?;
        if meta.uid() != me && meta.uid() != 0 {
            return Err(Unsafe::new(
                ancestor,
                format!(
                    "(a folder above `{}`) is owned by uid {}, neither this user (uid {me}) nor root: that user could replace what is below it",
                    canonical.display(),
                    meta.uid()
                ),
            ));
        }
        let sticky = meta.mode() & 0o1000 != 0;
        if meta.mode() & 0o022 != 0 && !sticky {
            return Err(Unsafe::new(
                ancestor,
                format!(
                    "(a folder above `{}`) has mode {:04o}: group or others may rename what is below it",
                    canonical.display(),
                    meta.mode() & 0o7777
                ),
            ));
        }
    }
    Ok(canonical)
}

/// Checks that `dir` is a real folder (not a symlink) owned by this user and not writable by
/// group or others; creates it with mode 0700 when it is missing.
pub fn ensure_own_dir(dir: &Path) -> Result<(), Unsafe> {
    let meta = ensure_real_dir(dir, 0o700)?;
    if meta.mode() & 0o022 != 0 {
        return Err(Unsafe::new(
            dir,
            format!("has mode {:04o}: group or others may write in it (allowed: 0700)", meta.mode() & 0o7777),
        ));
    }
    Ok(())
}

/// Checks that `dir` is a real folder (not a symlink, so nothing below it is redirected) owned
/// by this user; creates it (`mode`, less the umask) when it is missing. Its mode is left to
/// the caller: a recordings folder may be shared for reading.
pub fn ensure_real_dir(dir: &Path, mode: u32) -> Result<std::fs::Metadata, Unsafe> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Unsafe::new(dir, format!("cannot be created: {e}"))),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| Unsafe::new(dir, format!("cannot be read: {e}")))?;
    if meta.file_type().is_symlink() {
        return Err(Unsafe::new(dir, "is a symlink, not a folder: another user may have planted it".into()));
    }
    if !meta.is_dir() {
        return Err(Unsafe::new(dir, "is not a folder".into()));
    }
    let me = euid();
    if meta.uid() != me {
        return Err(Unsafe::new(
            dir,
            format!("is owned by uid {}, not by this user (uid {me}): another user may have created it", meta.uid()),
        ));
    }
    Ok(meta)
}

/// Flags for opening a file that must not be a symlink, must not block when it is a FIFO, and
/// is not inherited by child processes.
pub const OPEN_FLAGS: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;

/// Reads `path` when it is a regular file of at most `max` bytes; `Ok(None)` when it does not
/// exist. A symlink, a FIFO, a device or a larger file is an error (`InvalidData`), and no
/// read ever blocks or runs without bound.
pub fn read_regular(path: &Path, max: u64) -> std::io::Result<Option<String>> {
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(OPEN_FLAGS).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "is a symlink (refused)"))
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("is not a regular file ({})", file_kind(&meta)),
        ));
    }
    if meta.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("is {} bytes, more than the {max} allowed", meta.len()),
        ));
    }
    let mut text = String::new();
    // The file may grow after the check: read one byte more than allowed to notice.
    (&file).take(max + 1).read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("is more than the {max} bytes allowed"),
        ));
    }
    Ok(Some(text))
}

/// Opens (creating it with `mode` when missing) a regular file for reading and writing,
/// refusing symlinks, FIFOs and devices.
pub fn open_regular_rw(path: &Path, mode: u32) -> std::io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(mode)
        .custom_flags(OPEN_FLAGS)
        .open(path)
        .map_err(refused_symlink)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("is not a regular file ({})", file_kind(&meta)),
        ));
    }
    Ok(file)
}

/// Opens `path` for appending, creating it with `mode` when missing: a symlink is refused (never
/// followed), a FIFO never blocks the open, and only a regular file owned by this user is
/// written (another user's file planted in a shared folder is refused).
pub fn open_append(path: &Path, mode: u32) -> std::io::Result<File> {
    let file =
        std::fs::OpenOptions::new().append(true).create(true).mode(mode).custom_flags(OPEN_FLAGS).open(path).map_err(
            |e| match e.raw_os_error() {
                // O_NONBLOCK write-open of a FIFO nobody reads (or a device without a driver).
                Some(libc::ENXIO) => match std::fs::symlink_metadata(path) {
                    Ok(meta) => std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("is not a regular file ({}); refused", file_kind(&meta)),
                    ),
                    Err(_) => e,
                },
                _ => refused_symlink(e),
            },
        )?;
    check_own_regular(&file)?;
    Ok(file)
}

/// Creates `path` exclusively (`O_EXCL`: nothing planted there, symlink or file, is followed
/// or overwritten) with `mode`, for writing.
pub fn create_new(path: &Path, mode: u32) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(OPEN_FLAGS)
        .open(path)
        .map_err(refused_symlink)
}

/// Opens `path` for reading when it is a regular file (`Ok(None)` when missing): a symlink, a
/// FIFO or a device is an error (`InvalidData`) and never blocks.
pub fn open_regular(path: &Path) -> std::io::Result<Option<File>> {
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(OPEN_FLAGS).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(refused_symlink(e)),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("is not a regular file ({})", file_kind(&meta)),
        ));
    }
    Ok(Some(file))
}

fn refused_symlink(e: std::io::Error) -> std::io::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "is a symlink (refused, not followed)")
    } else {
        e
    }
}

fn check_own_regular(file: &File) -> std::io::Result<()> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("is not a regular file ({}); refused", file_kind(&meta)),
        ));
    }
    if meta.uid() != euid() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("is owned by uid {}, not by this user (uid {}); refused", meta.uid(), euid()),
        ));
    }
    // A second name elsewhere (a hard link someone made to a file of this user, e.g. where
    // `fs.protected_hardlinks` is off): appending would change that other file too.
    if meta.nlink() > 1 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("has {} hard links (another name for a file elsewhere); refused", meta.nlink()),
        ));
    }
    Ok(())
}

/// A short name of a file's type, for messages.
pub fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symlink"
    } else {
        "a regular file"
    }
}

/// Makes every file this process creates from now on get at most `file_mode` (e.g. 0o600) and
/// every folder `dir_mode` (e.g. 0o700), through the process umask: it also covers files that
/// libraries create (OpenCV's video writer and image encoder). Call it once, early, before
/// threads start (the umask is process-wide).
pub fn set_creation_mode(file_mode: u32, dir_mode: u32) {
    let mask = 0o777 & !(file_mode | dir_mode);
    // SAFETY: umask has no preconditions and cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// Sets the permission bits of an open file (fchmod: the file itself, never a symlink's target).
pub fn set_mode(file: &File, mode: u32) -> std::io::Result<()> {
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO, a device and an oversized file are refused without blocking; a missing file is
    /// `None`; a symlink is refused.
    #[test]
    fn only_small_regular_files_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).expect("path");
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_regular(&fifo, 100).expect_err("a FIFO is refused");
        assert!(err.to_string().contains("FIFO"), "{err}");
        let err = read_regular(Path::new("/dev/zero"), 100).expect_err("a device is refused");
        assert!(err.to_string().contains("character device"), "{err}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/zero", &link).expect("symlink");
        let err = read_regular(&link, 100).expect_err("a symlink is refused");
        assert!(err.to_string().contains("symlink"), "{err}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 101]).expect("write");
        assert!(read_regular(&big, 100).is_err());
        assert_eq!(read_regular(&dir.path().join("missing"), 100).ok(), Some(None));
        std::fs::write(&big, "ok").expect("write");
        assert_eq!(read_regular(&big, 100).ok(), Some(Some("ok".to_string())));
    }

    /// Appending refuses a symlink, a FIFO (without blocking, with or without a reader), a
    /// hard-linked file and, as root, another user's file; a new file is created 0600-ish.
    #[test]
    fn append_only_to_own_single_regular_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "secret").expect("victim");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).expect("symlink");
        assert!(open_append(&link, 0o600).expect_err("symlink").to_string().contains("symlink"));
        let hard = dir.path().join("hard");
        std::fs::hard_link(&victim, &hard).expect("hard link");
        assert!(open_append(&hard, 0o600).expect_err("hard link").to_string().contains("hard links"));
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).expect("path");
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(open_append(&fifo, 0o600).expect_err("FIFO").to_string().contains("FIFO"));
        let _reader =
            std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&fifo).expect("reader");
        assert!(open_append(&fifo, 0o600).expect_err("FIFO with a reader").to_string().contains("FIFO"));
        assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "secret");
        let fresh = dir.path().join("fresh");
        open_append(&fresh, 0o600).expect("new file");
        assert!(create_new(&fresh, 0o600).is_err(), "create_new never reuses a name");
        if euid() == 0 {
            let foreign = dir.path().join("foreign");
            std::fs::write(&foreign, "").expect("foreign");
            std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).expect("chown");
            assert!(open_append(&foreign, 0o600).expect_err("foreign").to_string().contains("uid 65534"));
        }
    }

    /// A folder writable by others, or owned by another user, is refused.
    #[test]
    fn shared_or_foreign_folders_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let own = dir.path().join("own");
        ensure_own_dir(&own).expect("created private");
        assert_eq!(std::fs::metadata(&own).expect("meta").mode() & 0o777, 0o700);
        assert!(check_private_dir(&own).is_ok());
        std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(ensure_own_dir(&own).is_err());
        assert!(check_private_dir(&own).is_err());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&own, &link).expect("symlink");
        assert!(ensure_own_dir(&link).expect_err("symlink").reason.contains("symlink"));
        if euid() == 0 {
            let foreign = dir.path().join("foreign");
            ensure_own_dir(&foreign).expect("created");
            std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).expect("chown");
            let err = ensure_own_dir(&foreign).expect_err("foreign owner");
            assert!(err.reason.contains("uid 65534"), "{err}");
            let below = foreign.join("below");
            std::fs::create_dir(&below).expect("mkdir");
            let err = check_private_dir(&below).expect_err("foreign folder above");
            assert!(err.to_string().contains("uid 65534"), "{err}");
        }
    }
}
