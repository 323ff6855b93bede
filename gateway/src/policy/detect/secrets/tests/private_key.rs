//! Private key blocks, and merging of overlapping specific matches.

use super::*;

// ---- Private keys --------------------------------------------------------------------------

#[test]
fn private_key_terminated_block_is_matched_exactly() {
    let text = format!("here it is:\n{RSA_KEY}\nthanks");
    assert_eq!(
        spans(&only(SecretEntity::PrivateKey), &text),
        vec![(12, 12 + RSA_KEY.len(), SecretEntity::PrivateKey)]
    );
}

#[test]
fn private_key_unterminated_block_runs_to_end() {
    let cut = &RSA_KEY[..RSA_KEY.len() - 40];
    let text = format!("partial: {cut}");
    assert_eq!(
        spans(&only(SecretEntity::PrivateKey), &text),
        vec![(9, text.len(), SecretEntity::PrivateKey)]
    );
    // END marker itself truncated.
    let cut = &RSA_KEY[..RSA_KEY.len() - 10];
    assert_eq!(hits(SecretEntity::PrivateKey, cut), vec![cut]);
}

#[test]
fn private_key_two_blocks_and_other_kinds() {
    let ssh = concat!(
        "-----BEGIN OPENSSH ",
        "PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n",
        "-----END OPENSSH PRIVATE KEY-----"
    );
    let text = format!("{RSA_KEY}\n\n{ssh}\n");
    let start2 = RSA_KEY.len() + 2;
    assert_eq!(
        spans(&only(SecretEntity::PrivateKey), &text),
        vec![
            (0, RSA_KEY.len(), SecretEntity::PrivateKey),
            (start2, start2 + ssh.len(), SecretEntity::PrivateKey)
        ]
    );
    for k in [
        concat!(
            "-----BEGIN PGP ",
            "PRIVATE KEY BLOCK-----\n\nlQOYBF0AAAABCAC\n=abcd\n-----END PGP PRIVATE KEY BLOCK-----"
        ),
        concat!(
            "-----BEGIN ENCRYPTED ",
            "PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQww\n-----END ENCRYPTED PRIVATE KEY-----"
        ),
        concat!(
            "-----BEGIN ",
            "PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIC\n-----END PRIVATE KEY-----"
        ),
        concat!("-----BEGIN EC ", "PRIVATE KEY-----\nMHcCAQEEI\n-----END EC PRIVATE KEY-----"),
    ] {
        assert_eq!(hits(SecretEntity::PrivateKey, &format!("> {k} <")), vec![k]);
    }
}

#[test]
fn private_key_false_positives() {
    assert_none(
        SecretEntity::PrivateKey,
        &[
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYI\n-----END PUBLIC KEY-----",
            "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIE\n-----END CERTIFICATE-----",
            "-----begin rsa private key-----\nabc",
            "BEGIN RSA PRIVATE KEY\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9",
            // Only a prefix of the BEGIN marker at the very end: caller holds it back.
            "streaming... -----BEGIN RSA PRIV",
            "streaming... -----BEGIN RSA PRIVATE KEY----",
        ],
    );
}

#[test]
fn overlapping_specific_matches_merge_without_leaking() {
    // The OpenAI charset swallows the dashes of the BEGIN marker: the union is reported.
    let text = format!("{}{RSA_KEY} tail", concat!("sk", "-AbCdEfGhIjKlMnOpQrSt1"));
    let m = all().find(&text);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!((m[0].start, m[0].end), (0, text.len() - 5));
    assert_eq!(m[0].entity, SecretEntity::PrivateKey);
}
