//! `gatehouse policy check|test|explain`: the policy author's workflow.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use serde_json::json;

use crate::policy::cases::{action_name, Case};
use crate::policy::evaluate::{evaluate, Evaluation, Redactor};
use crate::policy::load::{self, PolicyError};
use crate::policy::{Policy, Stage};

/// Default directory of policy files, relative to the working directory.
pub const DEFAULT_DIR: &str = "policies";

/// `gatehouse policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate policy files (and the test files of policy directories); errors show
    /// file:line:column and what was expected.
    Check {
        /// Policy files or directories [default: policies].
        paths: Vec<PathBuf>,
    },
    /// Run the test cases written in policies (`tests:`) and in `<dir>/tests/*.yaml`.
    Test {
        /// Policy files or directories [default: policies].
        paths: Vec<PathBuf>,
    },
    /// Show which rules fire on a text, why, and the redacted text.
    Explain {
        /// The policy file [default: the default policy of --dir].
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Directory whose default policy is used without --policy.
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
        /// Stage to evaluate.
        #[arg(long, default_value = "input", value_parser = ["input", "output", "tool_arguments"])]
        stage: String,
        /// Print JSON: {"action", "decisions": [...], "redacted"}.
        #[arg(long)]
        json: bool,
        /// Read one JSON object `{"text": ...}` per line of standard input and print one
        /// JSON result per line, with the microseconds the evaluation took (for scoring
        /// datasets: the policy and its models load once).
        #[arg(long, conflicts_with = "text")]
        jsonl: bool,
        /// The text; `-` reads standard input.
        #[arg(required_unless_present = "jsonl")]
        text: Option<String>,
    },
    /// Train the semantic injection classifier on labelled JSON Lines cases
    /// (`{"text", "label": "attack"|"benign", "source"}`), holding out the sources not named
    /// by --train-sources, and print recall and false positives per source.
    TrainSemantic(super::train_semantic::TrainArgs),
}

/// Runs a `policy` subcommand.
pub fn run(cmd: PolicyCommand) -> ExitCode {
    match cmd {
        PolicyCommand::Check { paths } => check(&default_paths(paths)),
        PolicyCommand::Test { paths } => test(&default_paths(paths)),
        PolicyCommand::Explain {
            policy,
            dir,
            stage,
            json,
            jsonl,
            text,
        } => {
            let stage = Stage::parse(&stage).expect("clap restricts the stage");
            let policy = match explained_policy(policy.as_deref(), &dir) {
                Ok(p) => p,
                Err(code) => return code,
            };
            match (jsonl, text) {
                (true, _) => explain_lines(&policy, stage),
                (false, Some(text)) => explain(&policy, stage, json, text),
                (false, None) => unreachable!("clap requires the text without --jsonl"),
            }
        }
        PolicyCommand::TrainSemantic(args) => super::train_semantic::run(args),
    }
}

fn default_paths(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    if paths.is_empty() {
        vec![PathBuf::from(DEFAULT_DIR)]
    } else {
        paths
    }
}

/// Policies loaded from `paths` and the test files of the directories among them.
struct Loaded {
    policies: Vec<Arc<Policy>>,
    case_files: Vec<PathBuf>,
    errors: Vec<PolicyError>,
}

fn load_paths(paths: &[PathBuf]) -> Loaded {
    let mut out = Loaded {
        policies: Vec::new(),
        case_files: Vec::new(),
        errors: Vec::new(),
    };
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            match load::policy_files(p) {
                Ok(f) => files.extend(f),
                Err(e) => out.errors.push(e),
            }
            match load::case_files(p) {
                Ok(f) => out.case_files.extend(f),
                Err(e) => out.errors.push(e),
            }
        } else {
            files.push(p.clone());
        }
    }
    for f in files {
        match load::load_file(&f) {
            Ok(p) => out.policies.push(Arc::new(p)),
            Err(mut e) => out.errors.append(&mut e),
        }
    }
    out.errors.extend(load::check_set(&out.policies));
    out
}

fn check(paths: &[PathBuf]) -> ExitCode {
    let mut loaded = load_paths(paths);
    for file in &loaded.case_files {
        if let Err(mut e) = load::load_case_file(file, &loaded.policies) {
            loaded.errors.append(&mut e);
        }
    }
    for p in &loaded.policies {
        println!(
            "ok    {}: policy `{}`, {} rules, {} tests{}",
            p.file.display(),
            p.id,
            p.rules.len(),
            p.tests.len(),
            if p.default { ", default" } else { "" }
        );
    }
    for e in &loaded.errors {
        eprintln!("error {e}");
    }
    if loaded.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("{} error(s)", loaded.errors.len());
        ExitCode::FAILURE
    }
}

fn test(paths: &[PathBuf]) -> ExitCode {
    let mut loaded = load_paths(paths);
    let mut runs: Vec<(Arc<Policy>, String, Case)> = Vec::new();
    for p in &loaded.policies {
        let src = file_name(&p.file);
        runs.extend(p.tests.iter().map(|c| (p.clone(), src.clone(), c.clone())));
    }
    for file in &loaded.case_files {
        match load::load_case_file(file, &loaded.policies) {
            Ok(cf) => {
                let policy = loaded
                    .policies
                    .iter()
                    .find(|p| *p.id == *cf.policy)
                    .expect("load_case_file checked the policy id")
                    .clone();
                let src = format!("tests/{}", file_name(file));
                runs.extend(
                    cf.cases
                        .into_iter()
                        .map(|c| (policy.clone(), src.clone(), c)),
                );
            }
            Err(mut e) => loaded.errors.append(&mut e),
        }
    }
    for e in &loaded.errors {
        eprintln!("error {e}");
    }
    let (mut passed, mut failed) = (0, 0);
    let w_policy = runs.iter().map(|r| r.0.id.len()).max().unwrap_or(6).max(6);
    let w_src = runs.iter().map(|r| r.1.len()).max().unwrap_or(4).max(4);
    println!(
        "{:<6} {:<w_policy$} {:<w_src$} CASE",
        "RESULT", "POLICY", "FILE"
    );
    for (policy, src, case) in &runs {
        let stage = case.stage.as_str();
        match case.run(policy) {
            Ok(()) => {
                passed += 1;
                println!(
                    "{:<6} {:<w_policy$} {:<w_src$} {} ({stage})",
                    "pass", policy.id, src, case.name
                );
            }
            Err(why) => {
                failed += 1;
                println!(
                    "{:<6} {:<w_policy$} {:<w_src$} {} ({stage})",
                    "FAIL", policy.id, src, case.name
                );
                println!("       {why}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if runs.is_empty() {
        eprintln!("no test cases found in {}", display(paths));
    }
    if failed > 0 || !loaded.errors.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The policy `explain` evaluates: `--policy FILE`, or the default policy of `dir`.
fn explained_policy(policy: Option<&Path>, dir: &Path) -> Result<Arc<Policy>, ExitCode> {
    match policy {
        Some(file) => load::load_file(file)
            .map(Arc::new)
            .map_err(|errors| report(&errors)),
        None => match load::load_dir(dir) {
            Ok(set) => set.default_policy().cloned().ok_or_else(|| {
                eprintln!(
                    "gatehouse: {} has no default policy; name one with --policy FILE",
                    dir.display()
                );
                ExitCode::FAILURE
            }),
            Err(errors) => Err(report(&errors)),
        },
    }
}

/// `explain --json`'s object for one evaluation.
fn explanation(ev: &Evaluation) -> serde_json::Value {
    let decisions: Vec<_> = ev
        .decisions
        .iter()
        .map(|d| {
            json!({
                "rule": &*d.rule,
                "kind": d.kind,
                "entity": d.entity,
                "action": d.action,
                "start": d.start,
                "end": d.end,
                "score": d.score,
                "detail": d.detail,
            })
        })
        .collect();
    json!({
        "action": action_name(ev.action()),
        "decisions": decisions,
        "redacted": ev.redacted,
    })
}

/// `explain --jsonl`: one result per input line, in order; a line that is not a JSON
/// object with a string `text` gets `{"error": ...}` and the rest go on.
fn explain_lines(policy: &Policy, stage: Stage) -> ExitCode {
    use std::io::{BufRead, Write};
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                eprintln!("gatehouse: standard input, line {}: {e}", n + 1);
                return ExitCode::FAILURE;
            }
        };
        let text = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("text").and_then(|t| t.as_str()).map(String::from));
        let result = match text {
            Some(text) => {
                let started = std::time::Instant::now();
                let ev = evaluate(policy, stage, None, &text, &mut Redactor::default());
                let micros = started.elapsed().as_micros() as u64;
                let mut v = explanation(&ev);
                v["micros"] = micros.into();
                v
            }
            None => {
                json!({"error": format!("line {}: expected a JSON object with a string `text`", n + 1)})
            }
        };
        if writeln!(out, "{result}").and_then(|_| out.flush()).is_err() {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn explain(policy: &Policy, stage: Stage, json: bool, text: String) -> ExitCode {
    let text = if text == "-" {
        let mut s = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut s) {
            eprintln!("gatehouse: cannot read standard input: {e}");
            return ExitCode::FAILURE;
        }
        s
    } else {
        text
    };
    let ev = evaluate(policy, stage, None, &text, &mut Redactor::default());
    if json {
        println!("{}", explanation(&ev));
        return ExitCode::SUCCESS;
    }
    println!(
        "policy `{}` ({}), stage {}: {}",
        policy.id,
        policy.file.display(),
        stage.as_str(),
        action_name(ev.action())
    );
    if ev.decisions.is_empty() {
        println!("no rule fired");
    }
    for d in &ev.decisions {
        let mut why = format!("{} `{}` found", d.kind.as_str(), d.entity);
        if let Some(s) = d.score {
            why += &format!(", score {s:.2}");
        }
        if let Some(detail) = &d.detail {
            why += &format!(", {detail}");
        }
        if let Some(p) = &d.placeholder {
            why += &format!(", replaced by {p}");
        }
        println!(
            "  {:<7} {:<20} bytes {}..{}  {} (severity {})",
            d.action.as_str(),
            d.rule,
            d.start,
            d.end,
            why,
            d.severity.as_str()
        );
    }
    println!("redacted: {}", ev.redacted);
    ExitCode::SUCCESS
}

fn report(errors: &[PolicyError]) -> ExitCode {
    for e in errors {
        eprintln!("error {e}");
    }
    ExitCode::FAILURE
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

fn display(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
