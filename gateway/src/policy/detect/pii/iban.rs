//! IBANs (ISO 13616): registry length per country and mod-97 checksum.

use super::{is_word, next_char, prev_char};

/// Starts of `[A-Z]{2}[0-9]{2}`, non-overlapping and leftmost like the regex's `find_iter`.
/// A byte loop: the pattern has no literal to skip to, and the regex engine read prose at a
/// fifth of this speed.
pub(super) fn iban_starts(text: &str) -> Vec<usize> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= b.len() {
        if b[i].is_ascii_uppercase()
            && b[i + 1].is_ascii_uppercase()
            && b[i + 2].is_ascii_digit()
            && b[i + 3].is_ascii_digit()
        {
            out.push(i);
            i += 4;
        } else {
            i += 1;
        }
    }
    out
}

/// IBAN lengths from the SWIFT ISO 13616 registry.
pub(super) const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BI", 27),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DJ", 27),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FK", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HN", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("LY", 25),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MN", 20),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NI", 28),
    ("NL", 18),
    ("NO", 15),
    ("OM", 23),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("RU", 33),
    ("SA", 24),
    ("SC", 31),
    ("SD", 18),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("SO", 23),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
    ("YE", 30),
];

fn iban_length(country: &str) -> Option<usize> {
    IBAN_LENGTHS
        .binary_search_by(|&(c, _)| c.cmp(country))
        .ok()
        .map(|k| IBAN_LENGTHS[k].1)
}

/// ISO 7064 mod 97-10 over the rearranged IBAN (uppercase ASCII alphanumerics).
fn iban_checksum_ok(chars: &[u8]) -> bool {
    let (head, tail) = chars.split_at(4);
    let mut r: u32 = 0;
    for &c in tail.iter().chain(head) {
        r = if c.is_ascii_digit() {
            (r * 10 + u32::from(c - b'0')) % 97
        } else {
            (r * 100 + u32::from(c - b'A') + 10) % 97
        };
    }
    r == 1
}

fn is_iban_char(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit()
}

/// Tries the compact and the 4-grouped form of an IBAN of `len` chars at `s`;
/// returns the end offset.
fn match_iban_at(text: &str, s: usize, len: usize) -> Option<usize> {
    let b = text.as_bytes();
    let ends_cleanly = |e: usize| !next_char(text, e).is_some_and(is_word);

    let compact_end = s + len;
    if compact_end <= b.len()
        && b[s + 4..compact_end].iter().all(|&c| is_iban_char(c))
        && ends_cleanly(compact_end)
        && iban_checksum_ok(&b[s..compact_end])
    {
        return Some(compact_end);
    }

    let mut chars: Vec<u8> = b[s..s + 4].to_vec();
    let mut pos = s + 4;
    while chars.len() < len {
        if b.get(pos) != Some(&b' ') {
            return None;
        }
        pos += 1;
        let take = (len - chars.len()).min(4);
        let group = b.get(pos..pos + take)?;
        if !group.iter().all(|&c| is_iban_char(c)) {
            return None;
        }
        chars.extend_from_slice(group);
        pos += take;
    }
    (ends_cleanly(pos) && iban_checksum_ok(&chars)).then_some(pos)
}

/// IBAN spans (compact or in groups of four), in text order.
pub(super) fn find_ibans(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut min_start = 0;
    for s in iban_starts(text) {
        if s < min_start || prev_char(text, s).is_some_and(is_word) {
            continue;
        }
        let Some(len) = iban_length(&text[s..s + 2]) else {
            continue;
        };
        if let Some(e) = match_iban_at(text, s, len) {
            out.push((s, e));
            min_start = e;
        }
    }
    out
}
