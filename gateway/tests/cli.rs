//! Tests of the `gatehouse` binary itself: serve with SIGTERM draining, chat, config check.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use serde_json::json;

fn gatehouse() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    c.current_dir(repo());
    c
}

/// Starts `gatehouse serve` on port 0; returns the child and its address.
fn serve(config: &str) -> (Child, String) {
    let mut child = gatehouse()
        .args(["serve", "--config", config, "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gatehouse");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("gatehouse listening on http://")
        .unwrap_or_else(|| panic!("bad first line {line:?}"))
        .to_string();
    (child, addr)
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
            "models:\n  - id: m\n    backend: remote\n    base_url: http://127.0.0.1:9/v1\npolicies:\n  dir: {}\n",
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
