//! `logger` (S-1) and the silent `console` (S-2), and [`MaskedLog`], which hides a worker's
//! secrets in every line written for it.

use std::sync::Arc;

use rquickjs::prelude::{Coerced, Rest};
use rquickjs::{Ctx, Function, Object, Value};

use crate::runtime::engine::{LogLevel, LogSink, SecretReader, WorkerEnv};

/// A worker's log with its secrets masked: every line — the script's `logger.*`, the SDK's
/// warnings, the supervisor's error lines with the script's error message — goes through
/// [`SecretReader::mask`] before it is stored or streamed. The whole line is masked before the
/// log cuts it to its length limit, so no value is cut in two and left half visible.
pub struct MaskedLog {
    /// Where masked lines go.
    inner: Arc<dyn LogSink>,
    /// The worker's secrets as they are at each line.
    secrets: Arc<dyn SecretReader>,
}

impl MaskedLog {
    /// `inner` with `secrets` masked.
    pub fn wrap(inner: Arc<dyn LogSink>, secrets: Arc<dyn SecretReader>) -> Arc<dyn LogSink> {
        Arc::new(MaskedLog { inner, secrets })
    }
}

impl LogSink for MaskedLog {
    fn log(&self, level: LogLevel, message: &str) {
        self.inner.log(level, &self.secrets.mask(message));
    }
}

/// `console` methods scripts call; all of them do nothing (the seed does not log them).
const CONSOLE_METHODS: &[&str] = &[
    "log", "info", "warn", "error", "debug", "trace", "dir", "table", "assert", "time", "timeEnd", "timeLog",
    "group", "groupEnd", "count",
];

/// Installs the global `logger`: one line per call to `info`, `warn`, `error`, `debug` (and
/// `log`, as `info`), written to the worker's [`LogSink`](crate::runtime::engine::LogSink).
pub fn install_logger<'js>(ctx: &Ctx<'js>, env: &WorkerEnv) -> rquickjs::Result<()> {
    let logger = Object::new(ctx.clone())?;
    let levels = [
        ("info", LogLevel::Info),
        ("log", LogLevel::Info),
        ("warn", LogLevel::Warn),
        ("error", LogLevel::Error),
        ("debug", LogLevel::Debug),
    ];
    for (name, level) in levels {
        let sink = env.log.clone();
        let write = Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| {
            sink.log(level, &format_args(&ctx, &args.0));
        })?
        .with_name(name)?;
        logger.set(name, write)?;
    }
    ctx.globals().set("logger", logger)
}

/// Installs the global `console`, whose methods exist and do nothing.
pub fn install_console<'js>(ctx: &Ctx<'js>) -> rquickjs::Result<()> {
    let console = Object::new(ctx.clone())?;
    let nothing = Function::new(ctx.clone(), || {})?;
    for name in CONSOLE_METHODS {
        console.set(*name, nothing.clone())?;
    }
    ctx.globals().set("console", console)
}

/// The arguments of a log call as one line, separated by spaces.
pub fn format_args<'js>(ctx: &Ctx<'js>, args: &[Value<'js>]) -> String {
    let mut line = String::new();
    for (at, value) in args.iter().enumerate() {
        if at > 0 {
            line.push(' ');
        }
        line.push_str(&format_value(ctx, value));
    }
    line
}

/// Strings as they are, errors as `name: message`, other objects and arrays as JSON,
/// everything else as `String(value)`.
pub fn format_value<'js>(ctx: &Ctx<'js>, value: &Value<'js>) -> String {
    if let Some(text) = value.as_string() {
        return text.to_string().unwrap_or_default();
    }
    if let Some(object) = value.as_object() {
        if value.is_error() {
            let name = property_text(ctx, object, "name").unwrap_or_else(|| "Error".to_owned());
            return match property_text(ctx, object, "message") {
                Some(message) if !message.is_empty() => format!("{name}: {message}"),
                _ => name,
            };
        }
        if !value.is_function() {
            match ctx.json_stringify(value.clone()) {
                Ok(Some(json)) => {
                    if let Ok(json) = json.to_string() {
                        return json;
                    }
                }
                Ok(None) => {}
                // A cycle, a BigInt or a throwing `toJSON`: fall back to `String(value)`.
                Err(_) => drop(ctx.catch()),
            }
        }
    }
    coerce_text(ctx, value)
}

/// `String(object[key])`, `None` when absent or unreadable (a throwing getter).
pub fn property_text<'js>(ctx: &Ctx<'js>, object: &Object<'js>, key: &str) -> Option<String> {
    match object.get::<_, Value>(key) {
        Ok(value) if value.is_undefined() => None,
        Ok(value) => Some(coerce_text(ctx, &value)),
        Err(_) => {
            drop(ctx.catch());
            None
        }
    }
}

/// `String(value)`, or the type's name when even that throws (a symbol, a hostile `toString`).
pub fn coerce_text<'js>(ctx: &Ctx<'js>, value: &Value<'js>) -> String {
    match value.get::<Coerced<String>>() {
        Ok(text) => text.0,
        Err(_) => {
            drop(ctx.catch());
            value.type_name().to_owned()
        }
    }
}
