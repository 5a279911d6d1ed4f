//! `Stels.net`, `Stels.local` and `Stels.webfix` (S-7, S-8, S-9, S-20).
//!
//! Both KVs are Deno.Kv-like objects written in JavaScript ([`KV_PRELUDE`]) over three native
//! async functions per store (`get`, `list`, `commit`) that take and return JSON text. The JS side
//! validates arguments (so errors are thrown where the script called) and builds the list
//! iterator and the atomic builder; the Rust side owns the namespace, checks list selectors and
//! cursors, and talks to the [`Store`].
//!
//! Namespace: a user key `k` is stored as `["kv", ...k]`, so scripts can neither read nor write
//! the node's own records (`["ami","worker",…]`, leases, sessions); results show `k` again.
//!
//! JS-visible API (each `brain` is `Stels.net` or `Stels.local`), Deno KV's for JSON values:
//! - `get(key)` → `Promise<{key, value, versionstamp}>`; `value` and `versionstamp` are `null`
//!   when absent. `getMany(keys)` → array of those, in order, at most [`MAX_GET_MANY`] keys.
//! - `set(key, value, {expireIn?})` → `Promise<{ok: true, versionstamp}>`.
//! - `delete(key)` → `Promise<undefined>`.
//! - `list(selector, {limit?, reverse?, batchSize?, cursor?})` → async iterator of
//!   `{key, value, versionstamp}`. The selector is `{prefix}`, `{prefix, start}`,
//!   `{prefix, end}` or `{start, end}`: start included, end excluded, a prefix's own entry left
//!   out, start and end within the prefix. The iterator's `cursor` (after the first entry) is
//!   Deno's: the listed key's encoding after the selector's common prefix, in URL-safe base64;
//!   `options.cursor` resumes just after that entry, in the listing's direction. The native side
//!   checks every selector and cursor (a cursor only names a key the selector covers, and every
//!   key it names is a user key), so no cursor reaches outside the namespace. Entries are fetched
//!   [`LIST_PAGE`] at a time (or `batchSize`, 1..=[`MAX_BATCH_SIZE`], when smaller), each page
//!   resuming from the last entry's cursor, so memory per call is bounded whatever the store
//!   holds. `limit` is a positive integer up to [`MAX_LIST_LIMIT`]. Selector shapes and options
//!   are checked at the call; the selector's keyspace and the cursor at the first `next()`, as
//!   in Deno.
//! - `atomic()` → builder: `.check({key, versionstamp}, …)` (`versionstamp: null` = must be
//!   absent), `.set(key, value, {expireIn?})`, `.delete(key)`,
//!   `.mutate({type: "set", key, value, expireIn?} | {type: "delete", key}, …)`, `.commit()` →
//!   `Promise<{ok: true, versionstamp} | {ok: false}>`; mutations apply in order. `sum`, `min`
//!   and `max` (as methods or mutation types) throw `TypeError`: they need `Deno.KvU64`, which
//!   JSON values do not have. Awaiting the builder itself throws `TypeError`, as in Deno.
//! - `Stels.webfix({brain, method, channel, module, raw?, timestamp?, expireIn?, versionstamp?})`:
//!   `get` → the brain's get result; `set` → `{ok: true, key, value, versionstamp}` where
//!   `value = {channel, module, raw, timestamp}`; `update` (needs `versionstamp`, `null` = must
//!   not exist) → the same, or `{ok: false}` when the check fails; `delete` →
//!   `{ok: true, key, value: null, versionstamp: null}`.
//!
//! Errors: empty keys (except list selectors' keys), parts that are not strings, finite
//! numbers or booleans (Deno's `bigint` and `Uint8Array` parts included), keys over 2044 encoded
//! bytes, values that are not JSON or over 64 KiB, bad `expireIn` (not a finite, non-negative
//! number; fractions round down, huge values saturate), `limit` or `batchSize`, invalid
//! selectors and cursors (with Deno's messages, e.g. `Start key is not in the keyspace defined
//! by prefix`, `cursor out of bounds`), invalid mutations, `getMany` of more than
//! [`MAX_GET_MANY`] keys (`Too many ranges (max 10)`), and atomic commits of more than
//! [`MAX_CHECKS`] checks or [`MAX_MUTATIONS`] mutations reject with `TypeError`; a write past the
//! worker's quota (see [`kv_quota`](super::kv_quota)) rejects with an `Error` named
//! `QuotaExceeded`; a leader-mode run's `Stels.net` write after another node's term began rejects
//! with an `Error` named `StaleLeader` (S-22: every such write checks the term's fence in the
//! same commit); store failures (a full disk included) reject with `Error` and nothing was
//! written. Messages start with the call, e.g.
//! `Stels.net.set: value exceeds 64 KiB (70002 bytes as JSON)`.
//!
//! Not Deno's: values are JSON (no `bigint`, `undefined`, cycles, `Map`, bytes…: what
//! `JSON.stringify` makes of them is stored, and what it refuses is a `TypeError`); the limits
//! above are this store's (Deno: 2048-byte keys, 100 checks, 1000 mutations) with their own
//! messages; `getMany` reads its keys one by one, not from one snapshot; there are no queues or
//! `watch`.

use std::future::Future;
use std::sync::Arc;

use rquickjs::prelude::Async;
use rquickjs::{Ctx, Function, Object};
use serde::Deserialize;
use serde_json::{Value, json};

use super::kv_quota::{QuotaError, UserMutation, commit_with_quota};
use crate::cluster::coordinator::Fence;
use crate::runtime::engine::WorkerEnv;
use crate::store::{
    CommitOutcome, Entry, ExpiryLeases, Key, KeyPart, ListOptions, MAX_KEY_BYTES, MAX_VALUE_BYTES, RawJson,
    Store, StoreError, Versionstamp,
};

/// First key part of every entry a script writes.
const USER_PREFIX: &str = "kv";

/// Builds `{net, local, webfix}` from the native functions of the two stores.
const KV_PRELUDE: &str = r#"(function (netNative, localNative, limits) {
  "use strict";
  const VERSIONSTAMP = /^[0-9a-fA-F]{20}$/;

  // UTF-8 length of a string (`zeros`: count NUL twice, as the key encoding escapes it).
  function utf8Length(text, zeros) {
    let n = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c < 0x80) n += c === 0 && zeros ? 2 : 1;
      else if (c < 0x800) n += 2;
      else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
        n += 4;
        i++;
      } else n += 3;
    }
    return n;
  }

  function describe(v) {
    if (v === null) return "null";
    if (Array.isArray(v)) return "an array";
    return typeof v;
  }
  function toError(where, err) {
    if (err.name === "TypeError") return new TypeError(`${where}: ${err.message}`);
    const e = new Error(`${where}: ${err.message}`);
    if (err.name !== "Error") e.name = err.name;
    return e;
  }
  // A key (or, with `what` = "prefix", "start" or "end", a list selector's key, which may be
  // empty), checked as the store will: same part types, same encoded size.
  function checkKey(where, key, what) {
    what = what || "key";
    if (!Array.isArray(key)) {
      throw new TypeError(`${where}: ${what} must be an array of strings, numbers and booleans, got ${describe(key)}`);
    }
    if (key.length === 0 && what !== "prefix" && what !== "start" && what !== "end") {
      throw new TypeError(`${where}: ${what} must not be empty`);
    }
    let size = 0;
    for (let i = 0; i < key.length; i++) {
      const part = key[i];
      const type = typeof part;
      if (type === "string") {
        size += 2 + utf8Length(part, true);
        continue;
      }
      if (type === "boolean") {
        size += 1;
        continue;
      }
      if (type === "number") {
        if (Number.isFinite(part)) {
          size += 9;
          continue;
        }
        throw new TypeError(`${where}: ${what} part ${i} must be a finite number, got ${part}`);
      }
      throw new TypeError(`${where}: ${what} part ${i} must be a string, number or boolean, got ${describe(part)}`);
    }
    if (size > limits.maxKeyBytes) {
      throw new TypeError(`${where}: ${what} exceeds ${limits.maxKeyBytes} bytes when encoded (${size} bytes)`);
    }
    return key;
  }
  function encodeValue(where, value) {
    let text;
    try {
      text = JSON.stringify(value);
    } catch (e) {
      throw new TypeError(`${where}: value is not JSON-serialisable: ${e && e.message}`);
    }
    if (text === undefined) throw new TypeError(`${where}: value is not JSON-serialisable (${describe(value)})`);
    const size = utf8Length(text, false);
    if (size > limits.maxValueBytes) {
      throw new TypeError(`${where}: value exceeds ${limits.maxValueBytes / 1024} KiB (${size} bytes as JSON)`);
    }
    return text;
  }
  function expireIn(where, options) {
    if (options === undefined || options === null) return null;
    if (typeof options !== "object") throw new TypeError(`${where}: options must be an object`);
    const ms = options.expireIn;
    if (ms === undefined || ms === null) return null;
    if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
      throw new TypeError(`${where}: expireIn must be a finite, non-negative number of milliseconds, got ${String(ms)}`);
    }
    return Math.floor(Math.min(ms, Number.MAX_SAFE_INTEGER));
  }
  function versionstampOf(where, vs) {
    if (vs === null) return null;
    if (typeof vs === "string" && VERSIONSTAMP.test(vs)) return vs;
    throw new TypeError(`${where}: versionstamp must be null or 20 hex digits, got ${describe(vs)}`);
  }
  async function call(where, native, request) {
    const reply = JSON.parse(await native(JSON.stringify(request)));
    if (reply.err) throw toError(where, reply.err);
    return reply.ok;
  }

  function makeKv(name, native) {
    const kv = {
      async get(key) {
        const where = `${name}.get`;
        return call(where, native.get, { key: checkKey(where, key) });
      },
      async getMany(keys) {
        const where = `${name}.getMany`;
        if (!Array.isArray(keys)) throw new TypeError(`${where}: expected an array of keys, got ${describe(keys)}`);
        if (keys.length > limits.maxGetMany) throw new TypeError(`${where}: Too many ranges (max ${limits.maxGetMany})`);
        const checked = keys.map((key) => checkKey(where, key));
        return Promise.all(checked.map((key) => call(where, native.get, { key })));
      },
      async set(key, value, options) {
        const where = `${name}.set`;
        const mutation = { op: "set", key: checkKey(where, key), value: encodeValue(where, value), expireIn: expireIn(where, options) };
        return call(where, native.commit, { checks: [], mutations: [mutation] });
      },
      async delete(key) {
        const where = `${name}.delete`;
        await call(where, native.commit, { checks: [], mutations: [{ op: "delete", key: checkKey(where, key) }] });
      },
      list(selector, options) {
        const where = `${name}.list`;
        if (selector === null || typeof selector !== "object") {
          throw new TypeError(`${where}: selector must be an object like {prefix: [...]}`);
        }
        // As in Deno, a selector key counts when it is an own property that is not undefined.
        // The keys are copied: the listing does not change if the script changes its arrays.
        const selectorKey = (what) =>
          Object.prototype.hasOwnProperty.call(selector, what) && selector[what] !== undefined
            ? checkKey(where, selector[what], what).slice()
            : null;
        const prefix = selectorKey("prefix");
        const start = selectorKey("start");
        const end = selectorKey("end");
        if (prefix !== null && start !== null && end !== null) {
          throw new TypeError(`${where}: Selector can not specify both 'start' and 'end' key when specifying 'prefix'`);
        }
        if (prefix === null && (start === null || end === null)) {
          throw new TypeError(`${where}: Selector must specify either 'prefix' or both 'start' and 'end' key`);
        }
        let limit = Infinity;
        let reverse = false;
        let batchSize = limits.listPage;
        let cursor = null;
        if (options !== undefined && options !== null) {
          if (typeof options !== "object") throw new TypeError(`${where}: options must be an object`);
          if (options.limit !== undefined && options.limit !== null) {
            limit = options.limit;
            if (!Number.isInteger(limit) || limit < 1 || limit > limits.maxListLimit) {
              throw new TypeError(`${where}: limit must be a positive integer of at most ${limits.maxListLimit}, got ${String(limit)}`);
            }
          }
          if (options.batchSize !== undefined && options.batchSize !== null) {
            batchSize = options.batchSize;
            if (!Number.isInteger(batchSize) || batchSize < 1) {
              throw new TypeError(`${where}: batchSize must be a positive integer: received ${String(batchSize)}`);
            }
            if (batchSize > limits.maxBatchSize) {
              throw new TypeError(`${where}: Too many entries (max ${limits.maxBatchSize})`);
            }
          }
          if (options.cursor !== undefined && options.cursor !== null) {
            if (typeof options.cursor !== "string") {
              throw new TypeError(`${where}: cursor must be a string from a listing's cursor, got ${describe(options.cursor)}`);
            }
            // As in Deno, an empty cursor starts from the beginning.
            cursor = options.cursor === "" ? null : options.cursor;
          }
          reverse = Boolean(options.reverse);
        }
        // Pages of at most limits.listPage entries (fewer with a smaller batchSize), each
        // resuming from the cursor of the last entry fetched, so that no call holds more than
        // one page in memory. The native side checks the selector and the cursor.
        const pageSize = Math.min(batchSize, limits.listPage);
        let resumeFrom = cursor;
        let current = cursor;
        let page = [];
        let cursors = [];
        let index = 0;
        let fetched = 0;
        let given = 0;
        let lastPage = false;
        let closed = false;
        let loading = null;
        async function fill() {
          const want = Math.min(pageSize, limit - fetched);
          const got = await call(where, native.list, { prefix, start, end, reverse, limit: want, cursor: resumeFrom });
          page = got.entries;
          cursors = got.cursors;
          index = 0;
          fetched += page.length;
          if (page.length < want || fetched >= limit) lastPage = true;
          if (page.length > 0) resumeFrom = cursors[cursors.length - 1];
        }
        return {
          // The cursor of the last entry handed out: `options.cursor` resumes just after it.
          get cursor() {
            if (current === null) throw new Error("Cannot get cursor before first iteration");
            return current;
          },
          async next() {
            while (!closed && given < limit && index >= page.length) {
              if (lastPage) {
                // Run out (not stopped by the limit): as in Deno, the cursor is then empty.
                current = "";
                closed = true;
                break;
              }
              loading = loading || fill().finally(() => { loading = null; });
              await loading;
            }
            if (closed || given >= limit || index >= page.length) return { value: undefined, done: true };
            current = cursors[index];
            given++;
            return { value: page[index++], done: false };
          },
          async return(value) {
            closed = true;
            page = [];
            cursors = [];
            index = 0;
            return { value, done: true };
          },
          [Symbol.asyncIterator]() {
            return this;
          },
        };
      },
      atomic() {
        const where = `${name}.atomic()`;
        const checks = [];
        const mutations = [];
        const setMutation = (w, key, value, options) =>
          ({ op: "set", key: checkKey(w, key), value: encodeValue(w, value), expireIn: expireIn(w, options) });
        const unsupported = (w, type) =>
          new TypeError(`${w}: '${type}' mutations are not supported: they work on Deno.KvU64 values, and values here are JSON`);
        const op = {
          check(...items) {
            for (const item of items) {
              if (item === null || typeof item !== "object") {
                throw new TypeError(`${where}.check: expected {key, versionstamp}, got ${describe(item)}`);
              }
              checks.push({
                key: checkKey(`${where}.check`, item.key),
                versionstamp: versionstampOf(`${where}.check`, item.versionstamp),
              });
            }
            return op;
          },
          // Deno's `mutate`: each item is checked before any is added, so a bad one adds none.
          mutate(...items) {
            const w = `${where}.mutate`;
            const added = [];
            for (const item of items) {
              if (item === null || typeof item !== "object") {
                throw new TypeError(`${w}: expected {type, key, value?}, got ${describe(item)}`);
              }
              switch (item.type) {
                case "set":
                  if (!Object.prototype.hasOwnProperty.call(item, "value")) {
                    throw new TypeError(`${w}: Invalid mutation 'set' without value`);
                  }
                  added.push(setMutation(w, item.key, item.value, item));
                  break;
                case "delete":
                  if (item.value) throw new TypeError(`${w}: Invalid mutation 'delete' with value`);
                  added.push({ op: "delete", key: checkKey(w, item.key) });
                  break;
                case "sum":
                case "min":
                case "max":
                  throw unsupported(w, item.type);
                default:
                  throw new TypeError(`${w}: Invalid mutation type ${JSON.stringify(String(item.type))}; expected 'set' or 'delete'`);
              }
            }
            mutations.push(...added);
            return op;
          },
          set(key, value, options) {
            mutations.push(setMutation(`${where}.set`, key, value, options));
            return op;
          },
          delete(key) {
            mutations.push({ op: "delete", key: checkKey(`${where}.delete`, key) });
            return op;
          },
          sum() {
            throw unsupported(`${where}.sum`, "sum");
          },
          min() {
            throw unsupported(`${where}.min`, "min");
          },
          max() {
            throw unsupported(`${where}.max`, "max");
          },
          async commit() {
            if (checks.length > limits.maxChecks) {
              throw new TypeError(`${where}.commit: more than ${limits.maxChecks} checks (${checks.length})`);
            }
            if (mutations.length > limits.maxMutations) {
              throw new TypeError(`${where}.commit: more than ${limits.maxMutations} mutations (${mutations.length})`);
            }
            return call(`${where}.commit`, native.commit, { checks, mutations });
          },
          // As in Deno: awaiting the builder itself is a mistake, not a silent no-op.
          then() {
            throw new TypeError(`${where}: the atomic operation is not a promise: did you forget to call commit()?`);
          },
        };
        return op;
      },
    };
    return kv;
  }

  function record(cfg) {
    return {
      channel: cfg.channel,
      module: cfg.module === undefined ? null : cfg.module,
      raw: cfg.raw === undefined ? null : cfg.raw,
      timestamp: cfg.timestamp === undefined || cfg.timestamp === null ? Date.now() : cfg.timestamp,
    };
  }
  function setOptions(cfg) {
    return cfg.expireIn === undefined || cfg.expireIn === null ? undefined : { expireIn: cfg.expireIn };
  }
  async function webfix(cfg) {
    const where = "Stels.webfix";
    if (cfg === null || typeof cfg !== "object") throw new TypeError(`${where}: expected a config object`);
    const brain = cfg.brain;
    if (brain === null || typeof brain !== "object" || typeof brain.get !== "function" ||
        typeof brain.set !== "function" || typeof brain.delete !== "function" || typeof brain.atomic !== "function") {
      throw new TypeError(`${where}: brain must be Stels.net or Stels.local`);
    }
    const channel = checkKey(where, cfg.channel, "channel");
    switch (cfg.method) {
      case "get":
        return brain.get(channel);
      case "set": {
        const value = record(cfg);
        const result = await brain.set(channel, value, setOptions(cfg));
        return { ok: true, key: channel, value, versionstamp: result.versionstamp };
      }
      case "update": {
        if (cfg.versionstamp === undefined) {
          throw new TypeError(`${where}: update needs a versionstamp (null: the channel must not exist yet)`);
        }
        const value = record(cfg);
        const result = await brain.atomic()
          .check({ key: channel, versionstamp: cfg.versionstamp })
          .set(channel, value, setOptions(cfg))
          .commit();
        return result.ok ? { ok: true, key: channel, value, versionstamp: result.versionstamp } : { ok: false };
      }
      case "delete":
        await brain.delete(channel);
        return { ok: true, key: channel, value: null, versionstamp: null };
      default:
        throw new TypeError(`${where}: unknown method ${String(cfg.method)}; expected get, set, update or delete`);
    }
  }

  return { net: makeKv("Stels.net", netNative), local: makeKv("Stels.local", localNative), webfix };
})"#;

/// Largest `limit` of `list` (the entries are fetched in pages, so this bounds time, not
/// memory).
pub const MAX_LIST_LIMIT: u64 = 1_000_000;
/// Entries fetched per store call of `list` (a smaller `batchSize` makes the pages smaller).
pub const LIST_PAGE: u64 = 100;
/// Largest `batchSize` of `list`, as in Deno (larger ones are refused, not cut: a page is
/// never more than [`LIST_PAGE`] entries whatever the script asks).
pub const MAX_BATCH_SIZE: u64 = 1000;
/// Keys in one `getMany`, as in Deno.
pub const MAX_GET_MANY: usize = 10;
/// Checks in one atomic commit.
pub const MAX_CHECKS: usize = 10;
/// Mutations in one atomic commit. With its bookkeeping (owner, usage and expiry records, up to
/// 7 store operations a mutation) the largest script commit stays within the store contract's
/// 128 operations and 1.5 MiB, so a script that commits on one node commits on a cluster too.
pub const MAX_MUTATIONS: usize = 16;

/// Installs `stels.net` (over `env.net`), `stels.local` (over `env.local`) and `stels.webfix`.
///
/// The native functions behind them return futures that are `Send` and spawn no tasks; they
/// are polled by the context's runtime, which must run inside a tokio runtime (the stores use
/// `spawn_blocking`).
pub fn install_kv<'js>(ctx: &Ctx<'js>, stels: &Object<'js>, env: &WorkerEnv) -> rquickjs::Result<()> {
    let mut options = rquickjs::context::EvalOptions::default();
    options.strict = true;
    options.filename = Some("<stels:kv>".to_string());
    let factory: Function<'js> = ctx.eval_with_options(KV_PRELUDE, options)?;
    let limits = Object::new(ctx.clone())?;
    limits.set("maxKeyBytes", MAX_KEY_BYTES - prefix_bytes())?;
    limits.set("maxValueBytes", MAX_VALUE_BYTES)?;
    limits.set("maxListLimit", MAX_LIST_LIMIT as f64)?;
    limits.set("listPage", LIST_PAGE as f64)?;
    limits.set("maxBatchSize", MAX_BATCH_SIZE as f64)?;
    limits.set("maxGetMany", MAX_GET_MANY)?;
    limits.set("maxChecks", MAX_CHECKS)?;
    limits.set("maxMutations", MAX_MUTATIONS)?;
    let api: Object<'js> = factory.call((
        natives(
            ctx,
            Scope::new(&env.net, &env.net_expiry, env.net_fence.clone(), env),
        )?,
        natives(ctx, Scope::new(&env.local, &env.local_expiry, None, env))?,
        limits,
    ))?;
    for name in ["net", "local", "webfix"] {
        stels.set(name, api.get::<_, rquickjs::Value<'js>>(name)?)?;
    }
    Ok(())
}

/// One worker's view of one store.
struct Scope {
    store: Arc<dyn Store>,
    /// `store`'s shared leases for `expireIn`.
    expiry: Arc<ExpiryLeases>,
    /// A leader-mode run's term on the cluster store: its writes are refused once another term
    /// has begun (S-22).
    fence: Option<Fence>,
    /// The worker whose writes these are (quota attribution).
    sid: String,
    quota_bytes: u64,
    /// This worker's commits to this store, one at a time: its own concurrent writes would
    /// otherwise all race for its usage record and retry.
    commits: tokio::sync::Mutex<()>,
}

impl Scope {
    fn new(
        store: &Arc<dyn Store>,
        expiry: &Arc<ExpiryLeases>,
        fence: Option<Fence>,
        env: &WorkerEnv,
    ) -> Arc<Scope> {
        Arc::new(Scope {
            store: Arc::clone(store),
            expiry: Arc::clone(expiry),
            fence,
            sid: env.config.sid.clone(),
            quota_bytes: env.kv_quota_bytes,
            commits: tokio::sync::Mutex::new(()),
        })
    }
}

/// The native `{get, list, commit}` of one store, each `(requestJson) => Promise<replyJson>`.
fn natives<'js>(ctx: &Ctx<'js>, scope: Arc<Scope>) -> rquickjs::Result<Object<'js>> {
    let object = Object::new(ctx.clone())?;
    object.set("get", native(ctx, &scope, get)?)?;
    object.set("list", native(ctx, &scope, list)?)?;
    object.set("commit", native(ctx, &scope, commit)?)?;
    Ok(object)
}

/// Wraps `op` as an async JS function of one JSON string, replying with [`reply`]'s envelope.
fn native<'js, F, Fut>(ctx: &Ctx<'js>, scope: &Arc<Scope>, op: F) -> rquickjs::Result<Function<'js>>
where
    F: Fn(Arc<Scope>, String) -> Fut + 'static,
    Fut: Future<Output = Result<String, KvError>> + Send + 'static,
{
    let scope = Arc::clone(scope);
    Function::new(
        ctx.clone(),
        Async(move |request: String| {
            let work = op(Arc::clone(&scope), request);
            async move { reply(work.await) }
        }),
    )
}

/// Why a KV call failed, as the script sees it.
#[derive(Debug, thiserror::Error)]
enum KvError {
    /// A bad argument: rejects with `TypeError`.
    #[error("{0}")]
    Type(String),
    /// The write would take the worker over its quota: rejects with `QuotaExceeded`.
    #[error("{0}")]
    Quota(QuotaError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<QuotaError> for KvError {
    fn from(err: QuotaError) -> Self {
        match err {
            QuotaError::Store(err) => KvError::Store(err),
            other => KvError::Quota(other),
        }
    }
}

impl KvError {
    /// The JS error class the prelude creates.
    fn js_name(&self) -> &'static str {
        match self {
            KvError::Type(_) | KvError::Store(StoreError::TooLarge { .. }) => "TypeError",
            KvError::Quota(QuotaError::Exceeded { .. }) => "QuotaExceeded",
            KvError::Quota(QuotaError::StaleLeader { .. }) => "StaleLeader",
            KvError::Quota(_) | KvError::Store(_) => "Error",
        }
    }
}

/// `{"ok": value}` or `{"err": {"name", "message"}}`, as JSON text.
fn reply(result: Result<String, KvError>) -> String {
    match result {
        Ok(json) => format!(r#"{{"ok":{json}}}"#),
        Err(err) => {
            if let KvError::Store(
                StoreError::Corrupt(_)
                | StoreError::Backend { .. }
                | StoreError::Unavailable(_)
                | StoreError::Timeout(_),
            ) = &err
            {
                tracing::warn!(error = %err, "worker KV call failed");
            }
            json!({ "err": { "name": err.js_name(), "message": err.to_string() } }).to_string()
        }
    }
}

/// Request of `get`.
#[derive(Deserialize)]
struct GetRequest {
    /// The user key (JSON array).
    key: Value,
}

/// Request of `list`: one page.
#[derive(Deserialize)]
struct ListRequest {
    /// The selector's user keys (JSON arrays), those it has: see [`Selector::parse`].
    prefix: Option<Value>,
    start: Option<Value>,
    end: Option<Value>,
    /// Entries in this page, 1..=[`LIST_PAGE`].
    limit: u64,
    reverse: bool,
    /// The page starts just after the entry this cursor was read from (in listing order): the
    /// last entry of the previous page, or the script's `options.cursor`.
    cursor: Option<String>,
}

/// Request of `commit` (also used by `set` and `delete`).
#[derive(Deserialize)]
struct CommitRequest {
    checks: Vec<CheckRequest>,
    mutations: Vec<MutationRequest>,
}

/// One `.check({key, versionstamp})`.
#[derive(Deserialize)]
struct CheckRequest {
    key: Value,
    /// `None`: the key must be absent.
    versionstamp: Option<String>,
}

/// One `.set` or `.delete`.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum MutationRequest {
    Set {
        key: Value,
        /// The value as JSON text (`JSON.stringify` in the prelude).
        value: String,
        #[serde(rename = "expireIn")]
        expire_in: Option<u64>,
    },
    Delete {
        key: Value,
    },
}

/// Parses a request the prelude built.
fn parse_request<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, KvError> {
    serde_json::from_str(text).map_err(|e| KvError::Type(format!("malformed request: {e}")))
}

/// The encoded size of `["kv"]`, which every stored key starts with.
fn prefix_bytes() -> usize {
    Key::of(&[USER_PREFIX]).encode().len()
}

/// The store key of a user key given as a JSON array (not empty: list selectors alone may be).
fn store_key(user: &Value) -> Result<Key, KvError> {
    let user = Key::from_json(user).map_err(KvError::Type)?;
    if user.0.is_empty() {
        return Err(KvError::Type("key must not be empty".into()));
    }
    namespaced(user)
}

/// The store key of a user key: `["kv", ...user]`, checked against the store's key size.
fn namespaced(user: Key) -> Result<Key, KvError> {
    let mut parts = Vec::with_capacity(user.0.len() + 1);
    parts.push(KeyPart::Str(USER_PREFIX.to_string()));
    parts.extend(user.0);
    let key = Key(parts);
    if key.encode().len() > MAX_KEY_BYTES {
        return Err(KvError::Type(format!(
            "key exceeds {} bytes when encoded",
            MAX_KEY_BYTES - prefix_bytes()
        )));
    }
    Ok(key)
}

/// A stored entry as the script sees it: its key without the `"kv"` part.
fn user_entry(entry: Entry) -> Entry {
    Entry {
        key: Key(entry.key.0.into_iter().skip(1).collect()),
        ..entry
    }
}

/// `get(key)`: the entry, or `{key, value: null, versionstamp: null}`.
async fn get(scope: Arc<Scope>, request: String) -> Result<String, KvError> {
    let request: GetRequest = parse_request(&request)?;
    let key = store_key(&request.key)?;
    Ok(match scope.store.get(&key).await?.entry {
        Some(entry) => user_entry(entry).to_json_text(),
        None => json!({ "key": request.key, "value": null, "versionstamp": null }).to_string(),
    })
}

/// A `list` selector over user keys, as Deno KV reads it: `{prefix}`, `{prefix, start}`,
/// `{prefix, end}` or `{start, end}`, start included and end excluded.
#[derive(Debug)]
struct Selector {
    /// Every key listed is strictly under this one (the store lists `["kv", ...within]`): the
    /// prefix, or for `{start, end}` the longest key both start with that is shorter than
    /// `start`.
    within: Key,
    /// No key before this one is listed.
    start: Option<Key>,
    /// Only keys before this one are listed.
    end: Option<Key>,
    /// The encoded bytes every listed key starts with, which cursors leave out (Deno's common
    /// prefix: the prefix, or the bytes `start` and `end` share), so a cursor names a key only
    /// within this selector and reads as Deno's.
    cursor_base: Vec<u8>,
}

impl Selector {
    /// The selector of a list request; the messages are Deno's.
    fn parse(
        prefix: Option<&Value>,
        start: Option<&Value>,
        end: Option<&Value>,
    ) -> Result<Selector, KvError> {
        let user_key = |value: &Value| -> Result<Key, KvError> {
            let key = Key::from_json(value).map_err(KvError::Type)?;
            namespaced(key.clone())?;
            Ok(key)
        };
        let prefix = prefix.map(user_key).transpose()?;
        let start = start.map(user_key).transpose()?;
        let end = end.map(user_key).transpose()?;
        let type_error = |message: &str| Err(KvError::Type(message.to_string()));
        match (prefix, start, end) {
            (Some(_), Some(_), Some(_)) => {
                type_error("Selector can not specify both 'start' and 'end' key when specifying 'prefix'")
            }
            (Some(prefix), start, end) => {
                if start.as_ref().is_some_and(|start| !is_under(start, &prefix)) {
                    return type_error("Start key is not in the keyspace defined by prefix");
                }
                if end.as_ref().is_some_and(|end| !is_under(end, &prefix)) {
                    return type_error("End key is not in the keyspace defined by prefix");
                }
                Ok(Selector {
                    cursor_base: prefix.encode(),
                    within: prefix,
                    start,
                    end,
                })
            }
            (None, Some(start), Some(end)) => {
                let (start_bytes, end_bytes) = (start.encode(), end.encode());
                if start_bytes > end_bytes {
                    return type_error("Start key is greater than end key");
                }
                let shared_bytes = start_bytes
                    .iter()
                    .zip(&end_bytes)
                    .take_while(|(a, b)| a == b)
                    .count();
                let shared_parts = start
                    .0
                    .iter()
                    .zip(&end.0)
                    .take_while(|(a, b)| same_part(a, b))
                    .count()
                    .min(start.0.len().saturating_sub(1));
                Ok(Selector {
                    within: Key(start.0.iter().take(shared_parts).cloned().collect()),
                    cursor_base: start_bytes.iter().take(shared_bytes).copied().collect(),
                    start: Some(start),
                    end: Some(end),
                })
            }
            _ => type_error("Selector must specify either 'prefix' or both 'start' and 'end' key"),
        }
    }

    /// Whether `key` (under `within`) is between the start and the end.
    fn contains(&self, key: &Key) -> bool {
        let encoded = key.encode();
        self.start.as_ref().is_none_or(|start| encoded >= start.encode())
            && self.end.as_ref().is_none_or(|end| encoded < end.encode())
    }

    /// The cursor of a listed key: its encoding after [`Selector::cursor_base`], in URL-safe
    /// base64.
    fn cursor_of(&self, key: &Key) -> String {
        let encoded = key.encode();
        base64url(encoded.get(self.cursor_base.len()..).unwrap_or_default())
    }

    /// The user key a cursor of this selector was read from. Anything else — a forged cursor,
    /// or one of a listing whose keys this one does not cover — is refused, so a cursor can
    /// only ever name a position among the keys this selector lists, inside the namespace.
    fn cursor_key(&self, cursor: &str) -> Result<Key, KvError> {
        let invalid = || KvError::Type("invalid cursor".to_string());
        if cursor.len() > MAX_KEY_BYTES.div_ceil(3) * 4 {
            return Err(invalid());
        }
        let mut bytes = self.cursor_base.clone();
        bytes.extend(from_base64url(cursor).ok_or_else(invalid)?);
        let key = Key::decode(&bytes)
            .filter(|key| key.encode() == bytes)
            .filter(|key| {
                key.0
                    .iter()
                    .all(|part| !matches!(part, KeyPart::Num(n) if !n.is_finite()))
            })
            .ok_or_else(invalid)?;
        let below_start = self.start.as_ref().is_some_and(|start| bytes < start.encode());
        let past_end = self.end.as_ref().is_some_and(|end| bytes > end.encode());
        if !is_under(&key, &self.within) || below_start || past_end {
            return Err(KvError::Type("cursor out of bounds".to_string()));
        }
        Ok(key)
    }
}

/// Whether `key` is longer than `prefix` and starts with its parts (numbers compared by their
/// bits, as the encoding does: `-0` is not `0`).
fn is_under(key: &Key, prefix: &Key) -> bool {
    key.0.len() > prefix.0.len() && prefix.0.iter().zip(&key.0).all(|(a, b)| same_part(a, b))
}

/// Whether two key parts encode alike.
fn same_part(a: &KeyPart, b: &KeyPart) -> bool {
    match (a, b) {
        (KeyPart::Num(a), KeyPart::Num(b)) => a.to_bits() == b.to_bits(),
        _ => a == b,
    }
}

/// The URL-safe base64 alphabet's character for the low six bits of `value`.
fn base64url_char(value: u32) -> char {
    let value = (value & 63) as u8;
    char::from(match value {
        0..=25 => b'A' + value,
        26..=51 => b'a' + (value - 26),
        52..=61 => b'0' + (value - 52),
        62 => b'-',
        _ => b'_',
    })
}

/// `bytes` in URL-safe base64 with padding (the form of Deno's cursors).
fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let group = byte(0) << 16 | byte(1) << 8 | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(base64url_char(group >> (18 - 6 * i)));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The bytes of URL-safe base64 text (padding optional); `None` for anything else.
fn from_base64url(text: &str) -> Option<Vec<u8>> {
    let digits = text.trim_end_matches('=');
    if digits.len() % 4 == 1 || text.len() - digits.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    let (mut group, mut bits) = (0u32, 0u32);
    for c in digits.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        group = group << 6 | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((group >> bits) as u8);
            group &= (1 << bits) - 1;
        }
    }
    // Bits left over must be zero: one text per byte string.
    (group == 0).then_some(out)
}

/// One page of `list(selector, {limit, reverse, cursor})`: at most `limit` entries of the
/// selector in listing order, after the cursor's entry when there is one; `{entries, cursors}`
/// with the cursor of each entry.
async fn list(scope: Arc<Scope>, request: String) -> Result<String, KvError> {
    let request: ListRequest = parse_request(&request)?;
    if !(1..=LIST_PAGE).contains(&request.limit) {
        return Err(KvError::Type(format!(
            "page size must be between 1 and {LIST_PAGE}, got {}",
            request.limit
        )));
    }
    let selector = Selector::parse(
        request.prefix.as_ref(),
        request.start.as_ref(),
        request.end.as_ref(),
    )?;
    // An empty cursor is a real one here: that of a `{start, end}` listing's start when the
    // start is all the end begins with (the script's own empty `options.cursor` never comes).
    let resume = match request.cursor.as_deref() {
        None => None,
        Some(cursor) => Some(selector.cursor_key(cursor)?),
    };
    let mut entries = Vec::new();
    let mut want = usize::try_from(request.limit).unwrap_or(usize::MAX);
    // The store lists the keys after (or, reversed, before) a given one. A start is included,
    // so a forward listing from it reads the start itself first.
    let after = match (resume, request.reverse) {
        (Some(cursor), _) => Some(cursor),
        (None, true) => selector.end.clone(),
        (None, false) => match &selector.start {
            Some(start) if !start.0.is_empty() => {
                if let Some(entry) = scope.store.get(&namespaced(start.clone())?).await?.entry {
                    entries.push(user_entry(entry));
                    want -= 1;
                }
                Some(start.clone())
            }
            _ => None,
        },
    };
    if want > 0 {
        let options = ListOptions {
            limit: Some(want),
            reverse: request.reverse,
            start_after: after.map(namespaced).transpose()?,
        };
        let page = scope
            .store
            .list(&namespaced(selector.within.clone())?, options)
            .await?;
        entries.extend(page.entries.into_iter().map(user_entry));
    }
    // The store lists all of `within`; the selector's other bound ends the listing.
    if let Some(outside) = entries.iter().position(|entry| !selector.contains(&entry.key)) {
        entries.truncate(outside);
    }
    let cursors: Vec<String> = entries
        .iter()
        .map(|entry| selector.cursor_of(&entry.key))
        .collect();
    Ok(format!(
        r#"{{"entries":{},"cursors":{}}}"#,
        Entry::json_array(&entries),
        json!(cursors)
    ))
}

/// `atomic().commit()` (and `set`, `delete`): `{ok: true, versionstamp}` or `{ok: false}`.
async fn commit(scope: Arc<Scope>, request: String) -> Result<String, KvError> {
    let request: CommitRequest = parse_request(&request)?;
    if request.checks.len() > MAX_CHECKS || request.mutations.len() > MAX_MUTATIONS {
        return Err(KvError::Type(format!(
            "an atomic commit takes at most {MAX_CHECKS} checks and {MAX_MUTATIONS} mutations"
        )));
    }
    let mut checks = Vec::with_capacity(request.checks.len());
    for check in request.checks {
        let expected = match check.versionstamp {
            None => None,
            Some(text) => Some(
                Versionstamp::parse(&text)
                    .ok_or_else(|| KvError::Type(format!("invalid versionstamp {text:?}")))?,
            ),
        };
        checks.push((store_key(&check.key)?, expected));
    }
    let mut mutations = Vec::with_capacity(request.mutations.len());
    for mutation in request.mutations {
        mutations.push(match mutation {
            MutationRequest::Set {
                key,
                value,
                expire_in,
            } => {
                let key = store_key(&key)?;
                if value.len() > MAX_VALUE_BYTES {
                    return Err(StoreError::value_too_large(value.len()).into());
                }
                let bytes = u64::try_from(key.encode().len().saturating_add(value.len())).unwrap_or(u64::MAX);
                let value = RawJson::from_untrusted(value.as_bytes())
                    .map_err(|e| KvError::Type(format!("value is not storable JSON: {e}")))?;
                UserMutation::Set {
                    key,
                    value,
                    bytes,
                    expire_in_ms: expire_in,
                }
            }
            MutationRequest::Delete { key } => UserMutation::Delete {
                key: store_key(&key)?,
            },
        });
    }
    let _one_at_a_time = scope.commits.lock().await;
    let outcome = commit_with_quota(
        scope.store.as_ref(),
        &scope.expiry,
        scope.fence.as_ref(),
        &scope.sid,
        scope.quota_bytes,
        &checks,
        &mutations,
    )
    .await?;
    Ok(match outcome {
        CommitOutcome::Committed(versionstamp) => format!(r#"{{"ok":true,"versionstamp":"{versionstamp}"}}"#),
        CommitOutcome::CheckFailed => r#"{"ok":false}"#.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use async_trait::async_trait;
    use tempfile::TempDir;

    use super::*;
    use crate::runtime::engine::FetchPolicy;
    use crate::runtime::engine::testing::{eval_body, test_env};
    use crate::runtime::sdk::kv_quota::{sweep_expired, usage_bytes};
    use crate::store::fjall::FjallStore;
    use crate::store::{AtomicWrite, Got, Lease, LeaseId, Page, Revision, StoreResult, WatchStream};

    fn env(net: Arc<dyn Store>, local: Arc<dyn Store>) -> WorkerEnv {
        test_env(net, local, FetchPolicy::default())
    }

    /// Two real stores in one temp dir.
    struct Fixture {
        _dir: TempDir,
        net: Arc<FjallStore>,
        local: Arc<FjallStore>,
        env: WorkerEnv,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let net = Arc::new(FjallStore::open(&dir.path().join("net"), false).unwrap());
        let local = Arc::new(FjallStore::open(&dir.path().join("local"), false).unwrap());
        let env = env(net.clone(), local.clone());
        Fixture {
            _dir: dir,
            net,
            local,
            env,
        }
    }

    /// Runs `body` as an async function body with `Stels` installed; its result as JSON, or
    /// the uncaught error as text.
    async fn try_run(env: &WorkerEnv, body: &str) -> Result<Value, String> {
        eval_body(env, body, |ctx, env| {
            let stels = Object::new(ctx.clone()).unwrap();
            install_kv(ctx, &stels, env).unwrap();
            ctx.globals().set("Stels", stels).unwrap();
        })
        .await
    }

    async fn run(env: &WorkerEnv, body: &str) -> Value {
        match try_run(env, body).await {
            Ok(value) => value,
            Err(err) => panic!("script failed: {err}"),
        }
    }

    /// `{name, message}` of what `expr` (an awaited expression) throws.
    async fn error_of(env: &WorkerEnv, expr: &str) -> (String, String) {
        let body = format!(
            "try {{ await ({expr}); return null; }} catch (e) {{ return {{ name: e.name, message: e.message }}; }}"
        );
        let value = run(env, &body).await;
        assert!(!value.is_null(), "{expr} did not throw");
        (
            value["name"].as_str().unwrap().to_string(),
            value["message"].as_str().unwrap().to_string(),
        )
    }

    fn is_versionstamp(value: &Value) -> bool {
        value.as_str().is_some_and(|s| Versionstamp::parse(s).is_some())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn get_set_delete() {
        let f = fixture();
        let out = run(
            &f.env,
            r#"
            const kv = Stels.net;
            const absent = await kv.get(["a", 1, true]);
            const set = await kv.set(["a", 1, true], { n: 1, s: "x", list: [1, 2] });
            const got = await kv.get(["a", 1, true]);
            const deleted = await kv.delete(["a", 1, true]);
            const after = await kv.get(["a", 1, true]);
            return { absent, set, got, deleted: deleted === undefined, after };
            "#,
        )
        .await;
        assert_eq!(
            out["absent"],
            json!({"key": ["a", 1, true], "value": null, "versionstamp": null})
        );
        assert_eq!(out["set"]["ok"], json!(true));
        assert!(is_versionstamp(&out["set"]["versionstamp"]));
        assert_eq!(out["got"]["key"], json!(["a", 1, true]));
        assert_eq!(out["got"]["value"], json!({ "n": 1, "s": "x", "list": [1, 2] }));
        assert_eq!(out["got"]["versionstamp"], out["set"]["versionstamp"]);
        assert_eq!(out["deleted"], json!(true));
        assert_eq!(out["after"]["value"], Value::Null);
    }

    #[tokio::test]
    async fn numbers_round_trip_exactly() {
        // Needs serde_json's `float_roundtrip`: its default parser is off by one ULP for
        // about 8% of decimals like these.
        let f = fixture();
        let out = run(
            &f.env,
            r#"
            const values = [0.1 + 0.2, 1.0715660391465826e-75, -1.81996730402717e-179, 2 ** 53 + 2, -0.5];
            for (let i = 0; i < 3000; i++) values.push(i * 0.01 + 0.1);
            await Stels.net.set(["n"], values);
            const back = (await Stels.net.get(["n"])).value;
            return back.filter((v, i) => v !== values[i]).length;
            "#,
        )
        .await;
        assert_eq!(out, json!(0));
    }

    #[tokio::test]
    async fn list_prefix_limit_reverse() {
        let f = fixture();
        let out = run(
            &f.env,
            r#"
            const kv = Stels.local;
            for (const n of [3, 1, 2]) await kv.set(["t", "x", n], n * 10);
            await kv.set(["t", "y"], "other");
            await kv.set(["t"], "the prefix itself");
            const keys = async (iter) => { const out = []; for await (const e of iter) out.push(e.key); return out; };
            const all = await keys(kv.list({ prefix: ["t", "x"] }));
            const limited = await keys(kv.list({ prefix: ["t", "x"] }, { limit: 2 }));
            const reversed = await keys(kv.list({ prefix: ["t", "x"] }, { reverse: true, limit: 2 }));
            const everything = await keys(kv.list({ prefix: [] }));
            const iter = kv.list({ prefix: ["t", "x"] });
            const first = await iter.next();
            let broke = 0;
            for await (const e of kv.list({ prefix: ["t"] })) { broke++; break; }
            return { all, limited, reversed, everything, first, broke };
            "#,
        )
        .await;
        assert_eq!(out["all"], json!([["t", "x", 1], ["t", "x", 2], ["t", "x", 3]]));
        assert_eq!(out["limited"], json!([["t", "x", 1], ["t", "x", 2]]));
        assert_eq!(out["reversed"], json!([["t", "x", 3], ["t", "x", 2]]));
        assert_eq!(
            out["everything"],
            json!([["t"], ["t", "x", 1], ["t", "x", 2], ["t", "x", 3], ["t", "y"]])
        );
        assert_eq!(out["first"]["done"], json!(false));
        assert_eq!(out["first"]["value"]["value"], json!(10));
        assert!(is_versionstamp(&out["first"]["value"]["versionstamp"]));
        assert_eq!(out["broke"], json!(1));
    }

    #[tokio::test]
    async fn atomic_checks() {
        let f = fixture();
        let out = run(
            &f.env,
            r#"
            const kv = Stels.net;
            const created = await kv.atomic().check({ key: ["c"], versionstamp: null }).set(["c"], 1).commit();
            const again = await kv.atomic().check({ key: ["c"], versionstamp: null }).set(["c"], 2).commit();
            const entry = await kv.get(["c"]);
            const updated = await kv.atomic()
              .check(entry, { key: ["d"], versionstamp: null })
              .set(["c"], 3)
              .set(["d"], 4, { expireIn: 60000 })
              .commit();
            const stale = await kv.atomic().check(entry).delete(["c"]).commit();
            const c = await kv.get(["c"]);
            const d = await kv.get(["d"]);
            const removed = await kv.atomic().check(c).delete(["c"]).delete(["d"]).commit();
            const gone = await kv.getMany([["c"], ["d"]]);
            return { created, again, updated, stale, c, d, removed, gone };
            "#,
        )
        .await;
        assert_eq!(out["created"]["ok"], json!(true));
        assert_eq!(out["again"], json!({ "ok": false }));
        assert_eq!(out["updated"]["ok"], json!(true));
        assert_eq!(out["stale"], json!({ "ok": false }));
        assert_eq!(out["c"]["value"], json!(3));
        assert_eq!(out["d"]["value"], json!(4));
        assert_eq!(out["c"]["versionstamp"], out["updated"]["versionstamp"]);
        assert_eq!(out["removed"]["ok"], json!(true));
        assert_eq!(out["gone"][0]["value"], Value::Null);
        assert_eq!(out["gone"][1]["value"], Value::Null);
    }

    #[tokio::test]
    async fn expire_in() {
        let f = fixture();
        let out = run(
            &f.env,
            r#"
            await Stels.net.set(["short"], 1, { expireIn: 50 });
            await Stels.net.atomic().set(["short2"], 2, { expireIn: 50 }).commit();
            await Stels.net.set(["long"], 3, { expireIn: 600000 });
            return (await Stels.net.get(["short"])).value;
            "#,
        )
        .await;
        assert_eq!(out, json!(1));
        tokio::time::sleep(Duration::from_millis(120)).await;
        let out = run(
            &f.env,
            r#"
            const keys = [];
            for await (const e of Stels.net.list({ prefix: [] })) keys.push(e.key);
            return { short: (await Stels.net.get(["short"])).value, keys };
            "#,
        )
        .await;
        assert_eq!(out, json!({ "short": null, "keys": [["long"]] }));
    }

    #[tokio::test]
    async fn key_and_value_validation() {
        let f = fixture();
        let e = &f.env;
        let cases = [
            ("Stels.net.get('a')", "Stels.net.get: key must be an array"),
            (
                "Stels.net.get(['a', {}])",
                "Stels.net.get: key part 1 must be a string, number or boolean",
            ),
            (
                "Stels.net.set(['a', NaN], 1)",
                "Stels.net.set: key part 1 must be a finite number",
            ),
            (
                "Stels.net.delete([undefined])",
                "Stels.net.delete: key part 0 must be a string",
            ),
            (
                "Stels.net.set(['a'], undefined)",
                "Stels.net.set: value is not JSON-serialisable",
            ),
            (
                "Stels.net.set(['a'], 1n)",
                "Stels.net.set: value is not JSON-serialisable",
            ),
            (
                "Stels.net.set(['a'], 1, { expireIn: -1 })",
                "Stels.net.set: expireIn must be",
            ),
            (
                "Stels.local.list({ prefix: 'x' })",
                "Stels.local.list: prefix must be an array",
            ),
            (
                "Stels.local.list({ start: ['a'] })",
                "Stels.local.list: Selector must specify either 'prefix' or both 'start' and 'end' key",
            ),
            (
                "Stels.local.list({ prefix: [] }, { limit: 1.5 })",
                "Stels.local.list: limit must be a positive integer of at most 1000000, got 1.5",
            ),
            (
                "Stels.local.list({ prefix: [] }, { limit: 1e300 })",
                "Stels.local.list: limit must be a positive integer of at most 1000000, got 1e+300",
            ),
            (
                "Stels.local.list({ prefix: [] }, { limit: 0 })",
                "Stels.local.list: limit must be a positive integer",
            ),
            (
                "Stels.local.list({ prefix: [] }, { limit: -1 })",
                "Stels.local.list: limit must be a positive integer",
            ),
            (
                "Stels.local.list({ prefix: [] }, { limit: NaN })",
                "Stels.local.list: limit must be a positive integer",
            ),
            (
                "Stels.local.list({ prefix: [] }, { limit: Infinity })",
                "Stels.local.list: limit must be a positive integer",
            ),
            ("Stels.net.get([])", "Stels.net.get: key must not be empty"),
            ("Stels.net.set([], 1)", "Stels.net.set: key must not be empty"),
            ("Stels.net.delete([])", "Stels.net.delete: key must not be empty"),
            (
                "Stels.net.atomic().check({ key: [], versionstamp: null }).commit()",
                "Stels.net.atomic().check: key must not be empty",
            ),
            (
                "Stels.net.atomic().set([], 1).commit()",
                "Stels.net.atomic().set: key must not be empty",
            ),
            (
                "Stels.webfix({ brain: Stels.net, method: 'get', channel: [] })",
                "Stels.webfix: channel must not be empty",
            ),
            (
                "Stels.net.set(['a', Infinity], 1)",
                "Stels.net.set: key part 1 must be a finite number",
            ),
            (
                "Stels.net.set(['a'], 1, { expireIn: NaN })",
                "Stels.net.set: expireIn must be a finite, non-negative number of milliseconds, got NaN",
            ),
            (
                "Stels.net.set(['a'], 1, { expireIn: Infinity })",
                "Stels.net.set: expireIn must be a finite, non-negative number of milliseconds, got Infinity",
            ),
            (
                "(() => { const op = Stels.net.atomic(); for (let i = 0; i < 17; i++) op.delete(['d', i]); return op.commit(); })()",
                "Stels.net.atomic().commit: more than 16 mutations (17)",
            ),
            (
                "(() => { const op = Stels.net.atomic(); for (let i = 0; i < 11; i++) op.check({ key: ['c', i], versionstamp: null }); return op.commit(); })()",
                "Stels.net.atomic().commit: more than 10 checks (11)",
            ),
            (
                "Stels.net.get(['\\0'.repeat(1100)])",
                "Stels.net.get: key exceeds 2044 bytes when encoded (2202 bytes)",
            ),
            (
                "Stels.net.set(['v'], '\\u00e9'.repeat(40000))",
                "Stels.net.set: value exceeds 64 KiB (80002 bytes as JSON)",
            ),
            (
                "Stels.net.atomic().check({ key: ['a'], versionstamp: 'nope' }).commit()",
                "Stels.net.atomic().check: versionstamp must be null or 20 hex digits",
            ),
            (
                "Stels.net.atomic().check({ key: ['a'] }).commit()",
                "Stels.net.atomic().check: versionstamp must be null",
            ),
            (
                "Stels.net.set(['v'], 'x'.repeat(70000))",
                "Stels.net.set: value exceeds 64 KiB",
            ),
            (
                "Stels.net.atomic().set(['v'], 'x'.repeat(70000)).commit()",
                "Stels.net.atomic().set: value exceeds 64 KiB",
            ),
            (
                "Stels.net.get(['k'.repeat(3000)])",
                "Stels.net.get: key exceeds 2044 bytes",
            ),
            (
                "Stels.net.set(['k'.repeat(3000)], 1)",
                "Stels.net.set: key exceeds 2044 bytes",
            ),
        ];
        for (expr, message) in cases {
            let (name, got) = error_of(e, expr).await;
            assert_eq!(name, "TypeError", "{expr}: {got}");
            assert!(got.starts_with(message), "{expr}: {got}");
        }
        // Nothing was written by the failed calls.
        assert!(
            f.net
                .list(&Key::default(), ListOptions::default())
                .await
                .unwrap()
                .entries
                .is_empty()
        );
    }

    #[tokio::test]
    async fn keys_are_namespaced() {
        let f = fixture();
        let node_key = Key::of(&["ami", "worker", "w1"]);
        f.net
            .commit(AtomicWrite::new().set(node_key.clone(), json!({ "node": true })))
            .await
            .unwrap();
        let out = run(
            &f.env,
            r#"
            const before = await Stels.net.get(["ami", "worker", "w1"]);
            const listed = [];
            for await (const e of Stels.net.list({ prefix: [] })) listed.push(e.key);
            await Stels.net.set(["ami", "worker", "w1"], "script");
            await Stels.local.set(["only", "local"], 1);
            await Stels.net.delete(["ami", "worker", "w1"]);
            await Stels.net.set(["mine"], 2);
            return { before: before.value, listed, localInNet: (await Stels.net.get(["only", "local"])).value };
            "#,
        )
        .await;
        assert_eq!(out, json!({ "before": null, "listed": [], "localInNet": null }));
        let own = f.net.get(&node_key).await.unwrap().entry.unwrap();
        assert_eq!(own.value, json!({ "node": true }));
        let all = f
            .net
            .list(&Key::default(), ListOptions::default())
            .await
            .unwrap()
            .entries;
        let keys: Vec<Value> = all.iter().map(|e| e.key.to_json()).collect();
        // Beside the entry: its owner record and the worker's usage (kv_quota).
        assert_eq!(
            keys,
            vec![
                json!(["ami", "worker", "w1"]),
                json!(["ko", "mine"]),
                json!(["kq", "sid"]),
                json!(["kv", "mine"])
            ]
        );
        let local = f
            .local
            .list(&Key::of(&["kv"]), ListOptions::default())
            .await
            .unwrap()
            .entries;
        assert_eq!(local.len(), 1);
        assert_eq!(local[0].key.to_json(), json!(["kv", "only", "local"]));
    }

    #[tokio::test]
    async fn webfix_methods() {
        let f = fixture();
        let out = run(
            &f.env,
            r#"
            const channel = ["market", "ticker", "BTC"];
            const base = { brain: Stels.local, channel, module: "ticker", timestamp: 1000 };
            const set = await Stels.webfix({ ...base, method: "set", raw: { price: 1 } });
            const got = await Stels.webfix({ ...base, method: "get" });
            const updated = await Stels.webfix({ ...base, method: "update", raw: { price: 2 }, versionstamp: got.versionstamp });
            const stale = await Stels.webfix({ ...base, method: "update", raw: { price: 3 }, versionstamp: got.versionstamp });
            const afterUpdate = await Stels.webfix({ ...base, method: "get" });
            const deleted = await Stels.webfix({ ...base, method: "delete" });
            const created = await Stels.webfix({ ...base, method: "update", raw: 4, versionstamp: null });
            const gone = await Stels.net.get(channel);
            return { set, got, updated, stale, afterUpdate, deleted, created, gone: gone.value };
            "#,
        )
        .await;
        let record = json!({ "channel": ["market", "ticker", "BTC"], "module": "ticker", "raw": { "price": 1 }, "timestamp": 1000 });
        assert_eq!(out["set"]["ok"], json!(true));
        assert_eq!(out["set"]["key"], json!(["market", "ticker", "BTC"]));
        assert_eq!(out["set"]["value"], record);
        assert_eq!(out["got"]["value"], record);
        assert_eq!(out["got"]["versionstamp"], out["set"]["versionstamp"]);
        assert_eq!(out["updated"]["ok"], json!(true));
        assert_eq!(out["updated"]["value"]["raw"], json!({ "price": 2 }));
        assert_eq!(out["stale"], json!({ "ok": false }));
        assert_eq!(out["afterUpdate"]["value"]["raw"], json!({ "price": 2 }));
        assert_eq!(out["afterUpdate"]["versionstamp"], out["updated"]["versionstamp"]);
        assert_eq!(out["deleted"]["ok"], json!(true));
        assert_eq!(out["created"]["ok"], json!(true));
        assert_eq!(out["gone"], Value::Null, "local writes must not show in net");
        let stored = f
            .local
            .get(&Key::of(&["kv", "market", "ticker", "BTC"]))
            .await
            .unwrap()
            .entry
            .unwrap();
        assert_eq!(stored.value.parse().unwrap()["raw"], json!(4));
    }

    #[tokio::test]
    async fn webfix_expiry_and_errors() {
        let f = fixture();
        run(
            &f.env,
            "await Stels.webfix({ brain: Stels.net, method: 'set', channel: ['e'], module: 'm', raw: 1, timestamp: 1, expireIn: 30 });",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(80)).await;
        let out = run(
            &f.env,
            "return (await Stels.webfix({ brain: Stels.net, method: 'get', channel: ['e'] })).value;",
        )
        .await;
        assert_eq!(out, Value::Null);
        let cases = [
            (
                "Stels.webfix({ brain: Stels.net, method: 'put', channel: ['x'] })",
                "Stels.webfix: unknown method put",
            ),
            (
                "Stels.webfix({ brain: {}, method: 'get', channel: ['x'] })",
                "Stels.webfix: brain must be",
            ),
            (
                "Stels.webfix({ brain: Stels.net, method: 'get', channel: 'x' })",
                "Stels.webfix: channel must be an array",
            ),
            (
                "Stels.webfix({ brain: Stels.net, method: 'update', channel: ['x'], raw: 1 })",
                "Stels.webfix: update needs a versionstamp",
            ),
        ];
        for (expr, message) in cases {
            let (name, got) = error_of(&f.env, expr).await;
            assert_eq!(name, "TypeError", "{expr}: {got}");
            assert!(got.starts_with(message), "{expr}: {got}");
        }
    }

    /// A store whose every call fails.
    struct BrokenStore;

    #[async_trait]
    impl Store for BrokenStore {
        async fn get(&self, _key: &Key) -> StoreResult<Got> {
            Err(StoreError::Unavailable("disk on fire".into()))
        }
        async fn list(&self, _prefix: &Key, _options: ListOptions) -> StoreResult<Page> {
            Err(StoreError::Unavailable("disk on fire".into()))
        }
        async fn commit(&self, _write: AtomicWrite) -> StoreResult<CommitOutcome> {
            Err(StoreError::Corrupt("bad bytes".into()))
        }
        async fn watch(&self, _prefix: &Key, _after: Revision) -> StoreResult<WatchStream> {
            Err(StoreError::Unavailable("disk on fire".into()))
        }
        async fn grant(&self, _ttl: Duration) -> StoreResult<Lease> {
            Err(StoreError::Unavailable("disk on fire".into()))
        }
        async fn keep_alive(&self, _lease: LeaseId) -> StoreResult<Duration> {
            Err(StoreError::Unavailable("disk on fire".into()))
        }
        async fn revoke(&self, _lease: LeaseId) -> StoreResult<()> {
            Err(StoreError::Unavailable("disk on fire".into()))
        }
        async fn flush(&self) -> StoreResult<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn store_failures_reject_with_error() {
        let e = env(Arc::new(BrokenStore), Arc::new(BrokenStore));
        let cases = [
            (
                "Stels.net.get(['a'])",
                "Stels.net.get: storage backend failed: disk on fire",
            ),
            (
                "Stels.local.set(['a'], 1)",
                "Stels.local.set: storage backend failed: disk on fire",
            ),
            (
                "Stels.net.list({ prefix: [] }).next()",
                "Stels.net.list: storage backend failed: disk on fire",
            ),
        ];
        for (expr, message) in cases {
            assert_eq!(
                error_of(&e, expr).await,
                ("Error".to_string(), message.to_string())
            );
        }
        let uncaught = try_run(&e, "await Stels.net.get(['a']);").await.unwrap_err();
        assert!(uncaught.contains("disk on fire"), "{uncaught}");
    }

    #[tokio::test]
    async fn list_pages_through_the_store() {
        let f = fixture();
        let out = run(
            &f.env,
            r#"
            const ops = [];
            for (let i = 0; i < 250; i++) ops.push(Stels.local.set(["p", i], i));
            await Promise.all(ops);
            const values = async (iter) => { const out = []; for await (const e of iter) out.push(e.value); return out; };
            const all = await values(Stels.local.list({ prefix: ["p"] }));
            const limited = await values(Stels.local.list({ prefix: ["p"] }, { limit: 150 }));
            const exact = await values(Stels.local.list({ prefix: ["p"] }, { limit: 200 }));
            const reversed = await values(Stels.local.list({ prefix: ["p"] }, { reverse: true, limit: 120 }));
            const it = Stels.local.list({ prefix: ["p"] });
            const together = await Promise.all([it.next(), it.next(), it.next()]);
            return {
              all: all.length, sorted: all.every((v, i) => v === i), limited: limited.length, last: limited[149],
              exact: exact.length, reversed: reversed.length, firstReversed: reversed[0], lastReversed: reversed[119],
              together: together.map((r) => r.value.value),
            };
            "#,
        )
        .await;
        assert_eq!(
            out,
            json!({ "all": 250, "sorted": true, "limited": 150, "last": 149, "exact": 200, "reversed": 120,
                    "firstReversed": 249, "lastReversed": 130, "together": [0, 1, 2] })
        );
    }

    #[test]
    fn cursors_are_deno_s_base64_and_only_what_it_writes_reads_back() {
        // Deno's cursors for ["a", "b"] under ["a"] and for "c" after the bytes a range shares.
        assert_eq!(base64url(&Key::of(&["b"]).encode()), "AmIA");
        assert_eq!(base64url(&[0x63, 0]), "YwA=");
        for len in 0..12 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 97 + 200) as u8).collect();
            let text = base64url(&bytes);
            assert_eq!(from_base64url(&text), Some(bytes.clone()), "{text}");
            assert_eq!(from_base64url(text.trim_end_matches('=')), Some(bytes), "{text}");
        }
        for bad in ["!!", "A", "AmIAAB", "AmIA===", "Am+A", "Am/A", "AmI A"] {
            assert_eq!(from_base64url(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_cursor_names_only_keys_its_selector_lists() {
        let key = |parts: Value| Key::from_json(&parts).unwrap();
        let prefix = Selector::parse(Some(&json!(["a"])), None, None).unwrap();
        let cursor = prefix.cursor_of(&key(json!(["a", "b", 1])));
        assert_eq!(prefix.cursor_key(&cursor).unwrap(), key(json!(["a", "b", 1])));
        // The same cursor under another prefix names the same place there.
        let other = Selector::parse(Some(&json!(["z"])), None, None).unwrap();
        assert_eq!(other.cursor_key(&cursor).unwrap(), key(json!(["z", "b", 1])));
        let range = Selector::parse(None, Some(&json!(["a", "b"])), Some(&json!(["a", "z"]))).unwrap();
        assert_eq!(range.within, key(json!(["a"])));
        let inside = range.cursor_of(&key(json!(["a", "c"])));
        assert_eq!(inside, "YwA=");
        assert_eq!(range.cursor_key(&inside).unwrap(), key(json!(["a", "c"])));
        let refused = |selector: &Selector, cursor: &str| match selector.cursor_key(cursor) {
            Err(KvError::Type(message)) => message,
            other => panic!("{cursor}: {other:?}"),
        };
        // Before the start, past the end, beside the prefix, not a key, not canonical, NaN.
        assert_eq!(refused(&range, &base64url(&[0x61, 0])), "cursor out of bounds");
        assert_eq!(refused(&range, &base64url(&[0x7b, 0])), "cursor out of bounds");
        assert_eq!(refused(&prefix, &base64url(&[0xff, 0])), "cursor out of bounds");
        assert_eq!(refused(&prefix, &base64url(&[0x02, 0x62])), "invalid cursor");
        assert_eq!(refused(&prefix, &base64url(&[0x99])), "invalid cursor");
        assert_eq!(
            refused(&prefix, &base64url(&[0x21, 0xff, 0xf8, 0, 0, 0, 0, 0, 1])),
            "invalid cursor"
        );
        assert_eq!(refused(&prefix, &"A".repeat(4000)), "invalid cursor");
        // An empty cursor is the range's start itself when the start is all the end begins with.
        let nested = Selector::parse(None, Some(&json!(["a"])), Some(&json!(["a", "d"]))).unwrap();
        assert_eq!(nested.cursor_of(&key(json!(["a"]))), "");
        assert_eq!(nested.cursor_key("").unwrap(), key(json!(["a"])));
    }

    #[tokio::test]
    async fn forged_cursors_never_reach_the_stores_other_records() {
        let f = fixture();
        for record in [
            Key::of(&["ami", "worker", "w1"]),
            Key::of(&["ko", "secret"]),
            Key::of(&["kq", "sid"]),
            Key::of(&["zz"]),
        ] {
            f.net
                .commit(AtomicWrite::new().set(record, json!("node record")))
                .await
                .unwrap();
        }
        // Cursors naming the node's records as if they were store keys, and the bounds of the
        // user namespace.
        let forged: Vec<String> = [
            Key::of(&["ami", "worker"]),
            Key::of(&["kv"]),
            Key::of(&["ko"]),
            Key::of(&["zz"]),
            Key::of(&[""]),
        ]
        .iter()
        .map(|key| base64url(&key.encode()))
        .collect();
        let out = run(
            &f.env,
            &format!(
                r#"
                await Stels.net.set(["m"], 1);
                await Stels.net.set(["ami", "mine"], 2);
                const seen = new Set();
                for (const cursor of {forged}) {{
                  for (const reverse of [false, true]) {{
                    for (const selector of [{{ prefix: [] }}, {{ start: [""], end: [true] }}]) {{
                      for await (const e of Stels.net.list(selector, {{ cursor, reverse }})) seen.add(JSON.stringify([e.key, e.value]));
                    }}
                  }}
                }}
                return [...seen].sort();"#,
                forged = json!(forged)
            ),
        )
        .await;
        assert_eq!(out, json!([r#"[["ami","mine"],2]"#, r#"[["m"],1]"#]));
    }

    /// A store that records the `limit` of each `list` call.
    struct PageSizes(Arc<FjallStore>, std::sync::Mutex<Vec<Option<usize>>>);

    #[async_trait]
    impl Store for PageSizes {
        async fn get(&self, key: &Key) -> StoreResult<Got> {
            self.0.get(key).await
        }
        async fn list(&self, prefix: &Key, options: ListOptions) -> StoreResult<Page> {
            self.1.lock().unwrap().push(options.limit);
            self.0.list(prefix, options).await
        }
        async fn commit(&self, write: AtomicWrite) -> StoreResult<CommitOutcome> {
            self.0.commit(write).await
        }
        async fn watch(&self, prefix: &Key, after: Revision) -> StoreResult<WatchStream> {
            self.0.watch(prefix, after).await
        }
        async fn grant(&self, ttl: Duration) -> StoreResult<Lease> {
            self.0.grant(ttl).await
        }
        async fn keep_alive(&self, lease: LeaseId) -> StoreResult<Duration> {
            self.0.keep_alive(lease).await
        }
        async fn revoke(&self, lease: LeaseId) -> StoreResult<()> {
            self.0.revoke(lease).await
        }
        async fn flush(&self) -> StoreResult<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_large_batch_size_still_reads_the_store_a_page_at_a_time() {
        let f = fixture();
        let counted = Arc::new(PageSizes(f.local.clone(), std::sync::Mutex::default()));
        let e = env(f.net.clone(), counted.clone());
        let out = run(
            &e,
            r#"
            const writes = [];
            for (let i = 0; i < 250; i++) writes.push(Stels.local.set(["p", i], i));
            await Promise.all(writes);
            let n = 0;
            for await (const entry of Stels.local.list({ prefix: ["p"] }, { batchSize: 1000 })) n++;
            let small = 0;
            for await (const entry of Stels.local.list({ start: ["p", 10], end: ["p", 20] }, { batchSize: 4 })) small++;
            return [n, small];
            "#,
        )
        .await;
        assert_eq!(out, json!([250, 10]));
        // 100 + 100 + 50 entries; then 4 + 4 + 2 (the range starts with a read of its start).
        assert_eq!(
            *counted.1.lock().unwrap(),
            vec![Some(100), Some(100), Some(100), Some(3), Some(4), Some(4)]
        );
    }

    /// The environment of worker `sid` over the fixture's stores, with `quota` bytes.
    fn worker(f: &Fixture, sid: &str, quota: u64) -> WorkerEnv {
        let mut env = env(f.net.clone(), f.local.clone());
        env.config.sid = sid.into();
        env.kv_quota_bytes = quota;
        env
    }

    #[tokio::test]
    async fn usage_follows_the_last_writer_and_deletes_free_it() {
        let f = fixture();
        let a = worker(&f, "a", 1 << 20);
        let b = worker(&f, "b", 1 << 20);
        // ["k"] encodes to 7 bytes as stored (["kv","k"]); "\"12345678\"" is 10 bytes of JSON.
        run(&a, r#"await Stels.net.set(["k"], "12345678");"#).await;
        assert_eq!(usage_bytes(f.net.as_ref(), "a").await.unwrap(), 17);
        assert_eq!(usage_bytes(f.local.as_ref(), "a").await.unwrap(), 0);
        run(&a, r#"await Stels.net.set(["k"], "1234");"#).await;
        assert_eq!(usage_bytes(f.net.as_ref(), "a").await.unwrap(), 13);
        run(&b, r#"await Stels.net.set(["k"], "12");"#).await;
        assert_eq!(usage_bytes(f.net.as_ref(), "a").await.unwrap(), 0);
        assert_eq!(usage_bytes(f.net.as_ref(), "b").await.unwrap(), 11);
        run(
            &a,
            r#"await Stels.net.atomic().set(["x"], 1).set(["x"], 22).delete(["k"]).commit();"#,
        )
        .await;
        assert_eq!(usage_bytes(f.net.as_ref(), "a").await.unwrap(), 9);
        assert_eq!(usage_bytes(f.net.as_ref(), "b").await.unwrap(), 0);
        // A usage record at zero is gone; the script cannot see or touch bookkeeping records.
        assert!(f.net.get(&Key::of(&["kq", "b"])).await.unwrap().entry.is_none());
        let listed = run(
            &a,
            r#"const keys = []; for await (const e of Stels.net.list({ prefix: [] })) keys.push(e.key); return keys;"#,
        )
        .await;
        assert_eq!(listed, json!([["x"]]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_keep_the_totals_exact() {
        let f = fixture();
        let a = worker(&f, "a", 1 << 20);
        let b = worker(&f, "b", 1 << 20);
        let script = |value: &str| {
            format!(
                r#"const ops = [];
                for (let i = 0; i < 60; i++) ops.push(Stels.net.set(["s", i % 7], "{value}"));
                for (let i = 0; i < 10; i++) ops.push(Stels.net.delete(["s", i]));
                for (let i = 0; i < 60; i++) ops.push(Stels.net.set(["s", i % 5], "{value}"));
                await Promise.all(ops);"#
            )
        };
        let (script_a, script_b) = (script("aaaa"), script("bbbbbbbbbb"));
        let (ra, rb) = tokio::join!(try_run(&a, &script_a), try_run(&b, &script_b));
        ra.unwrap();
        rb.unwrap();
        let entries = f
            .net
            .list(&Key::of(&["kv"]), ListOptions::default())
            .await
            .unwrap()
            .entries;
        let mut expected = HashMap::<String, u64>::new();
        for entry in &entries {
            let owner = f.net.get(&owner_key_of(&entry.key)).await.unwrap().entry.unwrap();
            let sid = owner.value.parse().unwrap()["sid"].as_str().unwrap().to_string();
            assert_eq!(
                entry.value.deserialize::<String>().unwrap().chars().next(),
                sid.chars().next()
            );
            let bytes = entry.key.encode().len() + entry.value.to_string().len();
            *expected.entry(sid).or_default() += bytes as u64;
        }
        for sid in ["a", "b"] {
            assert_eq!(
                usage_bytes(f.net.as_ref(), sid).await.unwrap(),
                expected.get(sid).copied().unwrap_or(0),
                "{sid}"
            );
        }
    }

    fn owner_key_of(stored: &Key) -> Key {
        let mut parts = stored.0.clone();
        parts[0] = KeyPart::Str("ko".into());
        Key(parts)
    }

    #[tokio::test]
    async fn a_write_over_quota_throws_and_changes_nothing() {
        let f = fixture();
        let small = worker(&f, "small", 100);
        let out = run(
            &small,
            r#"
            await Stels.local.set(["a"], "x".repeat(50));
            const errors = [];
            for (const attempt of [
              () => Stels.local.set(["b"], "y".repeat(50)),
              () => Stels.local.atomic().set(["c"], 1).set(["d"], "z".repeat(60)).commit(),
            ]) {
              try { await attempt(); } catch (e) { errors.push([e.name, e.message, e instanceof Error]); }
            }
            const shrink = await Stels.local.set(["a"], "x");
            const after = await Stels.local.set(["b"], "y".repeat(50));
            const seen = [];
            for await (const e of Stels.local.list({ prefix: [] })) seen.push(e.key[0]);
            return { errors, shrink: shrink.ok, after: after.ok, seen };
            "#,
        )
        .await;
        assert_eq!(
            out["errors"][0],
            json!([
                "QuotaExceeded",
                "Stels.local.set: quota exceeded: this worker holds 59 of its 100 bytes here and the write needs 59 more",
                true
            ])
        );
        assert_eq!(out["errors"][1][0], json!("QuotaExceeded"));
        assert_eq!(out["shrink"], json!(true));
        assert_eq!(out["after"], json!(true));
        assert_eq!(out["seen"], json!(["a", "b"]));
        assert_eq!(
            usage_bytes(f.local.as_ref(), "small").await.unwrap(),
            7 + 3 + 7 + 52
        );
        // The quota is per store: the cluster store is untouched by the local usage.
        run(&small, r#"await Stels.net.set(["n"], "q".repeat(80));"#).await;
    }

    #[tokio::test]
    async fn expired_entries_give_their_bytes_back() {
        let f = fixture();
        let a = worker(&f, "a", 1 << 20);
        run(
            &a,
            r#"await Stels.net.set(["short"], 1, { expireIn: 30 });
               await Stels.net.set(["long"], 1, { expireIn: 600000 });
               await Stels.net.set(["huge"], 1, { expireIn: 1e300 });
               await Stels.net.set(["kept"], 1);"#,
        )
        .await;
        let sweep_now = || async {
            let now = crate::clock::Clock::system().wall_ms();
            sweep_expired(f.net.as_ref(), Duration::ZERO, now).await.unwrap()
        };
        // Key ["kv", name] (4 + 2 + letters) and the value `1`.
        let bytes = |name: &str| 4 + 2 + name.len() as u64 + 1;
        let before = usage_bytes(f.net.as_ref(), "a").await.unwrap();
        assert_eq!(
            before,
            ["short", "long", "huge", "kept"].map(bytes).iter().sum::<u64>()
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(sweep_now().await, 1);
        assert_eq!(
            usage_bytes(f.net.as_ref(), "a").await.unwrap(),
            before - bytes("short")
        );
        assert_eq!(sweep_now().await, 0);
        // Overwriting an expiring entry moves it out of the expiry index.
        run(&a, r#"await Stels.net.set(["long"], 2);"#).await;
        assert_eq!(sweep_now().await, 0);
        assert_eq!(
            usage_bytes(f.net.as_ref(), "a").await.unwrap(),
            before - bytes("short")
        );
    }

    /// A store that cannot write (its disk is full) but still reads.
    struct FullDisk(Arc<FjallStore>);

    #[async_trait]
    impl Store for FullDisk {
        async fn get(&self, key: &Key) -> StoreResult<Got> {
            self.0.get(key).await
        }
        async fn list(&self, prefix: &Key, options: ListOptions) -> StoreResult<Page> {
            self.0.list(prefix, options).await
        }
        async fn commit(&self, _write: AtomicWrite) -> StoreResult<CommitOutcome> {
            Err(StoreError::Unavailable(
                "No space left on device (os error 28)".into(),
            ))
        }
        async fn watch(&self, prefix: &Key, after: Revision) -> StoreResult<WatchStream> {
            self.0.watch(prefix, after).await
        }
        async fn grant(&self, _ttl: Duration) -> StoreResult<Lease> {
            Err(StoreError::Unavailable(
                "No space left on device (os error 28)".into(),
            ))
        }
        async fn keep_alive(&self, lease: LeaseId) -> StoreResult<Duration> {
            self.0.keep_alive(lease).await
        }
        async fn revoke(&self, lease: LeaseId) -> StoreResult<()> {
            self.0.revoke(lease).await
        }
        async fn flush(&self) -> StoreResult<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_full_disk_fails_writes_clearly_and_reads_go_on() {
        let f = fixture();
        run(&f.env, r#"await Stels.net.set(["before"], "kept");"#).await;
        let full: Arc<dyn Store> = Arc::new(FullDisk(f.net.clone()));
        let e = env(full.clone(), full);
        let out = run(
            &e,
            r#"
            let error = null;
            try { await Stels.net.set(["after"], 1); } catch (err) { error = [err.name, err.message]; }
            return { error, kept: (await Stels.net.get(["before"])).value, after: (await Stels.net.get(["after"])).value };
            "#,
        )
        .await;
        assert_eq!(
            out,
            json!({
                "error": ["Error", "Stels.net.set: storage backend failed: No space left on device (os error 28)"],
                "kept": "kept",
                "after": null,
            })
        );
    }
}
