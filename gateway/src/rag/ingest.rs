//! Ingestion: documents → chunks → vectors → the store, idempotently. A chunk whose id
//! (tenant, source, position, content hash) is already stored is neither embedded nor written
//! again; chunks a source no longer has, and sources that disappeared from an ingested
//! directory, are deleted.

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
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestReport {
    /// Documents read.
    pub files: usize,
    /// Chunks the documents make.
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

/// Where and how chunks are written: one tenant's view of one collection.
pub struct Target<'a> {
    /// The store.
    pub store: &'a dyn VectorStore,
    /// The embedding model.
    pub embed: &'a EmbedFn<'a>,
    /// Its vector dimension.
    pub dim: usize,
    /// Collection written to; created if missing.
    pub collection: &'a str,
    /// Owner of the chunks.
    pub tenant: &'a str,
    /// Chunk length and overlap.
    pub size: ChunkSize,
    /// The embedding tokenizer's token count.
    pub count: &'a (dyn Fn(&str) -> usize + Sync),
}

/// A document given as text (HTTP ingestion) rather than as a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Name it is stored and cited under.
    pub source: String,
    /// How it is chunked.
    pub format: Format,
    /// Its content.
    pub text: String,
}

/// What the store holds for a tenant, by source.
struct Stored {
    by_source: HashMap<String, Vec<u64>>,
    ids: HashSet<u64>,
}

impl Target<'_> {
    async fn stored(&self) -> Result<Stored, IngestError> {
        self.store
            .ensure_collection(self.collection, self.dim)
            .await?;
        let mut stored = Stored {
            by_source: HashMap::new(),
            ids: HashSet::new(),
        };
        for c in self
            .store
            .chunks(self.collection, self.tenant, None)
            .await?
        {
            stored.ids.insert(c.id);
            stored.by_source.entry(c.source).or_default().push(c.id);
        }
        Ok(stored)
    }

    /// Indexes what the run wrote or deleted, once at its end rather than per write.
    async fn finish(&self, report: IngestReport) -> Result<IngestReport, IngestError> {
        if report.written + report.deleted > 0 {
            self.store.index(self.collection).await?;
        }
        Ok(report)
    }

    /// Brings one source in step with `text`: embeds and writes its new chunks, deletes the
    /// ones it no longer has.
    async fn source(
        &self,
        source: &str,
        text: &str,
        format: Format,
        stored: &Stored,
        report: &mut IngestReport,
    ) -> Result<(), IngestError> {
        let chunks: Vec<Prepared> = prepare(source, text, format, self.size, self.count);
        report.files += 1;
        report.chunks += chunks.len();
        let ids: Vec<u64> = chunks
            .iter()
            .map(|c| point_id(self.tenant, &c.source, c.chunk, &c.content_hash))
            .collect();
        let fresh: Vec<&Prepared> = chunks
            .iter()
            .zip(&ids)
            .filter(|(_, id)| !stored.ids.contains(id))
            .map(|(c, _)| c)
            .collect();
        report.unchanged += chunks.len() - fresh.len();
        if !fresh.is_empty() {
            let texts = fresh.iter().map(|c| c.embed_text.clone()).collect();
            let vectors = (self.embed)(texts).await.map_err(IngestError::Embedding)?;
            let points = fresh
                .iter()
                .zip(vectors)
                .map(|(c, vector)| ChunkPoint {
                    vector,
                    payload: ChunkPayload {
                        tenant: self.tenant.to_string(),
                        source: c.source.clone(),
                        chunk: c.chunk,
                        content_hash: c.content_hash.clone(),
                        text: c.text.clone(),
                        title: c.title.clone(),
                    },
                })
                .collect();
            report.written += self.store.upsert(self.collection, points).await?;
        }
        let keep: HashSet<u64> = ids.into_iter().collect();
        let stale: Vec<u64> = stored
            .by_source
            .get(source)
            .map(|old| {
                old.iter()
                    .copied()
                    .filter(|id| !keep.contains(id))
                    .collect()
            })
            .unwrap_or_default();
        if !stale.is_empty() {
            report.deleted += self
                .store
                .delete(self.collection, self.tenant, stale)
                .await?;
        }
        Ok(())
    }
}

/// Ingests the files under `paths`; `progress(done_files, total_files)` is called after each
/// file. Sources stored from an ingested directory that are gone from it are deleted.
pub async fn ingest(
    target: &Target<'_>,
    paths: &[PathBuf],
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<IngestReport, IngestError> {
    let stored = target.stored().await?;
    let (files, unknown) = collect(paths)?;
    let mut report = IngestReport {
        skipped: unknown.iter().map(|p| p.display().to_string()).collect(),
        ..Default::default()
    };
    let mut seen_sources = HashSet::new();
    for (i, file) in files.iter().enumerate() {
        let source = source_name(file);
        let format = Format::of(file).expect("collect keeps known formats");
        let text = read(file)?;
        target
            .source(&source, &text, format, &stored, &mut report)
            .await?;
        seen_sources.insert(source);
        progress(i + 1, files.len());
    }
    let roots: Vec<String> = paths
        .iter()
        .filter(|p| p.is_dir())
        .map(|p| format!("{}/", source_name(p).trim_end_matches('/')))
        .collect();
    for source in stored.by_source.keys() {
        let under_root = roots.iter().any(|r| source.starts_with(r.as_str()));
        if under_root && !seen_sources.contains(source) {
            report.deleted += target
                .store
                .delete_source(target.collection, target.tenant, source)
                .await?;
        }
    }
    target.finish(report).await
}

/// Ingests documents given as text; each replaces what its source had. Other sources are
/// left alone (delete them explicitly).
pub async fn ingest_documents(
    target: &Target<'_>,
    docs: &[Document],
) -> Result<IngestReport, IngestError> {
    let stored = target.stored().await?;
    let mut report = IngestReport::default();
    for d in docs {
        target
            .source(&d.source, &d.text, d.format, &stored, &mut report)
            .await?;
    }
    target.finish(report).await
}

#[cfg(test)]
mod tests;
