//! Keys: arrays of strings, numbers and booleans (S-20), encoded to bytes so that byte order
//! is key order and a key's encoding is a byte prefix of the encoding of every longer key
//! that starts with it (prefix scans are range scans).

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

const TAG_STR: u8 = 0x02;
const TAG_NUM: u8 = 0x21;
const TAG_FALSE: u8 = 0x26;
const TAG_TRUE: u8 = 0x27;

/// One part of a key. Order between kinds: strings < numbers < booleans.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyPart {
    /// A string part.
    Str(String),
    /// A number part (ordered numerically).
    Num(f64),
    /// A boolean part.
    Bool(bool),
}

/// A key: a sequence of parts, e.g. `["ami","worker",sid]`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Key(pub Vec<KeyPart>);

impl Key {
    /// A key made of string parts only.
    pub fn of(parts: &[&str]) -> Key {
        Key(parts.iter().map(|p| KeyPart::Str((*p).to_string())).collect())
    }

    /// This key with one more string part.
    pub fn child(&self, part: &str) -> Key {
        let mut parts = self.0.clone();
        parts.push(KeyPart::Str(part.to_string()));
        Key(parts)
    }

    /// Whether `self` starts with every part of `prefix` and is longer.
    pub fn has_prefix(&self, prefix: &Key) -> bool {
        self.0.len() > prefix.0.len() && self.0.starts_with(&prefix.0)
    }

    /// The last part as a string, if it is one.
    pub fn last_str(&self) -> Option<&str> {
        match self.0.last() {
            Some(KeyPart::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The encoded range `[start, end)` of the keys strictly under `self`.
    ///
    /// Every part encoding starts with a tag byte in `0x02..=0x27`, so `[p ++ 0x01, p ++ 0xff)`
    /// holds exactly the longer keys: it excludes `p` itself and `p ++ 0xff …`, which is a string
    /// part of `p` continuing with an escaped NUL (`["a\0"]` is not under `["a"]`).
    pub fn child_bounds(&self) -> (Vec<u8>, Vec<u8>) {
        let mut start = self.encode();
        let mut end = start.clone();
        start.push(0x01);
        end.push(0xff);
        (start, end)
    }

    /// Order-preserving byte encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        for part in &self.0 {
            match part {
                KeyPart::Str(s) => {
                    out.push(TAG_STR);
                    for &b in s.as_bytes() {
                        out.push(b);
                        if b == 0 {
                            out.push(0xff);
                        }
                    }
                    out.push(0);
                }
                KeyPart::Num(n) => {
                    out.push(TAG_NUM);
                    let bits = n.to_bits();
                    let ordered = if bits >> 63 == 1 { !bits } else { bits | (1 << 63) };
                    out.extend_from_slice(&ordered.to_be_bytes());
                }
                KeyPart::Bool(false) => out.push(TAG_FALSE),
                KeyPart::Bool(true) => out.push(TAG_TRUE),
            }
        }
        out
    }

    /// Inverse of [`Key::encode`]; `None` for bytes no key encodes to.
    pub fn decode(bytes: &[u8]) -> Option<Key> {
        let mut parts = Vec::with_capacity(4);
        for part in EncodedParts(bytes) {
            parts.push(match part? {
                PartRef::Str(text) => KeyPart::Str(text.into_owned()),
                PartRef::Num(n) => KeyPart::Num(n),
                PartRef::Bool(b) => KeyPart::Bool(b),
            });
        }
        Some(Key(parts))
    }

    /// Appends the JSON array form to `out`, as [`Key::to_json`] would serialise it.
    pub fn write_json(&self, out: &mut String) {
        out.push('[');
        // Parts of a `Key` always write.
        let _ = write_parts(self.0.iter().map(|part| Some(PartRef::of(part))), false, out);
    }

    /// Appends the JSON array form of the key that `bytes` encode, read straight from the
    /// encoding (no [`Key`] is built); `None`, with `out` partly written, for bytes no key
    /// encodes to.
    pub fn write_encoded_json(bytes: &[u8], out: &mut String) -> Option<()> {
        out.push('[');
        write_parts(EncodedParts(bytes), false, out)
    }

    /// The JSON array form (`["ami","worker","…"]`).
    pub fn to_json(&self) -> Value {
        Value::Array(self.0.iter().map(part_json).collect())
    }

    /// Parses the JSON array form; errors name what is wrong.
    pub fn from_json(value: &Value) -> Result<Key, String> {
        let Value::Array(items) = value else {
            return Err("a key must be an array".into());
        };
        let mut parts = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            parts.push(match item {
                Value::String(s) => KeyPart::Str(s.clone()),
                Value::Bool(b) => KeyPart::Bool(*b),
                Value::Number(n) => match n.as_f64() {
                    Some(f) if f.is_finite() => KeyPart::Num(f),
                    _ => return Err(format!("key part {i} is not a finite number")),
                },
                _ => return Err(format!("key part {i} must be a string, number or boolean")),
            });
        }
        Ok(Key(parts))
    }
}

/// One part's JSON form.
fn part_json(part: &KeyPart) -> Value {
    match part {
        KeyPart::Str(s) => Value::String(s.clone()),
        // -0 stays a float so that it names the same key after a round trip.
        KeyPart::Num(n)
            if n.fract() == 0.0
                && n.abs() < 9_007_199_254_740_992.0
                && !(*n == 0.0 && n.is_sign_negative()) =>
        {
            Value::from(*n as i64)
        }
        KeyPart::Num(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        KeyPart::Bool(b) => Value::Bool(*b),
    }
}

/// Writes the JSON form of encoded keys under one prefix, the prefix's parts written once
/// ahead of time: in a list of a prefix they are the same in every key.
pub struct PrefixedKeyJson {
    /// The prefix's encoding.
    encoded: Vec<u8>,
    /// Its JSON array form without the closing bracket (`["ami","worker"`).
    open: String,
    /// Whether the prefix has parts (so a part after it needs a comma).
    has_parts: bool,
}

impl PrefixedKeyJson {
    /// A writer for the keys under `prefix`.
    pub fn new(prefix: &Key) -> Self {
        let mut open = String::new();
        prefix.write_json(&mut open);
        open.pop();
        PrefixedKeyJson {
            encoded: prefix.encode(),
            open,
            has_parts: !prefix.0.is_empty(),
        }
    }

    /// Appends the JSON form of the key `bytes` encode, as [`Key::write_encoded_json`] does.
    pub fn write(&self, bytes: &[u8], out: &mut String) -> Option<()> {
        let rest = match bytes.strip_prefix(self.encoded.as_slice()) {
            // 0xff right after the prefix continues its last string part (an escaped NUL).
            Some(rest) if rest.first() != Some(&0xff) => rest,
            _ => return Key::write_encoded_json(bytes, out),
        };
        out.push_str(&self.open);
        write_parts(EncodedParts(rest), self.has_parts, out)
    }
}

/// Appends `parts` as JSON array items and the closing bracket (the caller wrote the opening
/// one and, when `after_items`, items before them); `None` at the first part that is not one.
fn write_parts<'a>(
    parts: impl Iterator<Item = Option<PartRef<'a>>>,
    after_items: bool,
    out: &mut String,
) -> Option<()> {
    for (i, part) in parts.enumerate() {
        if i > 0 || after_items {
            out.push(',');
        }
        part?.write_json(out);
    }
    out.push(']');
    Some(())
}

/// A key part borrowed from a [`Key`] or read from an encoding.
enum PartRef<'a> {
    Str(Cow<'a, str>),
    Num(f64),
    Bool(bool),
}

impl<'a> PartRef<'a> {
    fn of(part: &'a KeyPart) -> Self {
        match part {
            KeyPart::Str(s) => PartRef::Str(Cow::Borrowed(s)),
            KeyPart::Num(n) => PartRef::Num(*n),
            KeyPart::Bool(b) => PartRef::Bool(*b),
        }
    }

    fn write_json(&self, out: &mut String) {
        match self {
            // JSON escapes only quotes, backslashes and control characters.
            // A fold without an early exit: the compiler vectorises it.
            PartRef::Str(s)
                if !s
                    .bytes()
                    .fold(false, |found, b| found | matches!(b, b'"' | b'\\' | 0..=0x1f)) =>
            {
                out.push('"');
                out.push_str(s);
                out.push('"');
            }
            PartRef::Str(s) => out.push_str(&Value::String(s.to_string()).to_string()),
            PartRef::Num(n) => out.push_str(&part_json(&KeyPart::Num(*n)).to_string()),
            PartRef::Bool(true) => out.push_str("true"),
            PartRef::Bool(false) => out.push_str("false"),
        }
    }
}

/// The parts of an encoded key, in order; an item is `None` where the bytes stop being a key
/// encoding (and the iteration ends there).
struct EncodedParts<'a>(&'a [u8]);

impl<'a> Iterator for EncodedParts<'a> {
    type Item = Option<PartRef<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&tag, rest) = self.0.split_first()?;
        let part = decode_part(tag, rest);
        self.0 = match &part {
            Some((_, rest)) => rest,
            None => &[],
        };
        Some(part.map(|(part, _)| part))
    }
}

/// The part tagged `tag` at the start of `bytes`, and the bytes after it.
fn decode_part(tag: u8, bytes: &[u8]) -> Option<(PartRef<'_>, &[u8])> {
    match tag {
        TAG_STR => {
            let end = bytes.iter().position(|&b| b == 0)?;
            if bytes.get(end + 1) != Some(&0xff) {
                let text = std::str::from_utf8(bytes.get(..end)?).ok()?;
                return Some((PartRef::Str(Cow::Borrowed(text)), bytes.get(end + 1..)?));
            }
            // An escaped NUL inside the string: the slow path.
            let mut text = Vec::new();
            let mut rest = bytes;
            loop {
                let (&b, after) = rest.split_first()?;
                rest = after;
                if b != 0 {
                    text.push(b);
                } else if rest.first() == Some(&0xff) {
                    rest = rest.get(1..).unwrap_or_default();
                    text.push(0);
                } else {
                    break;
                }
            }
            Some((PartRef::Str(Cow::Owned(String::from_utf8(text).ok()?)), rest))
        }
        TAG_NUM => {
            let raw: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
            let ordered = u64::from_be_bytes(raw);
            let bits = if ordered >> 63 == 1 {
                ordered & !(1 << 63)
            } else {
                !ordered
            };
            Some((PartRef::Num(f64::from_bits(bits)), bytes.get(8..)?))
        }
        TAG_FALSE => Some((PartRef::Bool(false), bytes)),
        TAG_TRUE => Some((PartRef::Bool(true), bytes)),
        _ => None,
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

impl serde::Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(parts: Vec<KeyPart>) -> Key {
        Key(parts)
    }

    #[test]
    fn encoding_round_trips() {
        let key = k(vec![
            KeyPart::Str("a\0b".into()),
            KeyPart::Num(-2.5),
            KeyPart::Num(7.0),
            KeyPart::Bool(true),
            KeyPart::Str(String::new()),
        ]);
        assert_eq!(Key::decode(&key.encode()), Some(key));
    }

    #[test]
    fn byte_order_is_key_order() {
        let ordered = [
            k(vec![KeyPart::Str("a".into())]),
            k(vec![KeyPart::Str("a".into()), KeyPart::Str("b".into())]),
            k(vec![KeyPart::Str("a\0".into())]),
            k(vec![KeyPart::Str("ab".into())]),
            k(vec![KeyPart::Num(-10.0)]),
            k(vec![KeyPart::Num(-1.0)]),
            k(vec![KeyPart::Num(0.0)]),
            k(vec![KeyPart::Num(3.0)]),
            k(vec![KeyPart::Bool(false)]),
            k(vec![KeyPart::Bool(true)]),
        ];
        for pair in ordered.windows(2) {
            assert!(pair[0].encode() < pair[1].encode(), "{} < {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn prefix_encoding_is_byte_prefix() {
        let prefix = Key::of(&["ami", "worker"]);
        let child = prefix.child("x");
        assert!(child.encode().starts_with(&prefix.encode()));
        assert!(child.has_prefix(&prefix));
        assert!(
            !Key::of(&["ami", "workers"])
                .encode()
                .starts_with(&prefix.encode())
        );
    }

    #[test]
    fn written_json_is_the_serialised_json_form() {
        let keys = [
            Key::of(&["ami", "worker", "s-01"]),
            k(vec![
                KeyPart::Str("quote \" back \\ nul \0 tab \t é 😀".into()),
                KeyPart::Num(1.0),
                KeyPart::Num(-0.0),
                KeyPart::Num(2.5e300),
                KeyPart::Bool(true),
            ]),
            k(vec![]),
        ];
        for key in keys {
            let mut out = String::new();
            key.write_json(&mut out);
            assert_eq!(out, key.to_json().to_string());
            let mut from_encoding = String::new();
            assert_eq!(
                Key::write_encoded_json(&key.encode(), &mut from_encoding),
                Some(())
            );
            assert_eq!(from_encoding, out);
            assert_eq!(Key::decode(&key.encode()), Some(key));
        }
    }

    #[test]
    fn keys_under_a_prefix_are_written_like_any_key() {
        let prefixes = [
            Key::of(&["ami", "worker"]),
            Key(vec![KeyPart::Str("a".into()), KeyPart::Num(2.0)]),
            k(vec![]),
        ];
        let keys = [
            Key::of(&["ami", "worker", "s-01"]),
            Key::of(&["ami", "worker", "quote \" and \0 nul"]),
            k(vec![
                KeyPart::Str("ami".into()),
                KeyPart::Str("worker".into()),
                KeyPart::Num(-0.5),
                KeyPart::Bool(true),
            ]),
            // Outside the prefix, or continuing its last part: written the long way.
            Key::of(&["ami", "worker\0x", "y"]),
            Key::of(&["amigo"]),
            Key(vec![
                KeyPart::Str("a".into()),
                KeyPart::Num(2.0),
                KeyPart::Bool(false),
            ]),
            k(vec![]),
        ];
        for prefix in &prefixes {
            let writer = PrefixedKeyJson::new(prefix);
            for key in &keys {
                let mut out = String::new();
                assert_eq!(writer.write(&key.encode(), &mut out), Some(()));
                assert_eq!(out, key.to_json().to_string(), "{key} under {prefix}");
            }
            assert_eq!(writer.write(&[TAG_STR, b'a'], &mut String::new()), None);
        }
    }

    #[test]
    fn bytes_no_key_encodes_to_are_refused() {
        let broken: [&[u8]; 4] = [
            &[TAG_STR, b'a'],
            &[TAG_NUM, 1, 2, 3],
            &[0x7f],
            &[TAG_STR, 0xc3, 0x28, 0],
        ];
        for bytes in broken {
            assert_eq!(Key::decode(bytes), None, "{bytes:?}");
            assert_eq!(
                Key::write_encoded_json(bytes, &mut String::new()),
                None,
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn json_form() {
        let key = Key::from_json(&serde_json::json!(["ami", 1, false])).unwrap();
        assert_eq!(key.to_json(), serde_json::json!(["ami", 1, false]));
        assert!(Key::from_json(&serde_json::json!("x")).is_err());
        assert!(Key::from_json(&serde_json::json!([null])).is_err());
    }
}
