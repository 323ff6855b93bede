//! Walks the chain across files and reports the first broken record and why.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::chain::{self, GENESIS};
use super::files;
use super::record::Record;
use super::AuditError;

/// What `verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Files read.
    pub files: usize,
    /// Complete records that verified (checkpoints included).
    pub records: u64,
    /// Checkpoints among them.
    pub checkpoints: u64,
    /// Checkpoints whose signature was checked against the key.
    pub signed_checkpoints: u64,
    /// Checkpoints without a signature, or not checked (no key given).
    pub unchecked_checkpoints: u64,
    /// Sequence of the first record (1 unless older files were removed).
    pub first_sequence: Option<u64>,
    /// Sequence of the last record that verified.
    pub last_sequence: Option<u64>,
    /// Sequence of the last checkpoint whose signature verified.
    pub last_signed_sequence: Option<u64>,
    /// Records after the last verified signature: chained, but not vouched for by the key.
    pub unsigned_tail: u64,
    /// Records cut short by a crash (unterminated last lines), with their files.
    pub torn: Vec<Torn>,
    /// The first broken record; `None` when the whole chain verifies.
    pub broken: Option<Broken>,
}

/// An unterminated last line.
#[derive(Debug, Clone, Serialize)]
pub struct Torn {
    /// The file.
    pub file: PathBuf,
    /// Its line number.
    pub line: usize,
    /// Bytes of the incomplete record.
    pub bytes: usize,
}

/// The first record that does not verify.
#[derive(Debug, Clone, Serialize)]
pub struct Broken {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// The record's sequence, when it could be read.
    pub sequence: Option<u64>,
    /// What does not match (hash, sequence, signature).
    pub reason: String,
}

impl Report {
    /// The chain verified from the first to the last complete record.
    pub fn ok(&self) -> bool {
        self.broken.is_none()
    }
}

/// Verifies the log in `dir`; checkpoint signatures too when `key` is given.
pub fn verify(dir: &Path, key: Option<&[u8]>) -> Result<Report, AuditError> {
    let mut report = Report {
        files: files::list(dir)?.len(),
        ..Default::default()
    };
    let key_id = key.map(chain::key_id);
    let mut prev: Option<(u64, String)> = None;
    // A torn line is only acceptable as the end of its file: note it, check what follows.
    let mut torn_pending: Option<Torn> = None;
    for line in files::lines(dir)? {
        let line = line?;
        let broken = |sequence: Option<u64>, reason: String| Broken {
            file: line.path.clone(),
            line: line.number,
            sequence,
            reason,
        };
        if let Some(t) = torn_pending.take() {
            if t.file == line.path {
                report.broken = Some(broken(None, "a line follows an unterminated line".into()));
                return Ok(report);
            }
            report.torn.push(t);
        }
        if !line.complete {
            torn_pending = Some(Torn {
                file: line.path.clone(),
                line: line.number,
                bytes: line.bytes.len(),
            });
            continue;
        }
        let record: Record = match serde_json::from_slice(&line.bytes) {
            Ok(r) => r,
            Err(e) => {
                report.broken = Some(broken(None, format!("not a JSON audit record: {e}")));
                return Ok(report);
            }
        };
        let seq = record.metadata.sequence;
        let expected_prev = match &prev {
            Some((_, h)) => h.clone(),
            None if seq == 1 => GENESIS.to_string(),
            // Older files removed (retention): the chain is checked from here on.
            None => record.unmapped.prev_hash.clone(),
        };
        if let Some((p, _)) = &prev {
            if seq != p + 1 {
                report.broken = Some(broken(
                    Some(seq),
                    format!("sequence {seq} follows {p}: records are missing or reordered"),
                ));
                return Ok(report);
            }
        }
        if record.unmapped.prev_hash != expected_prev {
            let reason = if prev.is_some() {
                "prev_hash does not match the previous line: it was changed, or a line was removed"
            } else {
                "the first record does not start the chain (prev_hash is not the genesis hash)"
            };
            report.broken = Some(broken(Some(seq), reason.into()));
            return Ok(report);
        }
        if record.unmapped.kind == "checkpoint" {
            report.checkpoints += 1;
            let cp = record.unmapped.checkpoint.clone().unwrap_or_default();
            match (key, &cp.hmac) {
                (Some(k), Some(sig)) => {
                    if cp.key_id.as_deref() != key_id.as_deref() {
                        report.broken = Some(broken(
                            Some(seq),
                            format!(
                                "checkpoint signed with another key (key id {}, given {})",
                                cp.key_id.as_deref().unwrap_or("none"),
                                key_id.as_deref().unwrap_or_default()
                            ),
                        ));
                        return Ok(report);
                    }
                    let msg =
                        chain::checkpoint_message(seq, &record.unmapped.prev_hash, record.time);
                    if !chain::signature_matches(k, &msg, sig) {
                        report.broken = Some(broken(
                            Some(seq),
                            "checkpoint signature does not match: the chain before it was rewritten"
                                .into(),
                        ));
                        return Ok(report);
                    }
                    report.signed_checkpoints += 1;
                    report.last_signed_sequence = Some(seq);
                }
                _ => report.unchecked_checkpoints += 1,
            }
        }
        report.records += 1;
        report.first_sequence.get_or_insert(seq);
        report.last_sequence = Some(seq);
        prev = Some((seq, chain::line_hash(&line.bytes)));
    }
    if let Some(t) = torn_pending {
        report.torn.push(t);
    }
    report.unsigned_tail = match (report.last_sequence, report.last_signed_sequence) {
        (Some(last), Some(signed)) => last - signed,
        (Some(last), None) => last + 1 - report.first_sequence.unwrap_or(1),
        _ => 0,
    };
    Ok(report)
}
