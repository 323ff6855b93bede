//! E-mail detection tests.

use super::{assert_exact, assert_none, PiiDetector, PiiEntity, PiiMatch};

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
