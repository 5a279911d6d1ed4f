//! `Stels.secrets`: the worker's secrets, read-only, as its owner set them (`heterogen secrets
//! set`). `Stels.secrets.NAME` is the value or `undefined`; the names are enumerable
//! (`Object.keys`, `for…in`, `"NAME" in Stels.secrets`); assigning, deleting or defining a
//! property throws a `TypeError`. Every read asks the node, so a secret set or deleted while the
//! script runs is seen at the next read. On a node whose secrets key is not the cluster's, every
//! read throws an `Error` saying so (rather than reading `undefined` for a secret that exists).

use std::sync::Arc;

use rquickjs::function::Func;
use rquickjs::{Ctx, Function, Object};

use crate::runtime::engine::WorkerEnv;

/// A proxy over the native reader: no value is copied into the script before it asks for it.
const SECRETS_PRELUDE: &str = r#"(function (native, stels) {
  "use strict";
  const readOnly = () => {
    throw new TypeError("Stels.secrets is read-only: an owner sets a worker's secrets with 'heterogen secrets set'");
  };
  const read = (name) => {
    const why = native.unavailable();
    if (why !== undefined) throw new Error(`Stels.secrets cannot be read on this node: ${why}`);
    return native.get(name);
  };
  const secrets = new Proxy({}, {
    get(target, name) {
      return typeof name === "string" ? read(name) : undefined;
    },
    has(target, name) {
      return typeof name === "string" && read(name) !== undefined;
    },
    ownKeys() {
      read("");
      return native.names();
    },
    getOwnPropertyDescriptor(target, name) {
      if (typeof name !== "string") return undefined;
      const value = read(name);
      return value === undefined
        ? undefined
        : { value, writable: false, enumerable: true, configurable: true };
    },
    set: readOnly,
    defineProperty: readOnly,
    deleteProperty: readOnly,
    setPrototypeOf: readOnly,
    preventExtensions: readOnly,
  });
  Object.defineProperty(stels, "secrets", { get: () => secrets, set: readOnly, enumerable: true });
})"#;

/// Installs `Stels.secrets`.
pub fn install_secrets<'js>(ctx: &Ctx<'js>, stels: &Object<'js>, env: &WorkerEnv) -> rquickjs::Result<()> {
    let native = Object::new(ctx.clone())?;
    let reader = Arc::clone(&env.secrets);
    native.set("get", Func::from(move |name: String| reader.get(&name)))?;
    let reader = Arc::clone(&env.secrets);
    native.set("names", Func::from(move || reader.names()))?;
    let reader = Arc::clone(&env.secrets);
    native.set("unavailable", Func::from(move || reader.unavailable()))?;
    let mut options = rquickjs::context::EvalOptions::default();
    options.strict = true;
    options.filename = Some("<stels:secrets>".to_string());
    let factory: Function = ctx.eval_with_options(SECRETS_PRELUDE, options)?;
    factory.call((native, stels.clone()))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::runtime::engine::testing::{eval_body, test_env};
    use crate::runtime::engine::{FetchPolicy, SecretReader};
    use crate::store::fjall::FjallStore;

    /// Secrets that a test changes while the script runs.
    #[derive(Default)]
    struct Changing(Mutex<Vec<(String, String)>>);

    impl SecretReader for Changing {
        fn get(&self, name: &str) -> Option<String> {
            let held = self.0.lock().unwrap();
            held.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
        }
        fn values(&self) -> Vec<String> {
            self.0.lock().unwrap().iter().map(|(_, v)| v.clone()).collect()
        }
        fn names(&self) -> Vec<String> {
            self.0.lock().unwrap().iter().map(|(n, _)| n.clone()).collect()
        }
    }

    fn install(ctx: &Ctx<'_>, env: &WorkerEnv) {
        let stels = Object::new(ctx.clone()).unwrap();
        install_secrets(ctx, &stels, env).unwrap();
        ctx.globals().set("Stels", stels).unwrap();
    }

    #[tokio::test]
    async fn secrets_read_only_enumerable_and_live() {
        let dir = tempfile::tempdir().unwrap();
        let net = Arc::new(FjallStore::open(&dir.path().join("net"), false).unwrap());
        let local = Arc::new(FjallStore::open(&dir.path().join("local"), false).unwrap());
        let mut env = test_env(net, local, FetchPolicy::default());
        let secrets = Arc::new(Changing::default());
        secrets.0.lock().unwrap().push(("API_KEY".into(), "k-1".into()));
        secrets.0.lock().unwrap().push(("OTHER".into(), "o".into()));
        env.secrets = secrets.clone();
        let body = r#"
            const s = Stels.secrets;
            const out = {
              value: s.API_KEY, missing: s.NOPE, keys: Object.keys(s), has: "OTHER" in s,
              hasNot: "NOPE" in s, entries: Object.entries(s), json: JSON.stringify(s),
              symbol: s[Symbol.iterator] === undefined, proto: s.toString,
            };
            const threw = [];
            for (const attempt of [
              () => { s.API_KEY = "x"; }, () => { delete s.API_KEY; }, () => { s.NEW = 1; },
              () => Object.defineProperty(s, "X", { value: 1 }), () => Object.freeze(s),
              () => { Stels.secrets = {}; },
            ]) {
              try { attempt(); threw.push(false); } catch (e) { threw.push(e instanceof TypeError); }
            }
            out.threw = threw;
            out.after = Stels.secrets.API_KEY;
            return out;
        "#;
        let out = eval_body(&env, body, install).await.unwrap();
        assert_eq!(out["value"], "k-1");
        assert!(out.get("missing").is_none(), "{out}");
        assert_eq!(out["keys"], serde_json::json!(["API_KEY", "OTHER"]));
        assert_eq!(out["has"], true);
        assert_eq!(out["hasNot"], false);
        assert_eq!(
            out["entries"],
            serde_json::json!([["API_KEY", "k-1"], ["OTHER", "o"]])
        );
        assert_eq!(out["json"], r#"{"API_KEY":"k-1","OTHER":"o"}"#);
        assert_eq!(out["symbol"], true);
        assert!(out.get("proto").is_none(), "{out}");
        assert_eq!(
            out["threw"],
            serde_json::json!([true, true, true, true, true, true])
        );
        assert_eq!(out["after"], "k-1");

        // A change is seen at the next read.
        secrets.0.lock().unwrap()[0].1 = "k-2".into();
        let out = eval_body(
            &env,
            "return [Stels.secrets.API_KEY, Object.keys(Stels.secrets)];",
            install,
        )
        .await
        .unwrap();
        assert_eq!(out, serde_json::json!(["k-2", ["API_KEY", "OTHER"]]));

        // A node that cannot read secrets says why at every read.
        env.secrets = Arc::new(Unavailable);
        for read in [
            "Stels.secrets.A",
            "Object.keys(Stels.secrets)",
            "'A' in Stels.secrets",
        ] {
            let error = eval_body(&env, &format!("return {read};"), install)
                .await
                .unwrap_err();
            assert!(
                error.contains("Stels.secrets cannot be read on this node: another key"),
                "{read}: {error}"
            );
        }
    }

    struct Unavailable;

    impl SecretReader for Unavailable {
        fn get(&self, _name: &str) -> Option<String> {
            None
        }
        fn values(&self) -> Vec<String> {
            Vec::new()
        }
        fn unavailable(&self) -> Option<String> {
            Some("another key".into())
        }
    }
}
