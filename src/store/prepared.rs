//! A write checked against the contract's limits before a backend applies it.

use std::collections::HashMap;

use super::{
    AtomicWrite, Check, Key, LeaseId, Limit, Limits, MAX_KEY_BYTES, MAX_VALUE_BYTES, Mutation, RawJson,
    StoreError, StoreResult, Versionstamp,
};

/// A mutation validated outside the commit lock.
pub(crate) struct PreparedMutation {
    /// The key, for watchers.
    pub(crate) key: Key,
    /// [`Key::encode`] of `key`.
    pub(crate) encoded: Vec<u8>,
    /// `Some((value, lease))` for a set, `None` for a delete.
    pub(crate) set: Option<(RawJson, Option<LeaseId>)>,
}

/// A check validated outside the commit lock: encoded key and expected versionstamp.
pub(crate) type PreparedCheck = (Vec<u8>, Option<Versionstamp>);

/// Encodes `key`, refusing keys over [`MAX_KEY_BYTES`].
pub(crate) fn encode_key(key: &Key) -> StoreResult<Vec<u8>> {
    let encoded = key.encode();
    if encoded.len() > MAX_KEY_BYTES {
        return Err(StoreError::key_too_large(encoded.len()));
    }
    Ok(encoded)
}

/// Validates a write within `limits` (every backend refuses the same writes); for duplicate keys
/// only the last mutation counts.
pub(crate) fn prepare(
    write: AtomicWrite,
    limits: &Limits,
) -> StoreResult<(Vec<PreparedCheck>, Vec<PreparedMutation>)> {
    let operations = write.operations();
    if operations > limits.max_operations {
        return Err(StoreError::TooLarge {
            limit: Limit::Operations,
            size: operations,
            max: limits.max_operations,
        });
    }
    let mut request_bytes = 0usize;
    let mut checks = Vec::with_capacity(write.checks.len());
    for Check::Versionstamp { key, expected } in write.checks {
        let encoded = encode_key(&key)?;
        request_bytes += encoded.len();
        checks.push((encoded, expected));
    }
    let mut mutations: Vec<PreparedMutation> = Vec::with_capacity(write.mutations.len());
    let mut position: HashMap<Vec<u8>, usize> = HashMap::with_capacity(write.mutations.len());
    for mutation in write.mutations {
        let prepared = match mutation {
            Mutation::Set { key, value, lease } => {
                if value.len() > MAX_VALUE_BYTES {
                    return Err(StoreError::value_too_large(value.len()));
                }
                PreparedMutation {
                    encoded: encode_key(&key)?,
                    key,
                    set: Some((value, lease)),
                }
            }
            Mutation::Delete { key } => PreparedMutation {
                encoded: encode_key(&key)?,
                key,
                set: None,
            },
        };
        request_bytes += prepared.encoded.len() + prepared.set.as_ref().map_or(0, |(value, _)| value.len());
        match position.get(&prepared.encoded) {
            Some(&i) => {
                if let Some(earlier) = mutations.get_mut(i) {
                    *earlier = prepared;
                }
            }
            None => {
                position.insert(prepared.encoded.clone(), mutations.len());
                mutations.push(prepared);
            }
        }
    }
    if request_bytes > limits.max_request_bytes {
        return Err(StoreError::TooLarge {
            limit: Limit::RequestBytes,
            size: request_bytes,
            max: limits.max_request_bytes,
        });
    }
    Ok((checks, mutations))
}
