//! Gliesereum wallets: keys, addresses, card numbers, the "gls-det-1" canonical JSON and the
//! signed transactions the STELS web client sends to log in (`stels-client.md` §2, W-AUTH-1).
//!
//! Everything here is byte-for-byte compatible with the client's JavaScript (`elliptic` 6.6.1,
//! `bs58` 6, `@noble/hashes`): a transaction signed by the browser verifies here and one signed
//! here verifies there. The published test vector is checked in the tests below.
//!
//! What this module is *not*: it knows nothing about sessions, roles, networks or freshness
//! windows. [`verify_transaction`] proves who signed a transaction; whether that transaction
//! is an acceptable login (its `data`, `to`, timestamp) is the caller's decision.
//!
//! # Recipe
//! - Curve secp256k1; signatures are ECDSA over SHA-256 of the message, RFC 6979 deterministic
//!   nonce, low-S, DER, lowercase hex.
//! - Address: `base58(0x62 ‖ RIPEMD160(SHA256(compressed key)) ‖ SHA256(0x62 ‖ hash160)[..4])`,
//!   a *single* SHA-256 checksum (not Bitcoin's double one); 34 characters starting with `g`.
//! - Card number: `"0"` + the first 14 decimal digits of SHA-256(address) + the client's check
//!   digit (see [`card_number`]).
//! - gls-det-1: see [`canonical_json`].
//!
//! # Limits
//! A transaction's `data` is at most [`MAX_DATA_BYTES`] (2 MiB, counted in UTF-8 bytes);
//! amounts and fees are JavaScript safe integers (at most 2^53 − 1).

use std::fmt;

use k256::ecdsa::signature::Signer;
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use k256::sha2::{Digest, Sha256};
use ripemd::Ripemd160;
use serde_json::{Map, Number, Value};

/// The address version byte: 98, which makes every address start with `g`.
pub const ADDRESS_VERSION: u8 = 0x62;

/// Largest accepted `data` string of a transaction, in UTF-8 bytes (the client's 2 MiB cap).
pub const MAX_DATA_BYTES: usize = 2 * 1024 * 1024;

/// `Number.MAX_SAFE_INTEGER`: amounts and fees above it cannot round-trip through the client.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Length of a decoded address: version byte, 20-byte hash160, 4-byte checksum.
const ADDRESS_BYTES: usize = 1 + 20 + 4;

/// Longer strings cannot be addresses; refusing them early keeps base58 decoding (quadratic)
/// cheap on hostile input.
const MAX_ADDRESS_CHARS: usize = 64;

/// Why a key could not be read or made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    /// The private key contains a character that is not a hex digit.
    #[error("private key is not valid hex")]
    BadHex,
    /// The private key has the wrong number of hex digits.
    #[error("private key must be {expected} hex digits, got {actual}")]
    WrongLength {
        /// Always 64.
        expected: usize,
        /// What was given, in characters.
        actual: usize,
    },
    /// The private key is zero or not below the curve order.
    #[error("private key is not a valid secp256k1 key (zero or not below the curve order)")]
    InvalidKey,
    /// Public-key bytes are not a SEC1 encoding of a point on secp256k1.
    #[error("public key is not a valid secp256k1 point (expected SEC1 compressed or uncompressed)")]
    InvalidPublicKey,
    /// The operating system could not provide random bytes.
    #[error("the operating system's random number generator failed: {0}")]
    Randomness(String),
}

/// Why a transaction was refused. [`TxError::status`] gives the HTTP status to answer with;
/// the Display text is the message sent to the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The transaction is not a JSON object.
    #[error("transaction is not a JSON object")]
    NotAnObject,
    /// A required field is absent (`from.publicKey` style paths).
    #[error("transaction is missing field `{0}`")]
    MissingField(&'static str),
    /// A field is present with a JSON type other than the one required.
    #[error("transaction field `{field}` has the wrong type: expected {expected}")]
    WrongType {
        /// Path of the field, e.g. `from.address`.
        field: &'static str,
        /// What it should have been, e.g. `a string`.
        expected: &'static str,
    },
    /// A string field that must be hex is not.
    #[error("transaction field `{0}` is not valid hex")]
    BadHex(&'static str),
    /// `from.publicKey` is not a SEC1 encoding of a secp256k1 point.
    #[error(
        "from.publicKey is not a valid secp256k1 public key (expected SEC1 compressed or uncompressed hex)"
    )]
    InvalidPublicKey,
    /// `signature` is hex but not an ASN.1 DER ECDSA signature with scalars in range.
    #[error("signature is not a valid DER-encoded ECDSA signature")]
    InvalidSignatureEncoding,
    /// `amount` is a number but not an integer in `0..=2^53-1`.
    #[error("amount must be an integer from 0 to 9007199254740991")]
    InvalidAmount,
    /// `fee` is a number but not an integer in `1..=2^53-1`.
    #[error("fee must be an integer from 1 to 9007199254740991")]
    InvalidFee,
    /// `data` is longer than [`MAX_DATA_BYTES`].
    #[error("transaction field `data` exceeds 2 MiB")]
    DataTooLarge,
    /// `hash` is not SHA-256 of the transaction's gls-det-1 string.
    #[error("hash does not match the transaction")]
    HashMismatch,
    /// The signature is well formed but was not made by `from.publicKey` over this transaction.
    #[error("signature does not verify")]
    BadSignature,
    /// `from.address` is not the address of `from.publicKey`.
    #[error("from.address does not match the public key")]
    AddressMismatch,
}

impl TxError {
    /// Whether the input is malformed, rather than well formed but failing a cryptographic
    /// check.
    pub fn is_malformed(&self) -> bool {
        match self {
            TxError::HashMismatch | TxError::BadSignature | TxError::AddressMismatch => false,
            TxError::NotAnObject
            | TxError::MissingField(_)
            | TxError::WrongType { .. }
            | TxError::BadHex(_)
            | TxError::InvalidPublicKey
            | TxError::InvalidSignatureEncoding
            | TxError::InvalidAmount
            | TxError::InvalidFee
            | TxError::DataTooLarge => true,
        }
    }
}

/// A secp256k1 key pair of a Gliesereum wallet.
///
/// `Debug` shows the address and public key only; the private key leaves this type only
/// through [`Wallet::private_hex`]. The key is zeroized on drop (by `k256`).
pub struct Wallet {
    /// The secret scalar; the public key is derived from it on demand.
    key: SigningKey,
}

impl fmt::Debug for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wallet")
            .field("address", &self.address())
            .field("public_key", &self.public_compressed_hex())
            .finish_non_exhaustive()
    }
}

impl Wallet {
    /// A new wallet from the operating system's random number generator.
    ///
    /// # Panics
    /// Only if the operating system cannot provide random bytes, when no key can safely be
    /// made; use [`Wallet::try_generate`] to handle that as an error.
    pub fn generate() -> Wallet {
        match Wallet::try_generate() {
            Ok(wallet) => wallet,
            Err(e) => panic!("cannot generate a wallet: {e}"),
        }
    }

    /// A new wallet from the operating system's random number generator, or why not.
    pub fn try_generate() -> Result<Wallet, WalletError> {
        // A uniformly random 32-byte string is out of range with probability ~2^-128; the
        // bound only keeps a broken generator (say, all zeros) from looping forever.
        for _ in 0..64 {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| WalletError::Randomness(e.to_string()))?;
            let key = SigningKey::from_slice(&bytes);
            bytes.fill(0);
            if let Ok(key) = key {
                return Ok(Wallet { key });
            }
        }
        Err(WalletError::Randomness("no valid key in 64 draws".to_string()))
    }

    /// The wallet of a 64-hex-digit private key (either case), as the client's `importWallet`.
    pub fn from_private_hex(hex: &str) -> Result<Wallet, WalletError> {
        let actual = hex.chars().count();
        if actual != 64 {
            return Err(WalletError::WrongLength { expected: 64, actual });
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex, &mut bytes).map_err(|_| WalletError::BadHex)?;
        let key = SigningKey::from_slice(&bytes).map_err(|_| WalletError::InvalidKey);
        bytes.fill(0);
        Ok(Wallet { key: key? })
    }

    /// The private key as 64 lowercase hex digits.
    pub fn private_hex(&self) -> String {
        hex::encode(self.key.to_bytes())
    }

    /// The compressed SEC1 public key: 66 hex digits starting with `02` or `03`.
    pub fn public_compressed_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_sec1_point(true).as_bytes())
    }

    /// The uncompressed SEC1 public key: 130 hex digits starting with `04`.
    pub fn public_uncompressed_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_sec1_point(false).as_bytes())
    }

    /// The wallet's address (`g…`, 34 characters).
    pub fn address(&self) -> String {
        address_from_verifying_key(self.key.verifying_key())
    }

    /// The wallet's 16-digit card number, with the client's check digit.
    pub fn number(&self) -> String {
        card_number(&self.address())
    }

    /// DER hex of ECDSA-secp256k1 over SHA-256(message), RFC 6979, low-S (elliptic
    /// `{canonical:true}`), as the client's `sign(data, privateKey)`.
    pub fn sign(&self, message: &str) -> String {
        // k256 hashes with SHA-256, derives k by RFC 6979 and normalises to low-S; signing with
        // a valid key and a 32-byte digest cannot fail.
        let signature: DerSignature = self.key.sign(message.as_bytes());
        hex::encode(signature.as_bytes())
    }
}

/// The address of a SEC1 public key (compressed or uncompressed; an uncompressed key is
/// compressed first, as the client's `ensureCompressedKey`).
pub fn address_from_public_key(sec1: &[u8]) -> Result<String, WalletError> {
    let key = VerifyingKey::from_sec1_bytes(sec1).map_err(|_| WalletError::InvalidPublicKey)?;
    Ok(address_from_verifying_key(&key))
}

/// Whether `signature_der_hex` is a valid signature of `message` (ECDSA-secp256k1 over
/// SHA-256, DER, either hex case) by the SEC1 public key `public_key_hex` (compressed or
/// uncompressed), as the client's `verify(data, signature, publicKey)`. High-S signatures are
/// accepted (normalised), as `elliptic` does. Malformed hex, keys or DER are `false`.
pub fn verify_signature(message: &str, signature_der_hex: &str, public_key_hex: &str) -> bool {
    let Ok(public_key) = hex::decode(public_key_hex) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_sec1_bytes(&public_key) else {
        return false;
    };
    let Ok(signature) = hex::decode(signature_der_hex) else {
        return false;
    };
    let Ok(signature) = Signature::from_der(&signature) else {
        return false;
    };
    let digest: [u8; 32] = Sha256::digest(message.as_bytes()).into();
    key.verify_prehash(&digest, &signature.normalize_s()).is_ok()
}

fn address_from_verifying_key(key: &VerifyingKey) -> String {
    let compressed = key.to_sec1_point(true);
    let hash160 = Ripemd160::digest(Sha256::digest(compressed.as_bytes()));
    let mut payload = Vec::with_capacity(ADDRESS_BYTES);
    payload.push(ADDRESS_VERSION);
    payload.extend_from_slice(&hash160);
    let checksum = Sha256::digest(&payload);
    payload.extend_from_slice(checksum.get(..4).unwrap_or_default());
    bs58::encode(payload).into_string()
}

/// Whether `address` is a well-formed Gliesereum address: Bitcoin-alphabet base58 of 25 bytes,
/// version 0x62, and a single-SHA-256 checksum (compared in constant time, as the client).
pub fn validate_address(address: &str) -> bool {
    if address.is_empty() || address.len() > MAX_ADDRESS_CHARS {
        return false;
    }
    let Ok(bytes) = bs58::decode(address).into_vec() else {
        return false;
    };
    if bytes.len() != ADDRESS_BYTES || bytes.first() != Some(&ADDRESS_VERSION) {
        return false;
    }
    let (payload, checksum) = bytes.split_at(ADDRESS_BYTES - 4);
    let expected = Sha256::digest(payload);
    bool::from(subtle::ConstantTimeEq::ct_eq(
        expected.get(..4).unwrap_or_default(),
        checksum,
    ))
}

/// The 16-digit card number of an address, as the client's `wallet.number`.
///
/// `"0"` + the first 14 digits of SHA-256(utf8(address)) read as a big-endian integer in
/// decimal (left-padded to 14) + a check digit. The check digit is the client's, not textbook
/// Luhn: walking the 15-digit base from the right, the rightmost digit is *not* doubled, every
/// second digit after it is; the digit is `(10 - sum % 10) % 10`.
pub fn card_number(address: &str) -> String {
    let digest: [u8; 32] = Sha256::digest(address.as_bytes()).into();
    let decimal = big_endian_to_decimal(&digest);
    let padded = format!("{decimal:0>14}");
    let mut number = String::with_capacity(16);
    number.push('0');
    number.push_str(&padded[..14]);
    let check = client_check_digit(&number);
    number.push(char::from(b'0' + check));
    number
}

/// The client's `luhnChecksum` over a string of ASCII digits (see [`card_number`]).
fn client_check_digit(digits: &str) -> u8 {
    let mut sum: u32 = 0;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b.wrapping_sub(b'0') % 10);
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    // Both values are below 10, so the narrowing cannot lose anything.
    ((10 - sum % 10) % 10) as u8
}

/// Decimal digits of a big-endian unsigned integer, without leading zeros ("0" for zero).
fn big_endian_to_decimal(bytes: &[u8]) -> String {
    let mut number = bytes.to_vec();
    let mut digits = Vec::with_capacity(bytes.len() * 3);
    while number.iter().any(|&b| b != 0) {
        let mut remainder: u32 = 0;
        for byte in number.iter_mut() {
            let value = (remainder << 8) | u32::from(*byte);
            // value < 10 * 256, so value / 10 < 256.
            *byte = (value / 10) as u8;
            remainder = value % 10;
        }
        digits.push(b'0' + remainder as u8);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8_lossy(&digits).into_owned()
}

/// gls-det-1: sorted keys (UTF-16 code-unit order), no whitespace, JS JSON.stringify escaping
/// and number printing, as the client's `deterministicStringify`.
///
/// Numbers print as JavaScript prints the `f64` they denote: integers up to 2^53 plainly, all
/// others through `ryu-js` (ECMAScript `Number::toString`: `1e+21`, `1.5e-7`, `-0` → `0`,
/// 2^64 → `18446744073709552000`). Strings escape `"`, `\`, `\b \f \n \r \t` and the other
/// control characters as `\u00xx` (lowercase hex); everything else, U+2028/2029 included, is
/// written as is. Nesting depth is the caller's to bound (`serde_json` parses at most 128).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_js_number(out, n),
        Value::String(s) => write_js_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map.iter().map(|(k, v)| (k.as_str(), v)).collect()),
    }
}

/// Writes `{…}` from entries in any order; sorts them by UTF-16 code units like JS `.sort()`.
fn write_object(out: &mut String, mut entries: Vec<(&str, &Value)>) {
    entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    out.push('{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_js_string(out, key);
        out.push(':');
        write_value(out, value);
    }
    out.push('}');
}

fn write_js_number(out: &mut String, n: &Number) {
    const EXACT: u64 = 1 << 53;
    if let Some(u) = n.as_u64().filter(|u| *u <= EXACT) {
        out.push_str(&u.to_string());
    } else if let Some(i) = n.as_i64().filter(|i| i.unsigned_abs() <= EXACT) {
        out.push_str(&i.to_string());
    } else {
        match n.as_f64() {
            Some(f) if f.is_finite() => out.push_str(ryu_js::Buffer::new().format_finite(f)),
            // JSON.stringify prints non-finite numbers as null; serde_json never holds one.
            _ => out.push_str("null"),
        }
    }
}

/// A JSON string literal exactly as JS `JSON.stringify` writes it.
fn write_js_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let b = u32::from(c) as usize;
                out.push_str("\\u00");
                for nibble in [b >> 4, b & 0xf] {
                    out.push(char::from(HEX.get(nibble).copied().unwrap_or(b'0')));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The gls-det-1 string of `tx`'s entries other than `hash` and `signature`, with
/// `"data":null` added when `data` is absent (the client signed `data: undefined`, which its
/// `JSON.stringify` then dropped from the wire).
fn transaction_canonical(tx: &Map<String, Value>) -> String {
    const NULL: Value = Value::Null;
    let mut entries: Vec<(&str, &Value)> = tx
        .iter()
        .filter(|(k, _)| k.as_str() != "hash" && k.as_str() != "signature")
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    if !tx.contains_key("data") {
        entries.push(("data", &NULL));
    }
    let mut canonical = String::new();
    write_object(&mut canonical, entries);
    canonical
}

/// The basic signed transaction of §2.3 as JSON (`{...tx, hash, signature}`); `data` omitted
/// when `None` (and signed as `"data":null`, as the client does).
///
/// `from.publicKey` is the uncompressed key, as the client sends it. Nothing is checked here:
/// a `fee` of 0 or an amount above 2^53 − 1 gives a transaction [`verify_transaction`] refuses.
pub fn create_signed_transaction(
    wallet: &Wallet,
    to: &str,
    amount: u64,
    fee: u64,
    data: Option<&str>,
    timestamp_ms: i64,
) -> Value {
    seal_transaction(
        wallet,
        &wallet.public_uncompressed_hex(),
        to,
        amount,
        fee,
        data,
        timestamp_ms,
    )
}

/// [`create_signed_transaction`] with the `from.publicKey` encoding chosen by the caller.
fn seal_transaction(
    wallet: &Wallet,
    public_key_hex: &str,
    to: &str,
    amount: u64,
    fee: u64,
    data: Option<&str>,
    timestamp_ms: i64,
) -> Value {
    let address = wallet.address();
    let number = card_number(&address);
    // Key order of the client's object literals, so the wire JSON looks the same.
    let mut from = Map::new();
    from.insert("publicKey".into(), Value::from(public_key_hex));
    from.insert("address".into(), Value::from(address));
    from.insert("number".into(), Value::from(number));
    let mut tx = Map::new();
    tx.insert("from".into(), Value::Object(from));
    tx.insert("to".into(), Value::from(to));
    tx.insert("amount".into(), Value::from(amount));
    tx.insert("fee".into(), Value::from(fee));
    tx.insert("verified".into(), Value::Bool(false));
    tx.insert("validators".into(), Value::Array(Vec::new()));
    tx.insert("timestamp".into(), Value::from(timestamp_ms));
    if let Some(data) = data {
        tx.insert("data".into(), Value::from(data));
    }
    let canonical = transaction_canonical(&tx);
    let hash = hex::encode(Sha256::digest(canonical.as_bytes()));
    let signature = wallet.sign(&canonical);
    tx.insert("hash".into(), Value::from(hash));
    tx.insert("signature".into(), Value::from(signature));
    Value::Object(tx)
}

/// What [`verify_transaction_details`] proved and read from a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTransaction {
    /// `from.address`, checked against the public key.
    pub address: String,
    /// The signer's key, compressed SEC1 hex (66 digits).
    pub public_key_compressed: String,
    /// The recipient as written (not validated; a login requires it to equal `address`).
    pub to: String,
    /// Amount in the chain's smallest unit.
    pub amount: u64,
    /// Fee, at least 1.
    pub fee: u64,
    /// The client's `Date.now()` when it signed, in ms.
    pub timestamp_ms: i64,
    /// The `data` string, if any.
    pub data: Option<String>,
    /// SHA-256 of the gls-det-1 string: what was signed, the same whatever the spelling of the
    /// transaction on the wire (key order, spacing, hex case, signature encoding).
    pub digest: [u8; 32],
}

/// §2.6 steps 1–4 on a transaction object: recompute gls-det-1 without `hash`/`signature`
/// (with `"data":null` when `data` is absent), check `hash`, verify the DER signature with
/// `from.publicKey` (compressed or uncompressed SEC1 hex; a high-S signature is normalised and
/// accepted), and check that `from.address` is the public key's address. Returns the verified
/// sender address.
pub fn verify_transaction(tx: &Value) -> Result<String, TxError> {
    verify_transaction_details(tx).map(|v| v.address)
}

/// [`verify_transaction`], returning the fields a caller needs to judge the transaction.
///
/// All shape checks (400) come before the cryptographic ones (401), so a malformed transaction
/// is always reported as malformed.
pub fn verify_transaction_details(tx: &Value) -> Result<VerifiedTransaction, TxError> {
    let tx = tx.as_object().ok_or(TxError::NotAnObject)?;

    let from = match tx.get("from") {
        None => return Err(TxError::MissingField("from")),
        Some(Value::Object(from)) => from,
        Some(_) => return Err(wrong_type("from", "an object")),
    };
    let public_key_hex = string_field(from, "publicKey", "from.publicKey")?;
    let address = string_field(from, "address", "from.address")?;
    let to = string_field(tx, "to", "to")?;
    let amount = number_field(tx, "amount")?
        .as_u64()
        .filter(|a| *a <= MAX_SAFE_INTEGER)
        .ok_or(TxError::InvalidAmount)?;
    let fee = number_field(tx, "fee")?
        .as_u64()
        .filter(|f| (1..=MAX_SAFE_INTEGER).contains(f))
        .ok_or(TxError::InvalidFee)?;
    let timestamp_ms = number_field(tx, "timestamp")?
        .as_i64()
        .filter(|t| *t >= 0)
        .ok_or(wrong_type("timestamp", "a non-negative integer"))?;
    let data = match tx.get("data") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() > MAX_DATA_BYTES => return Err(TxError::DataTooLarge),
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(wrong_type("data", "a string")),
    };
    let hash_hex = string_field(tx, "hash", "hash")?;
    let signature_hex = string_field(tx, "signature", "signature")?;

    let hash = hex::decode(hash_hex).map_err(|_| TxError::BadHex("hash"))?;
    let public_key = hex::decode(public_key_hex).map_err(|_| TxError::BadHex("from.publicKey"))?;
    let key = VerifyingKey::from_sec1_bytes(&public_key).map_err(|_| TxError::InvalidPublicKey)?;
    let signature = hex::decode(signature_hex).map_err(|_| TxError::BadHex("signature"))?;
    let signature = Signature::from_der(&signature).map_err(|_| TxError::InvalidSignatureEncoding)?;

    let digest: [u8; 32] = Sha256::digest(transaction_canonical(tx).as_bytes()).into();
    if hash != digest {
        return Err(TxError::HashMismatch);
    }
    // elliptic's verify accepts high-S; k256 refuses it unless normalised first.
    key.verify_prehash(&digest, &signature.normalize_s())
        .map_err(|_| TxError::BadSignature)?;
    if address_from_verifying_key(&key) != address {
        return Err(TxError::AddressMismatch);
    }

    Ok(VerifiedTransaction {
        address: address.to_string(),
        public_key_compressed: hex::encode(key.to_sec1_point(true).as_bytes()),
        to: to.to_string(),
        amount,
        fee,
        timestamp_ms,
        data,
        digest,
    })
}

fn wrong_type(field: &'static str, expected: &'static str) -> TxError {
    TxError::WrongType { field, expected }
}

fn string_field<'a>(map: &'a Map<String, Value>, key: &str, path: &'static str) -> Result<&'a str, TxError> {
    match map.get(key) {
        None => Err(TxError::MissingField(path)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(wrong_type(path, "a string")),
    }
}

fn number_field<'a>(map: &'a Map<String, Value>, key: &'static str) -> Result<&'a Number, TxError> {
    match map.get(key) {
        None => Err(TxError::MissingField(key)),
        Some(Value::Number(n)) => Ok(n),
        Some(_) => Err(wrong_type(key, "a number")),
    }
}

/// The whole `connectionNode` request body (§2.4) the existing client sends, for tests and our
/// CLI: a self-transfer of amount 0 and fee 1 whose `data` is
/// `JSON.stringify({action, timestamp, network, walletAddress})` in that key order.
///
/// `timestamp_ms` is used both inside `data` and as the transaction's timestamp. `nid` is
/// `gliese_<ms>_<9 random base36 chars>` like the client's; `title` is `"heterogen"` and
/// `developer` is `true` (only the client's claim: the server decides).
pub fn login_request_body(
    wallet: &Wallet,
    action: &str,
    network: &str,
    timestamp_ms: i64,
    api: &str,
    socket: &str,
) -> Value {
    let address = wallet.address();
    let mut data = String::new();
    data.push_str("{\"action\":");
    write_js_string(&mut data, action);
    data.push_str(",\"timestamp\":");
    data.push_str(&timestamp_ms.to_string());
    data.push_str(",\"network\":");
    write_js_string(&mut data, network);
    data.push_str(",\"walletAddress\":");
    write_js_string(&mut data, &address);
    data.push('}');
    let transaction = create_signed_transaction(wallet, &address, 0, 1, Some(&data), timestamp_ms);
    serde_json::json!({
        "webfix": "1.0",
        "method": "connectionNode",
        "params": ["gliesereum"],
        "body": {
            "network": network,
            "title": "heterogen",
            "nid": format!("gliese_{timestamp_ms}_{}", random_base36(9)),
            "payload": {
                "webfix": "1.0",
                "method": "connectionNode",
                "params": ["gliesereum"],
                "body": {
                    "transaction": transaction,
                    "walletAddress": address,
                    "publicKey": wallet.public_uncompressed_hex(),
                },
            },
            "transport": "websocket",
            "connector": { "protocols": ["webfix"], "socket": socket },
            "api": api,
            "developer": true,
        },
    })
}

/// `len` random base36 characters; an id, not a secret, so a failing OS generator degrades to
/// zeros instead of failing the request.
fn random_base36(len: usize) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut bytes = vec![0u8; len];
    let _ = getrandom::fill(&mut bytes);
    bytes
        .iter()
        .map(|b| char::from(ALPHABET.get(usize::from(*b) % 36).copied().unwrap_or(b'0')))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PRIV: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const PUB_C: &str = "034f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa";
    const PUB_U: &str = "044f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa\
                         385b6b1b8ead809ca67454d9683fcf2ba03456d6fe2c4abe2b07f0fbdbb2f1c1";
    const ADDRESS: &str = "gq8vij8cqueDyuGypUF7hbo9hyLqdy9jKz";
    const NUMBER: &str = "0116308144976937";
    const DATA: &str = "{\"action\":\"LOGIN_REQUEST\",\"timestamp\":1700000000000,\
                        \"network\":\"testnet\",\"walletAddress\":\"gq8vij8cqueDyuGypUF7hbo9hyLqdy9jKz\"}";
    const HASH: &str = "8c91eab634baacb28fa2df28ef9e1d63d89e7689536b080e79bdf5c21f2d9f9d";
    const SIGNATURE: &str = "30440220234c80d96483d56cca1d23083fcdfd5ba7cfb329b883dcf3ecfac143b6158636\
                             02204dd1d0f6995391faffe544a60eaf14f8403f3895d79fe71471f06e1055050eec";

    fn vector_wallet() -> Wallet {
        Wallet::from_private_hex(PRIV).unwrap()
    }

    fn vector_tx() -> Value {
        create_signed_transaction(&vector_wallet(), ADDRESS, 0, 1, Some(DATA), 1_700_000_000_001)
    }

    #[test]
    fn vector_keys_address_number() {
        let w = vector_wallet();
        assert_eq!(w.private_hex(), PRIV);
        assert_eq!(w.public_compressed_hex(), PUB_C);
        assert_eq!(w.public_uncompressed_hex(), PUB_U);
        assert_eq!(w.address(), ADDRESS);
        assert_eq!(w.number(), NUMBER);
        assert_eq!(card_number(ADDRESS), NUMBER);
        assert!(validate_address(ADDRESS));
        assert_eq!(
            address_from_public_key(&hex::decode(PUB_C).unwrap()).unwrap(),
            ADDRESS
        );
        assert_eq!(
            address_from_public_key(&hex::decode(PUB_U).unwrap()).unwrap(),
            ADDRESS
        );
    }

    #[test]
    fn signatures_verify_with_either_key_encoding_and_only_for_their_message() {
        let canonical = transaction_canonical(vector_tx().as_object().unwrap());
        assert!(verify_signature(&canonical, SIGNATURE, PUB_U));
        assert!(verify_signature(&canonical, &SIGNATURE.to_uppercase(), PUB_C));
        assert!(!verify_signature(&format!("{canonical} "), SIGNATURE, PUB_U));
        let other = Wallet::generate();
        assert!(!verify_signature(
            &canonical,
            SIGNATURE,
            &other.public_compressed_hex()
        ));
        assert!(verify_signature(
            "hello",
            &other.sign("hello"),
            &other.public_uncompressed_hex()
        ));
        for (signature, key) in [("zz", PUB_C), ("3000", PUB_C), (SIGNATURE, "02"), (SIGNATURE, "")] {
            assert!(!verify_signature(&canonical, signature, key), "{signature} {key}");
        }
    }

    #[test]
    fn vector_card_number_check_digit_is_the_clients() {
        // Base 011630814497693: the client's digit is 7; textbook Luhn (rightmost doubled) is 1.
        assert_eq!(client_check_digit("011630814497693"), 7);
        assert_eq!(&NUMBER[..15], "011630814497693");
        assert_eq!(NUMBER.len(), 16);
        // The textbook example 7992739871 has Luhn digit 3; the client's walk gives 4.
        assert_eq!(client_check_digit("7992739871"), 4);
    }

    #[test]
    fn vector_transaction() {
        let tx = vector_tx();
        let mut unsigned = tx.as_object().unwrap().clone();
        unsigned.remove("hash");
        unsigned.remove("signature");
        let expected = format!(
            "{{\"amount\":0,\"data\":{},\"fee\":1,\"from\":{{\"address\":\"{ADDRESS}\",\"number\":\"{NUMBER}\",\
             \"publicKey\":\"{PUB_U}\"}},\"timestamp\":1700000000001,\"to\":\"{ADDRESS}\",\"validators\":[],\
             \"verified\":false}}",
            serde_json::to_string(DATA).unwrap()
        );
        assert_eq!(canonical_json(&Value::Object(unsigned)), expected);
        assert_eq!(hex::encode(Sha256::digest(expected.as_bytes())), HASH);
        assert_eq!(tx["hash"], HASH);
        assert_eq!(tx["signature"], SIGNATURE);
        assert_eq!(vector_wallet().sign(&expected), SIGNATURE);
        assert_eq!(verify_transaction(&tx).unwrap(), ADDRESS);

        // The wire form (key order of the client's object literal) parses and verifies too.
        let wire = serde_json::to_string(&tx).unwrap();
        assert!(
            wire.starts_with(&format!("{{\"from\":{{\"publicKey\":\"{PUB_U}\",\"address\":")),
            "{wire}"
        );
        let parsed: Value = serde_json::from_str(&wire).unwrap();
        let details = verify_transaction_details(&parsed).unwrap();
        assert_eq!(details.public_key_compressed, PUB_C);
        assert_eq!(details.to, ADDRESS);
        assert_eq!(
            (details.amount, details.fee, details.timestamp_ms),
            (0, 1, 1_700_000_000_001)
        );
        assert_eq!(details.data.as_deref(), Some(DATA));
    }

    #[test]
    fn login_request_body_shape_and_verifies() {
        let w = vector_wallet();
        let body = login_request_body(
            &w,
            "LOGIN_REQUEST",
            "testnet",
            1_700_000_000_000,
            "http://a",
            "ws://a",
        );
        assert_eq!(body["method"], "connectionNode");
        assert_eq!(body["params"], json!(["gliesereum"]));
        assert_eq!(
            body["body"]["connector"],
            json!({"protocols": ["webfix"], "socket": "ws://a"})
        );
        assert_eq!(body["body"]["api"], "http://a");
        assert!(
            body["body"]["nid"]
                .as_str()
                .unwrap()
                .starts_with("gliese_1700000000000_")
        );
        let inner = &body["body"]["payload"]["body"];
        assert_eq!(inner["walletAddress"], ADDRESS);
        assert_eq!(inner["publicKey"], PUB_U);
        let tx = &inner["transaction"];
        assert_eq!(tx["data"], DATA);
        assert_eq!(tx["to"], ADDRESS);
        assert_eq!(verify_transaction(tx).unwrap(), ADDRESS);
    }

    #[test]
    fn generated_wallets_round_trip() {
        for _ in 0..8 {
            let w = Wallet::generate();
            assert_eq!(w.private_hex().len(), 64);
            let again = Wallet::from_private_hex(&w.private_hex().to_uppercase()).unwrap();
            assert_eq!(again.address(), w.address());
            let pc = w.public_compressed_hex();
            assert_eq!(pc.len(), 66);
            assert!(pc.starts_with("02") || pc.starts_with("03"));
            assert_eq!(w.public_uncompressed_hex().len(), 130);
            assert!(w.public_uncompressed_hex().starts_with("04"));
            let address = w.address();
            assert_eq!(address.len(), 34);
            assert!(address.starts_with('g'));
            assert!(validate_address(&address));
            let number = w.number();
            assert_eq!(number.len(), 16);
            assert!(number.starts_with('0') && number.bytes().all(|b| b.is_ascii_digit()));

            let tx = create_signed_transaction(&w, ADDRESS, 5, 2, None, 1_700_000_000_000);
            assert!(tx.get("data").is_none());
            assert_eq!(verify_transaction(&tx).unwrap(), address);
            let tx = create_signed_transaction(&w, &address, 0, 1, Some("x\u{2028}\"é😀"), 1);
            assert_eq!(verify_transaction(&tx).unwrap(), address);
            let reparsed: Value = serde_json::from_str(&tx.to_string()).unwrap();
            assert_eq!(verify_transaction(&reparsed).unwrap(), address);
        }
    }

    #[test]
    fn sign_is_deterministic_low_s_der() {
        let w = vector_wallet();
        let a = w.sign("hello");
        assert_eq!(a, w.sign("hello"));
        let sig = Signature::from_der(&hex::decode(&a).unwrap()).unwrap();
        assert_eq!(sig.normalize_s(), sig);
        let digest = Sha256::digest(b"hello");
        w.key.verifying_key().verify_prehash(&digest, &sig).unwrap();
    }

    #[test]
    fn compressed_and_uncompressed_public_keys_verify() {
        let w = Wallet::generate();
        let compressed = seal_transaction(&w, &w.public_compressed_hex(), "gx", 1, 1, Some("d"), 42);
        assert_eq!(verify_transaction(&compressed).unwrap(), w.address());
        let uncompressed = seal_transaction(&w, &w.public_uncompressed_hex(), "gx", 1, 1, Some("d"), 42);
        assert_eq!(verify_transaction(&uncompressed).unwrap(), w.address());
        // Uppercase hex is accepted too (hex decodes either case).
        let upper = seal_transaction(
            &w,
            &w.public_compressed_hex().to_uppercase(),
            "gx",
            1,
            1,
            None,
            42,
        );
        assert_eq!(verify_transaction(&upper).unwrap(), w.address());
    }

    #[test]
    fn high_s_signature_is_accepted() {
        let mut tx = vector_tx();
        let low = Signature::from_der(&hex::decode(SIGNATURE).unwrap()).unwrap();
        let (r, s) = low.split_scalars();
        let high = Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        assert_ne!(high, low);
        assert_eq!(high.normalize_s(), low);
        tx["signature"] = Value::from(hex::encode(high.to_der().as_bytes()));
        assert_eq!(verify_transaction(&tx).unwrap(), ADDRESS);
    }

    #[test]
    fn data_absent_is_signed_as_null() {
        let w = vector_wallet();
        let tx = create_signed_transaction(&w, ADDRESS, 0, 1, None, 7);
        let mut with_null = tx.clone();
        with_null["data"] = Value::Null;
        let mut unsigned = with_null.as_object().unwrap().clone();
        unsigned.remove("hash");
        unsigned.remove("signature");
        let canonical = canonical_json(&Value::Object(unsigned));
        assert!(canonical.starts_with("{\"amount\":0,\"data\":null,\"fee\":1,"));
        assert_eq!(tx["hash"], hex::encode(Sha256::digest(canonical.as_bytes())));
        assert_eq!(verify_transaction(&tx).unwrap(), ADDRESS);
        assert_eq!(verify_transaction(&with_null).unwrap(), ADDRESS);
    }

    fn expect_err(tx: &Value, expected: TxError) {
        let err = verify_transaction(tx).unwrap_err();
        assert_eq!(err, expected, "{tx}");
    }

    fn edited(edit: impl FnOnce(&mut Map<String, Value>)) -> Value {
        let mut tx = vector_tx();
        edit(tx.as_object_mut().unwrap());
        tx
    }

    #[test]
    fn every_tx_error_is_reached() {
        let cases: Vec<(Value, TxError)> = vec![
            (json!([1]), TxError::NotAnObject),
            (edited(|t| drop(t.remove("from"))), TxError::MissingField("from")),
            (
                edited(|t| drop(t.insert("from".into(), json!("x")))),
                wrong_type("from", "an object"),
            ),
            (
                edited(|t| drop(t["from"].as_object_mut().unwrap().remove("publicKey"))),
                TxError::MissingField("from.publicKey"),
            ),
            (
                edited(|t| t["from"]["address"] = json!(5)),
                wrong_type("from.address", "a string"),
            ),
            (edited(|t| drop(t.remove("to"))), TxError::MissingField("to")),
            (
                edited(|t| t["amount"] = json!("0")),
                wrong_type("amount", "a number"),
            ),
            (edited(|t| t["amount"] = json!(-1)), TxError::InvalidAmount),
            (edited(|t| t["amount"] = json!(1.5)), TxError::InvalidAmount),
            (
                edited(|t| t["amount"] = json!(MAX_SAFE_INTEGER + 1)),
                TxError::InvalidAmount,
            ),
            (edited(|t| t["fee"] = json!(0)), TxError::InvalidFee),
            (edited(|t| drop(t.remove("fee"))), TxError::MissingField("fee")),
            (
                edited(|t| t["timestamp"] = json!(-5)),
                wrong_type("timestamp", "a non-negative integer"),
            ),
            (edited(|t| t["data"] = json!(5)), wrong_type("data", "a string")),
            (
                edited(|t| t["data"] = Value::from("x".repeat(MAX_DATA_BYTES + 1))),
                TxError::DataTooLarge,
            ),
            (edited(|t| drop(t.remove("hash"))), TxError::MissingField("hash")),
            (
                edited(|t| drop(t.remove("signature"))),
                TxError::MissingField("signature"),
            ),
            (edited(|t| t["hash"] = json!("zz")), TxError::BadHex("hash")),
            (
                edited(|t| t["from"]["publicKey"] = json!("04xy")),
                TxError::BadHex("from.publicKey"),
            ),
            (
                edited(|t| t["signature"] = json!("3")),
                TxError::BadHex("signature"),
            ),
            (
                edited(|t| t["from"]["publicKey"] = json!("04")),
                TxError::InvalidPublicKey,
            ),
            (
                edited(|t| t["from"]["publicKey"] = Value::from(format!("02{}", "ff".repeat(32)))),
                TxError::InvalidPublicKey,
            ),
            (
                edited(|t| t["signature"] = json!("3006020101020101ff")),
                TxError::InvalidSignatureEncoding,
            ),
            (
                edited(|t| t["signature"] = json!("")),
                TxError::InvalidSignatureEncoding,
            ),
            (edited(|t| t["amount"] = json!(1)), TxError::HashMismatch),
            (edited(|t| t["hash"] = json!("8c91")), TxError::HashMismatch),
            (
                edited(|t| t["signature"] = Value::from(vector_wallet().sign("other"))),
                TxError::BadSignature,
            ),
        ];
        for (tx, expected) in cases {
            expect_err(&tx, expected);
        }

        // A transaction signed by someone else but claiming the vector's address.
        let other = Wallet::generate();
        let mut forged = create_signed_transaction(&other, ADDRESS, 0, 1, None, 1);
        forged["from"]["address"] = json!(ADDRESS);
        let mut unsigned = forged.as_object().unwrap().clone();
        unsigned.remove("hash");
        unsigned.remove("signature");
        unsigned.insert("data".into(), Value::Null);
        let canonical = canonical_json(&Value::Object(unsigned));
        forged["hash"] = Value::from(hex::encode(Sha256::digest(canonical.as_bytes())));
        forged["signature"] = Value::from(other.sign(&canonical));
        expect_err(&forged, TxError::AddressMismatch);
    }

    #[test]
    fn tx_error_statuses_and_messages() {
        assert!(TxError::NotAnObject.is_malformed());
        assert!(TxError::DataTooLarge.is_malformed());
        assert!(TxError::InvalidPublicKey.is_malformed());
        assert!(!TxError::HashMismatch.is_malformed());
        assert!(!TxError::BadSignature.is_malformed());
        assert!(!TxError::AddressMismatch.is_malformed());
        assert_eq!(
            TxError::MissingField("from.publicKey").to_string(),
            "transaction is missing field `from.publicKey`"
        );
        assert_eq!(
            wrong_type("amount", "a number").to_string(),
            "transaction field `amount` has the wrong type: expected a number"
        );
    }

    #[test]
    fn wallet_errors() {
        assert_eq!(
            Wallet::from_private_hex("abc").unwrap_err(),
            WalletError::WrongLength {
                expected: 64,
                actual: 3
            }
        );
        assert_eq!(
            Wallet::from_private_hex(&"g".repeat(64)).unwrap_err(),
            WalletError::BadHex
        );
        assert_eq!(
            Wallet::from_private_hex(&"é".repeat(64)).unwrap_err(),
            WalletError::BadHex
        );
        assert_eq!(
            Wallet::from_private_hex(&"0".repeat(64)).unwrap_err(),
            WalletError::InvalidKey
        );
        assert_eq!(
            Wallet::from_private_hex(&"f".repeat(64)).unwrap_err(),
            WalletError::InvalidKey
        );
        assert_eq!(
            address_from_public_key(&[]).unwrap_err(),
            WalletError::InvalidPublicKey
        );
        assert_eq!(
            address_from_public_key(&[4; 65]).unwrap_err(),
            WalletError::InvalidPublicKey
        );
    }

    #[test]
    fn debug_hides_private_key() {
        let w = vector_wallet();
        let shown = format!("{w:?} {w:#?}");
        assert!(!shown.contains(PRIV), "{shown}");
        assert!(shown.contains(ADDRESS));
    }

    #[test]
    fn address_validation() {
        assert!(validate_address(ADDRESS));
        // Bad checksum: change the last character.
        assert!(!validate_address("gq8vij8cqueDyuGypUF7hbo9hyLqdy9jKy"));
        // Bad version with a correct single-SHA-256 checksum.
        let mut bytes = bs58::decode(ADDRESS).into_vec().unwrap();
        bytes[0] = 0x00;
        let checksum = Sha256::digest(&bytes[..21]);
        bytes[21..].copy_from_slice(&checksum[..4]);
        assert!(!validate_address(&bs58::encode(&bytes).into_string()));
        // Bitcoin's double-SHA-256 checksum is not ours.
        let mut bytes = bs58::decode(ADDRESS).into_vec().unwrap();
        let double = Sha256::digest(Sha256::digest(&bytes[..21]));
        bytes[21..].copy_from_slice(&double[..4]);
        assert!(!validate_address(&bs58::encode(&bytes).into_string()));
        for garbage in [
            "",
            "g",
            "0OIl",
            "gq8vij8cqueDyuGypUF7hbo9hyLqdy9jK",
            "é",
            &"g".repeat(10_000),
        ] {
            assert!(!validate_address(garbage), "{garbage}");
        }
    }

    #[test]
    fn decimal_conversion() {
        assert_eq!(big_endian_to_decimal(&[0, 0]), "0");
        assert_eq!(big_endian_to_decimal(&[1, 0]), "256");
        assert_eq!(big_endian_to_decimal(&[0xff; 8]), u64::MAX.to_string());
        assert_eq!(big_endian_to_decimal(&[0xff; 32]).len(), 78);
    }

    #[test]
    fn canonical_nested_and_sorted() {
        let v = json!({"b": [1, {"d": true, "c": null}, []], "a": "x", "e": {}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":"x","b":[1,{"c":null,"d":true},[]],"e":{}}"#
        );
        assert_eq!(canonical_json(&json!("s")), r#""s""#);
        assert_eq!(canonical_json(&json!(null)), "null");
    }

    #[test]
    fn canonical_keys_use_utf16_order() {
        // U+FF61 sorts after U+1F600 in UTF-16 (0xD83D < 0xFF61) but before it in UTF-8.
        let v = json!({"\u{FF61}": 1, "😀": 2, "é": 3, "b": 4, "a": 5, "B": 6, "": 7, "aa": 8});
        assert_eq!(
            canonical_json(&v),
            "{\"\":7,\"B\":6,\"a\":5,\"aa\":8,\"b\":4,\"é\":3,\"😀\":2,\"\u{FF61}\":1}"
        );
    }

    #[test]
    fn canonical_string_escapes_like_json_stringify() {
        let s = "q\"b\\s/\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}\u{2028}\u{2029}é😀";
        assert_eq!(
            canonical_json(&Value::from(s)),
            "\"q\\\"b\\\\s/\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f\u{7f}\u{2028}\u{2029}é😀\""
        );
        // Keys are escaped the same way.
        assert_eq!(canonical_json(&json!({"a\nb": 1})), "{\"a\\nb\":1}");
    }

    #[test]
    fn canonical_numbers_print_like_javascript() {
        let cases: [(&str, &str); 16] = [
            ("0", "0"),
            ("-0", "0"),
            ("-0.0", "0"),
            ("1.0", "1"),
            ("1e2", "100"),
            ("0.1", "0.1"),
            ("-1.5", "-1.5"),
            ("1.5e-7", "1.5e-7"),
            ("0.000001", "0.000001"),
            ("1e21", "1e+21"),
            ("123456789012345680000", "123456789012345680000"),
            ("18446744073709551615", "18446744073709552000"),
            ("-9223372036854775808", "-9223372036854776000"),
            ("9007199254740993", "9007199254740992"),
            ("5e-324", "5e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ];
        for (input, js) in cases {
            let v: Value = serde_json::from_str(input).unwrap();
            assert_eq!(canonical_json(&v), js, "{input}");
        }
        assert_eq!(
            canonical_json(&json!([1_700_000_000_001_i64, -42])),
            "[1700000000001,-42]"
        );
    }

    /// xorshift64*: a small deterministic generator for the fuzz loops.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn fuzz_truncated_and_garbled_transactions_never_panic() {
        let wire = vector_tx().to_string();
        // Every truncation.
        for end in 0..wire.len() {
            if let Ok(v) = serde_json::from_str::<Value>(&wire[..end]) {
                let _ = verify_transaction(&v);
            }
        }
        // Random byte garbling of the wire text.
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut verified = 0;
        for _ in 0..3000 {
            let mut bytes = wire.clone().into_bytes();
            for _ in 0..=rng.below(4) {
                let i = rng.below(bytes.len());
                bytes[i] = b" \"{}[]:,0129afgxz-.eE\\"[rng.below(22)];
            }
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes)
                && verify_transaction(&v).is_ok()
            {
                verified += 1;
            }
        }
        // Only edits that leave the signed content intact (e.g. whitespace) may still verify.
        assert!(verified < 3000);
        // Structural mutations: every field replaced by every JSON type.
        let replacements = [
            json!(null),
            json!(true),
            json!(-1),
            json!(1e300),
            json!(""),
            json!("zz"),
            json!([]),
            json!({}),
            json!(u64::MAX),
        ];
        let tx = vector_tx();
        for key in [
            "from",
            "to",
            "amount",
            "fee",
            "timestamp",
            "data",
            "hash",
            "signature",
            "verified",
        ] {
            for r in &replacements {
                let mut t = tx.clone();
                t[key] = r.clone();
                assert!(verify_transaction(&t).is_err(), "{key} = {r}");
            }
        }
        for key in ["publicKey", "address", "number"] {
            for r in &replacements {
                let mut t = tx.clone();
                t["from"][key] = r.clone();
                assert!(verify_transaction(&t).is_err(), "from.{key} = {r}");
            }
        }
        for top in [json!(null), json!(1), json!("tx"), json!([]), json!({})] {
            assert!(verify_transaction(&top).is_err());
        }
        // Hex fields with one character changed or truncated.
        for field in ["hash", "signature"] {
            let original = tx[field].as_str().unwrap().to_string();
            for i in 0..original.len() {
                let mut t = tx.clone();
                t[field] = Value::from(format!("{}{}", &original[..i], &original[i + 1..]));
                assert!(verify_transaction(&t).is_err());
                let mut t = tx.clone();
                let flipped = if &original[i..=i] == "0" { "1" } else { "0" };
                t[field] = Value::from(format!("{}{flipped}{}", &original[..i], &original[i + 1..]));
                assert!(verify_transaction(&t).is_err());
            }
        }
        let original = PUB_U.to_string();
        for i in 0..original.len() {
            let mut t = tx.clone();
            t["from"]["publicKey"] = Value::from(&original[..i]);
            assert!(verify_transaction(&t).is_err());
        }
    }
}
