//! `gatehouse keys create|list|revoke|hash`: API keys stored in Redis.

use std::io::Read;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::{load, ConfigArg};
use crate::auth::keys::{generate_key, KeyRecord, KeysError, RedisKeys};
use crate::config::{check_id, Config, KeyRole, RateLimits};
use crate::kv::{Feature, Kv};

/// `gatehouse keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key for a tenant; the key is printed once and never stored.
    Create {
        #[command(flatten)]
        config: ConfigArg,
        /// Tenant (configured under `tenants:`, or covered by `"*"`).
        #[arg(long)]
        tenant: String,
        /// `user` (the API, own tenant) or `admin` (also the admin endpoints).
        #[arg(long, default_value = "user", value_parser = ["user", "admin"])]
        role: String,
        /// Key id (default: `key-` and 8 random hex digits).
        #[arg(long)]
        id: Option<String>,
        /// Who or what uses it.
        #[arg(long)]
        name: Option<String>,
        /// Requests per minute of this key (on top of the tenant's limits).
        #[arg(long)]
        requests_per_minute: Option<u32>,
        /// Requests at once above the sustained rate (with --requests-per-minute).
        #[arg(long, requires = "requests_per_minute")]
        burst: Option<u32>,
        /// Tokens per minute of this key.
        #[arg(long)]
        tokens_per_minute: Option<u64>,
        /// Requests in flight at once for this key.
        #[arg(long)]
        concurrent: Option<u32>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the keys in Redis (ids, tenants, roles, limits; never the keys).
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id: requests with it get 401 from the next one on.
    Revoke {
        #[command(flatten)]
        config: ConfigArg,
        /// Key id.
        id: String,
    },
    /// Print the SHA-256 of a key read from stdin, for `auth.keys[].sha256`.
    Hash,
}

fn fail(msg: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("gatehouse: {msg}");
    ExitCode::from(code)
}

/// The keys store of the config at `arg`.
fn open(arg: &ConfigArg) -> Result<RedisKeys, ExitCode> {
    store(&load(arg)?)
}

fn store(cfg: &Config) -> Result<RedisKeys, ExitCode> {
    let Some(rc) = &cfg.redis else {
        return Err(fail(
            format!(
                "{}: keys are kept in Redis: add a `redis:` section (and `auth: redis_keys: true`); \
                 a single process can list `sha256:` digests under `auth: keys:` instead \
                 (`gatehouse keys hash`)",
                cfg.source.display()
            ),
            2,
        ));
    };
    let kv = Kv::new(rc, None).map_err(|e| fail(e, 1))?;
    Ok(RedisKeys::new(kv, Feature::Cli))
}

/// Runs a `keys` subcommand.
pub async fn run(cmd: KeysCommand) -> ExitCode {
    match cmd {
        KeysCommand::Hash => {
            let mut key = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut key) {
                return fail(format!("cannot read stdin: {e}"), 1);
            }
            if key.trim().is_empty() {
                return fail("no key on stdin", 2);
            }
            println!("{}", crate::auth::hash_key(&key));
            ExitCode::SUCCESS
        }
        KeysCommand::Create {
            config,
            tenant,
            role,
            id,
            name,
            requests_per_minute,
            burst,
            tokens_per_minute,
            concurrent,
            json,
        } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if let Err(m) = check_id(&tenant) {
                return fail(format!("--tenant: {m}"), 2);
            }
            if cfg.tenants.get(&tenant).is_none() {
                let ids = cfg.tenants.ids();
                return fail(
                    format!(
                        "no tenant `{tenant}` under tenants: in {} (configured: {}); requests with the key would be refused",
                        cfg.source.display(),
                        if ids.is_empty() { "none".to_string() } else { ids.join(", ") }
                    ),
                    2,
                );
            }
            let id = id.unwrap_or_else(|| {
                format!("key-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
            });
            if let Err(m) = check_id(&id) {
                return fail(format!("--id: {m}"), 2);
            }
            let limits = RateLimits {
                requests_per_minute,
                burst,
                tokens_per_minute,
                concurrent,
            };
            if [
                requests_per_minute.map(u64::from),
                burst.map(u64::from),
                tokens_per_minute,
                concurrent.map(u64::from),
            ]
            .contains(&Some(0))
            {
                return fail(
                    "limits must be greater than 0 (leave one out for no limit)",
                    2,
                );
            }
            let store = match store(&cfg) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let record = KeyRecord {
                id,
                tenant,
                role: if role == "admin" {
                    KeyRole::Admin
                } else {
                    KeyRole::User
                },
                limits,
                name,
                created_at: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            };
            let key = generate_key();
            match store.create(&key, &record).await {
                Ok(()) => {
                    if json {
                        let mut v = json!(record);
                        v["key"] = json!(key);
                        println!("{v}");
                    } else {
                        println!("{key}");
                        eprintln!(
                            "created key `{}` for tenant `{}` ({}); it is shown only now",
                            record.id,
                            record.tenant,
                            record.role.as_str()
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e @ KeysError::DuplicateId(_)) => fail(e, 2),
                Err(e) => fail(e, 1),
            }
        }
        KeysCommand::List { config, json } => {
            let store = match open(&config) {
                Ok(s) => s,
                Err(code) => return code,
            };
            match store.list().await {
                Ok(list) if json => {
                    println!("{}", json!(list));
                    ExitCode::SUCCESS
                }
                Ok(list) => {
                    println!("ID\tTENANT\tROLE\tCREATED\tLIMITS\tNAME");
                    for r in list {
                        println!(
                            "{}\t{}\t{}\t{}\t{}\t{}",
                            r.id,
                            r.tenant,
                            r.role.as_str(),
                            r.created_at,
                            describe_limits(&r.limits),
                            r.name.unwrap_or_default()
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e, 1),
            }
        }
        KeysCommand::Revoke { config, id } => {
            let store = match open(&config) {
                Ok(s) => s,
                Err(code) => return code,
            };
            match store.revoke(&id).await {
                Ok(r) => {
                    println!("revoked key `{}` of tenant `{}`", r.id, r.tenant);
                    ExitCode::SUCCESS
                }
                Err(e @ KeysError::NoSuchId(_)) => fail(e, 2),
                Err(e) => fail(e, 1),
            }
        }
    }
}

/// `rpm=60 burst=6 tpm=1000 concurrent=2`, or `-`.
fn describe_limits(l: &RateLimits) -> String {
    let parts: Vec<String> = [
        l.requests_per_minute.map(|v| format!("rpm={v}")),
        l.burst.map(|v| format!("burst={v}")),
        l.tokens_per_minute.map(|v| format!("tpm={v}")),
        l.concurrent.map(|v| format!("concurrent={v}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" ")
    }
}
