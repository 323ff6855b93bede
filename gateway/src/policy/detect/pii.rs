//! PII detection for the guardrails: e-mail addresses, phone numbers, payment
//! card numbers, IBANs, US social security numbers and IP addresses.
//!
//! Every detector works in two steps: a cheap regex (compiled once) finds
//! candidates, then code validates them (checksums, registry lengths, numeric
//! ranges, word boundaries). The `regex` crate has no look-around, so all
//! boundary rules live in code. Every step is linear in the input length.

use std::net::Ipv6Addr;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;

/// A PII entity type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiEntity {
    /// E-mail address (`local@domain.tld`).
    Email,
    /// Phone number: E.164 (`+…`) or a common separated national format.
    Phone,
    /// Payment card number (Luhn and issuer prefix validated).
    CreditCard,
    /// International Bank Account Number (ISO 13616, mod-97 validated).
    Iban,
    /// US Social Security Number (`AAA-GG-SSSS`).
    UsSsn,
    /// IPv4 address (dotted quad).
    Ipv4,
    /// IPv6 address (full, compressed or with an embedded IPv4 tail).
    Ipv6,
}

impl PiiEntity {
    /// Every entity type, in declaration order.
    pub const ALL: [PiiEntity; 7] = [
        PiiEntity::Email,
        PiiEntity::Phone,
        PiiEntity::CreditCard,
        PiiEntity::Iban,
        PiiEntity::UsSsn,
        PiiEntity::Ipv4,
        PiiEntity::Ipv6,
    ];

    /// Name used in policy YAML and reports: "email", "phone", "credit_card", "iban", "us_ssn", "ipv4", "ipv6".
    pub fn name(self) -> &'static str {
        match self {
            PiiEntity::Email => "email",
            PiiEntity::Phone => "phone",
            PiiEntity::CreditCard => "credit_card",
            PiiEntity::Iban => "iban",
            PiiEntity::UsSsn => "us_ssn",
            PiiEntity::Ipv4 => "ipv4",
            PiiEntity::Ipv6 => "ipv6",
        }
    }

    /// Inverse of [`PiiEntity::name`] (exact, case-sensitive match).
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == s)
    }

    /// Placeholder label for redaction: "EMAIL", "PHONE", "CARD", "IBAN", "SSN", "IP", "IP".
    pub fn label(self) -> &'static str {
        match self {
            PiiEntity::Email => "EMAIL",
            PiiEntity::Phone => "PHONE",
            PiiEntity::CreditCard => "CARD",
            PiiEntity::Iban => "IBAN",
            PiiEntity::UsSsn => "SSN",
            PiiEntity::Ipv4 | PiiEntity::Ipv6 => "IP",
        }
    }
}

/// One match; byte offsets into the scanned text, always on char boundaries, start < end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiiMatch {
    /// Byte offset of the first byte of the match.
    pub start: usize,
    /// Byte offset one past the last byte of the match.
    pub end: usize,
    /// Entity type that matched.
    pub entity: PiiEntity,
}

/// Detects the enabled entities. Regexes are compiled once (process-wide
/// statics), so construction is cheap.
#[derive(Debug, Clone)]
pub struct PiiDetector {
    enabled: [bool; 7],
}

impl PiiDetector {
    /// Creates a detector for the given entity types (duplicates are ignored).
    pub fn new(enabled: &[PiiEntity]) -> Self {
        let mut set = [false; 7];
        for &e in enabled {
            set[e as usize] = true;
        }
        Self { enabled: set }
    }

    /// All matches of enabled entities, sorted by (start, longer first). Matches of DIFFERENT entities may overlap
    /// (the caller resolves overlaps); matches of the same entity do not.
    pub fn find(&self, text: &str) -> Vec<PiiMatch> {
        let on = |e: PiiEntity| self.enabled[e as usize];
        let mut out = Vec::new();
        let mut push = |spans: &[(usize, usize)], entity: PiiEntity| {
            out.extend(
                spans
                    .iter()
                    .map(|&(start, end)| PiiMatch { start, end, entity }),
            );
        };

        // IBANs and cards are computed whenever a detector that defers to them
        // is on: a validated card or IBAN is never also reported as a phone
        // (or, for IBANs, as a card), even when its own entity is disabled.
        let need_cards = on(PiiEntity::CreditCard) || on(PiiEntity::Phone);
        let need_ibans = need_cards || on(PiiEntity::Iban);
        let ibans = if need_ibans {
            find_ibans(text)
        } else {
            Vec::new()
        };
        let cards: Vec<(usize, usize)> = if need_cards {
            find_cards(text)
                .into_iter()
                .filter(|&(s, e)| !overlaps_any(&ibans, s, e))
                .collect()
        } else {
            Vec::new()
        };

        if on(PiiEntity::Email) {
            push(&find_emails(text), PiiEntity::Email);
        }
        if on(PiiEntity::Phone) {
            let phones: Vec<(usize, usize)> = find_phones(text)
                .into_iter()
                .filter(|&(s, e)| !overlaps_any(&cards, s, e) && !overlaps_any(&ibans, s, e))
                .collect();
            push(&phones, PiiEntity::Phone);
        }
        if on(PiiEntity::CreditCard) {
            push(&cards, PiiEntity::CreditCard);
        }
        if on(PiiEntity::Iban) {
            push(&ibans, PiiEntity::Iban);
        }
        if on(PiiEntity::UsSsn) {
            push(&find_ssns(text), PiiEntity::UsSsn);
        }
        if on(PiiEntity::Ipv4) {
            push(&find_ipv4s(text), PiiEntity::Ipv4);
        }
        if on(PiiEntity::Ipv6) {
            push(&find_ipv6s(text), PiiEntity::Ipv6);
        }

        out.sort_by(|a, b| {
            a.start
                .cmp(&b.start)
                .then(b.end.cmp(&a.end))
                .then(a.entity.cmp(&b.entity))
        });
        out
    }
}

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// Punctuation that glues digit runs together (`1.5`, `3-4`, `12/05`).
const NUM_JOINERS: &[char] = &['.', '-', '/'];

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn prev_char(text: &str, i: usize) -> Option<char> {
    text[..i].chars().next_back()
}

fn next_char(text: &str, i: usize) -> Option<char> {
    text[i..].chars().next()
}

/// True when a token may start at `i`: the previous char is not a word char,
/// nor a joiner that is itself preceded by a digit.
fn boundary_before(text: &str, i: usize, joiners: &[char]) -> bool {
    match prev_char(text, i) {
        None => true,
        Some(c) if is_word(c) => false,
        Some(c) if joiners.contains(&c) => {
            !prev_char(text, i - c.len_utf8()).is_some_and(|p| p.is_ascii_digit())
        }
        Some(_) => true,
    }
}

/// True when a token may end at `i`: the next char is not a word char, nor a
/// joiner that is itself followed by a digit.
fn boundary_after(text: &str, i: usize, joiners: &[char]) -> bool {
    match next_char(text, i) {
        None => true,
        Some(c) if is_word(c) => false,
        Some(c) if joiners.contains(&c) => {
            !next_char(text, i + c.len_utf8()).is_some_and(|n| n.is_ascii_digit())
        }
        Some(_) => true,
    }
}

/// `spans` must be sorted by start and non-overlapping.
fn overlaps_any(spans: &[(usize, usize)], start: usize, end: usize) -> bool {
    let k = spans.partition_point(|&(s, _)| s < end);
    k > 0 && spans[k - 1].1 > start
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("PII detector regex must compile")
}

// ---------------------------------------------------------------------------
// E-mail
// ---------------------------------------------------------------------------

static EMAIL_RE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"[\w.%+\-]+@[\p{L}\p{N}](?:[\p{L}\p{N}\-]*[\p{L}\p{N}])?(?:\.[\p{L}\p{N}](?:[\p{L}\p{N}\-]*[\p{L}\p{N}])?)*\.(?:xn--[A-Za-z0-9]+|\p{L}{2,})",
    )
});

fn find_emails(text: &str) -> Vec<(usize, usize)> {
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

// ---------------------------------------------------------------------------
// Payment cards
// ---------------------------------------------------------------------------

/// Digits optionally grouped by single spaces or dashes.
static DIGIT_RUN_RE: LazyLock<Regex> = LazyLock::new(|| regex(r"[0-9]+(?:[ \-][0-9]+)*"));

fn luhn_ok(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = u32::from(x);
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Digits (values 0–9) form a Luhn-valid number with a known issuer prefix and length.
fn is_valid_card(d: &[u8]) -> bool {
    let n = d.len();
    if !(13..=19).contains(&n) {
        return false;
    }
    let prefix = |k: usize| d[..k].iter().fold(0u32, |acc, &x| acc * 10 + u32::from(x));
    let (p2, p3, p4) = (prefix(2), prefix(3), prefix(4));
    let brand_ok = (d[0] == 4 && matches!(n, 13 | 16 | 19)) // Visa
        || (((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && n == 16) // Mastercard
        || ((p2 == 34 || p2 == 37) && n == 15) // Amex
        || ((p4 == 6011 || p2 == 65 || (644..=649).contains(&p3)) && n >= 16) // Discover
        || ((3528..=3589).contains(&p4) && n >= 16) // JCB
        || (((300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39) && n >= 14) // Diners
        || (p2 == 62 && n >= 16) // UnionPay
        || ((2200..=2204).contains(&p4) && n >= 16); // Mir
    brand_ok && luhn_ok(d)
}

/// A run of digits inside a candidate: byte range and the separator before it.
#[derive(Debug, Clone, Copy)]
struct DigitGroup {
    start: usize,
    end: usize,
    sep: Option<u8>,
}

fn find_cards(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    for m in DIGIT_RUN_RE.find_iter(text) {
        let mut groups: Vec<DigitGroup> = Vec::new();
        let mut i = m.start();
        let mut sep = None;
        while i < m.end() {
            if bytes[i].is_ascii_digit() {
                let s = i;
                while i < m.end() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                groups.push(DigitGroup {
                    start: s,
                    end: i,
                    sep,
                });
            } else {
                sep = Some(bytes[i]);
                i += 1;
            }
        }

        let mut gi = 0;
        while gi < groups.len() {
            let start_ok = if gi == 0 {
                boundary_before(text, groups[0].start, NUM_JOINERS)
            } else {
                groups[gi].sep == Some(b' ')
            };
            if !start_ok {
                gi += 1;
                continue;
            }
            let mut digits: Vec<u8> = Vec::with_capacity(19);
            let mut best = None;
            for gj in gi..groups.len() {
                let g = groups[gj];
                if gj > gi {
                    // Consistent separator; inner groups of plausible size.
                    let prev_len = groups[gj - 1].end - groups[gj - 1].start;
                    let min_len = if gj - 1 == gi { 4 } else { 3 };
                    if g.sep != groups[gi + 1].sep || prev_len < min_len {
                        break;
                    }
                }
                digits.extend(bytes[g.start..g.end].iter().map(|b| b - b'0'));
                if digits.len() > 19 {
                    break;
                }
                let end_ok = match groups.get(gj + 1) {
                    None => boundary_after(text, g.end, NUM_JOINERS),
                    Some(next) => next.sep == Some(b' '),
                };
                if end_ok && is_valid_card(&digits) {
                    best = Some(gj);
                }
            }
            match best {
                Some(gj) => {
                    out.push((groups[gi].start, groups[gj].end));
                    gi = gj + 1;
                }
                None => gi += 1,
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Phone numbers
// ---------------------------------------------------------------------------

/// Phone-shaped run: optional `+` (or `(+`), digit groups, single ` ` `.` `-`
/// separators, parenthesised groups. The structure is validated in code.
static PHONE_RUN_RE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?:\(\+|\+)?\(?[0-9](?:[0-9]|[ .\-]?\(?[0-9]|\)[ .\-]?\(?[0-9])*"));

/// A digit group inside a phone run.
#[derive(Debug, Clone, Copy)]
struct PhoneGroup {
    /// Byte range including the parentheses, if any.
    start: usize,
    end: usize,
    /// Byte range of the digits.
    dstart: usize,
    dend: usize,
    paren: bool,
    /// Separator before the group (`None`: first group or glued to a parenthesised group).
    sep: Option<u8>,
}

impl PhoneGroup {
    fn len(&self) -> usize {
        self.dend - self.dstart
    }
}

/// A well-formed piece of a phone run: an optional leading `+` and its groups.
struct PhoneRun {
    plus: Option<usize>,
    groups: Vec<PhoneGroup>,
}

/// Splits a phone-shaped run into well-formed pieces (unbalanced parentheses cut it).
fn parse_phone_run(text: &str, rs: usize, re: usize) -> Vec<PhoneRun> {
    let b = text.as_bytes();
    let mut runs = Vec::new();
    let mut cur = PhoneRun {
        plus: None,
        groups: Vec::new(),
    };
    let mut i = rs;
    if b[i] == b'+' {
        cur.plus = Some(i);
        i += 1;
    } else if b[i] == b'(' && b.get(i + 1) == Some(&b'+') {
        // "(+44) 20 7946 0958": the country code is a parenthesised group.
        let ds = i + 2;
        let mut j = ds;
        while j < re && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > ds && j < re && b[j] == b')' {
            cur.plus = Some(i);
            cur.groups.push(PhoneGroup {
                start: i,
                end: j + 1,
                dstart: ds,
                dend: j,
                paren: true,
                sep: None,
            });
            i = j + 1;
        } else {
            // Unbalanced "(+": keep the `+`, drop the parenthesis.
            cur.plus = Some(i + 1);
            i = ds;
        }
    }
    let mut sep: Option<u8> = None;
    let flush = |cur: &mut PhoneRun, runs: &mut Vec<PhoneRun>| {
        let done = std::mem::replace(
            cur,
            PhoneRun {
                plus: None,
                groups: Vec::new(),
            },
        );
        if !done.groups.is_empty() {
            runs.push(done);
        }
    };
    while i < re {
        let c = b[i];
        if c.is_ascii_digit() {
            let s = i;
            while i < re && b[i].is_ascii_digit() {
                i += 1;
            }
            cur.groups.push(PhoneGroup {
                start: s,
                end: i,
                dstart: s,
                dend: i,
                paren: false,
                sep,
            });
            sep = None;
        } else if c == b'(' {
            let ds = i + 1;
            let mut j = ds;
            while j < re && b[j].is_ascii_digit() {
                j += 1;
            }
            if j > ds && j < re && b[j] == b')' {
                cur.groups.push(PhoneGroup {
                    start: i,
                    end: j + 1,
                    dstart: ds,
                    dend: j,
                    paren: true,
                    sep,
                });
                sep = None;
                i = j + 1;
            } else {
                flush(&mut cur, &mut runs);
                sep = None;
                i += 1;
            }
        } else if matches!(c, b' ' | b'.' | b'-') && !cur.groups.is_empty() {
            sep = Some(c);
            i += 1;
        } else {
            // Stray ')' (or a separator with nothing before it).
            flush(&mut cur, &mut runs);
            sep = None;
            i += 1;
        }
    }
    flush(&mut cur, &mut runs);
    runs
}

fn phone_digits(text: &str, groups: &[PhoneGroup]) -> Vec<u8> {
    let b = text.as_bytes();
    groups
        .iter()
        .flat_map(|g| b[g.dstart..g.dend].iter().map(|d| d - b'0'))
        .collect()
}

/// `(AAA) EEE-NNNN`, `AAA-EEE-NNNN`, `AAA.EEE.NNNN`, `AAA EEE NNNN`.
fn is_us_core(g: &[PhoneGroup]) -> bool {
    if g.len() != 3 || g[0].len() != 3 || g[1].len() != 3 || g[2].len() != 4 {
        return false;
    }
    if g[1].paren || g[2].paren {
        return false;
    }
    if g[0].paren {
        matches!(g[1].sep, None | Some(b' ')) && g[2].sep.is_some()
    } else {
        g[1].sep.is_some() && g[1].sep == g[2].sep
    }
}

/// Validates a candidate made of `g` (already boundary-checked).
fn is_valid_phone(text: &str, g: &[PhoneGroup], plus: bool) -> bool {
    let n: usize = g.iter().map(PhoneGroup::len).sum();
    // E.164: 7–15 digits. National formats: at least 10 digits in separated
    // groups (bare digit strings are IDs, amounts and timestamps far more often
    // than phone numbers).
    let n_ok = if plus {
        (7..=15).contains(&n)
    } else {
        (10..=15).contains(&n) && g.len() >= 2
    };
    if !n_ok {
        return false;
    }
    let d = phone_digits(text, g);
    if is_valid_card(&d) {
        return false;
    }
    if plus {
        // E.164: country code never starts with 0; NANP (+1) numbers have 11 digits.
        return d[0] != 0
            && (d[0] != 1 || n == 11)
            && g.len() <= 8
            && g.iter().filter(|x| x.len() == 1).count() <= 2
            && g.iter().filter(|x| x.paren).count() <= 1;
    }
    // Dotted quad (IPv4-like, e.g. with leading zeros).
    if g.len() == 4
        && g.iter().all(|x| !x.paren && x.len() <= 3)
        && g[1..].iter().all(|x| x.sep == Some(b'.'))
    {
        return false;
    }
    // US/NANP, optionally with a leading `1`.
    if is_us_core(g) {
        return true;
    }
    if g.len() == 4
        && !g[0].paren
        && d[0] == 1
        && g[0].len() == 1
        && g[1].sep.is_some()
        && is_us_core(&g[1..])
        && (g[1].paren || g[1].sep == g[2].sep)
    {
        return true;
    }
    // Trunk-prefix national numbers (UK, FR, DE, …): `0` + non-zero, 10–12 digits,
    // 2–6 groups of 2–8 digits, one consistent separator.
    let trunk = d[0] == 0
        && d[1] != 0
        && (10..=12).contains(&n)
        && g.len() <= 6
        && g.iter().all(|x| (2..=8).contains(&x.len()))
        && g[1..].iter().all(|x| !x.paren);
    if !trunk {
        return false;
    }
    if g[0].paren {
        matches!(g[1].sep, None | Some(b' ')) && g[2..].iter().all(|x| x.sep == Some(b' '))
    } else {
        g[1].sep.is_some() && g[2..].iter().all(|x| x.sep == g[1].sep)
    }
}

fn find_phones(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for m in PHONE_RUN_RE.find_iter(text) {
        for run in parse_phone_run(text, m.start(), m.end()) {
            let g = &run.groups;
            let mut gi = 0;
            while gi < g.len() {
                let has_plus = gi == 0 && run.plus.is_some();
                let start = if has_plus {
                    run.plus.unwrap_or(g[0].start)
                } else {
                    g[gi].start
                };
                let start_ok = if gi == 0 {
                    boundary_before(text, start, NUM_JOINERS)
                } else {
                    g[gi].sep == Some(b' ')
                };
                if !start_ok {
                    gi += 1;
                    continue;
                }
                let mut best = None;
                let mut ndigits = 0;
                let mut singles = 0;
                for gj in gi..g.len() {
                    ndigits += g[gj].len();
                    singles += usize::from(g[gj].len() == 1);
                    let ngroups = gj - gi + 1;
                    // Cheap structural limits (see `is_valid_phone`) keep this loop short.
                    let too_many = if has_plus {
                        ngroups > 8 || singles > 2
                    } else {
                        ngroups > 6
                    };
                    if ndigits > 15 || too_many {
                        break;
                    }
                    let end_ok = match g.get(gj + 1) {
                        None => boundary_after(text, g[gj].end, NUM_JOINERS),
                        Some(next) => next.sep == Some(b' '),
                    };
                    if end_ok && is_valid_phone(text, &g[gi..=gj], has_plus) {
                        best = Some(gj);
                    }
                }
                match best {
                    Some(gj) => {
                        out.push((start, g[gj].end));
                        gi = gj + 1;
                    }
                    None => gi += 1,
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// IBAN
// ---------------------------------------------------------------------------

static IBAN_START_RE: LazyLock<Regex> = LazyLock::new(|| regex(r"[A-Z]{2}[0-9]{2}"));

/// IBAN lengths from the SWIFT ISO 13616 registry.
const IBAN_LENGTHS: &[(&str, usize)] = &[
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

fn find_ibans(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut min_start = 0;
    for m in IBAN_START_RE.find_iter(text) {
        let s = m.start();
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

// ---------------------------------------------------------------------------
// US SSN
// ---------------------------------------------------------------------------

static SSN_RE: LazyLock<Regex> = LazyLock::new(|| regex(r"[0-9]{3}-[0-9]{2}-[0-9]{4}"));

fn find_ssns(text: &str) -> Vec<(usize, usize)> {
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

// ---------------------------------------------------------------------------
// IP addresses
// ---------------------------------------------------------------------------

static IPV4_RE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"));

fn is_ipv4_octets(s: &str) -> bool {
    s.split('.')
        .all(|o| !(o.len() > 1 && o.starts_with('0')) && o.parse::<u16>().is_ok_and(|v| v <= 255))
}

fn find_ipv4s(text: &str) -> Vec<(usize, usize)> {
    IPV4_RE
        .find_iter(text)
        .filter(|m| {
            boundary_before(text, m.start(), &['.'])
                && boundary_after(text, m.end(), &['.'])
                && is_ipv4_octets(m.as_str())
        })
        .map(|m| (m.start(), m.end()))
        .collect()
}

/// Hex/colon runs, with an optional embedded dotted-quad tail.
static IPV6_RE: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"[0-9A-Fa-f:]*:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:]*")
});

fn find_ipv6s(text: &str) -> Vec<(usize, usize)> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Matched substrings of `entity` when only `entity` is enabled.
    fn only(entity: PiiEntity, text: &str) -> Vec<&str> {
        PiiDetector::new(&[entity])
            .find(text)
            .into_iter()
            .map(|m| {
                assert_eq!(m.entity, entity);
                &text[m.start..m.end]
            })
            .collect()
    }

    /// Matched substrings of `entity` when every entity is enabled.
    fn with_all(entity: PiiEntity, text: &str) -> Vec<&str> {
        PiiDetector::new(&PiiEntity::ALL)
            .find(text)
            .into_iter()
            .filter(|m| m.entity == entity)
            .map(|m| &text[m.start..m.end])
            .collect()
    }

    fn assert_exact(entity: PiiEntity, text: &str, expected: &str) {
        assert_eq!(only(entity, text), vec![expected], "text: {text:?}");
    }

    fn assert_none(entity: PiiEntity, text: &str) {
        assert_eq!(only(entity, text), Vec::<&str>::new(), "text: {text:?}");
    }

    fn check_invariants(text: &str, found: &[PiiMatch]) {
        for m in found {
            assert!(m.start < m.end, "{m:?}");
            assert!(m.end <= text.len(), "{m:?}");
            assert!(text.is_char_boundary(m.start), "{m:?}");
            assert!(text.is_char_boundary(m.end), "{m:?}");
        }
        for w in found.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            assert!(
                a.start < b.start || (a.start == b.start && a.end >= b.end),
                "unsorted: {a:?} {b:?}"
            );
        }
        for e in PiiEntity::ALL {
            let same: Vec<&PiiMatch> = found.iter().filter(|m| m.entity == e).collect();
            for w in same.windows(2) {
                assert!(w[0].end <= w[1].start, "same-entity overlap: {w:?}");
            }
        }
    }

    // ----- entity metadata -------------------------------------------------

    #[test]
    fn names_labels_roundtrip() {
        let names: Vec<&str> = PiiEntity::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(
            names,
            [
                "email",
                "phone",
                "credit_card",
                "iban",
                "us_ssn",
                "ipv4",
                "ipv6"
            ]
        );
        let labels: Vec<&str> = PiiEntity::ALL.iter().map(|e| e.label()).collect();
        assert_eq!(
            labels,
            ["EMAIL", "PHONE", "CARD", "IBAN", "SSN", "IP", "IP"]
        );
        for e in PiiEntity::ALL {
            assert_eq!(PiiEntity::from_name(e.name()), Some(e));
        }
        assert_eq!(PiiEntity::from_name("Email"), None);
        assert_eq!(PiiEntity::from_name("ssn"), None);
        assert_eq!(PiiEntity::from_name(""), None);
    }

    #[test]
    fn iban_table_sorted_and_sized() {
        assert!(IBAN_LENGTHS.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(IBAN_LENGTHS.len() >= 80);
        assert!(IBAN_LENGTHS.iter().all(|&(_, l)| (15..=34).contains(&l)));
    }

    #[test]
    fn disabled_entities_are_not_reported() {
        let text = "mail a@example.com, ip 10.0.0.1";
        let found = PiiDetector::new(&[PiiEntity::Ipv4]).find(text);
        assert_eq!(
            found,
            vec![PiiMatch {
                start: 23,
                end: 31,
                entity: PiiEntity::Ipv4
            }]
        );
        assert!(PiiDetector::new(&[]).find(text).is_empty());
    }

    // ----- email -----------------------------------------------------------

    #[test]
    fn email_true_positives() {
        assert_exact(
            PiiEntity::Email,
            "mail me: john.doe@example.com",
            "john.doe@example.com",
        );
        assert_exact(
            PiiEntity::Email,
            "x john.doe+tag@mail.example.co.uk.",
            "john.doe+tag@mail.example.co.uk",
        );
        assert_exact(
            PiiEntity::Email,
            "<a_b-c%d@sub-domain.example.org>",
            "a_b-c%d@sub-domain.example.org",
        );
        assert_exact(PiiEntity::Email, "émile@exemple.fr", "émile@exemple.fr");
        assert_exact(PiiEntity::Email, "mailto:bob@x.io", "bob@x.io");
        assert_exact(PiiEntity::Email, "иван@пример.рф,", "иван@пример.рф");
        assert_exact(PiiEntity::Email, "u@example.xn--p1ai", "u@example.xn--p1ai");
        assert_exact(PiiEntity::Email, "wait...bob@x.io", "bob@x.io");
    }

    #[test]
    fn email_unicode_offsets() {
        let text = "Ünïcödé écrit à jean.dupont@exemple.fr — merci";
        let found = PiiDetector::new(&PiiEntity::ALL).find(text);
        let start = text.find("jean").unwrap();
        let end = start + "jean.dupont@exemple.fr".len();
        assert_eq!(
            found,
            vec![PiiMatch {
                start,
                end,
                entity: PiiEntity::Email
            }]
        );
        assert_eq!(start, 22);
    }

    #[test]
    fn email_false_positives() {
        for text in [
            "user@localhost",
            "a@b.c",
            "@example.com",
            "user@.com",
            "user@-example.com",
            "user..name@example.com",
            "name.@example.com",
            "foo@bar.com1",
            "name@example.123",
            "a@b@c.com",
            "just some text @ here . com",
        ] {
            assert_none(PiiEntity::Email, text);
        }
    }

    // ----- phone -----------------------------------------------------------

    #[test]
    fn phone_true_positives() {
        for (text, expected) in [
            ("call +14155550100 now", "+14155550100"),
            ("+44 20 7946 0958", "+44 20 7946 0958"),
            ("tel:+33 1 23 45 67 89.", "+33 1 23 45 67 89"),
            ("+1 (415) 555-0100", "+1 (415) 555-0100"),
            ("+1-415-555-0100", "+1-415-555-0100"),
            ("+44 (0)20 7946 0958", "+44 (0)20 7946 0958"),
            ("UK (+44) 20 7946 0958", "(+44) 20 7946 0958"),
            ("(+1 415 555 0100", "+1 415 555 0100"),
            ("(415) 555-0100", "(415) 555-0100"),
            ("(415)555-0100", "(415)555-0100"),
            ("415-555-0100", "415-555-0100"),
            ("415.555.0100", "415.555.0100"),
            ("415 555 0100", "415 555 0100"),
            ("1-800-555-0199", "1-800-555-0199"),
            ("020 7946 0958", "020 7946 0958"),
            ("07700 900123", "07700 900123"),
            ("(020) 7946 0958", "(020) 7946 0958"),
            ("01 23 45 67 89", "01 23 45 67 89"),
            ("06.12.34.56.78", "06.12.34.56.78"),
            ("Order 12345 415-555-0100", "415-555-0100"),
            ("(call 415-555-0100)", "415-555-0100"),
        ] {
            assert_exact(PiiEntity::Phone, text, expected);
        }
    }

    #[test]
    fn phone_offsets_and_multiple() {
        let text = "Tel: 020 7946 0958 / 07700 900123; US (415) 555-0100.";
        let found = PiiDetector::new(&[PiiEntity::Phone]).find(text);
        let spans: Vec<(usize, usize)> = found.iter().map(|m| (m.start, m.end)).collect();
        assert_eq!(spans, vec![(5, 18), (21, 33), (38, 52)]);
        // Adjacent numbers in one run split on spaces.
        assert_eq!(
            only(PiiEntity::Phone, "020 7946 0958 07700 900123"),
            vec!["020 7946 0958", "07700 900123"]
        );
    }

    #[test]
    fn phone_false_positives() {
        for text in [
            "2024-01-15",
            "on 12/05/2023 at 12:30:45",
            "version 1.2.3",
            "192.168.100.200",
            "010.100.100.100",
            "1 010.100.100.100",
            "12345",
            "Order 123456789",
            "id 4155550100",
            "1 2 3 4 5 6 7 8 9 10",
            "10 20 30 40 50",
            "x415-555-0100",
            "415-555-0100y",
            "3.14159265358979",
            "x+14155550100",
            "+0 123 456 789",
            "+1 2 3 4 5 6 7",
            "2147483647",
        ] {
            assert_none(PiiEntity::Phone, text);
        }
    }

    #[test]
    fn card_is_not_also_a_phone() {
        // Phone-shaped (E.164, 15 digits) but a valid Amex: reported as a card only.
        let text = "+378282246310005";
        assert_eq!(with_all(PiiEntity::Phone, text), Vec::<&str>::new());
        assert_eq!(
            with_all(PiiEntity::CreditCard, text),
            vec!["378282246310005"]
        );
        // Suppressed even when cards are not enabled.
        assert_none(PiiEntity::Phone, text);
        for text in [
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "4111111111111111",
        ] {
            assert_eq!(with_all(PiiEntity::Phone, text), Vec::<&str>::new());
        }
    }

    // ----- credit card -----------------------------------------------------

    #[test]
    fn card_true_positives() {
        for (text, expected) in [
            ("4111 1111 1111 1111", "4111 1111 1111 1111"),
            ("card:4111111111111111.", "4111111111111111"),
            ("5555-5555-5555-4444", "5555-5555-5555-4444"),
            ("2221000000000009", "2221000000000009"),
            ("amex 3782 822463 10005 exp", "3782 822463 10005"),
            ("6011111111111117", "6011111111111117"),
            ("3530111333300000", "3530111333300000"),
            ("30569309025904", "30569309025904"),
            ("6200000000000005", "6200000000000005"),
            ("2200 0000 0000 0004", "2200 0000 0000 0004"),
            ("4222222222222", "4222222222222"),
            ("paid with 4111 1111 1111 1111 2024", "4111 1111 1111 1111"),
            ("Order 12345 4111 1111 1111 1111", "4111 1111 1111 1111"),
        ] {
            assert_exact(PiiEntity::CreditCard, text, expected);
        }
    }

    #[test]
    fn card_offsets() {
        let text = "Karte: «4111 1111 1111 1111» ok";
        let found = PiiDetector::new(&[PiiEntity::CreditCard]).find(text);
        let start = text.find('4').unwrap();
        assert_eq!(
            found,
            vec![PiiMatch {
                start,
                end: start + 19,
                entity: PiiEntity::CreditCard
            }]
        );
    }

    #[test]
    fn card_false_positives() {
        for text in [
            "4111 1111 1111 1112",
            "x4111111111111111y",
            "41111111111111111111",
            "4111-1111 1111-1111",
            "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
            "1234567812345670",
            "1.4111111111111111",
            "4111111111111111.5",
            "3782822463100050",
            "999999999999999999",
        ] {
            assert_none(PiiEntity::CreditCard, text);
        }
        // Luhn-valid but unknown issuer prefix.
        assert!(luhn_ok(&[1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 0]));
    }

    // ----- IBAN ------------------------------------------------------------

    #[test]
    fn iban_true_positives() {
        for (text, expected) in [
            ("GB82 WEST 1234 5698 7654 32", "GB82 WEST 1234 5698 7654 32"),
            ("IBAN: DE89370400440532013000.", "DE89370400440532013000"),
            ("DE89 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 00"),
            ("FR1420041010050500013M02606", "FR1420041010050500013M02606"),
            ("(NL91ABNA0417164300)", "NL91ABNA0417164300"),
            ("BE68539007547034", "BE68539007547034"),
            (
                "CH93 0076 2011 6238 5295 7 then",
                "CH93 0076 2011 6238 5295 7",
            ),
            ("ES9121000418450200051332", "ES9121000418450200051332"),
            ("BE68 5390 0754 7034", "BE68 5390 0754 7034"),
        ] {
            assert_exact(PiiEntity::Iban, text, expected);
        }
    }

    #[test]
    fn iban_offsets_and_no_phone_inside() {
        let text = "Überweisung an DE89 3704 0044 0532 0130 00 bitte";
        let start = text.find("DE89").unwrap();
        let found = PiiDetector::new(&PiiEntity::ALL).find(text);
        assert_eq!(
            found,
            vec![PiiMatch {
                start,
                end: start + 27,
                entity: PiiEntity::Iban
            }]
        );
        // Without IBAN enabled, its digit groups still do not become phones/cards.
        assert!(PiiDetector::new(&[PiiEntity::Phone, PiiEntity::CreditCard])
            .find(text)
            .is_empty());
    }

    #[test]
    fn iban_false_positives() {
        for text in [
            "GB82 WEST 1234 5698 7654 33",
            "GB82WEST12345698765433",
            "XX82WEST12345698765432",
            "gb82west12345698765432",
            "DE893704004405320130001",
            "XDE89370400440532013000",
            "GB82  WEST 1234 5698 7654 32",
            "GB82 WEST 12345698 7654 32",
            "DE89 3704 0044 0532 0130",
        ] {
            assert_none(PiiEntity::Iban, text);
        }
    }

    // ----- US SSN ----------------------------------------------------------

    #[test]
    fn ssn_true_positives() {
        for (text, expected) in [
            ("SSN 123-45-6789", "123-45-6789"),
            ("ssn=219-09-9999.", "219-09-9999"),
            ("(536-22-1234)", "536-22-1234"),
            ("no. 665-01-0001, ok", "665-01-0001"),
            ("899-99-9999", "899-99-9999"),
        ] {
            assert_exact(PiiEntity::UsSsn, text, expected);
        }
        let text = "numéro: 123-45-6789";
        let found = PiiDetector::new(&[PiiEntity::UsSsn]).find(text);
        assert_eq!((found[0].start, found[0].end), (9, 20));
    }

    #[test]
    fn ssn_false_positives() {
        for text in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "999-99-9999",
            "123-00-4567",
            "123-45-0000",
            "1123-45-6789",
            "123-45-67890",
            "123-45-6789-1",
            "123456789",
            "a123-45-6789",
            "2024-01-15",
        ] {
            assert_none(PiiEntity::UsSsn, text);
        }
    }

    // ----- IPv4 ------------------------------------------------------------

    #[test]
    fn ipv4_true_positives() {
        for (text, expected) in [
            ("host 192.168.1.1 up", "192.168.1.1"),
            ("10.0.0.1:8080", "10.0.0.1"),
            ("0.0.0.0", "0.0.0.0"),
            ("255.255.255.255.", "255.255.255.255"),
            ("(8.8.8.8)", "8.8.8.8"),
        ] {
            assert_exact(PiiEntity::Ipv4, text, expected);
        }
        let text = "range 10.0.0.1-10.0.0.5";
        let found = PiiDetector::new(&[PiiEntity::Ipv4]).find(text);
        let spans: Vec<(usize, usize)> = found.iter().map(|m| (m.start, m.end)).collect();
        assert_eq!(spans, vec![(6, 14), (15, 23)]);
    }

    #[test]
    fn ipv4_false_positives() {
        for text in [
            "256.1.1.1",
            "1.2.3.4.5",
            "01.2.3.4",
            "192.168.001.1",
            "1.2.3",
            "version 1.2.3.4a",
            "a1.2.3.4",
            "1234.5.6.7",
            "10.0.0.1234",
        ] {
            assert_none(PiiEntity::Ipv4, text);
        }
    }

    // ----- IPv6 ------------------------------------------------------------

    #[test]
    fn ipv6_true_positives() {
        for (text, expected) in [
            (
                "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
                "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            ),
            ("host 2001:db8::1.", "2001:db8::1"),
            ("loopback ::1", "::1"),
            ("fe80::1%eth0", "fe80::1"),
            ("::ffff:192.168.1.1", "::ffff:192.168.1.1"),
            ("[2001:db8::ff00:42:8329]:443", "2001:db8::ff00:42:8329"),
            ("ipv6:fe80::1", "fe80::1"),
            ("addr fe80::1: reachable", "fe80::1"),
        ] {
            assert_exact(PiiEntity::Ipv6, text, expected);
        }
        let text = "→ 2001:db8::1 ←";
        let found = PiiDetector::new(&[PiiEntity::Ipv6]).find(text);
        assert_eq!((found[0].start, found[0].end), (4, 15));
    }

    #[test]
    fn ipv6_false_positives() {
        for text in [
            "12:30:45",
            "at 12:30:45.123",
            "::",
            "std::vec::Vec",
            "00:1a:2b:3c:4d:5e",
            "1:2:3:4:5:6:7:8:9",
            "2001:db8::1::2",
            "gfe80::1",
            "2001:db8::1zz",
            "John 3:16",
            "::ffff:1.2.3.4.5",
            "dead::beef",
            "call ::add(x) or a::b",
            "Vec::new() and Self::A",
        ] {
            assert_none(PiiEntity::Ipv6, text);
        }
    }

    #[test]
    fn embedded_ipv4_overlaps_across_entities() {
        let text = "::ffff:192.168.1.1";
        let found = PiiDetector::new(&PiiEntity::ALL).find(text);
        assert_eq!(
            found,
            vec![
                PiiMatch {
                    start: 0,
                    end: 18,
                    entity: PiiEntity::Ipv6
                },
                PiiMatch {
                    start: 7,
                    end: 18,
                    entity: PiiEntity::Ipv4
                },
            ]
        );
    }

    // ----- mixed text ------------------------------------------------------

    #[test]
    fn mixed_prose_4kb() {
        let paragraph = "Hello team, please contact Jane Roe at jane.roe@example.com or \
            +44 20 7946 0958 about invoice 2024-01-15 (order 123456789, v1.2.3). \
            Her card 4111 1111 1111 1111 was charged; refunds go to \
            GB82 WEST 1234 5698 7654 32. SSN on file: 123-45-6789. The server \
            at 10.0.0.1 and 2001:db8::1 logged the request at 12:30:45. \
            Ünïcödé écrit à jean.dupont@exemple.fr — merci! ";
        let mut text = String::new();
        while text.len() < 4096 {
            text.push_str(paragraph);
        }
        let reps = text.matches("Hello team").count();
        let found = PiiDetector::new(&PiiEntity::ALL).find(&text);
        check_invariants(&text, &found);
        let count = |e: PiiEntity| found.iter().filter(|m| m.entity == e).count();
        assert_eq!(count(PiiEntity::Email), 2 * reps);
        assert_eq!(count(PiiEntity::Phone), reps);
        assert_eq!(count(PiiEntity::CreditCard), reps);
        assert_eq!(count(PiiEntity::Iban), reps);
        assert_eq!(count(PiiEntity::UsSsn), reps);
        assert_eq!(count(PiiEntity::Ipv4), reps);
        assert_eq!(count(PiiEntity::Ipv6), reps);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_strings_never_panic(text in any::<String>()) {
            let found = PiiDetector::new(&PiiEntity::ALL).find(&text);
            check_invariants(&text, &found);
        }

        #[test]
        fn pii_alphabet_strings_keep_invariants(
            text in "[0-9 \\-@.+():a-fA-FxzZ_é/]{0,120}"
        ) {
            let found = PiiDetector::new(&PiiEntity::ALL).find(&text);
            check_invariants(&text, &found);
        }

        #[test]
        fn spliced_pii_keeps_invariants(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("4111 1111 1111 1111".to_string()),
                    Just("+44 20 7946 0958".to_string()),
                    Just("(415) 555-0100".to_string()),
                    Just("GB82 WEST 1234 5698 7654 32".to_string()),
                    Just("a.b@example.com".to_string()),
                    Just("123-45-6789".to_string()),
                    Just("10.0.0.1".to_string()),
                    Just("fe80::1".to_string()),
                    "[0-9 .:@+()-]{0,6}",
                    "\\PC{0,4}",
                ],
                0..12,
            )
        ) {
            let text = parts.concat();
            let found = PiiDetector::new(&PiiEntity::ALL).find(&text);
            check_invariants(&text, &found);
        }
    }
}
