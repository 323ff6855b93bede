//! API keys and tenants, rate limits and the response cache, through the real server with
//! SmolLM2 and the real Redis on 127.0.0.1:6379 (each test under a prefix of its own).

mod common;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{smollm2, start, wait_ready};

const KEYS: &[(&str, &str)] = &[
    ("GH_ACME", "acme-key"),
    ("GH_RPM", "rpm-key"),
    ("GH_CONC", "conc-key"),
    ("GH_TOK", "tok-key"),
    ("GH_CACHE_A", "cache-a-key"),
    ("GH_CACHE_B", "cache-b-key"),
    ("GH_OPS", "ops-key"),
];

/// One server: SmolLM2, keys of several tenants with their limits, an in-memory cache.
fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let yaml = format!(
            r#"server:
  listen: 127.0.0.1:0
models:
{}  - id: elsewhere
    backend: remote
    base_url: http://127.0.0.1:9/v1
auth:
  keys:
    - {{id: acme, tenant: acme, key_env: GH_ACME}}
    - {{id: rpm, tenant: free, key_env: GH_RPM, limits: {{requests_per_minute: 60, burst: 2}}}}
    - {{id: conc, tenant: conc, key_env: GH_CONC}}
    - {{id: tok, tenant: tok, key_env: GH_TOK}}
    - {{id: cache-a, tenant: cache-a, key_env: GH_CACHE_A}}
    - {{id: cache-b, tenant: cache-b, key_env: GH_CACHE_B}}
    - {{id: ops, tenant: ops, role: admin, key_env: GH_OPS}}
tenants:
  acme:
    models: [smollm2-135m]
  conc:
    limits: {{concurrent: 1}}
  tok:
    limits: {{tokens_per_minute: 60}}
  "*": {{}}
cache:
  store: memory
"#,
            smollm2("smollm2-135m", 16)
        );
        let addr = start(common::config_with_env(&yaml, KEYS));
        wait_ready(addr, Duration::from_secs(180));
        addr
    })
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn chat(addr: SocketAddr, key: Option<&str>, body: Value) -> reqwest::Response {
    let mut r = client()
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&body);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    r.send().await.unwrap()
}

fn ask(content: &str) -> Value {
    json!({
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": content}],
        "temperature": 0,
        "max_tokens": 12,
    })
}

async fn error_code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    (
        status,
        v["error"]["code"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn keys_are_required_and_scope_models_and_admin_endpoints() {
    let addr = server();
    let r = chat(addr, None, ask("hi")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(error_code(r).await, (401, "missing_api_key".into()));
    let r = chat(addr, Some("not-a-key"), ask("hi")).await;
    assert_eq!(error_code(r).await, (401, "invalid_api_key".into()));
    // Probes stay open.
    assert_eq!(common::status_of(addr, "/healthz"), Some(200));
    assert_eq!(common::status_of(addr, "/metrics"), Some(200));

    // acme may use smollm2 only: /v1/models lists it alone, the other model is refused.
    let models: Value = client()
        .get(format!("http://{addr}/v1/models"))
        .bearer_auth("acme-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["smollm2-135m"]);
    let mut body = ask("hi");
    body["model"] = json!("elsewhere");
    let r = chat(addr, Some("acme-key"), body).await;
    assert_eq!(error_code(r).await, (403, "model_not_allowed".into()));
    let r = chat(addr, Some("acme-key"), ask("Say hi.")).await;
    assert_eq!(r.status(), 200);

    // Admin endpoints: 403 for a user key, 200 for an admin key.
    let get = |key: &'static str| {
        client()
            .get(format!("http://{addr}/v1/policies"))
            .bearer_auth(key)
            .send()
    };
    assert_eq!(
        error_code(get("acme-key").await.unwrap()).await,
        (403, "admin_required".into())
    );
    assert_eq!(get("ops-key").await.unwrap().status(), 200);
    assert!(common::metric(addr, "gatehouse_auth_failures_total{reason=\"missing\"}").await >= 1.0);
}

#[tokio::test]
async fn a_key_over_its_request_rate_gets_429_with_retry_after() {
    let addr = server();
    let models = || {
        client()
            .get(format!("http://{addr}/v1/models"))
            .bearer_auth("rpm-key")
            .send()
    };
    // 60 per minute with a burst of 2: two at once, then one per second.
    let first = models().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ratelimit-limit-requests"], "60");
    assert_eq!(first.headers()["x-ratelimit-remaining-requests"], "1");
    assert_eq!(models().await.unwrap().status(), 200);
    let refused = models().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    let v: Value = refused.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    // Another tenant is not affected.
    let other = client()
        .get(format!("http://{addr}/v1/models"))
        .bearer_auth("acme-key")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(models().await.unwrap().status(), 200);
    assert!(
        common::metric(
            addr,
            "gatehouse_rate_limited_total{limit=\"requests\",scope=\"key\"}"
        )
        .await
            >= 1.0
    );
}

#[tokio::test]
async fn concurrent_requests_are_limited_until_one_ends() {
    let addr = server();
    let mut body = ask("Count from one to twenty.");
    body["stream"] = json!(true);
    body["max_tokens"] = json!(48);
    let open = chat(addr, Some("conc-key"), body).await;
    assert_eq!(open.status(), 200);
    let r = chat(addr, Some("conc-key"), ask("hi")).await;
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("concurrent"),
        "{v}"
    );
    // Reading the stream to its end frees the slot.
    let _ = open.text().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = chat(addr, Some("conc-key"), ask("hi")).await;
        if r.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slot never freed: {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn tokens_are_charged_after_the_answer() {
    let addr = server();
    // 60 tokens per minute: every answer (prompt + completion > 20 tokens) charges it, and
    // the request after the minute's budget is spent is refused until it refills.
    let mut refused = None;
    for i in 0..6 {
        let r = chat(addr, Some("tok-key"), ask(&format!("Say the number {i}."))).await;
        if r.status() == 429 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status(), 200);
        let _ = r.text().await.unwrap();
        // Settlement happens when the body ends, off the request path.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = refused.expect("the token budget was never exhausted");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "{retry}");
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("tokens"),
        "{v}"
    );
}

#[tokio::test]
async fn deterministic_answers_are_cached_per_tenant_and_replayed_as_streams() {
    let addr = server();
    let q = ask("Name one primary color.");
    let first = chat(addr, Some("cache-a-key"), q.clone()).await;
    assert_eq!(first.headers()["x-cache"], "MISS");
    let a: Value = first.json().await.unwrap();
    let second = chat(addr, Some("cache-a-key"), q.clone()).await;
    assert_eq!(second.headers()["x-cache"], "HIT");
    let b: Value = second.json().await.unwrap();
    assert_eq!(a["choices"], b["choices"]);
    assert_eq!(a["usage"], b["usage"]);
    // A streamed request is served from the same entry, as a stream.
    let mut streamed = q.clone();
    streamed["stream"] = json!(true);
    let s = chat(addr, Some("cache-a-key"), streamed).await;
    assert_eq!(s.headers()["x-cache"], "HIT");
    let (text, finish, _) = common::reassemble(&s.text().await.unwrap());
    assert_eq!(
        text,
        a["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(finish, a["choices"][0]["finish_reason"].as_str().unwrap());
    // Another tenant never sees tenant A's entry.
    let other = chat(addr, Some("cache-b-key"), q.clone()).await;
    assert_eq!(other.headers()["x-cache"], "MISS");
    // Random sampling, and a client's no-cache, bypass it.
    let mut random = q.clone();
    random["temperature"] = json!(0.9);
    let r = chat(addr, Some("cache-a-key"), random).await;
    assert_eq!(r.headers()["x-cache"], "BYPASS");
    let r = client()
        .post(format!("http://{addr}/v1/chat/completions"))
        .bearer_auth("cache-a-key")
        .header("cache-control", "no-cache")
        .json(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-cache"], "BYPASS");
    assert!(common::metric(addr, "gatehouse_cache_requests_total{result=\"hit\"}").await >= 2.0);
}

/// A prefix of its own in the shared Redis, so tests never see each other's state.
fn prefix(name: &str) -> String {
    format!("gh-test-{name}-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn redis_keys_work_across_replicas_and_revocation_is_immediate() {
    let p = prefix("keys");
    let yaml = format!(
        "server:\n  listen: 127.0.0.1:0\nmodels:\n  - id: m\n    backend: remote\n    base_url: http://127.0.0.1:9/v1\n\
auth:\n  redis_keys: true\ntenants:\n  acme: {{}}\nredis:\n  url: redis://127.0.0.1:6379\n  prefix: {p}\n"
    );
    let a = start(common::config(&yaml));
    let b = start(common::config(&yaml));
    let kv = gateway::kv::Kv::new(common::config(&yaml).redis.as_ref().unwrap(), None).unwrap();
    let keys = gateway::auth::RedisKeys::new(kv, gateway::kv::Feature::Cli);
    let key = gateway::auth::keys::generate_key();
    let record = gateway::auth::KeyRecord {
        id: "k1".into(),
        tenant: "acme".into(),
        role: gateway::config::KeyRole::User,
        limits: Default::default(),
        name: None,
        created_at: 0,
    };
    keys.create(&key, &record).await.unwrap();
    assert!(matches!(
        keys.create(&gateway::auth::keys::generate_key(), &record)
            .await,
        Err(gateway::auth::keys::KeysError::DuplicateId(_))
    ));
    let models = |addr: SocketAddr, key: String| async move {
        client()
            .get(format!("http://{addr}/v1/models"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(models(a, key.clone()).await, 200);
    assert_eq!(models(b, key.clone()).await, 200);
    assert_eq!(keys.list().await.unwrap(), vec![record]);
    keys.revoke("k1").await.unwrap();
    assert_eq!(models(a, key.clone()).await, 401);
    assert_eq!(models(b, key).await, 401);
}

#[tokio::test]
async fn the_redis_cache_is_shared_by_replicas_and_scoped_by_tenant() {
    let p = prefix("cache");
    let yaml = format!(
        "server:\n  listen: 127.0.0.1:0\nmodels:\n{}auth:\n  keys:\n    - {{id: a, tenant: a, key_env: GH_CA}}\n    - {{id: b, tenant: b, key_env: GH_CB}}\ntenants:\n  \"*\": {{}}\nredis:\n  prefix: {p}\ncache:\n  store: redis\n",
        smollm2("smollm2-135m", 8)
    );
    let vars = [("GH_CA", "ka"), ("GH_CB", "kb")];
    let one = start(common::config_with_env(&yaml, &vars));
    let two = start(common::config_with_env(&yaml, &vars));
    wait_ready(one, Duration::from_secs(180));
    wait_ready(two, Duration::from_secs(180));
    let q = ask("What is two plus two?");
    let r = chat(one, Some("ka"), q.clone()).await;
    assert_eq!(r.headers()["x-cache"], "MISS");
    let a: Value = r.json().await.unwrap();
    // Stored off the request path: poll the other replica until it sees the entry.
    let deadline = Instant::now() + Duration::from_secs(5);
    let b: Value = loop {
        let r = chat(two, Some("ka"), q.clone()).await;
        if r.headers()["x-cache"] == "HIT" {
            break r.json().await.unwrap();
        }
        assert!(Instant::now() < deadline, "replica two never hit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(a["choices"], b["choices"]);
    let r = chat(two, Some("kb"), q).await;
    assert_eq!(r.headers()["x-cache"], "MISS");
}

struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gh-fleet-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateway_processes_share_one_rate_limit() {
    let (rpm, burst, secs) = (1200.0, 20.0, 6.0);
    let cfg = temp_file(
        "gatehouse.yaml",
        &format!(
            "models:\n  - id: m\n    backend: remote\n    base_url: http://127.0.0.1:9/v1\n\
auth:\n  keys:\n    - {{id: k, tenant: shared, key_env: GH_SHARED}}\n\
tenants:\n  shared:\n    limits: {{requests_per_minute: {rpm}, burst: {burst}}}\n\
redis:\n  prefix: {}\n",
            prefix("two")
        ),
    );
    let vars = [("GH_SHARED", "shared-key")];
    let (a, addr_a) = common::spawn_gateway(&cfg, &vars);
    let (b, addr_b) = common::spawn_gateway(&cfg, &vars);
    let _guards = (Kill(a), Kill(b));
    for addr in [addr_a, addr_b] {
        tokio::task::spawn_blocking(move || wait_ready(addr, Duration::from_secs(30)))
            .await
            .unwrap();
    }
    // Eight clients per replica hammer it for `secs`; count what each replica admits.
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for addr in [addr_a, addr_b] {
        for _ in 0..8 {
            tasks.push(tokio::spawn(async move {
                let c = client();
                let (mut ok, mut limited) = (0u32, 0u32);
                while Instant::now() < end {
                    let r = c
                        .get(format!("http://{addr}/v1/models"))
                        .bearer_auth("shared-key")
                        .send()
                        .await
                        .unwrap();
                    match r.status().as_u16() {
                        200 => ok += 1,
                        429 => limited += 1,
                        s => panic!("unexpected status {s}"),
                    }
                }
                (addr, ok, limited)
            }));
        }
    }
    let mut per_replica = std::collections::HashMap::new();
    let mut limited_total = 0;
    for t in tasks {
        let (addr, ok, limited) = t.await.unwrap();
        *per_replica.entry(addr).or_insert(0u32) += ok;
        limited_total += limited;
    }
    // The last requests were sent just before `end` and answered after it.
    let elapsed = start.elapsed().as_secs_f64();
    let admitted: u32 = per_replica.values().sum();
    // GCRA admits the burst, then the sustained rate.
    let expected = burst + elapsed * rpm / 60.0;
    let error = (f64::from(admitted) - expected).abs() / expected;
    assert!(
        error <= 0.05,
        "admitted {admitted} (per replica {per_replica:?}) vs expected {expected:.1} over {elapsed:.2}s: {:.1}% off",
        error * 100.0
    );
    assert!(limited_total > 0, "the clients never hit the limit");
    assert!(per_replica.values().all(|&n| n > 0), "{per_replica:?}");
}

/// A `redis-server` of this test's own on a free port, without persistence.
struct OwnRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    fn start() -> Self {
        let port = common::free_port();
        let mut r = Self { port, child: None };
        r.restart();
        r
    }

    fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_stopping_and_restarting_is_survived_per_feature() {
    let mut redis = OwnRedis::start();
    let p = prefix("failover");
    let yaml = |rate_limits: &str| {
        format!(
            "server:\n  listen: 127.0.0.1:0\nmodels:\n{}auth:\n  redis_keys: true\n  keys:\n    - {{id: cfg, tenant: t, key_env: GH_CFG}}\n\
tenants:\n  t:\n    limits: {{requests_per_minute: 6000}}\n\
redis:\n  url: redis://127.0.0.1:{}\n  timeout_ms: 200\n  prefix: {}\n  on_error:\n    rate_limits: {rate_limits}\n    cache: fail_open\n    auth: fail_closed\n\
cache:\n  store: redis\n",
            smollm2("smollm2-135m", 8),
            redis.port,
            p
        )
    };
    let vars = [("GH_CFG", "cfg-key")];
    let open = start(common::config_with_env(&yaml("fail_open"), &vars));
    let closed = start(common::config_with_env(&yaml("fail_closed"), &vars));
    wait_ready(open, Duration::from_secs(180));
    let cfg = common::config_with_env(&yaml("fail_open"), &vars);
    let keys = || {
        gateway::auth::RedisKeys::new(
            gateway::kv::Kv::new(cfg.redis.as_ref().unwrap(), None).unwrap(),
            gateway::kv::Feature::Cli,
        )
    };
    let record = gateway::auth::KeyRecord {
        id: "r1".into(),
        tenant: "t".into(),
        role: gateway::config::KeyRole::User,
        limits: Default::default(),
        name: None,
        created_at: 0,
    };
    let redis_key = gateway::auth::keys::generate_key();
    keys().create(&redis_key, &record).await.unwrap();
    let get = |addr: SocketAddr, key: String| async move {
        let t = Instant::now();
        let r = client()
            .get(format!("http://{addr}/v1/models"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        // Never held by Redis: its calls time out after 200 ms.
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        (
            status,
            v["error"]["code"].as_str().unwrap_or_default().to_string(),
        )
    };
    assert_eq!(get(open, "cfg-key".into()).await.0, 200);
    assert_eq!(get(open, redis_key.clone()).await.0, 200);
    assert_eq!(get(closed, "cfg-key".into()).await.0, 200);
    let q = ask("Name a fruit.");
    let r = chat(open, Some("cfg-key"), q.clone()).await;
    assert_eq!(r.headers()["x-cache"], "MISS");
    let answer: Value = r.json().await.unwrap();

    redis.stop();
    // Config keys still work; the local limiter stands in (fail_open), or 503 (fail_closed).
    assert_eq!(get(open, "cfg-key".into()).await.0, 200);
    assert_eq!(
        get(closed, "cfg-key".into()).await,
        (503, "rate_limiter_unavailable".into())
    );
    // A Redis key cannot be checked: auth is fail_closed.
    assert_eq!(
        get(open, redis_key.clone()).await,
        (503, "auth_unavailable".into())
    );
    // The cache is skipped (fail_open): the answer comes from the model.
    let t = Instant::now();
    let r = chat(open, Some("cfg-key"), q.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-cache"], "BYPASS");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"], answer["choices"]);
    assert!(t.elapsed() < Duration::from_secs(30));
    assert!(
        common::metric(
            open,
            "gatehouse_redis_errors_total{feature=\"rate_limits\"}"
        )
        .await
            >= 1.0
    );
    assert!(common::metric(open, "gatehouse_redis_errors_total{feature=\"auth\"}").await >= 1.0);
    assert_eq!(common::metric(open, "gatehouse_redis_up").await, 0.0);

    // Back without a restart of the gateways. The new Redis is empty: the key is re-created.
    redis.restart();
    keys().create(&redis_key, &record).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = get(open, redis_key.clone()).await.0;
        let b = get(closed, "cfg-key".into()).await.0;
        if (a, b) == (200, 200) {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {a} {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(common::metric(open, "gatehouse_redis_up").await, 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_redis_holds_no_request_and_recovers_without_restart() {
    let redis = OwnRedis::start();
    let upstream = common::mock_upstream().await;
    let yaml = |rate_limits: &str| {
        format!(
            "server:\n  listen: 127.0.0.1:0\nmodels:\n  - id: m\n    backend: remote\n    base_url: http://{upstream}/v1\n\
auth:\n  keys:\n    - {{id: cfg, tenant: t, key_env: GH_PAUSE}}\ntenants:\n  t:\n    limits: {{requests_per_minute: 6000}}\n\
redis:\n  url: redis://127.0.0.1:{}\n  timeout_ms: 200\n  prefix: {}\n  on_error:\n    rate_limits: {rate_limits}\n    cache: fail_open\n\
cache:\n  store: redis\n",
            redis.port,
            prefix("pause")
        )
    };
    let vars = [("GH_PAUSE", "pause-key")];
    let open = start(common::config_with_env(&yaml("fail_open"), &vars));
    let closed = start(common::config_with_env(&yaml("fail_closed"), &vars));
    let call = |addr: SocketAddr| async move {
        let t = Instant::now();
        let mut body = ask("Paused?");
        body["model"] = "m".into();
        let r = chat(addr, Some("pause-key"), body).await;
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        (
            status,
            v["error"]["code"].as_str().unwrap_or_default().to_string(),
            t.elapsed(),
        )
    };
    assert_eq!(call(open).await.0, 200);
    assert_eq!(call(closed).await.0, 200);
    // Redis stops answering (connections stay open, commands wait) for 3 s: unlike a stopped
    // server, nothing is refused, so only the per-call timeout protects the requests.
    let paused = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "client",
            "pause",
            "3000",
            "all",
        ])
        .output()
        .expect("redis-cli");
    assert_eq!(String::from_utf8_lossy(&paused.stdout).trim(), "OK");
    let (status, _, took) = call(open).await;
    assert_eq!(status, 200, "fail_open serves while Redis is paused");
    // Admission, cache lookup and settlement each wait at most timeout_ms (200 ms), and
    // at least one of them did wait.
    assert!(
        (Duration::from_millis(200)..Duration::from_millis(1500)).contains(&took),
        "{took:?}"
    );
    let (status, code, took) = call(closed).await;
    assert_eq!((status, code.as_str()), (503, "rate_limiter_unavailable"));
    assert!(
        (Duration::from_millis(200)..Duration::from_millis(1500)).contains(&took),
        "{took:?}"
    );
    // The pause ends; both gateways use Redis again without a restart.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (a, b) = (call(open).await.0, call(closed).await.0);
        if (a, b) == (200, 200) && common::metric(open, "gatehouse_redis_up").await == 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery after the pause: {a} {b}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
