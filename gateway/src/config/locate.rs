//! Finds the line of a key path in block-style YAML, so validation errors can name it.
//!
//! serde_yaml reports positions only for errors it raises itself; checks done after
//! deserializing (a missing file, a bad address) still need a line. Configs are written in
//! block style, which a scan by indentation resolves; flow style resolves to the nearest
//! enclosing key that was found.

/// One step of a key path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// Renders a key path as `models[0].path`.
pub fn render(path: &[Segment]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

struct Line<'a> {
    /// Column of the first non-space character.
    indent: usize,
    /// Text from `indent` on, comments and blank lines excluded.
    text: &'a str,
}

fn significant(src: &str) -> Vec<Option<Line<'_>>> {
    src.lines()
        .map(|raw| {
            let text = raw.trim_start_matches(' ');
            if text.is_empty() || text.starts_with('#') || text.starts_with("---") {
                return None;
            }
            Some(Line {
                indent: raw.len() - text.len(),
                text,
            })
        })
        .collect()
}

/// The key written on a line whose keys start at `col`, looking through `- ` item markers.
fn key_at<'a>(line: &Line<'a>, col: usize) -> Option<&'a str> {
    let mut indent = line.indent;
    let mut text = line.text;
    while indent < col {
        let rest = text.strip_prefix('-')?;
        let trimmed = rest.trim_start_matches(' ');
        if trimmed.len() == rest.len() && !rest.is_empty() {
            return None;
        }
        indent += 1 + rest.len() - trimmed.len();
        text = trimmed;
    }
    if indent != col {
        return None;
    }
    let colon = text.find(':')?;
    let key = text[..colon].trim();
    let key = key.trim_matches(|c| c == '"' || c == '\'');
    (!key.is_empty()).then_some(key)
}

/// The 1-based line of `path` in `src`, or of its deepest prefix that can be found.
pub fn line_of(src: &str, path: &[Segment]) -> Option<usize> {
    let lines = significant(src);
    let (mut lo, mut hi) = (0usize, lines.len());
    // Column where keys of the current block start; None until the first line fixes it.
    let mut col: Option<usize> = None;
    let mut found: Option<usize> = None;
    for seg in path {
        let first = (lo..hi).find_map(|i| lines[i].as_ref().map(|l| (i, l)));
        let Some((first_i, first_line)) = first else {
            break;
        };
        let block_col = col.unwrap_or(first_line.indent);
        match seg {
            Segment::Key(k) => {
                let Some(i) = (lo..hi).find(|&i| {
                    lines[i].as_ref().and_then(|l| key_at(l, block_col)) == Some(k.as_str())
                }) else {
                    break;
                };
                found = Some(i);
                // The key's children are the following lines indented past it.
                let end = (i + 1..hi)
                    .find(|&j| lines[j].as_ref().is_some_and(|l| l.indent <= block_col))
                    .unwrap_or(hi);
                lo = i + 1;
                hi = end;
                col = None;
            }
            Segment::Index(n) => {
                let dash_col = (lo..hi)
                    .filter_map(|i| lines[i].as_ref())
                    .map(|l| l.indent)
                    .min()
                    .unwrap_or(first_line.indent);
                let items: Vec<usize> = (first_i..hi)
                    .filter(|&i| {
                        lines[i]
                            .as_ref()
                            .is_some_and(|l| l.indent == dash_col && l.text.starts_with('-'))
                    })
                    .collect();
                let Some(&i) = items.get(*n) else { break };
                found = Some(i);
                let end = items.get(n + 1).copied().unwrap_or(hi);
                let line = lines[i].as_ref().expect("item lines are significant");
                let after_dash = &line.text[1..];
                let item_col =
                    dash_col + 1 + (after_dash.len() - after_dash.trim_start_matches(' ').len());
                lo = i;
                hi = end;
                col = Some(item_col);
            }
        }
    }
    found.map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn k(s: &str) -> Segment {
        Segment::Key(s.into())
    }

    const SRC: &str = "\
# comment
server:
  listen: 127.0.0.1:8080
  body_limit_bytes: 10

models:
  - id: a
    path: x.gguf
  - id: b
    backend: remote
    base_url: http://h
";

    #[test]
    fn finds_nested_keys_and_items() {
        assert_eq!(line_of(SRC, &[k("server")]), Some(2));
        assert_eq!(line_of(SRC, &[k("server"), k("body_limit_bytes")]), Some(4));
        assert_eq!(line_of(SRC, &[k("models"), Segment::Index(0)]), Some(7));
        assert_eq!(
            line_of(SRC, &[k("models"), Segment::Index(0), k("id")]),
            Some(7)
        );
        assert_eq!(
            line_of(SRC, &[k("models"), Segment::Index(0), k("path")]),
            Some(8)
        );
        assert_eq!(
            line_of(SRC, &[k("models"), Segment::Index(1), k("base_url")]),
            Some(11)
        );
    }

    #[test]
    fn missing_key_falls_back_to_parent() {
        assert_eq!(
            line_of(SRC, &[k("models"), Segment::Index(1), k("nope")]),
            Some(9)
        );
        assert_eq!(line_of(SRC, &[k("models"), Segment::Index(5)]), Some(6));
        assert_eq!(line_of(SRC, &[k("absent")]), None);
        // A key of the first item must not be found in the second.
        assert_eq!(
            line_of(SRC, &[k("models"), Segment::Index(0), k("base_url")]),
            Some(7)
        );
    }

    #[test]
    fn renders_paths() {
        assert_eq!(
            render(&[k("models"), Segment::Index(2), k("path")]),
            "models[2].path"
        );
    }

    proptest! {
        #[test]
        fn never_panics(src in "[ a-z:#\\-\n\"']{0,200}", keys in proptest::collection::vec("[a-z]{1,3}", 0..4), idx in 0usize..3) {
            let mut path: Vec<Segment> = keys.into_iter().map(Segment::Key).collect();
            path.insert(path.len() / 2, Segment::Index(idx));
            if let Some(line) = line_of(&src, &path) {
                prop_assert!(line >= 1 && line <= src.lines().count());
            }
        }
    }
}
