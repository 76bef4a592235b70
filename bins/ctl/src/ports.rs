//! Who holds a TCP port: the listening socket on an address, found in `/proc/net/tcp{,6}`, and
//! its owner process, found by the socket's inode among `/proc/<pid>/fd` (visible for this
//! user's processes, or all with root). Used to name the squatter when the metrics endpoint
//! cannot bind, in the supervisor's log and in `ctl status`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The listener holding a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Nothing listens there.
    Nobody,
    /// A listening socket whose process is not visible (another user's).
    Unknown,
    /// A process: pid and command name.
    Process {
        /// Process id.
        pid: u32,
        /// Its `comm` (at most 15 characters).
        name: String,
    },
}

impl Holder {
    /// Words for a message: "pid 1234 (`python3`)", "a process of another user (pid not
    /// visible)", "nothing".
    pub fn describe(&self) -> String {
        match self {
            Holder::Nobody => "nothing".into(),
            Holder::Unknown => "a process of another user (pid not visible)".into(),
            Holder::Process { pid, name } => format!("pid {pid} (`{name}`)"),
        }
    }
}

/// Parses `/proc/net/tcp`'s hex `ADDR:PORT` (addresses in the kernel's byte order).
fn parse_local(field: &str) -> Option<SocketAddr> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(addr, 16).ok()?.to_ne_bytes())),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(&addr[i * 8..i * 8 + 8], 16).ok()?;
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Whether a listener on `bound` takes connections meant for `wanted` (same port, and the same
/// address or an unspecified one on either side).
fn covers(bound: SocketAddr, wanted: SocketAddr) -> bool {
    bound.port() == wanted.port()
        && (bound.ip() == wanted.ip() || bound.ip().is_unspecified() || wanted.ip().is_unspecified())
}

/// The inode of the listening TCP socket that holds `wanted`, if any.
fn listening_inode(wanted: SocketAddr) -> Option<u64> {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(local), Some(state), Some(inode)) = (fields.get(1), fields.get(3), fields.get(9)) else {
                continue;
            };
            if *state != "0A" {
                continue;
            }
            if parse_local(local).is_some_and(|bound| covers(bound, wanted)) {
                return inode.parse().ok();
            }
        }
    }
    None
}

/// Who listens on `addr`.
pub fn holder(addr: SocketAddr) -> Holder {
    let Some(inode) = listening_inode(addr) else { return Holder::Nobody };
    let needle = format!("socket:[{inode}]");
    let Ok(procs) = std::fs::read_dir("/proc") else { return Holder::Unknown };
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        let owns =
            fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == needle.as_str()));
        if owns {
            let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default().trim().to_string();
            return Holder::Process { pid, name };
        }
    }
    Holder::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener of this process is found with its pid; a free port has nobody.
    #[test]
    fn the_holder_of_a_port_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        match holder(addr) {
            Holder::Process { pid, .. } => assert_eq!(pid, std::process::id()),
            other => panic!("{other:?}"),
        }
        assert_eq!(holder(SocketAddr::from(([0, 0, 0, 0], addr.port()))), holder(addr), "0.0.0.0 covers it");
        drop(listener);
        assert_eq!(holder(addr), Holder::Nobody);
    }

    /// The kernel's hex notation is read in its byte order.
    #[test]
    fn proc_net_addresses_parse() {
        assert_eq!(parse_local("0100007F:1F90"), Some(SocketAddr::from(([127, 0, 0, 1], 8080))));
        assert_eq!(parse_local("00000000000000000000000001000000:0050"), Some("[::1]:80".parse().expect("v6")));
        assert_eq!(parse_local("zz:1"), None);
    }
}
