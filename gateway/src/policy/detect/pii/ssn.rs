//! US social security numbers (`AAA-GG-SSSS`), minus the never-issued ranges.

use std::sync::LazyLock;

use regex::Regex;

use super::{boundary_after, boundary_before, regex, NUM_JOINERS};

static SSN_RE: LazyLock<Regex> = LazyLock::new(|| regex(r"[0-9]{3}-[0-9]{2}-[0-9]{4}"));

/// US SSN spans outside the never-issued ranges, in text order.
pub(super) fn find_ssns(text: &str) -> Vec<(usize, usize)> {
    SSN_RE
        .find_iter(text)
        .filter(|m| {
            boundary_before(text, m.start(), NUM_JOINERS)
                && boundary_after(text, m.end(), NUM_JOINERS)
        })
        .filter(|m| {
            let s = m.as_str();
            let area: u16 = s[0..3].parse().unwrap_or(0);
            let group = &s[4..6];
            let serial = &s[7..11];
            area != 0 && area != 666 && area < 900 && group != "00" && serial != "0000"
        })
        .map(|m| (m.start(), m.end()))
        .collect()
}
