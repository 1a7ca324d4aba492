//! The HTTP/1.1 server of `orderly serve`: the accept loop and each connection's life, with
//! the limits a server facing the open network needs.
//!
//! - **Header read timeout.** A connection must deliver a request's headers within
//!   [`HttpConfig::header_read_timeout`] of its first byte (or of opening); otherwise it is
//!   closed. A request's body has its own timeout, applied where the body is read (see
//!   `hardening`).
//! - **Keep-alive timeout.** A connection idle for [`HttpConfig::keep_alive_timeout`]
//!   between requests is closed.
//! - **Connection cap.** At most [`connection_cap`] connections are open, always below the
//!   process's file limit (which [`raise_fd_limit`] lifts to its hard limit at start), so
//!   `accept` does not fail with `EMFILE`. At the cap, a new connection replaces the one
//!   idle longest (one that holds no request); when every connection is working, the new
//!   one gets a fixed 503 and is closed, which costs no more than the accept.
//! - **Draining.** On shutdown the listener closes, idle connections close, and each
//!   request already read is answered (its connection then closes) until
//!   [`HttpConfig::drain_timeout`] passes; connections still open then are closed.
//!
//! Time here is the process's monotonic clock: these are transport deadlines, not business
//! time, which comes through the clock port.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

use crate::HttpConfig;

/// The file-descriptor limits of this process, as found and as set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimits {
    /// The soft limit the process started with.
    pub soft_before: u64,
    /// The soft limit now.
    pub soft: u64,
    /// The hard limit (the most the soft limit may be raised to without privileges).
    pub hard: u64,
}

/// Raises the soft limit on open files to the hard limit (at most 1,048,576), so the
/// connection cap can be high. `None` where the platform has no such limits.
pub fn raise_fd_limit() -> Option<FdLimits> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let lim = getrlimit(Resource::Nofile);
        let before = lim.current?;
        let hard = lim.maximum.unwrap_or(u64::MAX);
        let target = hard.min(1 << 20);
        let mut soft = before;
        if target > before
            && setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(target),
                    maximum: lim.maximum,
                },
            )
            .is_ok()
        {
            soft = target;
        }
        Some(FdLimits {
            soft_before: before,
            soft,
            hard,
        })
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The soft limit on open files now, where the platform has one.
pub fn fd_soft_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The most connections to hold open: the configured cap, lowered to leave an eighth of the
/// file limit (at least 64 descriptors) for the store, the queue, outgoing requests and logs.
pub fn connection_cap(configured: usize, fd_soft_limit: Option<u64>) -> usize {
    let cap = match fd_soft_limit {
        Some(soft) => {
            let reserve = (soft / 8).max(64);
            let fits = usize::try_from(soft.saturating_sub(reserve)).unwrap_or(usize::MAX);
            configured.min(fits.max(16))
        }
        None => configured,
    };
    cap.max(1)
}

/// How full the server is: `/ready` reports a server at its connection cap as overloaded.
#[derive(Debug)]
pub struct Load {
    open: AtomicUsize,
    cap: usize,
}

impl Load {
    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// The connection cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Whether every connection the cap allows is open.
    pub fn saturated(&self) -> bool {
        self.open() >= self.cap
    }
}

/// One connection's state, shared by its task, its reader and the reaper.
#[derive(Debug)]
struct Conn {
    /// Requests of this connection being handled (their responses not yet sent).
    active: AtomicUsize,
    /// Bytes of a request's headers have arrived and the request has not started yet.
    reading_head: AtomicBool,
    /// Whether a request has been answered on this connection (then it is keep-alive idle).
    served: AtomicBool,
    /// Milliseconds (server clock) since when it has been idle, or reading a head.
    since: AtomicU64,
    kill: Notify,
}

/// What every connection of one server shares.
#[derive(Debug)]
struct Shared {
    epoch: Instant,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    load: Arc<Load>,
    header_timeout: Duration,
    keep_alive: Duration,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes the connection idle longest (holding no request); false if none is idle.
    fn evict_idle(&self) -> bool {
        let victim = self
            .conns()
            .values()
            .filter(|c| c.active.load(Ordering::Relaxed) == 0)
            .min_by_key(|c| c.since.load(Ordering::Relaxed))
            .cloned();
        match victim {
            Some(c) => {
                // Counted as busy so that it is not chosen twice before its task ends.
                c.active.fetch_add(1, Ordering::Relaxed);
                c.kill.notify_one();
                true
            }
            None => false,
        }
    }

    /// Closes the connections past their header or keep-alive deadline.
    fn reap(&self) -> usize {
        let now = self.now_ms();
        let header = self.header_timeout.as_millis() as u64;
        let idle = self.keep_alive.as_millis() as u64;
        let mut closed = 0;
        for c in self.conns().values() {
            if c.active.load(Ordering::Relaxed) > 0 {
                continue;
            }
            let waited = now.saturating_sub(c.since.load(Ordering::Relaxed));
            let limit =
                if c.reading_head.load(Ordering::Relaxed) || !c.served.load(Ordering::Relaxed) {
                    header
                } else {
                    idle
                };
            if waited > limit {
                c.active.fetch_add(1, Ordering::Relaxed);
                c.kill.notify_one();
                closed += 1;
            }
        }
        closed
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains (see the module
/// docs). Returns once every connection has closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    cfg: &HttpConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let soft = fd_soft_limit();
    let cap = connection_cap(cfg.max_connections, soft);
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        conns: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        load: Arc::new(Load {
            open: AtomicUsize::new(0),
            cap,
        }),
        header_timeout: cfg.header_read_timeout,
        keep_alive: cfg.keep_alive_timeout,
    });
    tracing::info!(
        max_connections = cap,
        file_limit = soft,
        header_read_timeout_ms = cfg.header_read_timeout.as_millis() as u64,
        keep_alive_timeout_ms = cfg.keep_alive_timeout.as_millis() as u64,
        "HTTP connection limits"
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let reaper = tokio::spawn(reap_loop(shared.clone(), stop_rx.clone()));
    let mut refused: u64 = 0;
    let mut last_warning: Option<Instant> = None;
    let mut warn_once_a_second = |what: &str, detail: String| {
        if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            last_warning = Some(Instant::now());
            tracing::warn!(detail, "{what}");
        }
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if shared.load.saturated() && shared.evict_idle() {
                        // Take no more until the evicted connection has closed and its
                        // descriptor is free: evictions must not run ahead of the closes.
                        let until = Instant::now() + Duration::from_millis(100);
                        while shared.load.saturated() && Instant::now() < until {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                    if shared.load.saturated() {
                        refused += 1;
                        metrics::counter!(orderly_core::metrics::HTTP_CONNECTIONS_REFUSED).increment(1);
                        refuse(stream);
                        warn_once_a_second(
                            "at the connection cap with every connection busy: refusing new ones",
                            format!("cap {cap}, refused so far {refused}"),
                        );
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    shared.load.open.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(run_connection(
                        shared.clone(),
                        stream,
                        peer,
                        router.clone(),
                        stop_rx.clone(),
                    ));
                }
                Err(e) if is_fd_exhaustion(&e) => {
                    // Other descriptors (the store, outgoing requests) filled the reserve:
                    // make room and carry on rather than stall.
                    shared.evict_idle();
                    warn_once_a_second("accept failed: out of file descriptors", e.to_string());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => tracing::debug!(error = %e, "accept failed"),
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let deadline = Instant::now() + cfg.drain_timeout;
    while shared.load.open() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left = shared.load.open();
    if left > 0 {
        tracing::warn!(
            connections = left,
            "the drain deadline passed: closing the connections still open"
        );
        for c in shared.conns().values() {
            c.kill.notify_one();
        }
        let until = Instant::now() + Duration::from_secs(1);
        while shared.load.open() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    reaper.abort();
    Ok(())
}

fn is_fd_exhaustion(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        let code = e.raw_os_error();
        code == Some(rustix::io::Errno::MFILE.raw_os_error())
            || code == Some(rustix::io::Errno::NFILE.raw_os_error())
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// The answer to a connection over the cap: written without waiting, then closed.
fn refuse(stream: TcpStream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
        Content-Type: application/json\r\nConnection: close\r\nContent-Length: 97\r\n\r\n\
        {\"error\":\"overloaded\",\"message\":\"the server is at its connection cap; retry shortly\",\"details\":[]}";
    let _ = stream.try_write(BUSY);
}

async fn reap_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => {}
        }
        let closed = shared.reap();
        if closed > 0 {
            metrics::counter!(orderly_core::metrics::HTTP_CONNECTIONS_TIMED_OUT)
                .increment(closed as u64);
        }
        let open = shared.load.open();
        metrics::gauge!(orderly_core::metrics::HTTP_CONNECTIONS_OPEN).set(open as f64);
    }
}

/// Forgets a connection when its task ends, however it ends.
struct Registered {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared.conns().remove(&self.id);
        self.shared.load.open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn run_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let conn = Arc::new(Conn {
        active: AtomicUsize::new(0),
        reading_head: AtomicBool::new(false),
        served: AtomicBool::new(false),
        since: AtomicU64::new(shared.now_ms()),
        kill: Notify::new(),
    });
    shared.conns().insert(id, conn.clone());
    let _registered = Registered {
        shared: shared.clone(),
        id,
    };
    let io = TokioIo::new(Tracked {
        inner: stream,
        conn: conn.clone(),
        shared: shared.clone(),
    });
    let service = ConnService {
        router,
        peer,
        conn: conn.clone(),
        shared: shared.clone(),
    };
    let http = hyper::server::conn::http1::Builder::new()
        .max_buf_size(64 * 1024)
        .serve_connection(io, service);
    tokio::pin!(http);
    let mut draining = *stop.borrow();
    if draining {
        http.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            done = http.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                break;
            }
            _ = conn.kill.notified() => break,
            changed = stop.changed(), if !draining => {
                if changed.is_err() || *stop.borrow() {
                    draining = true;
                    http.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// The connection's socket, noting when the first bytes of a request arrive.
struct Tracked {
    inner: TcpStream,
    conn: Arc<Conn>,
    shared: Arc<Shared>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before
            && self.conn.active.load(Ordering::Relaxed) == 0
            && !self.conn.reading_head.swap(true, Ordering::Relaxed)
        {
            self.conn
                .since
                .store(self.shared.now_ms(), Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Hands each request of a connection to the router, with the client's address and the
/// server's load in its extensions.
struct ConnService {
    router: Router,
    peer: SocketAddr,
    conn: Arc<Conn>,
    shared: Arc<Shared>,
}

/// A request of a connection in progress; when its response has been sent (or abandoned),
/// the connection is idle again.
struct Active {
    conn: Arc<Conn>,
    shared: Arc<Shared>,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.conn
            .since
            .store(self.shared.now_ms(), Ordering::Relaxed);
        self.conn.served.store(true, Ordering::Relaxed);
        self.conn.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = hyper::Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        self.conn.active.fetch_add(1, Ordering::Relaxed);
        self.conn.reading_head.store(false, Ordering::Relaxed);
        let active = Active {
            conn: self.conn.clone(),
            shared: self.shared.clone(),
        };
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(self.peer));
        req.extensions_mut().insert(self.shared.load.clone());
        let router = self.router.clone();
        Box::pin(async move {
            let resp = match router.oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
            Ok(resp.map(|inner| TrackedBody {
                inner,
                _active: active,
            }))
        })
    }
}

/// A response body that marks its request done when hyper has finished with it.
#[allow(missing_debug_implementations)]
pub struct TrackedBody {
    inner: Body,
    _active: Active,
}

impl http_body::Body for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::connection_cap;

    #[test]
    fn the_connection_cap_stays_below_the_file_limit() {
        assert_eq!(connection_cap(10_000, Some(1024)), 896);
        assert_eq!(connection_cap(10_000, Some(20_000)), 10_000);
        assert_eq!(connection_cap(10_000, Some(100)), 36);
        assert_eq!(connection_cap(10_000, Some(10)), 16);
        assert_eq!(connection_cap(500, None), 500);
        assert_eq!(connection_cap(0, None), 1);
    }
}
