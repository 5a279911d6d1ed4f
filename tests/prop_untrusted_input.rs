//! Issue 9: every parser of untrusted input, fed arbitrary input, answers with a value or an
//! error and never panics: the WebFIX envelope, the login verifier (canonical JSON, DER
//! signatures, addresses, public keys), and store keys (JSON form and byte encoding, which must
//! round-trip and keep order).

use std::time::Duration;

use heterogen::auth::gliesereum::{
    Wallet, address_from_public_key, canonical_json, login_request_body, validate_address, verify_transaction,
};
use heterogen::auth::login::{LoginAction, verify_login};
use heterogen::store::{Key, KeyPart};
use heterogen::webfix::parse_envelope;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Any JSON value, a few levels deep.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn arb_part() -> impl Strategy<Value = KeyPart> {
    prop_oneof![
        ".{0,16}".prop_map(KeyPart::Str),
        // Strings with the bytes the encoding escapes.
        prop::collection::vec(
            prop_oneof![Just('\0'), Just('\u{1}'), Just('\u{ff}'), any::<char>()],
            0..6
        )
        .prop_map(|chars| KeyPart::Str(chars.into_iter().collect())),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(KeyPart::Num),
        any::<i32>().prop_map(|i| KeyPart::Num(f64::from(i))),
        any::<bool>().prop_map(KeyPart::Bool),
    ]
}

fn arb_key() -> impl Strategy<Value = Key> {
    prop::collection::vec(arb_part(), 0..6).prop_map(Key)
}

/// The order keys are kept in: part by part, strings < numbers < booleans, shorter first.
fn key_order(a: &Key, b: &Key) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn rank(p: &KeyPart) -> u8 {
        match p {
            KeyPart::Str(_) => 0,
            KeyPart::Num(_) => 1,
            KeyPart::Bool(_) => 2,
        }
    }
    for (x, y) in a.0.iter().zip(&b.0) {
        let order = match (x, y) {
            (KeyPart::Str(x), KeyPart::Str(y)) => x.as_bytes().cmp(y.as_bytes()),
            (KeyPart::Num(x), KeyPart::Num(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
            (KeyPart::Bool(x), KeyPart::Bool(y)) => x.cmp(y),
            _ => rank(x).cmp(&rank(y)),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a.0.len().cmp(&b.0.len())
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn valid_login_body(wallet: &Wallet) -> Value {
    login_request_body(wallet, "LOGIN_REQUEST", "testnet", now_ms(), "http://x", "ws://x")["body"].clone()
}

fn verify(body: &Value) -> bool {
    match body {
        Value::Object(map) => verify_login(
            map,
            LoginAction::Login,
            "testnet",
            Duration::from_secs(300),
            chrono::Utc::now().timestamp_millis(),
        )
        .is_ok(),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn envelope_parser_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_envelope(&bytes);
    }

    #[test]
    fn envelope_parser_takes_any_json(value in arb_json()) {
        let _ = parse_envelope(value.to_string().as_bytes());
    }

    #[test]
    fn well_formed_envelopes_keep_their_fields(
        method in "[a-zA-Z]{1,20}",
        params in prop::collection::vec(arb_json(), 0..4),
        body in prop::collection::btree_map("[a-z]{1,8}", arb_json(), 0..6),
        id in prop_oneof![Just(None), any::<u32>().prop_map(|n| Some(json!(n))), "[a-z0-9-]{1,12}".prop_map(|s| Some(json!(s)))],
    ) {
        let body: Map<String, Value> = body.into_iter().collect();
        let mut request = json!({"webfix": "1.0", "method": method, "params": params, "body": body});
        if let Some(id) = &id {
            request["id"] = id.clone();
        }
        let envelope = parse_envelope(request.to_string().as_bytes()).unwrap();
        prop_assert_eq!(&envelope.method, &method);
        prop_assert_eq!(&envelope.params, &params);
        prop_assert_eq!(&envelope.body, &body);
        prop_assert_eq!(envelope.id.map(|id| id.to_json()), id);
    }

    #[test]
    fn keys_round_trip_through_their_encoding(key in arb_key()) {
        let decoded = Key::decode(&key.encode());
        prop_assert_eq!(decoded.as_ref(), Some(&key));
        prop_assert_eq!(Key::from_json(&key.to_json()).ok().as_ref().map(Key::encode), Some(key.encode()));
    }

    #[test]
    fn key_encoding_keeps_key_order(a in arb_key(), b in arb_key()) {
        let by_bytes = a.encode().cmp(&b.encode());
        let by_key = key_order(&a, &b);
        // Distinct keys that compare equal part by part are 0.0 and -0.0: they encode alike.
        if by_key != std::cmp::Ordering::Equal {
            prop_assert_eq!(by_bytes, by_key, "{} vs {}", a, b);
        }
    }

    #[test]
    fn key_decoder_and_json_form_take_anything(
        bytes in prop::collection::vec(any::<u8>(), 0..64),
        value in arb_json(),
    ) {
        if let Some(key) = Key::decode(&bytes) {
            // Whatever decodes re-encodes to a key that decodes the same.
            prop_assert_eq!(Key::decode(&key.encode()), Some(key));
        }
        let _ = Key::from_json(&value);
    }

    #[test]
    fn canonical_json_and_address_checks_take_anything(
        value in arb_json(),
        text in ".{0,64}",
        bytes in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let canonical = canonical_json(&value);
        // Canonical JSON is JSON, and canonical again after a round trip.
        let reparsed: Value = serde_json::from_str(&canonical).unwrap();
        prop_assert_eq!(canonical_json(&reparsed), canonical);
        let _ = validate_address(&text);
        let _ = address_from_public_key(&bytes);
        let _ = verify_transaction(&value);
    }

    #[test]
    fn login_verifier_takes_any_body(body in arb_json()) {
        prop_assert!(!verify(&body));
        let _ = verify(&json!({"transaction": body.clone(), "walletAddress": "gX"}));
        let _ = verify(&json!({"payload": {"body": {"transaction": body}}}));
    }

    #[test]
    fn login_verifier_takes_any_damaged_login(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        field in prop_oneof![Just("signature"), Just("hash"), Just("data"), Just("timestamp"), Just("from")],
        replacement in arb_json(),
    ) {
        let wallet = Wallet::generate();
        let body = valid_login_body(&wallet);
        prop_assert!(verify(&body));
        // Byte edits anywhere in the request's text (kept only when still JSON).
        let mut text = body.to_string().into_bytes();
        for (at, byte) in &edits {
            let i = at.index(text.len());
            text[i] = *byte;
        }
        if let Ok(damaged) = serde_json::from_slice::<Value>(&text) {
            let _ = verify(&damaged);
        }
        // A field of the signed transaction replaced by anything: never accepted.
        let mut replaced = body.clone();
        replaced["payload"]["body"]["transaction"][field] = replacement;
        prop_assert!(!verify(&replaced) || replaced == body);
        // A signature string of arbitrary hex or junk: never accepted, never a panic.
        let mut junk = body.clone();
        let bytes: Vec<u8> = edits.iter().map(|(_, b)| *b).collect();
        junk["payload"]["body"]["transaction"]["signature"] = json!(hex::encode(&bytes));
        prop_assert!(!verify(&junk));
    }
}
