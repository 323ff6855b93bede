//! Tests of the secrets detector, split by concern; fixtures and helpers live here.

use super::*;
use proptest::prelude::*;

mod entropy;
mod private_key;
mod vendors;

// Fixtures are split with `concat!` so that secret scanners (including push protection)
// do not flag this file; the values are fake.
const AWS_DOC_KEY: &str = concat!("AKIA", "IOSFODNN7EXAMPLE");
const AWS_DOC_SECRET: &str = concat!("wJalrXUtnFEMI/K7MDENG", "/bPxRfiCYEXAMPLEKEY");
const GH_DOC_TOKEN: &str = concat!("ghp", "_16C7e42F292c6912E7710c838347Ae178B4a");
const JWT_IO: &str = concat!(
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ",
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
);
const ANTHROPIC: &str = concat!(
    "sk-ant-",
    "api03-ZfYcMMDktXP_tKsf2rcDkdfrUnW5gcF-Ha6ili8GjHEAD6_Wj9KfzjsQGMrb9h-ImB-LK777pzNk8cL6j5IXAAjlsHUqJAA"
);
const RSA_KEY: &str = concat!(
    "-----BEGIN RSA ",
    "PRIVATE KEY-----\n",
    "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n",
    "KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQJAIJLixBy2qpFoS4DSmoEm\n",
    "-----END RSA PRIVATE KEY-----"
);

fn only(entity: SecretEntity) -> SecretsDetector {
    SecretsDetector::new(&[entity], EntropyConfig::default())
}

fn all() -> SecretsDetector {
    SecretsDetector::new(&SecretEntity::ALL, EntropyConfig::default())
}

/// Matched substrings for a single-entity detector.
fn hits(entity: SecretEntity, text: &str) -> Vec<String> {
    only(entity)
        .find(text)
        .into_iter()
        .map(|m| {
            assert_eq!(m.entity, entity);
            text[m.start..m.end].to_string()
        })
        .collect()
}

fn spans(d: &SecretsDetector, text: &str) -> Vec<(usize, usize, SecretEntity)> {
    d.find(text)
        .into_iter()
        .map(|m| (m.start, m.end, m.entity))
        .collect()
}

fn assert_none(entity: SecretEntity, texts: &[&str]) {
    for t in texts {
        assert!(hits(entity, t).is_empty(), "{entity:?} matched in {t:?}");
    }
}

fn check_invariants(text: &str, matches: &[SecretMatch]) {
    let mut prev_end = 0;
    for m in matches {
        assert!(m.start < m.end, "empty span {m:?}");
        assert!(m.end <= text.len(), "span past end {m:?}");
        assert!(text.is_char_boundary(m.start) && text.is_char_boundary(m.end));
        assert!(m.start >= prev_end, "overlap or unsorted at {m:?}");
        prev_end = m.end;
    }
}

// ---- entity metadata -------------------------------------------------------------------

#[test]
fn names_and_labels_round_trip() {
    for e in SecretEntity::ALL {
        assert_eq!(SecretEntity::from_name(e.name()), Some(e));
        assert!(!e.label().is_empty());
    }
    assert_eq!(SecretEntity::from_name("nope"), None);
    assert_eq!(SecretEntity::from_name("JWT"), None);
    assert_eq!(SecretEntity::AwsAccessKey.label(), "AWS_KEY");
    assert_eq!(SecretEntity::GoogleApiKey.label(), "GOOGLE_KEY");
    assert_eq!(SecretEntity::HighEntropy.label(), "SECRET");
    assert_eq!(SecretEntity::HighEntropy.name(), "high_entropy");
    let mut names: Vec<_> = SecretEntity::ALL.iter().map(|e| e.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 12);
}

#[test]
fn disabled_entities_do_not_fire() {
    let d = SecretsDetector::new(&[], EntropyConfig::default());
    assert!(d
        .find(&format!("{AWS_DOC_KEY} {JWT_IO} {RSA_KEY}"))
        .is_empty());
}

// ---- Mixed prose -----------------------------------------------------------------------------

#[test]
fn four_kb_mixed_prose() {
    let prose = "The deployment on 2024-01-15T10:30:00Z rolled out version v1.2.3 to \
        eu-west-1. See https://example.com/docs/runbook/section-4 and the file \
        src/policy/detect/secrets.rs for details. Request 123e4567-e89b-12d3-a456-426614174000 \
        failed with status 503 after 30000 ms; retry budget was 3. The quick brown fox jumps \
        over the lazy dog, and snake_case_identifiers_like_this_one are fine too. ";
    let secrets: Vec<(SecretEntity, String)> = vec![
        (SecretEntity::AwsAccessKey, AWS_DOC_KEY.to_string()),
        (SecretEntity::GithubToken, GH_DOC_TOKEN.to_string()),
        (SecretEntity::Jwt, JWT_IO.to_string()),
        (SecretEntity::AnthropicKey, ANTHROPIC.to_string()),
        (SecretEntity::PrivateKey, RSA_KEY.to_string()),
        (
            SecretEntity::HighEntropy,
            "ncz8HkywhjpU05mc4J1WRcQ1uhyMDJ2O".to_string(),
        ),
    ];
    let mut text = String::new();
    let mut expected = Vec::new();
    let mut i = 0;
    while text.len() < 4096 {
        text.push_str(prose);
        let (entity, s) = &secrets[i % secrets.len()];
        text.push_str("Credential: ");
        expected.push((*entity, s.clone()));
        text.push_str(s);
        text.push_str(" (rotate it!) ");
        i += 1;
    }
    text.push_str("Ünïcödé tail ✓ 日本語");
    assert!(text.len() >= 4096);
    let found = all().find(&text);
    check_invariants(&text, &found);
    let got: Vec<_> = found
        .iter()
        .map(|m| (m.entity, text[m.start..m.end].to_string()))
        .collect();
    assert_eq!(got, expected);
}

// ---- Properties ---------------------------------------------------------------------------

fn mixed_strategy() -> impl Strategy<Value = String> {
    let parts = prop_oneof![
        "[A-Za-z0-9+/=]{1,12}",
        Just("-".to_string()),
        Just("sk-".to_string()),
        Just("sk-ant-".to_string()),
        Just("AKIA".to_string()),
        Just("eyJ".to_string()),
        Just(".".to_string()),
        Just(" ".to_string()),
        Just("\n".to_string()),
        Just("_".to_string()),
        Just("=".to_string()),
        Just("ghp_".to_string()),
        Just("glpat-".to_string()),
        Just("xoxb-".to_string()),
        Just("AIza".to_string()),
        Just("aws_secret_access_key = ".to_string()),
        Just("https://hooks.slack.com/services/T0/B0/".to_string()),
        Just("-----BEGIN RSA PRIVATE KEY-----".to_string()),
        Just("-----END RSA PRIVATE KEY-----".to_string()),
        Just("é日".to_string()),
    ];
    prop::collection::vec(parts, 0..80).prop_map(|v| v.concat())
}

fn detectors() -> [SecretsDetector; 2] {
    [
        all(),
        SecretsDetector::new(
            &SecretEntity::ALL,
            EntropyConfig {
                threshold: 0.0,
                min_length: 1,
                keep_indicators: true,
            },
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_strings_keep_invariants(text in any::<String>()) {
        for d in detectors() {
            check_invariants(&text, &d.find(&text));
        }
    }

    #[test]
    fn mixed_tokens_keep_invariants(text in mixed_strategy()) {
        for d in detectors() {
            check_invariants(&text, &d.find(&text));
        }
        let _ = shannon_entropy(&text);
    }
}
