//! Accepting and running connections: at most `--max-connections` at once (the oldest asked
//! to close when one more arrives), header and write-stall timeouts, and a graceful drain at
//! shutdown.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::Response;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{debug, warn};

/// Longest wait at shutdown for open connections to finish their requests.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// Pause after an accept error that is not about one connection (e.g. out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `stop` turns true, then lets open requests finish (for
/// a few seconds at most). Headers must arrive within `header_timeout`, which hyper also
/// applies while a kept-alive connection waits for its next request (so it is the idle
/// timeout too, as Go's `IdleTimeout` defaults to `ReadTimeout`); an answer whose writing
/// makes no progress for as long ends its connection ([`WriteStall`]). Each request carries
/// the peer address as [`ConnectInfo`].
///
/// At most `max_connections` are open at once. A connection accepted past that makes the
/// oldest one finish its request (if it is in one) and close, then waits for its slot: a flood
/// of idle connections can neither grow memory nor keep the kubelet's probes out for longer
/// than it takes to cycle through `max_connections` connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    max_connections: usize,
    mut stop: watch::Receiver<bool>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let mut slots = Slots::new(max_connections.max(1));
    // Aborting the server task aborts its connections with it.
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = stop.wait_for(|s| *s) => break,
        };
        let accepted = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Some(slot) = slots.take(&mut stop).await else {
            break;
        };
        // An answer the client stops reading holds its connection (and its slot) for no longer.
        let write_stall_timeout = header_timeout;
        let task = connection_task(&http, &router, accepted, write_stall_timeout, slot, &stop);
        connections.spawn(task);
    }
    drop(listener);
    // Open connections finish their requests (they saw `stop`), for a few seconds at most.
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_GRACE, drained).await.is_err() {
        debug!("stopped with requests still open");
    }
}

/// The connection slots: at most `max` connections open, and each open one's "close when you
/// can", oldest first.
struct Slots {
    free: Arc<Semaphore>,
    oldest: VecDeque<oneshot::Sender<()>>,
    max: usize,
}

/// One open connection's slot, and its "close when you can".
struct Slot {
    _permit: OwnedSemaphorePermit,
    closing: oneshot::Receiver<()>,
}

impl Slots {
    fn new(max: usize) -> Slots {
        Slots {
            free: Arc::new(Semaphore::new(max)),
            oldest: VecDeque::new(),
            max,
        }
    }

    /// A slot for a new connection. When none is free, the oldest connection is asked to
    /// close and its slot awaited; `None` when `stop` turns true meanwhile.
    async fn take(&mut self, stop: &mut watch::Receiver<bool>) -> Option<Slot> {
        let permit = match self.free.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                while let Some(close) = self.oldest.pop_front() {
                    if close.send(()).is_ok() {
                        break;
                    }
                }
                tokio::select! {
                    permit = self.free.clone().acquire_owned() => permit.ok()?,
                    _ = stop.wait_for(|s| *s) => return None,
                }
            }
        };
        let (close, closing) = oneshot::channel();
        self.oldest.push_back(close);
        if self.oldest.len() > 2 * self.max {
            self.oldest.retain(|close| !close.is_closed());
        }
        Some(Slot {
            _permit: permit,
            closing,
        })
    }
}

/// The task serving one accepted connection until it ends; when its slot is wanted or `stop`
/// turns true, it finishes the request it is in and closes. Each request carries `peer` as
/// [`ConnectInfo`]; an answer whose writing makes no progress for `write_stall_timeout` ends
/// the connection.
fn connection_task(
    http: &http1::Builder,
    router: &Router,
    (stream, peer): (TcpStream, SocketAddr),
    write_stall_timeout: Duration,
    slot: Slot,
    stop: &watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let router = router.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut router = router.clone();
        async move {
            let response: Result<Response, Infallible> =
                tower::Service::call(&mut router, request.map(Body::new)).await;
            response
        }
    });
    let stream = WriteStall::new(stream, write_stall_timeout);
    let connection = http.serve_connection(TokioIo::new(stream), service);
    let mut stop = stop.clone();
    async move {
        let Slot { _permit, closing } = slot;
        let mut connection = std::pin::pin!(connection);
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let finished = tokio::select! {
            result = connection.as_mut() => Some(result),
            _ = closing => None,
            () = stopped => None,
        };
        let result = match finished {
            Some(result) => result,
            None => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = result {
            debug!(error = %e, "connection ended with an error");
        }
    }
}

/// A stream whose writes fail once they have made no progress for `limit`: a client that
/// stops reading its answer cannot hold its connection forever.
#[derive(Debug)]
struct WriteStall<S> {
    inner: S,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteStall<S> {
    fn new(inner: S, limit: Duration) -> Self {
        WriteStall {
            inner,
            limit,
            stalled: None,
        }
    }

    /// `poll` made no progress: whether the stall has lasted too long.
    fn stalled_too_long(&mut self, cx: &mut Context<'_>) -> bool {
        let limit = self.limit;
        self.stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)))
            .as_mut()
            .poll(cx)
            .is_ready()
    }

    fn progress<T>(
        &mut self,
        poll: Poll<std::io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<T>> {
        match poll {
            Poll::Pending if self.stalled_too_long(cx) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading the answer",
            ))),
            Poll::Pending => Poll::Pending,
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteStall<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteStall<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(poll, cx)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(poll, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progress(poll, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(poll, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
