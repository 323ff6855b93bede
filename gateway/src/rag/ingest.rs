//! Ingestion: files → chunks → vectors → the store, idempotently. A chunk whose id (tenant,
//! source, position, content hash) is already stored is neither embedded nor written again;
//! chunks a source no longer has, and sources that disappeared from an ingested directory,
//! are deleted.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use super::chunk::ChunkSize;
use super::documents::{collect, prepare, read, source_name, Format, Prepared, SourceError};
use super::store::{point_id, ChunkPayload, ChunkPoint, StoreError, VectorStore};

/// Errors that stop an ingestion.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A source could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The embedding model failed.
    #[error("embedding failed: {0}")]
    Embedding(String),
}

/// What an ingestion did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Files read.
    pub files: usize,
    /// Chunks the files make.
    pub chunks: usize,
    /// Chunks embedded and written (new or changed).
    pub written: usize,
    /// Chunks already stored unchanged.
    pub unchanged: usize,
    /// Stored chunks deleted (gone from their source, or their source gone).
    pub deleted: usize,
    /// Files named explicitly that are not Markdown, text or HTML.
    pub skipped: Vec<String>,
}

/// Embeds texts; the embedding model behind a blocking-safe call.
pub type EmbedFn<'a> = dyn Fn(Vec<String>) -> futures::future::BoxFuture<'a, Result<Vec<Vec<f32>>, String>>
    + Send
    + Sync
    + 'a;

/// Ingests `paths` into `collection` for `tenant`. `count` is the embedding tokenizer's
/// token count; `progress(done_files, total_files)` is called after each file.
#[allow(clippy::too_many_arguments)]
pub async fn ingest(
    store: &dyn VectorStore,
    embed: &EmbedFn<'_>,
    dim: usize,
    collection: &str,
    tenant: &str,
    paths: &[PathBuf],
    size: ChunkSize,
    count: &(dyn Fn(&str) -> usize + Sync),
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<IngestReport, IngestError> {
    store.ensure_collection(collection, dim).await?;
    let (files, unknown) = collect(paths)?;
    let mut report = IngestReport {
        files: files.len(),
        skipped: unknown.iter().map(|p| p.display().to_string()).collect(),
        ..Default::default()
    };
    // What the store holds for this tenant, by source.
    let mut stored: HashMap<String, Vec<u64>> = HashMap::new();
    let mut stored_ids: HashSet<u64> = HashSet::new();
    for c in store.chunks(collection, tenant, None).await? {
        stored_ids.insert(c.id);
        stored.entry(c.source).or_default().push(c.id);
    }
    let mut seen_sources = HashSet::new();
    for (i, file) in files.iter().enumerate() {
        let source = source_name(file);
        let format = Format::of(file).expect("collect keeps known formats");
        let text = read(file)?;
        let chunks: Vec<Prepared> = prepare(&source, &text, format, size, count);
        report.chunks += chunks.len();
        let ids: Vec<u64> = chunks
            .iter()
            .map(|c| point_id(tenant, &c.source, c.chunk, &c.content_hash))
            .collect();
        let fresh: Vec<(&Prepared, u64)> = chunks
            .iter()
            .zip(&ids)
            .filter(|(_, id)| !stored_ids.contains(id))
            .map(|(c, &id)| (c, id))
            .collect();
        report.unchanged += chunks.len() - fresh.len();
        if !fresh.is_empty() {
            let texts = fresh.iter().map(|(c, _)| c.embed_text.clone()).collect();
            let vectors = embed(texts).await.map_err(IngestError::Embedding)?;
            let points = fresh
                .iter()
                .zip(vectors)
                .map(|((c, _), vector)| ChunkPoint {
                    vector,
                    payload: ChunkPayload {
                        tenant: tenant.to_string(),
                        source: c.source.clone(),
                        chunk: c.chunk,
                        content_hash: c.content_hash.clone(),
                        text: c.text.clone(),
                        title: c.title.clone(),
                    },
                })
                .collect();
            report.written += store.upsert(collection, points).await?;
        }
        // Chunks this source had before and no longer has.
        let keep: HashSet<u64> = ids.into_iter().collect();
        let stale: Vec<u64> = stored
            .get(&source)
            .map(|old| {
                old.iter()
                    .copied()
                    .filter(|id| !keep.contains(id))
                    .collect()
            })
            .unwrap_or_default();
        if !stale.is_empty() {
            report.deleted += store.delete(collection, tenant, stale).await?;
        }
        seen_sources.insert(source);
        progress(i + 1, files.len());
    }
    // Sources under an ingested directory that are gone from disk.
    let roots: Vec<String> = paths
        .iter()
        .filter(|p| p.is_dir())
        .map(|p| format!("{}/", source_name(p).trim_end_matches('/')))
        .collect();
    for source in stored.keys() {
        let under_root = roots.iter().any(|r| source.starts_with(r.as_str()));
        if under_root && !seen_sources.contains(source) {
            report.deleted += store.delete_source(collection, tenant, source).await?;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
