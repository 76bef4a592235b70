//! Dead-node clean-up: what a process killed with SIGKILL left in /dev/shm and in the
//! deployment's iceoryx2 folder goes when the next process starts, and the last process of a
//! deployment to end removes what is left.

use core::time::Duration;

use iceoryx2::config::Config;
use iceoryx2::node::{NodeState, NodeView};
use iceoryx2::prelude::*;

use super::error::IpcService;
use super::settings::iceoryx_config;
use crate::limits::deployment_root;
use crate::names::shm_prefix;

/// Removes what iceoryx2 keeps for a deployment between runs, once its last process is gone:
/// first the resources of dead nodes (a reader killed with SIGKILL while the others ran), then,
/// when no node of the deployment is left, the small node-counter segment in /dev/shm and the
/// deployment's empty folders. Called by [`DeploymentGuard`] when a process ends; leaves
/// everything of live nodes alone.
pub fn release_if_last(deployment: &str) {
    let Ok(config) = iceoryx_config(deployment) else { return };
    let mut removed = 0usize;
    let mut remaining = 0usize;
    // One scan: dead nodes are removed, every other node (alive, starting, inaccessible) keeps
    // the deployment's shared files in place.
    let listed = Node::<IpcService>::list(&config, |state| {
        match state {
            // Blocking (bounded): a process leaving at the same moment may be removing the same
            // dead node; once it is done the node is gone, and this process may be the last.
            NodeState::Dead(view) => {
                let id = view.id().value();
                match view.blocking_remove_stale_resources(Duration::from_secs(1)) {
                    Ok(()) => removed += 1,
                    // Seen once in a 30-minute soak (222 kill -9): a node killed half-made
                    // or half-removed that iceoryx2 cannot clean. Its process is gone (the
                    // owner lock is free), so its files go, or the deployment would never be
                    // released again.
                    Err(iceoryx2::node::NodeCleanupFailure::InternalError) => {
                        tracing::warn!(
                            deployment,
                            node = id,
                            "iceoryx2 could not clean a dead node (InternalError): removing its files"
                        );
                        remove_dead_node_files(deployment, id);
                        removed += 1;
                    }
                    Err(e) => {
                        remaining += 1;
                        log_cleanup_failure(e);
                    }
                }
            }
            _ => remaining += 1,
        }
        CallbackProgression::Continue
    });
    if removed > 0 {
        tracing::info!(deployment, removed, "removed resources of dead processes on exit");
    }
    if listed.is_err() || remaining > 0 {
        return;
    }
    let prefix = shm_prefix(deployment);
    if let Ok(entries) = std::fs::read_dir("/dev/shm") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && name.ends_with(".global_mgmt") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let root = deployment_root(deployment);
    remove_abandoned_node_folders(deployment);
    // remove_dir only removes empty folders: a concurrently starting process keeps its files.
    for sub in ["services", "nodes", "events", ""] {
        let _ = std::fs::remove_dir(format!("{root}{sub}"));
    }
    // The folder above every deployment's, once no deployment of this machine uses it (a
    // deployment starting meanwhile creates it again: see `secure_root`).
    let _ = std::fs::remove_dir(crate::limits::ICEORYX2_BASE);
}

/// How old a node folder iceoryx2 does not list must be before it counts as abandoned: a
/// starting process completes its node within milliseconds.
const ABANDONED_NODE_FOLDER_AGE: Duration = Duration::from_secs(5);

/// Removes abandoned nodes from the deployment's `nodes/`, once no node iceoryx2 lists is
/// left: every node folder older than [`ABANDONED_NODE_FOLDER_AGE`] (younger ones may be a
/// process starting right now) with its monitor files. A process killed while creating its
/// node leaves one that iceoryx2 does not list (no monitor, or one not yet usable), so nothing
/// else removes it, and it kept the deployment's folder for ever.
fn remove_abandoned_node_folders(deployment: &str) {
    let nodes = format!("{}nodes", deployment_root(deployment));
    let Ok(entries) = std::fs::read_dir(&nodes) else { return };
    for entry in entries.flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else { continue };
        let old =
            meta.modified().ok().and_then(|m| m.elapsed().ok()).is_some_and(|age| age >= ABANDONED_NODE_FOLDER_AGE);
        let id = entry.file_name().to_string_lossy().parse::<u128>();
        if let (true, true, Ok(id)) = (meta.is_dir(), old, id) {
            remove_dead_node_files(deployment, id);
        }
    }
}

/// Removes the files of dead node `id` of `deployment` that iceoryx2 could not clean: its
/// monitor files, the tags and details in its folder, the folder, and the shared memory of the
/// ports its tags name. Only for a node whose process is gone.
fn remove_dead_node_files(deployment: &str, id: u128) {
    let root = deployment_root(deployment);
    let prefix = shm_prefix(deployment);
    let nodes = format!("{root}nodes");
    let folder = format!("{nodes}/{id}");
    let mut ports = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&folder) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(port) = name.strip_prefix(&prefix).and_then(|n| n.strip_suffix(".port_tag")) {
                ports.push(port.to_string());
            }
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let _ = std::fs::remove_dir(&folder);
    let monitor = format!("{prefix}{id}.node_monitor");
    remove_matching(&nodes, |name| name.starts_with(&monitor));
    if !ports.is_empty() {
        let owned_by_port =
            |name: &str| name.starts_with(&prefix) && ports.iter().any(|p| name.contains(&format!("_{p}.")));
        remove_matching("/dev/shm", owned_by_port);
        remove_matching(root.trim_end_matches('/'), owned_by_port);
    }
}

/// Removes the files (never folders) in `dir` whose names match.
fn remove_matching(dir: &str, matches: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if matches(&name) && entry.file_type().is_ok_and(|t| !t.is_dir()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Another process cleaning the same dead node at the same moment is normal (several processes
/// start or stop at once); anything else is worth a warning.
fn log_cleanup_failure(e: iceoryx2::node::NodeCleanupFailure) {
    use iceoryx2::node::NodeCleanupFailure as F;
    match e {
        F::AnotherInstanceIsCleaningUpTheNode | F::ResourcesAlreadyCleanedUp => {
            tracing::debug!("a dead node's resources are being removed by another process: {e:?}")
        }
        e => tracing::warn!("could not remove a dead node's resources: {e:?}"),
    }
}

/// Calls [`release_if_last`] when dropped: declare it before the node so it runs after the
/// node is gone.
#[derive(Debug)]
pub struct DeploymentGuard {
    deployment: String,
}

impl DeploymentGuard {
    /// A guard for `deployment`.
    pub fn new(deployment: &str) -> DeploymentGuard {
        DeploymentGuard { deployment: deployment.to_string() }
    }
}

impl Drop for DeploymentGuard {
    fn drop(&mut self) {
        release_if_last(&self.deployment);
    }
}

/// Removes the stale resources of every dead node that used `config`; returns how many.
pub fn remove_dead_nodes(config: &Config) -> usize {
    let mut removed = 0;
    let listed = Node::<IpcService>::list(config, |state| {
        if let NodeState::Dead(view) = state {
            let id = format!("{:?}", view.id());
            match view.try_remove_stale_resources() {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::debug!(node = id, "dead node not removed");
                    log_cleanup_failure(e)
                }
            }
        }
        CallbackProgression::Continue
    });
    if let Err(e) = listed {
        tracing::warn!("could not list iceoryx2 nodes: {e:?}");
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a node killed half-made leaves: its monitor files, a folder with a port tag, the
    /// port's shared memory and socket. The fallback removes exactly those, never another
    /// node's or another deployment's files.
    #[test]
    fn a_dead_node_iceoryx2_cannot_clean_is_removed_by_its_files() {
        let deployment = format!("dn{}", std::process::id());
        let (root, prefix) = (deployment_root(&deployment), shm_prefix(&deployment));
        let (dead, alive, port, other_port) = (1234u128, 5678u128, "99887766", "11223344");
        let nodes = format!("{root}nodes");
        std::fs::create_dir_all(format!("{nodes}/{dead}")).expect("node folder");
        std::fs::create_dir_all(format!("{nodes}/{alive}")).expect("other node folder");
        let files = |id: u128| {
            [
                format!("{nodes}/{prefix}{id}.node_monitor"),
                format!("{nodes}/{prefix}{id}.node_monitor_context"),
                format!("{nodes}/{prefix}{id}.node_monitor_owner_lock"),
            ]
        };
        let dead_files = [
            files(dead).to_vec(),
            vec![
                format!("{nodes}/{dead}/{prefix}{port}.port_tag"),
                format!("/dev/shm/{prefix}abcdef_{port}.data"),
                format!("{root}{prefix}{port}.event"),
            ],
        ]
        .concat();
        let kept = [
            files(alive).to_vec(),
            vec![format!("/dev/shm/{prefix}abcdef_{other_port}.data"), format!("{root}{prefix}{other_port}.event")],
        ]
        .concat();
        for f in dead_files.iter().chain(&kept) {
            std::fs::write(f, b"x").expect(f);
        }
        remove_dead_node_files(&deployment, dead);
        for f in &dead_files {
            assert!(!std::path::Path::new(f).exists(), "{f} left");
        }
        assert!(!std::path::Path::new(&format!("{nodes}/{dead}")).exists());
        for f in &kept {
            assert!(std::path::Path::new(f).exists(), "{f} removed");
        }
        // Once no listed node is left (the caller's condition), a node folder is abandoned
        // only when old: a fresh one may be a node being created right now.
        let (half_made, minute_ago) = (4321u128, std::time::SystemTime::now() - Duration::from_secs(60));
        std::fs::create_dir(format!("{nodes}/{half_made}")).expect("half-made node folder");
        std::fs::write(format!("{nodes}/{half_made}/{prefix}node.details"), b"").expect("details");
        remove_abandoned_node_folders(&deployment);
        assert!(std::path::Path::new(&format!("{nodes}/{half_made}")).exists(), "a fresh folder is kept");
        std::fs::File::open(format!("{nodes}/{half_made}"))
            .and_then(|dir| dir.set_modified(minute_ago))
            .expect("age the folder");
        remove_abandoned_node_folders(&deployment);
        assert!(!std::path::Path::new(&format!("{nodes}/{half_made}")).exists(), "an old half-made node goes");
        assert!(std::path::Path::new(&format!("{nodes}/{alive}")).exists(), "a fresh one stays");
        for f in &kept {
            let _ = std::fs::remove_file(f);
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
