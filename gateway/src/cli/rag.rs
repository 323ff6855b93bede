//! `gatehouse rag ingest|search|collections|delete`: the document owner's workflow, straight
//! on the configured store (a server holding the edge data directory makes these refuse;
//! use its HTTP API then).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Subcommand;

use super::{load, ConfigArg};
use crate::backends::embedding::EmbeddingBackend;
use crate::backends::Backend;
use crate::config::{Config, SearchMode};
use crate::rag::{open_store, Rag, DEFAULT_TENANT};

/// `gatehouse rag ...`.
#[derive(Debug, Subcommand)]
pub enum RagCommand {
    /// Ingest Markdown, text and HTML files (directories recursively). Re-ingesting is a
    /// no-op for unchanged chunks; chunks and files that disappeared are deleted.
    Ingest {
        #[command(flatten)]
        config: ConfigArg,
        /// Files and directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Collection to write to (created if missing).
        #[arg(long)]
        collection: String,
        /// Tenant owning the chunks.
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the chunks nearest to a query, with score and source.
    Search {
        #[command(flatten)]
        config: ConfigArg,
        /// The query.
        query: String,
        /// Collection to search.
        #[arg(long)]
        collection: String,
        /// Tenant whose chunks are searched.
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
        /// Chunks to show.
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        /// Hide chunks scoring below this cosine similarity (the dense side, in hybrid mode).
        #[arg(long)]
        threshold: Option<f32>,
        /// dense (embedding only) or hybrid (embedding and keywords fused; scores are then
        /// fused scores, not cosines).
        #[arg(long, default_value = "hybrid")]
        mode: SearchMode,
        /// Print JSON lines: {"rank","score","source","chunk","title","text"}.
        #[arg(long)]
        json: bool,
    },
    /// List the collections with their dimension and point count.
    Collections {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Delete every chunk of the named sources.
    Delete {
        #[command(flatten)]
        config: ConfigArg,
        /// Source names as ingested (the paths `rag search` shows).
        #[arg(required = true)]
        sources: Vec<String>,
        /// Collection to delete from.
        #[arg(long)]
        collection: String,
        /// Tenant owning the chunks.
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("gatehouse: {message}");
    ExitCode::FAILURE
}

/// Runs a `rag` subcommand.
pub async fn run(cmd: RagCommand) -> ExitCode {
    let config = match &cmd {
        RagCommand::Ingest { config, .. }
        | RagCommand::Search { config, .. }
        | RagCommand::Collections { config }
        | RagCommand::Delete { config, .. } => config,
    };
    let cfg = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(rag_cfg) = cfg.rag.clone() else {
        return fail(format!(
            "{}: no `rag:` section: retrieval is off",
            cfg.source.display()
        ));
    };
    let store = match tokio::task::spawn_blocking(move || open_store(&rag_cfg)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return fail(e),
        Err(e) => return fail(e),
    };
    match cmd {
        RagCommand::Collections { .. } => match store.collections().await {
            Ok(list) if list.is_empty() => {
                println!("no collections");
                ExitCode::SUCCESS
            }
            Ok(list) => {
                let (name, dim, points, indexed) = ("COLLECTION", "DIM", "POINTS", "INDEXED");
                println!("{name:<32} {dim:>6} {points:>10} {indexed:>10}");
                for c in list {
                    let (name, dim, points, indexed) = (c.name, c.dim, c.points, c.indexed);
                    println!("{name:<32} {dim:>6} {points:>10} {indexed:>10}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        RagCommand::Delete {
            sources,
            collection,
            tenant,
            ..
        } => {
            let mut total = 0;
            for s in &sources {
                match store.delete_source(&collection, &tenant, s).await {
                    Ok(n) => {
                        println!("{s}: {n} chunks deleted");
                        total += n;
                    }
                    Err(e) => return fail(e),
                }
            }
            if total == 0 {
                eprintln!("gatehouse: nothing matched (tenant `{tenant}`)");
            }
            ExitCode::SUCCESS
        }
        RagCommand::Ingest {
            paths,
            collection,
            tenant,
            json,
            ..
        } => {
            let rag = match with_model(&cfg, store).await {
                Ok(r) => r,
                Err(code) => return code,
            };
            ingest(&rag, &paths, &collection, &tenant, json).await
        }
        RagCommand::Search {
            query,
            collection,
            tenant,
            top_k,
            threshold,
            mode,
            json,
            ..
        } => {
            let rag = match with_model(&cfg, store).await {
                Ok(r) => r,
                Err(code) => return code,
            };
            let lookup = Lookup {
                query: &query,
                collection: &collection,
                tenant: &tenant,
                mode,
                top_k,
                threshold,
            };
            search(&rag, &lookup, json).await
        }
    }
}

/// Loads the embedding model `rag.embedding_model` names.
async fn with_model(
    cfg: &Config,
    store: Arc<dyn crate::rag::store::VectorStore>,
) -> Result<Rag, ExitCode> {
    let rag_cfg = cfg.rag.clone().expect("checked by the caller");
    let model = cfg
        .model(&rag_cfg.embedding_model)
        .expect("config validation checks the embedding model");
    match crate::models::load_backend(model).await {
        Ok(Backend::Embedding(e)) => Ok(Rag::with_model(
            rag_cfg,
            store,
            Arc::new(EmbeddingBackend::new(e.model().clone())),
        )),
        Ok(_) => Err(fail(format!("`{}` is not an embedding model", model.id))),
        Err(e) => Err(fail(format!("cannot load `{}`: {e}", model.id))),
    }
}

async fn ingest(
    rag: &Rag,
    paths: &[PathBuf],
    collection: &str,
    tenant: &str,
    json: bool,
) -> ExitCode {
    let started = Instant::now();
    // Drawn on stderr only when it is a terminal: logs and pipes get the summary alone.
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{bar:30}] {pos}/{len} files  {elapsed_precise}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let result = rag.ingest_paths(collection, tenant, paths, &progress).await;
    bar.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let secs = started.elapsed().as_secs_f64();
    if json {
        let mut v = serde_json::to_value(&report).expect("plain struct");
        v["collection"] = collection.into();
        v["tenant"] = tenant.into();
        v["seconds"] = serde_json::json!((secs * 1000.0).round() / 1000.0);
        println!("{v}");
    } else {
        println!(
            "{collection} (tenant {tenant}): {} files, {} chunks: {} written, {} unchanged, {} deleted in {secs:.1} s",
            report.files, report.chunks, report.written, report.unchanged, report.deleted
        );
        for s in &report.skipped {
            println!("skipped (not Markdown, text or HTML): {s}");
        }
    }
    ExitCode::SUCCESS
}

/// What `rag search` looks for.
struct Lookup<'a> {
    query: &'a str,
    collection: &'a str,
    tenant: &'a str,
    mode: SearchMode,
    top_k: usize,
    threshold: Option<f32>,
}

async fn search(rag: &Rag, l: &Lookup<'_>, json: bool) -> ExitCode {
    if l.top_k == 0 {
        return fail("--top-k must be at least 1");
    }
    let hits = rag.search(
        l.collection,
        l.tenant,
        l.query,
        l.mode,
        l.top_k,
        l.threshold,
    );
    let hits = match hits.await {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    if hits.is_empty() && !json {
        println!("no chunks (tenant {})", l.tenant);
    }
    for (i, h) in hits.iter().enumerate() {
        let p = &h.payload;
        if json {
            let line = serde_json::json!({
                "rank": i + 1, "score": h.score, "source": p.source, "chunk": p.chunk,
                "title": p.title, "text": p.text,
            });
            println!("{line}");
        } else {
            let title = p
                .title
                .as_deref()
                .map(|t| format!("  {t}"))
                .unwrap_or_default();
            println!(
                "{:>2}. {:.3}  {}#{}{title}",
                i + 1,
                h.score,
                p.source,
                p.chunk
            );
            let flat: String = p.text.split_whitespace().collect::<Vec<_>>().join(" ");
            let cut: String = flat.chars().take(240).collect();
            let more = if cut.len() < flat.len() { "..." } else { "" };
            println!("    {cut}{more}");
        }
    }
    ExitCode::SUCCESS
}
