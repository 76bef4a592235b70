//! Creating a framebus process's iceoryx2 node: the deployment's settings, its folders and node
//! counter checked, dead nodes removed, framebus's signal handling.

use iceoryx2::config::Config;
use iceoryx2::node::NodeCreationFailure;
use iceoryx2::prelude::*;

use super::cleanup::remove_dead_nodes;
use super::error::{IpcError, IpcService};
use super::node_counter;
use super::settings::{iceoryx_config, install_global_config, secure_root};
use crate::config::Deployment;
use crate::names::node_name;
use crate::signals;

/// Creates the node of one process (`role` of `camera`) and removes what dead processes of the
/// deployment left behind (their shared memory and service registrations), so a restart needs
/// no manual clean-up. SIGINT/SIGTERM are owned by [`crate::signals`] (installed here), not by
/// iceoryx2: a wait interrupted by a signal returns, and the caller looks at
/// [`signals::termination_requested`].
pub fn create_node(deployment: &Deployment, role: &str, camera: &str) -> Result<Node<IpcService>, IpcError> {
    create_named_node(deployment.name(), &node_name(role, camera))
}

/// Like [`create_node`] for a process that is not tied to a camera (ctl, supervisor, tests),
/// or for a second node of a process (a reader's control thread).
pub fn create_named_node(deployment: &str, name: &str) -> Result<Node<IpcService>, IpcError> {
    signals::install();
    create_named_node_with(deployment, name, SignalHandlingMode::Disabled)
}

/// Like [`create_named_node`] with a choice of signal handling and without installing
/// framebus's handlers: ctl's one-shot commands pass `HandleTerminationRequests` so that
/// Ctrl-C ends their waits, a process owning its signals otherwise passes `Disabled`.
pub fn create_named_node_with(
    deployment: &str,
    name: &str,
    signals: SignalHandlingMode,
) -> Result<Node<IpcService>, IpcError> {
    let config = iceoryx_config(deployment)?;
    let removed = remove_dead_nodes(&config);
    if removed > 0 {
        tracing::info!(deployment, removed, "removed resources of dead processes");
    }
    build_node(deployment, name, signals, config)
}

/// The node of a short-lived client (a `ctl` command): like [`create_named_node`], but it does
/// not look for dead nodes when created or dropped. Each look reads every node's files, so a
/// burst of 150 commands would cost quadratic time; hold a [`DeploymentGuard`](super::DeploymentGuard), whose single
/// look when the command ends removes dead nodes and releases the deployment if it was last.
pub fn create_client_node(deployment: &str, name: &str) -> Result<Node<IpcService>, IpcError> {
    signals::install();
    let mut config = iceoryx_config(deployment)?;
    config.global.node.cleanup_dead_nodes_on_destruction = false;
    build_node(deployment, name, SignalHandlingMode::Disabled, config)
}

fn build_node(
    deployment: &str,
    name: &str,
    signals: SignalHandlingMode,
    config: Config,
) -> Result<Node<IpcService>, IpcError> {
    let node_name = NodeName::new(name).map_err(|e| IpcError::new(format!("invalid node name `{name}`"), e))?;
    // Before the first page of shared memory is touched: a full /dev/shm is an exit 75.
    signals::install_sigbus();
    secure_root(deployment)?;
    install_global_config(&config);
    node_counter::secure(deployment, &config)?;
    let node = NodeBuilder::new()
        .name(&node_name)
        .config(&config)
        .signal_handling_mode(signals)
        .create::<IpcService>()
        .map_err(|e| {
            let context = format!("creating iceoryx2 node `{name}` of deployment `{deployment}`");
            match e {
                NodeCreationFailure::UnableToGenerateUniqueNodeId => {
                    IpcError::new(format!("{context}: {}", node_counter::failure_hint(deployment)), e)
                }
                e => IpcError::new(context, e),
            }
        })?;
    node_counter::recheck(deployment);
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::DeploymentGuard;
    use crate::limits::deployment_root;
    use crate::names::shm_prefix;
    use std::os::unix::fs::MetadataExt;

    /// After the first node, iceoryx2's global config is the deployment's (its fallback paths
    /// then clean up in the deployment's folders, and it never warns about a missing file).
    #[test]
    fn the_first_node_installs_the_deployment_config_globally() {
        let deployment = format!("unit{}", std::process::id());
        let guard = DeploymentGuard::new(&deployment);
        let node = create_named_node(&deployment, "unit-test").expect("node");
        // The global config is set once per process: by this test's node, or by the node
        // counter's test when it ran first in this test binary. Either way a deployment's,
        // never iceoryx2's default.
        let first =
            [deployment.clone(), format!("nc{}", std::process::id())].map(|d| iceoryx_config(&d).expect("config"));
        assert!(first.contains(Config::global_config()), "{:?}", Config::global_config());
        assert_ne!(Config::global_config(), &Config::default());
        drop(node);
        drop(guard);
        assert!(!std::path::Path::new(&deployment_root(&deployment)).exists());
    }

    /// The counter iceoryx2 uses is the file framebus creates (the hash and version in its name
    /// match this iceoryx2), private to this user; a corrupt one left without nodes is replaced.
    #[test]
    fn the_counter_iceoryx2_uses_is_the_private_one_framebus_creates() {
        let deployment = format!("nc{}", std::process::id());
        let guard = DeploymentGuard::new(&deployment);
        std::fs::write(node_counter::path(&deployment), [0xffu8; 16]).expect("plant a corrupt counter");
        std::fs::set_permissions(node_counter::path(&deployment), std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .expect("chmod");
        let node = create_named_node(&deployment, "unit-test").expect("node despite the corrupt counter");
        let meta =
            std::fs::metadata(node_counter::path(&deployment)).expect("the counter is where framebus expects it");
        assert_eq!(meta.mode() & 0o777, 0o600);
        let counters: Vec<_> = std::fs::read_dir("/dev/shm")
            .expect("/dev/shm")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&shm_prefix(&deployment)) && n.ends_with(".global_mgmt"))
            .collect();
        assert_eq!(counters.len(), 1, "{counters:?}");
        drop(node);
        drop(guard);
        assert!(!node_counter::path(&deployment).exists());
    }
}
