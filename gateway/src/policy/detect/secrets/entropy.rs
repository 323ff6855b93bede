//! The generic high-entropy token detector; its candidate and acceptance rules are described
//! in the `secrets` module docs.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

use super::patterns::{accept_any, compile, scan_group};
use super::{SecretEntity, SecretMatch, SecretsDetector};
use crate::policy::detect::context::line_before;

/// Canonical UUIDs look random but are identifiers, not credentials (see `keep_indicators`).
static UUID_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?:^|[^A-Za-z0-9_])([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})(?:$|[^A-Za-z0-9_])",
    )
});

/// A secret's name right before a value on its line: `password=`, `"api_key": "`, `Bearer `.
static SECRET_CONTEXT: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r#"(?i)(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|\bkey|credentials?|auth(?:orization)?|bearer|signature)["']?\s*[:=]?\s*["']?$"#,
    )
});

/// How far before a value its secret context may start, in bytes.
const CONTEXT_BYTES: usize = 48;

/// Whether a secret context ends right before `start`, on the same line.
fn secret_context(text: &str, start: usize) -> bool {
    SECRET_CONTEXT.is_match(line_before(text, start, CONTEXT_BYTES))
}

/// Hex of a digest's length: MD5 (32), SHA-1 and git commit ids (40), SHA-224 (56),
/// SHA-256 (64), SHA-384 (96), SHA-512 (128).
fn digest_shaped(core: &str) -> bool {
    matches!(core.len(), 32 | 40 | 56 | 64 | 96 | 128)
        && core.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Characters that can make up a generic high-entropy token.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-' | b'.' | b'~')
}

/// Identifier / path heuristics (see the `secrets` module docs).
fn looks_like_identifier(core: &str) -> bool {
    let wordy_segments = core
        .split(['/', '.', '_', '-', '~', '+'])
        .filter(|s| !s.is_empty())
        .all(|s| {
            s.len() <= 3
                || s.bytes().all(|b| b.is_ascii_alphabetic())
                || s.bytes().all(|b| b.is_ascii_digit())
        });
    if wordy_segments {
        return true;
    }

    // camelCase chunks: `[A-Z]+` (not followed by lowercase), `[A-Z]?[a-z]+`, `[0-9]+`.
    let b = core.as_bytes();
    let (mut chunks, mut capitalised, mut alnum, mut longest_caps) = (0usize, 0usize, 0usize, 0);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let mut j = i + 1;
        if c.is_ascii_digit() {
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
        } else if c.is_ascii_lowercase() {
            while j < b.len() && b[j].is_ascii_lowercase() {
                j += 1;
            }
        } else if c.is_ascii_uppercase() {
            while j < b.len() && b[j].is_ascii_uppercase() {
                j += 1;
            }
            if j < b.len() && b[j].is_ascii_lowercase() {
                // Capitals before the last one are an acronym chunk; the last starts a `Word`.
                let acronym = j - 1 - i;
                if acronym > 0 {
                    chunks += 1;
                    longest_caps = longest_caps.max(acronym);
                }
                while j < b.len() && b[j].is_ascii_lowercase() {
                    j += 1;
                }
                capitalised += 1;
            } else {
                longest_caps = longest_caps.max(j - i);
            }
        } else {
            // Separator.
            i = j;
            continue;
        }
        chunks += 1;
        alnum += j - i;
        i = j;
    }
    capitalised >= 2 && alnum >= 4 * chunks && longest_caps <= 4
}

impl SecretsDetector {
    /// High-entropy tokens in the parts of `text` not covered by `specific` (sorted,
    /// non-overlapping) or by UUIDs.
    pub(super) fn find_high_entropy(
        &self,
        text: &str,
        specific: &[SecretMatch],
    ) -> Vec<SecretMatch> {
        let mut excluded: Vec<(usize, usize)> = specific.iter().map(|m| (m.start, m.end)).collect();
        let mut uuids = Vec::new();
        let mut out_uuids = Vec::new();
        scan_group(
            &UUID_RE,
            false,
            text,
            SecretEntity::HighEntropy,
            accept_any,
            &mut uuids,
        );
        for m in uuids {
            if secret_context(text, m.start) {
                out_uuids.push(m.clone());
                excluded.push((m.start, m.end));
            } else if self.entropy.keep_indicators {
                excluded.push((m.start, m.end));
            }
        }
        excluded.sort_unstable();

        let bytes = text.as_bytes();
        let mut out = out_uuids;
        let mut ex = excluded.iter().peekable();
        let mut i = 0;
        while i < bytes.len() {
            // Skip excluded spans.
            while ex.peek().is_some_and(|&&(_, e)| e <= i) {
                ex.next();
            }
            let next_ex = ex.peek().map(|&&(s, e)| (s, e));
            if let Some((s, e)) = next_ex {
                if s <= i {
                    i = e;
                    continue;
                }
            }
            if !is_token_byte(bytes[i]) {
                i += 1;
                continue;
            }
            let limit = next_ex.map_or(bytes.len(), |(s, _)| s);
            let start = i;
            while i < limit && is_token_byte(bytes[i]) {
                i += 1;
            }
            self.check_run(text, start, i, &mut out);
        }
        out
    }

    /// Splits a token run after internal `=` runs and checks each piece.
    fn check_run(&self, text: &str, start: usize, end: usize, out: &mut Vec<SecretMatch>) {
        let bytes = text.as_bytes();
        let mut piece_start = start;
        let mut i = start;
        while i < end {
            if bytes[i] == b'=' {
                while i < end && bytes[i] == b'=' {
                    i += 1;
                }
                if i < end {
                    self.check_piece(text, piece_start, i, out);
                    piece_start = i;
                }
            } else {
                i += 1;
            }
        }
        self.check_piece(text, piece_start, end, out);
    }

    fn check_piece(&self, text: &str, start: usize, end: usize, out: &mut Vec<SecretMatch>) {
        let piece = &text[start..end];
        let trimmed = piece.trim_matches('.');
        if trimmed.is_empty() {
            return;
        }
        let lead = piece.len() - piece.trim_start_matches('.').len();
        let (span_start, span_end) = (start + lead, start + lead + trimmed.len());
        let core = trimmed.trim_end_matches('=');
        if digest_shaped(core) {
            if secret_context(text, span_start) {
                out.push(SecretMatch {
                    start: span_start,
                    end: span_end,
                    entity: SecretEntity::HighEntropy,
                });
                return;
            }
            if self.entropy.keep_indicators {
                return;
            }
        }
        if core.len() < self.entropy.min_length
            || !core.bytes().any(|b| b.is_ascii_digit())
            || !core.bytes().any(|b| b.is_ascii_alphabetic())
            || looks_like_identifier(core)
            || shannon_entropy(core) < self.entropy.threshold
        {
            return;
        }
        out.push(SecretMatch {
            start: span_start,
            end: span_end,
            entity: SecretEntity::HighEntropy,
        });
    }
}

/// Shannon entropy of `s` in bits per char (public: the CLI explains scores with it).
pub fn shannon_entropy(s: &str) -> f64 {
    let mut ascii = [0usize; 128];
    let mut other: HashMap<char, usize> = HashMap::new();
    let mut n = 0usize;
    for c in s.chars() {
        n += 1;
        if c.is_ascii() {
            ascii[c as usize] += 1;
        } else {
            *other.entry(c).or_insert(0) += 1;
        }
    }
    if n == 0 {
        return 0.0;
    }
    let total = n as f64;
    let mut h = 0.0;
    for &count in ascii.iter().chain(other.values()) {
        if count > 0 {
            let p = count as f64 / total;
            h -= p * p.log2();
        }
    }
    h
}
