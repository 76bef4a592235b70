//! A TCP relay that delays every byte by a fixed time in each direction, for links that need
//! delay where the kernel has no `netem`: it listens inside a network namespace (entered by its
//! own thread with `setns`), and for each connection it accepts opens one to the target and
//! forwards both ways, each chunk written `delay` after it was read (pipelined: the rate is
//! untouched). A connection whose other side fails or closes is closed on both sides, so a cut
//! link behind the relay is a cut link in front of it.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running relay; stopped (and its connections closed) on drop.
pub struct DelayRelay {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DelayRelay {
    /// Listens on `listen` inside the network namespace `netns` (a name under
    /// `/var/run/netns`, as `ip netns add` makes), forwarding to `target` with `delay` each way.
    pub fn start(netns: &str, listen: SocketAddr, target: SocketAddr, delay: Duration) -> DelayRelay {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let netns = format!("/var/run/netns/{netns}");
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let listener = enter(&netns).and_then(|()| {
                    let l = TcpListener::bind(listen).map_err(|e| format!("binding {listen}: {e}"))?;
                    l.set_nonblocking(true).map_err(|e| e.to_string())?;
                    Ok(l)
                });
                let listener = match listener {
                    Ok(l) => {
                        let _ = ready_tx.send(Ok(()));
                        l
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            // Both sockets are made here, in the namespace; the pumps only use them.
                            match TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
                                Ok(server) => relay(client, server, delay, &stop),
                                Err(_) => drop(client),
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("delay relay: {e}"),
            Err(e) => panic!("delay relay did not start: {e}"),
        }
        DelayRelay { stop, thread: Some(thread) }
    }
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Moves this thread (and the threads it starts) into the network namespace at `path`.
fn enter(path: &str) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("opening {path}: {e}"))?;
    use std::os::fd::AsRawFd;
    // SAFETY: setns with a valid namespace file descriptor; it changes only this thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Forwards `a` ↔ `b`, each direction delayed by `delay`, until either side ends or `stop`.
fn relay(a: TcpStream, b: TcpStream, delay: Duration, stop: &Arc<AtomicBool>) {
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    for (from, to) in [(&a, &b), (&b, &a)] {
        let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else { return };
        let stop = Arc::clone(stop);
        let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
        let reader_to = to.try_clone().ok();
        std::thread::spawn(move || {
            let mut from = from;
            let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if tx.send((Instant::now() + delay, buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
            }
            let _ = from.shutdown(Shutdown::Both);
            if let Some(to) = reader_to {
                let _ = to.shutdown(Shutdown::Both);
            }
        });
        std::thread::spawn(move || {
            let mut to = to;
            for (due, bytes) in rx {
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                if to.write_all(&bytes).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Both);
        });
    }
}
