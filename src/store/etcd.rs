//! The cluster store: [`EtcdStore`], a [`Store`] on an etcd v3 cluster shared by every node.
//!
//! Layout: every entry lives at `prefix ++ Key::encode(key)` and holds the value's JSON bytes.
//! Versionstamps are etcd revisions (the mod revision of a key), so they rise across the
//! whole cluster. An atomic commit is one etcd transaction: each check compares a mod revision
//! (0 for "absent"), then the puts and deletes; a failed compare writes nothing and takes no
//! revision. Leases are etcd leases, which etcd ends by itself (deleting their keys in a
//! revision that watchers see), so [`Store::reap_expired`] keeps its default.
//!
//! Lists without a limit page through etcd at the revision of their first page, so a listing
//! of any size is one consistent snapshot. A watch starts at exactly `after + 1`; if its stream
//! breaks it reopens from the last revision it delivered, until the call deadline runs out, and
//! a compacted start ends it with [`StoreError::Compacted`].
//!
//! Every call waits at most [`EtcdOptions::call_timeout`]; a call that runs out gets
//! [`StoreError::Timeout`] (its write may still land, as with any remote store).
#![deny(missing_docs)]

use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KeyValue, PutOptions, SortOrder,
    SortTarget, Txn, TxnOp, WatchOptions,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::prepared::{encode_key, prepare};
use super::{
    AtomicWrite, CommitOutcome, Entry, Got, Key, Lease, LeaseId, Limits, ListOptions, MAX_LEASE_TTL, Page,
    RawJson, Revision, Store, StoreError, StoreResult, Versionstamp, WatchEvent, WatchStream,
};

/// Entries one request of an unlimited list asks for (at most 64 KiB each).
const LIST_PAGE: usize = 256;
/// Largest reply the client accepts: a full page of the largest values, with room to spare.
const MAX_REPLY_BYTES: usize = 2 * LIST_PAGE * super::MAX_VALUE_BYTES;
/// Changes a watch holds for a consumer that has not taken them yet.
const WATCH_BUFFER: usize = 256;
/// First pause before reopening a broken watch; it doubles up to [`MAX_REOPEN_PAUSE`].
const FIRST_REOPEN_PAUSE: Duration = Duration::from_millis(50);
/// Longest pause between attempts to reopen a broken watch.
const MAX_REOPEN_PAUSE: Duration = Duration::from_secs(1);
/// First pause before sending a request again that could not connect; it doubles up to
/// [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(10);
/// Longest pause between attempts of a request that could not connect.
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Client certificates and the CA that signs etcd's, for `https` endpoints.
#[derive(Clone, Debug, Default)]
pub struct EtcdTls {
    /// PEM of the CA that signed the etcd members' certificates (`None`: the system's roots).
    pub ca_pem: Option<Vec<u8>>,
    /// PEM certificate and key this node presents (`None`: no client certificate).
    pub identity_pem: Option<(Vec<u8>, Vec<u8>)>,
}

/// How to reach etcd and where in its keyspace this cluster lives.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// `host:port` of each member.
    pub endpoints: Vec<String>,
    /// Prepended to every key; several clusters can share one etcd under different prefixes.
    pub prefix: Vec<u8>,
    /// TLS settings; `Some` makes every endpoint `https`.
    pub tls: Option<EtcdTls>,
    /// User name and password (etcd's own authentication).
    pub user: Option<(String, String)>,
    /// Longest wait of one call, including the connection attempt it may need.
    pub call_timeout: Duration,
    /// Size limits of one commit; etcd's own `--max-txn-ops` and `--max-request-bytes` must
    /// allow at least these plus the prefix.
    pub limits: Limits,
}

impl EtcdOptions {
    /// Options for `endpoints` under `prefix`, without TLS or a user, with a 5 s deadline.
    pub fn new(endpoints: Vec<String>, prefix: impl Into<Vec<u8>>) -> Self {
        EtcdOptions {
            endpoints,
            prefix: prefix.into(),
            tls: None,
            user: None,
            call_timeout: Duration::from_secs(5),
            limits: Limits::DEFAULT,
        }
    }
}

/// A [`Store`] on etcd.
pub struct EtcdStore {
    client: Client,
    prefix: Vec<u8>,
    call_timeout: Duration,
    limits: Limits,
    endpoints: String,
    /// How many endpoints there are.
    members: usize,
    /// Cancelled when the store is dropped, which ends its watches.
    closed: CancellationToken,
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

impl EtcdStore {
    /// Connects and checks that etcd answers within the call deadline; the error names the
    /// endpoints tried.
    pub async fn connect(options: EtcdOptions) -> StoreResult<Self> {
        let endpoints = options.endpoints.join(",");
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(options.call_timeout)
            .with_keep_alive(keep_alive_interval(options.call_timeout), options.call_timeout)
            .with_keep_alive_while_idle(true);
        if let Some(tls) = &options.tls {
            let mut config = etcd_client::TlsOptions::new();
            if let Some(ca) = &tls.ca_pem {
                config = config.ca_certificate(etcd_client::Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = &tls.identity_pem {
                config = config.identity(etcd_client::Identity::from_pem(cert, key));
            }
            connect = connect.with_tls(config);
        }
        if let Some((user, password)) = &options.user {
            connect = connect.with_user(user, password);
        }
        let unreachable =
            |e: String| StoreError::Unavailable(format!("etcd at {endpoints} does not answer: {e}"));
        let connecting = Client::connect(&options.endpoints, Some(connect));
        let client = tokio::time::timeout(options.call_timeout, connecting)
            .await
            .map_err(|_| unreachable(format!("no answer within {:?}", options.call_timeout)))?
            .map_err(|e| match e {
                // With a user, connecting authenticates: etcd answered, and refused.
                etcd_client::Error::GRpcStatus(_) => store_error(e, &endpoints, options.call_timeout),
                other => unreachable(other.to_string()),
            })?;
        let store = EtcdStore {
            client,
            prefix: options.prefix,
            call_timeout: options.call_timeout,
            limits: options.limits,
            endpoints: endpoints.clone(),
            members: options.endpoints.len(),
            closed: CancellationToken::new(),
        };
        // A read under the prefix, not just a status call: it also proves the credentials.
        let probe = store.prefix.clone();
        let checked = store
            .deadline(|| {
                let mut kv = store.client.kv_client();
                let options = GetOptions::new().with_prefix().with_count_only();
                let key = probe.clone();
                async move { kv.get(key, Some(options)).await }
            })
            .await;
        match checked {
            Ok(_) => Ok(store),
            Err(e @ StoreError::Backend { .. }) => Err(e),
            Err(e) => Err(unreachable(e.to_string())),
        }
    }

    /// Forgets the history up to `revision`: a watch from before it then gets
    /// [`StoreError::Compacted`]. Operators compact etcd themselves; tests use this.
    pub async fn compact_history(&self, revision: Revision) -> StoreResult<()> {
        let revision = revision_i64(revision)?;
        self.deadline(|| {
            let mut kv = self.client.kv_client();
            async move { kv.compact(revision, None).await }
        })
        .await?;
        Ok(())
    }

    /// Runs `attempt` within the call deadline and reduces its error to a [`StoreError`]. An
    /// attempt that could not connect to the member the channel picked was never sent, so it is
    /// tried again — the channel picks members at random — up to twice per member while the
    /// deadline allows: losing one member of three costs no request, and losing all of them
    /// fails a call within milliseconds instead of at its deadline.
    async fn deadline<T, F, Fut>(&self, mut attempt: F) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + self.call_timeout;
        let attempts = async {
            let mut pause = FIRST_RETRY_PAUSE;
            let mut retries_left = 2 * self.members;
            loop {
                match attempt().await {
                    Err(e)
                        if never_sent(&e)
                            && retries_left > 0
                            && tokio::time::Instant::now() + pause < deadline =>
                    {
                        retries_left -= 1;
                        tracing::debug!(error = %e, "an etcd member is unreachable; trying again");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(MAX_RETRY_PAUSE);
                    }
                    other => return other,
                }
            }
        };
        match tokio::time::timeout_at(deadline, attempts).await {
            Ok(result) => result.map_err(|e| store_error(e, &self.endpoints, self.call_timeout)),
            Err(_) => Err(StoreError::Timeout(self.call_timeout)),
        }
    }

    fn etcd_key(&self, encoded: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + encoded.len());
        key.extend_from_slice(&self.prefix);
        key.extend_from_slice(encoded);
        key
    }

    /// The etcd range `[start, end)` of the keys strictly under `prefix`.
    fn range_under(&self, prefix: &Key) -> StoreResult<(Vec<u8>, Vec<u8>)> {
        encode_key(prefix)?;
        let (start, end) = prefix.child_bounds();
        Ok((self.etcd_key(&start), self.etcd_key(&end)))
    }

    fn entry(&self, kv: &KeyValue) -> StoreResult<Entry> {
        let key = decode_key(&self.prefix, kv.key())?;
        Ok(Entry {
            value: decode_value(&key, kv.value())?,
            key,
            versionstamp: versionstamp(kv.mod_revision())?,
        })
    }

    /// One range request; `revision` 0 reads the latest.
    async fn range(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
        reverse: bool,
        revision: i64,
    ) -> StoreResult<(Vec<Entry>, bool, Revision)> {
        let mut options = GetOptions::new()
            .with_range(end)
            .with_limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .with_revision(revision);
        if reverse {
            options = options.with_sort(SortTarget::Key, SortOrder::Descend);
        }
        let reply = self
            .deadline(|| {
                let mut kv = self.client.kv_client().max_decoding_message_size(MAX_REPLY_BYTES);
                let (start, options) = (start.clone(), options.clone());
                async move { kv.get(start, Some(options)).await }
            })
            .await?;
        let entries = reply
            .kvs()
            .iter()
            .map(|kv| self.entry(kv))
            .collect::<StoreResult<_>>()?;
        Ok((entries, reply.more(), header_revision(reply.header())?))
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &Key) -> StoreResult<Got> {
        // A key over the limit cannot be stored, so it reads as absent like any other.
        let etcd_key = self.etcd_key(&key.encode());
        let reply = self
            .deadline(|| {
                let mut kv = self.client.kv_client().max_decoding_message_size(MAX_REPLY_BYTES);
                let key = etcd_key.clone();
                async move { kv.get(key, None).await }
            })
            .await?;
        let entry = reply.kvs().first().map(|kv| self.entry(kv)).transpose()?;
        Ok(Got {
            entry,
            revision: header_revision(reply.header())?,
        })
    }

    async fn list(&self, prefix: &Key, options: ListOptions) -> StoreResult<Page> {
        let (mut start, mut end) = self.range_under(prefix)?;
        if let Some(after) = &options.start_after {
            let after = self.etcd_key(&encode_key(after)?);
            if options.reverse {
                end = end.min(after);
            } else {
                let mut next = after;
                next.push(0);
                start = start.max(next);
            }
        }
        if start >= end {
            let revision = self.get(prefix).await?.revision;
            return Ok(Page {
                entries: Vec::new(),
                revision,
                more: false,
            });
        }
        if let Some(limit) = options.limit {
            if limit == 0 {
                let (first, more, revision) = self.range(start, end, 1, options.reverse, 0).await?;
                return Ok(Page {
                    entries: Vec::new(),
                    revision,
                    more: more || !first.is_empty(),
                });
            }
            let (entries, more, revision) = self.range(start, end, limit, options.reverse, 0).await?;
            return Ok(Page {
                entries,
                revision,
                more,
            });
        }
        let (mut entries, mut more, revision) = self
            .range(start.clone(), end.clone(), LIST_PAGE, options.reverse, 0)
            .await?;
        let at = revision_i64(revision)?;
        while more {
            let Some(last) = entries.last() else { break };
            let last = self.etcd_key(&encode_key(&last.key)?);
            if options.reverse {
                end = last;
            } else {
                start = last;
                start.push(0);
            }
            let (page, more_after, _) = self
                .range(start.clone(), end.clone(), LIST_PAGE, options.reverse, at)
                .await?;
            entries.extend(page);
            more = more_after;
        }
        Ok(Page {
            entries,
            revision,
            more: false,
        })
    }

    async fn commit(&self, write: AtomicWrite) -> StoreResult<CommitOutcome> {
        let (checks, mutations) = prepare(write, &self.limits)?;
        // Named in a refusal: etcd says a lease ended, not which.
        let first_lease = mutations
            .iter()
            .find_map(|m| m.set.as_ref().and_then(|(_, lease)| *lease));
        let compares = checks
            .iter()
            .map(|(encoded, expected)| {
                let revision = expected.map_or(Ok(0), |vs| revision_i64(vs.into()))?;
                Ok(Compare::mod_revision(
                    self.etcd_key(encoded),
                    CompareOp::Equal,
                    revision,
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let operations = mutations
            .into_iter()
            .map(|m| {
                let key = self.etcd_key(&m.encoded);
                Ok(match m.set {
                    Some((value, lease)) => {
                        let options = match lease {
                            Some(lease) => Some(PutOptions::new().with_lease(lease_i64(lease)?)),
                            None => None,
                        };
                        TxnOp::put(key, value.as_str(), options)
                    }
                    None => TxnOp::delete(key, None),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let txn = Txn::new().when(compares).and_then(operations);
        let sent = self
            .deadline(|| {
                let mut kv = self.client.kv_client();
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await;
        let reply = match sent {
            Err(StoreError::LeaseNotFound(_)) => {
                return Err(StoreError::LeaseNotFound(first_lease.unwrap_or(LeaseId(0))));
            }
            other => other?,
        };
        if !reply.succeeded() {
            return Ok(CommitOutcome::CheckFailed);
        }
        Ok(CommitOutcome::Committed(
            header_revision(reply.header())?.versionstamp(),
        ))
    }

    async fn watch(&self, prefix: &Key, after: Revision) -> StoreResult<WatchStream> {
        let (start, end) = self.range_under(prefix)?;
        let watcher = Watcher {
            client: self.client.clone(),
            prefix: self.prefix.clone(),
            start,
            end,
            call_timeout: self.call_timeout,
            endpoints: self.endpoints.clone(),
        };
        let stream = watcher.reopen(after, &self.closed).await?;
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(watcher.run(stream, after, sender, self.closed.clone()));
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver)))
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    async fn grant(&self, ttl: Duration) -> StoreResult<Lease> {
        if ttl > MAX_LEASE_TTL {
            return Err(StoreError::Backend {
                backend: "etcd",
                message: format!("a lease of {ttl:?} is longer than the longest granted ({MAX_LEASE_TTL:?})"),
            });
        }
        let seconds = i64::try_from(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0))
            .unwrap_or(i64::MAX)
            .max(1);
        let reply = self
            .deadline(|| {
                let mut lease = self.client.lease_client();
                async move { lease.grant(seconds, None).await }
            })
            .await?;
        Ok(Lease {
            id: LeaseId(u64::try_from(reply.id()).map_err(|_| corrupt_number("lease id", reply.id()))?),
            ttl: Duration::from_secs(u64::try_from(reply.ttl()).unwrap_or(0)),
        })
    }

    async fn keep_alive(&self, lease: LeaseId) -> StoreResult<Duration> {
        let id = lease_i64(lease)?;
        let renewed = self
            .deadline(|| {
                let mut client = self.client.lease_client();
                async move {
                    let (mut keeper, mut replies) = client.keep_alive(id).await?;
                    keeper.keep_alive().await?;
                    replies.message().await
                }
            })
            .await;
        let renewed = match renewed {
            Err(StoreError::LeaseNotFound(_)) => return Err(StoreError::LeaseNotFound(lease)),
            other => other?,
        };
        match renewed.map(|reply| reply.ttl()) {
            Some(ttl) if ttl > 0 => Ok(Duration::from_secs(u64::try_from(ttl).unwrap_or(0))),
            _ => Err(StoreError::LeaseNotFound(lease)),
        }
    }

    async fn revoke(&self, lease: LeaseId) -> StoreResult<()> {
        let id = lease_i64(lease)?;
        let revoked = self
            .deadline(|| {
                let mut client = self.client.lease_client();
                async move { client.revoke(id).await }
            })
            .await;
        match revoked {
            Ok(_) | Err(StoreError::LeaseNotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn flush(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// One watch of a range, reopened after a broken stream.
struct Watcher {
    client: Client,
    prefix: Vec<u8>,
    start: Vec<u8>,
    end: Vec<u8>,
    call_timeout: Duration,
    endpoints: String,
}

impl Watcher {
    /// Opens the watch of changes after `after`, waiting at most the call deadline.
    async fn open(&self, after: Revision) -> StoreResult<etcd_client::WatchStream> {
        let from = revision_i64(after)?.saturating_add(1);
        let options = WatchOptions::new()
            .with_range(self.end.clone())
            .with_start_revision(from);
        let mut client = self.client.watch_client();
        match tokio::time::timeout(self.call_timeout, client.watch(self.start.clone(), Some(options))).await {
            Ok(result) => result.map_err(|e| store_error(e, &self.endpoints, self.call_timeout)),
            Err(_) => Err(StoreError::Timeout(self.call_timeout)),
        }
    }

    /// Opens (or reopens) after `after`, retrying with growing pauses until the call deadline.
    async fn reopen(
        &self,
        after: Revision,
        closed: &CancellationToken,
    ) -> StoreResult<etcd_client::WatchStream> {
        let deadline = tokio::time::Instant::now() + self.call_timeout;
        let mut pause = FIRST_REOPEN_PAUSE;
        loop {
            match self.open(after).await {
                Ok(stream) => return Ok(stream),
                Err(e) if tokio::time::Instant::now() + pause >= deadline => return Err(e),
                Err(e) => tracing::debug!(error = %e, "reopening an etcd watch"),
            }
            tokio::select! {
                () = closed.cancelled() => return Err(closed_error()),
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(MAX_REOPEN_PAUSE);
        }
    }

    /// Forwards changes until the consumer goes, the store closes, or the watch fails for good.
    async fn run(
        self,
        mut stream: etcd_client::WatchStream,
        mut last: Revision,
        sender: mpsc::Sender<StoreResult<WatchEvent>>,
        closed: CancellationToken,
    ) {
        loop {
            let message = tokio::select! {
                () = closed.cancelled() => {
                    let _ = sender.send(Err(closed_error())).await;
                    return;
                }
                () = sender.closed() => return,
                message = stream.message() => message,
            };
            let reply = match message {
                Ok(Some(reply)) => reply,
                Ok(None) | Err(_) => match self.reopen(last, &closed).await {
                    Ok(reopened) => {
                        stream = reopened;
                        continue;
                    }
                    Err(e) => {
                        let _ = sender.send(Err(e)).await;
                        return;
                    }
                },
            };
            if reply.compact_revision() > 0 {
                let oldest = Revision(u64::try_from(reply.compact_revision() - 1).unwrap_or(0));
                let _ = sender
                    .send(Err(StoreError::Compacted {
                        requested: last,
                        oldest,
                    }))
                    .await;
                return;
            }
            if reply.canceled() {
                let reason = format!("etcd cancelled the watch: {}", reply.cancel_reason());
                let _ = sender.send(Err(StoreError::Unavailable(reason))).await;
                return;
            }
            for event in reply.events() {
                let change = self.change(event);
                if let Ok(change) = &change {
                    last = change.revision();
                }
                let failed = change.is_err();
                if sender.send(change).await.is_err() || failed {
                    return;
                }
            }
        }
    }

    fn change(&self, event: &etcd_client::Event) -> StoreResult<WatchEvent> {
        let kv = event
            .kv()
            .ok_or_else(|| StoreError::Corrupt("an etcd watch event without its key".into()))?;
        let key = decode_key(&self.prefix, kv.key())?;
        let versionstamp = versionstamp(kv.mod_revision())?;
        Ok(match event.event_type() {
            EventType::Put => WatchEvent::Put(Entry {
                value: decode_value(&key, kv.value())?,
                key,
                versionstamp,
            }),
            EventType::Delete => WatchEvent::Delete { key, versionstamp },
        })
    }
}

/// A key as stored under `prefix`, decoded.
fn decode_key(prefix: &[u8], raw: &[u8]) -> StoreResult<Key> {
    raw.strip_prefix(prefix)
        .and_then(Key::decode)
        .ok_or_else(|| StoreError::Corrupt(format!("etcd holds a key no entry encodes to: {raw:x?}")))
}

/// The JSON stored under `key`, checked (anyone with access to the prefix can write there) but
/// not parsed into a tree.
fn decode_value(key: &Key, raw: &[u8]) -> StoreResult<RawJson> {
    RawJson::from_untrusted(raw)
        .map_err(|e| StoreError::Corrupt(format!("the value of {key} in etcd is not JSON: {e}")))
}

fn closed_error() -> StoreError {
    StoreError::Unavailable("the etcd store was closed".into())
}

/// HTTP/2 pings this often find a dead connection (and end its watches) within about two
/// deadlines.
fn keep_alive_interval(call_timeout: Duration) -> Duration {
    (call_timeout / 2).max(Duration::from_millis(100))
}

fn revision_i64(revision: Revision) -> StoreResult<i64> {
    i64::try_from(revision.0).map_err(|_| StoreError::Backend {
        backend: "etcd",
        message: format!("revision {revision} is beyond etcd's range"),
    })
}

fn lease_i64(lease: LeaseId) -> StoreResult<i64> {
    i64::try_from(lease.0).map_err(|_| StoreError::LeaseNotFound(lease))
}

fn corrupt_number(what: &str, n: i64) -> StoreError {
    StoreError::Corrupt(format!("etcd answered a negative {what}: {n}"))
}

fn versionstamp(mod_revision: i64) -> StoreResult<Versionstamp> {
    u64::try_from(mod_revision)
        .map(Versionstamp::from_counter)
        .map_err(|_| corrupt_number("revision", mod_revision))
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> StoreResult<Revision> {
    let revision = header
        .map(|h| h.revision())
        .ok_or_else(|| StoreError::Corrupt("an etcd reply without its header".into()))?;
    u64::try_from(revision)
        .map(Revision)
        .map_err(|_| corrupt_number("revision", revision))
}

/// Whether the request failed before it reached a member (no connection), so sending it again
/// cannot apply it twice.
fn never_sent(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => {
            status.code() == tonic::Code::Unavailable && status.message().contains("connect")
        }
        _ => false,
    }
}

/// Reduces an etcd client error to the contract's kinds, naming the cause.
fn store_error(error: etcd_client::Error, endpoints: &str, call_timeout: Duration) -> StoreError {
    use tonic::Code;
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            let message = status.message();
            match status.code() {
                Code::NotFound if message.contains("lease not found") => {
                    StoreError::LeaseNotFound(LeaseId(0))
                }
                Code::Unavailable | Code::Cancelled | Code::Aborted => {
                    StoreError::Unavailable(format!("etcd at {endpoints}: {message}"))
                }
                Code::DeadlineExceeded => StoreError::Timeout(call_timeout),
                // tonic's code for a connection that broke under the request.
                Code::Unknown if message.contains("transport error") => {
                    StoreError::Unavailable(format!("etcd at {endpoints}: the connection broke: {message}"))
                }
                Code::ResourceExhausted => {
                    StoreError::Unavailable(format!("etcd refused the write: {message}"))
                }
                Code::Unauthenticated | Code::PermissionDenied => StoreError::Backend {
                    backend: "etcd",
                    message: format!("etcd refused this node's credentials: {message}"),
                },
                Code::InvalidArgument if message.contains("user name is empty") => StoreError::Backend {
                    backend: "etcd",
                    message: format!(
                        "etcd at {endpoints} has authentication on: set HETEROGEN_ETCD_USER and HETEROGEN_ETCD_PASSWORD ({message})"
                    ),
                },
                Code::InvalidArgument if message.contains("authentication failed") => StoreError::Backend {
                    backend: "etcd",
                    message: format!("etcd at {endpoints} refused this node's credentials: {message}"),
                },
                code => StoreError::Backend {
                    backend: "etcd",
                    message: format!("{code:?}: {message}"),
                },
            }
        }
        etcd_client::Error::LeaseKeepAliveError(message) if message.contains("not found") => {
            StoreError::LeaseNotFound(LeaseId(0))
        }
        etcd_client::Error::TransportError(e) => {
            StoreError::Unavailable(format!("cannot reach etcd at {endpoints}: {e}"))
        }
        etcd_client::Error::IoError(e) => {
            StoreError::Unavailable(format!("cannot reach etcd at {endpoints}: {e}"))
        }
        other => StoreError::Backend {
            backend: "etcd",
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_requests_that_never_connected_are_sent_again() {
        let status = |code, message: &str| etcd_client::Error::GRpcStatus(tonic::Status::new(code, message));
        assert!(never_sent(&status(tonic::Code::Unavailable, "tcp connect error")));
        assert!(!never_sent(&status(
            tonic::Code::Unavailable,
            "etcdserver: leader changed"
        )));
        assert!(!never_sent(&status(tonic::Code::DeadlineExceeded, "connect")));
        assert!(!never_sent(&etcd_client::Error::WatchError("closed".into())));
    }

    #[test]
    fn grpc_codes_map_to_the_contracts_kinds() {
        let status = |code, message: &str| etcd_client::Error::GRpcStatus(tonic::Status::new(code, message));
        let t = Duration::from_secs(1);
        assert!(matches!(
            store_error(
                status(tonic::Code::NotFound, "etcdserver: requested lease not found"),
                "e",
                t
            ),
            StoreError::LeaseNotFound(_)
        ));
        assert!(matches!(
            store_error(status(tonic::Code::Unavailable, "etcdserver: no leader"), "e", t),
            StoreError::Unavailable(m) if m.contains("no leader")
        ));
        assert!(matches!(
            store_error(status(tonic::Code::Unknown, "transport error"), "e", t),
            StoreError::Unavailable(m) if m.contains("broke")
        ));
        assert!(matches!(
            store_error(status(tonic::Code::DeadlineExceeded, "slow"), "e", t),
            StoreError::Timeout(_)
        ));
        assert!(matches!(
            store_error(status(tonic::Code::ResourceExhausted, "mvcc: database space exceeded"), "e", t),
            StoreError::Unavailable(m) if m.contains("space exceeded")
        ));
        assert!(matches!(
            store_error(status(tonic::Code::PermissionDenied, "permission denied"), "e", t),
            StoreError::Backend { message, .. } if message.contains("credentials")
        ));
    }
}
