//! IP addresses: IPv4 dotted quads and IPv6 in full, compressed or IPv4-tailed form.

use std::net::Ipv6Addr;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;

use super::{boundary_after, boundary_before, is_word, prev_char, regex};
use crate::policy::detect::context::line_before;

static IPV4_RE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"));

fn is_ipv4_octets(s: &str) -> bool {
    s.split('.')
        .all(|o| !(o.len() > 1 && o.starts_with('0')) && o.parse::<u16>().is_ok_and(|v| v <= 255))
}

/// A word right before a dotted quad that makes it a version or an OID, not an address:
/// `version 10.2.3.4`, `v10.2.3.4`, `build: 6.1.7.601`, `OID 1.3.6.1`.
static VERSION_CONTEXT: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b(?:version|ver|v|release|build|firmware|fw|rev|revision|patch|update|kb|oid|mib|snmp|driver|bios|agent|sensor|engine|signatures?|definitions?)\s*[:=#]?\s*$",
    )
});

/// Bytes before a candidate searched for [`VERSION_CONTEXT`].
const CONTEXT_BYTES: usize = 24;

/// Whether a version word ends right before `start`, on the same line.
fn version_context(text: &str, start: usize) -> bool {
    VERSION_CONTEXT.is_match(line_before(text, start, CONTEXT_BYTES))
}

/// IPv4 spans (dotted quad, no leading zeros, not a version or OID), in text order.
pub(super) fn find_ipv4s(text: &str) -> Vec<(usize, usize)> {
    IPV4_RE
        .find_iter(text)
        .filter(|m| {
            boundary_before(text, m.start(), &['.'])
                && boundary_after(text, m.end(), &['.'])
                && is_ipv4_octets(m.as_str())
                && !version_context(text, m.start())
        })
        .map(|m| (m.start(), m.end()))
        .collect()
}

/// Hex/colon runs, with an optional embedded dotted-quad tail.
static IPV6_RE: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"[0-9A-Fa-f:]*:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:]*")
});

/// IPv6 address spans, in text order.
pub(super) fn find_ipv6s(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    for m in IPV6_RE.find_iter(text) {
        let (mut s, mut e) = (m.start(), m.end());
        if prev_char(text, s).is_some_and(|c| is_word(c) || c == '.') {
            // Glued to a preceding word ("ipv6:fe80::1"): drop the leading
            // segment up to a single colon, which then acts as a key separator.
            let Some(k) = text[s..e].find(':').map(|k| s + k) else {
                continue;
            };
            if b.get(k + 1) == Some(&b':') {
                continue;
            }
            s = k + 1;
        } else if b[s] == b':' && b.get(s + 1) != Some(&b':') {
            s += 1;
        }
        if e >= s + 2 && b[e - 1] == b':' && b[e - 2] != b':' {
            e -= 1; // "fe80::1: reachable"
        }
        if !boundary_after(text, m.end(), &['.']) || s >= e {
            continue;
        }
        let cand = &text[s..e];
        let colons = cand.bytes().filter(|&c| c == b':').count();
        // Requiring a decimal digit drops code such as `a::b` or `dead::beef`.
        if colons >= 2
            && cand.bytes().any(|c| c.is_ascii_digit())
            && Ipv6Addr::from_str(cand).is_ok()
        {
            out.push((s, e));
        }
    }
    out
}
