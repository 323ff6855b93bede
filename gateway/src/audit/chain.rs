//! The hash chain and checkpoint signatures.
//!
//! A record's hash is the SHA-256 of its line exactly as written (UTF-8 JSON, no newline),
//! so verification needs no canonical form: any changed byte breaks the next record's
//! `prev_hash`. A checkpoint signs its own position (`sequence`, `prev_hash`, `time`) with
//! HMAC-SHA256; since `prev_hash` commits to every earlier line, the signature vouches for
//! the whole history before it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::record::sha256_hex;

/// `prev_hash` of the first record ever written.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash the next record carries as `prev_hash`.
pub fn line_hash(line: &[u8]) -> String {
    sha256_hex(line)
}

/// What a checkpoint's HMAC covers.
pub fn checkpoint_message(sequence: u64, prev_hash: &str, time_ms: i64) -> String {
    format!("gatehouse-audit-checkpoint:v1:{sequence}:{prev_hash}:{time_ms}")
}

/// HMAC-SHA256 of `message` under `key`, lowercase hex.
pub fn sign(key: &[u8], message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks `signature` (hex) in constant time.
pub fn signature_matches(key: &[u8], message: &str, signature: &str) -> bool {
    let Ok(sig) = hex::decode(signature) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message.as_bytes());
    mac.verify_slice(&sig).is_ok()
}

/// Which key signed a checkpoint: the first 16 hex digits of its SHA-256.
pub fn key_id(key: &[u8]) -> String {
    sha256_hex(key)[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signatures_check_message_and_key() {
        let m = checkpoint_message(7, GENESIS, 1000);
        let s = sign(b"k1", &m);
        assert!(signature_matches(b"k1", &m, &s));
        assert!(!signature_matches(b"k2", &m, &s));
        assert!(!signature_matches(
            b"k1",
            &checkpoint_message(8, GENESIS, 1000),
            &s
        ));
        assert!(!signature_matches(b"k1", &m, "zz"));
        assert_eq!(key_id(b"k1").len(), 16);
    }
}
