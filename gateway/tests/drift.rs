//! Drift monitoring end to end: SOC alerts replayed through the real server (to a remote
//! upstream that counts prompt tokens by length), then replayed unchanged, then replaced by
//! long Russian alerts. The index stays under the documented threshold for the unchanged
//! replay and crosses it for length and script after the shift: live (`/metrics`,
//! `/admin/drift`) and offline (`gatehouse drift report` over the audit log).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// `drift.psi_threshold`'s default, as documented (docs/observability.md).
const THRESHOLD: f64 = 0.25;
const WINDOW: usize = 50;

/// An OpenAI-compatible upstream whose usage counts a prompt token per four bytes of body.
fn start_counting_upstream() -> SocketAddr {
    async fn answer(body: axum::body::Bytes) -> axum::Json<Value> {
        let prompt = (body.len() / 4) as u64;
        axum::Json(json!({
            "id": "chatcmpl-upstream", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "triaged"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": 2, "total_tokens": prompt + 2},
        }))
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            let app =
                axum::Router::new().route("/v1/chat/completions", axum::routing::post(answer));
            axum::serve(l, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

fn alerts() -> Vec<String> {
    std::fs::read_to_string(repo().join("examples/soc/alerts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["record"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Long alerts in Russian: another script, about ten times the length.
fn shifted(i: usize) -> String {
    let line = format!(
        "Оповещение {i}: неудачная попытка входа пользователя администратор на сервер \
         базы данных, повторные попытки с внешнего адреса, учётная запись заблокирована. "
    );
    line.repeat(12)
}

async fn replay(addr: SocketAddr, prompts: &[String]) {
    let c = reqwest::Client::new();
    for p in prompts {
        let r = c
            .post(format!("http://{addr}/v1/chat/completions"))
            .json(&json!({"model": "soc", "messages": [{"role": "user", "content": p}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

/// The monitor counts off the request path: wait until it has seen `observed` requests.
async fn wait_counted(addr: SocketAddr, observed: u64) -> Value {
    for _ in 0..200 {
        let v: Value = reqwest::get(format!("http://{addr}/admin/drift?format=json"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["models"][0]["observed"] == observed {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the monitor never counted {observed} requests");
}

fn psi_of(report: &Value, feature: &str) -> f64 {
    report["models"][0]["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == feature)
        .unwrap_or_else(|| panic!("no {feature} in {report}"))["psi"]
        .as_f64()
        .unwrap()
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[tokio::test]
async fn a_shifted_replay_crosses_the_threshold_and_an_unshifted_one_does_not() {
    let upstream = start_counting_upstream();
    let audit = temp_dir("gh-drift");
    let yaml = format!(
        "auth:\n  none: {{open_admin: true}}\nserver:\n  listen: 127.0.0.1:0\nmodels:\n  - id: soc\n    backend: remote\n    base_url: http://{upstream}/v1\n\
         drift:\n  reference_requests: {WINDOW}\n  window_requests: {WINDOW}\n  min_requests: {WINDOW}\n\
         audit:\n  dir: {}\n",
        audit.display()
    );
    let addr = start(config(&yaml));
    wait_ready(addr, Duration::from_secs(30));
    let alerts = alerts();
    assert_eq!(alerts.len(), WINDOW);

    let t0 = gateway::audit::record::now_ms();
    replay(addr, &alerts).await; // the reference window
    let t1 = gateway::audit::record::now_ms();
    replay(addr, &alerts).await; // unchanged
    let same = wait_counted(addr, 2 * WINDOW as u64).await;
    assert_eq!(same["models"][0]["current_requests"], WINDOW);
    let t2 = gateway::audit::record::now_ms();
    for feature in ["prompt_tokens", "script", "completion_tokens", "outcome"] {
        let psi = psi_of(&same, feature);
        assert!(psi < THRESHOLD, "{feature}: {psi} for an unchanged replay");
    }
    let long: Vec<String> = (0..WINDOW).map(shifted).collect();
    replay(addr, &long).await;
    // The window slid past every unchanged request.
    let moved = wait_counted(addr, 3 * WINDOW as u64).await;
    assert_eq!(moved["models"][0]["current_requests"], WINDOW);
    let psi = (psi_of(&moved, "prompt_tokens"), psi_of(&moved, "script"));
    assert!(psi.0 > THRESHOLD && psi.1 > THRESHOLD, "{psi:?}: {moved}");
    // The same figures as gauges.
    let scraped = metric(
        addr,
        r#"gatehouse_drift_psi{feature="script",model="soc",template=""}"#,
    )
    .await;
    assert!(scraped > THRESHOLD, "{scraped}");
    let page = reqwest::get(format!("http://{addr}/admin/drift"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<svg") && page.contains("shifted"), "{page}");

    // Offline, from the audit log: the same verdicts.
    let report = |current: String| {
        let html = audit.join("report.html");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["drift", "report", "--dir"])
            .arg(&audit)
            .args(["--baseline", &format!("{}..{}", rfc3339(t0), rfc3339(t1))])
            .args(["--current", &current, "--html"])
            .arg(&html)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));
        String::from_utf8(out.stdout).unwrap()
    };
    let verdict = |table: &str, feature: &str| -> String {
        table
            .lines()
            .find(|l| l.split('\t').nth(2) == Some(feature))
            .unwrap_or_else(|| panic!("no {feature} in {table}"))
            .split('\t')
            .nth(4)
            .unwrap()
            .to_string()
    };
    let unchanged = report(format!("{}..{}", rfc3339(t1), rfc3339(t2)));
    assert_eq!(verdict(&unchanged, "script"), "stable", "{unchanged}");
    assert_eq!(
        verdict(&unchanged, "prompt_tokens"),
        "stable",
        "{unchanged}"
    );
    let after = report(format!("{}..", rfc3339(t2)));
    assert_eq!(verdict(&after, "script"), "shifted", "{after}");
    assert_eq!(verdict(&after, "prompt_tokens"), "shifted", "{after}");
}

#[tokio::test]
async fn sampled_prompt_embeddings_move_with_the_topic() {
    let upstream = start_counting_upstream();
    let yaml = format!(
        "auth:\n  none: {{open_admin: true}}\nserver:\n  listen: 127.0.0.1:0\nmodels:\n  - id: soc\n    backend: remote\n    base_url: http://{upstream}/v1\n\
         \x20 - id: all-minilm-l6-v2\n    backend: local\n    kind: embedding\n    path: ../models/all-minilm-l6-v2\n\
         drift:\n  reference_requests: 10\n  window_requests: 10\n  min_requests: 10\n  embeddings: {{model: all-minilm-l6-v2, sample_every: 1}}\n"
    );
    let addr = start(config(&yaml));
    wait_ready(addr, Duration::from_secs(60));
    let alerts: Vec<String> = alerts().into_iter().take(10).collect();
    let shift = |v: &Value| v["models"][0]["embedding_shift"].as_f64();
    replay(addr, &alerts).await;
    replay(addr, &alerts).await;
    let same =
        shift(&wait_counted(addr, 20).await).expect("a shift once both windows have embeddings");
    assert!(same.abs() < 1e-6, "the same prompts: {same}");
    let recipes: Vec<String> = (0..10)
        .map(|i| {
            format!("Recipe {i}: how long should I bake a lemon cake, and at what temperature?")
        })
        .collect();
    replay(addr, &recipes).await;
    let moved = shift(&wait_counted(addr, 30).await).unwrap();
    assert!(moved > 0.05, "alerts then cake recipes: {moved}");
    let scraped = metric(
        addr,
        r#"gatehouse_drift_embedding_shift{model="soc",template=""}"#,
    )
    .await;
    assert!((scraped - moved).abs() < 1e-9, "{scraped} vs {moved}");
}
