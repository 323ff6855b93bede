//! `store: qdrant` through the real gateway against a real Qdrant server (started from
//! `../shared/qdrant/qdrant`, see `common::qdrant`): API-key auth from `api_key_env`, and a
//! Qdrant restart while the gateway serves: `on_error` decides what requests get while it is
//! down, and retrieval recovers without restarting Gatehouse.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};

use common::qdrant::Qdrant;
use common::{start, wait_ready};

const KEY_ENV: &str = "GATEHOUSE_TEST_QDRANT_KEY";

async fn post(addr: SocketAddr, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn ask(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "When must the kettle be descaled?"}],
        "max_tokens": 4,
        "temperature": 0,
    })
}

/// `(status, x-gatehouse-retrieval header, error code)` of one question to `model`.
async fn question(addr: SocketAddr, model: &str) -> (u16, String, String) {
    let r = post(addr, "/v1/chat/completions", ask(model)).await;
    let status = r.status().as_u16();
    let header = r
        .headers()
        .get("x-gatehouse-retrieval")
        .map(|h| h.to_str().unwrap().to_string())
        .unwrap_or_default();
    let v: Value = r.json().await.unwrap();
    let code = v["error"]["code"].as_str().unwrap_or_default().to_string();
    (status, header, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qdrant_restart_is_survived_as_the_policies_say() {
    let key = "gatehouse-qdrant-test-key";
    let mut qdrant = Qdrant::start(Some(key));
    let root = std::env::temp_dir().join(format!("gh-qdrant-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("policies")).unwrap();
    // `answer` (the default policy) goes on without context; `strict` refuses.
    std::fs::write(
        root.join("policies/open.yaml"),
        "id: open\ndefault: true\nretrieval:\n  collection: kb\n  on_error: answer\nrules: []\n",
    )
    .unwrap();
    std::fs::write(
        root.join("policies/strict.yaml"),
        "id: strict\napplies_to:\n  models: [strict]\nretrieval:\n  collection: kb\n  on_error: refuse\nrules: []\n",
    )
    .unwrap();
    let yaml = format!(
        "auth: none\nserver:\n  listen: 127.0.0.1:0\nmodels:\n{}{}  - id: all-minilm-l6-v2\n    backend: local\n    kind: embedding\n    path: ../models/all-minilm-l6-v2\npolicies:\n  dir: {}\n  watch: false\nrag:\n  store: qdrant\n  url: {}\n  api_key_env: {KEY_ENV}\n  timeout_ms: 2000\n",
        common::smollm2("open", 8),
        common::smollm2("strict", 8),
        root.join("policies").display(),
        qdrant.grpc_url,
    );
    let addr = start(common::config_with_env(&yaml, &[(KEY_ENV, key)]));
    wait_ready(addr, Duration::from_secs(180));

    let docs = json!({"documents": [
        {"source": "kettle.md", "text": "# Kettle\n\nDescale the kettle every month with white vinegar."},
        {"source": "bike.md", "text": "# Bicycle\n\nInflate road bike tyres to between 80 and 100 psi."}
    ]});
    let r = post(addr, "/v1/rag/kb/documents", docs.clone()).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    for model in ["open", "strict"] {
        let (status, header, code) = question(addr, model).await;
        assert_eq!((status, code.as_str()), (200, ""), "{model}");
        assert!(
            header.starts_with("kb; status=ok; cited="),
            "{model}: {header}"
        );
        assert!(
            !header.starts_with("kb; status=ok; cited=0"),
            "{model}: {header}"
        );
    }

    qdrant.stop();
    let (status, _, code) = question(addr, "strict").await;
    assert_eq!((status, code.as_str()), (503, "retrieval_unavailable"));
    let (status, header, _) = question(addr, "open").await;
    assert_eq!(status, 200, "on_error: answer goes on without context");
    assert!(header.starts_with("kb; status=error; cited=0"), "{header}");
    let r = post(addr, "/v1/rag/kb/documents", docs).await;
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "vector_store_unavailable", "{v}");

    // Same ports and storage: the gateway reconnects on its own, and the chunks are there.
    qdrant.restart();
    let mut last = (0, String::new(), String::new());
    for _ in 0..50 {
        last = question(addr, "strict").await;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, header, code) = last;
    assert_eq!(
        (status, code.as_str()),
        (200, ""),
        "recovered after the restart"
    );
    assert!(header.starts_with("kb; status=ok; cited="), "{header}");
    assert!(!header.starts_with("kb; status=ok; cited=0"), "{header}");
    let _ = std::fs::remove_dir_all(&root);
}
