//! IPv4 and IPv6 detection tests, including their overlap.

use super::{assert_exact, assert_none, PiiDetector, PiiEntity, PiiMatch};

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
        // Versions and OIDs, by the word before them on the same line.
        "upgrade to version 10.2.3.4 today",
        "Version: 10.2.3.4",
        "v 1.2.3.4",
        "firmware=2.1.0.12",
        "sensor build 6.1.7.60",
        "OID 1.3.6.1",
        "snmp oid: 1.3.6.1",
    ] {
        assert_none(PiiEntity::Ipv4, text);
    }
    // The word must come right before the quad, on its line.
    assert_exact(PiiEntity::Ipv4, "version check from 10.2.3.4", "10.2.3.4");
    assert_exact(PiiEntity::Ipv4, "version\n10.2.3.4", "10.2.3.4");
}

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
