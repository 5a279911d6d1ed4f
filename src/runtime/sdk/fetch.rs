//! The global `fetch` of worker scripts (S-10).
//!
//! `fetch(input, init?)` — `input` a URL string, a `URL` or a `Request` (whose method, headers,
//! body and signal apply unless `init` sets them) — with `init.method`, `init.headers` (object,
//! array of `[name, value]` pairs, or anything with `forEach`, such as `Headers`), `init.body`
//! (string, or `URLSearchParams`, sent form-encoded) and `init.signal` (an abort rejects the
//! promise at once with the signal's reason; the request itself ends within the time limit)
//! returns a `Promise` of a
//! Response-like object: `{status, statusText, ok, url, redirected, headers, text(), json()}`,
//! where `headers` has `get(name)`, `has(name)`, `forEach(fn)`, `entries()`, `keys()`,
//! `values()` and is iterable. The body is read whole before the promise resolves (so `text()`
//! and `json()` may be called any number of times) and decoded as UTF-8, lossily.
//!
//! Enforced [`FetchPolicy`]: only `allowed_hosts` (checked again on every redirect, which is
//! followed here, at most [`MAX_REDIRECTS`] times), the whole exchange within `timeout`, a body
//! of at most `max_body_bytes`. A zero `timeout` or `max_body_bytes` means no limit.
//!
//! Non-public addresses (loopback, private, link-local and metadata, unique-local, multicast,
//! reserved: [`refused_class`]) are refused unless the host is named exactly in
//! `allowed_hosts` — wildcards never open them. IP-literal URLs are checked before connecting;
//! host names go through a resolver that keeps only public addresses, so the check applies to
//! the address actually connected to, on every hop. The rejection says
//! `refused: <host> … a <class> address; … named in --fetch-allow`.
//!
//! Rejections carry the `name` the supervisor classifies by: `NetworkError` (host not allowed,
//! connection, DNS, TLS, body too large, bad redirect), `RequestTimeout` (past `timeout`), and
//! `TypeError` for a script's own mistakes (invalid URL or scheme, method, header, body type).
//!
//! One [`reqwest::Client`] serves the whole process; its connection tasks run on the ambient
//! tokio runtime, so the isolate must be polled inside one.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use rquickjs::prelude::Async;
use rquickjs::{Ctx, Function};
use serde::Deserialize;
use serde_json::{Value, json};

use super::address::refused_class;
use crate::runtime::engine::{FetchPolicy, WorkerEnv};

/// Redirects followed before failing, as in the WHATWG fetch standard.
pub const MAX_REDIRECTS: usize = 20;

/// Sent unless the script sets its own `User-Agent`.
const USER_AGENT: &str = concat!("heterogen/", env!("CARGO_PKG_VERSION"));

/// Turns the native `(requestJson) => Promise<replyJson>` into the script's `fetch`.
const FETCH_PRELUDE: &str = r#"(function (nativeFetch) {
  "use strict";
  const REQUEST_BODY = Symbol.for("heterogen.body");
  function toError(err) {
    if (err.name === "TypeError") return new TypeError(err.message);
    const e = new Error(err.message);
    if (err.name !== "Error") e.name = err.name;
    return e;
  }
  function headerPairs(h) {
    if (h === undefined || h === null) return [];
    const out = [];
    if (Array.isArray(h)) {
      for (const pair of h) {
        if (!Array.isArray(pair) || pair.length !== 2) {
          throw new TypeError("fetch: each header must be a [name, value] pair");
        }
        out.push([String(pair[0]), String(pair[1])]);
      }
      return out;
    }
    if (typeof h !== "object") {
      throw new TypeError("fetch: headers must be an object or an array of [name, value] pairs");
    }
    if (typeof h.forEach === "function") {
      h.forEach((value, name) => out.push([String(name), String(value)]));
      return out;
    }
    for (const name of Object.keys(h)) out.push([name, String(h[name])]);
    return out;
  }
  function makeHeaders(pairs) {
    const map = new Map();
    for (const [name, value] of pairs) map.set(name, map.has(name) ? `${map.get(name)}, ${value}` : value);
    const sorted = [...map.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const headers = {
      get(name) {
        const value = map.get(String(name).toLowerCase());
        return value === undefined ? null : value;
      },
      has(name) {
        return map.has(String(name).toLowerCase());
      },
      forEach(callback, thisArg) {
        for (const [name, value] of sorted) callback.call(thisArg, value, name, headers);
      },
      entries() {
        return sorted.map(([name, value]) => [name, value])[Symbol.iterator]();
      },
      keys() {
        return sorted.map(([name]) => name)[Symbol.iterator]();
      },
      values() {
        return sorted.map(([, value]) => value)[Symbol.iterator]();
      },
      [Symbol.iterator]() {
        return headers.entries();
      },
    };
    return headers;
  }
  function makeResponse(r) {
    const body = r.body;
    return {
      status: r.status,
      statusText: r.statusText,
      ok: r.status >= 200 && r.status <= 299,
      url: r.url,
      redirected: r.redirected,
      headers: makeHeaders(r.headers),
      async text() {
        return body;
      },
      async json() {
        return JSON.parse(body);
      },
    };
  }
  return async function fetch(input, init) {
    let url;
    if (typeof input === "string") url = input;
    else if (input !== null && typeof input === "object" && typeof input.href === "string") url = input.href;
    else if (input !== null && typeof input === "object" && typeof input.url === "string") url = input.url;
    else throw new TypeError("fetch: the URL must be a string");
    if (init === undefined || init === null) init = {};
    if (typeof init !== "object") throw new TypeError("fetch: init must be an object");
    // A Request (the global one) brings its own method, headers, body and signal.
    const request = input !== null && typeof input === "object" && REQUEST_BODY in input ? input : {};
    const pick = (name) => (init[name] !== undefined && init[name] !== null ? init[name] : request[name]);
    const method = pick("method") === undefined || pick("method") === null ? "GET" : String(pick("method"));
    const headers = headerPairs(pick("headers"));
    let body = init.body !== undefined ? init.body : request[REQUEST_BODY];
    if (body === undefined) body = null;
    if (body !== null && typeof body === "object" && typeof body.append === "function" && typeof body.getAll === "function") {
      if (!headers.some(([name]) => name.toLowerCase() === "content-type")) {
        headers.push(["content-type", "application/x-www-form-urlencoded;charset=UTF-8"]);
      }
      body = body.toString();
    }
    if (body !== null && typeof body !== "string") {
      throw new TypeError("fetch: body must be a string or URLSearchParams (use JSON.stringify for objects)");
    }
    const signal = pick("signal");
    if (signal !== undefined && signal !== null && signal.aborted) throw signal.reason;
    const pending = nativeFetch(JSON.stringify({ url, method, headers, body }));
    // An abort rejects at once; the request itself ends within the node's fetch time limit.
    const answer = signal !== undefined && signal !== null && typeof signal.addEventListener === "function"
      ? Promise.race([pending, new Promise((_, reject) => {
          signal.addEventListener("abort", () => reject(signal.reason), { once: true });
        })])
      : pending;
    const reply = JSON.parse(await answer);
    if (reply.err) throw toError(reply.err);
    return makeResponse(reply.ok);
  };
})"#;

/// Installs the global `fetch`, restricted by `env.fetch`.
pub fn install_fetch<'js>(ctx: &Ctx<'js>, env: &WorkerEnv) -> rquickjs::Result<()> {
    let mut options = rquickjs::context::EvalOptions::default();
    options.strict = true;
    options.filename = Some("<stels:fetch>".to_string());
    let factory: Function<'js> = ctx.eval_with_options(FETCH_PRELUDE, options)?;
    let policy = env.fetch.clone();
    let native = Function::new(
        ctx.clone(),
        Async(move |request: String| {
            let policy = policy.clone();
            assert_send(async move { reply(perform(&policy, &request).await) })
        }),
    )?;
    let fetch: Function<'js> = factory.call((native,))?;
    ctx.globals().set("fetch", fetch)
}

/// Compile-time proof that a host future may move between threads (`parallel` runtime).
fn assert_send<F: Future + Send>(future: F) -> F {
    future
}

/// Why a fetch failed, as the script sees it.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    /// The script's own mistake: `TypeError`.
    #[error("fetch: {0}")]
    Type(String),
    /// Anything between here and the server: `NetworkError`.
    #[error("{0}")]
    Network(String),
    /// Past the policy's timeout: `RequestTimeout`.
    #[error("request to {url} timed out after {ms} ms")]
    Timeout { url: String, ms: u128 },
}

impl FetchError {
    /// The `name` of the rejection.
    fn js_name(&self) -> &'static str {
        match self {
            FetchError::Type(_) => "TypeError",
            FetchError::Network(_) => "NetworkError",
            FetchError::Timeout { .. } => "RequestTimeout",
        }
    }
}

/// `{"ok": response}` or `{"err": {"name", "message"}}`, as JSON text.
fn reply(result: Result<Value, FetchError>) -> String {
    match result {
        Ok(response) => json!({ "ok": response }),
        Err(err) => json!({ "err": { "name": err.js_name(), "message": err.to_string() } }),
    }
    .to_string()
}

/// What the prelude sends.
#[derive(Deserialize)]
struct FetchRequest {
    url: String,
    method: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

/// How a request may connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// Only to public addresses: every address the host resolves to is checked at connect time.
    PublicOnly,
    /// To whatever the host resolves to: the host is named exactly in `--fetch-allow`.
    Named,
}

/// The two process-wide clients; redirects are followed by [`exchange`] so each hop is
/// checked. Neither uses a proxy from the environment: through a proxy the target's address
/// would never be resolved here, so it could not be checked.
fn client(route: Route) -> Result<&'static reqwest::Client, FetchError> {
    static PUBLIC_ONLY: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    static NAMED: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    let cell = match route {
        Route::PublicOnly => &PUBLIC_ONLY,
        Route::Named => &NAMED,
    };
    cell.get_or_init(|| {
        let builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(USER_AGENT);
        let builder = match route {
            Route::PublicOnly => builder.dns_resolver(Arc::new(PublicOnlyResolver)),
            Route::Named => builder,
        };
        builder.build().map_err(|e| describe(&e))
    })
    .as_ref()
    .map_err(|e| FetchError::Network(format!("HTTP client unavailable: {e}")))
}

/// A host name that resolves to no public address.
#[derive(Debug, thiserror::Error)]
#[error(
    "refused: {host} resolves to {ip}, a {class} address; scripts may reach it only when {host} is named in --fetch-allow"
)]
struct RefusedAddress {
    host: String,
    ip: IpAddr,
    class: &'static str,
}

/// Resolves host names for scripts and keeps only public addresses, so a name that points at
/// the node, a private network or a metadata service is refused when the connection is made
/// (not only when the URL is checked, which a rebinding DNS answer could get around).
struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let public: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match refused_class(addr.ip()) {
                    Some(class) => {
                        refused.get_or_insert((addr.ip(), class));
                        false
                    }
                    None => true,
                })
                .collect();
            match (public.is_empty(), refused) {
                (true, Some((ip, class))) => Err(Box::new(RefusedAddress { host, ip, class }) as BoxError),
                _ => Ok(Box::new(public.into_iter()) as Addrs),
            }
        })
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An error and its sources, `": "`-separated, without repeating a source already in the text.
pub(super) fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}

/// `host` as written in a URL or in `--fetch-allow`, for comparison: lower case, without a
/// trailing dot or IPv6 brackets.
pub(super) fn normalized_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('.');
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.to_ascii_lowercase()
}

/// Whether `policy` lets scripts reach `host` (exact, case-insensitive; `*.suffix` matches
/// subdomains of `suffix` only; `*` matches all).
pub(super) fn host_allowed(policy: &FetchPolicy, host: &str) -> bool {
    let Some(allowed) = &policy.allowed_hosts else {
        return true;
    };
    let host = normalized_host(host);
    allowed.iter().any(|entry| {
        let entry = normalized_host(entry);
        match entry.strip_prefix("*.") {
            Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
            None => entry == "*" || entry == host,
        }
    })
}

/// Whether `host` is named exactly in `--fetch-allow`: only then may it be a non-public
/// address (wildcards never open those).
pub(super) fn named_exactly(policy: &FetchPolicy, host: &str) -> bool {
    let host = normalized_host(host);
    policy
        .allowed_hosts
        .iter()
        .flatten()
        .any(|entry| normalized_host(entry) == host)
}

/// Fails unless `url` is http(s), its host is allowed and, when it is an IP address, a public
/// one (or named exactly); returns how the request may connect.
fn check_target(policy: &FetchPolicy, url: &Url) -> Result<Route, FetchError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::Network(format!(
            "unsupported URL scheme {:?} in {url}",
            url.scheme()
        )));
    }
    let host = url.host_str().unwrap_or_default();
    if !host_allowed(policy, host) {
        return Err(FetchError::Network(format!("host not allowed: {host}")));
    }
    if named_exactly(policy, host) {
        return Ok(Route::Named);
    }
    // The URL parser has already turned every numeric host form (`2130706433`, `0x7f.1`) into
    // a canonical address, so this parse sees them all.
    let literal = normalized_host(host).parse::<IpAddr>().ok();
    if let Some(class) = literal.and_then(refused_class) {
        return Err(FetchError::Network(format!(
            "refused: {host} is a {class} address; scripts may reach it only when {host} is named in --fetch-allow"
        )));
    }
    Ok(Route::PublicOnly)
}

/// Validates the request, then runs [`exchange`] within the policy's timeout.
async fn perform(policy: &FetchPolicy, request: &str) -> Result<Value, FetchError> {
    let request: FetchRequest =
        serde_json::from_str(request).map_err(|e| FetchError::Type(format!("malformed request: {e}")))?;
    let url = Url::parse(&request.url)
        .map_err(|e| FetchError::Type(format!("invalid URL {:?}: {e}", request.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::Type(format!(
            "unsupported URL scheme {:?}",
            url.scheme()
        )));
    }
    let method = parse_method(&request.method)?;
    if request.body.is_some() && (method == Method::GET || method == Method::HEAD) {
        return Err(FetchError::Type(format!("a {method} request cannot have a body")));
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &request.headers {
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| FetchError::Type(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| FetchError::Type(format!("invalid value for header {name}")))?;
        headers.append(name, value);
    }
    let shown_url = url.to_string();
    let work = exchange(policy, url, method, headers, request.body);
    if policy.timeout.is_zero() {
        return work.await;
    }
    match tokio::time::timeout(policy.timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(FetchError::Timeout {
            url: shown_url,
            ms: policy.timeout.as_millis(),
        }),
    }
}

/// The method, upper-cased when it is one of the standard ones (as fetch does).
fn parse_method(text: &str) -> Result<Method, FetchError> {
    let upper = text.to_ascii_uppercase();
    let text = match upper.as_str() {
        "DELETE" | "GET" | "HEAD" | "OPTIONS" | "POST" | "PUT" | "PATCH" => upper.as_str(),
        _ => text,
    };
    Method::from_bytes(text.as_bytes()).map_err(|_| FetchError::Type(format!("invalid method {text:?}")))
}

/// Sends the request, follows redirects (checking each target) and reads the body.
async fn exchange(
    policy: &FetchPolicy,
    mut url: Url,
    mut method: Method,
    mut headers: HeaderMap,
    mut body: Option<String>,
) -> Result<Value, FetchError> {
    let mut redirects = 0;
    loop {
        let route = check_target(policy, &url)?;
        let mut builder = client(route)?
            .request(method.clone(), url.clone())
            .headers(headers.clone());
        if let Some(body) = &body {
            builder = builder.body(body.clone());
        }
        let response = builder.send().await.map_err(network)?;
        let status = response.status();
        let location = response.headers().get(header::LOCATION).cloned();
        if let (true, Some(location)) = (is_redirect(status), location) {
            redirects += 1;
            if redirects > MAX_REDIRECTS {
                return Err(FetchError::Network(format!(
                    "more than {MAX_REDIRECTS} redirects"
                )));
            }
            let next = location
                .to_str()
                .ok()
                .and_then(|l| url.join(l).ok())
                .ok_or_else(|| FetchError::Network(format!("invalid redirect location from {url}")))?;
            let to_get = (status == StatusCode::SEE_OTHER && method != Method::HEAD)
                || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                    && method == Method::POST);
            if to_get {
                method = Method::GET;
                body = None;
                for name in [
                    header::CONTENT_TYPE,
                    header::CONTENT_LENGTH,
                    header::CONTENT_ENCODING,
                    header::CONTENT_LANGUAGE,
                    header::CONTENT_LOCATION,
                ] {
                    headers.remove(name);
                }
            }
            if next.origin() != url.origin() {
                for name in [header::AUTHORIZATION, header::COOKIE, header::PROXY_AUTHORIZATION] {
                    headers.remove(name);
                }
            }
            url = next;
            continue;
        }
        let response_headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let final_url = response.url().to_string();
        let text = read_body(response, policy.max_body_bytes).await?;
        return Ok(json!({
            "status": status.as_u16(),
            "statusText": status.canonical_reason().unwrap_or(""),
            "url": final_url,
            "redirected": redirects > 0,
            "headers": response_headers,
            "body": text,
        }));
    }
}

/// Statuses fetch follows when they carry a `Location`.
fn is_redirect(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

/// A transport failure (connect, DNS, TLS, I/O) as `NetworkError`. The client has no timeouts
/// of its own; [`perform`] applies the policy's.
fn network(err: reqwest::Error) -> FetchError {
    let mut source = std::error::Error::source(&err);
    while let Some(inner) = source {
        if let Some(refused) = inner.downcast_ref::<RefusedAddress>() {
            return FetchError::Network(refused.to_string());
        }
        source = inner.source();
    }
    FetchError::Network(describe(&err))
}

/// The whole body as text, failing past `limit` bytes (0: unlimited) without reading further.
async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<String, FetchError> {
    let too_large = || FetchError::Network(format!("response body exceeds {limit} bytes"));
    if limit > 0 && response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(network)? {
        if limit > 0 && body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::time::Duration;

    use axum::Router;
    use axum::body::{Body, Bytes};
    use axum::http::HeaderMap as AxumHeaders;
    use axum::response::{IntoResponse, Redirect, Response};
    use axum::routing::{any, get};

    use super::*;
    use crate::runtime::engine::testing::{eval_body, test_env};
    use crate::store::Store;
    use crate::store::fjall::FjallStore;

    /// Test servers listen here; scripts may reach it only when it is named.
    const LOOPBACK: Option<&[&str]> = Some(&["127.0.0.1"]);

    fn policy(allowed: Option<&[&str]>, timeout_ms: u64, max_body_bytes: usize) -> FetchPolicy {
        FetchPolicy {
            allowed_hosts: allowed.map(|hosts| hosts.iter().map(|h| h.to_string()).collect()),
            timeout: Duration::from_millis(timeout_ms),
            max_body_bytes,
        }
    }

    /// Runs `body` as an async function body with `fetch` installed; its result as JSON.
    async fn run(fetch: FetchPolicy, body: &str) -> Value {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(FjallStore::open(dir.path(), false).unwrap());
        let env = test_env(store.clone(), store, fetch);
        let text = eval_body(&env, body, |ctx, env| install_fetch(ctx, env).unwrap()).await;
        match text {
            Ok(value) => value,
            Err(err) => panic!("script failed: {err}"),
        }
    }

    /// `{name, message}` of what `fetch(args)` rejects with.
    async fn rejection(fetch: FetchPolicy, args: &str) -> (String, String) {
        let body = format!(
            "try {{ await fetch({args}); return null; }} catch (e) {{ return {{ name: e.name, message: e.message, isError: e instanceof Error }}; }}"
        );
        let out = run(fetch, &body).await;
        assert!(!out.is_null(), "fetch({args}) did not reject");
        assert_eq!(out["isError"], json!(true));
        (
            out["name"].as_str().unwrap().to_string(),
            out["message"].as_str().unwrap().to_string(),
        )
    }

    async fn echo(method: axum::http::Method, headers: AxumHeaders, body: String) -> impl IntoResponse {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        axum::Json(json!({
            "method": method.as_str(),
            "contentType": header("content-type"),
            "custom": header("x-custom"),
            "auth": header("authorization"),
            "userAgent": header("user-agent"),
            "body": body,
        }))
    }

    /// A loopback test server; returns its address.
    async fn server() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route(
                "/hello",
                get(|| async {
                    let mut headers = AxumHeaders::new();
                    headers.insert("x-test", "a".parse().unwrap());
                    headers.append("x-multi", "1".parse().unwrap());
                    headers.append("x-multi", "2".parse().unwrap());
                    (headers, "hello ✓")
                }),
            )
            .route(
                "/json",
                get(|| async { axum::Json(json!({ "a": 1, "b": [true, null] })) }),
            )
            .route("/echo", any(echo))
            .route(
                "/missing",
                get(|| async { (axum::http::StatusCode::NOT_FOUND, "nope") }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    "late"
                }),
            )
            .route("/big", get(|| async { "x".repeat(10_000) }))
            .route(
                "/big-stream",
                get(|| async {
                    let chunks = (0..10).map(|_| Ok::<_, Infallible>(Bytes::from(vec![b'y'; 1000])));
                    Response::new(Body::from_stream(futures_util::stream::iter(chunks)))
                }),
            )
            .route("/to-hello", get(|| async { Redirect::temporary("/hello") }))
            .route("/see-other", any(|| async { Redirect::to("/echo") }))
            .route(
                "/to-other-host",
                get(move || async move {
                    Redirect::temporary(&format!("http://localhost:{}/hello", addr.port()))
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    #[tokio::test]
    async fn get_text_json_headers() {
        let addr = server().await;
        let out = run(
            policy(Some(&["127.0.0.1"]), 5000, 1 << 20),
            &format!(
                r#"
                const r = await fetch("http://{addr}/hello");
                const names = [];
                r.headers.forEach((value, name) => names.push(name));
                const entries = [...r.headers.entries()].filter(([n]) => n.startsWith("x-"));
                const j = await fetch("http://{addr}/json");
                const missing = await fetch("http://{addr}/missing");
                return {{
                  status: r.status, statusText: r.statusText, ok: r.ok, url: r.url, redirected: r.redirected,
                  test: r.headers.get("X-Test"), multi: r.headers.get("x-multi"), has: r.headers.has("x-test"),
                  absent: r.headers.get("x-absent"), hasAbsent: r.headers.has("x-absent"),
                  namesIncludeTest: names.includes("x-test"), entries,
                  text: await r.text(), again: await r.text(),
                  json: await j.json(), contentType: j.headers.get("content-type"),
                  missing: {{ status: missing.status, ok: missing.ok, statusText: missing.statusText, text: await missing.text() }},
                }};
                "#
            ),
        )
        .await;
        assert_eq!(out["status"], json!(200));
        assert_eq!(out["statusText"], json!("OK"));
        assert_eq!(out["ok"], json!(true));
        assert_eq!(out["url"], json!(format!("http://{addr}/hello")));
        assert_eq!(out["redirected"], json!(false));
        assert_eq!(out["test"], json!("a"));
        assert_eq!(out["multi"], json!("1, 2"));
        assert_eq!(out["has"], json!(true));
        assert_eq!(out["absent"], Value::Null);
        assert_eq!(out["hasAbsent"], json!(false));
        assert_eq!(out["namesIncludeTest"], json!(true));
        assert_eq!(out["entries"], json!([["x-multi", "1, 2"], ["x-test", "a"]]));
        assert_eq!(out["text"], json!("hello ✓"));
        assert_eq!(out["again"], json!("hello ✓"));
        assert_eq!(out["json"], json!({ "a": 1, "b": [true, null] }));
        assert_eq!(out["contentType"], json!("application/json"));
        assert_eq!(
            out["missing"],
            json!({ "status": 404, "ok": false, "statusText": "Not Found", "text": "nope" })
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn post_with_headers_and_body() {
        let addr = server().await;
        let out = run(
            policy(LOOPBACK, 5000, 1 << 20),
            &format!(
                r#"
                const a = await fetch("http://{addr}/echo", {{
                  method: "post",
                  headers: {{ "Content-Type": "application/json", "X-Custom": "one" }},
                  body: JSON.stringify({{ hi: 1 }}),
                }});
                const b = await fetch("http://{addr}/echo", {{
                  method: "PUT", headers: [["x-custom", "two"], ["user-agent", "mine"]], body: "plain",
                }});
                const c = await fetch("http://{addr}/see-other", {{ method: "POST", body: "dropped", headers: {{ "content-type": "text/plain" }} }});
                return {{ a: await a.json(), b: await b.json(), c: await c.json(), cRedirected: c.redirected, cUrl: c.url }};
                "#
            ),
        )
        .await;
        assert_eq!(out["a"]["method"], json!("POST"));
        assert_eq!(out["a"]["contentType"], json!("application/json"));
        assert_eq!(out["a"]["custom"], json!("one"));
        assert_eq!(out["a"]["body"], json!(r#"{"hi":1}"#));
        assert!(out["a"]["userAgent"].as_str().unwrap().starts_with("heterogen/"));
        assert_eq!(out["b"]["method"], json!("PUT"));
        assert_eq!(out["b"]["custom"], json!("two"));
        assert_eq!(out["b"]["userAgent"], json!("mine"));
        assert_eq!(out["b"]["body"], json!("plain"));
        assert_eq!(out["c"]["method"], json!("GET"), "303 turns POST into GET");
        assert_eq!(out["c"]["body"], json!(""));
        assert_eq!(out["c"]["contentType"], json!(""));
        assert_eq!(out["cRedirected"], json!(true));
        assert_eq!(out["cUrl"], json!(format!("http://{addr}/echo")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_form_bodies_and_abort_signals_from_the_web_globals() {
        let addr = server().await;
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(FjallStore::open(dir.path(), false).unwrap());
        let env = test_env(store.clone(), store, policy(LOOPBACK, 5000, 1 << 20));
        let body = format!(
            r#"
            const viaRequest = await fetch(new Request("http://{addr}/echo", {{ method: "PATCH", body: "r", headers: new Headers({{ "X-Custom": "req" }}) }}));
            const form = await fetch(new URL("http://{addr}/echo"), {{ method: "POST", body: new URLSearchParams({{ a: "1 2" }}) }});
            const early = new AbortController();
            early.abort();
            let before;
            try {{ await fetch("http://{addr}/hello", {{ signal: early.signal }}); }} catch (e) {{ before = e.name; }}
            let during;
            try {{ await fetch("http://{addr}/slow", {{ signal: AbortSignal.timeout(50) }}); }} catch (e) {{ during = e.name; }}
            return {{ viaRequest: await viaRequest.json(), form: await form.json(), before, during }};
            "#
        );
        let started = std::time::Instant::now();
        let out = eval_body(&env, &body, |ctx, env| {
            crate::runtime::sdk::install_sdk(ctx, env, &crate::runtime::sdk::RunSignal::default()).unwrap();
        })
        .await
        .unwrap();
        assert_eq!(out["viaRequest"]["method"], json!("PATCH"));
        assert_eq!(out["viaRequest"]["body"], json!("r"));
        assert_eq!(out["viaRequest"]["custom"], json!("req"));
        assert_eq!(out["form"]["body"], json!("a=1+2"));
        assert_eq!(
            out["form"]["contentType"],
            json!("application/x-www-form-urlencoded;charset=UTF-8")
        );
        assert_eq!(out["before"], json!("AbortError"));
        assert_eq!(out["during"], json!("TimeoutError"));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the abort did not wait for /slow"
        );
    }

    #[tokio::test]
    async fn timeout_rejects_with_request_timeout() {
        let addr = server().await;
        let started = std::time::Instant::now();
        let (name, message) =
            rejection(policy(LOOPBACK, 200, 1 << 20), &format!("'http://{addr}/slow'")).await;
        assert_eq!(name, "RequestTimeout");
        assert_eq!(
            message,
            format!("request to http://{addr}/slow timed out after 200 ms")
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn refused_connection_is_network_error() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let (name, message) = rejection(
            policy(LOOPBACK, 5000, 1 << 20),
            &format!("'http://127.0.0.1:{port}/'"),
        )
        .await;
        assert_eq!(name, "NetworkError");
        assert!(message.contains("error sending request"), "{message}");
        // TLS to a plain-HTTP server fails the handshake.
        let addr = server().await;
        let (name, _) = rejection(
            policy(LOOPBACK, 5000, 1 << 20),
            &format!("'https://{addr}/hello'"),
        )
        .await;
        assert_eq!(name, "NetworkError");
    }

    #[tokio::test]
    async fn disallowed_hosts_are_network_errors() {
        let addr = server().await;
        let only_example = policy(Some(&["example.com", "*.example.org"]), 5000, 1 << 20);
        let (name, message) = rejection(only_example, &format!("'http://{addr}/hello'")).await;
        assert_eq!(
            (name.as_str(), message.as_str()),
            ("NetworkError", "host not allowed: 127.0.0.1")
        );
        // A redirect to a host outside the list is refused too.
        let loopback_ip_only = policy(Some(&["127.0.0.1"]), 5000, 1 << 20);
        let (name, message) = rejection(
            loopback_ip_only.clone(),
            &format!("'http://{addr}/to-other-host'"),
        )
        .await;
        assert_eq!(
            (name.as_str(), message.as_str()),
            ("NetworkError", "host not allowed: localhost")
        );
        let out = run(
            loopback_ip_only,
            &format!("const r = await fetch('http://{addr}/to-hello'); return [r.redirected, r.url, await r.text()];"),
        )
        .await;
        assert_eq!(out, json!([true, format!("http://{addr}/hello"), "hello ✓"]));
    }

    #[test]
    fn host_matching() {
        let p = policy(Some(&["Example.com", "*.api.test", "10.0.0.1"]), 0, 0);
        assert!(host_allowed(&p, "example.com"));
        assert!(host_allowed(&p, "EXAMPLE.com."));
        assert!(!host_allowed(&p, "www.example.com"));
        assert!(host_allowed(&p, "a.api.test"));
        assert!(host_allowed(&p, "a.b.api.test"));
        assert!(!host_allowed(&p, "api.test"));
        assert!(!host_allowed(&p, "evilapi.test"));
        assert!(host_allowed(&p, "10.0.0.1"));
        assert!(host_allowed(&policy(None, 0, 0), "anything"));
        assert!(host_allowed(&policy(Some(&["*"]), 0, 0), "anything"));
        assert!(!host_allowed(&policy(Some(&[]), 0, 0), "anything"));
        assert!(host_allowed(&policy(Some(&["::1"]), 0, 0), "[::1]"));
        assert!(named_exactly(&policy(Some(&["[::1]"]), 0, 0), "[::1]"));
        assert!(named_exactly(&policy(Some(&["LocalHost."]), 0, 0), "localhost"));
        assert!(!named_exactly(&policy(Some(&["*"]), 0, 0), "localhost"));
        assert!(!named_exactly(&policy(Some(&["*.0.0.1"]), 0, 0), "127.0.0.1"));
        assert!(!named_exactly(&policy(None, 0, 0), "127.0.0.1"));
    }

    #[test]
    fn non_public_ip_literals_need_their_exact_name() {
        let target =
            |allowed: Option<&[&str]>, url: &str| check_target(&policy(allowed, 0, 0), &url.parse().unwrap());
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "http://0.0.0.0/",
        ] {
            for allowed in [None, Some(&["*"][..]), Some(&["*", "*.0.0.1"][..])] {
                let err = target(allowed, url).unwrap_err().to_string();
                assert!(err.starts_with("refused: "), "{url} {allowed:?}: {err}");
                assert!(err.contains("--fetch-allow"), "{err}");
            }
        }
        assert_eq!(
            target(None, "http://169.254.169.254/").unwrap_err().to_string(),
            "refused: 169.254.169.254 is a cloud metadata address; scripts may reach it only when \
             169.254.169.254 is named in --fetch-allow"
        );
        assert_eq!(target(LOOPBACK, "http://127.0.0.1:8080/").unwrap(), Route::Named);
        assert_eq!(target(Some(&["::1"]), "http://[::1]/").unwrap(), Route::Named);
        assert_eq!(target(None, "http://8.8.8.8/").unwrap(), Route::PublicOnly);
        assert_eq!(target(None, "http://example.com/").unwrap(), Route::PublicOnly);
        assert_eq!(
            target(Some(&["*", "localhost"]), "http://localhost/").unwrap(),
            Route::Named
        );
        assert_eq!(
            target(Some(&["*"]), "http://localhost/").unwrap(),
            Route::PublicOnly
        );
    }

    #[tokio::test]
    async fn names_that_resolve_to_loopback_are_refused_unless_named() {
        let addr = server().await;
        let port = addr.port();
        let (name, message) = rejection(
            policy(None, 5000, 1000),
            &format!("'http://localhost:{port}/hello'"),
        )
        .await;
        assert_eq!(name, "NetworkError");
        assert!(
            message.starts_with("refused: localhost resolves to ") && message.contains("loopback address"),
            "{message}"
        );
        let (_, message) = rejection(policy(None, 5000, 1000), &format!("'http://{addr}/hello'")).await;
        assert!(
            message.starts_with("refused: 127.0.0.1 is a loopback address"),
            "{message}"
        );
        // Named: allowed; a redirect from there to an unnamed loopback name is refused.
        let out = run(
            policy(Some(&["localhost"]), 5000, 1000),
            &format!("return await (await fetch('http://localhost:{port}/hello')).text();"),
        )
        .await;
        assert_eq!(out, json!("hello ✓"));
        let (_, message) = rejection(
            policy(Some(&["127.0.0.1", "*"]), 5000, 1000),
            &format!("'http://{addr}/to-other-host'"),
        )
        .await;
        assert!(
            message.starts_with("refused: localhost resolves to "),
            "{message}"
        );
    }

    #[tokio::test]
    async fn oversized_bodies_are_network_errors() {
        let addr = server().await;
        for path in ["big", "big-stream"] {
            let (name, message) =
                rejection(policy(LOOPBACK, 5000, 1000), &format!("'http://{addr}/{path}'")).await;
            assert_eq!(name, "NetworkError", "{path}");
            assert_eq!(message, "response body exceeds 1000 bytes", "{path}");
        }
        let out = run(
            policy(LOOPBACK, 5000, 10_000),
            &format!("return (await (await fetch('http://{addr}/big-stream')).text()).length;"),
        )
        .await;
        assert_eq!(out, json!(10_000));
    }

    #[tokio::test]
    async fn script_mistakes_are_type_errors() {
        let cases = [
            ("'not a url'", "fetch: invalid URL"),
            ("'ftp://127.0.0.1/'", "fetch: unsupported URL scheme \"ftp\""),
            ("42", "fetch: the URL must be a string"),
            (
                "'http://127.0.0.1:1/', { method: 'GET', body: 'x' }",
                "fetch: a GET request cannot have a body",
            ),
            (
                "'http://127.0.0.1:1/', { method: 'POST', body: { a: 1 } }",
                "fetch: body must be a string",
            ),
            (
                "'http://127.0.0.1:1/', { headers: { 'bad name': 'x' } }",
                "fetch: invalid header name",
            ),
            (
                "'http://127.0.0.1:1/', { headers: [['x']] }",
                "fetch: each header must be",
            ),
            (
                "'http://127.0.0.1:1/', { method: 'BAD METHOD' }",
                "fetch: invalid method",
            ),
        ];
        for (args, message) in cases {
            let (name, got) = rejection(policy(None, 5000, 1000), args).await;
            assert_eq!(name, "TypeError", "{args}: {got}");
            assert!(got.starts_with(message), "{args}: {got}");
        }
    }
}
