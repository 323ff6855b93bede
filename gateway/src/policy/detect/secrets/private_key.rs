//! PEM / OpenSSH / PGP private key blocks: multi-line, delimited by BEGIN/END markers rather
//! than a single token, so they get their own scan.

use std::sync::LazyLock;

use regex::Regex;

use super::patterns::compile;
use super::{SecretEntity, SecretMatch};

static PRIVATE_KEY_BEGIN_RE: LazyLock<Regex> =
    LazyLock::new(|| compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY( BLOCK)?-----"));

/// Private key blocks: BEGIN marker through the matching END marker, or to the end of the text
/// when the END marker is missing (a truncated or still-streaming key is never partly leaked).
pub(super) fn scan_private_keys(text: &str, out: &mut Vec<SecretMatch>) {
    let mut pos = 0;
    while pos < text.len() {
        let Some(caps) = PRIVATE_KEY_BEGIN_RE.captures_at(text, pos) else {
            break;
        };
        let begin = caps.get(0).map_or(pos, |m| m.start());
        let after_begin = caps.get(0).map_or(text.len(), |m| m.end());
        let label = caps.get(1).map_or("", |m| m.as_str());
        let block = caps.get(2).map_or("", |m| m.as_str());
        let end_marker = format!("-----END {label}PRIVATE KEY{block}-----");
        let end = text[after_begin..]
            .find(&end_marker)
            .map_or(text.len(), |i| after_begin + i + end_marker.len());
        out.push(SecretMatch {
            start: begin,
            end,
            entity: SecretEntity::PrivateKey,
        });
        pos = end;
    }
}
