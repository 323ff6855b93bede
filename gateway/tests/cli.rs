//! Tests of the `gatehouse` binary itself: serve with SIGTERM draining, chat, config check.

mod common;

use std::process::{Child, Command};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use serde_json::json;

fn gatehouse() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    c.current_dir(repo());
    c
}

/// The RAG and audit data of [`serve`]'s gateway.
fn serve_data() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("gh-cli-serve-{}", std::process::id()))
}

/// Starts `gatehouse serve` on port 0; returns the child and its address.
fn serve(config: &str) -> (Child, String) {
    // Data dirs of its own: the config's may be held by a gateway the developer runs.
    let data = serve_data();
    let audit = data.join("audit").to_string_lossy().into_owned();
    let data = data.to_string_lossy().into_owned();
    let (child, addr) = spawn_gateway(
        std::path::Path::new(config),
        &[
            ("GATEHOUSE__RAG__DATA_DIR", data.as_str()),
            ("GATEHOUSE__AUDIT__DIR", audit.as_str()),
        ],
    );
    (child, addr.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_streams() {
    let (mut child, addr) = serve("config/gatehouse.yaml");
    let a = addr.parse().unwrap();
    tokio::task::spawn_blocking(move || wait_ready(a, Duration::from_secs(180)))
        .await
        .unwrap();
    let c = reqwest::Client::new();
    let resp = c
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&json!({"model": "smollm2-135m", "messages": [{"role": "user", "content": "Write a poem about the sea."}],
            "temperature": 0, "max_tokens": 48, "stream": true}))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let mut text = String::from_utf8_lossy(&body.next().await.unwrap().unwrap()).into_owned();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // While draining, readiness fails (the listener may also be closed already).
    tokio::time::sleep(Duration::from_millis(200)).await;
    if let Ok(r) = c.get(format!("http://{addr}/readyz")).send().await {
        assert_eq!(r.status(), 503);
    }
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let (_, finish, _) = reassemble(&text);
    assert_eq!(
        finish, "length",
        "the in-flight stream must complete: {text}"
    );
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    // The drained stream's audit record was written before the process exited.
    let records = audit_log(&serve_data().join("audit"));
    assert!(
        records.iter().any(|r| r["unmapped"]["kind"] == "chat"
            && r["unmapped"]["outcome"] == "ok"
            && r["unmapped"]["finish_reason"] == "length"
            && r["unmapped"]["stream"] == true),
        "{records:#?}"
    );
    assert_eq!(records.last().unwrap()["unmapped"]["kind"], "checkpoint");
}

#[test]
fn chat_streams_the_answer_to_stdout() {
    let out = gatehouse()
        .args([
            "chat",
            "--config",
            "config/gatehouse.yaml",
            "--temperature",
            "0",
            "--max-tokens",
            "8",
            "What is 2+2?",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(!stdout.trim().is_empty());
    assert!(stderr.contains("8 completion tokens"), "{stderr}");
    assert!(stderr.contains("loading smollm2-135m"), "{stderr}");
}

#[test]
fn chat_rejects_an_unknown_model() {
    let out = gatehouse()
        .args(["chat", "--model", "nope", "hi"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("unknown model `nope`; configured: smollm2-135m"));
}

#[test]
fn config_check_reports_file_key_and_line() {
    let dir = std::env::temp_dir().join(format!("gatehouse-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "server:\n  listen: 127.0.0.1:1\n  colour: blue\nmodels: []\n",
    )
    .unwrap();
    let out = gatehouse()
        .args(["config", "check", "--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:3: server.colour: unknown field `colour`",
            bad.display()
        )),
        "{err}"
    );

    let ok = gatehouse().args(["config", "check"]).output().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("model smollm2-135m\tlocal"));

    let env = gatehouse()
        .args(["config", "check"])
        .env("GATEHOUSE__SERVER__LISTEN", "nonsense")
        .output()
        .unwrap();
    assert_eq!(env.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&env.stderr).contains("server.listen"));
}

#[test]
fn models_lists_the_configuration() {
    let out = gatehouse().args(["models"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("smollm2-135m\tlocal\t"));
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        vec!["serve"],
        vec!["chat"],
        vec!["models"],
        vec!["config", "check"],
        vec!["batch"],
    ] {
        let mut args = sub.clone();
        args.push("--help");
        let out = gatehouse().args(&args).output().unwrap();
        assert!(out.status.success(), "{sub:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("--config"),
            "{sub:?}"
        );
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("gatehouse-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(d.join("tests")).unwrap();
    d
}

#[test]
fn policy_test_reports_failures_and_exits_non_zero() {
    let dir = temp_dir("policy-test");
    std::fs::write(
        dir.join("p.yaml"),
        "id: p\ndefault: true\nrules:\n  - id: mail\n    kind: pii\n    entities: [email]\n    action: redact\ntests:\n  - name: right\n    text: a@b.co\n    expect: {action: redact, redacted: \"[EMAIL_1]\"}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("tests/p.yaml"),
        "policy: p\ncases:\n  - name: wrong on purpose\n    text: a@b.co\n    expect: {action: allow}\n",
    )
    .unwrap();
    let out = gatehouse()
        .args(["policy", "test"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("pass   p"), "{stdout}");
    assert!(stdout.contains("FAIL   p"), "{stdout}");
    assert!(
        stdout.contains("action: expected allow, got redact"),
        "{stdout}"
    );
    assert!(stdout.contains("1 passed, 1 failed"), "{stdout}");

    std::fs::write(dir.join("tests/p.yaml"), "policy: nope\ncases: []\n").unwrap();
    let out = gatehouse()
        .args(["policy", "check"])
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("tests/p.yaml:1:1: policy: no policy with id `nope`"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn serve_refuses_invalid_policies_before_listening() {
    let dir = temp_dir("policy-serve");
    std::fs::write(
        dir.join("bad.yaml"),
        "id: bad\nrules:\n  - id: r\n    kind: regex\n    patterns: [\"(\"]\n",
    )
    .unwrap();
    let cfg = dir.join("gatehouse.yaml");
    std::fs::write(
        &cfg,
        format!(
            "auth: none\nmodels:\n  - id: m\n    backend: remote\n    base_url: http://127.0.0.1:9/v1\npolicies:\n  dir: {}\n",
            dir.display()
        ),
    )
    .unwrap();
    let out = gatehouse()
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing listens");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.yaml:5:5: rules[0].patterns[0]: invalid regex"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn template_render_shows_the_messages() {
    let out = gatehouse()
        .args([
            "template",
            "render",
            "soc-triage",
            "--var",
            "record=sshd: Failed password for root",
            "--var",
            "source=auth.log",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("template soc-triage@1 (model smollm2-135m, response_format json_schema soc_triage)\n--- system ---\nYou are a SOC analyst."),
        "{stdout}"
    );
    assert!(
        stdout.contains("--- user ---\nEvent from auth.log:\nsshd: Failed password for root"),
        "{stdout}"
    );

    let out = gatehouse()
        .args(["template", "render", "soc-triage", "--var", "record:=5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("variables.record: 5 is not of type \"string\""),
        "{stderr}"
    );
}

/// Runs `gatehouse batch` with the default config and an audit log of its own; returns
/// (exit code, stderr).
fn batch(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    batch_audited(&temp_dir("batch-audit"), args)
}

/// [`batch`], writing the audit log to `audit`.
fn batch_audited(audit: &std::path::Path, args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let out = gatehouse()
        .arg("batch")
        .args(args)
        .env("GATEHOUSE__AUDIT__DIR", audit)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn batch_runs_the_soc_sample_with_progress_resume_and_summary() {
    let dir = temp_dir("batch");
    let sample = std::fs::read_to_string(repo().join("examples/soc/alerts.jsonl")).unwrap();
    let lines: Vec<&str> = sample.lines().collect();
    assert_eq!(lines.len(), 50, "the SOC sample has 50 records");
    let input = dir.join("alerts.jsonl");
    let output = dir.join("out.jsonl");
    std::fs::write(&input, lines[..3].join("\n") + "\n").unwrap();
    let args = |input: &std::path::Path| {
        vec![
            std::ffi::OsString::from("--template"),
            "soc-triage".into(),
            input.as_os_str().to_owned(),
            "-o".into(),
            output.as_os_str().to_owned(),
        ]
    };
    let audit = dir.join("audit");
    let run = |input: &std::path::Path| {
        let a = args(input);
        batch_audited(&audit, &a.iter().map(|s| s.as_os_str()).collect::<Vec<_>>())
    };
    let (code, stderr) = run(&input);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("progress 3/3 [####################]"),
        "{stderr}"
    );
    assert!(stderr.contains("rec/s · ETA"), "{stderr}");
    assert!(stderr.contains("summary: 3 records: "), "{stderr}");
    assert!(stderr.contains("0 failed, 0 skipped"), "{stderr}");

    // Two more records: the three done ones are skipped.
    std::fs::write(&input, lines[..5].join("\n") + "\n").unwrap();
    let (code, stderr) = run(&input);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("progress 2/2"), "{stderr}");
    assert!(stderr.contains("summary: 5 records: "), "{stderr}");
    assert!(
        stderr.contains("0 failed, 3 skipped (already done)"),
        "{stderr}"
    );

    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("prompts/schemas/soc-triage.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let results: Vec<serde_json::Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut ids: Vec<&str> = results.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "alert-001",
            "alert-002",
            "alert-003",
            "alert-004",
            "alert-005"
        ]
    );
    // One audit record per batch item, in one chain across both runs.
    let audited: Vec<serde_json::Value> = audit_log(&audit)
        .into_iter()
        .filter(|r| r["unmapped"]["kind"] == "chat")
        .collect();
    let mut items: Vec<&str> = audited
        .iter()
        .map(|r| r["metadata"]["correlation_uid"].as_str().unwrap())
        .collect();
    items.sort();
    assert_eq!(
        items,
        [
            "batch-alert-001",
            "batch-alert-002",
            "batch-alert-003",
            "batch-alert-004",
            "batch-alert-005"
        ]
    );
    assert!(audited
        .iter()
        .all(|r| r["api"]["operation"] == "batch.item"
            && r["unmapped"]["template"] == "soc-triage@1"));
    for r in &results {
        assert_eq!(r["template"], "soc-triage@1");
        match r["status"].as_str().unwrap() {
            "ok" => assert!(validator.is_valid(&r["output"]), "{r}"),
            "blocked" => assert_eq!(r["error"]["code"], "policy_violation", "{r}"),
            other => panic!("{other}: {r}"),
        }
    }

    // Plain log lines: one record per line, ids by line number.
    let log = dir.join("auth.log");
    std::fs::write(
        &log,
        "Mar 14 03:12:09 bastion sshd[2211]: Failed password for root from 203.0.113.9 port 4711 ssh2\n\n",
    )
    .unwrap();
    let plain_out = dir.join("plain.jsonl");
    let (code, stderr) = batch(&[
        "--template".as_ref(),
        "soc-triage".as_ref(),
        log.as_os_str(),
        "-o".as_ref(),
        plain_out.as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let r: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&plain_out).unwrap().trim()).unwrap();
    assert_eq!(r["id"], "line-1");

    // A template that does not exist stops the batch before anything runs.
    let (code, stderr) = batch(&[
        "--template".as_ref(),
        "nope".as_ref(),
        log.as_os_str(),
        "-o".as_ref(),
        plain_out.as_os_str(),
    ]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("no template `nope`; loaded: rag-context@1, soc-triage@1"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn rag_ingest_search_collections_and_the_data_dir_lock() {
    let dir = std::env::temp_dir().join(format!("gh-cli-rag-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(
        dir.join("docs/kettle.md"),
        "# Kettle\n\nDescale the kettle every month with white vinegar.",
    )
    .unwrap();
    std::fs::write(
        dir.join("docs/bike.txt"),
        "Inflate road bike tyres to between 80 and 100 psi.",
    )
    .unwrap();
    std::fs::write(dir.join("docs/scan.pdf"), "%PDF").unwrap();
    let config = dir.join("gatehouse.yaml");
    std::fs::write(
        &config,
        format!(
            "auth: none\nmodels:\n  - id: all-minilm-l6-v2\n    backend: local\n    kind: embedding\n    path: {}\nrag:\n  data_dir: {}\n",
            repo().join("models/all-minilm-l6-v2").display(),
            dir.join("data").display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = gatehouse()
            .arg("rag")
            .args(args)
            .args(["--config", cfg])
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let docs = dir.join("docs");
    let docs = docs.to_str().unwrap();
    let (code, out, err) = run(&["ingest", docs, "--collection", "kb", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["files"], 2, "{report}");
    assert!(report["written"].as_u64().unwrap() >= 2, "{report}");
    assert_eq!(report["written"], report["chunks"]);
    // Again: nothing is embedded or written; the summary says so.
    let (code, out, _) = run(&["ingest", docs, "--collection", "kb"]);
    assert_eq!(code, Some(0));
    assert!(out.contains(": 0 written,"), "{out}");

    let (code, out, err) = run(&[
        "search",
        "how hard to pump bicycle tyres",
        "--collection",
        "kb",
        "--top-k",
        "1",
        "--json",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let hit: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert!(
        hit["source"].as_str().unwrap().ends_with("docs/bike.txt"),
        "{hit}"
    );
    // Another tenant has no chunks.
    let (_, out, _) = run(&[
        "search",
        "bicycle",
        "--collection",
        "kb",
        "--tenant",
        "acme",
    ]);
    assert!(out.contains("no chunks"), "{out}");

    let (code, out, _) = run(&["collections"]);
    assert_eq!(code, Some(0));
    assert!(
        out.lines()
            .any(|l| l.starts_with("kb ") && l.contains(" 384 ")),
        "{out}"
    );

    // While another process (here: this test) holds the data directory, the CLI refuses
    // with a message that says what to do.
    let held = gateway::rag::store::EdgeStore::open(&dir.join("data")).unwrap();
    let (code, _, err) = run(&["collections"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("in use by another process"), "{err}");
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_refuses_auth_none_on_a_network_address_even_from_the_command_line() {
    let dir = temp_dir("remote");
    let config = dir.join("gatehouse.yaml");
    std::fs::write(
        &config,
        "auth: none\nmodels:\n  - id: m\n    backend: remote\n    base_url: http://127.0.0.1:9/v1\n",
    )
    .unwrap();
    let out = gatehouse()
        .args(["serve", "--listen", "0.0.0.0:0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not a loopback address") && err.contains("allow_remote"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_policies_without_watching_and_never_stops_the_server() {
    let dir = temp_dir("sighup");
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("guard.yaml"), blocking_policy("banana")).unwrap();
    let config = dir.join("gatehouse.yaml");
    std::fs::write(
        &config,
        format!(
            "auth: none\nmodels:\n  - id: m\n    backend: remote\n    base_url: http://127.0.0.1:9/v1\npolicies:\n  dir: {}\n  watch: false\n",
            policies.display()
        ),
    )
    .unwrap();
    let (mut child, addr) = spawn_gateway(&config, &[]);
    let reloads = r#"gatehouse_policy_reloads_total{result="ok"}"#;
    let pid = child.id().to_string();
    let hup = || {
        assert!(Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success());
    };
    // Unchanged files: the signal is taken, nothing is swapped, the server lives on.
    hup();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP stopped the server"
    );
    assert_eq!(metric(addr, reloads).await, 0.0);
    // A change is not seen without watching; SIGHUP loads it.
    std::fs::write(policies.join("guard.yaml"), blocking_policy("cherry")).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(metric(addr, reloads).await, 0.0, "watch is off");
    hup();
    wait_metric(addr, reloads, "SIGHUP reloads the policies", |v| v == 1.0).await;
    let c = reqwest::Client::new();
    let r = c
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "cherry pie"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "the reloaded policy is in force");
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
