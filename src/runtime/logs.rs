//! Worker log lines: `[ISO time] [LEVEL] message\n`, kept per worker in a bounded ring with
//! cursors, so a reader can resume after the last line it saw (the streams feature pushes them).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::engine::{LogLevel, LogSink};
use crate::workers::model::now_ms;

/// One log line.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    /// Position of the line in its worker's log, from 1, never reused.
    pub cursor: u64,
    pub level: LogLevel,
    /// The whole line, `[2025-10-18T02:00:20.498Z] [INFO] message\n`.
    pub content: String,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
}

/// Formats a line as the existing client expects it.
pub fn format_line(timestamp_ms: i64, level: LogLevel, message: &str) -> String {
    let time = chrono::DateTime::from_timestamp_millis(timestamp_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    format!("[{time}] [{}] {message}\n", level.tag())
}

struct RingInner {
    next_cursor: u64,
    lines: VecDeque<LogLine>,
}

/// The recent lines of one worker.
pub struct LogRing {
    /// Lines kept; older ones are dropped first.
    capacity: usize,
    inner: Mutex<RingInner>,
}

impl LogRing {
    pub fn new(capacity: usize) -> Self {
        LogRing {
            capacity: capacity.max(1),
            inner: Mutex::new(RingInner {
                next_cursor: 1,
                lines: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RingInner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends a line and returns it.
    pub fn push(&self, level: LogLevel, message: &str) -> LogLine {
        let timestamp = now_ms();
        let mut inner = self.lock();
        let line = LogLine {
            cursor: inner.next_cursor,
            level,
            content: format_line(timestamp, level, message),
            timestamp,
        };
        inner.next_cursor += 1;
        if inner.lines.len() == self.capacity {
            inner.lines.pop_front();
        }
        inner.lines.push_back(line.clone());
        line
    }

    /// Lines after `cursor` still held (all held lines for 0).
    pub fn since(&self, cursor: u64) -> Vec<LogLine> {
        self.lock()
            .lines
            .iter()
            .filter(|l| l.cursor > cursor)
            .cloned()
            .collect()
    }

    /// The cursor the next line will get.
    pub fn next_cursor(&self) -> u64 {
        self.lock().next_cursor
    }
}

/// Every worker's ring on this node.
pub struct LogBook {
    capacity: usize,
    rings: Mutex<HashMap<String, Arc<LogRing>>>,
}

impl LogBook {
    pub fn new(capacity: usize) -> Self {
        LogBook {
            capacity,
            rings: Mutex::new(HashMap::new()),
        }
    }

    /// The ring of `sid`, created when new.
    pub fn ring(&self, sid: &str) -> Arc<LogRing> {
        let mut rings = self.rings.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        rings
            .entry(sid.to_string())
            .or_insert_with(|| Arc::new(LogRing::new(self.capacity)))
            .clone()
    }

    /// A sink writing to the ring of `sid`.
    pub fn sink(&self, sid: &str) -> Arc<dyn LogSink> {
        Arc::new(WorkerLog {
            sid: sid.to_string(),
            ring: self.ring(sid),
        })
    }
}

/// The [`LogSink`] of one worker.
struct WorkerLog {
    sid: String,
    ring: Arc<LogRing>,
}

impl LogSink for WorkerLog {
    fn log(&self, level: LogLevel, message: &str) {
        let line = self.ring.push(level, message);
        tracing::trace!(sid = %self.sid, line = %line.content.trim_end(), "worker log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_clients_format() {
        let line = format_line(1_760_752_820_498, LogLevel::Info, "hello");
        assert_eq!(line, "[2025-10-18T02:00:20.498Z] [INFO] hello\n");
    }

    #[test]
    fn ring_is_bounded_and_resumable() {
        let ring = LogRing::new(3);
        for i in 0..5 {
            ring.push(LogLevel::Warn, &format!("m{i}"));
        }
        let all = ring.since(0);
        assert_eq!(all.iter().map(|l| l.cursor).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert!(all[0].content.ends_with("[WARN] m2\n"));
        assert_eq!(ring.since(4).len(), 1);
        assert_eq!(ring.next_cursor(), 6);
    }
}
