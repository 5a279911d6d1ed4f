//! Output: JSON, tables, durations, error frames.

use std::io::{IsTerminal, Write};

use serde_json::Value;

use super::CliError;

/// Prints JSON on stdout: pretty on a terminal, one compact line otherwise.
pub fn print_json(value: &Value) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    if std::io::stdout().is_terminal() {
        writeln!(out, "{value:#}")?;
    } else {
        writeln!(out, "{value}")?;
    }
    out.flush()?;
    Ok(())
}

/// Prints JSON on stdout as one compact line (for streams of values).
pub fn print_json_line(value: &Value) -> Result<(), CliError> {
    print_raw(&format!("{value}\n"))
}

/// Writes `text` to stdout as is and flushes it.
pub fn print_raw(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// `error (STATUS): text`, then one `  field: value` line for every other field of the frame
/// (`details`, `missing`, `code`, …).
pub fn error_frame(status: u16, frame: &Value) -> String {
    let text = super::conn::error_text(frame).unwrap_or_else(|| "no error text in the answer".into());
    let mut message = format!("error ({status}): {text}");
    if let Some(object) = frame.as_object() {
        for (key, value) in object {
            if matches!(key.as_str(), "webfix" | "id" | "status" | "error" | "result") {
                continue;
            }
            message.push_str(&format!("\n  {key}: {}", plain(value)));
        }
    }
    message
}

/// A JSON value for a table cell or a message: strings bare, `null` as `-`.
pub fn plain(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// `text` cut to `max` characters (the last one `…`), on one line.
pub fn truncate(text: &str, max: usize) -> String {
    let text = text.replace(['\n', '\r', '\t'], " ");
    if text.chars().count() <= max {
        return text;
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Milliseconds as a short duration: `850ms`, `12.3s`, `5m03s`, `2h05m`, `3d04h`; `-` for none.
pub fn duration_ms(value: &Value) -> String {
    let Some(ms) = value.as_f64() else {
        return plain(value);
    };
    let ms = ms.max(0.0) as u64;
    let secs = ms / 1000;
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", secs / 60, secs % 60),
        3_600_000..86_400_000 => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs / 3600 % 24),
    }
}

/// Milliseconds since the epoch as RFC 3339 UTC with milliseconds; now when absent.
pub fn timestamp(value: &Value) -> String {
    let at = value
        .as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .unwrap_or_else(chrono::Utc::now);
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A plain text table: left-aligned columns two spaces apart, the last one unpadded.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as lines (without newlines).
    pub fn lines(&self) -> Vec<String> {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: &mut dyn Iterator<Item = &str>| {
            let mut line = String::new();
            for (i, cell) in cells.enumerate().take(columns) {
                if i + 1 < columns {
                    let pad = widths[i].saturating_sub(cell.chars().count());
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad + 2));
                } else {
                    line.push_str(cell);
                }
            }
            line.trim_end().to_string()
        };
        let mut lines = vec![line(&mut self.headers.iter().copied())];
        for row in &self.rows {
            lines.push(line(&mut row.iter().map(String::as_str)));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(duration_ms(&json!(850)), "850ms");
        assert_eq!(duration_ms(&json!(12_345)), "12.3s");
        assert_eq!(duration_ms(&json!(303_000)), "5m03s");
        assert_eq!(duration_ms(&json!(7_500_000)), "2h05m");
        assert_eq!(duration_ms(&json!(273_600_000)), "3d04h");
        assert_eq!(duration_ms(&Value::Null), "-");
    }

    #[test]
    fn tables_align() {
        let mut table = Table::new(&["A", "LONG"]);
        table.row(vec!["wide cell".into(), "x".into()]);
        assert_eq!(table.lines(), vec!["A          LONG", "wide cell  x"]);
    }

    #[test]
    fn error_frames_name_the_extra_fields() {
        let frame = json!({"webfix":"1.0","id":1,"status":400,"error":"Script minification failed","details":"line 1","line":1});
        assert_eq!(
            error_frame(400, &frame),
            "error (400): Script minification failed\n  details: line 1\n  line: 1"
        );
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
