//! Control of framebus processes over their control services: the server every process embeds
//! ([`server::ControlServer`]) and the client `ctl` and the supervisor use ([`client`]). The
//! messages themselves are in [`crate::protocol`] (re-exported here).

pub mod client;
pub mod server;

pub use crate::protocol::*;
pub use client::{ControlClient, ControlError, Target};
pub use server::{Answer, ControlServer, Metrics};
