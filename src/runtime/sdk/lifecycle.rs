//! Stopping a run: `Stels.sleep` (S-3), `shouldStop()` (S-4) and `signal` (S-5).
//!
//! A fresh stop token may come with every run, so the SDK never keeps a token: it asks
//! [`RunSignal`] for the token of the run in progress. A small JS prelude builds one
//! `AbortSignal`-like object per run and wraps the compiled script so that each call starts
//! with a new signal.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rquickjs::prelude::{Async, Coerced, Func, Opt, Rest};
use rquickjs::{Ctx, Function, Object, Value};
use tokio_util::sync::CancellationToken;

use crate::runtime::engine::{LogLevel, WorkerEnv};

use super::logger::format_args;

/// The tokens of the run in progress, shared by the isolate and the SDK functions.
#[derive(Clone, Default)]
pub struct RunSignal {
    /// Swapped at the start of each run; a mutex because runs replace both tokens at once.
    tokens: Arc<Mutex<RunTokens>>,
    /// Wakers of zero sleeps, woken once the current poll of the run has returned.
    deferred: Arc<Mutex<Vec<std::task::Waker>>>,
}

#[derive(Default)]
struct RunTokens {
    /// Cancelled when the run must end (the caller's token).
    stop: CancellationToken,
    /// Cancelled when the run has ended, so per-run waiters (`signal`) finish with it.
    scope: CancellationToken,
}

impl RunSignal {
    /// Starts a run that ends early when `stop` is cancelled.
    pub fn begin(&self, stop: CancellationToken) {
        let mut tokens = self.lock();
        tokens.scope.cancel();
        *tokens = RunTokens {
            stop,
            scope: CancellationToken::new(),
        };
    }

    /// Marks the run as over: waiters tied to it resolve.
    pub fn end(&self) {
        self.lock().scope.cancel();
    }

    /// The stop token of the run in progress.
    pub fn stop_token(&self) -> CancellationToken {
        self.lock().stop.clone()
    }

    /// Whether the run in progress was asked to stop.
    pub fn is_stopped(&self) -> bool {
        self.lock().stop.is_cancelled()
    }

    /// Queues `waker` to be woken after the current poll.
    pub fn defer(&self, waker: std::task::Waker) {
        self.deferred
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(waker);
    }

    /// Wakes what [`RunSignal::defer`] queued.
    pub fn wake_deferred(&self) {
        let wakers = std::mem::take(&mut *self.deferred.lock().unwrap_or_else(PoisonError::into_inner));
        wakers.into_iter().for_each(std::task::Waker::wake);
    }

    /// Cancelled when the run in progress ends (a `WebSocket` closes with its run).
    pub fn scope_token(&self) -> CancellationToken {
        self.lock().scope.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RunTokens> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Builds the per-run `signal` and wraps the script's function; evaluated once per isolate.
const PRELUDE: &str = r#"(function (host) {
  "use strict";
  let current;
  function makeSignal() {
    const listeners = [];
    const signal = {
      aborted: false,
      reason: undefined,
      onabort: null,
      addEventListener(type, listener) {
        if (type === "abort" && typeof listener === "function" && !listeners.includes(listener)) {
          listeners.push(listener);
        }
      },
      removeEventListener(type, listener) {
        const at = type === "abort" ? listeners.indexOf(listener) : -1;
        if (at >= 0) listeners.splice(at, 1);
      },
      throwIfAborted() {
        if (signal.aborted) throw signal.reason;
      },
    };
    function fire() {
      if (signal.aborted) return;
      const reason = new Error("The worker is stopping");
      reason.name = "AbortError";
      signal.aborted = true;
      signal.reason = reason;
      const event = { type: "abort", target: signal, currentTarget: signal };
      const all = listeners.splice(0);
      if (typeof signal.onabort === "function") all.push(signal.onabort);
      for (const listener of all) {
        try {
          listener.call(signal, event);
        } catch (error) {
          host.listenerFailed(error);
        }
      }
    }
    return { signal, fire };
  }
  Object.defineProperty(globalThis, "signal", {
    get() { return current.signal; },
    enumerable: true,
  });
  current = makeSignal();
  return function wrap(main) {
    return function run() {
      const state = makeSignal();
      current = state;
      if (host.isStopped()) state.fire();
      else host.stopped().then((stopped) => { if (stopped) state.fire(); });
      return main();
    };
  };
})"#;

/// Installs `Stels.sleep`, `shouldStop` and `signal`; returns `wrap(main)`, which turns the
/// compiled script into the function each run calls.
pub fn install_lifecycle<'js>(
    ctx: &Ctx<'js>,
    stels: &Object<'js>,
    env: &WorkerEnv,
    run: &RunSignal,
) -> rquickjs::Result<Function<'js>> {
    let signal = run.clone();
    let sleep = Function::new(
        ctx.clone(),
        Async(move |ms: Opt<Coerced<f64>>| {
            let stop = signal.stop_token();
            let yield_signal = signal.clone();
            let pause = sleep_duration(ms.0.map_or(0.0, |ms| ms.0));
            async move {
                if pause.is_zero() {
                    // A zero sleep is a yield: the run goes back to the pool's ready
                    // queue at its priority at once, no timer.
                    DeferredYield {
                        signal: yield_signal,
                        pending: false,
                    }
                    .await;
                } else {
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = stop.cancelled() => {}
                    }
                }
                rquickjs::Result::Ok(())
            }
        }),
    )?
    .with_name("sleep")?;
    stels.set("sleep", sleep)?;

    let signal = run.clone();
    let should_stop = Function::new(ctx.clone(), move || signal.is_stopped())?.with_name("shouldStop")?;
    ctx.globals().set("shouldStop", should_stop)?;

    let host = Object::new(ctx.clone())?;
    let signal = run.clone();
    host.set("isStopped", Func::from(move || signal.is_stopped()))?;
    let signal = run.clone();
    host.set(
        "stopped",
        Function::new(
            ctx.clone(),
            Async(move || {
                let stop = signal.stop_token();
                let scope = signal.scope_token();
                async move {
                    let stopped = tokio::select! {
                        () = stop.cancelled() => true,
                        () = scope.cancelled() => false,
                    };
                    rquickjs::Result::Ok(stopped)
                }
            }),
        )?,
    )?;
    let log = env.log.clone();
    host.set(
        "listenerFailed",
        Func::from(move |ctx: Ctx<'js>, error: Rest<Value<'js>>| {
            let line = format!("abort listener failed: {}", format_args(&ctx, &error.0));
            log.log(LogLevel::Error, &line);
        }),
    )?;

    let prelude: Function = ctx.eval(PRELUDE)?;
    prelude.call((host,))
}

/// Pending once; its waker is woken by the run future after the poll returns (so rquickjs's
/// inner scheduler cannot re-poll it in the same poll and the run goes back to the pool queue).
struct DeferredYield {
    signal: RunSignal,
    pending: bool,
}

impl std::future::Future for DeferredYield {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.pending {
            return std::task::Poll::Ready(());
        }
        self.pending = true;
        self.signal.defer(cx.waker().clone());
        std::task::Poll::Pending
    }
}

/// `ms` as a duration: negative or NaN is zero; huge values saturate.
pub(super) fn sleep_duration(ms: f64) -> Duration {
    if ms.is_nan() || ms <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_durations_from_any_number() {
        assert_eq!(sleep_duration(f64::NAN), Duration::ZERO);
        assert_eq!(sleep_duration(-1.0), Duration::ZERO);
        assert_eq!(sleep_duration(f64::NEG_INFINITY), Duration::ZERO);
        assert_eq!(sleep_duration(f64::INFINITY), Duration::MAX);
        assert_eq!(sleep_duration(1e300), Duration::MAX);
        assert_eq!(sleep_duration(1.5), Duration::from_micros(1500));
    }

    #[test]
    fn a_new_run_replaces_the_token_and_ends_the_old_scope() {
        let run = RunSignal::default();
        let first = CancellationToken::new();
        run.begin(first.clone());
        let old_scope = run.scope_token();
        assert!(!run.is_stopped());
        first.cancel();
        assert!(run.is_stopped());
        run.begin(CancellationToken::new());
        assert!(old_scope.is_cancelled());
        assert!(!run.is_stopped());
        run.end();
        assert!(run.scope_token().is_cancelled());
    }
}
