//! Output: JSON, tables, durations, error frames.

use std::io::{IsTerminal, Write};

use comfy_table::{Attribute, Cell, Color};
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

/// A byte count for people: `512 B`, `12.3 KiB`, `4.0 MiB`.
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if count < 1024 {
        return format!("{count} B");
    }
    let mut value = count as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Milliseconds since the epoch as RFC 3339 UTC with milliseconds; now when absent.
pub fn timestamp(value: &Value) -> String {
    let at = value
        .as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .unwrap_or_else(chrono::Utc::now);
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Whether stdout gets ANSI colours: only a terminal, and never with `NO_COLOR` set
/// (<https://no-color.org>).
pub fn colours() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A cell for a good state (green where colours are on).
pub fn good(text: impl Into<String>) -> Cell {
    Cell::new(text.into()).fg(Color::Green)
}

/// A cell for a bad state (red where colours are on).
pub fn bad(text: impl Into<String>) -> Cell {
    Cell::new(text.into()).fg(Color::Red)
}

/// A cell of little interest (dim where colours are on).
pub fn dim(text: impl Into<String>) -> Cell {
    Cell::new(text.into()).add_attribute(Attribute::Dim)
}

/// A plain text table (`comfy-table`, widths in terminal columns): left-aligned columns two
/// spaces apart, no borders, the header bold and states coloured on a terminal.
pub struct Table {
    table: comfy_table::Table,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        let mut table = comfy_table::Table::new();
        table
            .load_style(comfy_table::presets::NOTHING)
            .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
            .set_header(
                headers
                    .iter()
                    .map(|h| Cell::new(h).add_attribute(Attribute::Bold)),
            );
        if colours() {
            table.enforce_styling();
        } else {
            table.force_no_tty();
        }
        for column in table.column_iter_mut() {
            column.set_padding((0, 2));
        }
        Table { table }
    }

    pub fn row<C: Into<Cell>>(&mut self, cells: Vec<C>) {
        self.table.add_row(cells);
    }

    /// The table as lines (without newlines or trailing blanks).
    pub fn lines(&self) -> Vec<String> {
        self.table
            .lines()
            .map(|line| line.trim_end().to_string())
            .collect()
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
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(12_595), "12.3 KiB");
        assert_eq!(bytes(4 * 1024 * 1024), "4.0 MiB");
    }

    #[test]
    fn tables_align() {
        let mut table = Table::new(&["A", "LONG"]);
        table.row(vec!["wide cell", "x"]);
        table.row(vec!["日本", "y"]);
        assert_eq!(
            table.lines(),
            vec!["A          LONG", "wide cell  x", "日本       y"]
        );
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
