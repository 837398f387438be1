//! Cross-process coherence: how a process learns that its local copies are stale.
//!
//! - With a standalone server that speaks RESP3, **client tracking** (`CLIENT TRACKING ON
//!   BCAST PREFIX … NOLOOP`): Redis pushes the name of every data key that changes, whoever
//!   changed it (another process, another program, expiry, eviction).
//! - Otherwise (a Cluster, or tracking off), a **pub/sub channel**: each tiered cache
//!   publishes what it removes (a key, a tag, everything) and applies what others publish.
//!
//! Both are fire-and-forget: after a disconnect, messages may have been lost, so on every
//! reconnect the local tiers are dropped entirely; and local entries never outlive
//! `max_local_ttl`, the backstop for anything else that goes wrong.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;

/// An invalidation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    Key(Vec<u8>),
    /// Keys Redis deleted, whatever their local copies carry (a tag's members).
    Keys(Vec<Vec<u8>>),
    Tag(String),
    All,
}

/// `[kind: k|K|t|a][origin: 16 bytes][key, keys, or tag]`; keys each as a little-endian
/// `u32` length and the key.
pub(crate) fn encode(origin: u128, message: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let kind = match message {
        Message::Key(_) => b'k',
        Message::Keys(_) => b'K',
        Message::Tag(_) => b't',
        Message::All => b'a',
    };
    out.push(kind);
    out.extend_from_slice(&origin.to_le_bytes());
    match message {
        Message::Key(key) => out.extend_from_slice(key),
        Message::Keys(keys) => {
            for key in keys {
                // Keys are far below 4 GiB (Redis caps them at 512 MB).
                out.extend_from_slice(&(key.len() as u32).to_le_bytes());
                out.extend_from_slice(key);
            }
        }
        Message::Tag(tag) => out.extend_from_slice(tag.as_bytes()),
        Message::All => {}
    }
    out
}

/// The keys of a `K` message's body.
fn decode_keys(mut body: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut keys = Vec::new();
    while !body.is_empty() {
        let len = u32::from_le_bytes(body.get(..4)?.try_into().ok()?) as usize;
        keys.push(body.get(4..4 + len)?.to_vec());
        body = &body[4 + len..];
    }
    Some(keys)
}

pub(crate) fn decode(bytes: &[u8]) -> Option<(u128, Message)> {
    let (&kind, rest) = bytes.split_first()?;
    let origin = u128::from_le_bytes(rest.get(..16)?.try_into().ok()?);
    let body = &rest[16..];
    let message = match kind {
        b'k' => Message::Key(body.to_vec()),
        b'K' => Message::Keys(decode_keys(body)?),
        b't' => Message::Tag(String::from_utf8(body.to_vec()).ok()?),
        b'a' => Message::All,
        _ => return None,
    };
    Some((origin, message))
}

/// The local tiers a subscriber invalidates.
pub(crate) trait LocalTiers: Send + Sync + 'static {
    fn apply(&self, message: &Message);
}

/// Stripes of keys, each with its own invalidation counter (see [`Subscription::epoch_of`]).
const EPOCH_STRIPES: usize = 256;

/// Shared between the subscriber task and the cache.
#[derive(Debug)]
pub(crate) struct Subscription {
    /// Subscribed right now.
    pub(crate) connected: AtomicBool,
    /// Bumped before every invalidation that may concern any key is applied (a tag,
    /// everything, a reconnect's flush).
    all: AtomicU64,
    /// Bumped before a key's invalidation is applied, one counter per stripe of keys.
    stripes: Box<[AtomicU64]>,
    /// Messages from other processes applied.
    pub(crate) received: AtomicU64,
    /// Reconnects after which the local tiers were flushed.
    pub(crate) flushes: AtomicU64,
}

impl Default for Subscription {
    fn default() -> Self {
        Self {
            connected: AtomicBool::default(),
            all: AtomicU64::default(),
            stripes: (0..EPOCH_STRIPES).map(|_| AtomicU64::default()).collect(),
            received: AtomicU64::default(),
            flushes: AtomicU64::default(),
        }
    }
}

impl Subscription {
    /// The invalidations applied so far that may concern `key`. A read that started before
    /// it moved does not promote what it read (it may be the value just invalidated), and a
    /// write that sees it move after storing its value locally drops that copy (another
    /// process's write may have landed in Redis after it). Striped by key, so that traffic
    /// on other keys rarely costs a key its local copy.
    pub(crate) fn epoch_of(&self, key: &[u8]) -> u64 {
        self.all
            .load(Ordering::Acquire)
            .wrapping_add(self.stripe(key).load(Ordering::Acquire))
    }

    fn stripe(&self, key: &[u8]) -> &AtomicU64 {
        let hash = std::hash::BuildHasher::hash_one(
            &std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default(),
            key,
        );
        &self.stripes[hash as usize % EPOCH_STRIPES]
    }

    /// Before `message` is applied to the local tiers.
    pub(crate) fn bump(&self, message: &Message) {
        match message {
            Message::Key(key) => {
                self.stripe(key).fetch_add(1, Ordering::AcqRel);
            }
            Message::Keys(keys) => {
                for key in keys {
                    self.stripe(key).fetch_add(1, Ordering::AcqRel);
                }
            }
            Message::Tag(_) | Message::All => {
                self.all.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}

/// Subscribes to `channel` at `url` forever (until aborted), applying other origins'
/// messages to `local`.
pub(crate) async fn subscribe(
    url: String,
    channel: String,
    origin: u128,
    local: Arc<dyn LocalTiers>,
    state: Arc<Subscription>,
    timeout: Duration,
) {
    let mut first = true;
    let mut backoff = Duration::from_millis(50);
    loop {
        let connected = async {
            let client = redis::Client::open(url.as_str())?;
            let mut pubsub = tokio::time::timeout(timeout, client.get_async_pubsub())
                .await
                .map_err(|_| {
                    redis::RedisError::from((redis::ErrorKind::Io, "pub/sub connect timed out"))
                })??;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        }
        .await;
        let pubsub = match connected {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "invalidation channel unavailable; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        if !first {
            // Messages sent while we were away are lost: forget everything local.
            // The epoch first, as for every invalidation: a write that stores locally after
            // the flush sees it moved and drops its copy.
            state.bump(&Message::All);
            local.apply(&Message::All);
            state.flushes.fetch_add(1, Ordering::Relaxed);
            tracing::info!("invalidation channel reconnected; local tiers flushed");
        }
        first = false;
        state.connected.store(true, Ordering::Release);
        let mut messages = pubsub.into_on_message();
        while let Some(msg) = messages.next().await {
            let Some((from, message)) = decode(msg.get_payload_bytes()) else {
                continue;
            };
            if from == origin {
                continue;
            }
            state.bump(&message);
            local.apply(&message);
            state.received.fetch_add(1, Ordering::Relaxed);
        }
        // The stream ended: the connection is gone. Local entries are kept (they serve while
        // Redis is away) and flushed when the channel comes back.
        state.connected.store(false, Ordering::Release);
    }
}

/// Applies the server's tracking pushes to `local` for as long as the tier lives, turning
/// tracking back on (and flushing `local`) after every reconnect.
pub(crate) async fn track(
    tier: crate::tier::RedisTier,
    mut pushes: tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
    local: Arc<dyn LocalTiers>,
    state: Arc<Subscription>,
) {
    let prefix = tier.data_prefix();
    // The builder turned tracking on for the first connection (turning it on twice is an
    // error: overlapping prefixes); each new connection needs it again.
    let mut first = true;
    loop {
        let mut backoff = Duration::from_millis(50);
        while !first && let Err(e) = tier.enable_tracking().await {
            tracing::debug!(error = %e, "cannot turn tracking on yet; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
        if !first {
            state.bump(&Message::All);
            local.apply(&Message::All);
            state.flushes.fetch_add(1, Ordering::Relaxed);
            tracing::info!("tracking reconnected; local tiers flushed");
        }
        first = false;
        state.connected.store(true, Ordering::Release);
        loop {
            let Some(push) = pushes.recv().await else {
                state.connected.store(false, Ordering::Release);
                return; // the tier is gone
            };
            match push.kind {
                redis::PushKind::Invalidate => match push.data.first() {
                    Some(redis::Value::Array(keys)) => {
                        for key in keys {
                            if let redis::Value::BulkString(key) = key
                                && let Some(key) = key.strip_prefix(prefix.as_slice())
                            {
                                let message = Message::Key(key.to_vec());
                                state.bump(&message);
                                local.apply(&message);
                                state.received.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    // A null key list: the server flushed everything.
                    _ => {
                        state.bump(&Message::All);
                        local.apply(&Message::All);
                    }
                },
                redis::PushKind::Disconnection => break,
                _ => {}
            }
        }
        state.connected.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key's invalidation moves the epochs of its stripe's keys only; a tag's, or a flush,
    /// moves every key's.
    #[test]
    fn a_keys_invalidation_moves_its_own_epoch() {
        let state = Subscription::default();
        let key = b"k".as_slice();
        let other = (0..)
            .map(|i| format!("other{i}").into_bytes())
            .find(|o| !std::ptr::eq(state.stripe(o), state.stripe(key)))
            .expect("a key in another stripe");
        let before = state.epoch_of(key);
        state.bump(&Message::Key(other.clone()));
        state.bump(&Message::Keys(vec![other]));
        assert_eq!(state.epoch_of(key), before);
        state.bump(&Message::Keys(vec![key.to_vec()]));
        let after_key = state.epoch_of(key);
        assert!(after_key > before);
        state.bump(&Message::Tag("t".into()));
        assert!(state.epoch_of(key) > after_key);
        let after_tag = state.epoch_of(key);
        state.bump(&Message::All);
        assert!(state.epoch_of(key) > after_tag);
    }

    #[test]
    fn messages_round_trip() {
        for m in [
            Message::Key(b"k\x00\xff".to_vec()),
            Message::Keys(vec![b"a".to_vec(), Vec::new(), b"k\x00\xff".to_vec()]),
            Message::Keys(Vec::new()),
            Message::Tag("user:42".into()),
            Message::All,
        ] {
            assert_eq!(decode(&encode(7, &m)), Some((7, m)));
        }
        assert_eq!(decode(b"x"), None);
        // A key list cut short.
        let mut cut = encode(7, &Message::Keys(vec![b"abc".to_vec()]));
        cut.pop();
        assert_eq!(decode(&cut), None);
        assert_eq!(decode(b"z0123456789abcdef"), None);
    }
}
