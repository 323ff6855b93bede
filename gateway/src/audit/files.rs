//! The log's files: `audit-<first sequence, 12 digits>-<UTC start>.jsonl` in one directory,
//! so that name order is chain order, and reading them back line by line.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::record::Record;
use super::AuditError;

/// The name of the file whose first record has `sequence`.
pub fn file_name(sequence: u64, time_ms: i64) -> String {
    let t = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(time_ms)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ");
    format!("audit-{sequence:012}-{t}.jsonl")
}

/// The log files of `dir`, in chain order; none when the directory does not exist.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(AuditError::io(dir, e)),
    };
    let mut files = Vec::new();
    for e in entries {
        let e = e.map_err(|e| AuditError::io(dir, e))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("audit-") && name.ends_with(".jsonl") {
            files.push(e.path());
        }
    }
    files.sort();
    Ok(files)
}

/// One line of a log file.
#[derive(Debug, Clone)]
pub struct Line {
    /// The file.
    pub path: PathBuf,
    /// 1-based line number.
    pub number: usize,
    /// The bytes, without the newline.
    pub bytes: Vec<u8>,
    /// Ended by a newline; an unterminated last line is a record cut short by a crash.
    pub complete: bool,
}

/// Every line of every file of `dir`, in chain order.
pub fn lines(dir: &Path) -> Result<impl Iterator<Item = Result<Line, AuditError>>, AuditError> {
    let files = list(dir)?;
    Ok(files.into_iter().flat_map(|path| {
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let err = AuditError::io(&path, e);
                return Box::new(std::iter::once(Err(err)))
                    as Box<dyn Iterator<Item = Result<Line, AuditError>>>;
            }
        };
        let mut reader = BufReader::new(file);
        let mut number = 0;
        Box::new(std::iter::from_fn(move || {
            let mut buf = Vec::new();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => None,
                Ok(_) => {
                    number += 1;
                    let complete = buf.last() == Some(&b'\n');
                    if complete {
                        buf.pop();
                    }
                    Some(Ok(Line {
                        path: path.clone(),
                        number,
                        bytes: buf,
                        complete,
                    }))
                }
                Err(e) => Some(Err(AuditError::io(&path, e))),
            }
        })) as Box<dyn Iterator<Item = Result<Line, AuditError>>>
    }))
}

/// Every complete record of `dir`, in chain order, with where it is. Lines that are not
/// records are skipped here (`verify` reports them).
pub fn records(
    dir: &Path,
) -> Result<impl Iterator<Item = Result<(Line, Record), AuditError>>, AuditError> {
    Ok(lines(dir)?.filter_map(|l| match l {
        Err(e) => Some(Err(e)),
        Ok(l) if !l.complete => None,
        Ok(l) => serde_json::from_slice::<Record>(&l.bytes)
            .ok()
            .map(|r| Ok((l, r))),
    }))
}

/// The end of the log, where the writer continues the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Tail {
    /// The last non-empty file.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// Bytes after its last newline: a record cut short by a crash.
    pub torn_bytes: u64,
    /// Sequence and line hash of the last complete record (in this file or an earlier one);
    /// `None` when there is none.
    pub last: Option<(u64, String)>,
}

/// Reads the end of the log in `dir`; `None` when there is no non-empty file.
pub fn tail(dir: &Path) -> Result<Option<Tail>, AuditError> {
    let files = list(dir)?;
    let mut found: Option<Tail> = None;
    for path in files.iter().rev() {
        let Some((size, torn_bytes, last)) = file_end(path)? else {
            continue; // empty: a crash right after creating it
        };
        match &mut found {
            None => {
                found = Some(Tail {
                    path: path.clone(),
                    size,
                    torn_bytes,
                    last,
                })
            }
            Some(t) => t.last = last,
        }
        if found.as_ref().is_some_and(|t| t.last.is_some()) {
            break;
        }
    }
    Ok(found)
}

/// Size, torn bytes and last complete record of one file; `None` when it is empty.
#[allow(clippy::type_complexity)]
fn file_end(path: &Path) -> Result<Option<(u64, u64, Option<(u64, String)>)>, AuditError> {
    let mut f = File::open(path).map_err(|e| AuditError::io(path, e))?;
    let size = f.metadata().map_err(|e| AuditError::io(path, e))?.len();
    if size == 0 {
        return Ok(None);
    }
    // Read backwards in growing windows until the window holds the whole last line.
    let mut window: u64 = 64 * 1024;
    loop {
        let start = size.saturating_sub(window);
        f.seek(SeekFrom::Start(start))
            .map_err(|e| AuditError::io(path, e))?;
        let mut buf = Vec::with_capacity((size - start) as usize);
        f.read_to_end(&mut buf)
            .map_err(|e| AuditError::io(path, e))?;
        let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
            if start == 0 {
                return Ok(Some((size, size, None)));
            }
            window *= 4;
            continue;
        };
        let torn_bytes = (buf.len() - end - 1) as u64;
        let line_start = match buf[..end].iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None if start == 0 => 0,
            None => {
                window *= 4;
                continue;
            }
        };
        let line = &buf[line_start..end];
        let record: Record = serde_json::from_slice(line).map_err(|e| AuditError::Corrupt {
            path: path.to_path_buf(),
            message: format!(
                "its last complete line is not an audit record ({e}); \
                 run `gatehouse audit verify`, then move the file aside"
            ),
        })?;
        return Ok(Some((
            size,
            torn_bytes,
            Some((record.metadata.sequence, super::chain::line_hash(line))),
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_chain_order() {
        let a = file_name(9, 1_764_558_000_000);
        let b = file_name(10, 1_700_000_000_000);
        assert_eq!(a, "audit-000000000009-20251201T030000Z.jsonl");
        assert!(a < b);
    }
}
