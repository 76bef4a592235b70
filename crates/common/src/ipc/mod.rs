//! Every iceoryx2 node and service of framebus is created or opened here, so that all processes
//! use the same iceoryx2 config and the same service settings (iceoryx2 refuses to open a
//! service whose settings differ from its creator's).
//!
//! Inside, the layering goes one way: [`error`] ← [`settings`], [`node_counter`] ←
//! [`cleanup`] ← [`node`]; [`services`] ← [`reader`]. The limits the config also checks
//! (capacities, folders, the socket-path limit) live below, in [`crate::limits`], and are
//! re-exported here.

pub mod cleanup;
pub mod error;
pub mod node;
pub mod node_counter;
pub mod reader;
pub mod services;
pub mod settings;

pub use cleanup::{release_if_last, remove_dead_nodes, DeploymentGuard};
pub use error::{IpcError, IpcService};
pub use node::{create_client_node, create_named_node, create_named_node_with, create_node};
pub use reader::{waitset, FrameReader, FrameSample};
pub use services::{
    connect_control, control_roles, open_encoded, open_frame_bus, open_results, open_results_ready, serve_control,
    ControlPortFactory, ControlServices, EncodedPortFactory, EventPortFactory, FrameBus, FramePortFactory,
    ResultsPortFactory, ResultsPublisher,
};
pub use settings::{iceoryx_config, secure_root};

pub use crate::limits::{
    deployment_root, longest_event_socket_path, CONTROL_BYTES_PER_PROCESS, CONTROL_MAX_CLIENTS, ICEORYX2_BASE,
    MAX_SOCKET_PATH, RESULTS_MAX_PUBLISHERS, RESULTS_MAX_SUBSCRIBERS, RESULTS_QUEUE,
};
