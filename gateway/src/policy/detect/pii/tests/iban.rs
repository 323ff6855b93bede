//! IBAN detection tests, including the registry length table.

use super::super::iban::IBAN_LENGTHS;
use super::{assert_exact, assert_none, PiiDetector, PiiEntity, PiiMatch};

#[test]
fn iban_table_sorted_and_sized() {
    assert!(IBAN_LENGTHS.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(IBAN_LENGTHS.len() >= 80);
    assert!(IBAN_LENGTHS.iter().all(|&(_, l)| (15..=34).contains(&l)));
}

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
