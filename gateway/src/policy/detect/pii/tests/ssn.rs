//! US SSN detection tests.

use super::{assert_exact, assert_none, PiiDetector, PiiEntity};

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
