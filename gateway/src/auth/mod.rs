//! API keys → tenants. Keys are kept only as SHA-256 digests, from the config file or from
//! Redis (`gatehouse keys create`); the key itself is never stored or logged.

pub mod keys;
pub mod sessions;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::{AuthConfig, Config, FailMode, KeyRole, RateLimits, TenantConfig, Tenants};
use crate::kv::{Feature, Kv};
pub use keys::{KeyRecord, RedisKeys};

pub use crate::config::hash_key;

/// Who a request is from, once its key is known.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Key id (never the key).
    pub key_id: String,
    /// Tenant id.
    pub tenant: String,
    /// The tenant's settings (its own entry or `*`).
    pub settings: Arc<TenantConfig>,
    /// What the key may do.
    pub role: KeyRole,
    /// Limits of the key itself, on top of the tenant's.
    pub key_limits: RateLimits,
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing API key")]
    Missing,
    /// The key is unknown or revoked.
    #[error("invalid API key")]
    Invalid,
    /// The key's tenant has no entry under `tenants:` (nor `*`).
    #[error("tenant `{0}` is not configured on this gateway")]
    TenantNotConfigured(String),
    /// Redis could not be asked and `redis.on_error.auth` is `fail_closed` (or the key was
    /// never seen before the outage).
    #[error("API keys cannot be checked: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// Metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Invalid => "invalid",
            AuthError::TenantNotConfigured(_) => "tenant_not_configured",
            AuthError::Unavailable(_) => "unavailable",
        }
    }
}

/// Keys seen in Redis, kept for `redis.on_error.auth: fail_open`.
const STALE_KEYS: usize = 10_000;

/// Resolves bearer tokens to principals.
pub struct Authenticator {
    /// `None` under `auth: none`.
    config_keys: Option<HashMap<String, KeyRecord>>,
    tenants: Tenants,
    redis: Option<(RedisKeys, FailMode)>,
    /// Redis keys by digest as last read, served while Redis is down (fail_open only).
    stale: Mutex<HashMap<String, KeyRecord>>,
}

impl Authenticator {
    /// From the config; `kv` is the shared Redis when configured.
    pub fn new(config: &Config, kv: Option<Kv>) -> Self {
        let (config_keys, redis_keys) = match &config.auth {
            AuthConfig::None { .. } => (None, false),
            AuthConfig::Keys { keys, redis_keys } => (
                Some(
                    keys.iter()
                        .map(|k| {
                            (
                                k.sha256.clone(),
                                KeyRecord {
                                    id: k.id.clone(),
                                    tenant: k.tenant.clone(),
                                    role: k.role,
                                    limits: k.limits,
                                    name: None,
                                    created_at: 0,
                                },
                            )
                        })
                        .collect(),
                ),
                *redis_keys,
            ),
        };
        let redis = match (redis_keys, kv, &config.redis) {
            (true, Some(kv), Some(rc)) => {
                Some((RedisKeys::new(kv, Feature::Auth), rc.on_error.auth))
            }
            _ => None,
        };
        Self {
            config_keys,
            tenants: config.tenants.clone(),
            redis,
            stale: Mutex::new(HashMap::new()),
        }
    }

    /// Whether keys are required (not `auth: none`).
    pub fn enabled(&self) -> bool {
        self.config_keys.is_some()
    }

    /// The principal of `token`; `Ok(None)` under `auth: none`.
    pub async fn authenticate(&self, token: Option<&str>) -> Result<Option<Principal>, AuthError> {
        if self.config_keys.is_none() {
            return Ok(None);
        }
        let token = token.ok_or(AuthError::Missing)?;
        self.authenticate_digest(&hash_key(token)).await
    }

    /// The principal of the key whose SHA-256 is `digest` (a sign-in session keeps only
    /// that); `Ok(None)` under `auth: none`.
    pub async fn authenticate_digest(&self, digest: &str) -> Result<Option<Principal>, AuthError> {
        let Some(config_keys) = &self.config_keys else {
            return Ok(None);
        };
        let record = match config_keys.get(digest) {
            Some(r) => r.clone(),
            None => self.redis_lookup(digest).await?,
        };
        let settings = self
            .tenants
            .get(&record.tenant)
            .ok_or_else(|| AuthError::TenantNotConfigured(record.tenant.clone()))?;
        Ok(Some(Principal {
            key_id: record.id,
            tenant: record.tenant,
            settings,
            role: record.role,
            key_limits: record.limits,
        }))
    }

    async fn redis_lookup(&self, digest: &str) -> Result<KeyRecord, AuthError> {
        let Some((keys, mode)) = &self.redis else {
            return Err(AuthError::Invalid);
        };
        match keys.lookup(digest).await {
            Ok(Some(r)) => {
                let mut stale = self.stale();
                if stale.len() >= STALE_KEYS {
                    stale.clear();
                }
                stale.insert(digest.to_string(), r.clone());
                Ok(r)
            }
            Ok(None) => {
                self.stale().remove(digest);
                Err(AuthError::Invalid)
            }
            Err(e) => match mode {
                FailMode::Open => self.stale().get(digest).cloned().ok_or_else(|| {
                    AuthError::Unavailable(format!("{e} (and this key was not seen before)"))
                }),
                FailMode::Closed => Err(AuthError::Unavailable(format!("{e}; retry shortly"))),
            },
        }
    }

    fn stale(&self) -> std::sync::MutexGuard<'_, HashMap<String, KeyRecord>> {
        self.stale.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        let src = format!(
            "models:\n  - id: m\n    backend: remote\n    base_url: http://127.0.0.1:9/v1\n{yaml}"
        );
        Config::from_str_with_env(
            &src,
            std::path::Path::new("/tmp/gatehouse.yaml"),
            [("ACME_KEY".to_string(), "gh_secret".to_string())],
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn config_keys_resolve_to_their_tenant_and_others_are_refused() {
        let c = config(&format!(
            "auth:\n  keys:\n    - id: a\n      tenant: acme\n      key_env: ACME_KEY\n    - id: b\n      tenant: other\n      role: admin\n      sha256: {}\ntenants:\n  acme:\n    limits:\n      concurrent: 2\n  \"*\": {{}}\n",
            hash_key("gh_other")
        ));
        let auth = Authenticator::new(&c, None);
        let p = auth.authenticate(Some("gh_secret")).await.unwrap().unwrap();
        assert_eq!((p.key_id.as_str(), p.tenant.as_str()), ("a", "acme"));
        assert_eq!(p.role, KeyRole::User);
        assert_eq!(p.settings.limits.concurrent, Some(2));
        let q = auth.authenticate(Some("gh_other")).await.unwrap().unwrap();
        assert_eq!((q.tenant.as_str(), q.role), ("other", KeyRole::Admin));
        assert_eq!(q.settings.id, "*");
        assert!(matches!(
            auth.authenticate(Some("gh_nope")).await,
            Err(AuthError::Invalid)
        ));
        assert!(matches!(
            auth.authenticate(None).await,
            Err(AuthError::Missing)
        ));
    }

    #[tokio::test]
    async fn auth_none_lets_everyone_in_without_a_principal() {
        let auth = Authenticator::new(&config("auth: none\n"), None);
        assert!(!auth.enabled());
        assert!(auth.authenticate(None).await.unwrap().is_none());
    }

    #[test]
    fn the_digest_ignores_surrounding_whitespace() {
        assert_eq!(hash_key(" k \n"), hash_key("k"));
        assert_eq!(hash_key("k").len(), 64);
    }
}
