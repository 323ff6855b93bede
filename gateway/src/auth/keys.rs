//! API keys kept in Redis (`gatehouse keys create|list|revoke`).
//!
//! Layout: `PREFIX:apikey:<sha256>` holds the key's record as JSON (the lookup of a request);
//! the hash `PREFIX:apikeys` maps key ids to digests (listing and revoking by id).

use redis::AsyncCommands;

use crate::config::{KeyRole, RateLimits};
use crate::kv::{Feature, Kv, KvError};

/// What Gatehouse knows of a key: never the key itself.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KeyRecord {
    /// Key id, shown in logs, metrics and the audit log.
    pub id: String,
    /// Tenant the key belongs to.
    pub tenant: String,
    /// What it may do.
    pub role: KeyRole,
    /// Limits of the key on top of its tenant's.
    #[serde(default)]
    pub limits: RateLimits,
    /// A note for people (who or what uses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Unix seconds of creation (0 for keys from the config file).
    #[serde(default)]
    pub created_at: u64,
}

/// A new key: `gh_` and 64 random hex digits.
pub fn generate_key() -> String {
    format!("gh_{}", super::sessions::random_token())
}

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// Redis failed.
    #[error(transparent)]
    Kv(#[from] KvError),
    /// `create` with an id already in use.
    #[error("a key with id `{0}` exists already")]
    DuplicateId(String),
    /// `revoke` of an unknown id.
    #[error("no key with id `{0}`")]
    NoSuchId(String),
}

/// The keys stored in Redis.
#[derive(Clone)]
pub struct RedisKeys {
    kv: Kv,
    feature: Feature,
}

impl RedisKeys {
    /// Keys in `kv`; calls are counted under `feature`.
    pub fn new(kv: Kv, feature: Feature) -> Self {
        Self { kv, feature }
    }

    // A key's record and the index are written together by one script: one cluster slot.
    fn record_key(&self, digest: &str) -> String {
        self.kv.key_in_slot("apikeys", &["apikey", digest])
    }

    fn index_key(&self) -> String {
        self.kv.key_in_slot("apikeys", &["apikeys"])
    }

    /// The record of the key with this digest.
    pub async fn lookup(&self, digest: &str) -> Result<Option<KeyRecord>, KvError> {
        let k = self.record_key(digest);
        let raw: Option<String> = self
            .kv
            .run(self.feature, |mut c| {
                let k = k.clone();
                async move { c.get(k).await }
            })
            .await?;
        raw.map(|r| self.decode(&k, &r)).transpose()
    }

    fn decode(&self, key: &str, raw: &str) -> Result<KeyRecord, KvError> {
        serde_json::from_str(raw).map_err(|e| {
            let e = KvError::Corrupt {
                key: key.to_string(),
                message: e.to_string(),
            };
            self.kv.failed(self.feature, &e);
            e
        })
    }

    /// Stores `record` for `key`; the id must be new.
    pub async fn create(&self, key: &str, record: &KeyRecord) -> Result<(), KeysError> {
        let digest = super::hash_key(key);
        let json = serde_json::to_string(record).expect("records serialize");
        let (index, rec) = (self.index_key(), self.record_key(&digest));
        let id = record.id.clone();
        // HSETNX first and the record only if the id was free, atomically.
        let script = redis::Script::new(
            r"if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
              redis.call('SET', KEYS[2], ARGV[3])
              return 1",
        );
        let created: i64 = self
            .kv
            .run(self.feature, |mut c| async move {
                script
                    .key(index)
                    .key(rec)
                    .arg(id)
                    .arg(digest)
                    .arg(json)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        if created == 0 {
            return Err(KeysError::DuplicateId(record.id.clone()));
        }
        Ok(())
    }

    /// Every stored key, by id.
    pub async fn list(&self) -> Result<Vec<KeyRecord>, KvError> {
        let index = self.index_key();
        let ids: Vec<(String, String)> = self
            .kv
            .run(self.feature, |mut c| async move { c.hgetall(index).await })
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for (_, digest) in ids {
            if let Some(r) = self.lookup(&digest).await? {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Deletes the key with id `id`; requests with it fail from the next one on.
    pub async fn revoke(&self, id: &str) -> Result<KeyRecord, KeysError> {
        let index = self.index_key();
        let idx = index.clone();
        let owned = id.to_string();
        let digest: Option<String> = self
            .kv
            .run(
                self.feature,
                |mut c| async move { c.hget(idx, owned).await },
            )
            .await?;
        let digest = digest.ok_or_else(|| KeysError::NoSuchId(id.to_string()))?;
        let record = self.lookup(&digest).await?;
        let rec = self.record_key(&digest);
        let owned = id.to_string();
        let _: () = self
            .kv
            .run(self.feature, |mut c| async move {
                redis::pipe()
                    .atomic()
                    .del(rec)
                    .ignore()
                    .hdel(index, owned)
                    .ignore()
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(record.unwrap_or(KeyRecord {
            id: id.to_string(),
            tenant: String::new(),
            role: KeyRole::User,
            limits: RateLimits::default(),
            name: None,
            created_at: 0,
        }))
    }
}
