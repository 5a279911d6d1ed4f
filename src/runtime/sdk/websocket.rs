//! The browser `WebSocket` for worker scripts (S-14).
//!
//! `new WebSocket(url, protocols?)` opens a client connection to a `ws:` or `wss:` URL
//! (`protocols`: one string or a list of them, offered in `Sec-WebSocket-Protocol`). The object
//! has `url`, `protocol`, `extensions` (always `""`), `readyState` (`CONNECTING` 0, `OPEN` 1,
//! `CLOSING` 2, `CLOSED` 3, on the class and its instances), `bufferedAmount` (bytes passed to
//! `send` and not yet written), `binaryType`, `send(data)`, `close(code?, reason?)`, the handlers
//! `onopen`/`onmessage`/`onerror`/`onclose` and `addEventListener` (options `once`, `signal`),
//! `removeEventListener`, `dispatchEvent`. It is not an `EventTarget` subclass.
//!
//! Events: `open`; `message` with `data` (a string for a text frame, an `ArrayBuffer` for a
//! binary one), `origin` and `lastEventId`; `close` with `code`, `reason` and `wasClean`;
//! `error`. Every event has `type`, `target` and `currentTarget`. `send` takes a string (a text
//! frame), an `ArrayBuffer` or any view of one (a binary frame), or anything else as
//! `String(data)`; a `Blob` is refused. `binaryType` is `"arraybuffer"`; setting `"blob"`
//! throws `NotSupportedError` (there is no `Blob` here), other values are ignored.
//!
//! Failures, as in browsers, are events, not exceptions: a connection that cannot be made (host
//! not allowed, refused address, DNS, TCP, TLS, handshake, past the fetch timeout) fires
//! `error` then `close` with code 1006. The `error` event is itself an `Error` named
//! `NetworkError` (with `type`, `target`, `message`, and `error` pointing to itself), so the
//! usual `await new Promise((res, rej) => { ws.onopen = res; ws.onerror = rej; })` rejects
//! with an error the supervisor counts as a network error (W-RUN-3), and `logger.error(e)`
//! prints `NetworkError: WebSocket connection to … failed: …`. An `error` event nobody listens
//! to is written to the worker's log as a warning; it never fails the run by itself.
//!
//! Mistakes throw `DOMException`s named as browsers name them: `SyntaxError` (bad URL or
//! scheme, fragment, invalid or repeated protocol, close reason over 123 UTF-8 bytes),
//! `InvalidAccessError` (close code other than 1000 or 3000–4999), `InvalidStateError`
//! (`send` while connecting), `NotSupportedError` (`binaryType = "blob"`),
//! `QuotaExceededError` (one socket too many). `send` of a message over the size limit throws
//! a `RangeError`. If a script lets them escape, the supervisor classifies them by W-RUN-3:
//! these are critical, except `InvalidAccessError` (a name W-RUN-3 lists as a network error)
//! and `QuotaExceededError`, whose message names `--script-websockets` (a message mentioning
//! WebSocket counts as a network error).
//!
//! Rules and limits:
//! - Hosts: exactly those `fetch` may reach ([`FetchPolicy::allowed_hosts`]), and non-public
//!   addresses are refused unless the host is named exactly in `--fetch-allow` (same checks and
//!   wording as `fetch`: IP literals before connecting, names through a resolver that keeps
//!   only public addresses). The whole connection (DNS, TCP, TLS, handshake) must finish
//!   within the fetch timeout (`--fetch-timeout-ms`); TLS trusts the public web roots.
//! - At most [`WebSocketPolicy::max_per_worker`] sockets at once per worker
//!   (`--script-websockets`; 0 disables `WebSocket`): a socket counts from its constructor
//!   until its connection is gone; one more throws `QuotaExceededError`.
//! - Inbound messages wait in a queue of at most [`WebSocketPolicy::max_queued_messages`]
//!   messages and [`WebSocketPolicy::max_queued_bytes`] bytes until
//!   the script takes them (events are delivered only while the run is being polled, i.e.
//!   while the script awaits); past it the socket is closed with code 1008, an `error` and a
//!   `close` event (the messages already queued are still delivered first). Likewise at most
//!   that many `send`s may wait to be written; past it the socket fails the same way.
//! - A message, either way, is at most [`WebSocketPolicy::max_message_bytes`]; a larger
//!   inbound message closes the socket with 1009 (`error`, then `close`). Zero for either
//!   queue or size means no limit.
//! - A socket belongs to the run that opened it: when the run is asked to stop, every socket
//!   sends close 1001 and the script still gets its `close` event while it winds down; when
//!   the run ends (or its isolate is dropped) the remaining sockets are closed and no event of
//!   theirs is delivered again (their `readyState` reads `CLOSED`). A closing handshake waits
//!   at most [`CLOSE_TIMEOUT`] for the server.
//!
//! Events reach the script only while its isolate is polled by its run: each socket's
//! connection is a tokio task on the node's runtime, and its events go through a channel to a
//! future spawned in the JS context (`Ctx::spawn`), which rquickjs drives inside the run.
//! Nothing is installed before the script first reads `WebSocket`.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use reqwest::Url;
use rquickjs::prelude::Func;
use rquickjs::{ArrayBuffer, Ctx, Exception, Function, Object, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use super::RunSignal;
use super::address::refused_class;
use super::fetch::{describe, host_allowed, named_exactly, normalized_host};
use super::logger::format_args;
use crate::runtime::engine::{FetchPolicy, LogLevel, WebSocketPolicy, WorkerEnv};

/// How long a closing handshake may wait for the server before the connection is dropped.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Sent with the handshake, as `fetch` sends it.
const USER_AGENT: &str = concat!("heterogen/", env!("CARGO_PKG_VERSION"));

/// Longest close reason a close frame can carry (125 bytes of payload less the code).
const MAX_REASON_BYTES: usize = 123;

/// Close codes of RFC 6455 §7.4.1.
const GOING_AWAY: u16 = 1001;
const POLICY_VIOLATION: u16 = 1008;
const MESSAGE_TOO_BIG: u16 = 1009;
const NO_STATUS: u16 = 1005;
const ABNORMAL: u16 = 1006;

/// The class, over the native `host` (`open`, `failed`, `unheard`, `maxBytes`).
const WEBSOCKET_PRELUDE: &str = r#"(function (host) {
  "use strict";
  const CONNECTING = 0, OPEN = 1, CLOSING = 2, CLOSED = 3;

  function utf8Length(text) {
    let n = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c < 0x80) n += 1;
      else if (c < 0x800) n += 2;
      else if (c >= 0xd800 && c <= 0xdbff && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) { n += 4; i++; }
      else n += 3;
    }
    return n;
  }
  function latin1(bytes) {
    let text = "";
    for (let at = 0; at < bytes.length; at += 8192) {
      text += String.fromCharCode.apply(null, bytes.subarray(at, at + 8192));
    }
    return text;
  }
  // WebIDL [Clamp] unsigned short.
  function clampCode(value) {
    let n = Number(value);
    if (Number.isNaN(n)) return 0;
    n = Math.min(Math.max(n, 0), 65535);
    const floor = Math.floor(n);
    const rest = n - floor;
    return rest > 0.5 || (rest === 0.5 && floor % 2 === 1) ? floor + 1 : floor;
  }
  function hidden(target, fields) {
    for (const key of Object.keys(fields)) {
      Object.defineProperty(target, key, { value: fields[key], configurable: true, writable: true });
    }
    return target;
  }
  function makeEvent(type, socket, fields) {
    return hidden(Object.assign({ type }, fields), { target: socket, currentTarget: socket, isTrusted: true });
  }
  // An Error, so that a script may reject with it (and the supervisor sees a NetworkError).
  function makeErrorEvent(socket, message) {
    const event = new Error(message);
    return hidden(event, {
      name: "NetworkError", type: "error", target: socket, currentTarget: socket, isTrusted: true, error: event,
    });
  }
  function isObject(value) {
    return value !== null && (typeof value === "object" || typeof value === "function");
  }

  class WebSocket {
    #state = CONNECTING;
    #handle;
    #url;
    #protocol = "";
    #listeners = new Map();
    #handlers = new Map();

    constructor(url, protocols) {
      if (arguments.length === 0) throw new TypeError("a URL is required");
      let list = [];
      if (protocols !== undefined) {
        list = isObject(protocols) && typeof protocols[Symbol.iterator] === "function"
          ? Array.from(protocols, String)
          : [String(protocols)];
      }
      const opened = host.open(String(url), list, (kind, a, b, c) => this.#receive(kind, a, b, c));
      if (opened.error !== undefined) throw new DOMException(opened.message, opened.error);
      this.#handle = opened;
      this.#url = opened.url;
    }

    get url() { return this.#url; }
    get protocol() { return this.#protocol; }
    get extensions() { return ""; }
    get readyState() {
      if (this.#state !== CLOSED && this.#handle.runOver()) this.#state = CLOSED;
      return this.#state;
    }
    get bufferedAmount() { return this.#handle.buffered(); }
    get binaryType() { return "arraybuffer"; }
    set binaryType(value) {
      if (String(value) === "blob") {
        throw new DOMException("binaryType 'blob' is not supported: binary messages arrive as ArrayBuffer", "NotSupportedError");
      }
    }
    get onopen() { return this.#handler("open"); }
    set onopen(value) { this.#setHandler("open", value); }
    get onmessage() { return this.#handler("message"); }
    set onmessage(value) { this.#setHandler("message", value); }
    get onerror() { return this.#handler("error"); }
    set onerror(value) { this.#setHandler("error", value); }
    get onclose() { return this.#handler("close"); }
    set onclose(value) { this.#setHandler("close", value); }
    get [Symbol.toStringTag]() { return "WebSocket"; }

    send(data) {
      if (this.#state === CONNECTING) throw new DOMException("send: the connection is not open yet", "InvalidStateError");
      let bytes = null;
      let text = null;
      if (typeof data === "string") text = data;
      else if (data instanceof ArrayBuffer || (typeof SharedArrayBuffer === "function" && data instanceof SharedArrayBuffer)) {
        bytes = new Uint8Array(data);
      } else if (ArrayBuffer.isView(data)) {
        bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      } else if (typeof Blob === "function" && data instanceof Blob) {
        throw new TypeError("send: Blob data is not supported; send an ArrayBuffer or a typed array");
      } else text = String(data);
      if (bytes !== null && host.maxBytes > 0 && bytes.length > host.maxBytes) {
        throw new RangeError(`send: a message of ${bytes.length} bytes is over the limit of ${host.maxBytes} bytes`);
      }
      // Browsers discard data sent once closing has started.
      if (this.readyState !== OPEN) return;
      if (bytes !== null) this.#handle.sendBinary(latin1(bytes));
      else this.#handle.sendText(text.toWellFormed());
    }

    close(code, reason) {
      if (code !== undefined) {
        code = clampCode(code);
        if (code !== 1000 && (code < 3000 || code > 4999)) {
          throw new DOMException(`close: the code must be 1000 or between 3000 and 4999, not ${code}`, "InvalidAccessError");
        }
      }
      reason = reason === undefined ? "" : String(reason).toWellFormed();
      if (utf8Length(reason) > 123) {
        throw new DOMException("close: the reason must be at most 123 bytes of UTF-8", "SyntaxError");
      }
      if (this.readyState === CLOSING || this.#state === CLOSED) return;
      const connecting = this.#state === CONNECTING;
      this.#state = CLOSING;
      this.#handle.close(code === undefined ? (reason === "" ? -1 : 1000) : code, reason, connecting);
    }

    addEventListener(type, listener, options) {
      if (!isObject(listener)) return;
      type = String(type);
      const list = this.#list(type);
      if (list.some((entry) => !entry.handler && entry.listener === listener)) return;
      const once = isObject(options) && Boolean(options.once);
      const signal = isObject(options) ? options.signal : undefined;
      if (isObject(signal) && signal.aborted) return;
      const entry = { listener, once, handler: false, removed: false };
      list.push(entry);
      if (isObject(signal) && typeof signal.addEventListener === "function") {
        signal.addEventListener("abort", () => this.#unlist(type, entry), { once: true });
      }
    }

    removeEventListener(type, listener) {
      type = String(type);
      const list = this.#listeners.get(type);
      const entry = list && list.find((e) => !e.handler && e.listener === listener);
      if (entry) this.#unlist(type, entry);
    }

    dispatchEvent(event) {
      if (!isObject(event) || typeof event.type !== "string") {
        throw new TypeError("dispatchEvent: the event must be an object with a type");
      }
      this.#fire(event);
      return !event.defaultPrevented;
    }

    #list(type) {
      let list = this.#listeners.get(type);
      if (list === undefined) {
        list = [];
        this.#listeners.set(type, list);
      }
      return list;
    }

    #unlist(type, entry) {
      entry.removed = true;
      const list = this.#listeners.get(type);
      const at = list ? list.indexOf(entry) : -1;
      if (at >= 0) list.splice(at, 1);
    }

    #handler(type) {
      const entry = this.#handlers.get(type);
      return entry === undefined ? null : entry.listener;
    }

    // A handler keeps the place in the listener list it got when first set, as in browsers.
    #setHandler(type, value) {
      const entry = this.#handlers.get(type);
      if (typeof value !== "function") {
        if (entry !== undefined) {
          this.#handlers.delete(type);
          this.#unlist(type, entry);
        }
        return;
      }
      if (entry !== undefined) {
        entry.listener = value;
        return;
      }
      const fresh = { listener: value, once: false, handler: true, removed: false };
      this.#handlers.set(type, fresh);
      this.#list(type).push(fresh);
    }

    // Calls the listeners of `event`; whether there was any.
    #fire(event) {
      const list = this.#listeners.get(event.type);
      if (list === undefined || list.length === 0) return false;
      for (const entry of list.slice()) {
        if (entry.removed) continue;
        if (entry.once) this.#unlist(event.type, entry);
        try {
          const listener = entry.listener;
          const result = typeof listener === "function" ? listener.call(this, event) : listener.handleEvent(event);
          if (isObject(result) && typeof result.then === "function") {
            result.then(undefined, (error) => host.failed(event.type, error));
          }
        } catch (error) {
          host.failed(event.type, error);
        }
      }
      return true;
    }

    #receive(kind, a, b, c) {
      if (kind === "open") {
        if (this.#state !== CONNECTING) return;
        this.#state = OPEN;
        this.#protocol = a;
        this.#fire(makeEvent("open", this, {}));
      } else if (kind === "message") {
        if (this.#state !== OPEN) return;
        this.#fire(makeEvent("message", this, { data: a, origin: this.#handle.origin, lastEventId: "" }));
      } else if (kind === "error") {
        if (!this.#fire(makeErrorEvent(this, a))) host.unheard(a);
      } else if (kind === "close") {
        this.#state = CLOSED;
        this.#fire(makeEvent("close", this, { code: a, reason: b, wasClean: c }));
      }
    }
  }
  for (const [name, value] of [["CONNECTING", CONNECTING], ["OPEN", OPEN], ["CLOSING", CLOSING], ["CLOSED", CLOSED]]) {
    Object.defineProperty(WebSocket, name, { value, enumerable: true });
    Object.defineProperty(WebSocket.prototype, name, { value, enumerable: true });
  }
  return WebSocket;
})"#;

/// Installs the global `WebSocket`; its sockets belong to the runs of `run`.
pub fn install_websocket<'js>(
    ctx: &Ctx<'js>,
    globals: &Object<'js>,
    env: &WorkerEnv,
    run: &RunSignal,
) -> rquickjs::Result<()> {
    let mut options = rquickjs::context::EvalOptions::default();
    options.strict = true;
    options.filename = Some("<stels:websocket>".to_string());
    let factory: Function<'js> = ctx.eval_with_options(WEBSOCKET_PRELUDE, options)?;

    let opener = Opener {
        policy: env.websocket,
        fetch: env.fetch.clone(),
        run: run.clone(),
        open: Arc::new(AtomicUsize::new(0)),
    };
    let host = Object::new(ctx.clone())?;
    host.set(
        "open",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, url: String, protocols: Vec<String>, deliver: Function<'js>| {
                opener.open(&ctx, &url, protocols, deliver)
            },
        )?,
    )?;
    let log = env.log.clone();
    host.set(
        "failed",
        Func::from(move |ctx: Ctx<'js>, kind: String, error: Value<'js>| {
            let error = format_args(&ctx, &[error]);
            log.log(
                LogLevel::Error,
                &format!("WebSocket {kind} listener failed: {error}"),
            );
        }),
    )?;
    let log = env.log.clone();
    host.set(
        "unheard",
        Func::from(move |message: String| log.log(LogLevel::Warn, &message)),
    )?;
    host.set("maxBytes", env.websocket.max_message_bytes)?;
    let class: Function<'js> = factory.call((host,))?;
    globals.set("WebSocket", class)
}

/// What the native `open` needs: the limits, and the sockets this worker holds.
#[derive(Clone)]
struct Opener {
    /// The worker's socket limits.
    policy: WebSocketPolicy,
    /// The hosts it may reach, and the connection's time limit.
    fetch: FetchPolicy,
    /// The run in progress, whose stop and end close its sockets.
    run: RunSignal,
    /// Sockets of this worker whose connection is not gone yet.
    open: Arc<AtomicUsize>,
}

/// A script's mistake or a limit, thrown by the constructor as a `DOMException`.
#[derive(Debug)]
struct Refusal {
    /// The exception's name.
    name: &'static str,
    /// Its message.
    message: String,
}

impl Refusal {
    fn syntax(message: String) -> Refusal {
        Refusal {
            name: "SyntaxError",
            message,
        }
    }
}

impl Opener {
    /// Starts a connection; returns its handle, or `{error, message}` for the prelude to throw.
    fn open<'js>(
        &self,
        ctx: &Ctx<'js>,
        url: &str,
        protocols: Vec<String>,
        deliver: Function<'js>,
    ) -> rquickjs::Result<Object<'js>> {
        match self.start(ctx, url, protocols, deliver) {
            Ok(handle) => Ok(handle),
            Err(refusal) => {
                let error = Object::new(ctx.clone())?;
                error.set("error", refusal.name)?;
                error.set("message", refusal.message)?;
                Ok(error)
            }
        }
    }

    fn start<'js>(
        &self,
        ctx: &Ctx<'js>,
        url: &str,
        protocols: Vec<String>,
        deliver: Function<'js>,
    ) -> Result<Object<'js>, Refusal> {
        let url = parse_url(url)?;
        check_protocols(&protocols)?;
        let slot = OpenSlot::take(&self.open, self.policy.max_per_worker).ok_or_else(|| Refusal {
            name: "QuotaExceededError",
            message: format!(
                "too many open sockets: a worker may hold {} at once (--script-websockets)",
                self.policy.max_per_worker
            ),
        })?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Refusal {
            name: "NotSupportedError",
            message: "no network runtime to connect from".to_string(),
        })?;
        let internal = |error: rquickjs::Error| Refusal {
            name: "OperationError",
            message: error.to_string(),
        };

        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        let scope = self.run.scope_token();
        let connection = Connection {
            url: url.clone(),
            protocols,
            fetch: self.fetch.clone(),
            policy: self.policy,
            events: events_tx,
            commands: Some(commands_rx),
            shared: shared.clone(),
            stop: self.run.stop_token(),
            scope: scope.clone(),
            slot: Some(slot),
        };
        let handle = SocketHandle {
            shared: shared.clone(),
            commands: commands_tx,
            policy: self.policy,
            scope: scope.clone(),
        };
        let object = handle.into_object(ctx, &url).map_err(internal)?;
        runtime.spawn(connection.run());
        ctx.spawn(pump(ctx.clone(), deliver, events_rx, shared, scope));
        Ok(object)
    }
}

/// `url` as a WebSocket URL, or the browser's `SyntaxError`.
fn parse_url(url: &str) -> Result<Url, Refusal> {
    let parsed = Url::parse(url).map_err(|e| Refusal::syntax(format!("invalid URL {url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "ws" | "wss") {
        return Err(Refusal::syntax(format!(
            "unsupported URL scheme \"{}:\" in {url:?}: only ws: and wss: are allowed",
            parsed.scheme()
        )));
    }
    if parsed.fragment().is_some() {
        return Err(Refusal::syntax(format!(
            "the URL {url:?} has a fragment, which is not allowed"
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(Refusal::syntax(format!("the URL {url:?} has no host")));
    }
    Ok(parsed)
}

/// Protocols must be distinct HTTP tokens.
fn check_protocols(protocols: &[String]) -> Result<(), Refusal> {
    for (at, protocol) in protocols.iter().enumerate() {
        let token = !protocol.is_empty()
            && protocol
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(Refusal::syntax(format!("invalid protocol {protocol:?}")));
        }
        if protocols.iter().take(at).any(|earlier| earlier == protocol) {
            return Err(Refusal::syntax(format!("protocol {protocol:?} is listed twice")));
        }
    }
    Ok(())
}

/// One of a worker's sockets, counted until dropped.
struct OpenSlot(Arc<AtomicUsize>);

impl OpenSlot {
    /// A slot, unless `max` are taken.
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<OpenSlot> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| OpenSlot(open.clone()))
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// State of one socket shared by its connection task and the script's handle.
#[derive(Default)]
struct Shared {
    /// Bytes passed to `send` and not yet written (`bufferedAmount`).
    buffered: AtomicUsize,
    /// `send`s the writer has not taken yet (bounded like inbound messages).
    outbound: AtomicUsize,
    /// Messages received and not yet handed to the script.
    inbound: AtomicUsize,
    /// Their bytes.
    inbound_bytes: AtomicUsize,
    /// Cancelled to fail the connection at once, for the reason in `failure`.
    abort: CancellationToken,
    /// Close code and reason of the first failure.
    failure: Mutex<Option<(u16, String)>>,
}

impl Shared {
    /// Fails the connection with `code` and `reason` (the first failure wins).
    fn fail(&self, code: u16, reason: String) {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert((code, reason));
        self.abort.cancel();
    }

    fn failure(&self) -> (u16, String) {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or((ABNORMAL, String::new()))
    }
}

/// What the script asked of its connection, in order.
enum Command {
    /// A message and its size in bytes.
    Send(Message, usize),
    /// Start the closing handshake (no frame: no status code).
    Close(Option<CloseFrame>),
}

/// What the connection tells the script.
enum SocketEvent {
    /// Connected; the protocol the server chose.
    Open(String),
    /// A text message.
    Text(tungstenite::Utf8Bytes),
    /// A binary message.
    Binary(bytes::Bytes),
    /// A failure, described.
    Error(String),
    /// The connection is gone.
    Close {
        /// The close code the server sent, or 1005 (none) / 1006 (no closing handshake).
        code: u16,
        /// The server's reason, or why it was failed here.
        reason: String,
        /// Whether the closing handshake completed (`wasClean`).
        clean: bool,
    },
}

impl SocketEvent {
    /// The size of a message; `None` for the other events.
    fn message_len(&self) -> Option<usize> {
        match self {
            SocketEvent::Text(text) => Some(text.len()),
            SocketEvent::Binary(bytes) => Some(bytes.len()),
            _ => None,
        }
    }
}

/// The native side of one `WebSocket` object.
struct SocketHandle {
    /// Counters and failures shared with the connection.
    shared: Arc<Shared>,
    /// To the connection's writer, in order.
    commands: mpsc::UnboundedSender<Command>,
    /// The queue and message limits `send` applies.
    policy: WebSocketPolicy,
    /// Cancelled when the run that opened the socket ends.
    scope: CancellationToken,
}

impl SocketHandle {
    /// `{url, origin, sendText, sendBinary, close, buffered, runOver}`.
    fn into_object<'js>(self, ctx: &Ctx<'js>, url: &Url) -> rquickjs::Result<Object<'js>> {
        let object = Object::new(ctx.clone())?;
        object.set("url", url.as_str())?;
        object.set("origin", url.origin().ascii_serialization())?;
        let handle = Arc::new(self);
        let h = handle.clone();
        object.set(
            "sendText",
            Func::from(move |ctx: Ctx<'js>, text: String| {
                let bytes = text.len();
                h.send(&ctx, Message::text(text), bytes)
            }),
        )?;
        let h = handle.clone();
        object.set(
            "sendBinary",
            Func::from(move |ctx: Ctx<'js>, latin1: String| {
                let bytes: Vec<u8> = latin1.chars().map(|c| u8::try_from(c).unwrap_or(b'?')).collect();
                let len = bytes.len();
                h.send(&ctx, Message::binary(bytes), len)
            }),
        )?;
        let h = handle.clone();
        object.set(
            "close",
            Func::from(move |code: i32, reason: String, connecting: bool| h.close(code, reason, connecting)),
        )?;
        let h = handle.clone();
        object.set(
            "buffered",
            Func::from(move || h.shared.buffered.load(Ordering::Acquire) as f64),
        )?;
        let h = handle;
        object.set("runOver", Func::from(move || h.scope.is_cancelled()))?;
        Ok(object)
    }

    fn send(&self, ctx: &Ctx<'_>, message: Message, bytes: usize) -> rquickjs::Result<()> {
        let max = self.policy.max_message_bytes;
        if max > 0 && bytes > max {
            return Err(Exception::throw_range(
                ctx,
                &format!("send: a message of {bytes} bytes is over the limit of {max} bytes"),
            ));
        }
        let queued = self.shared.outbound.load(Ordering::Acquire);
        let limit = self.policy.max_queued_messages;
        if limit > 0 && queued >= limit {
            self.shared.fail(
                POLICY_VIOLATION,
                format!("send queue full: {queued} messages not yet written"),
            );
            return Ok(());
        }
        self.shared.outbound.fetch_add(1, Ordering::AcqRel);
        self.shared.buffered.fetch_add(bytes, Ordering::AcqRel);
        if self.commands.send(Command::Send(message, bytes)).is_err() {
            // The connection is gone already; its close event is on its way.
            self.shared.outbound.fetch_sub(1, Ordering::AcqRel);
            self.shared.buffered.fetch_sub(bytes, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Starts the closing handshake; while the script still sees `CONNECTING` (the connection
    /// may be established already), fails the connection instead, as browsers do.
    fn close(&self, code: i32, reason: String, connecting: bool) {
        if connecting {
            self.shared.fail(
                ABNORMAL,
                "the socket was closed before the connection was established".to_string(),
            );
            return;
        }
        let frame = u16::try_from(code).ok().map(|code| CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        });
        let _ = self.commands.send(Command::Close(frame));
    }
}

/// Hands the socket's events to the script, inside the run that polls the isolate. Ends with
/// the connection, or at the first event after the run that opened the socket has ended (that
/// run's script never hears of it again).
async fn pump<'js>(
    ctx: Ctx<'js>,
    deliver: Function<'js>,
    mut events: mpsc::UnboundedReceiver<SocketEvent>,
    shared: Arc<Shared>,
    scope: CancellationToken,
) {
    while let Some(event) = events.recv().await {
        if scope.is_cancelled() {
            break;
        }
        if let Some(len) = event.message_len() {
            shared.inbound.fetch_sub(1, Ordering::AcqRel);
            shared.inbound_bytes.fetch_sub(len, Ordering::AcqRel);
        }
        if let Err(error) = deliver_event(&ctx, &deliver, event) {
            // An interrupted or out-of-memory listener: the run fails on its own.
            if matches!(error, rquickjs::Error::Exception) {
                drop(ctx.catch());
            }
        }
    }
}

fn deliver_event<'js>(ctx: &Ctx<'js>, deliver: &Function<'js>, event: SocketEvent) -> rquickjs::Result<()> {
    match event {
        SocketEvent::Open(protocol) => deliver.call(("open", protocol)),
        SocketEvent::Text(text) => {
            let text = rquickjs::String::from_str(ctx.clone(), text.as_str())?;
            deliver.call(("message", text))
        }
        SocketEvent::Binary(bytes) => {
            let buffer = ArrayBuffer::new_copy(ctx.clone(), &bytes)?;
            deliver.call(("message", buffer))
        }
        SocketEvent::Error(message) => deliver.call(("error", message)),
        SocketEvent::Close { code, reason, clean } => deliver.call(("close", code, reason, clean)),
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One socket's connection: a tokio task from the handshake to the end of the TCP connection.
struct Connection {
    /// Where to connect (checked `ws:`/`wss:` with a host).
    url: Url,
    /// Offered in the handshake.
    protocols: Vec<String>,
    /// The hosts it may reach and the time the connection may take.
    fetch: FetchPolicy,
    /// The queue and message limits.
    policy: WebSocketPolicy,
    /// To the script's pump; closed when the pump has gone (run over, isolate dropped).
    events: mpsc::UnboundedSender<SocketEvent>,
    /// From the script's handle; the writer takes it once connected.
    commands: Option<mpsc::UnboundedReceiver<Command>>,
    /// Counters and failures shared with the script's handle.
    shared: Arc<Shared>,
    /// The opening run's stop: close with 1001, the script still hears of it.
    stop: CancellationToken,
    /// The opening run's end: close with 1001 and tell nobody.
    scope: CancellationToken,
    /// Released just before the final `close` event, so a script reconnecting from `onclose`
    /// finds its slot free.
    slot: Option<OpenSlot>,
}

impl Connection {
    async fn run(mut self) {
        let attempt = connect(&self.url, &self.protocols, &self.fetch, self.policy);
        let outcome = tokio::select! {
            biased;
            () = self.events.closed() => return,
            () = self.scope.cancelled() => return,
            () = self.shared.abort.cancelled() => Err(self.shared.failure().1),
            () = self.stop.cancelled() => Err("the worker is stopping".to_string()),
            result = attempt => result,
        };
        match outcome {
            Ok((socket, protocol)) => {
                let _ = self.events.send(SocketEvent::Open(protocol));
                self.serve(socket).await;
            }
            Err(reason) => {
                let message = format!("WebSocket connection to {} failed: {reason}", self.url);
                self.finish(Some(message), ABNORMAL, String::new(), false);
            }
        }
    }

    /// Reports the end: an optional `error`, then `close`.
    fn finish(&mut self, error: Option<String>, code: u16, reason: String, clean: bool) {
        self.slot = None;
        if let Some(message) = error {
            let _ = self.events.send(SocketEvent::Error(message));
        }
        let _ = self.events.send(SocketEvent::Close { code, reason, clean });
    }

    /// Reads and writes until the connection is gone.
    async fn serve(mut self, socket: Socket) {
        let (sink, stream) = socket.split();
        let (urgent_tx, urgent_rx) = mpsc::unbounded_channel();
        let sent_close = CancellationToken::new();
        let Some(commands) = self.commands.take() else {
            return;
        };
        let writer = write(sink, commands, urgent_rx, self.shared.clone(), sent_close.clone());
        let reader = self.read(stream, urgent_tx, sent_close);
        tokio::join!(reader, writer);
    }

    /// The reading half, which also decides when the connection ends.
    async fn read(
        &mut self,
        mut stream: SplitStream<Socket>,
        urgent: mpsc::UnboundedSender<CloseFrame>,
        sent_close: CancellationToken,
    ) {
        let close_frame = |code: u16, reason: &str| CloseFrame {
            code: CloseCode::from(code),
            reason: truncated(reason).into(),
        };
        // Set once closing has started: the server must finish the handshake by then.
        let mut deadline: Option<tokio::time::Instant> = None;
        // The close frame the server sent, if any.
        let mut received: Option<(u16, String)> = None;
        let max_queued = self.policy.max_queued_messages;
        loop {
            let closing = deadline.is_some();
            tokio::select! {
                biased;
                () = self.shared.abort.cancelled() => {
                    let (code, reason) = self.shared.failure();
                    if code == ABNORMAL {
                        // Failed before the script saw it open: drop it without a close frame.
                        let message = format!("WebSocket connection to {} failed: {reason}", self.url);
                        self.finish(Some(message), ABNORMAL, String::new(), false);
                    } else {
                        let _ = urgent.send(close_frame(code, &reason));
                        let message = format!("WebSocket {}: {reason}", self.url);
                        self.finish(Some(message), code, truncated(&reason), false);
                    }
                    return;
                }
                () = self.stop.cancelled(), if !closing => {
                    let _ = urgent.send(close_frame(GOING_AWAY, "the worker is stopping"));
                    deadline = Some(tokio::time::Instant::now() + CLOSE_TIMEOUT);
                }
                () = self.scope.cancelled(), if !closing => {
                    let _ = urgent.send(close_frame(GOING_AWAY, "the worker's run ended"));
                    deadline = Some(tokio::time::Instant::now() + CLOSE_TIMEOUT);
                }
                () = self.events.closed(), if !closing => {
                    let _ = urgent.send(close_frame(GOING_AWAY, "the worker is gone"));
                    deadline = Some(tokio::time::Instant::now() + CLOSE_TIMEOUT);
                }
                () = sent_close.cancelled(), if !closing => {
                    deadline = Some(tokio::time::Instant::now() + CLOSE_TIMEOUT);
                }
                () = sleep_until(deadline) => {
                    let (code, reason, clean) = match received.take() {
                        Some((code, reason)) => (code, reason, true),
                        None => (ABNORMAL, String::new(), false),
                    };
                    self.finish(None, code, reason, clean);
                    return;
                }
                message = stream.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        if !self.queue(SocketEvent::Text(text), max_queued, &urgent) {
                            return;
                        }
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        if !self.queue(SocketEvent::Binary(bytes), max_queued, &urgent) {
                            return;
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        received = Some(frame.map_or((NO_STATUS, String::new()), |f| {
                            (u16::from(f.code), f.reason.to_string())
                        }));
                        deadline.get_or_insert_with(|| tokio::time::Instant::now() + CLOSE_TIMEOUT);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(tungstenite::Error::Capacity(error))) => {
                        let reason = format!("message too big: {error}");
                        let _ = urgent.send(close_frame(MESSAGE_TOO_BIG, &reason));
                        self.finish(
                            Some(format!("WebSocket {}: {reason}", self.url)),
                            MESSAGE_TOO_BIG,
                            truncated(&reason),
                            false,
                        );
                        return;
                    }
                    Some(Err(error)) => {
                        let message = format!("WebSocket {}: {}", self.url, describe(&error));
                        match received.take() {
                            // The server closed and then dropped the connection: done.
                            Some((code, reason)) => self.finish(None, code, reason, true),
                            None => self.finish(Some(message), ABNORMAL, String::new(), false),
                        }
                        return;
                    }
                    None => {
                        let (code, reason) = received.take().unwrap_or((NO_STATUS, String::new()));
                        self.finish(None, code, reason, true);
                        return;
                    }
                },
            }
        }
    }

    /// Queues an inbound message for the script, or fails the socket when the queue is full;
    /// whether the connection goes on.
    fn queue(
        &mut self,
        event: SocketEvent,
        max_queued: usize,
        urgent: &mpsc::UnboundedSender<CloseFrame>,
    ) -> bool {
        let queued = self.shared.inbound.load(Ordering::Acquire);
        let len = event.message_len().unwrap_or(0);
        let queued_bytes = self.shared.inbound_bytes.load(Ordering::Acquire);
        let too_many = max_queued > 0 && queued >= max_queued;
        let too_big = self.policy.max_queued_bytes > 0 && queued_bytes + len > self.policy.max_queued_bytes;
        if too_many || too_big {
            let reason = if too_many {
                format!("inbound queue full: {queued} messages not yet read by the script")
            } else {
                format!("inbound queue full: {queued_bytes} bytes not yet read by the script")
            };
            let _ = urgent.send(CloseFrame {
                code: CloseCode::from(POLICY_VIOLATION),
                reason: truncated(&reason).into(),
            });
            self.finish(
                Some(format!("WebSocket {}: {reason}", self.url)),
                POLICY_VIOLATION,
                truncated(&reason),
                false,
            );
            return false;
        }
        self.shared.inbound.fetch_add(1, Ordering::AcqRel);
        self.shared.inbound_bytes.fetch_add(len, Ordering::AcqRel);
        let _ = self.events.send(event);
        true
    }
}

/// Completes at `deadline`; never without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// `reason` cut to what a close frame carries, at a character boundary.
fn truncated(reason: &str) -> String {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.get(..end).unwrap_or_default().to_string()
}

/// The writing half: the script's messages in order, or at once a close frame from the reader
/// (`urgent`). Ends after a close frame, or when the reader has ended.
async fn write(
    mut sink: SplitSink<Socket, Message>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut urgent: mpsc::UnboundedReceiver<CloseFrame>,
    shared: Arc<Shared>,
    sent_close: CancellationToken,
) {
    loop {
        let command = tokio::select! {
            biased;
            frame = urgent.recv() => return send_close(&mut sink, frame).await,
            command = commands.recv() => command,
        };
        match command {
            Some(Command::Send(message, bytes)) => {
                shared.outbound.fetch_sub(1, Ordering::AcqRel);
                let sent = tokio::select! {
                    biased;
                    frame = urgent.recv() => {
                        shared.buffered.fetch_sub(bytes, Ordering::AcqRel);
                        return send_close(&mut sink, frame).await;
                    }
                    sent = sink.send(message) => sent,
                };
                shared.buffered.fetch_sub(bytes, Ordering::AcqRel);
                if sent.is_err() {
                    // The reader sees the failure and ends the connection.
                    let _ = urgent.recv().await;
                    return;
                }
            }
            Some(Command::Close(frame)) => {
                tokio::select! {
                    biased;
                    frame = urgent.recv() => return send_close(&mut sink, frame).await,
                    _ = sink.send(Message::Close(frame)) => {}
                };
                sent_close.cancel();
                // Nothing may follow a close frame; wait for the reader to end.
                while urgent.recv().await.is_some() {}
                return;
            }
            // The script's side is gone; the reader closes the connection.
            None => return send_close(&mut sink, urgent.recv().await).await,
        }
    }
}

/// Sends `frame` (if the reader asked for one), giving up after [`CLOSE_TIMEOUT`].
async fn send_close(sink: &mut SplitSink<Socket, Message>, frame: Option<CloseFrame>) {
    if let Some(frame) = frame {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
    }
}

/// Connects to `url` as `fetch` would reach its host, then makes the WebSocket handshake, all
/// within the fetch timeout; the socket and the protocol the server chose.
async fn connect(
    url: &Url,
    protocols: &[String],
    fetch: &FetchPolicy,
    policy: WebSocketPolicy,
) -> Result<(Socket, String), String> {
    let attempt = handshake(url, protocols, fetch, policy);
    if fetch.timeout.is_zero() {
        return attempt.await;
    }
    tokio::time::timeout(fetch.timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("timed out after {} ms", fetch.timeout.as_millis())))
}

async fn handshake(
    url: &Url,
    protocols: &[String],
    fetch: &FetchPolicy,
    policy: WebSocketPolicy,
) -> Result<(Socket, String), String> {
    let addresses = resolve(url, fetch).await?;
    let tcp = connect_tcp(&addresses).await?;
    let _ = tcp.set_nodelay(true);
    let mut request = url.as_str().into_client_request().map_err(|e| describe(&e))?;
    let headers = request.headers_mut();
    if !protocols.is_empty() {
        let offered = HeaderValue::from_str(&protocols.join(", ")).map_err(|e| e.to_string())?;
        headers.insert("sec-websocket-protocol", offered);
    }
    headers.insert("user-agent", HeaderValue::from_static(USER_AGENT));
    let limit = (policy.max_message_bytes > 0).then_some(policy.max_message_bytes);
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
        .max_message_size(limit)
        .max_frame_size(limit);
    let connector = match url.scheme() {
        "wss" => Connector::Rustls(tls_config()?),
        _ => Connector::Plain,
    };
    let (socket, response) =
        tokio_tungstenite::client_async_tls_with_config(request, tcp, Some(config), Some(connector))
            .await
            .map_err(|e| describe(&e))?;
    let protocol = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok((socket, protocol))
}

/// The addresses `url` may be reached at under `fetch`'s rules (S-10, S-21): the host must be
/// allowed, and non-public addresses only when it is named exactly.
async fn resolve(url: &Url, fetch: &FetchPolicy) -> Result<Vec<SocketAddr>, String> {
    let host = url.host_str().unwrap_or_default();
    if !host_allowed(fetch, host) {
        return Err(format!("host not allowed: {host}"));
    }
    let named = named_exactly(fetch, host);
    let port = url.port_or_known_default().unwrap_or(80);
    let bare = normalized_host(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        if let Some(class) = refused_class(ip).filter(|_| !named) {
            return Err(format!(
                "refused: {host} is a {class} address; scripts may reach it only when {host} is named in --fetch-allow"
            ));
        }
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((bare.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    if named {
        return Ok(resolved);
    }
    let refused = resolved
        .iter()
        .find_map(|addr| refused_class(addr.ip()).map(|class| (addr.ip(), class)));
    let public: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|addr| refused_class(addr.ip()).is_none())
        .collect();
    match (public.is_empty(), refused) {
        (true, Some((ip, class))) => Err(format!(
            "refused: {host} resolves to {ip}, a {class} address; scripts may reach it only when {host} is named in --fetch-allow"
        )),
        (true, None) => Err(format!("cannot resolve {host}: no address")),
        _ => Ok(public),
    }
}

/// The first of `addresses` that accepts a TCP connection.
async fn connect_tcp(addresses: &[SocketAddr]) -> Result<TcpStream, String> {
    let mut last = String::from("no address");
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last = format!("connection to {address} failed: {error}"),
        }
    }
    Err(last)
}

/// TLS for `wss:`: the public web roots, as `fetch` trusts.
fn tls_config() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            ClientConfig::builder_with_provider(Arc::new(default_provider()))
                .with_safe_default_protocol_versions()
                .map(|builder| Arc::new(builder.with_root_certificates(roots).with_no_client_auth()))
                .map_err(|e| format!("TLS unavailable: {e}"))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(result: Result<Url, Refusal>) -> (&'static str, String) {
        let refusal = result.expect_err("refused");
        (refusal.name, refusal.message)
    }

    #[test]
    fn only_ws_urls_with_a_host_and_no_fragment() {
        assert_eq!(
            parse_url("ws://example.com").unwrap().as_str(),
            "ws://example.com/"
        );
        assert_eq!(
            parse_url("WSS://Example.COM:443/a?b=c").unwrap().as_str(),
            "wss://example.com/a?b=c"
        );
        assert_eq!(parse_url("ws://[::1]:9/").unwrap().host_str(), Some("[::1]"));
        for (url, start) in [
            ("not a url", "invalid URL \"not a url\""),
            ("/relative", "invalid URL"),
            ("http://example.com/", "unsupported URL scheme \"http:\""),
            ("https://example.com/", "unsupported URL scheme \"https:\""),
            (
                "ws://example.com/#top",
                "the URL \"ws://example.com/#top\" has a fragment",
            ),
            ("ws://", "invalid URL"),
        ] {
            let (name, message) = refusal(parse_url(url));
            assert_eq!(name, "SyntaxError", "{url}");
            assert!(message.starts_with(start), "{url}: {message}");
        }
    }

    #[test]
    fn protocols_are_distinct_tokens() {
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_protocols(&[]).is_ok());
        assert!(check_protocols(&list(&["webfix", "chat.v2", "a!#$%&'*+-.^_`|~z"])).is_ok());
        for bad in [&["a b"][..], &[""], &["a,b"], &["é"], &["x", "y", "x"]] {
            let refused = check_protocols(&list(bad)).expect_err("refused");
            assert_eq!(refused.name, "SyntaxError", "{bad:?}");
        }
        // Protocol names are case-sensitive: both may be offered.
        assert!(check_protocols(&list(&["Chat", "chat"])).is_ok());
    }

    #[test]
    fn reasons_are_cut_at_a_character_boundary() {
        assert_eq!(truncated("short"), "short");
        let long = "é".repeat(70);
        let cut = truncated(&long);
        assert!(cut.len() <= MAX_REASON_BYTES);
        assert_eq!(cut, "é".repeat(61));
        assert_eq!(truncated(&"x".repeat(200)).len(), MAX_REASON_BYTES);
    }

    #[test]
    fn slots_count_until_dropped() {
        let open = Arc::new(AtomicUsize::new(0));
        let a = OpenSlot::take(&open, 2).unwrap();
        let b = OpenSlot::take(&open, 2).unwrap();
        assert!(OpenSlot::take(&open, 2).is_none());
        drop(a);
        let c = OpenSlot::take(&open, 2).unwrap();
        assert_eq!(open.load(Ordering::Acquire), 2);
        drop((b, c));
        assert_eq!(open.load(Ordering::Acquire), 0);
        assert!(OpenSlot::take(&open, 0).is_none(), "0 sockets: WebSocket is off");
    }

    #[test]
    fn the_first_failure_wins() {
        let shared = Shared::default();
        assert_eq!(shared.failure(), (ABNORMAL, String::new()));
        shared.fail(POLICY_VIOLATION, "send queue full".into());
        shared.fail(MESSAGE_TOO_BIG, "later".into());
        assert!(shared.abort.is_cancelled());
        assert_eq!(
            shared.failure(),
            (POLICY_VIOLATION, "send queue full".to_string())
        );
    }
}
