//! The web and Deno basics scripts written for Deno expect (S-15): `structuredClone`,
//! `TextEncoder`/`TextDecoder` (UTF-8 only), `URL`/`URLSearchParams` (WHATWG, through the `url`
//! crate), `crypto.randomUUID()`/`crypto.getRandomValues()`, `Event`, `EventTarget`,
//! `AbortController`/`AbortSignal` (with `timeout` and `any`), `Headers`/`Request`/`Response`
//! as far as `fetch` needs them, timers (`setTimeout`, `setInterval` and their `clear…`), and
//! `Deno` with `memoryUsage()`, `loadavg()` and `env.get(name)` (this worker's secrets only;
//! the node's own environment is never visible). Any other `Deno.X` throws a `TypeError` that
//! names it (S-13).
//!
//! QuickJS-ng itself brings `atob`/`btoa`, `Array.fromAsync`, `queueMicrotask`, `performance`
//! and `DOMException`.
//!
//! The classes are JavaScript ([`WEB_PRELUDE`]) over a few native helpers; they install on
//! first use (see [`super::install_on_first_use`]), so a worker that never touches them pays
//! nothing for them.
//!
//! Bounds: `crypto.getRandomValues` fills at most 65,536 bytes a call (as browsers);
//! timers pending at once in one worker at most [`MAX_TIMERS`]; a timer never outlives its run
//! (a run's end or stop drops them all, so a callback never fires into the next run).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rquickjs::function::Opt;
use rquickjs::prelude::{Async, Func, Rest};
use rquickjs::{Ctx, Function, Object, TypedArray, Value};

use super::RunSignal;
use super::logger::format_args;
use crate::runtime::engine::{LogLevel, WorkerEnv};

/// The classes, built over the native helpers.
const WEB_PRELUDE: &str = include_str!("web.js");

/// Timers one worker may have pending at once; `setTimeout` past it throws a `RangeError`.
pub const MAX_TIMERS: usize = 10_000;

/// Most bytes `crypto.getRandomValues` fills at once (the Web Crypto limit).
const MAX_RANDOM_BYTES: usize = 65_536;

/// The globals this module defines, each installing all of them on first use.
pub const WEB_GLOBALS: &[&str] = &[
    "structuredClone",
    "TextEncoder",
    "TextDecoder",
    "URL",
    "URLSearchParams",
    "crypto",
    "Event",
    "EventTarget",
    "AbortController",
    "AbortSignal",
    "Headers",
    "Request",
    "Response",
];

/// The timer globals.
pub const TIMER_GLOBALS: &[&str] = &["setTimeout", "setInterval", "clearTimeout", "clearInterval"];

/// Installs the web classes as globals of `ctx`.
pub fn install_web<'js>(
    ctx: &Ctx<'js>,
    globals: &Object<'js>,
    env: &WorkerEnv,
    run: &RunSignal,
) -> rquickjs::Result<()> {
    let native = Object::new(ctx.clone())?;
    native.set("utf8Encode", Func::from(utf8_encode))?;
    native.set(
        "utf8Decode",
        Func::from(|ctx: Ctx<'js>, latin1: String, fatal: bool, stream: bool| {
            let (text, left) = utf8_decode(&ctx, &latin1, fatal, stream)?;
            let pair = rquickjs::Array::new(ctx)?;
            pair.set(0, text)?;
            pair.set(1, left)?;
            rquickjs::Result::Ok(pair)
        }),
    )?;
    native.set("urlParse", Func::from(url_parse))?;
    native.set("urlSet", Func::from(url_set))?;
    native.set("randomUUID", Func::from(|| uuid::Uuid::new_v4().to_string()))?;
    native.set("randomBytes", Func::from(random_bytes))?;
    native.set("sleep", stop_aware_sleep(ctx, run)?)?;
    native.set(
        "listenerFailed",
        failure_logger(ctx, env, "event listener failed")?,
    )?;
    export_globals(ctx, globals, native, WEB_PRELUDE, "<stels:web>", WEB_GLOBALS)
}

/// A native `(error) => void` that writes `what: <error>` to the worker's log at ERROR.
fn failure_logger<'js>(
    ctx: &Ctx<'js>,
    env: &WorkerEnv,
    what: &'static str,
) -> rquickjs::Result<Function<'js>> {
    let log = env.log.clone();
    Function::new(ctx.clone(), move |ctx: Ctx<'js>, error: Rest<Value<'js>>| {
        log.log(
            LogLevel::Error,
            &format!("{what}: {}", format_args(&ctx, &error.0)),
        );
    })
}

/// Evaluates `prelude` (named `file` in stacks), calls it with `native`, and sets each of
/// `names` of what it returns as a global.
fn export_globals<'js>(
    ctx: &Ctx<'js>,
    globals: &Object<'js>,
    native: Object<'js>,
    prelude: &str,
    file: &str,
    names: &[&str],
) -> rquickjs::Result<()> {
    let factory: Function = eval_prelude(ctx, prelude, file)?;
    let exports: Object = factory.call((native,))?;
    for &name in names {
        let value: Value = exports.get(name)?;
        globals.set(name, value)?;
    }
    Ok(())
}

/// Timers as in browsers, within one run: pending callbacks are dropped when the run ends.
const TIMER_PRELUDE: &str = r#"(function (native) {
  "use strict";
  const pending = new Set();
  let next = 1;
  function schedule(repeat, callback, ms, args) {
    if (typeof callback !== "function") {
      throw new TypeError("setTimeout: the callback must be a function (strings are not evaluated)");
    }
    if (pending.size >= native.max) {
      throw new RangeError(`setTimeout: ${native.max} timers are pending already`);
    }
    const id = next++;
    const delay = Math.max(0, Number(ms) || 0);
    pending.add(id);
    (async () => {
      do {
        if (!(await native.sleep(delay)) || !pending.has(id)) {
          pending.delete(id);
          return;
        }
        if (!repeat) pending.delete(id);
        try {
          callback(...args);
        } catch (error) {
          native.callbackFailed(error);
        }
      } while (repeat && pending.has(id));
    })();
    return id;
  }
  const clear = (id) => { pending.delete(Number(id)); };
  return {
    setTimeout: (callback, ms, ...args) => schedule(false, callback, ms, args),
    setInterval: (callback, ms, ...args) => schedule(true, callback, ms, args),
    clearTimeout: clear,
    clearInterval: clear,
  };
})"#;

/// Installs `setTimeout`, `setInterval`, `clearTimeout` and `clearInterval`.
pub fn install_timers<'js>(
    ctx: &Ctx<'js>,
    globals: &Object<'js>,
    env: &WorkerEnv,
    run: &RunSignal,
) -> rquickjs::Result<()> {
    let native = Object::new(ctx.clone())?;
    native.set("sleep", stop_aware_sleep(ctx, run)?)?;
    native.set("max", MAX_TIMERS)?;
    native.set(
        "callbackFailed",
        failure_logger(ctx, env, "timer callback failed")?,
    )?;
    export_globals(
        ctx,
        globals,
        native,
        TIMER_PRELUDE,
        "<stels:timers>",
        TIMER_GLOBALS,
    )
}

/// `Deno` with the few APIs a worker has; the rest throws, naming what is missing.
const DENO_PRELUDE: &str = r#"(function (native) {
  "use strict";
  const unavailable = (name, why) => () => {
    throw new TypeError(`Deno.${name} is not available on this node${why ? ` (${why})` : ""}`);
  };
  const secretsOnly = "a worker reads only its own secrets, set with 'heterogen secrets set'";
  const env = Object.freeze({
    get(name) {
      if (typeof name !== "string") throw new TypeError("Deno.env.get: the name must be a string");
      return native.envGet(name);
    },
    has(name) {
      return native.envGet(String(name)) !== undefined;
    },
    set: unavailable("env.set", secretsOnly),
    delete: unavailable("env.delete", secretsOnly),
    toObject: unavailable("env.toObject", secretsOnly),
  });
  const deno = Object.freeze({
    memoryUsage() {
      const heap = native.heapBytes();
      return { rss: heap, heapTotal: heap, heapUsed: heap, external: 0 };
    },
    loadavg() {
      return native.loadavg();
    },
    env,
    serve: unavailable("serve", "workers cannot listen for HTTP requests"),
  });
  return new Proxy(deno, {
    get(target, name) {
      if (typeof name === "symbol" || name in target) return target[name];
      unavailable(String(name))();
    },
  });
})"#;

/// Installs the global `Deno`.
pub fn install_deno<'js>(ctx: &Ctx<'js>, globals: &Object<'js>, env: &WorkerEnv) -> rquickjs::Result<()> {
    let native = Object::new(ctx.clone())?;
    let heap = env.heap_bytes.clone();
    native.set(
        "heapBytes",
        Func::from(move || heap.load(Ordering::Relaxed) as f64),
    )?;
    native.set("loadavg", Func::from(load_average))?;
    let secrets = Arc::clone(&env.secrets);
    native.set("envGet", Func::from(move |name: String| secrets.get(&name)))?;
    let factory: Function = eval_prelude(ctx, DENO_PRELUDE, "<stels:deno>")?;
    let deno: Value = factory.call((native,))?;
    globals.set("Deno", deno)
}

fn eval_prelude<'js>(ctx: &Ctx<'js>, source: &str, name: &str) -> rquickjs::Result<Function<'js>> {
    let mut options = rquickjs::context::EvalOptions::default();
    options.strict = true;
    options.filename = Some(name.to_string());
    ctx.eval_with_options(source, options)
}

/// `(ms) => Promise<boolean>`: true once `ms` passed, false when the run was asked to stop or
/// ended first (callers then give up instead of firing into a stopping run or the next one).
fn stop_aware_sleep<'js>(ctx: &Ctx<'js>, run: &RunSignal) -> rquickjs::Result<Function<'js>> {
    let signal = run.clone();
    Function::new(
        ctx.clone(),
        Async(move |ms: Opt<f64>| {
            let stop = signal.stop_token();
            let scope = signal.scope_token();
            let pause = super::lifecycle::sleep_duration(ms.0.unwrap_or(0.0));
            async move {
                let elapsed = tokio::select! {
                    () = tokio::time::sleep(pause) => true,
                    () = stop.cancelled() => false,
                    () = scope.cancelled() => false,
                };
                rquickjs::Result::Ok(elapsed)
            }
        }),
    )
}

fn utf8_encode<'js>(ctx: Ctx<'js>, text: String) -> rquickjs::Result<TypedArray<'js, u8>> {
    TypedArray::new(ctx, text.into_bytes())
}

/// `[text, bytesLeft]` of the bytes given as a string of code points 0–255 (reading a
/// typed array's memory from Rust needs `unsafe`, which this crate forbids): with `stream`, an
/// incomplete sequence at the end is left for the next call; otherwise, and for invalid
/// sequences, U+FFFD, or a `TypeError` when `fatal`.
fn utf8_decode(ctx: &Ctx<'_>, latin1: &str, fatal: bool, stream: bool) -> rquickjs::Result<(String, usize)> {
    let bytes: Vec<u8> = latin1
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(0))
        .collect();
    let mut rest = bytes.as_slice();
    let mut text = String::with_capacity(rest.len());
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                text.push_str(valid);
                return Ok((text, 0));
            }
            Err(error) => {
                let (valid, after) = rest.split_at(error.valid_up_to());
                text.push_str(std::str::from_utf8(valid).unwrap_or_default());
                match error.error_len() {
                    None if stream => return Ok((text, after.len())),
                    _ if fatal => {
                        return Err(rquickjs::Exception::throw_type(
                            ctx,
                            "TextDecoder.decode: the data is not valid UTF-8",
                        ));
                    }
                    None => {
                        text.push(char::REPLACEMENT_CHARACTER);
                        return Ok((text, 0));
                    }
                    Some(len) => {
                        text.push(char::REPLACEMENT_CHARACTER);
                        rest = after.get(len..).unwrap_or_default();
                    }
                }
            }
        }
    }
}

/// The URL's parts in the order the prelude reads them (`href`, `origin`, `protocol`,
/// `username`, `password`, `host`, `hostname`, `port`, `pathname`, `search`, `hash`).
fn url_parts(url: &url::Url) -> Vec<String> {
    // `url::quirks` is the crate's own implementation of the WHATWG URL API's getters and
    // setters (what its web-platform tests run against).
    use url::quirks;
    vec![
        quirks::href(url).to_owned(),
        quirks::origin(url),
        quirks::protocol(url).to_owned(),
        quirks::username(url).to_owned(),
        quirks::password(url).to_owned(),
        quirks::host(url).to_owned(),
        quirks::hostname(url).to_owned(),
        quirks::port(url).to_owned(),
        quirks::pathname(url).to_owned(),
        quirks::search(url).to_owned(),
        quirks::hash(url).to_owned(),
    ]
}

/// The parts of `input` resolved against `base`, or `None` when either does not parse.
fn url_parse(input: String, base: Option<String>) -> Option<Vec<String>> {
    let url = match base {
        Some(base) => url::Url::parse(&base).ok()?.join(&input).ok()?,
        None => url::Url::parse(&input).ok()?,
    };
    Some(url_parts(&url))
}

/// The parts of `href` after setting `part` to `value`; a value the URL standard ignores
/// leaves the URL as it was (as setters do in browsers), except `href`, which throws.
fn url_set(ctx: Ctx<'_>, href: String, part: String, value: String) -> rquickjs::Result<Vec<String>> {
    use url::quirks;
    let Ok(mut url) = url::Url::parse(&href) else {
        return Err(rquickjs::Exception::throw_type(
            &ctx,
            "URL: the URL is no longer valid",
        ));
    };
    // Setters report values they ignore; ignoring them is the standard's behaviour.
    let _ignored = match part.as_str() {
        "href" => {
            if quirks::set_href(&mut url, &value).is_err() {
                return Err(rquickjs::Exception::throw_type(
                    &ctx,
                    &format!("Invalid URL: '{value}'"),
                ));
            }
            Ok(())
        }
        "protocol" => quirks::set_protocol(&mut url, &value),
        "username" => quirks::set_username(&mut url, &value),
        "password" => quirks::set_password(&mut url, &value),
        "host" => quirks::set_host(&mut url, &value),
        "hostname" => quirks::set_hostname(&mut url, &value),
        "port" => quirks::set_port(&mut url, &value),
        "pathname" => {
            quirks::set_pathname(&mut url, &value);
            Ok(())
        }
        "search" => {
            quirks::set_search(&mut url, &value);
            Ok(())
        }
        "hash" => {
            quirks::set_hash(&mut url, &value);
            Ok(())
        }
        other => {
            return Err(rquickjs::Exception::throw_type(
                &ctx,
                &format!("URL: no part named {other}"),
            ));
        }
    };
    Ok(url_parts(&url))
}

fn random_bytes<'js>(ctx: Ctx<'js>, len: usize) -> rquickjs::Result<TypedArray<'js, u8>> {
    if len > MAX_RANDOM_BYTES {
        return Err(rquickjs::Exception::throw_range(
            &ctx,
            &format!("crypto.getRandomValues: at most {MAX_RANDOM_BYTES} bytes at a time"),
        ));
    }
    let mut bytes = vec![0u8; len];
    if getrandom::fill(&mut bytes).is_err() {
        return Err(rquickjs::Exception::throw_internal(
            &ctx,
            "crypto.getRandomValues: the system's random source failed",
        ));
    }
    TypedArray::new(ctx, bytes)
}

/// The 1, 5 and 15 minute load averages of the machine (zeros where the system has none).
fn load_average() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| parse_loadavg(&text))
        .unwrap_or_else(|| vec![0.0; 3])
}

fn parse_loadavg(text: &str) -> Vec<f64> {
    let mut averages: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .map(|field| field.parse().unwrap_or(0.0))
        .collect();
    averages.resize(3, 0.0);
    averages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::engine::FetchPolicy;
    use crate::runtime::engine::testing::{eval_body, test_env};
    use crate::runtime::sdk::{RunSignal, install_sdk};
    use crate::store::fjall::FjallStore;

    async fn eval(body: &str) -> Result<serde_json::Value, String> {
        let dir = tempfile::tempdir().unwrap();
        let net = Arc::new(FjallStore::open(&dir.path().join("net"), false).unwrap());
        let local = Arc::new(FjallStore::open(&dir.path().join("local"), false).unwrap());
        let env = test_env(net, local, FetchPolicy::default());
        eval_body(&env, body, |ctx, env| {
            install_sdk(ctx, env, &RunSignal::default()).unwrap();
        })
        .await
    }

    #[tokio::test]
    async fn engine_builtins_the_templates_use_are_there() {
        let got = eval(
            r#"return [typeof atob, typeof btoa, btoa("hi"), atob("aGk="), typeof Array.fromAsync,
                      typeof queueMicrotask, typeof performance.now, typeof DOMException,
                      await Array.fromAsync((async function* () { yield 1; yield 2; })())];"#,
        )
        .await
        .unwrap();
        assert_eq!(
            got,
            serde_json::json!([
                "function",
                "function",
                "aGk=",
                "hi",
                "function",
                "function",
                "function",
                "function",
                [1, 2]
            ])
        );
    }

    #[tokio::test]
    async fn text_round_trips_through_utf8() {
        let got = eval(
            r#"const bytes = new TextEncoder().encode("aé€😀\uD800");
               const streamed = new TextDecoder();
               const parts = [bytes.subarray(0, 2), bytes.subarray(2, 5), bytes.subarray(5)]
                 .map((p, i) => streamed.decode(p, { stream: i < 2 })).join("");
               let fatal;
               try { new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array([0xff])); } catch (e) { fatal = e.name; }
               let label;
               try { new TextDecoder("latin1"); } catch (e) { label = e.name; }
               const into = new Uint8Array(4);
               return { bytes: Array.from(bytes), whole: new TextDecoder().decode(bytes), parts,
                        lossy: new TextDecoder().decode(new Uint8Array([0x61, 0xff, 0x62])),
                        bom: new TextDecoder().decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x78])),
                        fatal, label, into: new TextEncoder().encodeInto("a€b", into), intoBytes: Array.from(into) };"#,
        )
        .await
        .unwrap();
        assert_eq!(
            got["bytes"],
            serde_json::json!([
                0x61, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0xef, 0xbf, 0xbd
            ])
        );
        assert_eq!(got["whole"], "aé€😀\u{fffd}");
        assert_eq!(got["parts"], got["whole"]);
        assert_eq!(got["lossy"], "a\u{fffd}b");
        assert_eq!(got["bom"], "x");
        assert_eq!(got["fatal"], "TypeError");
        assert_eq!(got["label"], "RangeError");
        assert_eq!(got["into"], serde_json::json!({"read": 2, "written": 4}));
        assert_eq!(got["intoBytes"], serde_json::json!([0x61, 0xe2, 0x82, 0xac]));
    }

    #[tokio::test]
    async fn urls_parse_resolve_and_update_like_browsers() {
        let got = eval(
            r#"const u = new URL("../b?x=1&y=a+b#h", "https://user:pw@Example.COM:8443/a/c");
               const before = { href: u.href, origin: u.origin, host: u.host, hostname: u.hostname, port: u.port,
                                pathname: u.pathname, search: u.search, hash: u.hash, username: u.username,
                                protocol: u.protocol, y: u.searchParams.get("y") };
               u.searchParams.append("z", "é &");
               u.port = "443";
               u.pathname = "/p q";
               u.hash = "";
               let invalid;
               try { new URL("no scheme"); } catch (e) { invalid = e.name + ": " + e.message; }
               const q = new URLSearchParams({ a: "1", b: "x y" });
               q.set("a", "2"); q.append("c", "!");
               return { before, after: u.href, json: JSON.stringify({ u }), invalid, canParse: [URL.canParse("http://x"), URL.canParse("x")],
                        q: q.toString(), pairs: [...new URLSearchParams("?a=1&a=2&b")], all: new URLSearchParams("a=1&a=2").getAll("a") };"#,
        )
        .await
        .unwrap();
        assert_eq!(
            got["before"],
            serde_json::json!({"href": "https://user:pw@example.com:8443/b?x=1&y=a+b#h", "origin": "https://example.com:8443",
                "host": "example.com:8443", "hostname": "example.com", "port": "8443", "pathname": "/b", "search": "?x=1&y=a+b",
                "hash": "#h", "username": "user", "protocol": "https:", "y": "a b"})
        );
        assert_eq!(
            got["after"],
            "https://user:pw@example.com/p%20q?x=1&y=a+b&z=%C3%A9+%26"
        );
        assert_eq!(
            got["json"],
            r#"{"u":"https://user:pw@example.com/p%20q?x=1&y=a+b&z=%C3%A9+%26"}"#
        );
        assert_eq!(got["invalid"], "TypeError: Invalid URL: 'no scheme'");
        assert_eq!(got["canParse"], serde_json::json!([true, false]));
        assert_eq!(got["q"], "a=2&b=x+y&c=%21");
        assert_eq!(
            got["pairs"],
            serde_json::json!([["a", "1"], ["a", "2"], ["b", ""]])
        );
        assert_eq!(got["all"], serde_json::json!(["1", "2"]));
    }

    #[tokio::test]
    async fn structured_clone_keeps_kinds_and_cycles_and_refuses_functions() {
        let got = eval(
            r#"const o = { d: new Date(5), m: new Map([[1, { x: 1 }]]), s: new Set([2]), b: new Uint16Array([1, 2]), r: /a/g, e: new RangeError("r") };
               o.self = o;
               const c = structuredClone(o);
               let refused;
               try { structuredClone({ f() {} }); } catch (e) { refused = e.name; }
               return { same: c === o, cycle: c.self === c, date: c.d instanceof Date && c.d.getTime(), map: c.m.get(1).x,
                        deep: c.m.get(1) !== o.m.get(1), set: c.s.has(2), typed: c.b instanceof Uint16Array && Array.from(c.b),
                        regex: String(c.r), error: c.e instanceof RangeError && c.e.message, refused };"#,
        )
        .await
        .unwrap();
        assert_eq!(
            got,
            serde_json::json!({"same": false, "cycle": true, "date": 5, "map": 1, "deep": true, "set": true,
                "typed": [1, 2], "regex": "/a/g", "error": "r", "refused": "DataCloneError"})
        );
    }

    #[tokio::test]
    async fn crypto_abort_and_fetch_classes() {
        let got = eval(
            r#"const uuid = crypto.randomUUID();
               const bytes = crypto.getRandomValues(new Uint8Array(32));
               let quota;
               try { crypto.getRandomValues(new Uint8Array(65537)); } catch (e) { quota = e.name; }
               let floats;
               try { crypto.getRandomValues(new Float32Array(1)); } catch (e) { floats = e.name; }
               const controller = new AbortController();
               const seen = [];
               controller.signal.addEventListener("abort", (e) => seen.push(e.type));
               controller.signal.onabort = () => seen.push("onabort");
               controller.abort();
               controller.abort();
               const timeout = AbortSignal.timeout(10);
               await new Promise((resolve) => timeout.addEventListener("abort", resolve));
               const h = new Headers([["X-A", "1"]]);
               h.append("x-a", "2");
               const r = Response.json({ ok: 1 }, { status: 201 });
               const req = new Request("https://example.com/x", { method: "post", body: "b", headers: { A: "1" } });
               return { uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(uuid),
                        nonzero: bytes.some((b) => b !== 0), quota, floats, seen, aborted: controller.signal.aborted,
                        reason: controller.signal.reason.name, timeout: timeout.reason.name, header: h.get("X-A"),
                        status: r.status, type: r.headers.get("content-type"), body: await r.json(),
                        req: [req.method, req.url, await req.text(), req.headers.get("a")] };"#,
        )
        .await
        .unwrap();
        assert_eq!(
            got,
            serde_json::json!({"uuid": true, "nonzero": true, "quota": "QuotaExceededError", "floats": "TypeMismatchError",
                "seen": ["onabort", "abort"], "aborted": true, "reason": "AbortError", "timeout": "TimeoutError",
                "header": "1, 2", "status": 201, "type": "application/json", "body": {"ok": 1},
                "req": ["POST", "https://example.com/x", "b", "1"]})
        );
    }

    #[tokio::test]
    async fn timers_fire_in_order_and_clear() {
        let got = eval(
            r#"const seen = [];
               setTimeout(() => seen.push("b"), 20);
               setTimeout((x) => seen.push(x), 5, "a");
               const never = setTimeout(() => seen.push("never"), 10);
               clearTimeout(never);
               let n = 0;
               const every = setInterval(() => { seen.push("i" + ++n); if (n === 3) clearInterval(every); }, 1);
               await new Promise((resolve) => setTimeout(resolve, 60));
               let strings;
               try { setTimeout("seen.push(1)", 1); } catch (e) { strings = e.name; }
               return { seen: seen.filter((s) => !s.startsWith("i")), intervals: seen.filter((s) => s.startsWith("i")), strings };"#,
        )
        .await
        .unwrap();
        assert_eq!(
            got,
            serde_json::json!({"seen": ["a", "b"], "intervals": ["i1", "i2", "i3"], "strings": "TypeError"})
        );
    }

    #[tokio::test]
    async fn deno_has_the_basics_and_names_what_it_lacks() {
        let got = eval(
            r#"const usage = Deno.memoryUsage();
               const load = Deno.loadavg();
               const missing = [];
               for (const read of [() => Deno.readTextFile, () => Deno.serve(() => {}), () => Deno.env.set("A", "1"), () => Deno.openKv]) {
                 try { read(); missing.push("no error"); } catch (e) { missing.push(e.name + ": " + e.message); }
               }
               return { keys: Object.keys(usage).sort(), numbers: Object.values(usage).every((n) => typeof n === "number"),
                        load: load.length === 3 && load.every((n) => typeof n === "number" && n >= 0),
                        home: Deno.env.get("HOME") ?? null, path: Deno.env.has("PATH"), missing };"#,
        )
        .await
        .unwrap();
        assert_eq!(
            got["keys"],
            serde_json::json!(["external", "heapTotal", "heapUsed", "rss"])
        );
        assert_eq!(got["numbers"], true);
        assert_eq!(got["load"], true);
        assert_eq!(
            got["home"],
            serde_json::Value::Null,
            "the node's environment must stay invisible"
        );
        assert_eq!(got["path"], false);
        assert_eq!(
            got["missing"],
            serde_json::json!([
                "TypeError: Deno.readTextFile is not available on this node",
                "TypeError: Deno.serve is not available on this node (workers cannot listen for HTTP requests)",
                "TypeError: Deno.env.set is not available on this node (a worker reads only its own secrets, set with 'heterogen secrets set')",
                "TypeError: Deno.openKv is not available on this node"
            ])
        );
    }

    #[test]
    fn load_averages_from_proc_text() {
        assert_eq!(
            parse_loadavg("0.52 1.03 2.50 3/512 12345\n"),
            vec![0.52, 1.03, 2.5]
        );
        assert_eq!(parse_loadavg(""), vec![0.0, 0.0, 0.0]);
        assert_eq!(parse_loadavg("x 1"), vec![0.0, 1.0, 0.0]);
    }
}
