//! The module layering of `gateway/src`, as `docs/architecture.md` writes it down: a module
//! may import (`crate::x`) only modules of its own layer or below, and imports within a
//! layer form no cycle. Test code is exempt (`#[cfg(test)]` items, `tests.rs`, `tests/`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The layers of the ```` ```layers ```` block, top first, as written; returned bottom first.
fn layers(doc: &str) -> Vec<Vec<String>> {
    let block = doc
        .split("```layers\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/architecture.md has a ```layers block");
    let mut layers: Vec<Vec<String>> = block
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    layers.reverse();
    layers
}

/// `text` with comments and string and character literals blanked, lines kept.
fn strip(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = c.clone();
    let blank = |out: &mut Vec<char>, a: usize, b: usize| {
        for ch in &mut out[a..b.min(c.len())] {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
    };
    let mut i = 0;
    while i < c.len() {
        let at = |k: usize| c.get(k).copied().unwrap_or('\0');
        match (c[i], at(i + 1)) {
            ('/', '/') => {
                let end = (i..c.len()).find(|&k| c[k] == '\n').unwrap_or(c.len());
                blank(&mut out, i, end);
                i = end;
            }
            ('/', '*') => {
                let (mut depth, mut k) = (1, i + 2);
                while k < c.len() && depth > 0 {
                    match (c[k], at(k + 1)) {
                        ('/', '*') => (depth, k) = (depth + 1, k + 2),
                        ('*', '/') => (depth, k) = (depth - 1, k + 2),
                        _ => k += 1,
                    }
                }
                blank(&mut out, i, k);
                i = k;
            }
            ('r', '#') | ('r', '"')
                if i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_') =>
            {
                let hashes = (i + 1..c.len()).take_while(|&k| c[k] == '#').count();
                if at(i + 1 + hashes) != '"' {
                    i += 1;
                    continue;
                }
                let mut k = i + 2 + hashes;
                while k < c.len() && !(c[k] == '"' && (1..=hashes).all(|h| at(k + h) == '#')) {
                    k += 1;
                }
                blank(&mut out, i, k + 1 + hashes);
                i = k + 1 + hashes;
            }
            ('"', _) => {
                let mut k = i + 1;
                while k < c.len() && c[k] != '"' {
                    k += if c[k] == '\\' { 2 } else { 1 };
                }
                blank(&mut out, i, k + 1);
                i = k + 1;
            }
            // A character literal, not a lifetime: 'x' or an escape such as '\n'.
            ('\'', '\\') => {
                let end = (i + 2..c.len()).find(|&k| c[k] == '\'').unwrap_or(c.len());
                blank(&mut out, i, end + 1);
                i = end + 1;
            }
            ('\'', _) if at(i + 2) == '\'' => {
                blank(&mut out, i, i + 3);
                i += 3;
            }
            _ => i += 1,
        }
    }
    out.into_iter().collect()
}

/// `code` (stripped) without the items under `#[cfg(test)]`.
fn without_test_items(code: &str) -> String {
    let mut out: Vec<char> = code.chars().collect();
    let c = out.clone();
    let marker: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut i = 0;
    while i + marker.len() <= c.len() {
        if c[i..i + marker.len()] != marker[..] {
            i += 1;
            continue;
        }
        let mut k = i + marker.len();
        while k < c.len() && c[k] != '{' && c[k] != ';' {
            k += 1;
        }
        if k < c.len() && c[k] == '{' {
            let mut depth = 0;
            while k < c.len() {
                match c[k] {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                k += 1;
            }
        }
        for ch in &mut out[i..(k + 1).min(c.len())] {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
        i = k + 1;
    }
    out.into_iter().collect()
}

/// One `crate::x` use: importing module, imported module, where.
#[derive(Debug)]
struct Import {
    from: String,
    to: String,
    at: String,
}

/// Every `crate::x` path in the non-test code of `files` (module name, path, source).
fn imports(files: &[(String, String, String)], modules: &BTreeSet<String>) -> Vec<Import> {
    let mut found = Vec::new();
    for (module, path, source) in files {
        let code = without_test_items(&strip(source));
        for (n, line) in code.lines().enumerate() {
            let mut rest = line;
            while let Some(p) = rest.find("crate::") {
                let before = rest[..p].chars().last();
                let name: String = rest[p + 7..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[p + 7..];
                if before.is_some_and(|b| b.is_alphanumeric() || b == '_') {
                    continue;
                }
                if modules.contains(&name) && &name != module {
                    found.push(Import {
                        from: module.clone(),
                        to: name,
                        at: format!("{path}:{}", n + 1),
                    });
                }
            }
        }
    }
    found
}

/// What breaks the layering: imports from below a module's layer upward, modules the doc
/// does not place, and cycles within a layer.
fn violations(
    layers: &[Vec<String>],
    modules: &BTreeSet<String>,
    imports: &[Import],
) -> Vec<String> {
    let level: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.iter().map(move |m| (m.as_str(), i)))
        .collect();
    let mut problems: Vec<String> = modules
        .iter()
        .filter(|m| !level.contains_key(m.as_str()))
        .map(|m| format!("module `{m}` is in no layer of docs/architecture.md"))
        .collect();
    let mut same: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for i in imports {
        let (Some(&a), Some(&b)) = (level.get(i.from.as_str()), level.get(i.to.as_str())) else {
            continue;
        };
        if b > a {
            problems.push(format!(
                "{}: `{}` (layer {a}) imports `{}` (layer {b}, above it)",
                i.at, i.from, i.to
            ));
        } else if a == b {
            same.entry(&i.from).or_default().insert(&i.to);
        }
    }
    // A cycle within a layer: some module reaches itself.
    for &start in same.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = same[start].iter().copied().collect();
        while let Some(m) = todo.pop() {
            if m == start {
                problems.push(format!("a cycle within a layer through `{start}`"));
                break;
            }
            if seen.insert(m) {
                todo.extend(same.get(m).into_iter().flatten().copied());
            }
        }
    }
    problems
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "tests") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs")
            && p.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(p);
        }
    }
}

#[test]
fn modules_import_only_their_layer_and_below() {
    let src = repo().join("gateway/src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let modules: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').to_string())
        .collect();
    let mut files = Vec::new();
    for m in &modules {
        let mut paths = Vec::new();
        let file = src.join(format!("{m}.rs"));
        if file.is_file() {
            paths.push(file);
        }
        if src.join(m).is_dir() {
            rust_files(&src.join(m), &mut paths);
        }
        for p in paths {
            let rel = p.strip_prefix(repo()).unwrap().display().to_string();
            files.push((m.clone(), rel, std::fs::read_to_string(&p).unwrap()));
        }
    }
    let doc = std::fs::read_to_string(repo().join("docs/architecture.md")).unwrap();
    let layers = layers(&doc);
    let found = imports(&files, &modules);
    assert!(
        found.len() > 100,
        "the scan found too few imports: {}",
        found.len()
    );
    let problems = violations(&layers, &modules, &found);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_check_catches_an_upward_import_a_cycle_and_an_unplaced_module() {
    let layers = vec![
        vec!["config".to_string()],
        vec!["http".to_string(), "app".to_string()],
    ];
    let modules: BTreeSet<String> = ["config", "http", "app", "new"].map(String::from).into();
    let file = |m: &str, src: &str| (m.to_string(), format!("{m}.rs"), src.to_string());
    let files = vec![
        // Upward, but only in a comment, a string and a test item: allowed.
        file(
            "config",
            "// crate::http\nconst S: &str = \"crate::http\";\n#[cfg(test)]\nmod t { use crate::http; }\nuse crate::configx;\n",
        ),
        file("http", "use crate::config::Config;\nfn f() { crate::app::g() }\n"),
        file("app", "use crate::http::{self};\n"),
        file("new", ""),
    ];
    let found = imports(&files, &modules);
    let problems = violations(&layers, &modules, &found);
    assert!(problems.iter().any(|p| p.contains("cycle")), "{problems:?}");
    assert!(
        problems.iter().any(|p| p.contains("`new` is in no layer")),
        "{problems:?}"
    );
    assert!(
        !problems.iter().any(|p| p.starts_with("config.rs")),
        "{problems:?}"
    );

    let upward = vec![file("config", "fn f() -> crate::http::X { todo!() }\n")];
    let problems = violations(&layers, &modules, &imports(&upward, &modules));
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("config.rs:1: `config` (layer 0) imports `http`")),
        "{problems:?}"
    );
}
