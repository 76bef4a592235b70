//! The iceoryx2 settings of a deployment: its config (file prefix, root folder, no dead-node
//! scans on every open), installed as the process-wide one, and the check that nobody but this
//! user controls the deployment's iceoryx2 folders.

use iceoryx2::config::Config;
use iceoryx2::prelude::*;

use super::error::IpcError;
use crate::limits::{deployment_root, ICEORYX2_BASE};
use crate::names::shm_prefix;

/// The iceoryx2 config of a deployment: iceoryx2's defaults with a per-deployment file prefix,
/// so deployments (and parallel tests) never share a file. Passed explicitly to every node, so
/// iceoryx2 never looks for a config file of its own.
pub fn iceoryx_config(deployment: &str) -> Result<Config, IpcError> {
    let mut config = Config::default();
    let prefix = shm_prefix(deployment);
    config.global.prefix = FileName::new(prefix.as_bytes()).map_err(|e| {
        IpcError::new(format!("deployment name `{deployment}` gives an invalid file prefix `{prefix}`"), e)
    })?;
    let root = deployment_root(deployment);
    let root_path =
        Path::new(root.as_bytes()).map_err(|e| IpcError::new(format!("invalid iceoryx2 root path `{root}`"), e))?;
    config.global.set_root_path(&root_path);
    // Dead nodes are looked for once when a node is created (`create_named_node_with`, which
    // reports them) and when a node or the deployment is released (iceoryx2 on destruction,
    // `release_if_last`). iceoryx2 would also scan on creation again and on every service open:
    // each scan reads every node's files, so a burst of 150 `ctl` runs cost quadratic time.
    config.global.node.cleanup_dead_nodes_on_creation = false;
    config.global.service.cleanup_dead_nodes_on_open = false;
    Ok(config)
}

/// Makes `config` iceoryx2's process-wide config too, once per process. iceoryx2 falls back to
/// its global config in a few places (e.g. cleaning up a dead node whose details are gone); left
/// unset it would search for a config file, warn that none was found and use the defaults, with
/// another prefix and folder than the deployment's. The only way in is a file: the config is
/// written to an anonymous memory file (`memfd_create`) and loaded through its
/// `/proc/self/fd/<n>` path. It has no name in any folder, so no other user can plant or read
/// it, and a process killed at any moment leaves nothing behind.
pub(super) fn install_global_config(config: &Config) {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let loaded = memory_file("framebus-iceoryx2").and_then(|mut file| {
            use std::io::Write as _;
            use std::os::fd::AsRawFd as _;
            let text = toml::to_string(config).map_err(|e| e.to_string())?;
            file.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
            let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
            let path = FilePath::new(proc_path.as_bytes()).map_err(|e| format!("{e:?}"))?;
            Config::setup_global_config_from_file(&path).map(|_| ()).map_err(|e| format!("{e:?}"))
        });
        if let Err(e) = loaded {
            tracing::debug!("could not install the deployment's iceoryx2 config as the global one: {e}");
        }
    });
}

/// An anonymous file in memory (`memfd_create`, close-on-exec), gone when its last descriptor closes.
fn memory_file(name: &str) -> Result<std::fs::File, String> {
    let name = std::ffi::CString::new(name).map_err(|e| e.to_string())?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call; the flags are valid.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by nothing else.
    Ok(std::fs::File::from(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }))
}

/// Makes sure nobody but this user controls the folders iceoryx2 keeps `deployment`'s node and
/// service files in: [`ICEORYX2_BASE`] and [`deployment_root`] must be real folders (not
/// symlinks) owned by this user and not writable by group or others (each is created with mode
/// 0700 when missing), and every folder above them owned by this user or root and not writable
/// by others unless sticky (`/tmp`). Another user who owned one of them could rename or replace
/// the deployment's files (every `ctl` command then said "not running"). Called before every
/// node is created.
pub fn secure_root(deployment: &str) -> Result<(), IpcError> {
    // The last deployment to stop removes the empty [`ICEORYX2_BASE`]; one that starts at that
    // moment finds its folders gone between two steps, and simply makes them again.
    let mut attempts = 3;
    loop {
        attempts -= 1;
        match secure_root_once(deployment) {
            Err(_) if attempts > 0 && !std::path::Path::new(&deployment_root(deployment)).is_dir() => continue,
            done => return done,
        }
    }
}

/// One pass of [`secure_root`].
fn secure_root_once(deployment: &str) -> Result<(), IpcError> {
    let root = deployment_root(deployment);
    let root = root.trim_end_matches('/');
    for dir in [ICEORYX2_BASE, root] {
        let dir = std::path::Path::new(dir);
        crate::secure_fs::ensure_own_dir(dir)
            .and_then(|()| crate::secure_fs::check_private_dir(dir).map(|_| ()))
            .map_err(|unsafe_dir| {
                IpcError::text(
                    format!("iceoryx2 folder of deployment `{deployment}`"),
                    format!(
                        "{unsafe_dir}; iceoryx2 keeps the deployment's node and service files there, so only this user may control it: when no iceoryx2 program runs, remove it (`rm -r {}` as root or its owner) and start again, or give it to this user with mode 0700 (`chown {} {}; chmod 0700 {}`)",
                        unsafe_dir.path.display(),
                        crate::secure_fs::euid(),
                        unsafe_dir.path.display(),
                        unsafe_dir.path.display()
                    ),
                )
            })?;
    }
    Ok(())
}
