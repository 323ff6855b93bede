//! Configuration: strict YAML parsing, environment overrides, validation into runtime types.
//!
//! Errors name the file, the key path and the line (`config/gatehouse.yaml:18: models[0].path: ...`).

mod env;
mod fleet;
pub mod locate;
mod models;
mod observe;
mod rag;
mod raw;
mod tools;

pub use fleet::{
    check_id, hash_key, AuthConfig, CacheConfig, CacheStore, ConfigKey, FailMode, KeyRole, OnError,
    RateLimits, RedisConfig, RedisMode, TenantConfig, Tenants,
};
pub use models::{
    BackendConfig, LocalEmbeddingConfig, LocalModelConfig, ModelConfig, RemoteModelConfig,
    RoutingPolicy, LOCAL_BATCH, MAX_LOCAL_BATCH,
};
pub use observe::{
    AuditConfig, DriftConfig, DriftEmbeddings, OnFull, TelemetryConfig, MIN_HMAC_KEY_BYTES,
};
pub use rag::{valid_collection_name, ChunkSize, RagConfig, SearchMode, StoreConfig};
pub use tools::{normalise_prefix, HttpGetConfig, ToolsConfig};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use locate::Segment;
use raw::{RawConfig, RawWatchedDir};

/// A configuration error; `Display` gives `file:line: key: message`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The config file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key is malformed, missing, unknown or has an invalid value.
    #[error("{file}{}: {key}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The config file.
        file: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// Key path such as `models[0].path`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub source: PathBuf,
    /// HTTP server settings.
    pub server: ServerConfig,
    /// Served models, in file order.
    pub models: Vec<ModelConfig>,
    /// Guardrail policies; `None` turns guardrails off.
    pub policies: Option<WatchedDir>,
    /// Prompt templates; `None` turns templates off.
    pub prompts: Option<WatchedDir>,
    /// Server-side tools; none when the config has no `tools:`.
    pub tools: ToolsConfig,
    /// Retrieval; `None` turns it off.
    pub rag: Option<RagConfig>,
    /// API keys, or `auth: none`.
    pub auth: AuthConfig,
    /// Tenants: policy, models and limits.
    pub tenants: Tenants,
    /// Shared state of the replicas; `None` keeps everything in this process.
    pub redis: Option<RedisConfig>,
    /// The response cache; `None` turns it off.
    pub cache: Option<CacheConfig>,
    /// The audit log; `None` turns it off.
    pub audit: Option<AuditConfig>,
    /// Tracing export.
    pub telemetry: TelemetryConfig,
    /// Drift monitoring; `None` turns it off.
    pub drift: Option<DriftConfig>,
}

/// `policies:` and `prompts:` settings: a directory of files, reloaded when it changes.
#[derive(Debug, Clone)]
pub struct WatchedDir {
    /// The directory.
    pub dir: PathBuf,
    /// Reload when the directory changes.
    pub watch: bool,
    /// How often the directory is checked for changes.
    pub poll_interval: Duration,
}

/// `server:` settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Address of the gRPC API's own listener; `None` (the default) serves no gRPC.
    pub grpc_listen: Option<SocketAddr>,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// Time allowed until response headers.
    pub request_timeout: Duration,
    /// Requests in flight before new ones get 503.
    pub max_in_flight: usize,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_grace: Duration,
    /// The URL browsers use to reach the gateway (behind a proxy); an `https://` one makes
    /// the review page's cookies `Secure`.
    pub public_url: Option<String>,
    /// Connection limits of both listeners.
    pub connections: ConnectionLimits,
}

/// Per-connection limits of both listeners (`server:`).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time a client has to send a request's headers; for HTTP/1 also how long an idle
    /// keep-alive connection is kept.
    pub header_read_timeout: Duration,
    /// Largest request head (HTTP/1) or header list (HTTP/2).
    pub max_header_bytes: usize,
    /// Connections open at once; past it the listener stops accepting until one closes.
    pub max_connections: usize,
}

/// Default config path, relative to the working directory.
pub const DEFAULT_PATH: &str = "config/gatehouse.yaml";

impl Config {
    /// Reads, overrides from the process environment, and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        Self::from_str_with_env(&src, path, std::env::vars())
    }

    /// Parses `src` as if read from `path`, with `vars` as the environment.
    pub fn from_str_with_env(
        src: &str,
        path: &Path,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let invalid = |path: &[Segment], message: String| ConfigError::Invalid {
            file: file.clone(),
            line: locate::line_of(src, path),
            key: if path.is_empty() {
                "(root)".into()
            } else {
                locate::render(path)
            },
            message,
        };
        // Parse the file alone first, so its own mistakes are reported with serde's positions.
        let mut raw: RawConfig = deserialize(serde_yaml::Deserializer::from_str(src), &file)?;
        // One read of the environment serves both the overrides and the API keys.
        let vars: HashMap<String, String> = vars.into_iter().collect();
        let overrides = env::collect(vars.clone());
        if !overrides.is_empty() {
            let mut tree: serde_yaml::Value =
                serde_yaml::from_str(src).map_err(|e| invalid(&[], e.to_string()))?;
            for ov in &overrides {
                env::apply(&mut tree, ov).map_err(|m| invalid(&ov.path, m))?;
            }
            let vars: Vec<&str> = overrides.iter().map(|o| o.var.as_str()).collect();
            raw = deserialize(tree, &format!("{file} (with {})", vars.join(", ")))?;
        }
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut config = validate(raw, &base, &vars).map_err(|(p, m)| invalid(&p, m))?;
        config.source = path.to_path_buf();
        Ok(config)
    }

    /// The model entry with this id.
    pub fn model(&self, id: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|m| m.id == id)
    }
}

fn deserialize<'de, D>(de: D, file: &str) -> Result<RawConfig, ConfigError>
where
    D: serde::Deserializer<'de, Error = serde_yaml::Error>,
{
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let line = inner.location().map(|l| l.line());
        // serde_yaml appends " at line N column M"; the line is already in the prefix.
        let mut message = inner.to_string();
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        // ... and prefixes its own (shorter) path, which `key` already gives in full.
        if let Some((prefix, rest)) = message.split_once(": ") {
            if !prefix.contains(' ') {
                message = rest.to_string();
            }
        }
        ConfigError::Invalid {
            file: file.to_string(),
            line,
            key,
            message,
        }
    })
}

type Invalid = (Vec<Segment>, String);

fn key(parts: &[Segment], k: &str) -> Vec<Segment> {
    let mut p = parts.to_vec();
    p.push(Segment::Key(k.into()));
    p
}

fn validate(
    raw: RawConfig,
    base: &Path,
    vars: &HashMap<String, String>,
) -> Result<Config, Invalid> {
    let server_path = [Segment::Key("server".into())];
    let s = raw.server;
    let listen_raw = s.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen = listen_raw.parse::<SocketAddr>().map_err(|e| {
        (
            key(&server_path, "listen"),
            format!("`{listen_raw}` is not HOST:PORT with an IP host: {e}"),
        )
    })?;
    let grpc_listen = match s.grpc_listen {
        None => None,
        Some(raw) => Some(raw.parse::<SocketAddr>().map_err(|e| {
            (
                key(&server_path, "grpc_listen"),
                format!("`{raw}` is not HOST:PORT with an IP host: {e}"),
            )
        })?),
    };
    if grpc_listen.is_some_and(|g| g == listen && g.port() != 0) {
        return Err((
            key(&server_path, "grpc_listen"),
            format!("`{listen}` is already `server.listen`: gRPC needs a port of its own"),
        ));
    }
    let positive = |v: Option<u64>, default: u64, name: &str| -> Result<u64, Invalid> {
        match v.unwrap_or(default) {
            0 => Err((key(&server_path, name), "must be greater than 0".into())),
            n => Ok(n),
        }
    };
    let server = ServerConfig {
        listen,
        grpc_listen,
        body_limit_bytes: positive(s.body_limit_bytes, 1 << 20, "body_limit_bytes")? as usize,
        request_timeout: Duration::from_secs(positive(
            s.request_timeout_secs,
            300,
            "request_timeout_secs",
        )?),
        max_in_flight: positive(s.max_in_flight.map(|v| v as u64), 256, "max_in_flight")? as usize,
        shutdown_grace: Duration::from_secs(s.shutdown_grace_secs.unwrap_or(30)),
        connections: ConnectionLimits {
            header_read_timeout: Duration::from_secs(positive(
                s.header_read_timeout_secs,
                30,
                "header_read_timeout_secs",
            )?),
            max_header_bytes: positive(s.max_header_bytes, 64 * 1024, "max_header_bytes")? as usize,
            max_connections: positive(
                s.max_connections.map(|v| v as u64),
                10_000,
                "max_connections",
            )? as usize,
        },
        public_url: match s.public_url {
            None => None,
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                Some(u.trim_end_matches('/').to_string())
            }
            Some(u) => {
                return Err((
                    key(&server_path, "public_url"),
                    format!("`{u}` is not an http:// or https:// URL"),
                ))
            }
        },
    };
    if raw.models.is_empty() {
        return Err((
            vec![Segment::Key("models".into())],
            "at least one model is required".into(),
        ));
    }
    let mut models = Vec::with_capacity(raw.models.len());
    for (i, m) in raw.models.into_iter().enumerate() {
        let at = [Segment::Key("models".into()), Segment::Index(i)];
        if models.iter().any(|x: &ModelConfig| x.id == m.id) {
            return Err((key(&at, "id"), format!("duplicate model id `{}`", m.id)));
        }
        models.push(models::validate_model(m, &at, base, vars)?);
    }
    let policies = watched_dir(raw.policies, "policies", base)?;
    let prompts = watched_dir(raw.prompts, "prompts", base)?;
    let tools = match raw.tools {
        None => ToolsConfig::default(),
        Some(t) => tools::validate_tools(t)?,
    };
    let rag = match raw.rag {
        None => None,
        Some(r) => Some(rag::validate_rag(r, &models, base, vars)?),
    };
    let redis = fleet::validate_redis(raw.redis, vars)?;
    let tenants = fleet::validate_tenants(raw.tenants, &models)?;
    let auth = fleet::validate_auth(raw.auth, &tenants, redis.as_ref(), vars)?;
    for (name, addr) in [("listen", Some(listen)), ("grpc_listen", grpc_listen)] {
        if let Some(a) = addr {
            auth.check_listen(a)
                .map_err(|m| (key(&server_path, name), m))?;
        }
    }
    let cache = fleet::validate_cache(raw.cache, redis.as_ref())?;
    let audit = observe::validate_audit(raw.audit, base, vars)?;
    let telemetry = observe::validate_telemetry(raw.telemetry)?;
    let drift = observe::validate_drift(raw.drift, &models, base)?;
    Ok(Config {
        source: PathBuf::new(),
        server,
        models,
        policies,
        prompts,
        tools,
        rag,
        auth,
        tenants,
        redis,
        cache,
        audit,
        telemetry,
        drift,
    })
}

fn watched_dir(
    raw: Option<RawWatchedDir>,
    section: &str,
    base: &Path,
) -> Result<Option<WatchedDir>, (Vec<Segment>, String)> {
    let Some(p) = raw else { return Ok(None) };
    let at = [Segment::Key(section.into())];
    let dir = base.join(&p.dir);
    if !dir.is_dir() {
        return Err((
            key(&at, "dir"),
            format!("{} is not a directory", dir.display()),
        ));
    }
    let ms = p.poll_interval_ms.unwrap_or(1000);
    if ms == 0 {
        return Err((
            key(&at, "poll_interval_ms"),
            "must be greater than 0".into(),
        ));
    }
    Ok(Some(WatchedDir {
        dir,
        watch: p.watch.unwrap_or(true),
        poll_interval: Duration::from_millis(ms),
    }))
}

#[cfg(test)]
mod tests;
