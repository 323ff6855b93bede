//! Speculative models through the server and the CLI: same text as the plain model, the
//! usage extension, `/metrics`, `GET /v1/models`, and `speculative: auto`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn selfdraft(id: &str, gamma: usize, mode: &str) -> String {
    format!(
        "{}    draft: {SMOLLM2}\n    gamma: {gamma}\n    speculative: {mode}\n",
        smollm2(id, 8)
    )
}

async fn chat(addr: std::net::SocketAddr, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn speculative_model_reports_usage_metrics_and_state() {
    let yaml = format!(
        "auth: none\nserver:\n  listen: 127.0.0.1:0\nmodels:\n{}{}{}",
        smollm2("plain", 8),
        selfdraft("spec", 3, "on"),
        selfdraft("spec-auto", 2, "auto"),
    );
    let addr = start(config(&yaml));
    tokio::task::spawn_blocking(move || wait_ready(addr, Duration::from_secs(300)))
        .await
        .unwrap();

    let ask = |model: &str, stream: bool| {
        json!({"model": model, "messages": [{"role": "user", "content": "Name three planets."}],
               "temperature": 0, "max_tokens": 40, "stream": stream,
               "stream_options": {"include_usage": true}})
    };
    let plain = chat(addr, ask("plain", false)).await;
    let spec = chat(addr, ask("spec", false)).await;
    assert_eq!(
        spec["choices"][0]["message"]["content"],
        plain["choices"][0]["message"]["content"]
    );
    assert!(plain["usage"].get("speculative").is_none());
    let s = &spec["usage"]["speculative"];
    let steps = s["steps"].as_u64().unwrap();
    assert!(steps > 0);
    assert_eq!(s["drafted_tokens"].as_u64().unwrap(), 3 * steps);
    for k in [
        "acceptance_rate",
        "accepted_per_step",
        "draft_ms_per_step",
        "verify_ms_per_step",
    ] {
        assert!(s[k].as_f64().unwrap() > 0.0, "{k} in {s}");
    }

    // Streaming: the final usage chunk carries the extension too.
    let body = reqwest::Client::new()
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&ask("spec", true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (text, _, usage) = reassemble(&body);
    assert_eq!(
        text,
        plain["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(usage.unwrap()["speculative"]["steps"].as_u64(), Some(steps));

    let m = metrics_text(addr).await;
    assert_eq!(
        metric(addr, "gatehouse_speculative_steps_total{model=\"spec\"}").await,
        2.0 * steps as f64,
        "{m}"
    );
    assert!(
        metric(
            addr,
            "gatehouse_speculative_acceptance_rate{model=\"spec\"}"
        )
        .await
            > 0.5
    );
    assert!(
        metric(
            addr,
            "gatehouse_speculative_verify_seconds_per_step{model=\"spec\"}"
        )
        .await
            > 0.0
    );
    assert_eq!(
        metric(addr, "gatehouse_speculative_active{model=\"spec\"}").await,
        1.0
    );
    assert!(!m.contains("gatehouse_speculative_steps_total{model=\"plain\"}"));

    // `auto` measured both modes; SmolLM2 drafting for itself costs a draft pass per token
    // for nothing, so the figures decide, and the decision follows them.
    let models: Value = reqwest::get(format!("http://{addr}/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let by_id = |id: &str| {
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .cloned()
            .unwrap()
    };
    assert!(by_id("plain")["gatehouse"].get("speculative").is_none());
    let on = &by_id("spec")["gatehouse"]["speculative"];
    assert_eq!(
        (
            on["mode"].as_str(),
            on["active"].as_bool(),
            on["gamma"].as_u64()
        ),
        (Some("on"), Some(true), Some(3))
    );
    let auto = &by_id("spec-auto")["gatehouse"]["speculative"];
    assert_eq!(auto["mode"], "auto");
    let plain_tps = auto["auto"]["plain_tokens_per_second"].as_f64().unwrap();
    let spec_tps = auto["auto"]["speculative_tokens_per_second"]
        .as_f64()
        .unwrap();
    assert!(plain_tps > 0.0 && spec_tps > 0.0, "{auto}");
    // The draft is kept only when it is clearly faster (a near tie goes to plain).
    assert_eq!(
        auto["active"].as_bool(),
        Some(spec_tps > plain_tps * engine::AUTO_MIN_GAIN),
        "{auto}"
    );
    let published = metric(
        addr,
        "gatehouse_speculative_auto_tokens_per_second{mode=\"plain\",model=\"spec-auto\"}",
    )
    .await;
    // JSON and the Prometheus text may round the last digit differently.
    assert!(
        (published - plain_tps).abs() < 1e-9 * plain_tps,
        "{published} vs {plain_tps}"
    );
    // Whichever mode auto chose, greedy text is the plain model's.
    let chosen = chat(addr, ask("spec-auto", false)).await;
    assert_eq!(
        chosen["choices"][0]["message"]["content"],
        plain["choices"][0]["message"]["content"]
    );

    // A draft cannot decode under a grammar: structured output is refused up front.
    let mut structured = ask("spec", false);
    structured["response_format"] = json!({"type": "json_object"});
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&structured)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.contains("decodes speculatively"), "{e}");
}

/// The interface promised in config/selfdraft.yaml: the CLI prints the same text either way.
#[test]
fn cli_chat_prints_the_same_text_with_and_without_the_draft() {
    let run = |model: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .current_dir(repo())
            .args([
                "chat",
                "--config",
                "config/selfdraft.yaml",
                "--model",
                model,
                "--temperature",
                "0",
                "--max-tokens",
                "64",
                "Write a limerick about a cat.",
            ])
            .output()
            .expect("run gatehouse chat");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let plain = run("smollm2-135m");
    assert!(!plain.trim().is_empty());
    assert_eq!(run("smollm2-135m-selfdraft"), plain);
}
