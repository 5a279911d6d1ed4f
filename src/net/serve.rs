//! The accept loop. Every connection still doing HTTP is "pending": it holds a descriptor, so
//! pending connections are capped per source address and in total (over a cap the socket is
//! closed at accept), and each one has a deadline — its request head within the header timeout,
//! its next request within the idle timeout. A WebSocket stops being pending once upgraded.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use hyper::Request;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustix::io::Errno;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::tls::TlsFiles;
use crate::config::HttpLimits;
use crate::metrics::{ConnectionKind, ConnectionMetrics};

/// First and last wait after an accept failed for want of descriptors or memory.
const BACKOFF_FIRST: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A repeated log line (refusals, accept failures) is written at most this often.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// How the accept loop treats its connections.
#[derive(Clone)]
pub struct ServeSettings {
    /// From accept (or the first byte of a later request) to a complete request head.
    pub header_timeout: Duration,
    /// From the end of an answer to the first byte of the next request.
    pub idle_timeout: Duration,
    /// Caps on connections still doing HTTP.
    pub pending: PendingLimits,
    /// With a certificate, connections speak TLS (https, wss); the handshake counts against
    /// the header deadline.
    pub tls: Option<Arc<TlsFiles>>,
}

/// The caps on pending connections in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingLimits {
    /// Per source address.
    pub per_ip: usize,
    /// In all.
    pub total: usize,
}

impl PendingLimits {
    /// `--max-pending`, at most half the descriptors left after `reserved_fds`, and
    /// `--max-pending-per-ip`, at most half of that so one address never holds the whole budget.
    pub fn effective(http: &HttpLimits, fd_limit: u64, reserved_fds: u64) -> PendingLimits {
        let budget = usize::try_from(fd_limit.saturating_sub(reserved_fds) / 2).unwrap_or(usize::MAX);
        let total = http.max_pending.min(budget).max(1);
        PendingLimits {
            per_ip: http.max_pending_per_ip.min(total / 2).max(1),
            total,
        }
    }
}

/// Serves `app` on `listener` until `shutdown`; then stops accepting and waits for the open HTTP
/// connections (upgraded WebSockets are not waited for here).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: ServeSettings,
    metrics: ConnectionMetrics,
    shutdown: CancellationToken,
) {
    let pending = PendingConnections::new(settings.pending);
    let connections = TaskTracker::new();
    let builder = Arc::new(connection_builder());
    let deadlines = Deadlines {
        header: settings.header_timeout,
        idle: settings.idle_timeout,
    };
    let mut backoff = Backoff::default();
    let mut refused: u64 = 0;
    let mut refusal_log = LogGate::default();
    let mut failure_log = LogGate::default();
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff.reset();
                accepted
            }
            Err(error) if concerns_one_connection(&error) => {
                tracing::debug!(%error, "accept failed for one connection");
                continue;
            }
            Err(error) => {
                // EMFILE and its kin: retrying at once would spin; the backlog holds the clients.
                let delay = backoff.next_delay();
                if let Some(held_back) = failure_log.pass(Instant::now()) {
                    tracing::warn!(%error, retry_in = ?delay, held_back, "accept failed; backing off");
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(delay) => continue,
                }
            }
        };
        let admitted = match pending.try_admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                metrics.refused(ConnectionKind::Http, refusal.label());
                refused = refused.saturating_add(1);
                if let Some(held_back) = refusal_log.pass(Instant::now()) {
                    tracing::debug!(%peer, %refusal, refused, held_back, "connection closed at accept");
                }
                continue;
            }
        };
        metrics.opened(ConnectionKind::Http);
        let tls = settings.tls.as_ref().map(|tls| tls.acceptor());
        connections.spawn(serve_connection(
            stream,
            tls,
            peer,
            app.clone(),
            builder.clone(),
            deadlines,
            shutdown.clone(),
            admitted,
        ));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's own header timer starts only once HTTP/1 has been recognised (never for a silent
    // client), restarts whenever a kept-alive connection goes idle, and does nothing for HTTP/2;
    // the watchdog in `serve_connection` keeps both deadlines instead.
    builder.http1().header_read_timeout(None);
    builder
}

/// Accept errors about one incoming connection only (accept(2): "treat like EAGAIN").
fn concerns_one_connection(error: &io::Error) -> bool {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) {
        return true;
    }
    Errno::from_io_error(error).is_some_and(|errno| {
        [
            Errno::PROTO,
            Errno::PERM,
            Errno::NETDOWN,
            Errno::NOPROTOOPT,
            Errno::HOSTDOWN,
            Errno::HOSTUNREACH,
            Errno::OPNOTSUPP,
            Errno::NETUNREACH,
            Errno::TIMEDOUT,
        ]
        .contains(&errno)
    })
}

/// Doubling waits between failed accepts, reset by the next success.
#[derive(Default)]
struct Backoff {
    last: Option<Duration>,
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let delay = self
            .last
            .map_or(BACKOFF_FIRST, |last| (last * 2).min(BACKOFF_MAX));
        self.last = Some(delay);
        delay
    }

    fn reset(&mut self) {
        self.last = None;
    }
}

/// Lets a repeated log line through once per [`LOG_EVERY`], counting the ones held back.
#[derive(Default)]
struct LogGate {
    next: Option<Instant>,
    held_back: u64,
}

impl LogGate {
    /// `Some(lines held back since the last one let through)` when this one may be logged.
    fn pass(&mut self, now: Instant) -> Option<u64> {
        if self.next.is_some_and(|next| now < next) {
            self.held_back = self.held_back.saturating_add(1);
            return None;
        }
        self.next = Some(now + LOG_EVERY);
        Some(std::mem::take(&mut self.held_back))
    }
}

/// Pending connections per source address and in total.
struct PendingConnections {
    limits: PendingLimits,
    counts: Mutex<PendingCounts>,
}

#[derive(Default)]
struct PendingCounts {
    total: usize,
    /// Only addresses with at least one pending connection, so at most `limits.total` entries.
    per_ip: HashMap<IpAddr, usize>,
}

/// Which cap an accepted connection was over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    PerIp,
    Total,
}

impl Refusal {
    /// The metric label of the reason.
    fn label(&self) -> &'static str {
        match self {
            Refusal::PerIp => "pending_per_ip",
            Refusal::Total => "pending_total",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::PerIp => "too many pending connections from this address",
            Refusal::Total => "too many pending connections",
        })
    }
}

/// One pending connection; dropping it releases its place.
struct Admitted {
    owner: Arc<PendingConnections>,
    ip: IpAddr,
}

impl PendingConnections {
    fn new(limits: PendingLimits) -> Arc<Self> {
        Arc::new(PendingConnections {
            limits,
            counts: Mutex::default(),
        })
    }

    fn counts(&self) -> MutexGuard<'_, PendingCounts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn try_admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refusal> {
        // An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        let mut counts = self.counts();
        if counts.total >= self.limits.total {
            return Err(Refusal::Total);
        }
        let from_ip = counts.per_ip.entry(ip).or_insert(0);
        if *from_ip >= self.limits.per_ip {
            return Err(Refusal::PerIp);
        }
        *from_ip += 1;
        counts.total += 1;
        Ok(Admitted {
            owner: self.clone(),
            ip,
        })
    }

    #[cfg(test)]
    fn total(&self) -> usize {
        self.counts().total
    }

    #[cfg(test)]
    fn pending_from(&self, ip: IpAddr) -> usize {
        self.counts().per_ip.get(&ip.to_canonical()).copied().unwrap_or(0)
    }

    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.counts().per_ip.len()
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut counts = self.owner.counts();
        counts.total = counts.total.saturating_sub(1);
        super::decrement(&mut counts.per_ip, &self.ip);
    }
}

#[derive(Debug, Clone, Copy)]
struct Deadlines {
    header: Duration,
    idle: Duration,
}

/// Serves one connection (after its TLS handshake, with `tls`) until it ends, is upgraded, or
/// misses a deadline.
#[allow(clippy::too_many_arguments)]
async fn serve_connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    peer: SocketAddr,
    app: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    deadlines: Deadlines,
    shutdown: CancellationToken,
    _pending: Admitted,
) {
    let activity = Arc::new(Activity::new(Instant::now()));
    let Some(acceptor) = tls else {
        return serve_stream(stream, peer, app, builder, deadlines, shutdown, activity).await;
    };
    match tokio::time::timeout(deadlines.header, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => serve_stream(stream, peer, app, builder, deadlines, shutdown, activity).await,
        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake not finished within the header deadline"),
    }
}

/// [`serve_connection`] on a plain or TLS stream.
async fn serve_stream<S>(
    stream: S,
    peer: SocketAddr,
    app: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    deadlines: Deadlines,
    shutdown: CancellationToken,
    activity: Arc<Activity>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        let answering = Answering::begin(requests.clone());
        request.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move {
            let response = app.oneshot(request.map(Body::new)).await?;
            Ok::<_, Infallible>(response.map(|body| Answer {
                body,
                _answering: answering,
            }))
        }
    });
    let connection = builder.serve_connection_with_upgrades(io, service);
    let mut connection = std::pin::pin!(connection);
    let mut draining = false;
    loop {
        let deadline = activity.deadline(deadlines);
        if let Some((at, missed)) = deadline
            && at <= Instant::now()
        {
            tracing::debug!(%peer, missed, "HTTP connection closed: deadline passed");
            return;
        }
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(%peer, %error, "HTTP connection ended with an error");
                }
                return;
            }
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
            () = activity.changed.notified() => {}
            () = sleep_until(deadline.map(|(at, _)| at)) => {}
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Where one connection stands, as its socket and its requests report it.
struct Activity {
    phase: Mutex<Phase>,
    /// True while idle with no byte of a next request yet: the one thing reads must report.
    watching_reads: AtomicBool,
    /// Wakes the watchdog when the deadline moves.
    changed: Notify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Requests read whose answers are not fully sent: no deadline here.
    Answering { requests: usize },
    /// Between requests since `since`; `head_from` is when the next request's first byte came.
    Idle {
        since: Instant,
        head_from: Option<Instant>,
    },
}

impl Activity {
    /// A new connection: its first request head is due from the moment it was accepted.
    fn new(accepted: Instant) -> Self {
        Activity {
            phase: Mutex::new(Phase::Idle {
                since: accepted,
                head_from: Some(accepted),
            }),
            watching_reads: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the connection is to be closed unless something happens first, and why.
    fn deadline(&self, deadlines: Deadlines) -> Option<(Instant, &'static str)> {
        match *self.phase() {
            Phase::Answering { .. } => None,
            Phase::Idle {
                head_from: Some(from),
                ..
            } => Some((from + deadlines.header, "request head")),
            Phase::Idle {
                since,
                head_from: None,
            } => Some((since + deadlines.idle, "idle")),
        }
    }

    /// Cheap enough for every read: true only for the first byte after an answer.
    fn awaits_first_byte(&self) -> bool {
        self.watching_reads.load(Ordering::Relaxed) && self.watching_reads.swap(false, Ordering::AcqRel)
    }

    fn first_byte_read(&self, now: Instant) {
        let mut phase = self.phase();
        if let Phase::Idle { head_from, .. } = &mut *phase
            && head_from.is_none()
        {
            *head_from = Some(now);
            drop(phase);
            self.changed.notify_one();
        }
    }

    fn request_read(&self) {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Answering { requests } => Phase::Answering {
                requests: requests.saturating_add(1),
            },
            Phase::Idle { .. } => Phase::Answering { requests: 1 },
        };
        self.watching_reads.store(false, Ordering::Release);
        drop(phase);
        self.changed.notify_one();
    }

    fn answer_done(&self, now: Instant) {
        let mut phase = self.phase();
        match *phase {
            Phase::Answering { requests } if requests > 1 => {
                *phase = Phase::Answering {
                    requests: requests - 1,
                };
                return;
            }
            Phase::Answering { .. } => {
                *phase = Phase::Idle {
                    since: now,
                    head_from: None,
                };
                self.watching_reads.store(true, Ordering::Release);
            }
            Phase::Idle { .. } => return,
        }
        drop(phase);
        self.changed.notify_one();
    }
}

/// One request from its complete head until its answer is sent or dropped.
struct Answering(Arc<Activity>);

impl Answering {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.request_read();
        Answering(activity)
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.answer_done(Instant::now());
    }
}

/// A response body that reports when hyper is done with it (sent, or the connection gone).
struct Answer {
    body: Body,
    _answering: Answering,
}

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, reporting reads to the watchdog.
struct Watched<S> {
    stream: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before && this.activity.awaits_first_byte() {
            this.activity.first_byte_read(Instant::now());
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_ip: usize, total: usize) -> PendingLimits {
        PendingLimits { per_ip, total }
    }

    #[test]
    fn the_caps_fit_the_descriptor_limit() {
        let http = HttpLimits::default();
        assert_eq!(PendingLimits::effective(&http, 1024, 256), limits(192, 384));
        assert_eq!(PendingLimits::effective(&http, 1 << 20, 256), limits(256, 8192));
        let small = HttpLimits {
            max_pending_per_ip: 5000,
            max_pending: 1000,
            ..HttpLimits::default()
        };
        assert_eq!(PendingLimits::effective(&small, 1 << 20, 256), limits(500, 1000));
        assert_eq!(PendingLimits::effective(&http, 100, 256), limits(1, 1));
    }

    #[test]
    fn pending_connections_are_capped_per_address_and_in_total_and_released_on_drop() {
        let pending = PendingConnections::new(limits(2, 3));
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let a_mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let c: IpAddr = "::1".parse().unwrap();

        let a1 = pending.try_admit(a).unwrap();
        let a2 = pending.try_admit(a_mapped).unwrap();
        assert_eq!(pending.try_admit(a).err(), Some(Refusal::PerIp));
        assert_eq!(pending.pending_from(a), 2);
        let b1 = pending.try_admit(b).unwrap();
        assert_eq!(pending.try_admit(c).err(), Some(Refusal::Total));
        assert_eq!(pending.total(), 3);

        drop(a1);
        assert_eq!(pending.pending_from(a), 1);
        let c1 = pending.try_admit(c).unwrap();
        assert_eq!(pending.try_admit(b).err(), Some(Refusal::Total));

        drop((a2, b1, c1));
        assert_eq!(pending.total(), 0);
        assert_eq!(
            pending.addresses(),
            0,
            "addresses with nothing pending are forgotten"
        );
        let again: Vec<_> = (0..2).map(|_| pending.try_admit(a).unwrap()).collect();
        assert_eq!(pending.pending_from(a), 2);
        drop(again);
        assert_eq!(pending.addresses(), 0);
    }

    #[test]
    fn refused_connections_take_no_place() {
        let pending = PendingConnections::new(limits(1, 2));
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let _held = pending.try_admit(a).unwrap();
        for _ in 0..100 {
            assert_eq!(pending.try_admit(a).err(), Some(Refusal::PerIp));
        }
        assert_eq!(pending.total(), 1);
        assert!(pending.try_admit("127.0.0.3".parse().unwrap()).is_ok());
    }

    #[test]
    fn deadlines_follow_the_requests() {
        let deadlines = Deadlines {
            header: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        };
        let accepted = Instant::now();
        let activity = Arc::new(Activity::new(accepted));
        let head_due = Some((accepted + deadlines.header, "request head"));
        assert_eq!(activity.deadline(deadlines), head_due);
        assert!(
            !activity.awaits_first_byte(),
            "the first head is due from accept, not from a byte"
        );

        let first = Answering::begin(activity.clone());
        let second = Answering::begin(activity.clone());
        assert_eq!(activity.deadline(deadlines), None);
        assert!(
            !activity.awaits_first_byte(),
            "bytes of a request body are not a next request"
        );
        drop(first);
        assert_eq!(activity.deadline(deadlines), None, "one answer still being sent");
        let before = Instant::now();
        drop(second);
        let Some((idle_due, "idle")) = activity.deadline(deadlines) else {
            panic!("{:?}", activity.deadline(deadlines));
        };
        assert!(idle_due >= before + deadlines.idle && idle_due <= Instant::now() + deadlines.idle);
        let answered = idle_due - deadlines.idle;

        assert!(activity.awaits_first_byte());
        let first_byte = answered + Duration::from_secs(5);
        activity.first_byte_read(first_byte);
        let head_due = Some((first_byte + deadlines.header, "request head"));
        assert_eq!(activity.deadline(deadlines), head_due);
        assert!(
            !activity.awaits_first_byte(),
            "dripping bytes does not move the header deadline"
        );
        activity.first_byte_read(first_byte + Duration::from_secs(1));
        assert_eq!(activity.deadline(deadlines), head_due);
    }

    #[test]
    fn backoff_doubles_to_a_second_and_resets() {
        let mut backoff = Backoff::default();
        let delays: Vec<_> = (0..9).map(|_| backoff.next_delay()).collect();
        assert_eq!(delays[0], BACKOFF_FIRST);
        assert_eq!(delays[1], BACKOFF_FIRST * 2);
        assert_eq!(delays[8], BACKOFF_MAX);
        backoff.reset();
        assert_eq!(backoff.next_delay(), BACKOFF_FIRST);
    }

    #[test]
    fn out_of_descriptors_is_not_one_connections_problem() {
        for errno in [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM] {
            assert!(!concerns_one_connection(&io::Error::from_raw_os_error(
                errno.raw_os_error()
            )));
        }
        assert!(concerns_one_connection(&io::Error::from_raw_os_error(
            Errno::CONNABORTED.raw_os_error()
        )));
    }
}
