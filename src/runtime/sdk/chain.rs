//! `Stels.wallet` (S-11), `Stels.blockchain` (S-12), `Stels.startTime`, and the parts of
//! `Stels.runtime` this node does not have.
//!
//! - `Stels.wallet`: the node's own Gliesereum wallet, frozen: `{publicKey, address, number,
//!   sign(data)}`. `publicKey` is the compressed SEC1 key (66 hex digits); `sign` signs a string
//!   with the node's key inside the node (DER hex, as `Stels.blockchain.sign`). The private key
//!   never enters the script's heap.
//! - `Stels.blockchain`, only for a worker that declares the dependency `"gliesereum"` (reading
//!   it otherwise throws a `TypeError` that says so): the client library's functions, with the
//!   same crypto as the login (`crate::auth::gliesereum`, one implementation for both):
//!   `createWallet()` and `importWallet(privateKeyHex)` → `{publicKey, privateKey, address,
//!   number}`; `validateAddress(address)`; `getAddressFromPublicKey(publicKeyHex)`;
//!   `verifyPublicKeyAddress(publicKeyHex, address)`; `cardNumber(address)`; `sign(data,
//!   privateKeyHex)`; `verify(data, signatureHex, publicKeyHex)`; `createSignedTransaction(wallet,
//!   to, amount, fee, data?)` (with `Stels.wallet` as `wallet` the node signs);
//!   `validateTransaction(tx)` → boolean.
//! - `Stels.startTime`: when the node started, in ms since the Unix epoch.
//! - `Stels.runtime.cex` (exchange clients) throws a `TypeError`: not available on this node.
//!
//! Argument mistakes (a private key that is not 64 hex digits, an amount that is not a safe
//! integer, a fee below 1, `data` over 2 MiB, a non-string to sign) throw `TypeError`; checks
//! (`validate…`, `verify…`) answer `false` instead of throwing.

use std::sync::Arc;

use rquickjs::prelude::Func;
use rquickjs::{Ctx, Exception, Function, Object, Value};

use super::install_on_first_use;
use crate::auth::gliesereum::{self, MAX_DATA_BYTES, MAX_SAFE_INTEGER, Wallet};
use crate::runtime::engine::WorkerEnv;

/// The dependency that opens `Stels.blockchain`.
pub const GLIESEREUM: &str = "gliesereum";

/// Checks arguments where the script called and shapes the results as the client library does.
const CHAIN_PRELUDE: &str = r#"(function (native) {
  "use strict";
  const NODE = Symbol("node wallet");
  const wallet = Object.freeze({
    publicKey: native.nodePublicKey,
    address: native.nodeAddress,
    number: native.nodeNumber,
    sign(data) {
      if (typeof data !== "string") throw new TypeError("Stels.wallet.sign: data must be a string (use JSON.stringify)");
      return native.nodeSign(data);
    },
    [NODE]: true,
  });
  function toWallet(keys) {
    const [publicKey, privateKey, address, number] = keys;
    return { publicKey, privateKey, address, number };
  }
  function text(value, what) {
    if (typeof value !== "string") throw new TypeError(`Stels.blockchain.${what} must be a string`);
    return value;
  }
  function integer(value, what, min) {
    if (!Number.isSafeInteger(value) || value < min) {
      throw new TypeError(`Stels.blockchain.createSignedTransaction: ${what} must be an integer from ${min} to 2^53 - 1`);
    }
    return value;
  }
  const blockchain = Object.freeze({
    createWallet() {
      return toWallet(native.createWallet());
    },
    importWallet(privateKey) {
      return toWallet(native.importWallet(text(privateKey, "importWallet: the private key")));
    },
    validateAddress(address) {
      return typeof address === "string" && native.validateAddress(address);
    },
    getAddressFromPublicKey(publicKey) {
      return native.addressOf(text(publicKey, "getAddressFromPublicKey: the public key"));
    },
    verifyPublicKeyAddress(publicKey, address) {
      return typeof publicKey === "string" && typeof address === "string" && native.keyHasAddress(publicKey, address);
    },
    cardNumber(address) {
      return native.cardNumber(text(address, "cardNumber: the address"));
    },
    sign(data, privateKey) {
      return native.sign(text(data, "sign: data (use JSON.stringify)"), text(privateKey, "sign: the private key"));
    },
    verify(data, signature, publicKey) {
      return typeof data === "string" && typeof signature === "string" && typeof publicKey === "string" &&
        native.verify(data, signature, publicKey);
    },
    createSignedTransaction(from, to, amount, fee, data) {
      if (from === null || typeof from !== "object") {
        throw new TypeError("Stels.blockchain.createSignedTransaction: the wallet must be an object with privateKey, or Stels.wallet");
      }
      text(to, "createSignedTransaction: to");
      integer(amount, "amount", 0);
      integer(fee, "fee", 1);
      if (data !== undefined && data !== null) text(data, "createSignedTransaction: data");
      const tx = from[NODE] === true
        ? native.nodeTransaction(to, amount, fee, data ?? undefined)
        : native.transaction(text(from.privateKey, "createSignedTransaction: wallet.privateKey"), to, amount, fee, data ?? undefined);
      return JSON.parse(tx);
    },
    validateTransaction(tx) {
      let json;
      try {
        json = JSON.stringify(tx);
      } catch {
        return false;
      }
      return typeof json === "string" && native.validateTransaction(json);
    },
  });
  return { wallet, blockchain };
})"#;

/// Installs `Stels.startTime`, `Stels.runtime`, and, on first use, `Stels.wallet` and (for a
/// worker with the `gliesereum` dependency) `Stels.blockchain`.
pub fn install_chain<'js>(ctx: &Ctx<'js>, stels: &Object<'js>, env: &WorkerEnv) -> rquickjs::Result<()> {
    stels.set("startTime", env.node.start_time_ms as f64)?;
    install_runtime(ctx, stels)?;
    let names: &'static [&'static str] = if env.dependencies.iter().any(|d| d == GLIESEREUM) {
        &["wallet", "blockchain"]
    } else {
        stels.prop(
            "blockchain",
            rquickjs::object::Accessor::from(|ctx: Ctx<'js>| -> rquickjs::Result<Value<'js>> {
                Err(Exception::throw_type(
                    &ctx,
                    "Stels.blockchain needs the dependency \"gliesereum\": add it to the worker's dependencies",
                ))
            })
            .enumerable(),
        )?;
        &["wallet"]
    };
    let wallet = env.node.wallet.clone();
    install_on_first_use(stels, names, move |ctx, stels| {
        let exports = build(ctx, &wallet)?;
        for &name in names {
            let value: Value = exports.get(name)?;
            stels.prop(name, rquickjs::object::Property::from(value).enumerable())?;
        }
        Ok(())
    })
}

/// `Stels.runtime`: its exchange clients (`cex`) do not exist here, and saying so beats a
/// `TypeError` about reading a property of `undefined`.
fn install_runtime<'js>(ctx: &Ctx<'js>, stels: &Object<'js>) -> rquickjs::Result<()> {
    let runtime = Object::new(ctx.clone())?;
    runtime.prop(
        "cex",
        rquickjs::object::Accessor::from(|ctx: Ctx<'js>| -> rquickjs::Result<Value<'js>> {
            Err(Exception::throw_type(
                &ctx,
                "Stels.runtime.cex (exchange clients) is not available on this node",
            ))
        })
        .enumerable(),
    )?;
    stels.prop("runtime", rquickjs::object::Property::from(runtime).enumerable())
}

fn build<'js>(ctx: &Ctx<'js>, node: &Arc<Wallet>) -> rquickjs::Result<Object<'js>> {
    let native = Object::new(ctx.clone())?;
    native.set("nodePublicKey", node.public_compressed_hex())?;
    native.set("nodeAddress", node.address())?;
    native.set("nodeNumber", node.number())?;
    let signer = Arc::clone(node);
    native.set("nodeSign", Func::from(move |data: String| signer.sign(&data)))?;
    let signer = Arc::clone(node);
    native.set(
        "nodeTransaction",
        Func::from(
            move |ctx: Ctx<'js>, to: String, amount: f64, fee: f64, data: Option<String>| {
                transaction(&ctx, &signer, &to, amount, fee, data)
            },
        ),
    )?;
    native.set(
        "createWallet",
        Func::from(|ctx: Ctx<'js>| match Wallet::try_generate() {
            Ok(wallet) => Ok(keys(&wallet)),
            Err(error) => Err(Exception::throw_internal(&ctx, &format!("createWallet: {error}"))),
        }),
    )?;
    native.set(
        "importWallet",
        Func::from(|ctx: Ctx<'js>, private_key: String| {
            wallet_of(&ctx, "importWallet", &private_key).map(|w| keys(&w))
        }),
    )?;
    native.set(
        "validateAddress",
        Func::from(|address: String| gliesereum::validate_address(&address)),
    )?;
    native.set(
        "addressOf",
        Func::from(|ctx: Ctx<'js>, public_key: String| {
            address_of(&public_key).ok_or_else(|| {
                Exception::throw_type(
                    &ctx,
                    "Stels.blockchain.getAddressFromPublicKey: not a secp256k1 public key in hex (66 or 130 digits)",
                )
            })
        }),
    )?;
    native.set(
        "keyHasAddress",
        Func::from(|public_key: String, address: String| {
            address_of(&public_key).is_some_and(|a| a == address)
        }),
    )?;
    native.set(
        "cardNumber",
        Func::from(|address: String| gliesereum::card_number(&address)),
    )?;
    native.set(
        "sign",
        Func::from(|ctx: Ctx<'js>, data: String, private_key: String| {
            wallet_of(&ctx, "sign", &private_key).map(|w| w.sign(&data))
        }),
    )?;
    native.set(
        "verify",
        Func::from(|data: String, signature: String, public_key: String| {
            gliesereum::verify_signature(&data, &signature, &public_key)
        }),
    )?;
    native.set(
        "transaction",
        Func::from(
            |ctx: Ctx<'js>, private_key: String, to: String, amount: f64, fee: f64, data: Option<String>| {
                let wallet = wallet_of(&ctx, "createSignedTransaction", &private_key)?;
                transaction(&ctx, &wallet, &to, amount, fee, data)
            },
        ),
    )?;
    native.set(
        "validateTransaction",
        Func::from(|tx: String| {
            serde_json::from_str(&tx).is_ok_and(|tx| gliesereum::verify_transaction(&tx).is_ok())
        }),
    )?;
    let factory: Function = {
        let mut options = rquickjs::context::EvalOptions::default();
        options.strict = true;
        options.filename = Some("<stels:chain>".to_string());
        ctx.eval_with_options(CHAIN_PRELUDE, options)?
    };
    factory.call((native,))
}

/// `[publicKey, privateKey, address, number]` of a wallet, for the prelude.
fn keys(wallet: &Wallet) -> Vec<String> {
    vec![
        wallet.public_compressed_hex(),
        wallet.private_hex(),
        wallet.address(),
        wallet.number(),
    ]
}

fn wallet_of(ctx: &Ctx<'_>, call: &str, private_key: &str) -> rquickjs::Result<Wallet> {
    Wallet::from_private_hex(private_key).map_err(|error| {
        Exception::throw_type(ctx, &format!("Stels.blockchain.{call}: the private key: {error}"))
    })
}

fn address_of(public_key: &str) -> Option<String> {
    let bytes = hex::decode(public_key).ok()?;
    gliesereum::address_from_public_key(&bytes).ok()
}

/// A signed basic transaction as JSON text, after the checks the client's verifier makes.
fn transaction(
    ctx: &Ctx<'_>,
    wallet: &Wallet,
    to: &str,
    amount: f64,
    fee: f64,
    data: Option<String>,
) -> rquickjs::Result<String> {
    let safe =
        |n: f64| (n.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER as f64).contains(&n)).then_some(n as u64);
    let bad = |message: &str| {
        Exception::throw_type(
            ctx,
            &format!("Stels.blockchain.createSignedTransaction: {message}"),
        )
    };
    let amount = safe(amount).ok_or_else(|| bad("amount must be an integer from 0 to 2^53 - 1"))?;
    let fee = safe(fee)
        .filter(|fee| *fee >= 1)
        .ok_or_else(|| bad("fee must be an integer from 1 to 2^53 - 1"))?;
    if data.as_ref().is_some_and(|d| d.len() > MAX_DATA_BYTES) {
        return Err(bad("data is over 2 MiB"));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let tx = gliesereum::create_signed_transaction(wallet, to, amount, fee, data.as_deref(), now);
    Ok(tx.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::runtime::engine::FetchPolicy;
    use crate::runtime::engine::testing::{eval_body, test_env};
    use crate::runtime::sdk::{RunSignal, install_sdk};
    use crate::store::fjall::FjallStore;

    const PRIV: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const ADDRESS: &str = "gq8vij8cqueDyuGypUF7hbo9hyLqdy9jKz";

    async fn eval(dependencies: &[&str], body: &str) -> (Result<serde_json::Value, String>, WorkerEnv) {
        let dir = tempfile::tempdir().unwrap();
        let net = Arc::new(FjallStore::open(&dir.path().join("net"), false).unwrap());
        let local = Arc::new(FjallStore::open(&dir.path().join("local"), false).unwrap());
        let mut env = test_env(net, local, FetchPolicy::default());
        env.dependencies = dependencies.iter().map(|d| d.to_string()).collect();
        let result = eval_body(&env, body, |ctx, env| {
            install_sdk(ctx, env, &RunSignal::default()).unwrap();
        })
        .await;
        (result, env)
    }

    #[tokio::test]
    async fn the_node_wallet_shows_public_parts_and_signs_inside_the_node() {
        let (got, env) = eval(
            &[],
            r#"const w = Stels.wallet;
               const signature = w.sign("hello");
               let nonString;
               try { w.sign({}); } catch (e) { nonString = e.name; }
               try { w.address = "changed"; } catch {}
               return { keys: Object.keys(w).sort(), publicKey: w.publicKey, address: w.address, number: w.number,
                        signature, nonString, frozen: Object.isFrozen(w), startTime: Stels.startTime };"#,
        )
        .await;
        let got = got.unwrap();
        let node = &env.node.wallet;
        assert_eq!(got["keys"], json!(["address", "number", "publicKey", "sign"]));
        assert_eq!(got["publicKey"], node.public_compressed_hex());
        assert_eq!(got["address"], node.address());
        assert_eq!(got["number"], node.number());
        assert!(gliesereum::verify_signature(
            "hello",
            got["signature"].as_str().unwrap(),
            &node.public_uncompressed_hex()
        ));
        assert_eq!(got["nonString"], "TypeError");
        assert_eq!(got["frozen"], true);
        assert_eq!(got["startTime"], 1_700_000_000_000u64);
        assert!(!got.to_string().contains(&node.private_hex()));
    }

    #[tokio::test]
    async fn blockchain_needs_the_gliesereum_dependency() {
        let (got, _) = eval(
            &[],
            "try { return typeof Stels.blockchain; } catch (e) { return `${e.name}: ${e.message}`; }",
        )
        .await;
        assert_eq!(
            got.unwrap(),
            "TypeError: Stels.blockchain needs the dependency \"gliesereum\": add it to the worker's dependencies"
        );
        let (got, _) = eval(&["gliesereum"], "return typeof Stels.blockchain.createWallet;").await;
        assert_eq!(got.unwrap(), "function");
    }

    #[tokio::test]
    async fn blockchain_matches_the_login_vector() {
        let (got, _) = eval(
            &["gliesereum"],
            &format!(
                r#"const b = Stels.blockchain;
                   const w = b.importWallet("{PRIV}");
                   const fresh = b.createWallet();
                   const sig = b.sign("message", w.privateKey);
                   return {{ w, freshValid: b.validateAddress(fresh.address) && b.verifyPublicKeyAddress(fresh.publicKey, fresh.address),
                            fromKey: b.getAddressFromPublicKey(w.publicKey), card: b.cardNumber(w.address),
                            valid: [b.validateAddress("{ADDRESS}"), b.validateAddress("{ADDRESS}x"), b.validateAddress(42)],
                            verify: [b.verify("message", sig, w.publicKey), b.verify("other", sig, w.publicKey), b.verify("message", "zz", w.publicKey)],
                            mismatch: b.verifyPublicKeyAddress(fresh.publicKey, w.address) }};"#
            ),
        )
        .await;
        let got = got.unwrap();
        assert_eq!(
            got["w"],
            json!({"publicKey": "034f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa",
                   "privateKey": PRIV, "address": ADDRESS, "number": "0116308144976937"})
        );
        assert_eq!(got["freshValid"], true);
        assert_eq!(got["fromKey"], ADDRESS);
        assert_eq!(got["card"], "0116308144976937");
        assert_eq!(got["valid"], json!([true, false, false]));
        assert_eq!(got["verify"], json!([true, false, false]));
        assert_eq!(got["mismatch"], false);
    }

    #[tokio::test]
    async fn signed_transactions_verify_here_and_tampering_is_caught() {
        let (got, env) = eval(
            &["gliesereum"],
            &format!(
                r#"const b = Stels.blockchain;
                   const w = b.importWallet("{PRIV}");
                   const tx = b.createSignedTransaction(w, "{ADDRESS}", 5, 1, "payload");
                   const bare = b.createSignedTransaction(w, "{ADDRESS}", 0, 1);
                   const byNode = b.createSignedTransaction(Stels.wallet, "{ADDRESS}", 1, 2);
                   const tampered = {{ ...tx, amount: 6 }};
                   const errors = [];
                   for (const args of [[w, "{ADDRESS}", -1, 1], [w, "{ADDRESS}", 1, 0], [w, "{ADDRESS}", 2 ** 53, 1],
                                       [w, "{ADDRESS}", 1.5, 1], [{{ privateKey: "abc" }}, "{ADDRESS}", 1, 1], [null, "x", 1, 1]]) {{
                     try {{ b.createSignedTransaction(...args); errors.push("none"); }} catch (e) {{ errors.push(e.name); }}
                   }}
                   return {{ tx, bare, byNode, valid: [b.validateTransaction(tx), b.validateTransaction(bare), b.validateTransaction(byNode),
                            b.validateTransaction(tampered), b.validateTransaction(null), b.validateTransaction({{}})], errors }};"#
            ),
        )
        .await;
        let got = got.unwrap();
        assert_eq!(got["valid"], json!([true, true, true, false, false, false]));
        assert_eq!(got["errors"], json!(vec!["TypeError"; 6]));
        let verified = gliesereum::verify_transaction_details(&got["tx"]).unwrap();
        assert_eq!(verified.address, ADDRESS);
        assert_eq!((verified.amount, verified.fee), (5, 1));
        assert_eq!(verified.data.as_deref(), Some("payload"));
        assert!(
            got["bare"].get("data").is_none(),
            "no data key, signed as data:null"
        );
        gliesereum::verify_transaction(&got["bare"]).unwrap();
        assert_eq!(
            gliesereum::verify_transaction(&got["byNode"]).unwrap(),
            env.node.wallet.address()
        );
        assert_eq!(got["tx"]["from"]["publicKey"].as_str().unwrap().len(), 130);
    }

    #[tokio::test]
    async fn exchange_clients_are_named_as_missing() {
        let (got, _) = eval(
            &[],
            "try { return Stels.runtime.cex.bybit; } catch (e) { return `${e.name}: ${e.message}`; }",
        )
        .await;
        assert_eq!(
            got.unwrap(),
            "TypeError: Stels.runtime.cex (exchange clients) is not available on this node"
        );
    }
}
