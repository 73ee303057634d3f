//! A TCP forwarder from one address to another, on plain threads: how a process in a test
//! host's network namespace reaches the API server, which listens on the root namespace's
//! 127.0.0.1 only. It listens on the veth's root-side address alone, so nothing outside the
//! machine (and no other namespace) can reach the API server through it.
//!
//! Threads rather than tasks: a forwarder outlives any one tokio runtime (tests make one each,
//! and the shared plane outlives them all), and a handful of connections (a controller's
//! watches) cost a handful of threads.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Bytes copied per read: a watch event or a list page moves in a few reads.
const BUFFER: usize = 64 * 1024;
/// How often the idle acceptor checks whether to stop. It polls rather than waking a blocking
/// accept with a connection of its own, which fails once the listening address is gone (the
/// veth deleted): a stop must never depend on the network.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// Forwards every connection accepted on `listen` to `target`; stops, closing every connection,
/// when dropped.
pub(super) struct Forwarder {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Both ends of every connection, to shut them down on drop (the copying threads then end).
    open: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Forwarder {
    /// Listens on `listen` (port 0: any free port) and forwards to `target`.
    pub(super) fn start(listen: SocketAddr, target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let (stop, open) = (stop.clone(), open.clone());
            std::thread::Builder::new()
                .name(format!("forward {address}"))
                .spawn(move || accept(&listener, target, &stop, &open))?
        };
        Ok(Self {
            address,
            stop,
            open,
            acceptor: Some(acceptor),
        })
    }

    /// Where it listens.
    pub(super) fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let open = std::mem::take(&mut *self.open.lock().unwrap_or_else(PoisonError::into_inner));
        for stream in open {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn accept(
    listener: &TcpListener,
    target: SocketAddr,
    stop: &AtomicBool,
    open: &Mutex<Vec<TcpStream>>,
) {
    while !stop.load(Ordering::Acquire) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
            // A failed accept or connection is the client's to see (its connection closes);
            // the forwarder keeps serving the others.
            Err(_) => continue,
        };
        if client.set_nonblocking(false).is_err() {
            continue;
        }
        let Ok(server) = TcpStream::connect(target) else {
            continue;
        };
        let streams = (|| {
            Ok::<_, std::io::Error>([
                (client.try_clone()?, server.try_clone()?),
                (server.try_clone()?, client.try_clone()?),
            ])
        })();
        let Ok(pairs) = streams else { continue };
        open.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend([client, server]);
        for (from, to) in pairs {
            let _ = std::thread::Builder::new()
                .name("forward copy".to_owned())
                .spawn(move || copy(from, to));
        }
    }
}

/// Copies until `from` ends, then passes the end on to `to` (a half close: the other direction
/// may still carry an answer).
fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = vec![0; BUFFER];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn forwards_both_ways_and_closes_connections_when_dropped() -> std::io::Result<()> {
        let echo = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let target = echo.local_addr()?;
        let server = std::thread::spawn(move || -> std::io::Result<()> {
            let (mut stream, _) = echo.accept()?;
            let mut line = [0; 5];
            stream.read_exact(&mut line)?;
            stream.write_all(&line.map(|b| b.to_ascii_uppercase()))?;
            // Holds the connection open until the forwarder closes it.
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest)?;
            Ok(())
        });
        let forwarder = Forwarder::start((Ipv4Addr::LOCALHOST, 0).into(), target)?;
        let mut client = TcpStream::connect(forwarder.address())?;
        client.write_all(b"hello")?;
        let mut answer = [0; 5];
        client.read_exact(&mut answer)?;
        assert_eq!(&answer, b"HELLO");

        drop(forwarder);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest)?;
        assert!(rest.is_empty(), "the connection ends with the forwarder");
        server
            .join()
            .map_err(|_| std::io::Error::other("the echo server panicked"))??;
        Ok(())
    }

    /// A host's veth may be gone before its forwarder stops: the stop must not need a
    /// connection to the listening address (waking a blocking accept that way once hung the
    /// test host's drop forever).
    #[test]
    fn stops_without_connecting_to_itself() -> std::io::Result<()> {
        let forwarder = Forwarder::start(
            (Ipv4Addr::LOCALHOST, 0).into(),
            (Ipv4Addr::LOCALHOST, 9).into(),
        )?;
        // Nothing reaches the address any more, as with a deleted veth.
        let (done, stopped) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let blocked = TcpListener::bind(forwarder.address()).is_err();
            drop(forwarder);
            let _ = done.send(blocked);
        });
        // Generous against a loaded machine; a hang never ends.
        let blocked = stopped
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| std::io::Error::other("the forwarder did not stop"))?;
        assert!(blocked, "the forwarder held its address while running");
        Ok(())
    }
}
