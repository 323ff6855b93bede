//! The Redis store: `PREFIX:cache:<key>` with a TTL, and an index sorted by store time that
//! caps the entry count (the oldest entries go first).
//!
//! In a Redis Cluster an entry and its index must share a slot, and one index for all
//! entries would put the whole cache on one node: the keys are spread over
//! [`CLUSTER_BUCKETS`] buckets by their first character, `PREFIX:{cache-B}:cache:<key>`, each
//! with its own index capped at its share of `max_entries`.

use std::sync::LazyLock;
use std::time::Duration;

use redis::AsyncCommands;

use crate::kv::{Feature, Kv, KvError};

static PUT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"-- KEYS: entry, index. ARGV: value, ttl ms, max entries.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now, KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if excess > 0 then
  -- ZPOPMIN answers member, score, member, score...
  for i, v in ipairs(redis.call('ZPOPMIN', KEYS[2], excess)) do
    if i % 2 == 1 then redis.call('DEL', v) end
  end
end
redis.call('PEXPIRE', KEYS[2], ttl)
return 1",
    )
});

/// Buckets of the cache in a Redis Cluster (a power of two up to 16: one hex digit).
pub const CLUSTER_BUCKETS: usize = 16;

/// The entry's key and its index's key.
fn keys(kv: &Kv, key: &str) -> (String, String) {
    if !kv.is_cluster() {
        return (kv.key(&["cache", key]), kv.key(&["cache-index"]));
    }
    // Cache keys are hex digests: their first digit spreads them evenly.
    let bucket =
        key.chars().next().and_then(|c| c.to_digit(16)).unwrap_or(0) as usize % CLUSTER_BUCKETS;
    let slot = format!("cache-{bucket:x}");
    (
        kv.key_in_slot(&slot, &["cache", key]),
        kv.key_in_slot(&slot, &["cache-index"]),
    )
}

pub(super) async fn get(kv: &Kv, key: &str) -> Result<Option<Vec<u8>>, KvError> {
    let (k, _) = keys(kv, key);
    kv.run(Feature::Cache, |mut c| async move { c.get(k).await })
        .await
}

pub(super) async fn put(
    kv: &Kv,
    key: &str,
    bytes: &[u8],
    ttl: Duration,
    max_entries: usize,
) -> Result<(), KvError> {
    let (k, index) = keys(kv, key);
    let max_entries = if kv.is_cluster() {
        max_entries.div_ceil(CLUSTER_BUCKETS)
    } else {
        max_entries
    };
    let mut inv = PUT.prepare_invoke();
    inv.key(k)
        .key(index)
        .arg(bytes)
        .arg(ttl.as_millis() as u64)
        .arg(max_entries);
    let _: i64 = kv
        .run(Feature::Cache, |mut c| async move {
            inv.invoke_async(&mut c).await
        })
        .await?;
    Ok(())
}
