// The secp256k1, SHA-256, RIPEMD-160 and base58 the console signs logins with, bundled into one
// ES module. Pure JavaScript: it works on plain-HTTP origins, where WebCrypto is unavailable.
import * as secp from "@noble/secp256k1";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { ripemd160 } from "@noble/hashes/legacy.js";
import { base58 } from "@scure/base";

secp.hashes.hmacSha256 = (key, msg) => hmac(sha256, key, msg);
secp.hashes.sha256 = sha256;

export { secp, sha256, ripemd160, base58 };
