//! Helpers shared by the integration tests: real servers on port 0 with the real model.
#![allow(dead_code, missing_docs)]

pub mod qdrant;
// In `qdrant` because the library's store tests include that file alone.
pub use qdrant::free_port;
pub mod redis_cluster;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gateway::config::Config;

/// The repository root, from `CARGO_MANIFEST_DIR` at run time: the shared target dir may hold
/// a test binary compiled in another checkout, whose compile-time path would be stale.
pub fn repo() -> PathBuf {
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    crate_dir.parent().expect("workspace root").to_path_buf()
}

/// A new, empty directory under the system's temp dir, `{prefix}-{uuid}`.
pub fn temp_dir(prefix: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Parses `yaml` as if it were a file in `config/` (so `../models/...` resolves).
pub fn config(yaml: &str) -> Config {
    config_with_env(yaml, &[])
}

/// Like [`config`], with `vars` as the environment.
pub fn config_with_env(yaml: &str, vars: &[(&str, &str)]) -> Config {
    let path = repo().join("config/test.yaml");
    let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Config::from_str_with_env(yaml, &path, vars).unwrap_or_else(|e| panic!("test config: {e}"))
}

pub const SMOLLM2: &str = "../models/smollm2-135m-instruct-q4_1.gguf";

/// A model entry for SmolLM2 under `id` (batching the default number of sequences).
pub fn smollm2(id: &str, max_queue: usize) -> String {
    format!("  - id: {id}\n    backend: local\n    path: {SMOLLM2}\n    dtype: f32\n    max_queue: {max_queue}\n")
}

/// [`smollm2`] running one sequence at a time, for tests of queueing and overload.
pub fn smollm2_single(id: &str, max_queue: usize) -> String {
    format!("{}    max_concurrent: 1\n", smollm2(id, max_queue))
}

/// Starts a server for `config` on its own runtime thread; returns its address.
pub fn start(config: Config) -> SocketAddr {
    start_with_grpc(config).0
}

/// Like [`start`]; also returns the gRPC listener's address when `server.grpc_listen` is set.
pub fn start_with_grpc(config: Config) -> (SocketAddr, Option<SocketAddr>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind port 0");
            let server = gateway::server::start(config, listener).expect("start");
            tx.send((server.addr, server.grpc_addr))
                .expect("report address");
            std::future::pending::<()>().await;
        });
    });
    rx.recv().expect("server address")
}

/// The server shared by the tests of one test binary: SmolLM2 as the general model, plus
/// copies with tight limits for the overload and disconnect tests.
pub fn shared() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let yaml = format!(
            "auth: none\nserver:\n  listen: 127.0.0.1:0\n  body_limit_bytes: 65536\nmodels:\n{}{}{}",
            smollm2("smollm2-135m", 64),
            smollm2_single("smollm2-tight", 0),
            smollm2_single("smollm2-cancel", 4),
        );
        let addr = start(config(&yaml));
        wait_ready(addr, Duration::from_secs(180));
        addr
    })
}

/// Polls `/readyz` until 200.
pub fn wait_ready(addr: SocketAddr, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        if status_of(addr, "/readyz") == Some(200) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "server at {addr} not ready after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Status of a plain blocking GET; usable from sync and async tests alike.
pub fn status_of(addr: SocketAddr, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// The `/metrics` page.
pub async fn metrics_text(addr: SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Reads one metric sample (`name{labels}`) from `/metrics`; 0 when absent.
pub async fn metric(addr: SocketAddr, name_and_labels: &str) -> f64 {
    metrics_text(addr)
        .await
        .lines()
        .find_map(|l| {
            l.strip_prefix(name_and_labels)
                .and_then(|rest| rest.trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

/// Polls `/metrics` until `pred` holds for the sample, or panics after 10 s with `what`.
pub async fn wait_metric(
    addr: SocketAddr,
    name_and_labels: &str,
    what: &str,
    pred: impl Fn(f64) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pred(metric(addr, name_and_labels).await) {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Parses an SSE body into its `data:` payloads.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|ev| {
            ev.lines()
                .find_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        })
        .map(|s| s.to_string())
        .collect()
}

/// Reassembles the text, finish reason and usage of an SSE chat stream; asserts its shape.
pub fn reassemble(body: &str) -> (String, String, Option<serde_json::Value>) {
    let data = sse_data(body);
    assert_eq!(
        data.last().map(String::as_str),
        Some("[DONE]"),
        "stream must end with [DONE]: {body}"
    );
    let mut text = String::new();
    let mut finish = String::new();
    let mut usage = None;
    for (i, d) in data[..data.len() - 1].iter().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(d).unwrap_or_else(|e| panic!("chunk {i} {d}: {e}"));
        assert_eq!(v["object"], "chat.completion.chunk");
        if i == 0 {
            assert_eq!(v["choices"][0]["delta"]["role"], "assistant");
        }
        if let Some(c) = v["choices"].get(0) {
            if let Some(t) = c["delta"]["content"].as_str() {
                text.push_str(t);
            }
            if let Some(f) = c["finish_reason"].as_str() {
                finish = f.to_string();
            }
        }
        if !v["usage"].is_null() && v.get("usage").is_some() {
            usage = Some(v["usage"].clone());
        }
    }
    (text, finish, usage)
}

/// `bench/mock-upstream` (canned OpenAI answers, streamed in two chunks when asked) on a
/// free port, served by the calling test's runtime.
pub async fn mock_upstream() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(mock_upstream::serve(l));
    addr
}

/// Every `expr` of the Grafana dashboard's panels, rows included.
pub fn dashboard_queries() -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        use serde_json::Value;
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| match (k.as_str(), v) {
                ("expr", Value::String(s)) => out.push(s.clone()),
                _ => walk(v, out),
            }),
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let path = repo().join("deploy/grafana/gatehouse.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let dashboard =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    walk(&dashboard, &mut out);
    out
}

/// An OpenAI-compatible upstream that answers every chat request with `name` (not
/// streamed), on its own runtime thread; for routing tests.
pub fn start_named_upstream(name: &'static str) -> SocketAddr {
    async fn answer(
        axum::extract::State(name): axum::extract::State<&'static str>,
    ) -> axum::Json<serde_json::Value> {
        axum::Json(serde_json::json!({
            "id": "chatcmpl-upstream",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": name}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }))
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(l.local_addr().unwrap()).unwrap();
            let app = axum::Router::new()
                .route("/v1/chat/completions", axum::routing::post(answer))
                .with_state(name);
            axum::serve(l, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// `gatehouse serve --config CONFIG` on port 0 as a child process (run from the repository
/// root) with `vars` in its environment; returns it and the address it printed.
pub fn spawn_gateway(
    config: &std::path::Path,
    vars: &[(&str, &str)],
) -> (std::process::Child, SocketAddr) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .current_dir(repo())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .envs(vars.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn gatehouse");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("gatehouse listening on http://")
        .unwrap_or_else(|| panic!("bad first line {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

/// The records of the audit log in `dir`, in chain order. Every complete line must be a
/// record; an unterminated last line (a record cut short by a killed process) is left out.
pub fn audit_log(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    let mut records = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        for line in complete.lines() {
            let r = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: not a record ({e}): {line}", f.display()));
            records.push(r);
        }
    }
    records
}

/// The `name=value` of the `Set-Cookie` for `name` in `resp`, if it sets one.
pub fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

/// The login form's CSRF cookie (`name=value`) and the token of its hidden field.
pub async fn login_form(client: &reqwest::Client, addr: SocketAddr) -> (String, String) {
    let r = client
        .get(format!("http://{addr}/admin/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = set_cookie(&r, "gatehouse_login_csrf").expect("the form sets its CSRF cookie");
    let cookie = cookie.split(';').next().unwrap().to_string();
    let html = r.text().await.unwrap();
    let token = html
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form carries its CSRF token")
        .to_string();
    (cookie, token)
}

/// Signs into the review page as a browser does: fetches the form, posts `key` with the
/// form's cookie and token. `client` must not follow redirects.
pub async fn admin_login(
    client: &reqwest::Client,
    addr: SocketAddr,
    key: &str,
) -> reqwest::Response {
    let (cookie, token) = login_form(client, addr).await;
    client
        .post(format!("http://{addr}/admin/login"))
        .header("cookie", cookie)
        .form(&[("key", key), ("csrf", token.as_str())])
        .send()
        .await
        .unwrap()
}

/// The session cookie (`gatehouse_session=...`) a sign-in set.
pub fn session_cookie(resp: &reqwest::Response) -> String {
    set_cookie(resp, "gatehouse_session")
        .expect("a session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// A new admin key stored in the Redis of `config` (as `gatehouse keys create` does) under
/// `id`, tenant `ops`; returns the key store (to revoke it) and the key.
pub async fn redis_admin_key(config: &Config, id: &str) -> (gateway::auth::RedisKeys, String) {
    let keys = gateway::auth::RedisKeys::new(
        gateway::kv::Kv::new(config.redis.as_ref().expect("a redis: section"), None).unwrap(),
        gateway::kv::Feature::Cli,
    );
    let key = gateway::auth::keys::generate_key();
    let record = gateway::auth::KeyRecord {
        id: id.into(),
        tenant: "ops".into(),
        role: gateway::config::KeyRole::Admin,
        limits: Default::default(),
        name: None,
        created_at: 0,
    };
    keys.create(&key, &record).await.unwrap();
    (keys, key)
}

/// A default policy whose one rule blocks prompts mentioning `word` (rule `no-{word}`).
pub fn blocking_policy(word: &str) -> String {
    format!("id: guard\ndefault: true\nrules:\n  - id: no-{word}\n    kind: deny_topics\n    keywords: [{word}]\n    action: block\n")
}
