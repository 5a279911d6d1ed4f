//! The globals a worker script sees (`worker-sdk.md`): `logger`, `console`, `Stels`
//! (`sleep`, `config`, `net`, `local`, `webfix`), `config`, `shouldStop`, `signal`, `fetch`.
//!
//! Not here, on purpose (S-21): no file system, process, environment or native modules —
//! `Deno`, `process` and `require` do not exist, and no module loader is installed.

pub mod address;
pub mod config;
pub mod fetch;
pub mod kv;
pub mod kv_quota;
pub mod lifecycle;
pub mod logger;

use rquickjs::{Ctx, Function, Object};

pub use lifecycle::RunSignal;

use crate::runtime::engine::WorkerEnv;

/// Installs every SDK global into `ctx`. Returns `wrap(main)`, the function that turns the
/// compiled script into what each run calls (it gives every run a fresh `signal`).
pub fn install_sdk<'js>(ctx: &Ctx<'js>, env: &WorkerEnv, run: &RunSignal) -> rquickjs::Result<Function<'js>> {
    let stels = Object::new(ctx.clone())?;
    ctx.globals().set("Stels", stels.clone())?;
    logger::install_logger(ctx, env)?;
    logger::install_console(ctx)?;
    config::install_config(ctx, &stels, env)?;
    let wrap = lifecycle::install_lifecycle(ctx, &stels, env, run)?;
    kv::install_kv(ctx, &stels, env)?;
    fetch::install_fetch(ctx, env)?;
    Ok(wrap)
}
