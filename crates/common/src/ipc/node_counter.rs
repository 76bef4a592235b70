//! iceoryx2's node counter of a deployment, kept private to the user running it.
//!
//! iceoryx2 0.10 numbers the nodes of an iceoryx2 prefix with a 16-byte shared-memory segment,
//! `/dev/shm/<prefix><sha1 of its type name>_node.0_10_0.global_mgmt` (an 8-byte version,
//! then a 4-byte counter), and creates it with mode 0666 (`enable_global_access(true)`, no
//! setting changes it). Its name is predictable, so any local user could write into it, and
//! a wrong version field makes every later node creation of the deployment fail
//! (`UnableToGenerateUniqueNodeId`): every `ctl` command and every restart.
//!
//! framebus therefore creates the segment itself before iceoryx2 does, exclusively, without
//! following symlinks, with the layout iceoryx2 expects and mode 0600 (iceoryx2 then opens the
//! existing one and never changes its mode). One that already exists must belong to this user:
//! another user's is refused with an error naming the file and what to do, one with the 0666
//! of another iceoryx2 program or of an older framebus is recreated (no node of the deployment
//! is registered) or made 0600, and a corrupt one is recreated or reported. What is left is a
//! denial of service that needs no write access: another user can create the file before the
//! deployment first starts, and the deployment then refuses to start until it is removed.

use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use iceoryx2::config::Config;
use iceoryx2::prelude::*;

use super::error::{IpcError, IpcService};
use crate::names::shm_prefix;
use crate::secure_fs::{self, euid};

/// sha1 (hex) of `iceoryx2::node::global_management_segment::State`, the type name iceoryx2
/// 0.10.0 hashes into the segment's file name (checked by a test against the file iceoryx2
/// actually opens).
const STATE_TYPE_HASH: &str = "9204dd183d1c4d8e1ff592a30766ffa6765aa8b5";
/// iceoryx2's package version as the segment's name and version field carry it.
const VERSION: (u64, u64, u64) = (0, 10, 0);
/// Size of the segment: `{ version: u64, counter: u32 }` padded to 8 bytes.
const SIZE: u64 = 16;

fn version_field() -> u64 {
    (VERSION.0 << 32) | (VERSION.1 << 16) | VERSION.2
}

/// The file of `deployment`'s node counter.
pub fn path(deployment: &str) -> PathBuf {
    let (major, minor, patch) = VERSION;
    PathBuf::from(format!(
        "/dev/shm/{}{STATE_TYPE_HASH}_node.{major}_{minor}_{patch}.global_mgmt",
        shm_prefix(deployment)
    ))
}

fn no_nodes(config: &Config) -> bool {
    let mut nodes = 0usize;
    let listed = Node::<IpcService>::list(config, |_| {
        nodes += 1;
        CallbackProgression::Continue
    });
    listed.is_ok() && nodes == 0
}

fn what_to_do(deployment: &str, file: &str) -> String {
    format!("when no process of deployment `{deployment}` runs, remove it (`rm {file}`, as root or its owner) and start again")
}

/// Makes sure the node counter of `deployment` exists, belongs to this user and is mode 0600,
/// before a node is created (see the module documentation).
pub fn secure(deployment: &str, config: &Config) -> Result<(), IpcError> {
    let path = path(deployment);
    let file = path.display().to_string();
    let fail = |why: String| IpcError::text(format!("node counter `{file}` of deployment `{deployment}`"), why);
    for _ in 0..5 {
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            // Write-only while it is filled in: iceoryx2 waits until it becomes readable.
            .mode(0o200)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path);
        match created {
            Ok(counter) => {
                let mut init = [0u8; SIZE as usize];
                init[..8].copy_from_slice(&version_field().to_ne_bytes());
                let written = counter
                    .set_len(SIZE)
                    .and_then(|()| counter.write_all_at(&init, 0))
                    .and_then(|()| secure_fs::set_mode(&counter, 0o600));
                if let Err(e) = written {
                    let _ = std::fs::remove_file(&path);
                    return Err(fail(format!("creating it failed: {e}")));
                }
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(fail(format!("is a symlink, planted by someone else; {}", what_to_do(deployment, &file))))
            }
            Err(e) => return Err(fail(format!("cannot be created: {e}"))),
        }
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            // Removed meanwhile by the last process of the deployment leaving: create it again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(fail(format!("cannot be read: {e}"))),
        };
        if !meta.is_file() {
            return Err(fail(format!(
                "is {}, not a shared-memory segment; {}",
                secure_fs::file_kind(&meta),
                what_to_do(deployment, &file)
            )));
        }
        if meta.uid() != euid() {
            return Err(fail(format!(
                "belongs to uid {}, not to this user (uid {}): another user created it, and could stop every process of the deployment from starting; {}",
                meta.uid(),
                euid(),
                what_to_do(deployment, &file)
            )));
        }
        let mode = meta.mode() & 0o7777;
        if mode == 0o200 {
            // Being filled in by another process of the deployment starting right now.
            return Ok(());
        }
        if mode & 0o077 != 0 {
            // Made by an iceoryx2 program that keeps iceoryx2's 0666 (a tool, an older framebus).
            if no_nodes(config) {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            tracing::warn!(
                deployment,
                file,
                "the node counter was writable by other users (mode {mode:04o}); made it 0600 (a process that opened it before keeps its access until the deployment stops)"
            );
            make_private(&path).map_err(|e| fail(format!("cannot be made private: {e}")))?;
        }
        match check_content(&path) {
            Ok(()) => return Ok(()),
            Err(why) if no_nodes(config) => {
                tracing::warn!(deployment, file, "replacing a corrupt node counter: {why}");
                let _ = std::fs::remove_file(&path);
            }
            Err(why) => {
                return Err(fail(format!(
                    "is corrupt ({why}), so no process of the deployment can start; stop every process of deployment `{deployment}`, then remove it (`rm {file}`)"
                )))
            }
        }
    }
    Err(fail("kept changing while it was checked; try again".into()))
}

fn make_private(path: &std::path::Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new().read(true).custom_flags(secure_fs::OPEN_FLAGS).open(path)?;
    secure_fs::set_mode(&file, 0o600)
}

fn check_content(path: &std::path::Path) -> Result<(), String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(secure_fs::OPEN_FLAGS)
        .open(path)
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(SIZE + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 != SIZE {
        return Err(format!("{} bytes instead of {SIZE}", bytes.len()));
    }
    let mut version = [0u8; 8];
    version.copy_from_slice(&bytes[..8]);
    let version = u64::from_ne_bytes(version);
    if version != version_field() {
        return Err(format!("version field {version:#x}, expected {:#x} (iceoryx2 0.10.0)", version_field()));
    }
    Ok(())
}

/// After iceoryx2 created or opened the counter: if it has group or other access (it was
/// removed and recreated by iceoryx2 in between), makes it 0600; if it is not where framebus
/// expects it (a future iceoryx2 names it differently), does so for every counter segment of
/// the deployment.
pub fn recheck(deployment: &str) {
    let expected = path(deployment);
    let fix = |file: &std::path::Path, meta: &std::fs::Metadata| {
        if meta.is_file() && meta.uid() == euid() && meta.mode() & 0o077 != 0 {
            if let Err(e) = make_private(file) {
                tracing::warn!(deployment, file = %file.display(), "cannot make the node counter private: {e}");
            }
        }
    };
    if let Ok(meta) = std::fs::symlink_metadata(&expected) {
        fix(&expected, &meta);
        return;
    }
    let prefix = shm_prefix(deployment);
    let Ok(entries) = std::fs::read_dir("/dev/shm") else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(".global_mgmt") {
            tracing::warn!(deployment, file = %entry.path().display(), "an iceoryx2 counter segment framebus does not know: made it 0600");
            if let Ok(meta) = entry.metadata() {
                fix(&entry.path(), &meta);
            }
        }
    }
}

/// A hint for iceoryx2's `UnableToGenerateUniqueNodeId`, naming the counter file.
pub fn failure_hint(deployment: &str) -> String {
    let file = path(deployment).display().to_string();
    format!(
        "the node counter `{file}` cannot be used (changed or removed by another process?); {}",
        what_to_do(deployment, &file)
    )
}
