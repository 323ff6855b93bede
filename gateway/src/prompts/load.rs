//! Reads template files: front matter (YAML, strict), then the body (minijinja syntax, known
//! blocks). Every error names the file, line, column and key.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::Value;

use super::{Blocks, Template, TemplateSet};
use crate::config::locate::Segment;
use crate::domain::{ResponseFormat, Sampling};
use crate::policy::load::{invalid, json_path, yaml, yaml_files, PolicyError as FileError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFront {
    name: String,
    version: u32,
    description: Option<String>,
    model: Option<String>,
    sampling: Option<RawSampling>,
    variables: Option<Value>,
    response_format: Option<RawResponseFormat>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSampling {
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<usize>,
    max_tokens: Option<usize>,
    stop: Option<Vec<String>>,
    seed: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResponseFormat {
    #[serde(rename = "type")]
    kind: String,
    json_schema: Option<RawJsonSchema>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJsonSchema {
    name: String,
    schema: Option<Value>,
    /// Relative to the template file.
    schema_file: Option<String>,
    strict: Option<bool>,
    description: Option<String>,
}

/// Loads every template of `dir`; all errors of all files, or the set.
pub fn load_dir(dir: &Path) -> Result<TemplateSet, Vec<FileError>> {
    let read = |e: std::io::Error| FileError::Read {
        file: dir.display().to_string(),
        message: e.to_string(),
    };
    let version = crate::reload::fingerprint(dir).map_err(|e| vec![read(e)])?;
    let mut templates: BTreeMap<String, BTreeMap<u32, Arc<Template>>> = BTreeMap::new();
    let mut errors = Vec::new();
    for file in yaml_files(dir).map_err(|e| vec![e])? {
        let src = match std::fs::read_to_string(&file) {
            Ok(s) => s,
            Err(e) => {
                errors.push(FileError::Read {
                    file: file.display().to_string(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        match parse(&file, &src) {
            Ok(t) => {
                let versions = templates.entry(t.name.clone()).or_default();
                if let Some(other) = versions.get(&t.version) {
                    let (front, _) = split(&src).unwrap_or_default();
                    errors.push(front_error(
                        &file,
                        front,
                        &[Segment::Key("version".into())],
                        format!("{} is already defined by {}", t.id(), other.file.display()),
                    ));
                } else {
                    versions.insert(t.version, Arc::new(t));
                }
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(TemplateSet {
        templates,
        version,
        dir: dir.to_path_buf(),
        loaded_at: SystemTime::now(),
    })
}

/// `---` front matter `---` body: the front matter and (first body line, body).
fn split(src: &str) -> Option<(&str, (usize, &str))> {
    let rest = src
        .strip_prefix("---\n")
        .or_else(|| src.strip_prefix("---\r\n"))?;
    let mut offset = 0;
    for (i, line) in rest.split_inclusive('\n').enumerate() {
        if line.trim_end() == "---" {
            let front = &rest[..offset];
            let body = &rest[offset + line.len()..];
            // Line 1 is the opening `---`, the front matter has i lines, then the closing one.
            return Some((front, (i + 3, body)));
        }
        offset += line.len();
    }
    None
}

/// An error in the front matter, positioned in the whole file.
fn front_error(path: &Path, front: &str, key: &[Segment], message: String) -> FileError {
    below_opening(invalid(path, front, key, message))
}

/// A front-matter position moved down past the opening `---` line.
fn below_opening(e: FileError) -> FileError {
    match e {
        FileError::Invalid {
            file,
            line,
            column,
            key,
            message,
        } => FileError::Invalid {
            file,
            line: line + 1,
            column,
            key,
            message,
        },
        other => other,
    }
}

fn at(path: &Path, line: usize, key: &str, message: String) -> FileError {
    FileError::Invalid {
        file: path.display().to_string(),
        line,
        column: 1,
        key: key.to_string(),
        message,
    }
}

/// Parses and compiles one template file.
pub fn parse(path: &Path, src: &str) -> Result<Template, Vec<FileError>> {
    let Some((front, (body_line, body))) = split(src) else {
        return Err(vec![at(
            path,
            1,
            "",
            "a template starts with `---`, YAML front matter, then `---` and the body".into(),
        )]);
    };
    let key = |k: &str| vec![Segment::Key(k.into())];
    let err = |k: &[Segment], m: String| vec![front_error(path, front, k, m)];
    let yaml = yaml(path, front).map_err(|e| vec![below_opening(e)])?;
    let raw: RawFront = serde_path_to_error::deserialize(yaml).map_err(|e| {
        let p = json_path(&e.path().to_string());
        err(&p, e.into_inner().to_string())
    })?;
    if !super::valid_template_name(&raw.name) {
        return Err(err(
            &key("name"),
            "1 to 64 characters of a-z, A-Z, 0-9, `_`, `-` and `.`".into(),
        ));
    }
    if raw.version == 0 {
        return Err(err(&key("version"), "versions start at 1".into()));
    }
    let sampling = match raw.sampling {
        None => Sampling::default(),
        Some(s) => sampling(s).map_err(|(k, m)| err(&[key("sampling"), key(k)].concat(), m))?,
    };
    let variables = raw
        .variables
        .unwrap_or_else(|| serde_json::json!({"type": "object"}));
    let validator = jsonschema::validator_for(&variables)
        .map_err(|e| err(&key("variables"), format!("not a valid JSON Schema: {e}")))?;
    let response_format = match raw.response_format {
        None => Default::default(),
        Some(rf) => {
            let v = format_value(path, rf).map_err(|(k, m)| err(&k, m))?;
            ResponseFormat::parse(Some(v))
                .map_err(|e| err(&key("response_format"), e.to_string()))?
        }
    };
    let (env, blocks) = body_env(path, body_line, body).map_err(|e| vec![e])?;
    Ok(Template {
        name: raw.name,
        version: raw.version,
        description: raw.description,
        file: path.to_path_buf(),
        model: raw.model,
        sampling,
        variables,
        response_format,
        validator,
        env,
        blocks,
    })
}

fn sampling(s: RawSampling) -> Result<Sampling, (&'static str, String)> {
    if s.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(("temperature", "must be between 0 and 2".into()));
    }
    if s.top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
        return Err(("top_p", "must be in (0, 1]".into()));
    }
    if s.top_k == Some(0) {
        return Err(("top_k", "must be at least 1".into()));
    }
    if s.max_tokens == Some(0) {
        return Err(("max_tokens", "must be at least 1".into()));
    }
    let stop = s.stop.unwrap_or_default();
    if stop.len() > 4 || stop.iter().any(String::is_empty) {
        return Err(("stop", "at most 4 non-empty stop sequences".into()));
    }
    Ok(Sampling {
        temperature: s.temperature,
        top_p: s.top_p,
        top_k: s.top_k,
        max_tokens: s.max_tokens,
        stop,
        seed: s.seed,
        ignore_eos: false,
    })
}

/// The front matter's `response_format` as OpenAI's JSON, with `schema_file` read.
fn format_value(path: &Path, rf: RawResponseFormat) -> Result<Value, (Vec<Segment>, String)> {
    let k = |parts: &[&str]| -> Vec<Segment> {
        parts.iter().map(|p| Segment::Key(p.to_string())).collect()
    };
    let mut out = serde_json::json!({ "type": rf.kind });
    let Some(js) = rf.json_schema else {
        return Ok(out);
    };
    let schema = match (js.schema, js.schema_file) {
        (Some(s), None) => s,
        (None, Some(f)) => {
            let file = path.parent().unwrap_or(Path::new(".")).join(&f);
            let at = k(&["response_format", "json_schema", "schema_file"]);
            let text = std::fs::read_to_string(&file)
                .map_err(|e| (at.clone(), format!("cannot read {}: {e}", file.display())))?;
            serde_json::from_str(&text)
                .map_err(|e| (at, format!("{} is not JSON: {e}", file.display())))?
        }
        _ => {
            return Err((
                k(&["response_format", "json_schema"]),
                "give exactly one of `schema` and `schema_file`".into(),
            ))
        }
    };
    out["json_schema"] = serde_json::json!({
        "name": js.name,
        "schema": schema,
        "strict": js.strict.unwrap_or(true),
        "description": js.description,
    });
    Ok(out)
}

/// Compiles the body with strict undefined variables; checks its blocks.
fn body_env(
    path: &Path,
    body_line: usize,
    body: &str,
) -> Result<(minijinja::Environment<'static>, Blocks), FileError> {
    let mut blocks = Blocks::default();
    for (i, line) in body.lines().enumerate() {
        let mut rest = line;
        while let Some(p) = rest.find("{%") {
            rest = &rest[p + 2..];
            let tag = rest.trim_start_matches(['-', '+']).trim_start();
            if let Some(after) = tag.strip_prefix("block") {
                let name: String = after
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                match name.as_str() {
                    "system" => blocks.system = true,
                    "user" => blocks.user = true,
                    other => {
                        return Err(at(
                            path,
                            body_line + i,
                            "",
                            format!(
                                "unknown block `{other}`: a template has a `system` and/or a \
                                 `user` block"
                            ),
                        ))
                    }
                }
            }
        }
    }
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_template_owned("body", body.to_string())
        .map_err(|e| {
            let line = body_line + e.line().unwrap_or(1) - 1;
            let detail = e.detail().unwrap_or_default();
            at(
                path,
                line,
                "",
                format!(
                    "template syntax: {}{}{detail}",
                    e.kind(),
                    if detail.is_empty() { "" } else { ": " }
                ),
            )
        })?;
    Ok((env, blocks))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "---\nname: triage\nversion: 2\nmodel: m\nsampling:\n  temperature: 0\n  max_tokens: 50\nvariables:\n  type: object\n  required: [record]\n  properties:\n    record: {type: string}\n---\n{% block system %}You triage.{% endblock %}\n{% block user %}Record: {{ record }}{% endblock %}\n";

    fn errors(src: &str) -> String {
        parse(Path::new("t.yaml"), src)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn parses_a_template() {
        let t = parse(Path::new("t.yaml"), GOOD).unwrap();
        assert_eq!(t.id(), "triage@2");
        assert_eq!(t.sampling.max_tokens, Some(50));
        assert_eq!(
            t.blocks(),
            Blocks {
                system: true,
                user: true
            }
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        assert_eq!(
            errors("name: x\n"),
            "t.yaml:1:1: a template starts with `---`, YAML front matter, then `---` and the body"
        );
        let e = errors(&GOOD.replace("version: 2", "version: 2\ncolour: red"));
        assert!(e.starts_with("t.yaml:4:1: "), "{e}");
        assert!(e.contains("unknown field `colour`"), "{e}");
        let e = errors(&GOOD.replace("model: m", "model: [m"));
        assert!(
            e.starts_with("t.yaml:") && e.contains("invalid YAML"),
            "{e}"
        );
        let e = errors(&GOOD.replace("temperature: 0", "temperature: 9"));
        assert!(e.starts_with("t.yaml:6:3: sampling.temperature: "), "{e}");
        let e = errors(&GOOD.replace("type: object", "type: 12"));
        assert!(e.contains("variables: not a valid JSON Schema"), "{e}");
        let e = errors(&GOOD.replace("{{ record }}", "{{ record "));
        assert!(e.starts_with("t.yaml:15:1: template syntax"), "{e}");
        let e = errors(&GOOD.replace("block user", "block footer"));
        assert!(e.starts_with("t.yaml:15:1: unknown block `footer`"), "{e}");
        let e = errors(&GOOD.replace("name: triage", "name: a b"));
        assert!(e.starts_with("t.yaml:2:1: name: "), "{e}");
        let e = errors(&GOOD.replace(
            "model: m",
            "model: m\nresponse_format:\n  type: json_schema\n  json_schema:\n    name: x\n    schema_file: nope.json",
        ));
        assert!(
            e.contains("response_format.json_schema.schema_file: cannot read"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_versions_are_refused() {
        let dir = std::env::temp_dir().join(format!("gh-tpl-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.yaml"), GOOD).unwrap();
        std::fs::write(dir.join("b.yaml"), GOOD).unwrap();
        let e = crate::reload::one_per_line(&load_dir(&dir).unwrap_err());
        assert!(
            e.contains("b.yaml:3:1: version: triage@2 is already defined by"),
            "{e}"
        );
        std::fs::write(dir.join("b.yaml"), GOOD.replace("version: 2", "version: 1")).unwrap();
        let set = load_dir(&dir).unwrap();
        assert_eq!(set.get("triage", None).unwrap().version, 2);
        assert_eq!(set.get("triage", Some(1)).unwrap().version, 1);
        assert!(set.get("triage", Some(3)).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
