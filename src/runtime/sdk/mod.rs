//! The globals a worker script sees (`worker-sdk.md`, docs/sdk.md): `logger`, `console`,
//! `Stels` (`sleep`, `config`, `net`, `local`, `webfix`, `wallet`, `blockchain`, `secrets`,
//! `startTime`, `runtime`), `config`, `shouldStop`, `signal`, `fetch`, `WebSocket`, timers, the
//! web basics of [`web`] and a `Deno` with the few APIs a worker has.
//!
//! Not here, on purpose (S-21): no file system, process, the node's environment or native
//! modules — `process` and `require` do not exist, no module loader is installed, and every
//! other `Deno.*` throws.

pub mod address;
pub mod chain;
pub mod config;
pub mod fetch;
pub mod kv;
pub mod kv_quota;
pub mod lifecycle;
pub mod logger;
pub mod secrets;
pub mod web;
pub mod websocket;

use std::sync::Arc;

use rquickjs::function::This;
use rquickjs::object::Accessor;
use rquickjs::{Ctx, Function, Object, Value};

pub use lifecycle::RunSignal;

use crate::runtime::engine::WorkerEnv;

/// Installs every SDK global into `ctx`. Returns `wrap(main)`, the function that turns the
/// compiled script into what each run calls (it gives every run a fresh `signal`).
pub fn install_sdk<'js>(ctx: &Ctx<'js>, env: &WorkerEnv, run: &RunSignal) -> rquickjs::Result<Function<'js>> {
    install_sdk_for(ctx, env, run, None)
}

/// [`install_sdk`] for `script`: of the globals that install themselves on first use, only
/// those whose name appears in the script's text are defined at all. Two accessor functions
/// for each of some twenty names would cost every worker about 5 KiB (BENCHMARKS.md); a name a
/// script reaches without writing it (`globalThis["Te" + "xtEncoder"]`) is not there. `None`:
/// all of them.
pub fn install_sdk_for<'js>(
    ctx: &Ctx<'js>,
    env: &WorkerEnv,
    run: &RunSignal,
    script: Option<&str>,
) -> rquickjs::Result<Function<'js>> {
    let mentioned = |name: &str| script.is_none_or(|text| text.contains(name));
    let stels = Object::new(ctx.clone())?;
    ctx.globals().set("Stels", stels.clone())?;
    logger::install_logger(ctx, env)?;
    logger::install_console(ctx)?;
    config::install_config(ctx, &stels, env)?;
    let wrap = lifecycle::install_lifecycle(ctx, &stels, env, run)?;
    chain::install_chain(ctx, &stels, env)?;
    // One copy of the environment for every self-installing global; each accessor holds an Arc.
    let shared = Arc::new(env.clone());
    let kv_env = Arc::clone(&shared);
    install_on_first_use(&stels, &["net", "local", "webfix"], move |ctx, stels| {
        kv::install_kv(ctx, stels, &kv_env)
    })?;
    let fetch_env = Arc::clone(&shared);
    install_mentioned(&ctx.globals(), &["fetch"], mentioned, move |ctx, _| {
        fetch::install_fetch(ctx, &fetch_env)
    })?;
    let web_env = Arc::clone(&shared);
    let web_run = run.clone();
    install_mentioned(
        &ctx.globals(),
        web::WEB_GLOBALS,
        mentioned,
        move |ctx, globals| web::install_web(ctx, globals, &web_env, &web_run),
    )?;
    let timer_env = Arc::clone(&shared);
    let timer_run = run.clone();
    install_mentioned(
        &ctx.globals(),
        web::TIMER_GLOBALS,
        mentioned,
        move |ctx, globals| web::install_timers(ctx, globals, &timer_env, &timer_run),
    )?;
    let deno_env = Arc::clone(&shared);
    install_mentioned(&ctx.globals(), &["Deno"], mentioned, move |ctx, globals| {
        web::install_deno(ctx, globals, &deno_env)
    })?;
    let websocket_env = Arc::clone(&shared);
    let websocket_run = run.clone();
    install_mentioned(&ctx.globals(), &["WebSocket"], mentioned, move |ctx, globals| {
        websocket::install_websocket(ctx, globals, &websocket_env, &websocket_run)
    })?;
    let secrets_env = Arc::clone(&shared);
    install_on_first_use(&stels, &["secrets"], move |ctx, stels| {
        secrets::install_secrets(ctx, stels, &secrets_env)
    })?;
    Ok(wrap)
}

/// [`install_on_first_use`] for the `names` that `mentioned` accepts; nothing when none is.
fn install_mentioned<'js, F>(
    target: &Object<'js>,
    names: &'static [&'static str],
    mentioned: impl Fn(&str) -> bool,
    install: F,
) -> rquickjs::Result<()>
where
    F: Fn(&Ctx<'js>, &Object<'js>) -> rquickjs::Result<()> + Clone + Send + 'js,
{
    // The accessors find their object as `this`: a Rust closure holding a JS object would keep
    // it alive outside the JS garbage collector's sight (a cycle the runtime never frees).
    for &name in names.iter().filter(|name| mentioned(name)) {
        let get_install = install.clone();
        let get = move |ctx: Ctx<'js>, This(target): This<Object<'js>>| -> rquickjs::Result<Value<'js>> {
            materialise(&ctx, &target, names, &get_install)?;
            target.get(name)
        };
        let set_install = install.clone();
        let set = move |ctx: Ctx<'js>,
                        This(target): This<Object<'js>>,
                        value: Value<'js>|
              -> rquickjs::Result<()> {
            materialise(&ctx, &target, names, &set_install)?;
            target.set(name, value)
        };
        target.prop(name, Accessor::new(get, set).configurable().enumerable())?;
    }
    Ok(())
}

/// Defines `names` on `target` as properties that install themselves when first read or
/// written: that removes all of them and runs `install`, which defines the real ones. A worker
/// that never touches `fetch` or `Stels.net` never compiles their preludes nor holds their
/// objects (about 46 KiB and 0.35 ms a worker, BENCHMARKS.md).
fn install_on_first_use<'js, F>(
    target: &Object<'js>,
    names: &'static [&'static str],
    install: F,
) -> rquickjs::Result<()>
where
    F: Fn(&Ctx<'js>, &Object<'js>) -> rquickjs::Result<()> + Clone + Send + 'js,
{
    install_mentioned(target, names, |_| true, install)
}

/// Replaces the self-installing `names` of `target` by what `install` defines.
fn materialise<'js, F>(
    ctx: &Ctx<'js>,
    target: &Object<'js>,
    names: &[&str],
    install: &F,
) -> rquickjs::Result<()>
where
    F: Fn(&Ctx<'js>, &Object<'js>) -> rquickjs::Result<()>,
{
    for &name in names {
        target.remove(name)?;
    }
    install(ctx, target)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::runtime::engine::FetchPolicy;
    use crate::runtime::engine::testing::{eval_body, test_env};
    use crate::store::fjall::FjallStore;

    #[tokio::test]
    async fn kv_and_fetch_install_themselves_on_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let net = Arc::new(FjallStore::open(&dir.path().join("net"), false).unwrap());
        let local = Arc::new(FjallStore::open(&dir.path().join("local"), false).unwrap());
        let env = test_env(net, local, FetchPolicy::default());
        let body = r#"
            const keys = Object.keys(Stels);
            const before = Object.getOwnPropertyDescriptor(Stels, "webfix");
            await Stels.local.set(["k"], 1);
            const after = Object.getOwnPropertyDescriptor(Stels, "webfix");
            const got = (await Stels.local.get(["k"])).value;
            const fetchBefore = typeof Object.getOwnPropertyDescriptor(globalThis, "fetch").get;
            globalThis.fetch = "replaced before first use";
            return { keys, before: "get" in before, after: "value" in after, got, fetchBefore, fetch };
        "#;
        let install = |ctx: &Ctx<'_>, env: &WorkerEnv| {
            install_sdk(ctx, env, &RunSignal::default()).unwrap();
        };
        let result = eval_body(&env, body, install).await.unwrap();
        let keys: Vec<&str> = result["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|k| k.as_str())
            .collect();
        for name in ["net", "local", "webfix", "sleep", "config"] {
            assert!(keys.contains(&name), "{name} in {keys:?}");
        }
        assert_eq!(result["before"], true, "an accessor until first use: {result}");
        assert_eq!(result["after"], true, "a plain value after: {result}");
        assert_eq!(result["got"], 1);
        assert_eq!(result["fetchBefore"], "function");
        assert_eq!(result["fetch"], "replaced before first use");
    }
}
