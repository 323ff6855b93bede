//! Fuzz targets: each takes arbitrary bytes and feeds them to one parser of untrusted input.
//! A target must never panic; where a parser promises more (the SSE parser gives the same
//! events however the bytes are split), the target checks it. `scripts/fuzz` runs them under
//! AFL++; `tests/regressions.rs` replays every input in `fuzz/regressions/<target>/`, so each
//! crash found stays fixed.

use std::path::Path;
use std::sync::OnceLock;

/// A fuzz target: takes any bytes, must not panic.
pub type Target = fn(&[u8]);

/// Every target, by name (the binaries in `targets/` and the regression folders).
pub const TARGETS: &[(&str, Target)] = &[
    ("openai_request", openai_request),
    ("sse", sse),
    ("policy_yaml", policy_yaml),
    ("policy_cases", policy_cases),
    ("template", template),
    ("calculator", calculator),
    ("chunker", chunker),
    ("audit_verify", audit_verify),
    ("config", config),
];

/// The body of `POST /v1/chat/completions`.
pub fn openai_request(data: &[u8]) {
    let _ = gateway::api::parse::chat_request(data, "fuzz");
}

/// A remote upstream's event stream, split in two at a point the first byte chooses: the
/// events must not depend on where the network cut the bytes.
pub fn sse(data: &[u8]) {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let at = usize::from(cut) % (body.len() + 1);
    let mut whole = gateway::backends::sse::SseParser::default();
    let once = whole.feed(body);
    let mut split = gateway::backends::sse::SseParser::default();
    let parts = split.feed(&body[..at]).and_then(|mut first| {
        first.extend(split.feed(&body[at..])?);
        Ok(first)
    });
    assert_eq!(
        once, parts,
        "the outcome depends on where the stream was cut at {at}"
    );
}

/// A policy file.
pub fn policy_yaml(data: &[u8]) {
    if let Ok(src) = std::str::from_utf8(data) {
        let _ = gateway::policy::load::parse(Path::new("fuzz.yaml"), src);
    }
}

/// A policy test-case file, against the repository's default policy.
pub fn policy_cases(data: &[u8]) {
    static POLICIES: OnceLock<Vec<std::sync::Arc<gateway::policy::rules::Policy>>> =
        OnceLock::new();
    let policies = POLICIES.get_or_init(|| {
        let src = include_str!("../../policies/default.yaml");
        let p = gateway::policy::load::parse(Path::new("default.yaml"), src)
            .unwrap_or_else(|e| panic!("the default policy loads: {e:?}"));
        vec![std::sync::Arc::new(p)]
    });
    let Ok(dir) = tempfile::tempdir() else { return };
    let file = dir.path().join("cases.yaml");
    if std::fs::write(&file, data).is_ok() {
        let _ = gateway::policy::load::load_case_file(&file, policies);
    }
}

/// A prompt template file: front matter and body, then renders without variables and with
/// every declared variable set (so the body's expressions run, not only the schema check).
pub fn template(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(t) = gateway::prompts::load::parse(Path::new("fuzz.yaml"), src) else {
        return;
    };
    let _ = t.render(&serde_json::json!({}));
    if let Some(props) = t.variables.get("properties").and_then(|p| p.as_object()) {
        let all: serde_json::Map<String, serde_json::Value> =
            props.keys().map(|k| (k.clone(), "x <b>".into())).collect();
        let _ = t.render(&serde_json::Value::Object(all));
    }
}

/// The calculator tool's expression.
pub fn calculator(data: &[u8]) {
    if let Ok(src) = std::str::from_utf8(data) {
        let _ = gateway::tools::calculator::evaluate(src);
    }
}

/// HTML, Markdown and plain text through the RAG chunker.
pub fn chunker(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let size = gateway::config::ChunkSize {
        max_tokens: 16,
        overlap_tokens: 4,
    };
    let words = |s: &str| s.split_whitespace().count();
    let _ = gateway::rag::chunk::chunk(&gateway::rag::chunk::html_to_markdown(src), size, &words);
    let _ = gateway::rag::chunk::chunk(src, size, &words);
    let _ = gateway::rag::chunk::chunk_plain(src, size, &words);
}

/// `gatehouse audit verify` on an arbitrary log file.
pub fn audit_verify(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let file = dir.path().join(gateway::audit::files::file_name(1, 0));
    if std::fs::write(&file, data).is_ok() {
        let _ = gateway::audit::verify::verify(dir.path(), Some(&[7u8; 32]));
    }
}

/// A config file.
pub fn config(data: &[u8]) {
    if let Ok(src) = std::str::from_utf8(data) {
        let _ = gateway::config::Config::from_str_with_env(
            src,
            Path::new("/nonexistent/gatehouse.yaml"),
            std::iter::empty(),
        );
    }
}
