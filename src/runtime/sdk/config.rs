//! `Stels.config` and the global `config` (S-6): a frozen object.

use std::sync::atomic::Ordering;

use rquickjs::object::{Accessor, Property};
use rquickjs::{Ctx, Function, Object, Value};

use crate::runtime::engine::WorkerEnv;

/// Installs the config object as `Stels.config` and as the global `config`, both read-only.
pub fn install_config<'js>(ctx: &Ctx<'js>, stels: &Object<'js>, env: &WorkerEnv) -> rquickjs::Result<()> {
    let config = &env.config;
    let object = Object::new(ctx.clone())?;
    object.set("nid", config.nid.as_str())?;
    object.set("network", config.network.as_str())?;
    object.set("title", config.title.as_str())?;
    object.set("tick", config.tick)?;
    let running = env.running_workers.clone();
    // Read at each access: the number of running workers changes while the script lives.
    object.prop(
        "workers",
        Accessor::from(move || running.load(Ordering::Relaxed) as f64).enumerable(),
    )?;
    object.set("sid", config.sid.as_str())?;
    object.set("executionMode", config.execution_mode.as_str())?;
    object.set("priority", config.priority.as_str())?;
    object.set("mode", config.mode.as_str())?;
    object.set("version", config.version.as_str())?;
    let lease_epoch = match config.lease_epoch {
        // Epochs are small counters; a JS number holds them exactly below 2^53.
        Some(epoch) => Value::new_number(ctx.clone(), epoch as f64),
        None => Value::new_null(ctx.clone()),
    };
    object.set("leaseEpoch", lease_epoch)?;

    let freeze: Function = ctx.globals().get::<_, Object>("Object")?.get("freeze")?;
    freeze.call::<_, ()>((object.clone(),))?;
    stels.prop("config", Property::from(object.clone()).enumerable())?;
    ctx.globals().prop("config", Property::from(object))
}
