//! The browser `WebSocket` for worker scripts (not written yet).

use rquickjs::{Ctx, Object};

use crate::runtime::engine::WorkerEnv;

/// Installs the global `WebSocket`.
pub fn install_websocket<'js>(
    _ctx: &Ctx<'js>,
    _globals: &Object<'js>,
    _env: &WorkerEnv,
) -> rquickjs::Result<()> {
    Ok(())
}
