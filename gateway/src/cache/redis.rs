//! The Redis store: `PREFIX:cache:<key>` with a TTL, and an index sorted by store time that
//! caps the entry count (the oldest entries go first).

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

pub(super) async fn get(kv: &Kv, key: &str) -> Result<Option<Vec<u8>>, KvError> {
    let k = kv.key(&["cache", key]);
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
    let (k, index) = (kv.key(&["cache", key]), kv.key(&["cache-index"]));
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
