//! The `gatehouse` command line.

mod audit;
mod batch;
mod chat;
mod drift;
mod keys;
pub mod policy;
mod rag;
pub mod template;
mod train_semantic;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{BackendConfig, Config, DEFAULT_PATH};

/// Gatehouse: an OpenAI-compatible LLM gateway with guardrails.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--config PATH`, shared by every subcommand.
#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// Configuration file.
    #[arg(long, short = 'c', default_value = DEFAULT_PATH, env = "GATEHOUSE_CONFIG")]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the OpenAI-compatible API.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Address to listen on (overrides server.listen); port 0 picks a free port.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Also serve the gRPC API on this address (overrides server.grpc_listen).
        #[arg(long)]
        grpc_listen: Option<std::net::SocketAddr>,
    },
    /// One-shot chat: stream the answer to a prompt to stdout.
    Chat(chat::ChatArgs),
    /// List the configured models.
    Models {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Guardrail policy commands: check, test, explain.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Run a file of records through a template (policies and structured output apply).
    Batch(batch::BatchArgs),
    /// Prompt template commands: check, list, render.
    Template {
        #[command(subcommand)]
        command: template::TemplateCommand,
    },
    /// Retrieval commands: ingest, search, collections, delete.
    Rag {
        #[command(subcommand)]
        command: rag::RagCommand,
    },
    /// API keys kept in Redis: create, list, revoke; hash for config-file keys.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// The audit log: tail, search, stats, verify, export.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Drift of traffic between two ranges of the audit log: report.
    Drift {
        #[command(subcommand)]
        command: drift::DriftCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Parse and validate the configuration; print a summary.
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
}

fn init_tracing() {
    crate::telemetry::init_logs();
}

fn load(arg: &ConfigArg) -> Result<Config, ExitCode> {
    Config::load(&arg.config).map_err(|e| {
        eprintln!("gatehouse: {e}");
        ExitCode::from(2)
    })
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gatehouse: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve {
            config,
            listen,
            grpc_listen,
        } => {
            let mut cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => {
                    init_tracing();
                    return code;
                }
            };
            if let Some(l) = listen {
                cfg.server.listen = l;
            }
            if grpc_listen.is_some() {
                cfg.server.grpc_listen = grpc_listen;
            }
            // Inside the runtime: the OTLP exporter's gRPC channel lives on it.
            let telemetry = match rt.block_on(async { crate::telemetry::init(&cfg.telemetry) }) {
                Ok(t) => t,
                Err(e) => {
                    init_tracing();
                    eprintln!("gatehouse: cannot start: {e}");
                    return ExitCode::from(2);
                }
            };
            let code = rt.block_on(serve(cfg));
            // Blocking: exports the spans still buffered (outside the runtime's threads).
            telemetry.shutdown();
            code
        }
        Command::Chat(args) => rt.block_on(chat::run(args)),
        Command::Policy { command } => policy::run(command),
        Command::Template { command } => template::run(command),
        Command::Rag { command } => {
            init_tracing();
            rt.block_on(rag::run(command))
        }
        Command::Keys { command } => rt.block_on(keys::run(command)),
        Command::Audit { command } => audit::run(command),
        Command::Drift { command } => drift::run(command),
        Command::Batch(args) => {
            init_tracing();
            rt.block_on(batch::run(args))
        }
        Command::Models { config } => match load(&config) {
            Ok(cfg) => {
                for m in &cfg.models {
                    println!("{}", describe(m));
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Config {
            command: ConfigCommand::Check { config },
        } => match load(&config) {
            Ok(cfg) => {
                println!("{}: ok", config.config.display());
                println!("listen: {}", cfg.server.listen);
                for m in &cfg.models {
                    println!("model {}", describe(m));
                }
                match crate::app::load_stores(&cfg) {
                    Ok(stores) => {
                        match stores.policies {
                            Some(store) => {
                                let set = store.current();
                                println!(
                                    "policies {} ({} files, version {})",
                                    set.dir.display(),
                                    set.policies.len(),
                                    set.short_version()
                                );
                            }
                            None => println!("policies off"),
                        }
                        match stores.templates {
                            Some(store) => {
                                let set = store.current();
                                println!(
                                    "prompts {} ({} templates)",
                                    set.dir.display(),
                                    set.templates.values().map(|v| v.len()).sum::<usize>()
                                );
                            }
                            None => println!("prompts off"),
                        }
                        println!("{}", describe_fleet(&cfg));
                        match &cfg.rag {
                            Some(r) => println!(
                                "rag {} with {} (chunks of {} tokens, {} overlap)",
                                match &r.store {
                                    crate::config::StoreConfig::Edge { data_dir } =>
                                        format!("edge {}", data_dir.display()),
                                    crate::config::StoreConfig::Qdrant { url, .. } =>
                                        format!("qdrant {url}"),
                                },
                                r.embedding_model,
                                r.chunk.max_tokens,
                                r.chunk.overlap_tokens
                            ),
                            None => println!("rag off"),
                        }
                        match &cfg.audit {
                            Some(a) => println!(
                                "audit {} (on_full {}, checkpoints {})",
                                a.dir.display(),
                                a.on_full.as_str(),
                                if a.hmac_key.is_some() {
                                    "signed"
                                } else {
                                    "unsigned"
                                }
                            ),
                            None => println!("audit off"),
                        }
                        match &cfg.telemetry.otlp_endpoint {
                            Some(e) => println!(
                                "traces to {e} (service {}, sample ratio {})",
                                cfg.telemetry.service_name, cfg.telemetry.sample_ratio
                            ),
                            None => println!("traces not exported"),
                        }
                        ExitCode::SUCCESS
                    }
                    Err(errors) => {
                        eprintln!("{errors}");
                        ExitCode::from(2)
                    }
                }
            }
            Err(code) => code,
        },
    }
}

/// `auth ...; redis ...; cache ...` for `config check`.
fn describe_fleet(cfg: &Config) -> String {
    use crate::config::{AuthConfig, CacheStore};
    let auth = match &cfg.auth {
        AuthConfig::None {
            open_admin,
            allow_remote,
        } => format!(
            "auth none (no API keys; admin endpoints {}; {})",
            if *open_admin { "open" } else { "closed" },
            if *allow_remote {
                "any address allowed"
            } else {
                "loopback only"
            }
        ),
        AuthConfig::Keys { keys, redis_keys } => format!(
            "auth {} config key(s){}, {} tenant(s)",
            keys.len(),
            if *redis_keys { " + keys in redis" } else { "" },
            cfg.tenants.ids().len()
        ),
    };
    let redis = match &cfg.redis {
        // Host only: the URL may carry a password.
        Some(r) => format!(
            "redis {}{} (prefix {}, timeout {:?})",
            if r.mode == crate::config::RedisMode::Cluster {
                "cluster "
            } else {
                ""
            },
            r.nodes
                .iter()
                .map(|u| u.rsplit('@').next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", "),
            r.prefix,
            r.timeout
        ),
        None => "redis off (limits and cache in this process)".to_string(),
    };
    let cache = match &cfg.cache {
        Some(c) => format!(
            "cache {} (ttl {}s, {} entries)",
            if c.store == CacheStore::Redis {
                "redis"
            } else {
                "memory"
            },
            c.ttl.as_secs(),
            c.max_entries
        ),
        None => "cache off".to_string(),
    };
    format!("{auth}\n{redis}\n{cache}")
}

fn describe(m: &crate::config::ModelConfig) -> String {
    let mut s = describe_backend(m);
    if !m.replicas.is_empty() {
        s += &format!(
            "\t+{} backend(s), routing {}",
            m.replicas.len(),
            m.routing.as_str()
        );
    }
    s
}

fn describe_backend(m: &crate::config::ModelConfig) -> String {
    match &m.backend {
        BackendConfig::Local(l) => {
            let mut s = format!("{}\tlocal\t{}\t{:?}", m.id, l.path.display(), l.dtype);
            if let Some(d) = &l.draft {
                s += &format!(
                    "\tdraft {} gamma {} speculative {}",
                    d.path.display(),
                    d.gamma,
                    format!("{:?}", d.mode).to_lowercase()
                );
            }
            s
        }
        BackendConfig::LocalEmbedding(e) => {
            format!("{}\tlocal\t{}\tembedding", m.id, e.dir.display())
        }
        BackendConfig::Remote(r) => {
            format!("{}\tremote\t{}\t{}", m.id, r.base_url, r.upstream_model)
        }
    }
}

async fn serve(cfg: Config) -> ExitCode {
    // Before binding, so that scripts waiting for the address line see the failure instead.
    let mut stores = match crate::app::load_stores(&cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gatehouse: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    stores.vectors = match crate::app::open_vectors(&cfg) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("gatehouse: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    stores.audit = match crate::app::open_audit(&cfg) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gatehouse: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(cfg.server.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("gatehouse: cannot listen on {}: {e}", cfg.server.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let server = match crate::server::start_with(cfg, listener, stores) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gatehouse: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Machine-readable: tests and scripts that bind port 0 read the addresses from these
    // lines, HTTP first.
    println!("gatehouse listening on http://{addr}");
    if let Some(grpc) = server.grpc_addr {
        println!("gatehouse gRPC listening on {grpc}");
    }
    crate::server::shutdown_signal().await;
    server.shutdown();
    match server.wait().await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gatehouse: server error: {e}");
            ExitCode::FAILURE
        }
    }
}
