//! Source documents: which files are read (Markdown, plain text, HTML), how they become
//! chunks, and the content hash that makes re-ingesting an unchanged chunk a no-op.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::chunk::{chunk, chunk_plain, html_to_markdown, ChunkSize};

/// A document's format, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.md`, `.markdown`.
    Markdown,
    /// `.txt` (Markdown without headings, as far as chunking goes).
    Text,
    /// `.html`, `.htm`.
    Html,
}

impl Format {
    /// The format of `path`, or `None` for files that are not ingested.
    pub fn of(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "md" | "markdown" => Some(Format::Markdown),
            "txt" | "text" => Some(Format::Text),
            "html" | "htm" => Some(Format::Html),
            _ => None,
        }
    }
}

/// Errors of reading sources.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// A path could not be read.
    #[error("{path}: {message}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// A file is not UTF-8 text.
    #[error("{path}: not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 {
        /// The file.
        path: String,
        /// First invalid byte.
        offset: usize,
    },
}

/// The files under `paths` that are ingested, sorted and deduplicated; directories are
/// walked recursively, hidden entries (`.git`, editor files) skipped. A file named
/// explicitly with an unknown extension is reported in the second list.
pub fn collect(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<PathBuf>), SourceError> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SourceError> {
        let io = |e: std::io::Error| SourceError::Io {
            path: dir.display().to_string(),
            message: e.to_string(),
        };
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            if path.is_dir() {
                walk(&path, out)?;
            } else if Format::of(&path).is_some() {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    let mut unknown = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut files)?;
        } else if p.is_file() {
            if Format::of(p).is_some() {
                files.push(p.clone());
            } else {
                unknown.push(p.clone());
            }
        } else {
            return Err(SourceError::Io {
                path: p.display().to_string(),
                message: "no such file or directory".into(),
            });
        }
    }
    files.sort();
    files.dedup();
    Ok((files, unknown))
}

/// The name a file is stored under: its path with `/` separators, as given.
pub fn source_name(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
        .replace("//", "/")
}

/// A chunk ready to embed and store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The source it came from.
    pub source: String,
    /// Its position in the source.
    pub chunk: u32,
    /// Heading path.
    pub title: Option<String>,
    /// The passage.
    pub text: String,
    /// What is embedded (heading path and passage).
    pub embed_text: String,
    /// `sha256:` of `embed_text`: unchanged chunks are not embedded again.
    pub content_hash: String,
}

/// Reads a file as UTF-8.
pub fn read(path: &Path) -> Result<String, SourceError> {
    let bytes = std::fs::read(path).map_err(|e| SourceError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    String::from_utf8(bytes).map_err(|e| SourceError::NotUtf8 {
        path: path.display().to_string(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Chunks one document.
pub fn prepare(
    source: &str,
    text: &str,
    format: Format,
    size: ChunkSize,
    count: &dyn Fn(&str) -> usize,
) -> Vec<Prepared> {
    let chunks = match format {
        Format::Html => chunk(&html_to_markdown(text), size, count),
        Format::Markdown => chunk(text, size, count),
        Format::Text => chunk_plain(text, size, count),
    };
    chunks
        .into_iter()
        .map(|c| {
            let embed_text = c.embed_text();
            let content_hash = format!("sha256:{}", hex::encode(Sha256::digest(&embed_text)));
            Prepared {
                source: source.to_string(),
                chunk: c.index,
                title: c.title,
                text: c.text,
                embed_text,
                content_hash,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    #[test]
    fn formats_by_extension() {
        assert_eq!(Format::of(Path::new("a/B.MD")), Some(Format::Markdown));
        assert_eq!(Format::of(Path::new("x.htm")), Some(Format::Html));
        assert_eq!(Format::of(Path::new("notes.txt")), Some(Format::Text));
        assert_eq!(Format::of(Path::new("image.png")), None);
        assert_eq!(Format::of(Path::new("README")), None);
    }

    #[test]
    fn collects_walks_and_skips() {
        let dir = std::env::temp_dir().join(format!("gh-docs-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("sub/.git")).unwrap();
        for f in ["a.md", "sub/b.html", "sub/.git/c.md", "d.png", ".e.md"] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        let (files, unknown) =
            collect(&[dir.clone(), dir.join("d.png"), dir.join("a.md")]).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a.md", "sub/b.html"]);
        assert_eq!(unknown, [dir.join("d.png")]);
        assert!(collect(&[dir.join("missing")]).is_err());
        std::fs::write(dir.join("bad.txt"), [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read(&dir.join("bad.txt")),
            Err(SourceError::NotUtf8 { offset: 0, .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hashes_follow_content_and_text_keeps_its_hashes() {
        let size = ChunkSize::default();
        let a = prepare("d.md", "# T\n\nSame text.", Format::Markdown, size, &words);
        let b = prepare(
            "other.md",
            "# T\n\nSame text.",
            Format::Markdown,
            size,
            &words,
        );
        let c = prepare(
            "d.md",
            "# T\n\nChanged text.",
            Format::Markdown,
            size,
            &words,
        );
        assert_eq!(a[0].content_hash, b[0].content_hash);
        assert_ne!(a[0].content_hash, c[0].content_hash);
        assert!(a[0].content_hash.starts_with("sha256:"));
        let t = prepare("n.txt", "# not a heading\nline", Format::Text, size, &words);
        assert_eq!(t[0].title, None);
        assert_eq!(t[0].text, "# not a heading\nline");
        assert_eq!(source_name(Path::new("docs/a.md")), "docs/a.md");
    }
}
