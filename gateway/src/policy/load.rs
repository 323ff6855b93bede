//! Reads policy files: YAML syntax, then the JSON Schema, then compilation (regexes, entity
//! names, schema files). Every error names the file, line, column and key.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::cases::{Case, CaseFile};
use super::compile::compile;
use super::raw::{RawCaseFile, RawPolicy};
use super::rules::Policy;
use super::set::PolicySet;
use crate::config::locate::{self, Segment};

/// A policy error; `Display` gives `file:line:column: key: message`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// A file or directory could not be read.
    #[error("{file}: cannot read: {message}")]
    Read {
        /// The path.
        file: String,
        /// The I/O error.
        message: String,
    },
    /// Something in a file is wrong.
    #[error("{file}:{line}:{column}: {key}{}{message}", if key.is_empty() { "" } else { ": " })]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Key path such as `rules[2].patterns[0]`; empty for the whole document.
        key: String,
        /// What is wrong, and what was expected.
        message: String,
    },
}

/// The policy files of `dir`: `*.yaml` and `*.yml`, sorted.
pub fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    yaml_files(dir)
}

/// The test-case files of `dir`: `tests/*.yaml`, sorted; none when there is no `tests/`.
pub fn case_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let t = dir.join("tests");
    if t.is_dir() {
        yaml_files(&t)
    } else {
        Ok(Vec::new())
    }
}

pub(crate) fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let rd = std::fs::read_dir(dir).map_err(|e| read_error(dir, e))?;
    let mut files = Vec::new();
    for entry in rd {
        let path = entry.map_err(|e| read_error(dir, e))?.path();
        let yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_error(path: &Path, e: std::io::Error) -> PolicyError {
    PolicyError::Read {
        file: path.display().to_string(),
        message: e.to_string(),
    }
}

/// The policies' version: [`crate::reload::fingerprint`] of `dir`.
pub fn fingerprint(dir: &Path) -> Result<String, PolicyError> {
    crate::reload::fingerprint(dir).map_err(|e| read_error(dir, e))
}

/// Loads every policy of `dir` into one version; all errors of all files, or the set.
pub fn load_dir(dir: &Path) -> Result<PolicySet, Vec<PolicyError>> {
    let version = fingerprint(dir).map_err(|e| vec![e])?;
    let files = policy_files(dir).map_err(|e| vec![e])?;
    let mut policies: Vec<Arc<Policy>> = Vec::new();
    let mut errors = Vec::new();
    for file in &files {
        match load_file(file) {
            Ok(p) => policies.push(Arc::new(p)),
            Err(mut e) => errors.append(&mut e),
        }
    }
    errors.extend(check_set(&policies));
    for file in case_files(dir).map_err(|e| vec![e])? {
        if let Err(mut e) = load_case_file(&file, &policies) {
            errors.append(&mut e);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(PolicySet {
        policies,
        version,
        dir: dir.to_path_buf(),
        loaded_at: SystemTime::now(),
    })
}

/// Ids unique across files; at most one default.
pub fn check_set(policies: &[Arc<Policy>]) -> Vec<PolicyError> {
    let mut errors = Vec::new();
    let mut seen: Vec<&Policy> = Vec::new();
    let mut default: Option<&Policy> = None;
    for p in policies {
        let at = |key: &str, message: String| {
            let src = std::fs::read_to_string(&p.file).unwrap_or_default();
            invalid(&p.file, &src, &[Segment::Key(key.into())], message)
        };
        if let Some(other) = seen.iter().find(|o| o.id == p.id) {
            errors.push(at(
                "id",
                format!(
                    "policy id `{}` is already used by {}",
                    p.id,
                    other.file.display()
                ),
            ));
        }
        if p.default {
            if let Some(d) = default {
                errors.push(at(
                    "default",
                    format!(
                        "only one policy may be the default; {} (`{}`) is too",
                        d.file.display(),
                        d.id
                    ),
                ));
            } else {
                default = Some(p);
            }
        }
        seen.push(p);
    }
    errors
}

/// Reads, validates and compiles one policy file.
pub fn load_file(path: &Path) -> Result<Policy, Vec<PolicyError>> {
    let src = std::fs::read_to_string(path).map_err(|e| vec![read_error(path, e)])?;
    parse(path, &src)
}

/// Validates and compiles `src` as if read from `path`.
pub fn parse(path: &Path, src: &str) -> Result<Policy, Vec<PolicyError>> {
    let doc = document(path, src).map_err(|e| vec![e])?;
    let violations = super::schema::violations(&doc);
    if !violations.is_empty() {
        return Err(violations
            .into_iter()
            .map(|(p, m)| invalid(path, src, &p, m))
            .collect());
    }
    let raw: RawPolicy = serde_path_to_error::deserialize(doc).map_err(|e| {
        let p = json_path(&e.path().to_string());
        vec![invalid(path, src, &p, e.into_inner().to_string())]
    })?;
    compile(path, raw).map_err(|errs| {
        errs.into_iter()
            .map(|(p, m)| invalid(path, src, &p, m))
            .collect()
    })
}

/// YAML syntax, into JSON for the schema.
fn document(path: &Path, src: &str) -> Result<serde_json::Value, PolicyError> {
    let yaml = yaml(path, src)?;
    serde_json::to_value(&yaml).map_err(|e| PolicyError::Invalid {
        file: path.display().to_string(),
        line: 1,
        column: 1,
        key: String::new(),
        message: format!("not representable as JSON (keys must be strings): {e}"),
    })
}

/// YAML syntax only, with serde_yaml's position.
pub(crate) fn yaml(path: &Path, src: &str) -> Result<serde_yaml::Value, PolicyError> {
    serde_yaml::from_str(src).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        // serde_yaml appends " at line N column M"; the position is already in front.
        let mut message = e.to_string();
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        PolicyError::Invalid {
            file: path.display().to_string(),
            line,
            column,
            key: String::new(),
            message: format!("invalid YAML: {message}"),
        }
    })
}

/// `rules[0].kind` (serde_path_to_error's form) into segments.
pub(crate) fn json_path(s: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    for part in s.split('.') {
        let (name, rest) = part.split_once('[').unwrap_or((part, ""));
        if !name.is_empty() && name != "?" {
            out.push(Segment::Key(name.to_string()));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Segment::Index(i));
            }
        }
    }
    out
}

/// An error at `key` of `src`, with its line and column.
pub fn invalid(path: &Path, src: &str, key: &[Segment], message: String) -> PolicyError {
    let (line, column) = position(src, key);
    PolicyError::Invalid {
        file: path.display().to_string(),
        line,
        column,
        key: locate::render(key),
        message,
    }
}

/// Line and column of `key` in block-style YAML; its nearest found parent otherwise.
pub fn position(src: &str, key: &[Segment]) -> (usize, usize) {
    let Some(line) = locate::line_of(src, key) else {
        return (1, 1);
    };
    let text = src.lines().nth(line - 1).unwrap_or("");
    let last_key = key.iter().rev().find_map(|s| match s {
        Segment::Key(k) => Some(k.as_str()),
        Segment::Index(_) => None,
    });
    let column = match (key.last(), last_key) {
        (Some(Segment::Key(_)), Some(k)) => text.find(&format!("{k}:")).or_else(|| text.find(k)),
        _ => None,
    }
    .or_else(|| {
        // An item: its content after the dash.
        let t = text.trim_start();
        let dash = text.len() - t.len();
        t.strip_prefix('-')
            .map(|r| dash + 1 + (r.len() - r.trim_start().len()))
            .or(Some(dash))
    })
    .unwrap_or(0);
    (line, text[..column.min(text.len())].chars().count() + 1)
}

/// Reads a `policies/tests/*.yaml` file against the loaded policies.
pub fn load_case_file(path: &Path, policies: &[Arc<Policy>]) -> Result<CaseFile, Vec<PolicyError>> {
    let src = std::fs::read_to_string(path).map_err(|e| vec![read_error(path, e)])?;
    let yaml = yaml(path, &src).map_err(|e| vec![e])?;
    let raw: RawCaseFile = serde_path_to_error::deserialize(yaml).map_err(|e| {
        let p = json_path(&e.path().to_string());
        vec![invalid(path, &src, &p, e.into_inner().to_string())]
    })?;
    if !policies.iter().any(|p| *p.id == *raw.policy) {
        return Err(vec![invalid(
            path,
            &src,
            &[Segment::Key("policy".into())],
            format!(
                "no policy with id `{}`; loaded: {}",
                raw.policy,
                policies
                    .iter()
                    .map(|p| p.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )]);
    }
    let mut cases = Vec::new();
    let mut errors = Vec::new();
    for (i, c) in raw.cases.into_iter().enumerate() {
        match Case::from_raw(c, vec![Segment::Key("cases".into()), Segment::Index(i)]) {
            Ok(c) => cases.push(c),
            Err((p, m)) => errors.push(invalid(path, &src, &p, m)),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(CaseFile {
        file: path.to_path_buf(),
        policy: raw.policy,
        cases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_point_at_keys_and_items() {
        let src = "id: p\nrules:\n  - id: r\n    kind: regex\n    patterns:\n      - \"(\"\n";
        let k = |s: &str| Segment::Key(s.into());
        assert_eq!(
            position(src, &[k("rules"), Segment::Index(0), k("kind")]),
            (4, 5)
        );
        assert_eq!(
            position(
                src,
                &[
                    k("rules"),
                    Segment::Index(0),
                    k("patterns"),
                    Segment::Index(0)
                ]
            ),
            (6, 9)
        );
        assert_eq!(position(src, &[k("rules"), Segment::Index(0)]), (3, 5));
        assert_eq!(position(src, &[k("nope")]), (1, 1));
    }

    #[test]
    fn json_paths_parse() {
        let k = |s: &str| Segment::Key(s.into());
        assert_eq!(
            json_path("rules[2].entities"),
            vec![k("rules"), Segment::Index(2), k("entities")]
        );
    }
}
