//! The node's own log on stderr.
//!
//! Formatted lines go through a bounded queue to one writer thread. Whoever reads stderr — a
//! terminal, `tee`, a log shipper, a pipe whose reader has exited — can then be slow or gone
//! without a log call ever blocking a request or panicking (tracing's default writer reports a
//! failed write with `eprintln!`, which panics on a closed pipe). Lines that do not fit, or that
//! the writer cannot write, are dropped and counted; once stderr takes lines again the writer
//! first says how many it dropped.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// Lines queued for the writer at most.
const QUEUE_LINES: usize = 16 * 1024;
/// Bytes queued for the writer at most.
const QUEUE_BYTES: usize = 8 * 1024 * 1024;
/// How long [`LogGuard`] waits for queued lines at exit.
const DRAIN_AT_EXIT: Duration = Duration::from_secs(2);

enum Item {
    Line(Vec<u8>),
    /// Answered once every line queued before it was written (or dropped).
    Drain(SyncSender<()>),
}

/// Counters shared by the producers and the writer thread.
#[derive(Default)]
struct Counters {
    queued_bytes: AtomicUsize,
    /// Every line dropped since start.
    dropped_total: AtomicU64,
    /// Lines dropped since the last notice on stderr.
    dropped_unreported: AtomicU64,
}

impl Counters {
    fn drop_line(&self) {
        self.dropped_total.fetch_add(1, Ordering::Relaxed);
        self.dropped_unreported.fetch_add(1, Ordering::Relaxed);
    }
}

/// A [`MakeWriter`] that hands each formatted event to the writer thread, never waiting.
#[derive(Clone)]
pub struct StderrQueue {
    tx: SyncSender<Item>,
    counters: Arc<Counters>,
}

/// Keeps the writer thread's queue draining at exit; dropping it waits (briefly) for queued lines.
pub struct LogGuard {
    queue: StderrQueue,
}

impl StderrQueue {
    /// A queue and the thread that writes it to `out`.
    pub fn start(out: impl Write + Send + 'static) -> std::io::Result<(StderrQueue, LogGuard)> {
        let (tx, rx) = sync_channel(QUEUE_LINES);
        let counters = Arc::new(Counters::default());
        let writer_counters = counters.clone();
        std::thread::Builder::new()
            .name("heterogen-log".into())
            .spawn(move || write_lines(rx, out, &writer_counters))?;
        let queue = StderrQueue { tx, counters };
        Ok((queue.clone(), LogGuard { queue }))
    }

    /// Lines dropped since start because stderr was slow or gone.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped_total.load(Ordering::Relaxed)
    }

    fn enqueue(&self, line: &[u8]) {
        let counters = &self.counters;
        let queued = counters.queued_bytes.fetch_add(line.len(), Ordering::AcqRel);
        if queued.saturating_add(line.len()) > QUEUE_BYTES {
            counters.queued_bytes.fetch_sub(line.len(), Ordering::AcqRel);
            counters.drop_line();
            return;
        }
        // Full (stderr slow) or disconnected (writer gone): dropped either way.
        if self.tx.try_send(Item::Line(line.to_vec())).is_err() {
            counters.queued_bytes.fetch_sub(line.len(), Ordering::AcqRel);
            counters.drop_line();
        }
    }

    /// Waits up to `limit` for the lines queued so far to be written (or dropped).
    pub fn drain(&self, limit: Duration) {
        let (done_tx, done_rx) = sync_channel(1);
        if self.tx.try_send(Item::Drain(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(limit);
        }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.queue.drain(DRAIN_AT_EXIT);
    }
}

/// The writer thread: writes each line, or counts it as dropped when the write fails.
fn write_lines(rx: Receiver<Item>, mut out: impl Write, counters: &Counters) {
    // Ends when every producer is gone.
    while let Ok(item) = rx.recv() {
        let line = match item {
            Item::Line(line) => line,
            Item::Drain(done) => {
                let _ = out.flush();
                let _ = done.try_send(());
                continue;
            }
        };
        counters.queued_bytes.fetch_sub(line.len(), Ordering::AcqRel);
        let unreported = counters.dropped_unreported.swap(0, Ordering::AcqRel);
        if unreported > 0 {
            let notice = format!("heterogen: {unreported} log lines dropped (stderr was slow or closed)\n");
            if out.write_all(notice.as_bytes()).is_err() {
                counters
                    .dropped_unreported
                    .fetch_add(unreported, Ordering::AcqRel);
            }
        }
        if out.write_all(&line).is_err() {
            counters.drop_line();
        }
    }
}

/// One event's bytes, handed over whole when tracing is done writing them.
pub struct EventWriter {
    queue: StderrQueue,
    buf: Vec<u8>,
}

impl Write for EventWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.queue.enqueue(&self.buf);
        }
    }
}

impl<'a> MakeWriter<'a> for StderrQueue {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter {
            queue: self.clone(),
            buf: Vec::new(),
        }
    }
}

/// How log lines look (`--log-format`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line of text an event, for people (coloured only on a terminal).
    #[default]
    Text,
    /// One JSON object a line, for log shippers: `timestamp`, `level`, `target`, `message`, the
    /// event's fields (`sid`, `method`, `peer`, …), the `conn` of a WebSocket's events and the
    /// node's `nid`.
    Json,
}

/// The filter when `RUST_LOG` is not set: the node's own events from `info` up, the libraries'
/// only when they warn (fjall's "Finished ingestion writer" at every start is not news).
pub const DEFAULT_FILTER: &str = "warn,heterogen=info";

/// Installs the process-wide subscriber: `RUST_LOG` filter (default [`DEFAULT_FILTER`]) to
/// stderr through a [`StderrQueue`], in `format`; JSON lines carry `nid` when given. Keep the
/// guard until exit. `None` when the writer thread cannot start (then nothing is logged, and
/// nothing can panic either).
pub fn init(format: LogFormat, nid: Option<&str>) -> Option<LogGuard> {
    let (queue, guard) = StderrQueue::start(std::io::stderr()).ok()?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(queue)
        .log_internal_errors(false);
    let installed = match format {
        LogFormat::Text => builder.with_ansi(colours_wanted()).try_init(),
        LogFormat::Json => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(WithNid {
                inner: tracing_subscriber::fmt::format()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false),
                nid: nid.map(|nid| serde_json::Value::from(nid).to_string()),
            })
            .try_init(),
    };
    installed.ok()?;
    Some(guard)
}

/// tracing's JSON lines with the node's `nid` as their first field: a process serves one node,
/// so every line names it, for logs gathered from several nodes.
struct WithNid<F> {
    inner: F,
    /// The nid as a JSON string.
    nid: Option<String>,
}

impl<S, N, F> FormatEvent<S, N> for WithNid<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let Some(nid) = &self.nid else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{\"nid\":{nid},{rest}"),
            None => writer.write_str(&line),
        }
    }
}

/// ANSI colours only for a person at a terminal, and never with `NO_COLOR` set to anything
/// (<https://no-color.org>).
pub fn colours_wanted() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A writer that fails while `broken` is set and records what it wrote otherwise.
    #[derive(Clone, Default)]
    struct Flaky {
        broken: Arc<std::sync::atomic::AtomicBool>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Flaky {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if self.broken.load(Ordering::SeqCst) {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            self.written.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_broken_stderr_drops_and_counts_lines_then_says_so() {
        let out = Flaky::default();
        let (queue, _guard) = StderrQueue::start(out.clone()).unwrap();
        queue.make_writer().write_all(b"one\n").unwrap();
        queue.drain(Duration::from_secs(5));
        out.broken.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            queue.make_writer().write_all(b"lost\n").unwrap();
        }
        queue.drain(Duration::from_secs(5));
        assert_eq!(queue.dropped(), 3);
        out.broken.store(false, Ordering::SeqCst);
        queue.make_writer().write_all(b"two\n").unwrap();
        queue.drain(Duration::from_secs(5));
        let written = String::from_utf8(out.written.lock().unwrap().clone()).unwrap();
        assert_eq!(
            written,
            "one\nheterogen: 3 log lines dropped (stderr was slow or closed)\ntwo\n"
        );
    }

    /// A writer that blocks until released.
    struct Stuck(std::sync::mpsc::Receiver<()>);

    impl Write for Stuck {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.recv();
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_stderr_never_blocks_the_caller() {
        let (release, stuck) = std::sync::mpsc::channel();
        let (queue, _guard) = StderrQueue::start(Stuck(stuck)).unwrap();
        let line = vec![b'x'; 1000];
        // Far more than the queue holds, by lines and by bytes: every call returns at once.
        for _ in 0..(QUEUE_LINES * 2) {
            queue.make_writer().write_all(&line).unwrap();
        }
        assert!(queue.dropped() >= QUEUE_LINES as u64);
        drop(release);
    }
}
