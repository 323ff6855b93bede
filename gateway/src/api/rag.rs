//! The `/v1/rag/...` request bodies, validated, and the search response.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::SearchMode;
use crate::error::ApiError;
use crate::rag::documents::Format;
use crate::rag::ingest::Document;
use crate::rag::store::Hit;

/// Most documents in one ingestion request.
pub const MAX_DOCUMENTS: usize = 1000;
/// Most chunks one search returns.
pub const MAX_TOP_K: usize = 100;

/// `POST /v1/rag/{collection}/documents`.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestRequest {
    /// Owner of the chunks, when named (else the caller's tenant).
    pub tenant: Option<String>,
    /// Documents; each replaces what its source had.
    pub documents: Vec<Document>,
}

/// `DELETE /v1/rag/{collection}/documents`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteRequest {
    /// Owner of the chunks, when named (else the caller's tenant).
    pub tenant: Option<String>,
    /// Sources whose chunks are deleted.
    pub sources: Vec<String>,
}

/// `POST /v1/rag/{collection}/search`.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// Tenant whose chunks are searched, when named (else the caller's tenant).
    pub tenant: Option<String>,
    /// The query text.
    pub query: String,
    /// Chunks to return.
    pub top_k: usize,
    /// Minimum cosine similarity (of the dense side in hybrid mode).
    pub score_threshold: Option<f32>,
    /// Dense, or hybrid (the default).
    pub mode: SearchMode,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireIngest {
    #[serde(default)]
    tenant: Option<String>,
    documents: Vec<WireDocument>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireDocument {
    source: String,
    text: String,
    #[serde(default)]
    format: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireDelete {
    #[serde(default)]
    tenant: Option<String>,
    sources: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSearch {
    #[serde(default)]
    tenant: Option<String>,
    query: String,
    #[serde(default)]
    top_k: Option<i64>,
    #[serde(default)]
    score_threshold: Option<f64>,
    #[serde(default)]
    mode: Option<String>,
}

fn invalid(param: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::InvalidRequest {
        param,
        message: message.into(),
    }
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if let Err(e) = std::str::from_utf8(body) {
        return Err(ApiError::InvalidUtf8(e.valid_up_to()));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson(e.to_string()))
}

fn tenant(t: Option<String>) -> Result<Option<String>, ApiError> {
    if let Some(t) = &t {
        if t.is_empty() || t.len() > 128 || t.chars().any(char::is_control) {
            return Err(invalid(
                "tenant",
                "`tenant` must be 1-128 characters without control characters",
            ));
        }
    }
    Ok(t)
}

fn source(s: &str) -> Result<(), ApiError> {
    if s.trim().is_empty() || s.len() > 1024 || s.chars().any(char::is_control) {
        return Err(invalid(
            "source",
            format!(
                "source `{}` must be 1-1024 characters without control characters",
                s.escape_debug()
            ),
        ));
    }
    Ok(())
}

/// Parses an ingestion body. `format` is `markdown` (default), `text` or `html`, or taken
/// from the source's extension when it has a known one.
pub fn ingest(body: &[u8]) -> Result<IngestRequest, ApiError> {
    let w: WireIngest = json_body(body)?;
    if w.documents.is_empty() || w.documents.len() > MAX_DOCUMENTS {
        return Err(invalid(
            "documents",
            format!("give 1 to {MAX_DOCUMENTS} documents"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut documents = Vec::with_capacity(w.documents.len());
    for d in w.documents {
        source(&d.source)?;
        if !seen.insert(d.source.clone()) {
            return Err(invalid(
                "documents",
                format!("source `{}` is given twice", d.source),
            ));
        }
        let format = match d.format.as_deref() {
            Some("markdown") => Format::Markdown,
            Some("text") => Format::Text,
            Some("html") => Format::Html,
            Some(other) => {
                return Err(invalid(
                    "format",
                    format!("unknown format `{other}`: use markdown, text or html"),
                ))
            }
            None => Format::of(std::path::Path::new(&d.source)).unwrap_or(Format::Markdown),
        };
        documents.push(Document {
            source: d.source,
            format,
            text: d.text,
        });
    }
    Ok(IngestRequest {
        tenant: tenant(w.tenant)?,
        documents,
    })
}

/// Parses a deletion body.
pub fn delete(body: &[u8]) -> Result<DeleteRequest, ApiError> {
    let w: WireDelete = json_body(body)?;
    if w.sources.is_empty() || w.sources.len() > MAX_DOCUMENTS {
        return Err(invalid(
            "sources",
            format!("give 1 to {MAX_DOCUMENTS} sources"),
        ));
    }
    for s in &w.sources {
        source(s)?;
    }
    Ok(DeleteRequest {
        tenant: tenant(w.tenant)?,
        sources: w.sources,
    })
}

/// Parses a search body; `top_k` defaults to 5.
pub fn search(body: &[u8]) -> Result<SearchRequest, ApiError> {
    let w: WireSearch = json_body(body)?;
    if w.query.trim().is_empty() {
        return Err(invalid("query", "`query` must not be empty"));
    }
    let top_k = w.top_k.unwrap_or(5);
    if !(1..=MAX_TOP_K as i64).contains(&top_k) {
        return Err(invalid(
            "top_k",
            format!("`top_k` must be between 1 and {MAX_TOP_K}"),
        ));
    }
    let score_threshold = match w.score_threshold {
        None => None,
        Some(t) if (-1.0..=1.0).contains(&t) => Some(t as f32),
        Some(_) => {
            return Err(invalid(
                "score_threshold",
                "`score_threshold` is a cosine similarity between -1 and 1",
            ))
        }
    };
    let mode = match w.mode.as_deref() {
        None => SearchMode::default(),
        Some(m) => m
            .parse()
            .map_err(|e: String| invalid("mode", format!("`mode` {e}")))?,
    };
    Ok(SearchRequest {
        tenant: tenant(w.tenant)?,
        query: w.query,
        top_k: top_k as usize,
        score_threshold,
        mode,
    })
}

/// The search response: `{"object": "list", "collection", "tenant", "mode", "data": [{rank,
/// id, score, source, chunk, title, text}]}`.
pub fn search_response(collection: &str, tenant: &str, mode: SearchMode, hits: &[Hit]) -> Value {
    let data: Vec<Value> = hits
        .iter()
        .enumerate()
        .map(|(i, h)| {
            json!({
                "rank": i + 1,
                "id": h.id.to_string(),
                "score": h.score,
                "source": h.payload.source,
                "chunk": h.payload.chunk,
                "title": h.payload.title,
                "text": h.payload.text,
            })
        })
        .collect();
    json!({
        "object": "list",
        "collection": collection,
        "tenant": tenant,
        "mode": mode.as_str(),
        "data": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_bodies() {
        let r = ingest(br#"{"documents":[{"source":"a.html","text":"<p>x</p>"},{"source":"b","text":"y","format":"text"}]}"#).unwrap();
        assert_eq!(r.tenant, None);
        assert_eq!(r.documents[0].format, Format::Html);
        assert_eq!(r.documents[1].format, Format::Text);
        let code = |b: &[u8]| ingest(b).unwrap_err().parts().2;
        assert_eq!(code(b"{"), "invalid_json");
        assert_eq!(code(b"{\"documents\":[], \"x\":1}"), "invalid_json");
        assert_eq!(code(b"{\"documents\":[]}"), "invalid_parameter");
        assert_eq!(code(b"\xff"), "invalid_utf8");
        assert_eq!(
            code(br#"{"documents":[{"source":"a","text":"x"},{"source":"a","text":"y"}]}"#),
            "invalid_parameter"
        );
        assert_eq!(
            code(br#"{"documents":[{"source":"a","text":"x","format":"pdf"}]}"#),
            "invalid_parameter"
        );
        assert_eq!(
            code(br#"{"tenant":"","documents":[{"source":"a","text":"x"}]}"#),
            "invalid_parameter"
        );
    }

    #[test]
    fn search_and_delete_bodies() {
        let s =
            search(br#"{"query":"q","tenant":"acme","top_k":3,"score_threshold":0.2}"#).unwrap();
        assert_eq!(s.mode, SearchMode::Hybrid);
        let dense = search(br#"{"query":"q","mode":"dense"}"#).unwrap();
        assert_eq!(dense.mode, SearchMode::Dense);
        assert_eq!(
            (s.tenant.as_deref(), s.top_k, s.score_threshold),
            (Some("acme"), 3, Some(0.2))
        );
        assert_eq!(search(br#"{"query":"q"}"#).unwrap().top_k, 5);
        for bad in [
            &br#"{"query":" "}"#[..],
            br#"{"query":"q","top_k":0}"#,
            br#"{"query":"q","top_k":101}"#,
            br#"{"query":"q","mode":"sparse"}"#,
            br#"{"query":"q","score_threshold":2}"#,
        ] {
            assert_eq!(search(bad).unwrap_err().parts().2, "invalid_parameter");
        }
        assert_eq!(
            delete(br#"{"sources":["a.md"]}"#).unwrap().sources,
            ["a.md"]
        );
        assert_eq!(
            delete(br#"{"sources":[]}"#).unwrap_err().parts().2,
            "invalid_parameter"
        );
    }

    proptest::proptest! {
        /// Untrusted bodies never panic the parsers.
        #[test]
        fn parsers_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = ingest(&body);
            let _ = delete(&body);
            let _ = search(&body);
        }
    }
}
