//! `Stels.secrets` for worker scripts (not written yet).

use rquickjs::{Ctx, Object};

use crate::runtime::engine::WorkerEnv;

/// Installs `Stels.secrets`.
pub fn install_secrets<'js>(_ctx: &Ctx<'js>, _stels: &Object<'js>, _env: &WorkerEnv) -> rquickjs::Result<()> {
    Ok(())
}
