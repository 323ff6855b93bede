//! Vendor token patterns (AWS, GitHub, GitLab, Slack, OpenAI, Anthropic, Google, JWT) and the
//! group-1 scan they share with the UUID exclusion of the high-entropy detector.

use std::sync::LazyLock;

use regex::Regex;

use super::{SecretEntity, SecretMatch};

/// Compiles a built-in pattern; they are static, so a failure is a bug caught by any test.
pub(super) fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("secrets detector regexes are static and valid")
}

/// A left word boundary written as a pattern prefix (the regex crate has no look-behind).
const LEFT: &str = "(?:^|[^A-Za-z0-9_])";

/// A token pattern with its [`LEFT`] prefix taken off and checked by [`scan_group`] instead:
/// a pattern that starts with a character class gets no literal prefilter, so each one would
/// read the whole text; starting at `AKIA`, `ghp_`, `sk-`... it skips to the candidates.
pub(super) struct Token {
    /// The pattern without the prefix; group 1 is the secret.
    pub re: Regex,
    /// Whether the secret must not follow a word character.
    pub left_boundary: bool,
}

fn token(pattern: &str) -> Token {
    match pattern.strip_prefix(LEFT) {
        Some(rest) => Token {
            re: compile(rest),
            left_boundary: true,
        },
        None => Token {
            re: compile(pattern),
            left_boundary: false,
        },
    }
}

// Token patterns: group 1 is the secret. The search resumes at the end of group 1 so a
// consumed trailing boundary character can serve as the next match's left boundary.

static AWS_ACCESS_KEY_RE: LazyLock<Token> = LazyLock::new(|| {
    token(
        r"(?:^|[^A-Za-z0-9_])((?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16})(?:$|[^A-Za-z0-9_])",
    )
});

static AWS_SECRET_KEY_RE: LazyLock<Token> = LazyLock::new(|| {
    token(
        r#"(?i:aws[_.\-]?secret(?:[_.\-]?access)?(?:[_.\-]?key)?|secret[_.\-]?access[_.\-]?key)["']?[ \t]*(?:=>|:=|=|:|>)[ \t]*["']?([A-Za-z0-9/+]{40})(?:$|[^A-Za-z0-9/+])"#,
    )
});

static GITHUB_TOKEN_RE: LazyLock<Token> = LazyLock::new(|| {
    token(
        r"(?:^|[^A-Za-z0-9_])(gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})(?:$|[^A-Za-z0-9_])",
    )
});

static GITLAB_TOKEN_RE: LazyLock<Token> =
    LazyLock::new(|| token(r"(?:^|[^A-Za-z0-9_])((?:glpat|gldt|glrt|glptt)-[A-Za-z0-9_-]{20,})"));

static SLACK_TOKEN_RE: LazyLock<Token> = LazyLock::new(|| {
    token(
        r"(?:^|[^A-Za-z0-9_])((?:xox[abposr]|xoxe(?:\.xox[bp])?)-[A-Za-z0-9-]{10,}|xapp-[0-9]-[A-Za-z0-9-]{10,})",
    )
});

static SLACK_WEBHOOK_RE: LazyLock<Token> = LazyLock::new(|| {
    token(
        r"(https?://hooks\.slack\.com/(?:services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+|(?:workflows|triggers)/T[A-Z0-9]+/[A-Za-z0-9]+(?:/[A-Za-z0-9]+)+))",
    )
});

static OPENAI_KEY_RE: LazyLock<Token> = LazyLock::new(|| {
    token(r"(?:^|[^A-Za-z0-9_])(sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,})")
});

static ANTHROPIC_KEY_RE: LazyLock<Token> =
    LazyLock::new(|| token(r"(?:^|[^A-Za-z0-9_])(sk-ant-[A-Za-z0-9_-]{32,})"));

static GOOGLE_API_KEY_RE: LazyLock<Token> =
    LazyLock::new(|| token(r"(?:^|[^A-Za-z0-9_])(AIza[0-9A-Za-z_-]{35})(?:$|[^0-9A-Za-z_-])"));

static JWT_RE: LazyLock<Token> = LazyLock::new(|| {
    token(r"(?:^|[^A-Za-z0-9_])(eyJ[A-Za-z0-9_-]{7,}\.eyJ[A-Za-z0-9_-]{7,}\.[A-Za-z0-9_-]{10,})")
});

/// The vendor token detectors, in the order [`super::SecretsDetector::find`] runs them.
pub(super) fn token_detectors() -> [(SecretEntity, &'static Token, Accept); 10] {
    use SecretEntity as E;
    [
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
    ]
}

/// Post-filter applied to a candidate token before it is reported.
pub(super) type Accept = fn(&str) -> bool;

/// Accepts every candidate.
pub(super) fn accept_any(_: &str) -> bool {
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
pub(super) fn scan_group(
    re: &Regex,
    left_boundary: bool,
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
        if left_boundary
            && text[..start]
                .bytes()
                .next_back()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            // Inside a longer word: a match may still start further on.
            pos = start + 1;
            while !text.is_char_boundary(pos) {
                pos += 1;
            }
            continue;
        }
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
