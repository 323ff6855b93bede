//! Unit tests of the PII detector: shared assertions, entity metadata and whole-text
//! invariants here, one submodule per entity family.

mod card;
mod email;
mod iban;
mod ip;
mod phone;
mod ssn;

use proptest::prelude::*;

use super::{PiiDetector, PiiEntity, PiiMatch};

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

/// Spans of one detector: non-empty, on char boundaries, in order, not overlapping.
pub(super) fn check_spans(text: &str, spans: &[(usize, usize)]) {
    for &(start, end) in spans {
        assert!(start < end && end <= text.len(), "{start}..{end}");
        assert!(
            text.is_char_boundary(start) && text.is_char_boundary(end),
            "{start}..{end}"
        );
    }
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "same-entity overlap: {w:?}");
    }
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
        let same: Vec<(usize, usize)> = found
            .iter()
            .filter(|m| m.entity == e)
            .map(|m| (m.start, m.end))
            .collect();
        check_spans(text, &same);
    }
}

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
            "ipv6",
            "person",
            "address"
        ]
    );
    assert_eq!(PiiEntity::DEFAULT, &PiiEntity::ALL[..7]);
    assert!(!PiiEntity::DEFAULT.contains(&PiiEntity::Person));
    assert!(!PiiEntity::DEFAULT.contains(&PiiEntity::Address));
    let labels: Vec<&str> = PiiEntity::ALL.iter().map(|e| e.label()).collect();
    assert_eq!(
        labels,
        ["EMAIL", "PHONE", "CARD", "IBAN", "SSN", "IP", "IP", "PERSON", "ADDRESS"]
    );
    for e in PiiEntity::ALL {
        assert_eq!(PiiEntity::from_name(e.name()), Some(e));
    }
    assert_eq!(PiiEntity::from_name("Email"), None);
    assert_eq!(PiiEntity::from_name("ssn"), None);
    assert_eq!(PiiEntity::from_name(""), None);
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

proptest! {
    #[test]
    fn a_union_filtered_equals_each_detector(
        parts in proptest::collection::vec(prop_oneof![
            Just("4111 1111 1111 1111 "), Just("DE89 3704 0044 0532 0130 00 "),
            Just("+44 20 7946 0958 "), Just("a.b@example.com "), Just("123-45-6789 "),
            Just("10.0.0.1 "), Just("fe80::1 "), Just("(415) 555-0100 "), Just("word "),
            Just("Mr. Anna Smith "), Just("221 Dallas Court, Kilbirnie 6022 "),
        ], 0..10),
        a in proptest::collection::vec(any::<bool>(), PiiEntity::ALL.len()),
        b in proptest::collection::vec(any::<bool>(), PiiEntity::ALL.len()),
    ) {
        let text: String = parts.concat();
        let pick = |mask: &[bool]| -> Vec<PiiEntity> {
            PiiEntity::ALL.iter().zip(mask).filter(|(_, on)| **on).map(|(e, _)| *e).collect()
        };
        let (da, db) = (PiiDetector::new(&pick(&a)), PiiDetector::new(&pick(&b)));
        let all = da.union(&db).find(&text);
        for d in [&da, &db] {
            let shared: Vec<PiiMatch> = all.iter().filter(|m| d.is_enabled(m.entity)).cloned().collect();
            prop_assert_eq!(shared, d.find(&text));
        }
    }
}

proptest! {
    /// The byte loops find exactly what the regexes they replace find.
    #[test]
    fn byte_scans_equal_their_regexes(s in "[0-9A-Za-z \\-é.]{0,80}") {
        let runs = regex::Regex::new(r"[0-9]+(?:[ \-][0-9]+)*").unwrap();
        let want: Vec<(usize, usize)> = runs.find_iter(&s).map(|m| (m.start(), m.end())).collect();
        prop_assert_eq!(super::card::digit_runs(&s), want);
        let starts = regex::Regex::new(r"[A-Z]{2}[0-9]{2}").unwrap();
        let want: Vec<usize> = starts.find_iter(&s).map(|m| m.start()).collect();
        prop_assert_eq!(super::iban::iban_starts(&s), want);
    }
}
