//! Ingestion against the real qdrant-edge store, with a stand-in embedder (vectors from a
//! hash of the text): what is tested is what gets embedded, written and deleted.

use std::path::{Path, PathBuf};

use futures::FutureExt;
use sha2::{Digest, Sha256};

use super::*;
use crate::rag::store::edge::EdgeStore;

const DIM: usize = 8;

fn fake_vector(text: &str) -> Vec<f32> {
    let h = Sha256::digest(text.as_bytes());
    h[..DIM].iter().map(|&b| b as f32 + 1.0).collect()
}

fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

struct Fixture {
    root: PathBuf,
    /// Dropped before the directory goes: qdrant-edge flushes (and panics) on drop.
    store: Option<EdgeStore>,
    embedded: std::sync::Arc<std::sync::Mutex<usize>>,
}

impl Fixture {
    fn new() -> Self {
        let root =
            std::env::temp_dir().join(format!("gh-ingest-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(root.join("docs")).unwrap();
        let store = EdgeStore::open(&root.join("data")).unwrap();
        Self {
            root,
            store: Some(store),
            embedded: Default::default(),
        }
    }

    fn store(&self) -> &EdgeStore {
        self.store.as_ref().expect("open until drop")
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.root.join("docs").join(name), text).unwrap();
    }

    async fn ingest(&self, tenant: &str) -> IngestReport {
        self.run(tenant, None).await
    }

    /// Ingests the `docs` directory, or `docs` given as text when some.
    async fn run(&self, tenant: &str, docs: Option<&[Document]>) -> IngestReport {
        let embedded = self.embedded.clone();
        let embed = move |texts: Vec<String>| {
            *embedded.lock().unwrap() += texts.len();
            async move { Ok(texts.iter().map(|t| fake_vector(t)).collect()) }.boxed()
        };
        let size = ChunkSize {
            max_tokens: 12,
            overlap_tokens: 0,
        };
        let target = Target {
            store: self.store(),
            embed: &embed,
            dim: DIM,
            collection: "docs",
            tenant,
            size,
            count: &words,
        };
        match docs {
            None => ingest(&target, &[self.root.join("docs")], &|_, _| {}).await,
            Some(docs) => ingest_documents(&target, docs).await,
        }
        .unwrap()
    }

    fn embedded(&self) -> usize {
        std::mem::take(&mut *self.embedded.lock().unwrap())
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        drop(self.store.take());
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn sources(chunks: &[crate::rag::store::StoredChunk], root: &Path) -> Vec<String> {
    let prefix = format!(
        "{}/",
        crate::rag::documents::source_name(&root.join("docs"))
    );
    let mut s: Vec<String> = chunks
        .iter()
        .map(|c| c.source.trim_start_matches(&prefix).to_string())
        .collect();
    s.dedup();
    s
}

#[tokio::test]
async fn reingesting_is_a_no_op_and_changes_are_tracked() {
    let f = Fixture::new();
    f.write(
        "a.md",
        "# A\n\nAlpha one two three.\n\nAlpha four five six.",
    );
    f.write("b.txt", "Beta text here.");
    let r = f.ingest("acme").await;
    assert_eq!(
        (r.files, r.written, r.unchanged, r.deleted),
        (2, r.chunks, 0, 0)
    );
    assert_eq!(f.embedded(), r.chunks);

    let again = f.ingest("acme").await;
    assert_eq!(
        (again.written, again.unchanged, again.deleted),
        (0, r.chunks, 0)
    );
    assert_eq!(f.embedded(), 0, "nothing is embedded twice");

    // One chunk changes: only it is embedded; its old version is deleted.
    f.write("a.md", "# A\n\nAlpha one two three.\n\nAlpha CHANGED.");
    let changed = f.ingest("acme").await;
    assert_eq!((changed.written, changed.deleted), (1, 1));
    assert_eq!(f.embedded(), 1);

    // A source that disappears from the directory is deleted.
    std::fs::remove_file(f.root.join("docs/b.txt")).unwrap();
    let gone = f.ingest("acme").await;
    assert_eq!(gone.deleted, 1);
    let left = f.store().chunks("docs", "acme", None).await.unwrap();
    assert_eq!(sources(&left, &f.root), ["a.md"]);

    // Another tenant's ingestion neither sees nor touches acme's chunks.
    let other = f.ingest("globex").await;
    assert_eq!((other.written, other.deleted), (other.chunks, 0));
    assert_eq!(
        f.store().chunks("docs", "acme", None).await.unwrap().len(),
        left.len()
    );
}

#[tokio::test]
async fn documents_given_as_text_replace_only_their_own_source() {
    let f = Fixture::new();
    let doc = |source: &str, text: &str| Document {
        source: source.into(),
        format: Format::Markdown,
        text: text.into(),
    };
    let first = [
        doc(
            "a.md",
            "# A\n\nAlpha one two three.\n\nAlpha four five six.",
        ),
        doc("b.md", "Beta text here."),
    ];
    let r = f.run("acme", Some(&first)).await;
    assert_eq!((r.files, r.written, r.deleted), (2, r.chunks, 0));
    // Re-sending a is a no-op; changing it rewrites one chunk; b is untouched throughout.
    let again = f.run("acme", Some(&first[..1])).await;
    assert_eq!((again.written, again.deleted), (0, 0));
    let changed = [doc("a.md", "# A\n\nAlpha one two three.")];
    let c = f.run("acme", Some(&changed)).await;
    assert_eq!(c.written + c.unchanged, c.chunks);
    assert!(c.deleted >= 1, "{c:?}");
    let left = f.store().chunks("docs", "acme", None).await.unwrap();
    let mut names: Vec<&str> = left.iter().map(|c| c.source.as_str()).collect();
    names.dedup();
    assert_eq!(names.len(), 2, "{names:?}");
}
