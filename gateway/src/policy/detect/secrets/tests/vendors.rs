//! Vendor token detectors: AWS, GitHub, GitLab, Slack, OpenAI, Anthropic, Google and JWT.

use super::*;

// ---- AWS -------------------------------------------------------------------------------

#[test]
fn aws_access_key_true_positives() {
    let d = only(SecretEntity::AwsAccessKey);
    let text = format!("key: {AWS_DOC_KEY},");
    assert_eq!(spans(&d, &text), vec![(5, 25, SecretEntity::AwsAccessKey)]);
    let sts = concat!("{\"AccessKeyId\":\"ASIA", "2PZCYC5EDQMEVXRV\"}");
    assert_eq!(hits(SecretEntity::AwsAccessKey, sts), vec![&sts[16..36]]);
    // Adjacent keys separated by one char, at start and end of text.
    let two = concat!("AROA", "CQURTAEBOG65YQ37 AKIA", "IOSFODNN7EXAMPLE");
    assert_eq!(
        spans(&d, two),
        vec![
            (0, 20, SecretEntity::AwsAccessKey),
            (21, 41, SecretEntity::AwsAccessKey)
        ]
    );
    assert_eq!(
        hits(
            SecretEntity::AwsAccessKey,
            "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE"
        )
        .len(),
        1
    );
}

#[test]
fn aws_access_key_false_positives() {
    assert_none(
        SecretEntity::AwsAccessKey,
        &[
            "AKIAIOSFODNN7EXAMPL",     // 19 chars
            "AKIAIOSFODNN7EXAMPLEX",   // 21 chars: inside a longer word
            "XAKIAIOSFODNN7EXAMPLE",   // inside a longer word
            "AKIBIOSFODNN7EXAMPLE",    // wrong prefix
            "akiaiosfodnn7example",    // lowercase
            "AKIAIOSFODNN7EXAMP-E",    // wrong charset
            "my_AKIAIOSFODNN7EXAMPLE", // identifier
        ],
    );
}

#[test]
fn aws_secret_key_true_positives() {
    let d = only(SecretEntity::AwsSecretKey);
    let text = format!("aws_secret_access_key = {AWS_DOC_SECRET}\n");
    assert_eq!(spans(&d, &text), vec![(24, 64, SecretEntity::AwsSecretKey)]);
    let json = r#"{"SecretAccessKey": "q+xbMtEPO6UkzYuF0ie9Pu2njHkAm1+5wDr16EpL", "x": 1}"#;
    assert_eq!(
        hits(SecretEntity::AwsSecretKey, json),
        vec!["q+xbMtEPO6UkzYuF0ie9Pu2njHkAm1+5wDr16EpL"]
    );
    let env = "export AWS_SECRET_ACCESS_KEY='LJIVGHz4FxFEtKyPiYGFDm7ena8D5VfLDpgyyjVw'";
    assert_eq!(
        hits(SecretEntity::AwsSecretKey, env),
        vec!["LJIVGHz4FxFEtKyPiYGFDm7ena8D5VfLDpgyyjVw"]
    );
    let yaml = "creds:\n  aws_secret: 5HanSBeVRsfAGeAbP0VxNjAe+9i0mYtluYI0KN1g\n";
    assert_eq!(
        hits(SecretEntity::AwsSecretKey, yaml),
        vec!["5HanSBeVRsfAGeAbP0VxNjAe+9i0mYtluYI0KN1g"]
    );
}

#[test]
fn aws_secret_key_false_positives() {
    let v = AWS_DOC_SECRET;
    assert_none(
        SecretEntity::AwsSecretKey,
        &[
            v,                                                // no key name
            &format!("aws_secret_access_key =\n{v}"),         // other line
            &format!("aws_secret_access_key = {}", &v[..39]), // 39 chars
            &format!("aws_secret_access_key = {v}A"),         // 41 chars
            &format!("aws_access_key_id = {v}"),              // wrong key name
            &format!("aws_secret_access_key {v}"),            // no separator
        ],
    );
}

// ---- GitHub / GitLab --------------------------------------------------------------------

#[test]
fn github_token_true_positives() {
    let d = only(SecretEntity::GithubToken);
    let text = format!("token {GH_DOC_TOKEN}.");
    assert_eq!(spans(&d, &text), vec![(6, 46, SecretEntity::GithubToken)]);
    for t in [
        concat!("gho", "_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d"),
        concat!("ghs", "_KLzdocJ2isAjIhKtJ0RlgLKOmxgJTeKdNnFR"),
        concat!("ghu", "_IBXuDL7DxtpYlSXpfKtHF4vUCsMehGAkWvj7"),
        concat!(
            "github_pat",
            "_1150CE9UVW53EFR4EDT2SY_4Qwb8DwkNhFdnXsiVpzz63FfkCzJr4i0B3JrTAwR4y9ojfljoQoaF1Llqsa"
        ),
    ] {
        let text = format!("Authorization: token {t}\n");
        assert_eq!(hits(SecretEntity::GithubToken, &text), vec![t]);
    }
}

#[test]
fn github_token_false_positives() {
    assert_none(
        SecretEntity::GithubToken,
        &[
            &GH_DOC_TOKEN[..39],                                  // 35 chars after prefix
            &GH_DOC_TOKEN.replace("ghp_", "ghx_"),                // wrong prefix
            &format!("x{GH_DOC_TOKEN}"),                          // inside a longer word
            &format!("{GH_DOC_TOKEN}_suffix"),                    // inside a longer word
            &GH_DOC_TOKEN.replace("c6912", "c-912"),              // wrong charset
            concat!("github_pat", "_11ABCDEFG0123456789_abcdef"), // too short
        ],
    );
}

#[test]
fn gitlab_token_true_positives() {
    let pat = concat!("glpat", "-s1VOqg6YYZYn9ZhyiA4u");
    let text = format!("PRIVATE-TOKEN: {pat}");
    assert_eq!(
        spans(&only(SecretEntity::GitlabToken), &text),
        vec![(15, 41, SecretEntity::GitlabToken)]
    );
    for t in [
        concat!("gldt", "-hvMdgaKjIg8xNbe3nNyj"),
        concat!("glrt", "-Oq9wMxEhh2FDEEtfjgVv"),
        concat!("glptt", "-8f506b40928b5b7a767c76fb008f86bebb2737f6"),
    ] {
        assert_eq!(hits(SecretEntity::GitlabToken, &format!("'{t}'")), vec![t]);
    }
}

#[test]
fn gitlab_token_false_positives() {
    assert_none(
        SecretEntity::GitlabToken,
        &[
            concat!("glpat", "-s1VOqg6YYZYn9ZhyiA4"),   // 19 chars
            concat!("glpat", "_s1VOqg6YYZYn9ZhyiA4u"),  // wrong separator
            concat!("xglpat", "-s1VOqg6YYZYn9ZhyiA4u"), // inside a longer word
            concat!("glpak", "-s1VOqg6YYZYn9ZhyiA4u"),  // wrong prefix
            concat!("glpat", "-s1VOqg6YYZ Yn9ZhyiA4u"), // wrong charset
        ],
    );
}

// ---- Slack -------------------------------------------------------------------------------

#[test]
fn slack_token_true_positives() {
    let bot = concat!(
        "xoxb",
        "-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
    );
    let text = format!("SLACK_BOT_TOKEN={bot}\n");
    assert_eq!(
        spans(&only(SecretEntity::SlackToken), &text),
        vec![(16, 16 + bot.len(), SecretEntity::SlackToken)]
    );
    for t in [
        concat!(
            "xoxp",
            "-1234567890-1234567890-1234567890123-0123456789abcdef0123456789abcdef"
        ),
        concat!(
            "xapp",
            "-1-A0123456789-1234567890123-abcdef0123456789abcdef0123456789"
        ),
        concat!("xoxe.xoxp", "-1-Mi0yLTEyMzQ1Njc4OTAxMi0xMjM0NTY3ODkwMTIz"),
        concat!("xoxa", "-2-1234567890-abcdefABCDEF"),
    ] {
        assert_eq!(
            hits(SecretEntity::SlackToken, &format!("use {t} now")),
            vec![t]
        );
    }
}

#[test]
fn slack_token_false_positives() {
    assert_none(
        SecretEntity::SlackToken,
        &[
            concat!("xoxz", "-123456789012-abc"),     // wrong type letter
            concat!("xoxb", "-12345678"),             // too short
            concat!("xoxb", "_123456789012-1234"),    // wrong separator
            concat!("fooxoxb", "-123456789012-1234"), // inside a longer word
            concat!("xapp", "-x-A0123456789-12345"),  // xapp without level digit
        ],
    );
}

#[test]
fn slack_webhook_true_positives() {
    let hook = concat!(
        "https://hooks.slack.com/services/",
        "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
    );
    let text = format!("POST to {hook}, done");
    assert_eq!(
        spans(&only(SecretEntity::SlackWebhook), &text),
        vec![(8, 8 + hook.len(), SecretEntity::SlackWebhook)]
    );
    for u in [
        concat!(
            "https://hooks.slack.com/workflows/",
            "T01ABCDEF/A02BCDEFG/123456789012345678/AbCdEfGhIjKlMnOpQrStUvWx"
        ),
        concat!(
            "https://hooks.slack.com/triggers/",
            "T01ABCDEF/1234567890123/abcdef0123456789abcdef0123456789"
        ),
        concat!(
            "https://hooks.slack.com/services/",
            "T024BE7LD/B0A1B2C3D4E/k9Qw2eR5tY8uI1oP4aS7dF0g"
        ),
    ] {
        assert_eq!(hits(SecretEntity::SlackWebhook, &format!("<{u}>")), vec![u]);
    }
}

#[test]
fn slack_webhook_false_positives() {
    assert_none(
        SecretEntity::SlackWebhook,
        &[
            "https://hooks.slack.com/services/",
            "https://hooks.slack.com/services/t0000/b0000/xxxx", // lowercase ids
            "https://hooks.slack.org/services/T0000/B0000/XXXX", // wrong host
            "https://hooks.slack.com/services/T0000/C0000/XXXX", // not a B id
            "https://api.slack.com/services/T0000/B0000/XXXX",   // wrong host
        ],
    );
}

// ---- OpenAI / Anthropic ------------------------------------------------------------------

#[test]
fn openai_key_true_positives() {
    let legacy = concat!("sk", "-vJDCTbyvHNsG9eh6Yo4gfqrc5XlrWi0B26R08qzjI6GKFSuf");
    let text = format!("OPENAI_API_KEY=\"{legacy}\"");
    assert_eq!(
        spans(&only(SecretEntity::OpenaiKey), &text),
        vec![(16, 67, SecretEntity::OpenaiKey)]
    );
    for k in [
        concat!(
            "sk-proj",
            "-RA9a9SkpXz9w3QlY7Zkuvqdt7s8Stqcbnr3yBdGBLEPH1qhT61qtc4xatws8phP9nhFyJfm5di4PzJ59FHz5r1pY4OjE2jBMptUsGr7CmY-uCu3ZR1zTOlUc"
        ),
        concat!("sk-svcacct", "-Jhx2jIclHkCiHp6bR1IqfEouHgxzNNAL5wIScGebcy8F5n3_YNBDRzrZSgqb"),
        concat!("sk-admin", "-jG3uhkWKFLf6xuI5aHUQPFeNBTxaQWk8JzFalHls"),
    ] {
        assert_eq!(hits(SecretEntity::OpenaiKey, &format!("Bearer {k}\n")), vec![k]);
    }
}

#[test]
fn openai_key_false_positives() {
    assert_none(
        SecretEntity::OpenaiKey,
        &[
            ANTHROPIC,                                                 // Anthropic, not OpenAI
            concat!("sk", "-vJDCTbyvHNsG9eh6Yo4"),                     // 19 chars
            concat!("sk", "_vJDCTbyvHNsG9eh6Yo4gfqrc5XlrWi0B26R08"),   // wrong separator
            concat!("desk", "-vJDCTbyvHNsG9eh6Yo4gfqrc5XlrWi0B26R08"), // inside a word
            "sk-learn-is-a-great-library-for-ml",                      // lowercase phrase
            concat!("sk", "-vJDCTbyvHNs G9eh6Yo4gfqrc5XlrWi0B26R08"),  // charset break
        ],
    );
}

#[test]
fn anthropic_key_true_positives() {
    let text = format!("x-api-key: {ANTHROPIC}\n");
    let expected = vec![(11, 11 + ANTHROPIC.len(), SecretEntity::AnthropicKey)];
    assert_eq!(spans(&only(SecretEntity::AnthropicKey), &text), expected);
    // With everything enabled it is reported once, as Anthropic, never as OpenAI.
    assert_eq!(spans(&all(), &text), expected);
    for k in [
        concat!(
            "sk-ant",
            "-admin01-oUD_-Ydua-5ZMs1SWOpQaPRYpzbLGViYXjU2JgJngKtFI3OyV2dZAkg05rK-gqv81RKMGHZEM9YpvujA_C5Q52ryFlwRlAA"
        ),
        concat!(
            "sk-ant",
            "-oat01-OEVHzc0X0AWIRh_JUqBlIFXZ53Ncqe28-ajY75FnCttn6kfaqDeMqG3omjMy"
        ),
    ] {
        assert_eq!(hits(SecretEntity::AnthropicKey, &format!("'{k}'")), vec![k]);
        assert_eq!(all().find(k)[0].entity, SecretEntity::AnthropicKey);
    }
}

#[test]
fn anthropic_key_false_positives() {
    assert_none(
        SecretEntity::AnthropicKey,
        &[
            concat!("sk-ant", "-api03-ZfYcMMDktXP_tKsf2rcDkdfrU"), // 31 chars
            &format!("x{ANTHROPIC}"),                              // inside a word
            &ANTHROPIC.replacen("sk-ant-", "sk-ant_", 1),          // wrong separator
            concat!("sk-anthropic", "-ZfYcMMDktXP_tKsf2rcDkdfrUnW5gcF-Ha6ili8G"), // prefix
            concat!("sk", "-vJDCTbyvHNsG9eh6Yo4gfqrc5XlrWi0B26R08qzjI6GKFSuf"), // OpenAI
        ],
    );
}

// ---- Google --------------------------------------------------------------------------------

#[test]
fn google_api_key_true_positives() {
    let k = concat!("AIza", "XHCabM6JOF8EFd0Nhcy_1kGD2VD_eR1UYza");
    let text = format!("?key={k}&q=1");
    assert_eq!(
        spans(&only(SecretEntity::GoogleApiKey), &text),
        vec![(5, 44, SecretEntity::GoogleApiKey)]
    );
    for k in [
        concat!("AIza", "LiA_zNyD7CHLn_xC-1hsYgBds1ghxY5Ookv"),
        concat!("AIza", "Qyx7eNWVQ4vnakJkS1pAWTN3lg8zV5yPU8d"),
    ] {
        assert_eq!(
            hits(SecretEntity::GoogleApiKey, &format!("\"{k}\"")),
            vec![k]
        );
    }
}

#[test]
fn google_api_key_false_positives() {
    assert_none(
        SecretEntity::GoogleApiKey,
        &[
            concat!("AIza", "XHCabM6JOF8EFd0Nhcy_1kGD2VD_eR1UYz"), // 34
            concat!("AIza", "XHCabM6JOF8EFd0Nhcy_1kGD2VD_eR1UYzaa"), // 36
            concat!("AIZa", "XHCabM6JOF8EFd0Nhcy_1kGD2VD_eR1UYza"), // wrong case
            concat!("xAIza", "XHCabM6JOF8EFd0Nhcy_1kGD2VD_eR1UYza"), // inside a word
            concat!("AIza", "XHCabM6JOF8EFd0Nhcy.1kGD2VD_eR1UYza"), // wrong charset
        ],
    );
}

// ---- JWT -------------------------------------------------------------------------------------

#[test]
fn jwt_true_positives() {
    let text = format!("Authorization: Bearer {JWT_IO}.");
    assert_eq!(
        spans(&only(SecretEntity::Jwt), &text),
        vec![(22, 22 + JWT_IO.len(), SecretEntity::Jwt)]
    );
    let other = concat!(
        "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ",
        ".eyJpc3MiOiJodHRwczovL2V4YW1wbGUuY29tIn0",
        ".Zm9vYmFyYmF6cXV4LWZha2Utc2lnbmF0dXJl"
    );
    assert_eq!(
        hits(SecretEntity::Jwt, &format!("{{\"id_token\":\"{other}\"}}")),
        vec![other]
    );
    let minimal = "eyJ0eXAiOi.eyJzdWIiOi.abcdefghij";
    assert_eq!(hits(SecretEntity::Jwt, minimal), vec![minimal]);
}

#[test]
fn jwt_false_positives() {
    assert_none(
        SecretEntity::Jwt,
        &[
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0", // 2 segments
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.abJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4f",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJS", // sig 9
            "xeyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4f",
            "eyJhbGci.eyJzdWIiOiIx.SflKxwRJSMeKKF2QT4f", // first segment too short
        ],
    );
}
