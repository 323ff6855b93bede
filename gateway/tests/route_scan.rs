//! The auth route scan: every route of the router (from the same tables it is built from) ×
//! methods × callers (no key, an invalid key, a revoked key, user keys of two tenants, an
//! admin key) answers as docs/security.md documents; the same for every gRPC method. Then
//! tenant isolation where one tenant could see another: `/v1/models`, models it may not use,
//! rate-limit buckets (the response cache and RAG collections: `fleet.rs`, `rag.rs`).

mod common;

use std::net::SocketAddr;

use axum::http::Method;
use gateway::http::routes::{self, Access};
use serde_json::{json, Value};

const ADMIN: &str = "gh_scan_admin_key";
const USER_A: &str = "gh_scan_user_a";
const USER_B: &str = "gh_scan_user_b";
const LIMITED_1: &str = "gh_scan_limited_1";
const LIMITED_2: &str = "gh_scan_limited_2";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Caller {
    NoKey,
    Invalid,
    Revoked,
    UserA,
    UserB,
    Admin,
}

const CALLERS: [Caller; 6] = [
    Caller::NoKey,
    Caller::Invalid,
    Caller::Revoked,
    Caller::UserA,
    Caller::UserB,
    Caller::Admin,
];

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

struct Gateway {
    http: SocketAddr,
    grpc: SocketAddr,
    revoked: String,
}

async fn gateway() -> Gateway {
    let upstream = common::mock_upstream().await;
    let prefix = format!("gh-test-scan-{}", uuid::Uuid::new_v4().simple());
    let audit = common::temp_dir("gh-scan-audit");
    let yaml = format!(
        "server:\n  listen: 127.0.0.1:0\n  grpc_listen: 127.0.0.1:0\nmodels:\n  - id: up-a\n    backend: remote\n    base_url: http://{upstream}/v1\n  - id: up-b\n    backend: remote\n    base_url: http://{upstream}/v1\n\
auth:\n  redis_keys: true\n  keys:\n    - {{id: admin, tenant: ops, role: admin, key_env: GH_SCAN_ADMIN}}\n    - {{id: a, tenant: a, key_env: GH_SCAN_A}}\n    - {{id: b, tenant: b, key_env: GH_SCAN_B}}\n    - {{id: l1, tenant: limited-1, key_env: GH_SCAN_L1}}\n    - {{id: l2, tenant: limited-2, key_env: GH_SCAN_L2}}\n\
tenants:\n  ops: {{}}\n  a:\n    models: [up-a]\n  b:\n    models: [up-b]\n  limited-1:\n    limits: {{requests_per_minute: 2, burst: 2}}\n  limited-2:\n    limits: {{requests_per_minute: 2, burst: 2}}\n\
redis:\n  url: redis://127.0.0.1:6379\n  prefix: {prefix}\naudit:\n  dir: {}\n",
        audit.display()
    );
    let vars = [
        ("GH_SCAN_ADMIN", ADMIN),
        ("GH_SCAN_A", USER_A),
        ("GH_SCAN_B", USER_B),
        ("GH_SCAN_L1", LIMITED_1),
        ("GH_SCAN_L2", LIMITED_2),
    ];
    let config = common::config_with_env(&yaml, &vars);
    let (keys, revoked) = common::redis_admin_key(&config, "gone").await;
    let (http, grpc) = common::start_with_grpc(config);
    // Used once so that a cache of it would be stale, then revoked.
    let r = reqwest::Client::new()
        .get(format!("http://{http}/v1/policies"))
        .bearer_auth(&revoked)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the admin key works before it is revoked");
    keys.revoke("gone").await.unwrap();
    Gateway {
        http,
        grpc: grpc.unwrap(),
        revoked,
    }
}

fn key(g: &Gateway, c: Caller) -> Option<String> {
    match c {
        Caller::NoKey => None,
        Caller::Invalid => Some("gh_not_a_key".into()),
        Caller::Revoked => Some(g.revoked.clone()),
        Caller::UserA => Some(USER_A.into()),
        Caller::UserB => Some(USER_B.into()),
        Caller::Admin => Some(ADMIN.into()),
    }
}

/// A concrete path for a route's pattern.
fn concrete(path: &str) -> String {
    path.replace("{collection}", "scan")
        .replace("{sequence}", "1")
}

/// What the scan expects, as (status, error code) where it is fixed, or `Passes` where the
/// request gets past authentication and authorization (the handler's own answer follows).
#[derive(Debug, PartialEq)]
enum Expect {
    Exactly(u16, &'static str),
    Redirect(&'static str),
    /// A client error, and nothing started (a sign-in without its form's CSRF token).
    Refused,
    Passes,
}

fn expected(route: &routes::Route, method: &Method, caller: Caller) -> Expect {
    use Expect::*;
    let served = route.methods.contains(method);
    match route.access {
        Access::Public | Access::SignIn if !served => Exactly(405, "method_not_allowed"),
        Access::Public => Passes,
        Access::SignIn if method == Method::POST => Refused,
        Access::SignIn => Passes,
        Access::Key | Access::Admin => match caller {
            // A browser asking for a review page without a key is sent to the login form.
            Caller::NoKey if method == Method::GET && route.path.starts_with("/admin/") => {
                Redirect("/admin/login")
            }
            Caller::NoKey => Exactly(401, "missing_api_key"),
            Caller::Invalid | Caller::Revoked => Exactly(401, "invalid_api_key"),
            _ if !served => Exactly(405, "method_not_allowed"),
            Caller::UserA | Caller::UserB if route.access == Access::Admin => {
                Exactly(403, "admin_required")
            }
            _ => Passes,
        },
    }
}

async fn send(
    c: &reqwest::Client,
    g: &Gateway,
    method: Method,
    path: &str,
    caller: Caller,
) -> (u16, Option<String>, String) {
    let mut req = c
        .request(method, format!("http://{}{path}", g.http))
        .header("content-type", "application/json")
        .body("{}");
    if let Some(k) = key(g, caller) {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    let body = r.text().await.unwrap();
    let code = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_default();
    (status, location, code)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_method_and_caller_gets_the_documented_answer() {
    let g = gateway().await;
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let table: Vec<_> = routes::api().into_iter().chain(routes::probes()).collect();
    let mut checked = 0;
    let mut failures = Vec::new();
    for route in &table {
        let path = concrete(route.path);
        for method in &METHODS {
            for caller in CALLERS {
                let want = expected(route, method, caller);
                let (status, location, code) = send(&c, &g, method.clone(), &path, caller).await;
                let ok = match &want {
                    Expect::Exactly(s, want_code) => status == *s && code == *want_code,
                    Expect::Refused => (400..500).contains(&status) && status != 405,
                    Expect::Redirect(to) => status == 303 && location.as_deref() == Some(*to),
                    // Past auth: whatever the handler makes of an empty body, but never a
                    // refusal of the caller, and never a server error.
                    Expect::Passes => {
                        !matches!(status, 401 | 403 | 405)
                            && status < 500
                            && !code.contains("api_key")
                    }
                };
                checked += 1;
                if !ok {
                    failures.push(format!(
                        "{method} {path} as {caller:?}: got {status} {code} {location:?}, want {want:?}"
                    ));
                }
            }
        }
    }
    // Paths no route knows: refused without a key, 404 with one.
    for caller in CALLERS {
        let (status, _, code) = send(&c, &g, Method::GET, "/v1/nothing-here", caller).await;
        let want = match caller {
            Caller::NoKey => (401, "missing_api_key"),
            Caller::Invalid | Caller::Revoked => (401, "invalid_api_key"),
            _ => (404, "not_found"),
        };
        if (status, code.as_str()) != want {
            failures.push(format!("unknown path as {caller:?}: {status} {code}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= table.len() * METHODS.len() * CALLERS.len());
    eprintln!("route scan: {checked} requests over {} routes", table.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_grpc_method_refuses_callers_without_a_valid_key() {
    use gateway::grpc::inference::{METHODS as RPCS, SERVICE};
    let g = gateway().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", g.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut failures = Vec::new();
    for rpc in RPCS {
        for caller in CALLERS {
            let mut client = tonic::client::Grpc::new(channel.clone());
            client.ready().await.unwrap();
            let mut req = tonic::Request::new(());
            if let Some(k) = key(&g, caller) {
                req.metadata_mut()
                    .insert("authorization", format!("Bearer {k}").parse().unwrap());
            }
            let path: axum::http::uri::PathAndQuery = format!("/{SERVICE}/{rpc}").parse().unwrap();
            let codec = tonic_prost::ProstCodec::<(), ()>::default();
            let got = match client.unary(req, path, codec).await {
                Ok(_) => tonic::Code::Ok,
                Err(s) => s.code(),
            };
            // With a key, the empty message is the method's own business (an unknown model,
            // a model the tenant may not use), never a refusal of the caller.
            let refused = got == tonic::Code::Unauthenticated;
            let want_refused = matches!(caller, Caller::NoKey | Caller::Invalid | Caller::Revoked);
            if refused != want_refused
                || matches!(got, tonic::Code::Internal | tonic::Code::Unknown)
            {
                failures.push(format!("{rpc} as {caller:?}: {got:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_see_only_their_models_and_their_own_rate_limits() {
    let g = gateway().await;
    let c = reqwest::Client::new();
    let models = |k: &'static str| {
        c.get(format!("http://{}/v1/models", g.http))
            .bearer_auth(k)
            .send()
    };
    let ids = |v: Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(models(USER_A).await.unwrap().json().await.unwrap()),
        ["up-a"]
    );
    assert_eq!(
        ids(models(USER_B).await.unwrap().json().await.unwrap()),
        ["up-b"]
    );
    assert_eq!(
        ids(models(ADMIN).await.unwrap().json().await.unwrap()),
        ["up-a", "up-b"]
    );
    let chat = |k: &'static str, model: &str| {
        c.post(format!("http://{}/v1/chat/completions", g.http))
            .bearer_auth(k)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    let r = chat(USER_A, "up-b").await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "model_not_allowed"
    );
    assert_eq!(chat(USER_B, "up-b").await.unwrap().status(), 200);

    // One tenant spending its limit leaves another's untouched.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(chat(LIMITED_1, "up-a").await.unwrap().status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(chat(LIMITED_2, "up-a").await.unwrap().status(), 200);
}
