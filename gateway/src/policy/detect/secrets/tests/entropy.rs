//! Shannon entropy and the generic high-entropy detector.

use super::*;

// ---- Entropy -----------------------------------------------------------------------------------

#[test]
fn shannon_entropy_values() {
    assert_eq!(shannon_entropy(""), 0.0);
    assert_eq!(shannon_entropy("aaaa"), 0.0);
    assert_eq!(shannon_entropy("ab"), 1.0);
    assert_eq!(shannon_entropy("abcd"), 2.0);
    assert_eq!(shannon_entropy("ééßß"), 1.0);
    assert!((shannon_entropy("0123456789abcdef") - 4.0).abs() < 1e-12);
}

fn entropy_hits(cfg: EntropyConfig, text: &str) -> Vec<String> {
    SecretsDetector::new(&[SecretEntity::HighEntropy], cfg)
        .find(text)
        .into_iter()
        .map(|m| text[m.start..m.end].to_string())
        .collect()
}

#[test]
fn high_entropy_random_keys_fire() {
    let cfg = EntropyConfig::default();
    for k in [
        "18c6EudM7Oyf5TNS05kOY2oNzN2m1ElK",
        "ncz8HkywhjpU05mc4J1WRcQ1uhyMDJ2O",
        "XtPAtLpByQxCGClbaNFDpCWNX0D1lZEz",
        "NT11cUzYZAa3u2olZU6uqbgsYlVvsSKuvinX/zMq",
        AWS_DOC_SECRET, // no key name: only the generic detector sees it
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
    ] {
        assert_eq!(
            entropy_hits(cfg, &format!("the key is {k}. ok")),
            vec![k],
            "{k}"
        );
    }
    // Only the value of `name=value` is reported; padding is kept.
    let text = "api_key=ncz8HkywhjpU05mc4J1WRcQ1uhyMDJ2O==&x=1";
    assert_eq!(
        entropy_hits(cfg, text),
        vec!["ncz8HkywhjpU05mc4J1WRcQ1uhyMDJ2O=="]
    );
    // Exact offsets, with a sentence-ending period excluded.
    let text = "use 18c6EudM7Oyf5TNS05kOY2oNzN2m1ElK.";
    let d = SecretsDetector::new(&[SecretEntity::HighEntropy], cfg);
    assert_eq!(spans(&d, text), vec![(4, 36, SecretEntity::HighEntropy)]);
}

#[test]
fn high_entropy_ignores_ordinary_text() {
    let cfg = EntropyConfig::default();
    for t in [
        "Internationalization considerations notwithstanding",
        "snake_case_identifiers_like_this_one",
        "my_variable_name_version_2_final",
        "src/policy/detect/secrets.rs",
        "https://example.com/path/to/page",
        "https://example.com/api/v2/users/1234567/profile?page=10",
        "2024-01-15T10:30:00Z and 2024-01-15T10:30:00.123456789+02:00",
        "123e4567-e89b-12d3-a456-426614174000",
        "request 123E4567-E89B-12D3-A456-426614174000/attachments/98765",
        "/var/log/app-2024-01-15.log",
        "ip-10-0-1-23.eu-west-1.compute.internal",
        "getUserAccountById2024Handler AbstractSingletonProxyFactoryBean2",
        "1234567890123456789012345678901234567890",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b", // hex SHA: max 4.0 bits/char
        "v1.2.3-beta.4+build.20240115.linux-x86_64",
    ] {
        assert!(
            entropy_hits(cfg, t).is_empty(),
            "fired on {t:?}: {:?}",
            entropy_hits(cfg, t)
        );
    }
}

#[test]
fn high_entropy_base64_text_fires_by_design() {
    // Base64 cannot be told apart from key material without decoding; it often carries
    // credentials (Basic auth), so it is flagged.
    let b64 = "dGhlIHF1aWNrIGJyb3duIGZveCBqdW1wcw==";
    assert_eq!(entropy_hits(EntropyConfig::default(), b64), vec![b64]);
}

#[test]
fn high_entropy_threshold_and_min_length_are_honored() {
    let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b";
    let low = EntropyConfig {
        threshold: 3.5,
        min_length: 24,
        keep_indicators: false,
    };
    let high = EntropyConfig {
        threshold: 5.0,
        min_length: 24,
        keep_indicators: false,
    };
    assert_eq!(entropy_hits(low, sha), vec![sha]);
    assert!(entropy_hits(high, sha).is_empty());
    assert!(entropy_hits(EntropyConfig::default(), sha).is_empty());

    let key = "18c6EudM7Oyf5TNS05kOY2oNzN2m1ElK"; // 32 chars, ~4.6 bits
    let at = |min_length| EntropyConfig {
        threshold: 4.0,
        min_length,
        keep_indicators: true,
    };
    assert_eq!(entropy_hits(at(32), key), vec![key]);
    assert!(entropy_hits(at(33), key).is_empty());
    // Padding does not count towards the length.
    assert!(entropy_hits(at(33), &format!("{key}=")).is_empty());
}

#[test]
fn specific_detectors_win_over_high_entropy() {
    let d = all();
    let text = format!("a={AWS_DOC_KEY} b={GH_DOC_TOKEN} c={JWT_IO}");
    let got: Vec<_> = d.find(&text).into_iter().map(|m| m.entity).collect();
    assert_eq!(
        got,
        vec![
            SecretEntity::AwsAccessKey,
            SecretEntity::GithubToken,
            SecretEntity::Jwt
        ]
    );
    // A high-entropy tail glued to a specific match is still reported separately.
    let text = format!("{AWS_DOC_KEY}.18c6EudM7Oyf5TNS05kOY2oNzN2m1ElK");
    assert_eq!(
        spans(&d, &text),
        vec![
            (0, 20, SecretEntity::AwsAccessKey),
            (21, 53, SecretEntity::HighEntropy)
        ]
    );
    // With the specific detector disabled the generic one still catches the token.
    let d = SecretsDetector::new(&[SecretEntity::HighEntropy], EntropyConfig::default());
    assert_eq!(d.find(GH_DOC_TOKEN)[0].entity, SecretEntity::HighEntropy);
}

#[test]
fn indicators_are_kept_unless_a_secret_is_named_before_them() {
    // The SOC policy's low threshold would flag every digest without keep_indicators.
    let soc = EntropyConfig {
        threshold: 3.5,
        min_length: 20,
        keep_indicators: true,
    };
    let md5 = "5f4dcc3b5aa765d61d8327deb882cf99";
    let sha1 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b";
    let sha256 = "e8901779b53e491d1f9f7b5406116f5927745ab46053a5f1f5c51463444ea4d9";
    let uuid = "550e8400-e29b-41d4-a716-446655440000";
    for text in [
        format!("dropper md5 {md5}, sha1 {sha1}"),
        format!(r#"{{"sha256": "{sha256}", "host_id": "{uuid}"}}"#),
        format!("fixed in commit {sha1}"),
        format!("password reset mail. Attachment sha256:{sha256}"),
    ] {
        assert!(entropy_hits(soc, &text).is_empty(), "{text}");
    }
    for (text, value) in [
        (format!("password={md5}"), md5),
        (format!(r#"{{"api_key": "{sha256}"}}"#), sha256),
        (format!("Authorization: Bearer {sha1}"), sha1),
        (format!("client_secret: {uuid}"), uuid),
        (format!("TOKEN = '{sha1}'"), sha1),
    ] {
        assert_eq!(entropy_hits(soc, &text), vec![value], "{text}");
    }
    // Only the same line counts.
    assert!(entropy_hits(soc, &format!("password:\n{sha256}")).is_empty());
    // keep_indicators: false treats digests like any token (3.5 bits flags this SHA-1).
    let strict = EntropyConfig {
        keep_indicators: false,
        ..soc
    };
    assert_eq!(entropy_hits(strict, &format!("commit {sha1}")), vec![sha1]);
}
