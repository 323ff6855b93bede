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
//! or by a canonical UUID (`8-4-4-4-12` hex).
//!
//! Indicators ([`EntropyConfig::keep_indicators`], on by default): UUIDs and hex strings of a
//! digest's length (32, 40, 56, 64, 96 or 128 digits: MD5, SHA-1 and git commit ids, SHA-2) are
//! what a SOC analyst pivots on, so they are kept, unless the same line names a secret right
//! before them (`password=`, `"api_key": "`, `token:`, `Bearer `): then they are reported
//! whatever their entropy. A run is split after an internal
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

mod entropy;
mod patterns;
mod private_key;
#[cfg(test)]
mod tests;

pub use entropy::shannon_entropy;

use patterns::{scan_group, token_detectors};
use private_key::scan_private_keys;

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
    /// Keep indicators an analyst needs: hex digests (MD5, SHA-1, SHA-2, git commit ids) and
    /// UUIDs are not reported unless a secret context comes right before them on their line
    /// (`password=`, `api_key:`, `token`, `Bearer`), which reports them whatever their entropy.
    pub keep_indicators: bool,
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
            keep_indicators: true,
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
        let mut specific = Vec::new();
        for (entity, t, accept) in token_detectors() {
            if self.is_enabled(entity) {
                scan_group(&t.re, t.left_boundary, text, entity, accept, &mut specific);
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
}
