//! PII detection for the guardrails: e-mail addresses, phone numbers, payment
//! card numbers, IBANs, US social security numbers, IP addresses, and (opt-in) person
//! names and street addresses.
//!
//! Every detector works in two steps: a cheap regex (compiled once) finds
//! candidates, then code validates them (checksums, registry lengths, numeric
//! ranges, word boundaries). The `regex` crate has no look-around, so all
//! boundary rules live in code. Every step is linear in the input length.
//!
//! Each entity has its own submodule; the word-boundary helpers they share live here.

mod address;
mod card;
mod email;
mod iban;
mod ip;
pub mod names;
mod person;
mod phone;
mod ssn;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use regex::Regex;

use self::address::find_addresses;
use self::card::find_cards;
use self::email::find_emails;
use self::iban::find_ibans;
use self::ip::{find_ipv4s, find_ipv6s};
use self::names::Gazetteer;
use self::person::find_persons;
use self::phone::find_phones;
use self::ssn::find_ssns;

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
    /// Person name: title + capitalised words, a known first name + surname, or a name
    /// right after `my name is`, `Dear`, `Regards,` and the like.
    Person,
    /// Street address: house number and street type, P.O. box, or `Street 12, 12345 City`,
    /// with the city, state and postcode after it.
    Address,
}

impl PiiEntity {
    /// Every entity type, in declaration order; the opt-in ones last (see [`Self::DEFAULT`]).
    pub const ALL: [PiiEntity; 9] = [
        PiiEntity::Email,
        PiiEntity::Phone,
        PiiEntity::CreditCard,
        PiiEntity::Iban,
        PiiEntity::UsSsn,
        PiiEntity::Ipv4,
        PiiEntity::Ipv6,
        PiiEntity::Person,
        PiiEntity::Address,
    ];

    /// The entities a `pii` rule without `entities` detects: all but the heuristic
    /// `person` and `address`, which a rule turns on by name.
    pub const DEFAULT: &'static [PiiEntity] = PiiEntity::ALL.split_at(7).0;

    /// Name used in policy YAML and reports: "email", "phone", "credit_card", "iban",
    /// "us_ssn", "ipv4", "ipv6", "person", "address".
    pub fn name(self) -> &'static str {
        match self {
            PiiEntity::Email => "email",
            PiiEntity::Phone => "phone",
            PiiEntity::CreditCard => "credit_card",
            PiiEntity::Iban => "iban",
            PiiEntity::UsSsn => "us_ssn",
            PiiEntity::Ipv4 => "ipv4",
            PiiEntity::Ipv6 => "ipv6",
            PiiEntity::Person => "person",
            PiiEntity::Address => "address",
        }
    }

    /// Inverse of [`PiiEntity::name`] (exact, case-sensitive match).
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == s)
    }

    /// Placeholder label for redaction: "EMAIL", "PHONE", "CARD", "IBAN", "SSN", "IP", "IP",
    /// "PERSON", "ADDRESS".
    pub fn label(self) -> &'static str {
        match self {
            PiiEntity::Email => "EMAIL",
            PiiEntity::Phone => "PHONE",
            PiiEntity::CreditCard => "CARD",
            PiiEntity::Iban => "IBAN",
            PiiEntity::UsSsn => "SSN",
            PiiEntity::Ipv4 | PiiEntity::Ipv6 => "IP",
            PiiEntity::Person => "PERSON",
            PiiEntity::Address => "ADDRESS",
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
    enabled: [bool; 9],
    /// First names for `person`; without them only titles and introducing phrases count.
    names: Option<Arc<Gazetteer>>,
}

impl PiiDetector {
    /// Creates a detector for the given entity types (duplicates are ignored).
    pub fn new(enabled: &[PiiEntity]) -> Self {
        let mut set = [false; 9];
        for &e in enabled {
            set[e as usize] = true;
        }
        Self {
            enabled: set,
            names: None,
        }
    }

    /// The detector with `names` as its first-name list.
    pub fn with_names(mut self, names: Arc<Gazetteer>) -> Self {
        self.names = Some(names);
        self
    }

    /// Whether `entity` is detected.
    pub fn is_enabled(&self, entity: PiiEntity) -> bool {
        self.enabled[entity as usize]
    }

    /// A detector for every entity either detects. `find` of the union, filtered to one
    /// detector's entities, equals that detector's `find`: cards and IBANs are computed
    /// whenever a detector that defers to them is on, whatever else is enabled.
    pub fn union(&self, other: &PiiDetector) -> PiiDetector {
        let mut enabled = self.enabled;
        for (e, o) in enabled.iter_mut().zip(other.enabled) {
            *e |= o;
        }
        PiiDetector {
            enabled,
            names: self.names.clone().or_else(|| other.names.clone()),
        }
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
        // Streets are often named after people (`Nelson Mandela Drive`): a name inside an
        // address is part of the address.
        let addresses = if on(PiiEntity::Address) || on(PiiEntity::Person) {
            find_addresses(text)
        } else {
            Vec::new()
        };
        if on(PiiEntity::Address) {
            push(&addresses, PiiEntity::Address);
        }
        if on(PiiEntity::Person) {
            let empty = Gazetteer::default();
            let names = self.names.as_deref().unwrap_or(&empty);
            let persons: Vec<(usize, usize)> = find_persons(text, names)
                .into_iter()
                .filter(|&(s, e)| !overlaps_any(&addresses, s, e))
                .collect();
            push(&persons, PiiEntity::Person);
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
