//! E-mail addresses: a permissive regex, then boundary and length checks in code.

use std::sync::LazyLock;

use regex::Regex;

use super::{is_word, next_char, prev_char, regex};

static EMAIL_RE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"[\w.%+\-]+@[\p{L}\p{N}](?:[\p{L}\p{N}\-]*[\p{L}\p{N}])?(?:\.[\p{L}\p{N}](?:[\p{L}\p{N}\-]*[\p{L}\p{N}])?)*\.(?:xn--[A-Za-z0-9]+|\p{L}{2,})",
    )
});

/// E-mail address spans, in text order.
pub(super) fn find_emails(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for m in EMAIL_RE.find_iter(text) {
        let (mut s, e) = (m.start(), m.end());
        if prev_char(text, s).is_some_and(|c| is_word(c) || ".%+-@".contains(c)) {
            continue;
        }
        if next_char(text, e).is_some_and(|c| is_word(c) || c == '@') {
            continue;
        }
        let Some(at) = text[s..e].find('@').map(|k| s + k) else {
            continue;
        };
        // Prose may run into the address ("wait...bob@x.com"): cut after an
        // ellipsis and drop leading dots.
        if let Some(k) = text[s..at].rfind("...") {
            s += k + 3;
        }
        while s < at && text.as_bytes()[s] == b'.' {
            s += 1;
        }
        let local = &text[s..at];
        let domain = &text[at + 1..e];
        let local_ok = !local.is_empty()
            && !local.ends_with('.')
            && !local.contains("..")
            && local.chars().count() <= 64;
        let domain_ok =
            domain.len() <= 253 && domain.split('.').all(|label| label.chars().count() <= 63);
        if local_ok && domain_ok {
            out.push((s, e));
        }
    }
    out
}
