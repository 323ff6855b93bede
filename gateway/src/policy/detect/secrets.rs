//! Secret and credential detection for the guardrails pipeline.
//!
//! [`SecretsDetector::find`] runs vendor-specific detectors (AWS, GitHub, GitLab, Slack, OpenAI,
//! Anthropic, Google, PEM/PGP private keys, JWTs) and a generic high-entropy token detector, and
//! returns non-overlapping byte spans sorted by start.
//!
//! # Overlaps
//! * Spans of two *specific* detectors that overlap are merged into one span (their union), so
//!   that redacting the result never leaks part of either secret. The merged span takes the entity
//!   of a private key if one is involved, otherwise of the longest member.
//! * The generic high-entropy detector only looks at text that no enabled specific detector
//!   matched, so the specific entity always wins.
//!
//! # High-entropy tokens
//! Candidates are maximal runs of `[A-Za-z0-9+/=_\-.~]` that are not covered by a specific match
//! or by a canonical UUID (`8-4-4-4-12` hex, never reported). A run is split after an internal
//! `=` run (`api_key=VALUE` yields `api_key=` and `VALUE`), and leading/trailing `.` are trimmed
//! (a sentence-ending period is not part of a token). Trailing `=` padding stays in the reported
//! span but is ignored for the length and entropy checks. A candidate is reported when its core:
//! * is at least [`EntropyConfig::min_length`] characters long,
//! * contains at least one ASCII digit and one ASCII letter (long words, pure numbers),
//! * does not look like an identifier or path: either every segment between `/ . _ - ~ +` is all
//!   letters, all digits or at most 3 characters long (`snake_case_2_names`, `/var/log/app-2024-01-15.log`,
//!   `ip-10-0-1-23.ec2.internal`), or it is camelCase with at least two capitalised words and an
//!   average "word" length of 4 or more (`getUserAccountById2024Handler`),
//! * has a Shannon entropy of at least [`EntropyConfig::threshold`] bits per character.
//!
//! Consequences worth knowing: hex strings (git SHAs, hex API keys) carry at most 4.0 bits per
//! character, so with the default threshold they practically never fire (a 40-char git SHA
//! typically scores ~3.7); lower the threshold to ~3.5 to catch them, at the cost of more noise.
//! Base64 of short English text (e.g. `dGhlIHF1aWNrIGJyb3duIGZveCBqdW1wcw==`) *does* fire: it is
//! indistinguishable from key material without decoding, and base64 commonly carries credentials
//! (`Authorization: Basic ...`), so flagging it is the safe choice.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

/// A secret type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretEntity {
    /// AWS access key id (`AKIA...`, `ASIA...`, ...).
    AwsAccessKey,
    /// AWS secret access key (40 chars, only next to a secret-key name).
    AwsSecretKey,
    /// GitHub token (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`).
    GithubToken,
    /// GitLab token (`glpat-`, `gldt-`, `glrt-`, `glptt-`).
    GitlabToken,
    /// Slack API token (`xoxb-`, `xoxp-`, `xapp-1-`, ...).
    SlackToken,
    /// Slack incoming webhook / workflow trigger URL.
    SlackWebhook,
    /// OpenAI API key (`sk-`, `sk-proj-`, `sk-svcacct-`, `sk-admin-`).
    OpenaiKey,
    /// Anthropic API key (`sk-ant-...`).
    AnthropicKey,
    /// Google API key (`AIza` + 35 chars).
    GoogleApiKey,
    /// PEM / OpenSSH / PGP private key block.
    PrivateKey,
    /// JSON Web Token.
    Jwt,
    /// Generic high-entropy token.
    HighEntropy,
}

impl SecretEntity {
    /// Every entity, in declaration order.
    pub const ALL: [SecretEntity; 12] = [
        SecretEntity::AwsAccessKey,
        SecretEntity::AwsSecretKey,
        SecretEntity::GithubToken,
        SecretEntity::GitlabToken,
        SecretEntity::SlackToken,
        SecretEntity::SlackWebhook,
        SecretEntity::OpenaiKey,
        SecretEntity::AnthropicKey,
        SecretEntity::GoogleApiKey,
        SecretEntity::PrivateKey,
        SecretEntity::Jwt,
        SecretEntity::HighEntropy,
    ];

    /// Name used in policy YAML and reports (`"aws_access_key"`, ..., `"high_entropy"`).
    pub fn name(self) -> &'static str {
        match self {
            SecretEntity::AwsAccessKey => "aws_access_key",
            SecretEntity::AwsSecretKey => "aws_secret_key",
            SecretEntity::GithubToken => "github_token",
            SecretEntity::GitlabToken => "gitlab_token",
            SecretEntity::SlackToken => "slack_token",
            SecretEntity::SlackWebhook => "slack_webhook",
            SecretEntity::OpenaiKey => "openai_key",
            SecretEntity::AnthropicKey => "anthropic_key",
            SecretEntity::GoogleApiKey => "google_api_key",
            SecretEntity::PrivateKey => "private_key",
            SecretEntity::Jwt => "jwt",
            SecretEntity::HighEntropy => "high_entropy",
        }
    }

    /// Inverse of [`SecretEntity::name`] (exact, case-sensitive match).
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|e| e.name() == s)
    }

    /// Placeholder label used in redactions (`"AWS_KEY"`, ..., `"SECRET"`).
    pub fn label(self) -> &'static str {
        match self {
            SecretEntity::AwsAccessKey => "AWS_KEY",
            SecretEntity::AwsSecretKey => "AWS_SECRET",
            SecretEntity::GithubToken => "GITHUB_TOKEN",
            SecretEntity::GitlabToken => "GITLAB_TOKEN",
            SecretEntity::SlackToken => "SLACK_TOKEN",
            SecretEntity::SlackWebhook => "SLACK_WEBHOOK",
            SecretEntity::OpenaiKey => "OPENAI_KEY",
            SecretEntity::AnthropicKey => "ANTHROPIC_KEY",
            SecretEntity::GoogleApiKey => "GOOGLE_KEY",
            SecretEntity::PrivateKey => "PRIVATE_KEY",
            SecretEntity::Jwt => "JWT",
            SecretEntity::HighEntropy => "SECRET",
        }
    }
}

/// Generic high-entropy token detector settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EntropyConfig {
    /// Minimum Shannon entropy in bits per character.
    pub threshold: f64,
    /// Minimum token length in characters.
    pub min_length: usize,
}

impl Default for EntropyConfig {
    /// `threshold: 4.0`, `min_length: 24`.
    ///
    /// Random base62/base64 tokens score ~4.25 at 24 chars (about 5% fall below 4.0), ~4.55 at
    /// 32 chars (0.03% below 4.0) and ~4.8 at 40 chars, so 32+ char API keys essentially always
    /// fire. English-derived text scores lower: identifiers such as
    /// `snake_case_identifiers_like_this_one` ~3.6, paths and URLs ~3.4-3.8. Hex (git SHAs) is
    /// capped at 4.0 and typically ~3.7, so it does not fire. 24 chars is long enough to skip
    /// most words, numbers and short ids while still covering short random tokens.
    fn default() -> Self {
        EntropyConfig {
            threshold: 4.0,
            min_length: 24,
        }
    }
}

/// One match; byte offsets, on char boundaries, start < end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMatch {
    /// Byte offset of the first byte of the secret.
    pub start: usize,
    /// Byte offset one past the last byte of the secret.
    pub end: usize,
    /// What kind of secret this is.
    pub entity: SecretEntity,
}

/// Finds secrets in text; cheap to clone, regexes are shared statics.
#[derive(Debug, Clone)]
pub struct SecretsDetector {
    enabled: [bool; SecretEntity::ALL.len()],
    entropy: EntropyConfig,
}

fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("secrets detector regexes are static and valid")
}

// Token patterns: group 1 is the secret. The leading `(?:^|[^A-Za-z0-9_])` is a left word
// boundary (the regex crate has no look-behind); the search resumes at the end of group 1 so a
// consumed trailing boundary character can serve as the next match's left boundary.

static AWS_ACCESS_KEY_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?:^|[^A-Za-z0-9_])((?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16})(?:$|[^A-Za-z0-9_])",
    )
});

static AWS_SECRET_KEY_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r#"(?i:aws[_.\-]?secret(?:[_.\-]?access)?(?:[_.\-]?key)?|secret[_.\-]?access[_.\-]?key)["']?[ \t]*(?:=>|:=|=|:|>)[ \t]*["']?([A-Za-z0-9/+]{40})(?:$|[^A-Za-z0-9/+])"#,
    )
});

static GITHUB_TOKEN_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?:^|[^A-Za-z0-9_])(gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})(?:$|[^A-Za-z0-9_])",
    )
});

static GITLAB_TOKEN_RE: LazyLock<Regex> =
    LazyLock::new(|| compile(r"(?:^|[^A-Za-z0-9_])((?:glpat|gldt|glrt|glptt)-[A-Za-z0-9_-]{20,})"));

static SLACK_TOKEN_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?:^|[^A-Za-z0-9_])((?:xox[abposr]|xoxe(?:\.xox[bp])?)-[A-Za-z0-9-]{10,}|xapp-[0-9]-[A-Za-z0-9-]{10,})",
    )
});

static SLACK_WEBHOOK_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(https?://hooks\.slack\.com/(?:services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+|(?:workflows|triggers)/T[A-Z0-9]+/[A-Za-z0-9]+(?:/[A-Za-z0-9]+)+))",
    )
});

static OPENAI_KEY_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(r"(?:^|[^A-Za-z0-9_])(sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,})")
});

static ANTHROPIC_KEY_RE: LazyLock<Regex> =
    LazyLock::new(|| compile(r"(?:^|[^A-Za-z0-9_])(sk-ant-[A-Za-z0-9_-]{32,})"));

static GOOGLE_API_KEY_RE: LazyLock<Regex> =
    LazyLock::new(|| compile(r"(?:^|[^A-Za-z0-9_])(AIza[0-9A-Za-z_-]{35})(?:$|[^0-9A-Za-z_-])"));

static JWT_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(r"(?:^|[^A-Za-z0-9_])(eyJ[A-Za-z0-9_-]{7,}\.eyJ[A-Za-z0-9_-]{7,}\.[A-Za-z0-9_-]{10,})")
});

static PRIVATE_KEY_BEGIN_RE: LazyLock<Regex> =
    LazyLock::new(|| compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY( BLOCK)?-----"));

static UUID_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?:^|[^A-Za-z0-9_])([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})(?:$|[^A-Za-z0-9_])",
    )
});

/// Post-filter applied to a candidate token before it is reported.
type Accept = fn(&str) -> bool;

/// Accepts every candidate.
fn accept_any(_: &str) -> bool {
    true
}

/// OpenAI keys: not an Anthropic key, and not an all-lowercase phrase such as
/// `sk-learn-is-a-great-library` (real keys always contain uppercase letters or digits).
fn accept_openai(token: &str) -> bool {
    !token.starts_with("sk-ant-")
        && token[3..]
            .bytes()
            .any(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Appends the group-1 spans of every match of `re` in `text` that `accept` approves.
fn scan_group(
    re: &Regex,
    text: &str,
    entity: SecretEntity,
    accept: Accept,
    out: &mut Vec<SecretMatch>,
) {
    let mut locs = re.capture_locations();
    let mut pos = 0;
    while pos < text.len() {
        if re.captures_read_at(&mut locs, text, pos).is_none() {
            break;
        }
        let Some((start, end)) = locs.get(1) else {
            break;
        };
        if start < end && accept(&text[start..end]) {
            out.push(SecretMatch { start, end, entity });
        }
        // Group 1 is never empty and starts at or after `pos`, so this always advances.
        pos = end.max(pos + 1);
        while !text.is_char_boundary(pos) {
            pos += 1;
        }
    }
}

/// Private key blocks: BEGIN marker through the matching END marker, or to the end of the text
/// when the END marker is missing (a truncated or still-streaming key is never partly leaked).
fn scan_private_keys(text: &str, out: &mut Vec<SecretMatch>) {
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

/// Merges overlapping spans of specific detectors; the result is sorted and non-overlapping.
fn merge_overlapping(mut matches: Vec<SecretMatch>) -> Vec<SecretMatch> {
    matches.sort_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then(b.end.cmp(&a.end))
            .then(a.entity.cmp(&b.entity))
    });
    let rank = |m: &SecretMatch| (m.entity == SecretEntity::PrivateKey, m.end - m.start);
    let mut out: Vec<SecretMatch> = Vec::with_capacity(matches.len());
    let mut best = (false, 0);
    for m in matches {
        if let Some(last) = out.last_mut() {
            if m.start < last.end {
                last.end = last.end.max(m.end);
                if rank(&m) > best {
                    best = rank(&m);
                    last.entity = m.entity;
                }
                continue;
            }
        }
        best = rank(&m);
        out.push(m);
    }
    out
}

/// Characters that can make up a generic high-entropy token.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-' | b'.' | b'~')
}

/// Identifier / path heuristics (see the module docs).
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
    /// A detector running the `enabled` entities; `entropy` configures [`SecretEntity::HighEntropy`].
    pub fn new(enabled: &[SecretEntity], entropy: EntropyConfig) -> Self {
        let mut flags = [false; SecretEntity::ALL.len()];
        for &e in enabled {
            flags[e as usize] = true;
        }
        SecretsDetector {
            enabled: flags,
            entropy,
        }
    }

    fn is_enabled(&self, entity: SecretEntity) -> bool {
        self.enabled[entity as usize]
    }

    /// Non-overlapping matches sorted by start. When a specific detector and the generic
    /// high-entropy detector cover the same text, the specific one wins (high_entropy only
    /// reports tokens no specific detector matched).
    pub fn find(&self, text: &str) -> Vec<SecretMatch> {
        use SecretEntity as E;
        let token_detectors: [(E, &Regex, Accept); 10] = [
            (E::AwsAccessKey, &AWS_ACCESS_KEY_RE, accept_any),
            (E::AwsSecretKey, &AWS_SECRET_KEY_RE, accept_any),
            (E::GithubToken, &GITHUB_TOKEN_RE, accept_any),
            (E::GitlabToken, &GITLAB_TOKEN_RE, accept_any),
            (E::SlackToken, &SLACK_TOKEN_RE, accept_any),
            (E::SlackWebhook, &SLACK_WEBHOOK_RE, accept_any),
            (E::OpenaiKey, &OPENAI_KEY_RE, accept_openai),
            (E::AnthropicKey, &ANTHROPIC_KEY_RE, accept_any),
            (E::GoogleApiKey, &GOOGLE_API_KEY_RE, accept_any),
            (E::Jwt, &JWT_RE, accept_any),
        ];
        let mut specific = Vec::new();
        for (entity, re, accept) in token_detectors {
            if self.is_enabled(entity) {
                scan_group(re, text, entity, accept, &mut specific);
            }
        }
        if self.is_enabled(E::PrivateKey) {
            scan_private_keys(text, &mut specific);
        }
        let mut matches = merge_overlapping(specific);
        if self.is_enabled(E::HighEntropy) {
            let found = self.find_high_entropy(text, &matches);
            if !found.is_empty() {
                matches.extend(found);
                matches.sort_by_key(|m| m.start);
            }
        }
        matches
    }

    /// High-entropy tokens in the parts of `text` not covered by `specific` (sorted,
    /// non-overlapping) or by UUIDs.
    fn find_high_entropy(&self, text: &str, specific: &[SecretMatch]) -> Vec<SecretMatch> {
        let mut excluded: Vec<(usize, usize)> = specific.iter().map(|m| (m.start, m.end)).collect();
        let mut uuids = Vec::new();
        scan_group(
            &UUID_RE,
            text,
            SecretEntity::HighEntropy,
            accept_any,
            &mut uuids,
        );
        excluded.extend(uuids.iter().map(|m| (m.start, m.end)));
        excluded.sort_unstable();

        let bytes = text.as_bytes();
        let mut out = Vec::new();
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Fixtures are split with `concat!` so that secret scanners (including push protection)
    // do not flag this file; the values are fake.
    const AWS_DOC_KEY: &str = concat!("AKIA", "IOSFODNN7EXAMPLE");
    const AWS_DOC_SECRET: &str = concat!("wJalrXUtnFEMI/K7MDENG", "/bPxRfiCYEXAMPLEKEY");
    const GH_DOC_TOKEN: &str = concat!("ghp", "_16C7e42F292c6912E7710c838347Ae178B4a");
    const JWT_IO: &str = concat!(
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
        ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ",
        ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
    );
    const ANTHROPIC: &str = concat!(
        "sk-ant-",
        "api03-ZfYcMMDktXP_tKsf2rcDkdfrUnW5gcF-Ha6ili8GjHEAD6_Wj9KfzjsQGMrb9h-ImB-LK777pzNk8cL6j5IXAAjlsHUqJAA"
    );
    const RSA_KEY: &str = concat!(
        "-----BEGIN RSA ",
        "PRIVATE KEY-----\n",
        "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n",
        "KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQJAIJLixBy2qpFoS4DSmoEm\n",
        "-----END RSA PRIVATE KEY-----"
    );

    fn only(entity: SecretEntity) -> SecretsDetector {
        SecretsDetector::new(&[entity], EntropyConfig::default())
    }

    fn all() -> SecretsDetector {
        SecretsDetector::new(&SecretEntity::ALL, EntropyConfig::default())
    }

    /// Matched substrings for a single-entity detector.
    fn hits(entity: SecretEntity, text: &str) -> Vec<String> {
        only(entity)
            .find(text)
            .into_iter()
            .map(|m| {
                assert_eq!(m.entity, entity);
                text[m.start..m.end].to_string()
            })
            .collect()
    }

    fn spans(d: &SecretsDetector, text: &str) -> Vec<(usize, usize, SecretEntity)> {
        d.find(text)
            .into_iter()
            .map(|m| (m.start, m.end, m.entity))
            .collect()
    }

    fn assert_none(entity: SecretEntity, texts: &[&str]) {
        for t in texts {
            assert!(hits(entity, t).is_empty(), "{entity:?} matched in {t:?}");
        }
    }

    fn check_invariants(text: &str, matches: &[SecretMatch]) {
        let mut prev_end = 0;
        for m in matches {
            assert!(m.start < m.end, "empty span {m:?}");
            assert!(m.end <= text.len(), "span past end {m:?}");
            assert!(text.is_char_boundary(m.start) && text.is_char_boundary(m.end));
            assert!(m.start >= prev_end, "overlap or unsorted at {m:?}");
            prev_end = m.end;
        }
    }

    // ---- entity metadata -------------------------------------------------------------------

    #[test]
    fn names_and_labels_round_trip() {
        for e in SecretEntity::ALL {
            assert_eq!(SecretEntity::from_name(e.name()), Some(e));
            assert!(!e.label().is_empty());
        }
        assert_eq!(SecretEntity::from_name("nope"), None);
        assert_eq!(SecretEntity::from_name("JWT"), None);
        assert_eq!(SecretEntity::AwsAccessKey.label(), "AWS_KEY");
        assert_eq!(SecretEntity::GoogleApiKey.label(), "GOOGLE_KEY");
        assert_eq!(SecretEntity::HighEntropy.label(), "SECRET");
        assert_eq!(SecretEntity::HighEntropy.name(), "high_entropy");
        let mut names: Vec<_> = SecretEntity::ALL.iter().map(|e| e.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 12);
    }

    #[test]
    fn disabled_entities_do_not_fire() {
        let d = SecretsDetector::new(&[], EntropyConfig::default());
        assert!(d
            .find(&format!("{AWS_DOC_KEY} {JWT_IO} {RSA_KEY}"))
            .is_empty());
    }

    // ---- AWS -------------------------------------------------------------------------------

    #[test]
    fn aws_access_key_true_positives() {
        let d = only(SecretEntity::AwsAccessKey);
        let text = format!("key: {AWS_DOC_KEY},");
        assert_eq!(spans(&d, &text), vec![(5, 25, SecretEntity::AwsAccessKey)]);
        let sts = concat!("{\"AccessKeyId\":\"ASIA", "2PZCYC5EDQMEVXRV\"}");
        assert_eq!(hits(SecretEntity::AwsAccessKey, sts), vec![&sts[16..36]]);
        // Adjacent keys separated by one char, at start and end of text.
        let two = concat!("AROA", "CQURTAEBOG65YQ37 AKIA", "IOSFODNN7EXAMPLE");
        assert_eq!(
            spans(&d, two),
            vec![
                (0, 20, SecretEntity::AwsAccessKey),
                (21, 41, SecretEntity::AwsAccessKey)
            ]
        );
        assert_eq!(
            hits(
                SecretEntity::AwsAccessKey,
                "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE"
            )
            .len(),
            1
        );
    }

    #[test]
    fn aws_access_key_false_positives() {
        assert_none(
            SecretEntity::AwsAccessKey,
            &[
                "AKIAIOSFODNN7EXAMPL",     // 19 chars
                "AKIAIOSFODNN7EXAMPLEX",   // 21 chars: inside a longer word
                "XAKIAIOSFODNN7EXAMPLE",   // inside a longer word
                "AKIBIOSFODNN7EXAMPLE",    // wrong prefix
                "akiaiosfodnn7example",    // lowercase
                "AKIAIOSFODNN7EXAMP-E",    // wrong charset
                "my_AKIAIOSFODNN7EXAMPLE", // identifier
            ],
        );
    }

    #[test]
    fn aws_secret_key_true_positives() {
        let d = only(SecretEntity::AwsSecretKey);
        let text = format!("aws_secret_access_key = {AWS_DOC_SECRET}\n");
        assert_eq!(spans(&d, &text), vec![(24, 64, SecretEntity::AwsSecretKey)]);
        let json = r#"{"SecretAccessKey": "q+xbMtEPO6UkzYuF0ie9Pu2njHkAm1+5wDr16EpL", "x": 1}"#;
        assert_eq!(
            hits(SecretEntity::AwsSecretKey, json),
            vec!["q+xbMtEPO6UkzYuF0ie9Pu2njHkAm1+5wDr16EpL"]
        );
        let env = "export AWS_SECRET_ACCESS_KEY='LJIVGHz4FxFEtKyPiYGFDm7ena8D5VfLDpgyyjVw'";
        assert_eq!(
            hits(SecretEntity::AwsSecretKey, env),
            vec!["LJIVGHz4FxFEtKyPiYGFDm7ena8D5VfLDpgyyjVw"]
        );
        let yaml = "creds:\n  aws_secret: 5HanSBeVRsfAGeAbP0VxNjAe+9i0mYtluYI0KN1g\n";
        assert_eq!(
            hits(SecretEntity::AwsSecretKey, yaml),
            vec!["5HanSBeVRsfAGeAbP0VxNjAe+9i0mYtluYI0KN1g"]
        );
    }

    #[test]
    fn aws_secret_key_false_positives() {
        let v = AWS_DOC_SECRET;
        assert_none(
            SecretEntity::AwsSecretKey,
            &[
                v,                                                // no key name
                &format!("aws_secret_access_key =\n{v}"),         // other line
                &format!("aws_secret_access_key = {}", &v[..39]), // 39 chars
                &format!("aws_secret_access_key = {v}A"),         // 41 chars
                &format!("aws_access_key_id = {v}"),              // wrong key name
                &format!("aws_secret_access_key {v}"),            // no separator
            ],
        );
    }

    // ---- GitHub / GitLab --------------------------------------------------------------------

    #[test]
    fn github_token_true_positives() {
        let d = only(SecretEntity::GithubToken);
        let text = format!("token {GH_DOC_TOKEN}.");
        assert_eq!(spans(&d, &text), vec![(6, 46, SecretEntity::GithubToken)]);
        for t in [
            concat!("gho", "_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d"),
            concat!("ghs", "_KLzdocJ2isAjIhKtJ0RlgLKOmxgJTeKdNnFR"),
            concat!("ghu", "_IBXuDL7DxtpYlSXpfKtHF4vUCsMehGAkWvj7"),
            concat!(
                "github_pat",
                "_1150CE9UVW53EFR4EDT2SY_4Qwb8DwkNhFdnXsiVpzz63FfkCzJr4i0B3JrTAwR4y9ojfljoQoaF1Llqsa"
            ),
        ] {
            let text = format!("Authorization: token {t}\n");
            assert_eq!(hits(SecretEntity::GithubToken, &text), vec![t]);
        }
    }

    #[test]
    fn github_token_false_positives() {
        assert_none(
            SecretEntity::GithubToken,
            &[
                &GH_DOC_TOKEN[..39],                                  // 35 chars after prefix
                &GH_DOC_TOKEN.replace("ghp_", "ghx_"),                // wrong prefix
                &format!("x{GH_DOC_TOKEN}"),                          // inside a longer word
                &format!("{GH_DOC_TOKEN}_suffix"),                    // inside a longer word
                &GH_DOC_TOKEN.replace("c6912", "c-912"),              // wrong charset
                concat!("github_pat", "_11ABCDEFG0123456789_abcdef"), // too short
            ],
        );
    }

    #[test]
    fn gitlab_token_true_positives() {
        let pat = concat!("glpat", "-s1VOqg6YYZYn9ZhyiA4u");
        let text = format!("PRIVATE-TOKEN: {pat}");
        assert_eq!(
            spans(&only(SecretEntity::GitlabToken), &text),
            vec![(15, 41, SecretEntity::GitlabToken)]
        );
        for t in [
            concat!("gldt", "-hvMdgaKjIg8xNbe3nNyj"),
            concat!("glrt", "-Oq9wMxEhh2FDEEtfjgVv"),
            concat!("glptt", "-8f506b40928b5b7a767c76fb008f86bebb2737f6"),
        ] {
            assert_eq!(hits(SecretEntity::GitlabToken, &format!("'{t}'")), vec![t]);
        }
    }

    #[test]
    fn gitlab_token_false_positives() {
        assert_none(
            SecretEntity::GitlabToken,
            &[
                concat!("glpat", "-s1VOqg6YYZYn9ZhyiA4"),   // 19 chars
                concat!("glpat", "_s1VOqg6YYZYn9ZhyiA4u"),  // wrong separator
                concat!("xglpat", "-s1VOqg6YYZYn9ZhyiA4u"), // inside a longer word
                concat!("glpak", "-s1VOqg6YYZYn9ZhyiA4u"),  // wrong prefix
                concat!("glpat", "-s1VOqg6YYZ Yn9ZhyiA4u"), // wrong charset
            ],
        );
    }

    // ---- Slack -------------------------------------------------------------------------------

    #[test]
    fn slack_token_true_positives() {
        let bot = concat!(
            "xoxb",
            "-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
        );
        let text = format!("SLACK_BOT_TOKEN={bot}\n");
        assert_eq!(
            spans(&only(SecretEntity::SlackToken), &text),
            vec![(16, 16 + bot.len(), SecretEntity::SlackToken)]
        );
        for t in [
            concat!(
                "xoxp",
                "-1234567890-1234567890-1234567890123-0123456789abcdef0123456789abcdef"
            ),
            concat!(
                "xapp",
                "-1-A0123456789-1234567890123-abcdef0123456789abcdef0123456789"
            ),
            concat!("xoxe.xoxp", "-1-Mi0yLTEyMzQ1Njc4OTAxMi0xMjM0NTY3ODkwMTIz"),
            concat!("xoxa", "-2-1234567890-abcdefABCDEF"),
        ] {
            assert_eq!(
                hits(SecretEntity::SlackToken, &format!("use {t} now")),
                vec![t]
            );
        }
    }

    #[test]
    fn slack_token_false_positives() {
        assert_none(
            SecretEntity::SlackToken,
            &[
                concat!("xoxz", "-123456789012-abc"),     // wrong type letter
                concat!("xoxb", "-12345678"),             // too short
                concat!("xoxb", "_123456789012-1234"),    // wrong separator
                concat!("fooxoxb", "-123456789012-1234"), // inside a longer word
                concat!("xapp", "-x-A0123456789-12345"),  // xapp without level digit
            ],
        );
    }

    #[test]
    fn slack_webhook_true_positives() {
        let hook = concat!(
            "https://hooks.slack.com/services/",
            "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
        );
        let text = format!("POST to {hook}, done");
        assert_eq!(
            spans(&only(SecretEntity::SlackWebhook), &text),
            vec![(8, 8 + hook.len(), SecretEntity::SlackWebhook)]
        );
        for u in [
            concat!(
                "https://hooks.slack.com/workflows/",
                "T01ABCDEF/A02BCDEFG/123456789012345678/AbCdEfGhIjKlMnOpQrStUvWx"
            ),
            concat!(
                "https://hooks.slack.com/triggers/",
                "T01ABCDEF/1234567890123/abcdef0123456789abcdef0123456789"
            ),
            concat!(
                "https://hooks.slack.com/services/",
                "T024BE7LD/B0A1B2C3D4E/k9Qw2eR5tY8uI1oP4aS7dF0g"
            ),
        ] {
            assert_eq!(hits(SecretEntity::SlackWebhook, &format!("<{u}>")), vec![u]);
        }
    }

    #[test]
    fn slack_webhook_false_positives() {
        assert_none(
            SecretEntity::SlackWebhook,
            &[
                "https://hooks.slack.com/services/",
                "https://hooks.slack.com/services/t0000/b0000/xxxx", // lowercase ids
                "https://hooks.slack.org/services/T0000/B0000/XXXX", // wrong host
                "https://hooks.slack.com/services/T0000/C0000/XXXX", // not a B id
                "https://api.slack.com/services/T0000/B0000/XXXX",   // wrong host
            ],
        );
    }

    // ---- OpenAI / Anthropic ------------------------------------------------------------------

    #[test]
    fn openai_key_true_positives() {
        let legacy = concat!("sk", "-vJDCTbyvHNsG9eh6Yo4gfqrc5XlrWi0B26R08qzjI6GKFSuf");
        let text = format!("OPENAI_API_KEY=\"{legacy}\"");
        assert_eq!(
            spans(&only(SecretEntity::OpenaiKey), &text),
            vec![(16, 67, SecretEntity::OpenaiKey)]
        );
        for k in [
            concat!(
                "sk-proj",
                "-RA9a9SkpXz9w3QlY7Zkuvqdt7s8Stqcbnr3yBdGBLEPH1qhT61qtc4xatws8phP9nhFyJfm5di4PzJ59FHz5r1pY4OjE2jBMptUsGr7CmY-uCu3ZR1zTOlUc"
            ),
            concat!("sk-svcacct", "-Jhx2jIclHkCiHp6bR1IqfEouHgxzNNAL5wIScGebcy8F5n3_YNBDRzrZSgqb"),
            concat!("sk-admin", "-jG3uhkWKFLf6xuI5aHUQPFeNBTxaQWk8JzFalHls"),
        ] {
            assert_eq!(hits(SecretEntity::OpenaiKey, &format!("Bearer {k}\n")), vec![k]);
        }
    }

    #[test]
    fn openai_key_false_positives() {
        assert_none(
            SecretEntity::OpenaiKey,
            &[
                ANTHROPIC,                                                 // Anthropic, not OpenAI
                concat!("sk", "-vJDCTbyvHNsG9eh6Yo4"),                     // 19 chars
                concat!("sk", "_vJDCTbyvHNsG9eh6Yo4gfqrc5XlrWi0B26R08"),   // wrong separator
                concat!("desk", "-vJDCTbyvHNsG9eh6Yo4gfqrc5XlrWi0B26R08"), // inside a word
                "sk-learn-is-a-great-library-for-ml",                      // lowercase phrase
                concat!("sk", "-vJDCTbyvHNs G9eh6Yo4gfqrc5XlrWi0B26R08"),  // charset break
            ],
        );
    }

    #[test]
    fn anthropic_key_true_positives() {
        let text = format!("x-api-key: {ANTHROPIC}\n");
        let expected = vec![(11, 11 + ANTHROPIC.len(), SecretEntity::AnthropicKey)];
        assert_eq!(spans(&only(SecretEntity::AnthropicKey), &text), expected);
        // With everything enabled it is reported once, as Anthropic, never as OpenAI.
        assert_eq!(spans(&all(), &text), expected);
        for k in [
            concat!(
                "sk-ant",
                "-admin01-oUD_-Ydua-5ZMs1SWOpQaPRYpzbLGViYXjU2JgJngKtFI3OyV2dZAkg05rK-gqv81RKMGHZEM9YpvujA_C5Q52ryFlwRlAA"
            ),
            concat!(
                "sk-ant",
                "-oat01-OEVHzc0X0AWIRh_JUqBlIFXZ53Ncqe28-ajY75FnCttn6kfaqDeMqG3omjMy"
            ),
        ] {
            assert_eq!(hits(SecretEntity::AnthropicKey, &format!("'{k}'")), vec![k]);
            assert_eq!(all().find(k)[0].entity, SecretEntity::AnthropicKey);
        }
    }

    #[test]
    fn anthropic_key_false_positives() {
        assert_none(
            SecretEntity::AnthropicKey,
            &[
                concat!("sk-ant", "-api03-ZfYcMMDktXP_tKsf2rcDkdfrU"), // 31 chars
                &format!("x{ANTHROPIC}"),                              // inside a word
                &ANTHROPIC.replacen("sk-ant-", "sk-ant_", 1),          // wrong separator
                concat!("sk-anthropic", "-ZfYcMMDktXP_tKsf2rcDkdfrUnW5gcF-Ha6ili8G"), // prefix
                concat!("sk", "-vJDCTbyvHNsG9eh6Yo4gfqrc5XlrWi0B26R08qzjI6GKFSuf"), // OpenAI
            ],
        );
    }

    // ---- Google --------------------------------------------------------------------------------

    #[test]
    fn google_api_key_true_positives() {
        let k = concat!("AIza", "XHCabM6JOF8EFd0Nhcy_1kGD2VD_eR1UYza");
        let text = format!("?key={k}&q=1");
        assert_eq!(
            spans(&only(SecretEntity::GoogleApiKey), &text),
            vec![(5, 44, SecretEntity::GoogleApiKey)]
        );
        for k in [
            concat!("AIza", "LiA_zNyD7CHLn_xC-1hsYgBds1ghxY5Ookv"),
            concat!("AIza", "Qyx7eNWVQ4vnakJkS1pAWTN3lg8zV5yPU8d"),
        ] {
            assert_eq!(
                hits(SecretEntity::GoogleApiKey, &format!("\"{k}\"")),
                vec![k]
            );
        }
    }

    #[test]
    fn google_api_key_false_positives() {
        assert_none(
            SecretEntity::GoogleApiKey,
            &[
                concat!("AIza", "XHCabM6JOF8EFd0Nhcy_1kGD2VD_eR1UYz"), // 34
                concat!("AIza", "XHCabM6JOF8EFd0Nhcy_1kGD2VD_eR1UYzaa"), // 36
                concat!("AIZa", "XHCabM6JOF8EFd0Nhcy_1kGD2VD_eR1UYza"), // wrong case
                concat!("xAIza", "XHCabM6JOF8EFd0Nhcy_1kGD2VD_eR1UYza"), // inside a word
                concat!("AIza", "XHCabM6JOF8EFd0Nhcy.1kGD2VD_eR1UYza"), // wrong charset
            ],
        );
    }

    // ---- Private keys --------------------------------------------------------------------------

    #[test]
    fn private_key_terminated_block_is_matched_exactly() {
        let text = format!("here it is:\n{RSA_KEY}\nthanks");
        assert_eq!(
            spans(&only(SecretEntity::PrivateKey), &text),
            vec![(12, 12 + RSA_KEY.len(), SecretEntity::PrivateKey)]
        );
    }

    #[test]
    fn private_key_unterminated_block_runs_to_end() {
        let cut = &RSA_KEY[..RSA_KEY.len() - 40];
        let text = format!("partial: {cut}");
        assert_eq!(
            spans(&only(SecretEntity::PrivateKey), &text),
            vec![(9, text.len(), SecretEntity::PrivateKey)]
        );
        // END marker itself truncated.
        let cut = &RSA_KEY[..RSA_KEY.len() - 10];
        assert_eq!(hits(SecretEntity::PrivateKey, cut), vec![cut]);
    }

    #[test]
    fn private_key_two_blocks_and_other_kinds() {
        let ssh = concat!(
            "-----BEGIN OPENSSH ",
            "PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n",
            "-----END OPENSSH PRIVATE KEY-----"
        );
        let text = format!("{RSA_KEY}\n\n{ssh}\n");
        let start2 = RSA_KEY.len() + 2;
        assert_eq!(
            spans(&only(SecretEntity::PrivateKey), &text),
            vec![
                (0, RSA_KEY.len(), SecretEntity::PrivateKey),
                (start2, start2 + ssh.len(), SecretEntity::PrivateKey)
            ]
        );
        for k in [
            concat!(
                "-----BEGIN PGP ",
                "PRIVATE KEY BLOCK-----\n\nlQOYBF0AAAABCAC\n=abcd\n-----END PGP PRIVATE KEY BLOCK-----"
            ),
            concat!(
                "-----BEGIN ENCRYPTED ",
                "PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQww\n-----END ENCRYPTED PRIVATE KEY-----"
            ),
            concat!(
                "-----BEGIN ",
                "PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIC\n-----END PRIVATE KEY-----"
            ),
            concat!("-----BEGIN EC ", "PRIVATE KEY-----\nMHcCAQEEI\n-----END EC PRIVATE KEY-----"),
        ] {
            assert_eq!(hits(SecretEntity::PrivateKey, &format!("> {k} <")), vec![k]);
        }
    }

    #[test]
    fn private_key_false_positives() {
        assert_none(
            SecretEntity::PrivateKey,
            &[
                "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYI\n-----END PUBLIC KEY-----",
                "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIE\n-----END CERTIFICATE-----",
                "-----begin rsa private key-----\nabc",
                "BEGIN RSA PRIVATE KEY\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9",
                // Only a prefix of the BEGIN marker at the very end: caller holds it back.
                "streaming... -----BEGIN RSA PRIV",
                "streaming... -----BEGIN RSA PRIVATE KEY----",
            ],
        );
    }

    #[test]
    fn overlapping_specific_matches_merge_without_leaking() {
        // The OpenAI charset swallows the dashes of the BEGIN marker: the union is reported.
        let text = format!("{}{RSA_KEY} tail", concat!("sk", "-AbCdEfGhIjKlMnOpQrSt1"));
        let m = all().find(&text);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!((m[0].start, m[0].end), (0, text.len() - 5));
        assert_eq!(m[0].entity, SecretEntity::PrivateKey);
    }

    // ---- JWT -------------------------------------------------------------------------------------

    #[test]
    fn jwt_true_positives() {
        let text = format!("Authorization: Bearer {JWT_IO}.");
        assert_eq!(
            spans(&only(SecretEntity::Jwt), &text),
            vec![(22, 22 + JWT_IO.len(), SecretEntity::Jwt)]
        );
        let other = concat!(
            "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ",
            ".eyJpc3MiOiJodHRwczovL2V4YW1wbGUuY29tIn0",
            ".Zm9vYmFyYmF6cXV4LWZha2Utc2lnbmF0dXJl"
        );
        assert_eq!(
            hits(SecretEntity::Jwt, &format!("{{\"id_token\":\"{other}\"}}")),
            vec![other]
        );
        let minimal = "eyJ0eXAiOi.eyJzdWIiOi.abcdefghij";
        assert_eq!(hits(SecretEntity::Jwt, minimal), vec![minimal]);
    }

    #[test]
    fn jwt_false_positives() {
        assert_none(
            SecretEntity::Jwt,
            &[
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0", // 2 segments
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.abJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4f",
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJS", // sig 9
                "xeyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4f",
                "eyJhbGci.eyJzdWIiOiIx.SflKxwRJSMeKKF2QT4f", // first segment too short
            ],
        );
    }

    // ---- Entropy -----------------------------------------------------------------------------------

    #[test]
    fn shannon_entropy_values() {
        assert_eq!(shannon_entropy(""), 0.0);
        assert_eq!(shannon_entropy("aaaa"), 0.0);
        assert_eq!(shannon_entropy("ab"), 1.0);
        assert_eq!(shannon_entropy("abcd"), 2.0);
        assert_eq!(shannon_entropy("ééßß"), 1.0);
        assert!((shannon_entropy("0123456789abcdef") - 4.0).abs() < 1e-12);
    }

    fn entropy_hits(cfg: EntropyConfig, text: &str) -> Vec<String> {
        SecretsDetector::new(&[SecretEntity::HighEntropy], cfg)
            .find(text)
            .into_iter()
            .map(|m| text[m.start..m.end].to_string())
            .collect()
    }

    #[test]
    fn high_entropy_random_keys_fire() {
        let cfg = EntropyConfig::default();
        for k in [
            "18c6EudM7Oyf5TNS05kOY2oNzN2m1ElK",
            "ncz8HkywhjpU05mc4J1WRcQ1uhyMDJ2O",
            "XtPAtLpByQxCGClbaNFDpCWNX0D1lZEz",
            "NT11cUzYZAa3u2olZU6uqbgsYlVvsSKuvinX/zMq",
            AWS_DOC_SECRET, // no key name: only the generic detector sees it
            "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        ] {
            assert_eq!(
                entropy_hits(cfg, &format!("the key is {k}. ok")),
                vec![k],
                "{k}"
            );
        }
        // Only the value of `name=value` is reported; padding is kept.
        let text = "api_key=ncz8HkywhjpU05mc4J1WRcQ1uhyMDJ2O==&x=1";
        assert_eq!(
            entropy_hits(cfg, text),
            vec!["ncz8HkywhjpU05mc4J1WRcQ1uhyMDJ2O=="]
        );
        // Exact offsets, with a sentence-ending period excluded.
        let text = "use 18c6EudM7Oyf5TNS05kOY2oNzN2m1ElK.";
        let d = SecretsDetector::new(&[SecretEntity::HighEntropy], cfg);
        assert_eq!(spans(&d, text), vec![(4, 36, SecretEntity::HighEntropy)]);
    }

    #[test]
    fn high_entropy_ignores_ordinary_text() {
        let cfg = EntropyConfig::default();
        for t in [
            "Internationalization considerations notwithstanding",
            "snake_case_identifiers_like_this_one",
            "my_variable_name_version_2_final",
            "src/policy/detect/secrets.rs",
            "https://example.com/path/to/page",
            "https://example.com/api/v2/users/1234567/profile?page=10",
            "2024-01-15T10:30:00Z and 2024-01-15T10:30:00.123456789+02:00",
            "123e4567-e89b-12d3-a456-426614174000",
            "request 123E4567-E89B-12D3-A456-426614174000/attachments/98765",
            "/var/log/app-2024-01-15.log",
            "ip-10-0-1-23.eu-west-1.compute.internal",
            "getUserAccountById2024Handler AbstractSingletonProxyFactoryBean2",
            "1234567890123456789012345678901234567890",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b", // hex SHA: max 4.0 bits/char
            "v1.2.3-beta.4+build.20240115.linux-x86_64",
        ] {
            assert!(
                entropy_hits(cfg, t).is_empty(),
                "fired on {t:?}: {:?}",
                entropy_hits(cfg, t)
            );
        }
    }

    #[test]
    fn high_entropy_base64_text_fires_by_design() {
        // Base64 cannot be told apart from key material without decoding; it often carries
        // credentials (Basic auth), so it is flagged.
        let b64 = "dGhlIHF1aWNrIGJyb3duIGZveCBqdW1wcw==";
        assert_eq!(entropy_hits(EntropyConfig::default(), b64), vec![b64]);
    }

    #[test]
    fn high_entropy_threshold_and_min_length_are_honored() {
        let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b";
        let low = EntropyConfig {
            threshold: 3.5,
            min_length: 24,
        };
        let high = EntropyConfig {
            threshold: 5.0,
            min_length: 24,
        };
        assert_eq!(entropy_hits(low, sha), vec![sha]);
        assert!(entropy_hits(high, sha).is_empty());
        assert!(entropy_hits(EntropyConfig::default(), sha).is_empty());

        let key = "18c6EudM7Oyf5TNS05kOY2oNzN2m1ElK"; // 32 chars, ~4.6 bits
        let at = |min_length| EntropyConfig {
            threshold: 4.0,
            min_length,
        };
        assert_eq!(entropy_hits(at(32), key), vec![key]);
        assert!(entropy_hits(at(33), key).is_empty());
        // Padding does not count towards the length.
        assert!(entropy_hits(at(33), &format!("{key}=")).is_empty());
    }

    #[test]
    fn specific_detectors_win_over_high_entropy() {
        let d = all();
        let text = format!("a={AWS_DOC_KEY} b={GH_DOC_TOKEN} c={JWT_IO}");
        let got: Vec<_> = d.find(&text).into_iter().map(|m| m.entity).collect();
        assert_eq!(
            got,
            vec![
                SecretEntity::AwsAccessKey,
                SecretEntity::GithubToken,
                SecretEntity::Jwt
            ]
        );
        // A high-entropy tail glued to a specific match is still reported separately.
        let text = format!("{AWS_DOC_KEY}.18c6EudM7Oyf5TNS05kOY2oNzN2m1ElK");
        assert_eq!(
            spans(&d, &text),
            vec![
                (0, 20, SecretEntity::AwsAccessKey),
                (21, 53, SecretEntity::HighEntropy)
            ]
        );
        // With the specific detector disabled the generic one still catches the token.
        let d = SecretsDetector::new(&[SecretEntity::HighEntropy], EntropyConfig::default());
        assert_eq!(d.find(GH_DOC_TOKEN)[0].entity, SecretEntity::HighEntropy);
    }

    // ---- Mixed prose -----------------------------------------------------------------------------

    #[test]
    fn four_kb_mixed_prose() {
        let prose = "The deployment on 2024-01-15T10:30:00Z rolled out version v1.2.3 to \
            eu-west-1. See https://example.com/docs/runbook/section-4 and the file \
            src/policy/detect/secrets.rs for details. Request 123e4567-e89b-12d3-a456-426614174000 \
            failed with status 503 after 30000 ms; retry budget was 3. The quick brown fox jumps \
            over the lazy dog, and snake_case_identifiers_like_this_one are fine too. ";
        let secrets: Vec<(SecretEntity, String)> = vec![
            (SecretEntity::AwsAccessKey, AWS_DOC_KEY.to_string()),
            (SecretEntity::GithubToken, GH_DOC_TOKEN.to_string()),
            (SecretEntity::Jwt, JWT_IO.to_string()),
            (SecretEntity::AnthropicKey, ANTHROPIC.to_string()),
            (SecretEntity::PrivateKey, RSA_KEY.to_string()),
            (
                SecretEntity::HighEntropy,
                "ncz8HkywhjpU05mc4J1WRcQ1uhyMDJ2O".to_string(),
            ),
        ];
        let mut text = String::new();
        let mut expected = Vec::new();
        let mut i = 0;
        while text.len() < 4096 {
            text.push_str(prose);
            let (entity, s) = &secrets[i % secrets.len()];
            text.push_str("Credential: ");
            expected.push((*entity, s.clone()));
            text.push_str(s);
            text.push_str(" (rotate it!) ");
            i += 1;
        }
        text.push_str("Ünïcödé tail ✓ 日本語");
        assert!(text.len() >= 4096);
        let found = all().find(&text);
        check_invariants(&text, &found);
        let got: Vec<_> = found
            .iter()
            .map(|m| (m.entity, text[m.start..m.end].to_string()))
            .collect();
        assert_eq!(got, expected);
    }

    // ---- Properties ---------------------------------------------------------------------------

    fn mixed_strategy() -> impl Strategy<Value = String> {
        let parts = prop_oneof![
            "[A-Za-z0-9+/=]{1,12}",
            Just("-".to_string()),
            Just("sk-".to_string()),
            Just("sk-ant-".to_string()),
            Just("AKIA".to_string()),
            Just("eyJ".to_string()),
            Just(".".to_string()),
            Just(" ".to_string()),
            Just("\n".to_string()),
            Just("_".to_string()),
            Just("=".to_string()),
            Just("ghp_".to_string()),
            Just("glpat-".to_string()),
            Just("xoxb-".to_string()),
            Just("AIza".to_string()),
            Just("aws_secret_access_key = ".to_string()),
            Just("https://hooks.slack.com/services/T0/B0/".to_string()),
            Just("-----BEGIN RSA PRIVATE KEY-----".to_string()),
            Just("-----END RSA PRIVATE KEY-----".to_string()),
            Just("é日".to_string()),
        ];
        prop::collection::vec(parts, 0..80).prop_map(|v| v.concat())
    }

    fn detectors() -> [SecretsDetector; 2] {
        [
            all(),
            SecretsDetector::new(
                &SecretEntity::ALL,
                EntropyConfig {
                    threshold: 0.0,
                    min_length: 1,
                },
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_strings_keep_invariants(text in any::<String>()) {
            for d in detectors() {
                check_invariants(&text, &d.find(&text));
            }
        }

        #[test]
        fn mixed_tokens_keep_invariants(text in mixed_strategy()) {
            for d in detectors() {
                check_invariants(&text, &d.find(&text));
            }
            let _ = shannon_entropy(&text);
        }
    }
}
