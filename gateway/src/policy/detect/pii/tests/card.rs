//! Payment card detection tests.

use super::super::card::luhn_ok;
use super::{assert_exact, assert_none, PiiDetector, PiiEntity, PiiMatch};

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
