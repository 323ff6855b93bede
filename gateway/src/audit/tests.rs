//! The writer, the chain and `verify` on real files.

use std::io::Write;
use std::time::Duration;

use super::record::{Activity, Class};
use super::*;
use crate::config::OnFull;
use crate::metrics::Metrics;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fn config(dir: &Path) -> AuditConfig {
    AuditConfig {
        dir: dir.to_path_buf(),
        max_file_bytes: 64 << 20,
        max_file_age: Duration::from_secs(86_400),
        queue: 1024,
        on_full: OnFull::Drop,
        fsync: true,
        checkpoint_every: 1000,
        checkpoint_interval: Duration::from_secs(3600),
        hmac_key: Some(KEY.to_vec()),
        hmac_key_env: None,
    }
}

fn record(i: usize) -> Record {
    let mut r = Record::new(Class::ApiActivity, Activity::Create, record::now_ms());
    r.unmapped.kind = "chat".into();
    r.set_outcome("ok");
    r.message = format!("request {i}");
    r
}

fn write_n(a: &Auditor, n: usize) {
    for i in 0..n {
        a.write(a.admit().unwrap(), record(i));
    }
}

fn all(dir: &Path) -> Vec<Record> {
    files::records(dir).unwrap().map(|r| r.unwrap().1).collect()
}

#[test]
fn chain_rotation_and_checkpoints_verify() {
    let tmp = tempdir();
    let mut cfg = config(tmp.path());
    cfg.max_file_bytes = 2_000;
    cfg.checkpoint_every = 7;
    let metrics = Metrics::new();
    let a = Auditor::open(&cfg, metrics.audit.clone()).unwrap();
    // In batches: a file rotates between batches once it is past max_file_bytes.
    for _ in 0..8 {
        write_n(&a, 5);
        assert!(a.flush(Duration::from_secs(10)));
    }
    a.close(Duration::from_secs(10));
    let files = files::list(tmp.path()).unwrap();
    assert!(files.len() > 3, "rotated by size: {files:?}");
    let recs = all(tmp.path());
    let seqs: Vec<u64> = recs.iter().map(|r| r.metadata.sequence).collect();
    assert_eq!(seqs, (1..=recs.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        recs.iter().filter(|r| r.unmapped.kind == "chat").count(),
        40
    );
    // Every file but the last ends with a checkpoint; the log ends with one (close).
    assert_eq!(recs.last().unwrap().unmapped.kind, "checkpoint");
    let report = verify::verify(tmp.path(), Some(KEY)).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.records, recs.len() as u64);
    assert_eq!(report.unsigned_tail, 0);
    assert!(report.signed_checkpoints >= 6);
    assert_eq!(metrics.audit.records.with_label_values(&["chat"]).get(), 40);
    // Rotation, periodic and closing checkpoints are all counted.
    assert_eq!(metrics.audit.checkpoints.get(), report.checkpoints);
    assert_eq!(
        metrics
            .audit
            .records
            .with_label_values(&["checkpoint"])
            .get(),
        report.checkpoints
    );
    assert_eq!(metrics.audit.queue_depth.get(), 0);
    assert_eq!(a.pending(), 0);
    // Without the key the chain still verifies; signatures are not checked.
    let unkeyed = verify::verify(tmp.path(), None).unwrap();
    assert!(unkeyed.ok());
    assert_eq!(unkeyed.signed_checkpoints, 0);
    // A wrong key is refused at the first checkpoint.
    let wrong = verify::verify(tmp.path(), Some(b"another key, also long enough..!")).unwrap();
    assert!(wrong.broken.unwrap().reason.contains("another key"));
}

#[test]
fn tampering_is_found_where_it_happened() {
    let tmp = tempdir();
    let a = Auditor::open(&config(tmp.path()), Metrics::new().audit).unwrap();
    write_n(&a, 10);
    a.close(Duration::from_secs(10));
    let path = files::list(tmp.path()).unwrap().remove(0);
    let text = std::fs::read_to_string(&path).unwrap();

    // An edited field: the next line's prev_hash no longer matches.
    let edited = text.replacen("request 3", "request 9", 1);
    std::fs::write(&path, &edited).unwrap();
    let b = verify::verify(tmp.path(), Some(KEY))
        .unwrap()
        .broken
        .unwrap();
    assert_eq!((b.line, b.sequence), (5, Some(5)), "{b:?}");
    assert!(b.reason.contains("prev_hash"));

    // A removed line: a sequence gap.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(2);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let b = verify::verify(tmp.path(), Some(KEY))
        .unwrap()
        .broken
        .unwrap();
    assert!(b.reason.contains("sequence 4 follows 2"), "{b:?}");

    // Rewriting the whole chain consistently is caught by the checkpoint's signature.
    let mut prev = chain::GENESIS.to_string();
    let mut out = String::new();
    for l in text.lines() {
        let mut r: Record = serde_json::from_str(l).unwrap();
        r.message = r.message.replace("request", "REQUEST");
        r.unmapped.prev_hash = prev.clone();
        let line = serde_json::to_string(&r).unwrap();
        prev = chain::line_hash(line.as_bytes());
        out.push_str(&line);
        out.push('\n');
    }
    std::fs::write(&path, out).unwrap();
    let b = verify::verify(tmp.path(), Some(KEY))
        .unwrap()
        .broken
        .unwrap();
    assert!(b.reason.contains("signature does not match"), "{b:?}");
    // ... which a check without the key cannot see.
    assert!(verify::verify(tmp.path(), None).unwrap().ok());
}

#[test]
fn a_torn_last_line_is_reported_and_the_chain_continues_in_a_new_file() {
    let tmp = tempdir();
    let cfg = config(tmp.path());
    let a = Auditor::open(&cfg, Metrics::new().audit).unwrap();
    write_n(&a, 3);
    a.close(Duration::from_secs(10));
    // A crash in the middle of the next write: half a record, no newline.
    let path = files::list(tmp.path()).unwrap().remove(0);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(br#"{"time":1,"class_uid":60"#)
        .unwrap();

    let report = verify::verify(tmp.path(), Some(KEY)).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.torn.len(), 1);
    assert_eq!(report.torn[0].bytes, 24);

    let a = Auditor::open(&cfg, Metrics::new().audit).unwrap();
    write_n(&a, 2);
    a.close(Duration::from_secs(10));
    assert_eq!(files::list(tmp.path()).unwrap().len(), 2);
    let report = verify::verify(tmp.path(), Some(KEY)).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.torn.len(), 1);
    let recs = all(tmp.path());
    let note = recs
        .iter()
        .find(|r| r.unmapped.kind == "lifecycle")
        .unwrap();
    assert!(note.message.contains("24 bytes"), "{}", note.message);
}

#[test]
fn one_writer_per_directory() {
    let tmp = tempdir();
    let cfg = config(tmp.path());
    let a = Auditor::open(&cfg, Metrics::new().audit).unwrap();
    let err = Auditor::open(&cfg, Metrics::new().audit).unwrap_err();
    assert!(matches!(err, AuditError::Locked(_)), "{err}");
    a.close(Duration::from_secs(10));
}

#[test]
fn reopening_appends_to_the_same_file() {
    let tmp = tempdir();
    let cfg = config(tmp.path());
    for _ in 0..2 {
        let a = Auditor::open(&cfg, Metrics::new().audit).unwrap();
        write_n(&a, 2);
        a.close(Duration::from_secs(10));
    }
    assert_eq!(files::list(tmp.path()).unwrap().len(), 1);
    let report = verify::verify(tmp.path(), Some(KEY)).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.records, 6); // 2 + checkpoint, twice
}

#[test]
fn fail_closed_refuses_when_the_queue_is_full_and_drop_counts_losses() {
    let tmp = tempdir();
    let mut cfg = config(tmp.path());
    cfg.queue = 2;
    cfg.on_full = OnFull::FailClosed;
    let metrics = Metrics::new();
    let a = Auditor::open(&cfg, metrics.audit.clone()).unwrap();
    let s1 = a.admit().unwrap();
    let s2 = a.admit().unwrap();
    assert_eq!(a.admit().unwrap_err(), QueueFull);
    assert_eq!(metrics.audit.refused.get(), 1);
    drop(s1); // a request that ended without a record frees its slot
    let s3 = a.admit().unwrap();
    a.write(s2, record(1));
    a.write(s3, record(2));
    assert!(a.flush(Duration::from_secs(10)));
    assert_eq!(a.pending(), 0);
    a.close(Duration::from_secs(10));

    // Under `drop`, records beyond the queue are counted and a gap record says so.
    let tmp = tempdir();
    let mut cfg = config(tmp.path());
    cfg.queue = 1;
    let metrics = Metrics::new();
    let a = Auditor::open(&cfg, metrics.audit.clone()).unwrap();
    let held = a.reserve().unwrap(); // the queue's only slot
    a.write(a.admit().unwrap(), record(1));
    assert_eq!(
        metrics
            .audit
            .dropped
            .with_label_values(&["queue full"])
            .get(),
        1
    );
    drop(held);
    a.write(a.admit().unwrap(), record(2));
    a.close(Duration::from_secs(10));
    let recs = all(tmp.path());
    let gap = recs.iter().find(|r| r.unmapped.dropped.is_some()).unwrap();
    assert_eq!(gap.unmapped.dropped, Some(1));
    assert!(verify::verify(tmp.path(), Some(KEY)).unwrap().ok());
}

#[test]
fn a_failing_disk_holds_records_until_it_recovers() {
    let tmp = tempdir();
    let mut cfg = config(tmp.path());
    cfg.queue = 3;
    cfg.on_full = OnFull::FailClosed;
    let metrics = Metrics::new();
    let a = Auditor::open(&cfg, metrics.audit.clone()).unwrap();
    a.shared.fail_writes.store(true, Ordering::SeqCst);
    write_n(&a, 3);
    // The writer keeps retrying; the queue holds the records and new requests are refused.
    let t0 = std::time::Instant::now();
    while metrics.audit.write_errors.get() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(10), "no retries");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(a.pending(), 3);
    assert_eq!(a.admit().unwrap_err(), QueueFull);
    assert!(!a.flush(Duration::from_millis(100)));
    a.shared.fail_writes.store(false, Ordering::SeqCst);
    assert!(a.flush(Duration::from_secs(10)));
    assert_eq!(a.pending(), 0);
    a.close(Duration::from_secs(10));
    let report = verify::verify(tmp.path(), Some(KEY)).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(
        all(tmp.path())
            .iter()
            .filter(|r| r.unmapped.kind == "chat")
            .count(),
        3
    );
}

/// A directory removed at the end of the test.
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> TempDir {
    let p = std::env::temp_dir().join(format!("gatehouse-audit-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&p).unwrap();
    TempDir(p)
}

/// A closed log of 12 requests (one file), as lines; written once for the property tests.
fn sample_log() -> &'static Vec<String> {
    static LOG: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let tmp = tempdir();
        let mut cfg = config(tmp.path());
        cfg.checkpoint_every = 5;
        let a = Auditor::open(&cfg, Metrics::new().audit).unwrap();
        write_n(&a, 12);
        a.close(Duration::from_secs(10));
        let path = files::list(tmp.path()).unwrap().remove(0);
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    })
}

fn verify_lines(lines: &[String], tail: &str) -> verify::Report {
    let tmp = tempdir();
    std::fs::write(
        tmp.path().join(files::file_name(1, 0)),
        lines.join("\n") + "\n" + tail,
    )
    .unwrap();
    verify::verify(tmp.path(), Some(KEY)).unwrap()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any changed byte in any line but the last is found, at that line or the next.
    #[test]
    fn every_changed_byte_is_found(line in 0usize..14, at in proptest::prelude::any::<proptest::sample::Index>(), byte in 0x20u8..0x7f) {
        let log = sample_log();
        let line = line % (log.len() - 1);
        let mut lines = log.clone();
        let mut bytes = lines[line].clone().into_bytes();
        let i = at.index(bytes.len());
        proptest::prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        lines[line] = String::from_utf8(bytes).unwrap();
        let report = verify_lines(&lines, "");
        let broken = report.broken.expect("a change must be found");
        proptest::prop_assert!(broken.line == line + 1 || broken.line == line + 2, "{broken:?}");
    }

    /// Removing or swapping lines is found.
    #[test]
    fn removed_or_swapped_lines_are_found(a in 0usize..13, b in 0usize..13) {
        let log = sample_log();
        let mut removed = log.clone();
        removed.remove(1 + a % (log.len() - 2));
        proptest::prop_assert!(verify_lines(&removed, "").broken.is_some());
        // The first record's removal looks like retention; the report shows where it starts.
        let mut first = log.clone();
        first.remove(0);
        proptest::prop_assert_eq!(verify_lines(&first, "").first_sequence, Some(2));
        let (a, b) = (a % log.len(), b % log.len());
        proptest::prop_assume!(a != b);
        let mut swapped = log.clone();
        swapped.swap(a, b);
        proptest::prop_assert!(verify_lines(&swapped, "").broken.is_some());
    }

    /// Garbage never makes `verify` or the writer's recovery panic; an unterminated last line
    /// is an unfinished record, not a break.
    #[test]
    fn garbage_is_reported_not_a_panic(junk in "[ -~\n]{0,200}") {
        let log = sample_log();
        let report = verify_lines(log, &junk.replace('\n', " "));
        proptest::prop_assert!(report.ok());
        let tmp = tempdir();
        std::fs::write(tmp.path().join(files::file_name(1, 0)), &junk).unwrap();
        let _ = verify::verify(tmp.path(), Some(KEY)).unwrap();
        let _ = files::tail(tmp.path());
    }
}
