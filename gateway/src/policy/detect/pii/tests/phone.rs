//! Phone detection tests, including deferral to cards.

use super::{assert_exact, assert_none, only, with_all, PiiDetector, PiiEntity};

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

#[test]
fn a_phone_word_admits_short_national_numbers() {
    for (text, expected) in [
        ("phone: 73 627 280", "73 627 280"),
        ("Call me on 480 6764 tonight", "480 6764"),
        ("registered mobile 468 788 096", "468 788 096"),
        ("Tel. 34 33 96", "34 33 96"),
        ("my number is 4806764", "4806764"),
        ("Phone:\n9416 5007", "9416 5007"),
        ("the phone\n480 6764", "480 6764"),
        ("464 016 968 office", "464 016 968"),
        ("(028) 3514-698-Fax", "(028) 3514-698"),
    ] {
        assert_exact(PiiEntity::Phone, text, expected);
    }
    for text in [
        "phone number 2024-01-15",
        "call at 10 20",
        "73 627 280 packets",
        "call 123456",
        "His social security number is 828-36-2008",
    ] {
        assert_none(PiiEntity::Phone, text);
    }
}
