//! Worker log lines: `[ISO time] [LEVEL] message\n` (W-STR-5).
//!
//! Each worker has a [`LogRing`] of recent lines in memory, with cursors (1, 2, 3, … never
//! reused, also across restarts) so a reader can resume exactly after the last line it saw, and
//! a watch of the newest cursor for live readers. Every line is also persisted in the node's
//! local store under `["log", sid, cursor]`, keeping the last `history` lines per worker, so logs
//! survive a restart; a background task writes them in batches, off the script's path.
//! A per-worker rate limit drops excess lines and says how many it dropped.
//!
//! Readers never allocate state for a worker: a ring exists only for a worker this node runs
//! or one a live reader follows, after the caller checked that the worker has a record
//! ([`LogBook::open_known`]); reading history is a range scan from the reader's cursor, so a
//! page costs what it returns. A deleted worker's ring is freed and its stored history removed
//! ([`LogBook::forget`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::clock::Clock;
use crate::store::{AtomicWrite, Key, KeyPart, Limits, ListOptions, Store, StoreResult};
use crate::workers::WorkerRepo;

/// Severity of a log line written by a script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// Details for debugging.
    Debug,
    /// Normal progress.
    Info,
    /// Something worth a look.
    Warn,
    /// A failure.
    Error,
}

impl LogLevel {
    /// The tag in a log line: `INFO`, `WARN`, `ERROR`, `DEBUG`.
    pub fn tag(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }
}

/// Where a worker's log lines go (its ring of recent lines, later its subscribers).
pub trait LogSink: Send + Sync {
    /// One line; `message` has no level tag, time or trailing newline.
    fn log(&self, level: LogLevel, message: &str);
}

/// Lines waiting to be persisted; past it lines are kept in memory only (and counted).
const PERSIST_QUEUE: usize = 65_536;
/// The most a stored line can weigh: its message fully JSON-escaped, plus the other fields.
const LINE_BYTES_MAX: usize = MAX_MESSAGE_BYTES * 6 + 1024;
/// Lines written to the store in one commit at most: each is a set and a delete, and a commit
/// stays within the store contract's limits (128 operations, 1.5 MiB).
const PERSIST_BATCH: usize = {
    let by_operations = Limits::DEFAULT.max_operations / 2;
    let by_bytes = Limits::DEFAULT.max_request_bytes / LINE_BYTES_MAX;
    if by_operations < by_bytes {
        by_operations
    } else {
        by_bytes
    }
};
/// Longest message kept in a line; the rest is cut. Even fully JSON-escaped (6 bytes a byte)
/// a line stays under the store's value limit, and a reader's batch stays small.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;

/// What the history writer does, in the order it was asked.
enum Persist {
    Line(String, LogLine),
    /// Delete every stored line of a worker (it was deleted).
    Forget(String),
}

/// One log line.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    /// Position of the line in its worker's log, from 1, never reused.
    pub cursor: u64,
    /// Its severity.
    pub level: LogLevel,
    /// The whole line, `[2025-10-18T02:00:20.498Z] [INFO] message\n`.
    pub content: String,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
}

impl LogLine {
    /// The same fields as [`LogLine::to_json`], serialisable without building a `Value`.
    pub fn wire<'a>(&'a self, sid: &'a str) -> impl serde::Serialize + 'a {
        #[derive(serde::Serialize)]
        struct Wire<'a> {
            sid: &'a str,
            cursor: u64,
            level: &'static str,
            content: &'a str,
            timestamp: i64,
        }
        Wire {
            sid,
            cursor: self.cursor,
            level: self.level.tag(),
            content: &self.content,
            timestamp: self.timestamp,
        }
    }

    /// `{"sid","cursor","level","content","timestamp"}` (W-STR-2).
    pub fn to_json(&self, sid: &str) -> Value {
        serde_json::to_value(self.wire(sid)).unwrap_or_default()
    }

    fn from_json(value: &Value) -> Option<LogLine> {
        let level = match value.get("level")?.as_str()? {
            "DEBUG" => LogLevel::Debug,
            "INFO" => LogLevel::Info,
            "WARN" => LogLevel::Warn,
            _ => LogLevel::Error,
        };
        Some(LogLine {
            cursor: value.get("cursor")?.as_u64()?,
            level,
            content: value.get("content")?.as_str()?.to_string(),
            timestamp: value.get("timestamp")?.as_i64()?,
        })
    }
}

/// Formats a line as the existing client expects it; a message over [`MAX_MESSAGE_BYTES`] is
/// cut, and says how much was cut.
pub fn format_line(timestamp_ms: i64, level: LogLevel, message: &str) -> String {
    let time = chrono::DateTime::from_timestamp_millis(timestamp_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    if message.len() <= MAX_MESSAGE_BYTES {
        return format!("[{time}] [{}] {message}\n", level.tag());
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let cut = message.len() - end;
    format!(
        "[{time}] [{}] {}… ({cut} bytes cut)\n",
        level.tag(),
        &message[..end]
    )
}

fn log_key(sid: &str, cursor: u64) -> Key {
    Key(vec![
        KeyPart::Str("log".into()),
        KeyPart::Str(sid.into()),
        KeyPart::Num(cursor as f64),
    ])
}

fn log_prefix(sid: &str) -> Key {
    Key::of(&["log", sid])
}

struct RingInner {
    next_cursor: u64,
    lines: VecDeque<LogLine>,
    /// The worker was deleted: lines are no longer persisted.
    forgotten: bool,
}

/// The recent lines of one worker.
pub struct LogRing {
    sid: String,
    /// Lines kept in memory; older ones are dropped first (they stay in the store's history).
    capacity: usize,
    inner: Mutex<RingInner>,
    /// The cursor of the newest line, for live readers.
    newest: watch::Sender<u64>,
    /// Where lines go to be persisted.
    persist: Option<mpsc::Sender<Persist>>,
    /// Stamps the lines.
    clock: Clock,
}

impl LogRing {
    fn new(
        sid: &str,
        capacity: usize,
        next_cursor: u64,
        persist: Option<mpsc::Sender<Persist>>,
        clock: Clock,
    ) -> Self {
        LogRing {
            clock,
            sid: sid.to_string(),
            capacity: capacity.max(1),
            inner: Mutex::new(RingInner {
                next_cursor,
                lines: VecDeque::new(),
                forgotten: false,
            }),
            newest: watch::channel(next_cursor.saturating_sub(1)).0,
            persist,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RingInner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn keep(&self, inner: &mut RingInner, line: LogLine) {
        if inner.lines.len() == self.capacity {
            inner.lines.pop_front();
        }
        inner.lines.push_back(line);
    }

    /// Appends a line and returns it.
    pub fn push(&self, level: LogLevel, message: &str) -> LogLine {
        let timestamp = self.clock.wall_ms();
        let line = {
            let mut inner = self.lock();
            let line = LogLine {
                cursor: inner.next_cursor,
                level,
                content: format_line(timestamp, level, message),
                timestamp,
            };
            inner.next_cursor = inner.next_cursor.saturating_add(1);
            self.keep(&mut inner, line.clone());
            // Queued under the lock, so no line of a forgotten worker lands after its
            // history was deleted (see `LogBook::forget`).
            if let Some(persist) = &self.persist
                && !inner.forgotten
                && persist
                    .try_send(Persist::Line(self.sid.clone(), line.clone()))
                    .is_err()
            {
                tracing::warn!(sid = %self.sid, cursor = line.cursor, "log history queue full; line kept in memory only");
            }
            line
        };
        self.newest.send_replace(line.cursor);
        line
    }

    /// Lines after `cursor` still held in memory (all of them for 0).
    pub fn since(&self, cursor: u64) -> Vec<LogLine> {
        self.after(cursor, usize::MAX)
    }

    /// At most `limit` lines after `cursor` held in memory, oldest first.
    pub fn after(&self, cursor: u64, limit: usize) -> Vec<LogLine> {
        let inner = self.lock();
        let start = inner.lines.partition_point(|l| l.cursor <= cursor);
        inner.lines.range(start..).take(limit).cloned().collect()
    }

    /// The oldest cursor held in memory (`next_cursor` when empty).
    pub fn oldest_cursor(&self) -> u64 {
        let inner = self.lock();
        inner.lines.front().map_or(inner.next_cursor, |l| l.cursor)
    }

    /// The cursor the next line will get.
    pub fn next_cursor(&self) -> u64 {
        self.lock().next_cursor
    }

    /// Wakes when a newer line is written (the value is its cursor).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.newest.subscribe()
    }
}

/// Every worker's log on this node.
pub struct LogBook {
    /// Lines kept in memory per worker.
    capacity: usize,
    /// Lines kept in the store per worker.
    history: usize,
    /// Lines a worker may write per second before lines are dropped.
    rate: u32,
    store: Option<Arc<dyn Store>>,
    persist: Option<mpsc::Sender<Persist>>,
    rings: Mutex<HashMap<String, Arc<LogRing>>>,
    /// Stamps the lines (the system clock unless [`LogBook::with_clock`]).
    clock: Clock,
    /// Lines written and dropped by the rate limit, every worker together, since start.
    tally: Arc<LineTally>,
}

/// Lines written and dropped since start.
#[derive(Default, Debug)]
pub struct LineTally {
    written: AtomicU64,
    dropped: AtomicU64,
}

impl LineTally {
    /// (written, dropped).
    pub fn read(&self) -> (u64, u64) {
        (
            self.written.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }
}

impl LogBook {
    /// A log kept in memory only (tests of other layers).
    pub fn in_memory(capacity: usize) -> Self {
        LogBook {
            capacity,
            history: 0,
            rate: u32::MAX,
            store: None,
            persist: None,
            rings: Mutex::new(HashMap::new()),
            clock: Clock::system(),
            tally: Arc::default(),
        }
    }

    /// The same book, stamping lines by `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// A log persisted in `store`, keeping `history` lines per worker; spawns its writer task.
    pub fn persistent(store: Arc<dyn Store>, capacity: usize, history: usize, rate: u32) -> Self {
        let (tx, rx) = mpsc::channel(PERSIST_QUEUE);
        tokio::spawn(persist_lines(store.clone(), history, rx));
        LogBook {
            capacity,
            history,
            rate,
            store: Some(store),
            persist: Some(tx),
            rings: Mutex::new(HashMap::new()),
            clock: Clock::system(),
            tally: Arc::default(),
        }
    }

    fn rings(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LogRing>>> {
        self.rings.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The ring of `sid`, loaded from the stored history the first time (so cursors continue
    /// after a restart). For workers known to exist: readers go through [`LogBook::open_known`].
    pub async fn open(&self, sid: &str) -> Arc<LogRing> {
        if let Some(ring) = self.rings().get(sid) {
            return ring.clone();
        }
        let mut loaded = Vec::new();
        if let Some(store) = &self.store {
            let options = ListOptions {
                limit: Some(self.capacity),
                reverse: true,
                ..Default::default()
            };
            match store.list(&log_prefix(sid), options).await {
                Ok(page) => {
                    loaded = page
                        .entries
                        .iter()
                        .rev()
                        .filter_map(|e| LogLine::from_json(&e.value.parse().ok()?))
                        .collect()
                }
                Err(e) => tracing::warn!(%sid, error = %e, "cannot load the log history"),
            }
        }
        let next = loaded.last().map_or(1, |l| l.cursor.saturating_add(1));
        let mut rings = self.rings();
        // Another caller may have opened it meanwhile: keep theirs.
        rings
            .entry(sid.to_string())
            .or_insert_with(|| {
                let ring = LogRing::new(sid, self.capacity, next, self.persist.clone(), self.clock.clone());
                {
                    let mut inner = ring.lock();
                    for line in loaded {
                        ring.keep(&mut inner, line);
                    }
                }
                Arc::new(ring)
            })
            .clone()
    }

    /// The ring of `sid` for a live reader, or `None` when `workers` holds no record of the
    /// worker (nothing is allocated then).
    pub async fn open_known(&self, workers: &WorkerRepo, sid: &str) -> StoreResult<Option<Arc<LogRing>>> {
        if workers.get(sid).await?.is_none() {
            return Ok(None);
        }
        let ring = self.open(sid).await;
        // A delete committed since the check may have been handled before the open: look
        // again, so no ring of a deleted worker stays behind.
        if workers.get(sid).await?.is_none() {
            self.rings().remove(sid);
            return Ok(None);
        }
        Ok(Some(ring))
    }

    /// Lines of `sid` after `since`, at most `limit`, from memory or, when older, the store.
    /// The second value is how many lines between `since` and the first returned one are gone.
    ///
    /// Older lines are one range scan from `since`'s key, so the cost is proportional to the
    /// lines returned; no ring is opened.
    pub async fn read(&self, sid: &str, since: u64, limit: usize) -> (Vec<LogLine>, u64) {
        let first_wanted = since.saturating_add(1);
        let ring = self.rings().get(sid).cloned();
        let oldest_in_memory = ring.as_ref().map_or(u64::MAX, |r| r.oldest_cursor());
        let mut lines = Vec::new();
        if limit > 0
            && first_wanted < oldest_in_memory
            && let Some(store) = &self.store
        {
            let options = ListOptions {
                limit: Some(limit),
                start_after: Some(log_key(sid, since)),
                ..Default::default()
            };
            match store.list(&log_prefix(sid), options).await {
                Ok(page) => lines.extend(
                    page.entries
                        .iter()
                        .filter_map(|e| LogLine::from_json(&e.value.parse().ok()?))
                        .filter(|l| l.cursor > since && l.cursor < oldest_in_memory),
                ),
                Err(e) => tracing::warn!(%sid, error = %e, "cannot read the log history"),
            }
        }
        if let Some(ring) = ring
            && lines.len() < limit
        {
            let after = lines.last().map_or(since, |l| l.cursor);
            lines.extend(ring.after(after, limit - lines.len()));
        }
        let gone = lines
            .first()
            .map_or(0, |first| first.cursor.saturating_sub(first_wanted));
        (lines, gone)
    }

    /// Frees the ring of a deleted worker and deletes its stored history. Lines its run still
    /// writes are not persisted.
    pub fn forget(&self, sid: &str) {
        let ring = self.rings().remove(sid);
        if let Some(ring) = ring {
            ring.lock().forgotten = true;
        }
        let Some(persist) = &self.persist else { return };
        // Queued after every line the ring queued before it was marked: the history writer
        // deletes them all.
        if let Err(mpsc::error::TrySendError::Full(forget)) =
            persist.try_send(Persist::Forget(sid.to_string()))
        {
            let persist = persist.clone();
            tokio::spawn(async move {
                let _ = persist.send(forget).await;
            });
        }
    }

    /// How many rings are held in memory.
    pub fn open_rings(&self) -> usize {
        self.rings().len()
    }

    /// A rate-limited sink writing to the ring of `sid` (open it first).
    pub async fn sink(&self, sid: &str) -> Arc<dyn LogSink> {
        let ring = self.open(sid).await;
        Arc::new(WorkerLog {
            ring,
            limiter: Mutex::new(RateLimiter::new(self.rate)),
            tally: Arc::clone(&self.tally),
        })
    }

    /// Lines written and dropped, every worker together, since start.
    pub fn tally(&self) -> Arc<LineTally> {
        Arc::clone(&self.tally)
    }

    /// The ring of `sid` if its log is open, else an empty ring that is not kept.
    pub fn ring(&self, sid: &str) -> Arc<LogRing> {
        self.rings()
            .get(sid)
            .cloned()
            .unwrap_or_else(|| Arc::new(LogRing::new(sid, 1, 1, None, self.clock.clone())))
    }

    /// The lines of `sid` held in memory now (none when its log was never opened).
    pub fn recent(&self, sid: &str) -> Vec<LogLine> {
        self.ring(sid).since(0)
    }

    /// Lines kept in the store per worker.
    pub fn history(&self) -> usize {
        self.history
    }
}

/// Writes lines to the store in batches and trims each worker's history; deletes the history
/// of forgotten workers.
async fn persist_lines(store: Arc<dyn Store>, history: usize, mut rx: mpsc::Receiver<Persist>) {
    let mut batch = Vec::with_capacity(PERSIST_BATCH);
    while rx.recv_many(&mut batch, PERSIST_BATCH).await > 0 {
        let mut write = AtomicWrite::new();
        for op in batch.drain(..) {
            match op {
                Persist::Line(sid, line) => {
                    if let Some(old) = line.cursor.checked_sub(history as u64).filter(|c| *c > 0) {
                        write = write.delete(log_key(&sid, old));
                    }
                    write = write.set(log_key(&sid, line.cursor), line.to_json(&sid));
                }
                Persist::Forget(sid) => {
                    commit_lines(store.as_ref(), std::mem::take(&mut write)).await;
                    delete_history(store.as_ref(), &sid).await;
                }
            }
        }
        commit_lines(store.as_ref(), write).await;
    }
}

async fn commit_lines(store: &dyn Store, write: AtomicWrite) {
    if write.mutations.is_empty() {
        return;
    }
    if let Err(e) = store.commit(write).await {
        tracing::warn!(error = %e, "cannot persist log lines");
    }
}

/// Deletes every stored line of `sid`, at most [`PERSIST_BATCH`] per commit.
async fn delete_history(store: &dyn Store, sid: &str) {
    let mut after = None;
    loop {
        let options = ListOptions {
            limit: Some(PERSIST_BATCH),
            start_after: after.take(),
            ..Default::default()
        };
        let page = match store.list(&log_prefix(sid), options).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(%sid, error = %e, "cannot list the log history to delete");
                return;
            }
        };
        let Some(last) = page.entries.last() else { return };
        after = Some(last.key.clone());
        let full = page.more;
        let write = page
            .entries
            .into_iter()
            .fold(AtomicWrite::new(), |write, entry| write.delete(entry.key));
        if let Err(e) = store.commit(write).await {
            tracing::warn!(%sid, error = %e, "cannot delete the log history");
            return;
        }
        if !full {
            return;
        }
    }
}

/// A token bucket: `rate` lines per second, bursts up to `rate`.
struct RateLimiter {
    rate: f64,
    tokens: f64,
    last: Instant,
    /// Lines dropped since the last notice.
    dropped: u64,
}

impl RateLimiter {
    fn new(rate: u32) -> Self {
        RateLimiter {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            last: Instant::now(),
            dropped: 0,
        }
    }

    /// Whether a line may pass now.
    fn admit(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.dropped += 1;
            false
        }
    }
}

/// The [`LogSink`] of one worker.
struct WorkerLog {
    ring: Arc<LogRing>,
    limiter: Mutex<RateLimiter>,
    tally: Arc<LineTally>,
}

impl LogSink for WorkerLog {
    fn log(&self, level: LogLevel, message: &str) {
        let dropped = {
            let mut limiter = self
                .limiter
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if !limiter.admit() {
                self.tally.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            std::mem::take(&mut limiter.dropped)
        };
        if dropped > 0 {
            let rate = self.limiter.lock().map(|l| l.rate).unwrap_or_default();
            self.ring.push(
                LogLevel::Warn,
                &format!("{dropped} log lines dropped (over the limit of {rate} lines/s)"),
            );
        }
        let line = self.ring.push(level, message);
        self.tally.written.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(sid = %self.ring.sid, line = %line.content.trim_end(), "worker log");
    }
}

/// Waits until a line after `cursor` exists in `ring` (or the watch closes).
pub async fn wait_after(newest: &mut watch::Receiver<u64>, cursor: u64) -> bool {
    newest.wait_for(|n| *n > cursor).await.is_ok()
}

/// How long log readers wait between keep-alives.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fjall::FjallStore;

    #[test]
    fn lines_have_the_clients_format() {
        let line = format_line(1_760_752_820_498, LogLevel::Info, "hello");
        assert_eq!(line, "[2025-10-18T02:00:20.498Z] [INFO] hello\n");
    }

    #[test]
    fn long_messages_are_cut_and_fit_the_store() {
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        let line = format_line(0, LogLevel::Info, &long);
        assert!(line.len() < MAX_MESSAGE_BYTES + 100, "{}", line.len());
        assert!(line.ends_with(&format!("… ({} bytes cut)\n", long.len() - MAX_MESSAGE_BYTES)));
        let escaped = LogLine {
            cursor: 1,
            level: LogLevel::Info,
            content: format_line(0, LogLevel::Info, &"\u{1}".repeat(100_000)),
            timestamp: 0,
        };
        assert!(escaped.to_json("w").to_string().len() < crate::store::MAX_VALUE_BYTES);
    }

    #[tokio::test]
    async fn ring_is_bounded_and_resumable() {
        let book = LogBook::in_memory(3);
        let ring = book.open("w").await;
        for i in 0..5 {
            ring.push(LogLevel::Warn, &format!("m{i}"));
        }
        let all = ring.since(0);
        assert_eq!(all.iter().map(|l| l.cursor).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert!(all[0].content.ends_with("[WARN] m2\n"));
        assert_eq!(ring.since(4).len(), 1);
        assert_eq!(ring.next_cursor(), 6);
        let (lines, gone) = book.read("w", 0, 10).await;
        assert_eq!((lines.len(), gone), (3, 2));
    }

    #[tokio::test]
    async fn history_survives_a_restart_and_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(FjallStore::open(dir.path(), false).unwrap());
        {
            let book = LogBook::persistent(store.clone(), 4, 10, 1000);
            let sink = book.sink("w").await;
            for i in 0..25 {
                sink.log(LogLevel::Info, &format!("line {i}"));
            }
            // Let the writer task catch up.
            for _ in 0..100 {
                let stored = store
                    .list(&log_prefix("w"), ListOptions::default())
                    .await
                    .unwrap()
                    .entries;
                if stored.len() == 10 && stored.last().unwrap().value.parse().unwrap()["cursor"] == 25 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let book = LogBook::persistent(store.clone(), 4, 10, 1000);
        let ring = book.open("w").await;
        assert_eq!(ring.next_cursor(), 26, "cursors continue after a restart");
        let (lines, gone) = book.read("w", 0, 100).await;
        assert_eq!(
            lines.iter().map(|l| l.cursor).collect::<Vec<_>>(),
            (16..=25).collect::<Vec<_>>()
        );
        assert_eq!(gone, 15);
        assert!(lines[0].content.ends_with("line 15\n"));
        let (lines, _) = book.read("w", 20, 2).await;
        assert_eq!(lines.iter().map(|l| l.cursor).collect::<Vec<_>>(), vec![21, 22]);
    }

    async fn stored(store: &Arc<dyn Store>, sid: &str) -> usize {
        store
            .list(&log_prefix(sid), ListOptions::default())
            .await
            .unwrap()
            .entries
            .len()
    }

    #[tokio::test]
    async fn pages_cross_from_the_store_to_memory_and_forget_deletes_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(FjallStore::open(dir.path(), false).unwrap());
        let book = LogBook::persistent(store.clone(), 4, 100, 1000);
        let sink = book.sink("w").await;
        for i in 0..30 {
            sink.log(LogLevel::Info, &format!("line {i}"));
        }
        for _ in 0..100 {
            if stored(&store, "w").await == 30 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut seen = Vec::new();
        let mut cursor = 0;
        loop {
            let (lines, gone) = book.read("w", cursor, 7).await;
            assert_eq!(gone, 0);
            let Some(last) = lines.last() else { break };
            cursor = last.cursor;
            seen.extend(lines.iter().map(|l| l.cursor));
        }
        assert_eq!(seen, (1..=30).collect::<Vec<_>>());
        assert_eq!(book.read("w", u64::MAX, 10).await, (vec![], 0));
        assert!(book.read("other", 0, 10).await.0.is_empty());
        assert_eq!(book.open_rings(), 1, "reading opens no ring");

        book.forget("w");
        sink.log(LogLevel::Info, "written while stopping");
        assert_eq!(book.open_rings(), 0);
        for _ in 0..100 {
            if stored(&store, "w").await == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(stored(&store, "w").await, 0);
    }

    #[tokio::test]
    async fn the_rate_limit_drops_and_says_how_many() {
        let book = LogBook::in_memory(1000);
        let book = LogBook { rate: 10, ..book };
        let sink = book.sink("w").await;
        for i in 0..30 {
            sink.log(LogLevel::Info, &format!("x{i}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        sink.log(LogLevel::Info, "after");
        let lines = book.open("w").await.since(0);
        assert_eq!(
            lines.iter().filter(|l| l.content.contains("[INFO] x")).count(),
            10
        );
        let notice = lines
            .iter()
            .find(|l| l.content.contains("log lines dropped"))
            .unwrap();
        assert!(
            notice.content.contains("[WARN] 20 log lines dropped"),
            "{}",
            notice.content
        );
        assert!(lines.last().unwrap().content.contains("after"));
    }
}
