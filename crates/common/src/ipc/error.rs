//! The error of every iceoryx2 operation framebus does, and the service flavour it uses.

use core::fmt;

use iceoryx2::prelude::*;

/// The iceoryx2 service flavour framebus uses: inter-process, shared memory.
pub type IpcService = ipc::Service;

/// An iceoryx2 operation that failed, with what framebus was doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpcError {
    /// What was attempted, naming the service or node.
    pub context: String,
    /// iceoryx2's error.
    pub cause: String,
    /// A capacity limit of a service was reached (too many nodes or clients at once): the
    /// peer is there, and trying again later may succeed.
    pub busy: bool,
}

impl IpcError {
    /// Wraps an iceoryx2 error with context.
    pub fn new(context: impl Into<String>, cause: impl fmt::Debug) -> IpcError {
        IpcError { context: context.into(), cause: format!("{cause:?}"), busy: false }
    }

    /// An error framebus found itself (no iceoryx2 error value): `cause` is shown as written.
    pub fn text(context: impl Into<String>, cause: impl Into<String>) -> IpcError {
        IpcError { context: context.into(), cause: cause.into(), busy: false }
    }

    /// Like [`IpcError::new`] for a capacity limit that was reached ([`IpcError::busy`]).
    pub fn busy(context: impl Into<String>, cause: impl fmt::Debug) -> IpcError {
        IpcError { busy: true, ..IpcError::new(context, cause) }
    }
}

impl fmt::Display for IpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.cause)
    }
}

impl std::error::Error for IpcError {}
