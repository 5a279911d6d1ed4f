// Gliesereum wallets in the page: the same crypto as the node and the CLI (stels-client.md §2).
// The private key only ever lives in this module's closures; it is never stored or sent.
import { secp, sha256, ripemd160, base58 } from "../vendor/crypto.js";

const VERSION_BYTE = 0x62;
const utf8 = new TextEncoder();

export function hexToBytes(hex) {
  if (typeof hex !== "string" || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new Error("not a hex string");
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function bytesToHex(bytes) {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** `base58(0x62 ‖ RIPEMD160(SHA256(pub33)) ‖ SHA256(0x62 ‖ hash160)[0..4])`. */
export function addressOf(compressedPublicKey) {
  const payload = concat([VERSION_BYTE], ripemd160(sha256(compressedPublicKey)));
  return base58.encode(concat(payload, sha256(payload).slice(0, 4)));
}

/** The 16-digit card number, with the STELS client's check-digit variant. */
export function cardNumber(address) {
  let n = 0n;
  for (const b of sha256(utf8.encode(address))) n = (n << 8n) | BigInt(b);
  const base = "0" + n.toString().padStart(14, "0").slice(0, 14);
  let sum = 0;
  [...base].reverse().forEach((c, i) => {
    let d = Number(c);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  });
  return base + String((10 - (sum % 10)) % 10);
}

/** Deterministic JSON "gls-det-1": sorted keys, no whitespace, present-but-undefined as null. */
export function canonicalJson(value) {
  if (value === undefined || value === null) return "null";
  if (Array.isArray(value)) return "[" + value.map(canonicalJson).join(",") + "]";
  if (typeof value === "object") {
    const keys = Object.keys(value).sort();
    return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonicalJson(value[k])).join(",") + "}";
  }
  return JSON.stringify(value);
}

/** DER encoding of a compact (r ‖ s) signature. */
function der(compact) {
  const int = (bytes) => {
    let i = 0;
    while (i < bytes.length - 1 && bytes[i] === 0) i++;
    let v = bytes.slice(i);
    if (v[0] & 0x80) v = concat([0], v);
    return concat([0x02, v.length], v);
  };
  const body = concat(int(compact.slice(0, 32)), int(compact.slice(32, 64)));
  return concat([0x30, body.length], body);
}

/**
 * Reads a wallet from what a person pastes or loads: a key file of `heterogen wallet new`
 * (`{"privateKey": …}`), a STELS wallet export with `privateKey`, or 64 hex digits.
 */
export function parseWalletKey(text) {
  let hex = String(text ?? "").trim();
  if (hex.startsWith("{")) {
    let parsed;
    try {
      parsed = JSON.parse(hex);
    } catch {
      throw new Error("The key file is not valid JSON");
    }
    hex = parsed?.privateKey ?? parsed?.wallet?.privateKey ?? "";
    if (typeof hex !== "string" || !hex) throw new Error("The key file has no privateKey");
    const wallet = walletFromPrivateHex(hex.trim());
    if (typeof parsed.address === "string" && parsed.address !== wallet.address) {
      throw new Error("The key file's address does not belong to its private key");
    }
    return wallet;
  }
  return walletFromPrivateHex(hex);
}

export function walletFromPrivateHex(hex) {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new Error("A private key is 64 hexadecimal digits");
  }
  const secret = hexToBytes(hex);
  if (!secp.utils.isValidSecretKey(secret)) throw new Error("Not a valid secp256k1 private key");
  const compressed = secp.getPublicKey(secret, true);
  const address = addressOf(compressed);
  return Object.freeze({
    address,
    number: cardNumber(address),
    publicKeyCompressed: bytesToHex(compressed),
    publicKeyUncompressed: bytesToHex(secp.getPublicKey(secret, false)),
    /** DER hex of a low-S RFC 6979 signature over SHA-256 of `text`. */
    sign: (text) => bytesToHex(der(secp.sign(utf8.encode(text), secret, { lowS: true }))),
  });
}

/** A signed self-transaction carrying `data`, exactly as the STELS client builds it (§2.3). */
export function signedTransaction(wallet, data, timestamp = Date.now()) {
  const tx = {
    from: { publicKey: wallet.publicKeyUncompressed, address: wallet.address, number: wallet.number },
    to: wallet.address,
    amount: 0,
    fee: 1,
    verified: false,
    validators: [],
    timestamp,
    data,
  };
  const text = canonicalJson(tx);
  return { ...tx, hash: bytesToHex(sha256(utf8.encode(text))), signature: wallet.sign(text) };
}

/** The `connectionNode` request body (§2.4) for `network`. */
export function loginRequest(wallet, network, now = Date.now()) {
  const data = JSON.stringify({
    action: "LOGIN_REQUEST",
    timestamp: now,
    network,
    walletAddress: wallet.address,
  });
  const transaction = signedTransaction(wallet, data, now + 1);
  const api = location.origin;
  return {
    webfix: "1.0",
    method: "connectionNode",
    params: ["gliesereum"],
    body: {
      network,
      title: "heterogen-console",
      nid: `console_${now}`,
      payload: {
        webfix: "1.0",
        method: "connectionNode",
        params: ["gliesereum"],
        body: { transaction, walletAddress: wallet.address, publicKey: wallet.publicKeyUncompressed },
      },
      transport: "websocket",
      connector: { protocols: ["webfix"], socket: api.replace(/^http/, "ws") },
      api,
      developer: true,
    },
  };
}
