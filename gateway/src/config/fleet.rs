//! Validation of what a fleet of replicas shares: `auth:`, `tenants:`, `redis:` and `cache:`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::locate::Segment;
use super::raw::{
    RawAuth, RawCache, RawCacheStore, RawCacheWhen, RawFailMode, RawKey, RawLimits, RawRedis,
    RawRedisMode, RawRole, RawTenant,
};
use super::{key, Invalid, ModelConfig};

/// Lowercase hex SHA-256 of `key`, the form keys are stored and compared in.
pub fn hash_key(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.trim().as_bytes()))
}

/// `auth:` settings.
#[derive(Debug, Clone)]
pub enum AuthConfig {
    /// `auth: none`: every request is served without a key (the server warns at start).
    None {
        /// The admin endpoints answer anyone; without it they answer 403 `admin_closed`.
        open_admin: bool,
        /// A non-loopback `listen` was allowed explicitly (validation refuses it otherwise).
        allow_remote: bool,
    },
    /// Requests need a key.
    Keys {
        /// Keys from the config file.
        keys: Vec<ConfigKey>,
        /// Keys made by `gatehouse keys create` are accepted too (looked up in Redis).
        redis_keys: bool,
    },
}

impl AuthConfig {
    /// Refuses `addr` when it is not loopback and keys are off without `allow_remote`.
    pub fn check_listen(&self, addr: std::net::SocketAddr) -> Result<(), String> {
        match self {
            AuthConfig::None {
                allow_remote: false,
                ..
            } if !addr.ip().is_loopback() => Err(format!(
                "`{addr}` is not a loopback address, and `auth: none` would serve anyone who \
                 reaches it without a key: configure `auth: keys:`, or allow it explicitly \
                 with `auth: {{none: {{allow_remote: true}}}}`"
            )),
            _ => Ok(()),
        }
    }

    /// Whether the admin endpoints answer without a key: only under `auth: none` with
    /// `open_admin: true`.
    pub fn admin_open_to_all(&self) -> bool {
        matches!(
            self,
            AuthConfig::None {
                open_admin: true,
                ..
            }
        )
    }
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyRole {
    /// The API, scoped to the key's tenant.
    User,
    /// The API plus the admin endpoints.
    Admin,
}

impl KeyRole {
    /// `user` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRole::User => "user",
            KeyRole::Admin => "admin",
        }
    }
}

/// A key listed under `auth.keys`.
#[derive(Debug, Clone)]
pub struct ConfigKey {
    /// Id shown in logs, metrics and the audit log (never the key).
    pub id: String,
    /// Lowercase hex SHA-256 of the key.
    pub sha256: String,
    /// Tenant the key belongs to.
    pub tenant: String,
    /// What it may do.
    pub role: KeyRole,
    /// Limits of this key on top of its tenant's.
    pub limits: RateLimits,
}

/// Rate limits and quotas; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RateLimits {
    /// Requests per minute (sustained rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// Requests that may arrive at once on top of the sustained rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Prompt plus completion tokens per minute, settled after each response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    /// Requests in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent: Option<u32>,
}

impl RateLimits {
    /// No limit set.
    pub fn is_unlimited(&self) -> bool {
        self.requests_per_minute.is_none()
            && self.tokens_per_minute.is_none()
            && self.concurrent.is_none()
    }

    /// The burst in force: as configured, else a tenth of a minute's requests (at least 1).
    pub fn effective_burst(&self) -> u32 {
        match (self.burst, self.requests_per_minute) {
            (Some(b), _) => b.max(1),
            (None, Some(rpm)) => (rpm / 10).max(1),
            (None, None) => 1,
        }
    }
}

/// One entry of `tenants:`.
#[derive(Debug, Clone, Default)]
pub struct TenantConfig {
    /// Tenant id (`*` for the entry that applies to tenants not listed).
    pub id: String,
    /// Policy id every request of the tenant runs under (instead of `applies_to` selection).
    pub policy: Option<String>,
    /// Model ids the tenant may use; all when `None`.
    pub models: Option<Vec<String>>,
    /// Limits shared by all the tenant's keys.
    pub limits: RateLimits,
}

impl TenantConfig {
    /// Whether the tenant may use `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|m| m.iter().any(|x| x == model))
    }
}

/// `tenants:`, by id.
#[derive(Debug, Clone, Default)]
pub struct Tenants {
    by_id: HashMap<String, Arc<TenantConfig>>,
    fallback: Option<Arc<TenantConfig>>,
}

impl Tenants {
    /// The settings of `tenant`: its own entry, else the `*` entry; `None` when neither exists.
    pub fn get(&self, tenant: &str) -> Option<Arc<TenantConfig>> {
        self.by_id
            .get(tenant)
            .cloned()
            .or_else(|| self.fallback.clone())
    }

    /// Whether no tenant is configured.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty() && self.fallback.is_none()
    }

    /// Ids of the configured tenants (without `*`), sorted.
    pub fn ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.by_id.keys().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }
}

/// What a feature does while Redis fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Serve anyway: without the cache, with a local rate limiter, with local routing, with
    /// the keys seen before the failure.
    Open,
    /// Refuse with 503 until Redis is back.
    Closed,
}

/// `redis.on_error`.
#[derive(Debug, Clone, Copy)]
pub struct OnError {
    /// Key lookups (default closed: an unknown key is never let in).
    pub auth: FailMode,
    /// Rate limits (default open: a local limiter per replica).
    pub rate_limits: FailMode,
    /// The response cache (default open: served without cache).
    pub cache: FailMode,
    /// The prefix→backend map (default open: local hashing).
    pub routing: FailMode,
}

/// How Redis is deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisMode {
    /// One server (or a proxy in front of several).
    Standalone,
    /// A Redis Cluster: keys that a script touches together share a hash tag.
    Cluster,
}

/// `redis:` settings.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// One server, or a Redis Cluster.
    pub mode: RedisMode,
    /// `redis://[user:password@]host:port[/db]`: the server, or the cluster's seed nodes.
    pub nodes: Vec<String>,
    /// Time one Redis call may take, connecting included.
    pub timeout: Duration,
    /// Prefix of every key Gatehouse writes.
    pub prefix: String,
    /// Per-feature failure behaviour.
    pub on_error: OnError,
}

/// Where cached answers live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStore {
    /// An LRU in this process.
    Memory,
    /// Redis, shared by all replicas.
    Redis,
}

/// `cache:` settings.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Where entries live.
    pub store: CacheStore,
    /// How long an entry is served.
    pub ttl: Duration,
    /// Entries kept; the least recently used (memory) or oldest (Redis) go first.
    pub max_entries: usize,
    /// Answers larger than this are not cached.
    pub max_entry_bytes: usize,
    /// Requests with a `seed` are cached at any temperature, not only at temperature 0.
    pub seeded: bool,
}

pub(super) fn validate_auth(
    raw: Option<RawAuth>,
    tenants: &Tenants,
    redis: Option<&RedisConfig>,
    vars: &HashMap<String, String>,
) -> Result<AuthConfig, Invalid> {
    let at = [Segment::Key("auth".into())];
    let keys = match raw {
        None => {
            return Err((
                at.to_vec(),
                "required: list API keys under `auth: keys:`, or write `auth: none` to serve \
                 without keys (loopback or a trusted network only)"
                    .into(),
            ))
        }
        Some(RawAuth::None(n)) => {
            return Ok(AuthConfig::None {
                open_admin: n.open_admin.unwrap_or(false),
                allow_remote: n.allow_remote.unwrap_or(false),
            })
        }
        Some(RawAuth::Keys(k)) => k,
    };
    if keys.none.is_some() {
        return Err((
            key(&at, "none"),
            "`none:` serves without keys: it cannot stand beside `keys:` or `redis_keys:`".into(),
        ));
    }
    let redis_keys = keys.redis_keys.unwrap_or(false);
    if redis_keys && redis.is_none() {
        return Err((
            key(&at, "redis_keys"),
            "needs a `redis:` section (the keys live there)".into(),
        ));
    }
    let mut out: Vec<ConfigKey> = Vec::with_capacity(keys.keys.len());
    for (i, k) in keys.keys.into_iter().enumerate() {
        let at = [
            Segment::Key("auth".into()),
            Segment::Key("keys".into()),
            Segment::Index(i),
        ];
        out.push(validate_key(k, &at, tenants, vars, &out)?);
    }
    if out.is_empty() && !redis_keys {
        return Err((
            key(&at, "keys"),
            "no keys: list at least one, set `redis_keys: true`, or write `auth: none`".into(),
        ));
    }
    Ok(AuthConfig::Keys {
        keys: out,
        redis_keys,
    })
}

fn validate_key(
    k: RawKey,
    at: &[Segment],
    tenants: &Tenants,
    vars: &HashMap<String, String>,
    seen: &[ConfigKey],
) -> Result<ConfigKey, Invalid> {
    check_id(&k.id).map_err(|m| (key(at, "id"), m))?;
    if seen.iter().any(|s| s.id == k.id) {
        return Err((key(at, "id"), format!("duplicate key id `{}`", k.id)));
    }
    if k.key.is_some() {
        return Err((
            key(at, "key"),
            "keys are not written in the config in plain text: give `sha256:` (of the key) \
             or `key_env:` (a variable holding it)"
                .into(),
        ));
    }
    let sha256 = match (k.sha256, k.key_env) {
        (Some(_), Some(_)) => {
            return Err((
                key(at, "key_env"),
                "give `sha256` or `key_env`, not both".into(),
            ))
        }
        (None, None) => {
            return Err((at.to_vec(), "needs `sha256:` or `key_env:`".into()));
        }
        (Some(h), None) => {
            let h = h.to_ascii_lowercase();
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err((
                    key(at, "sha256"),
                    "must be 64 hex digits (`gatehouse keys hash` prints them)".into(),
                ));
            }
            h
        }
        (None, Some(var)) => match vars.get(&var) {
            Some(v) if !v.is_empty() => hash_key(v),
            _ => {
                return Err((
                    key(at, "key_env"),
                    format!("environment variable {var} is not set"),
                ))
            }
        },
    };
    if seen.iter().any(|s| s.sha256 == sha256) {
        return Err((key(at, "sha256"), "the same key is listed twice".into()));
    }
    if tenants.get(&k.tenant).is_none() {
        return Err((
            key(at, "tenant"),
            format!(
                "no tenant `{}` under tenants: (configured: {}; add it, or a `\"*\"` entry)",
                k.tenant,
                list(&tenants.ids())
            ),
        ));
    }
    let limits = match k.limits {
        None => RateLimits::default(),
        Some(l) => validate_limits(l, &key(at, "limits"))?,
    };
    Ok(ConfigKey {
        id: k.id,
        sha256,
        tenant: k.tenant,
        role: match k.role.unwrap_or(RawRole::User) {
            RawRole::User => KeyRole::User,
            RawRole::Admin => KeyRole::Admin,
        },
        limits,
    })
}

fn list(ids: &[&str]) -> String {
    if ids.is_empty() {
        "none".into()
    } else {
        ids.join(", ")
    }
}

/// Key ids and tenant ids: short, printable, no `:` (they become parts of Redis keys).
pub fn check_id(id: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{id}` must be 1-64 characters of letters, digits, `-`, `_`, `.`, `@`"
        ))
    }
}

pub(super) fn validate_tenants(
    raw: Option<BTreeMap<String, RawTenant>>,
    models: &[ModelConfig],
) -> Result<Tenants, Invalid> {
    let mut out = Tenants::default();
    for (id, t) in raw.unwrap_or_default() {
        let at = [Segment::Key("tenants".into()), Segment::Key(id.clone())];
        if id != "*" {
            check_id(&id).map_err(|m| (at.to_vec(), m))?;
        }
        if let Some(ms) = &t.models {
            for (i, m) in ms.iter().enumerate() {
                if !models.iter().any(|x| &x.id == m) {
                    let mut p = key(&at, "models");
                    p.push(Segment::Index(i));
                    return Err((p, format!("no model `{m}` under models:")));
                }
            }
        }
        let limits = match t.limits {
            None => RateLimits::default(),
            Some(l) => validate_limits(l, &key(&at, "limits"))?,
        };
        let cfg = Arc::new(TenantConfig {
            id: id.clone(),
            policy: t.policy,
            models: t.models,
            limits,
        });
        if id == "*" {
            out.fallback = Some(cfg);
        } else {
            out.by_id.insert(id, cfg);
        }
    }
    Ok(out)
}

fn validate_limits(l: RawLimits, at: &[Segment]) -> Result<RateLimits, Invalid> {
    let positive = |v: Option<u64>, name: &str| match v {
        Some(0) => Err((
            key(at, name),
            "must be greater than 0 (leave it out for no limit)".to_string(),
        )),
        _ => Ok(()),
    };
    positive(l.requests_per_minute.map(u64::from), "requests_per_minute")?;
    positive(l.burst.map(u64::from), "burst")?;
    positive(l.tokens_per_minute, "tokens_per_minute")?;
    positive(l.concurrent.map(u64::from), "concurrent")?;
    if l.burst.is_some() && l.requests_per_minute.is_none() {
        return Err((
            key(at, "burst"),
            "only with requests_per_minute".to_string(),
        ));
    }
    if l.requests_per_minute.is_some_and(|r| r > 6_000_000) {
        return Err((
            key(at, "requests_per_minute"),
            "at most 6000000 (100000 per second)".to_string(),
        ));
    }
    Ok(RateLimits {
        requests_per_minute: l.requests_per_minute,
        burst: l.burst,
        tokens_per_minute: l.tokens_per_minute,
        concurrent: l.concurrent,
    })
}

/// A Redis URL Gatehouse can use; the message never echoes it (it may carry a password).
fn check_url(path: &[Segment], url: &str) -> Result<(), Invalid> {
    let err = |m: &str| Err((path.to_vec(), m.to_string()));
    if url.starts_with("rediss://") {
        return err(
            "rediss:// (TLS) is not built in: reach Redis over a private network or a TLS \
             tunnel (stunnel, a service mesh) and use redis://",
        );
    }
    if !url.starts_with("redis://") {
        return err("must start with redis://");
    }
    match ::redis::Client::open(url) {
        Ok(_) => Ok(()),
        Err(e) => err(&format!("not a Redis URL: {}", e.category())),
    }
}

pub(super) fn validate_redis(
    raw: Option<RawRedis>,
    vars: &HashMap<String, String>,
) -> Result<Option<RedisConfig>, Invalid> {
    let Some(r) = raw else { return Ok(None) };
    let at = [Segment::Key("redis".into())];
    let mode = match r.mode {
        None | Some(RawRedisMode::Standalone) => RedisMode::Standalone,
        Some(RawRedisMode::Cluster) => RedisMode::Cluster,
    };
    let from_env = |var: &String| {
        vars.get(var).cloned().ok_or_else(|| {
            (
                key(&at, "url_env"),
                format!("environment variable {var} is not set"),
            )
        })
    };
    let nodes: Vec<(Vec<Segment>, String)> = match (mode, r.url, r.url_env, r.urls) {
        (_, Some(_), Some(_), _) => {
            return Err((
                key(&at, "url_env"),
                "give `url` or `url_env`, not both".into(),
            ))
        }
        (RedisMode::Standalone, _, _, Some(_)) => {
            return Err((
                key(&at, "urls"),
                "a list of nodes is for `mode: cluster`; one server takes `url`".into(),
            ))
        }
        (RedisMode::Cluster, Some(_), _, Some(_)) | (RedisMode::Cluster, _, Some(_), Some(_)) => {
            return Err((
                key(&at, "urls"),
                "give one of `url`, `url_env` and `urls`".into(),
            ))
        }
        (_, Some(u), None, None) => vec![(key(&at, "url"), u)],
        (RedisMode::Standalone, None, Some(var), None) => {
            vec![(key(&at, "url_env"), from_env(&var)?)]
        }
        // A cluster's seed nodes from one variable: comma-separated URLs.
        (RedisMode::Cluster, None, Some(var), None) => from_env(&var)?
            .split(',')
            .map(|u| (key(&at, "url_env"), u.trim().to_string()))
            .collect(),
        (RedisMode::Cluster, None, None, Some(urls)) if urls.is_empty() => {
            return Err((key(&at, "urls"), "list at least one seed node".into()))
        }
        (RedisMode::Cluster, None, None, Some(urls)) => urls
            .into_iter()
            .enumerate()
            .map(|(i, u)| {
                let mut path = key(&at, "urls");
                path.push(Segment::Index(i));
                (path, u)
            })
            .collect(),
        (_, None, None, None) => vec![(key(&at, "url"), "redis://127.0.0.1:6379".into())],
    };
    for (path, url) in &nodes {
        check_url(path, url)?;
    }
    let nodes = nodes.into_iter().map(|(_, u)| u).collect();
    let timeout = match r.timeout_ms.unwrap_or(250) {
        0 => return Err((key(&at, "timeout_ms"), "must be greater than 0".into())),
        ms => Duration::from_millis(ms),
    };
    let prefix = r.prefix.unwrap_or_else(|| "gatehouse".into());
    check_id(&prefix).map_err(|m| (key(&at, "prefix"), m))?;
    let fail = |m: Option<RawFailMode>, default: FailMode| match m {
        None => default,
        Some(RawFailMode::FailOpen) => FailMode::Open,
        Some(RawFailMode::FailClosed) => FailMode::Closed,
    };
    let e = r.on_error;
    let on_error = OnError {
        auth: fail(e.as_ref().and_then(|e| e.auth), FailMode::Closed),
        rate_limits: fail(e.as_ref().and_then(|e| e.rate_limits), FailMode::Open),
        cache: fail(e.as_ref().and_then(|e| e.cache), FailMode::Open),
        routing: fail(e.as_ref().and_then(|e| e.routing), FailMode::Open),
    };
    Ok(Some(RedisConfig {
        mode,
        nodes,
        timeout,
        prefix,
        on_error,
    }))
}

pub(super) fn validate_cache(
    raw: Option<RawCache>,
    redis: Option<&RedisConfig>,
) -> Result<Option<CacheConfig>, Invalid> {
    let Some(c) = raw else { return Ok(None) };
    let at = [Segment::Key("cache".into())];
    let store = match c.store.unwrap_or(RawCacheStore::Memory) {
        RawCacheStore::Memory => CacheStore::Memory,
        RawCacheStore::Redis if redis.is_none() => {
            return Err((key(&at, "store"), "`redis` needs a `redis:` section".into()))
        }
        RawCacheStore::Redis => CacheStore::Redis,
    };
    let positive = |v: Option<u64>, default: u64, name: &str| match v.unwrap_or(default) {
        0 => Err((key(&at, name), "must be greater than 0".to_string())),
        n => Ok(n),
    };
    Ok(Some(CacheConfig {
        store,
        ttl: Duration::from_secs(positive(c.ttl_secs, 600, "ttl_secs")?),
        max_entries: positive(c.max_entries.map(|v| v as u64), 10_000, "max_entries")? as usize,
        max_entry_bytes: positive(
            c.max_entry_bytes.map(|v| v as u64),
            256 * 1024,
            "max_entry_bytes",
        )? as usize,
        seeded: c.when.unwrap_or(RawCacheWhen::Deterministic) == RawCacheWhen::Deterministic,
    }))
}
