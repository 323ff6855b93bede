//! Batch output: JSON Lines, one result per record, appended and flushed as each record
//! finishes, so an interrupted run loses at most the records in flight.
//!
//! Resuming reads the existing file: ids whose last line says `ok` or `blocked` are done and
//! skipped; `failed` ones run again. A partial last line (the process died mid-write) is cut
//! off first.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde_json::Value;

/// The output file, open for appending.
pub struct Output {
    file: File,
}

/// What an existing output file already holds.
#[derive(Debug, Default, PartialEq)]
pub struct Previous {
    /// Ids finished (`ok` or `blocked`).
    pub done: HashSet<String>,
    /// Bytes of a partial last line that were cut off.
    pub repaired_bytes: u64,
}

impl Output {
    /// Opens (creating) `path`; with `resume`, reads what is done, otherwise truncates.
    pub fn open(path: &Path, resume: bool) -> std::io::Result<(Self, Previous)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(!resume)
            .open(path)?;
        let mut prev = Previous::default();
        if resume {
            let mut text = String::new();
            file.read_to_string(&mut text).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("{} is not UTF-8 text: {e}", path.display()),
                )
            })?;
            let complete = match text.rfind('\n') {
                Some(i) => i + 1,
                None => 0,
            };
            if complete < text.len() {
                prev.repaired_bytes = (text.len() - complete) as u64;
                file.set_len(complete as u64)?;
            }
            let mut last: std::collections::HashMap<String, bool> = Default::default();
            for line in text[..complete].lines() {
                let Ok(v) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                if let (Some(id), Some(status)) = (
                    v.get("id").and_then(Value::as_str),
                    v.get("status").and_then(Value::as_str),
                ) {
                    last.insert(id.to_string(), matches!(status, "ok" | "blocked"));
                }
            }
            prev.done = last
                .into_iter()
                .filter(|(_, d)| *d)
                .map(|(id, _)| id)
                .collect();
        }
        file.seek(SeekFrom::End(0))?;
        Ok((Self { file }, prev))
    }

    /// Appends one result line and flushes it.
    pub fn write(&mut self, result: &Value) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(result).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // One write call per line: a crash leaves at most one partial line, cut on resume.
        self.file.write_all(&line)?;
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resume_skips_finished_ids_and_repairs_a_partial_line() {
        let dir = std::env::temp_dir().join(format!("gh-batch-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.jsonl");
        std::fs::write(
            &path,
            "{\"id\":\"a\",\"status\":\"ok\"}\n{\"id\":\"b\",\"status\":\"failed\"}\n{\"id\":\"c\",\"status\":\"blocked\"}\n{\"id\":\"b\",\"status\":\"ok\"}\n{\"id\":\"d\",\"sta",
        )
        .unwrap();
        let (mut out, prev) = Output::open(&path, true).unwrap();
        let mut done: Vec<_> = prev.done.iter().cloned().collect();
        done.sort();
        assert_eq!(done, ["a", "b", "c"]);
        assert_eq!(prev.repaired_bytes, 14);
        out.write(&json!({"id": "d", "status": "failed"})).unwrap();
        drop(out);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text
            .ends_with("{\"id\":\"b\",\"status\":\"ok\"}\n{\"id\":\"d\",\"status\":\"failed\"}\n"));
        let (_, prev) = Output::open(&path, true).unwrap();
        assert!(!prev.done.contains("d"), "failed records run again");
        let (_, prev) = Output::open(&path, false).unwrap();
        assert!(prev.done.is_empty());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
