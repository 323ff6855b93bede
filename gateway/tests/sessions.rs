//! The review page's sign-in: server-side sessions (in memory, or in Redis shared by replicas),
//! CSRF tokens on the login and logout forms, rotation, revocation, `Secure` cookies behind
//! TLS, throttled failures, and the admin endpoints closed under `auth: none`.

mod common;

use std::net::SocketAddr;

use common::{admin_login, login_form, session_cookie, set_cookie, start};
use serde_json::Value;

const ADMIN_KEY: &str = "gh_sessions_admin_key";
const USER_KEY: &str = "gh_sessions_user_key";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn prefix(name: &str) -> String {
    format!("gh-test-sessions-{name}-{}", uuid::Uuid::new_v4().simple())
}

/// A gateway with an admin and a user key; `extra` is appended (a `redis:` section, ...).
fn gateway(server_extra: &str, extra: &str) -> SocketAddr {
    let yaml = format!(
        "server:\n  listen: 127.0.0.1:0\n{server_extra}models:\n  - id: up\n    backend: remote\n    base_url: http://127.0.0.1:9/v1\n\
auth:\n  keys:\n    - {{id: admin, tenant: ops, role: admin, key_env: GH_S_ADMIN}}\n    - {{id: app, tenant: app, key_env: GH_S_USER}}\n{}\
tenants:\n  ops: {{}}\n  app: {{}}\naudit:\n  dir: {}\n{extra}",
        if extra.contains("redis:") {
            "  redis_keys: true\n"
        } else {
            ""
        },
        // The review page (and its sign-out form) needs an audit log.
        common::temp_dir("gh-sessions-audit").display()
    );
    start(common::config_with_env(
        &yaml,
        &[("GH_S_ADMIN", ADMIN_KEY), ("GH_S_USER", USER_KEY)],
    ))
}

fn redis(prefix: &str) -> String {
    format!("redis:\n  url: redis://127.0.0.1:6379\n  prefix: {prefix}\n")
}

async fn page(c: &reqwest::Client, addr: SocketAddr, cookie: &str) -> reqwest::Response {
    c.get(format!("http://{addr}/admin/audit"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

/// The sign-out form's token in a page.
async fn logout_token(r: reqwest::Response) -> String {
    let html = r.text().await.unwrap();
    let form = html
        .split(r#"action="/admin/logout""#)
        .nth(1)
        .expect("a sign-out form");
    form.split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string()
}

async fn logout(
    c: &reqwest::Client,
    addr: SocketAddr,
    cookie: &str,
    csrf: &str,
) -> reqwest::Response {
    c.post(format!("http://{addr}/admin/logout"))
        .header("cookie", cookie)
        .form(&[("csrf", csrf)])
        .send()
        .await
        .unwrap()
}

async fn code(r: reqwest::Response) -> String {
    let v: Value = r.json().await.unwrap();
    v["error"]["code"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn sign_in_starts_a_server_side_session_guarded_by_csrf_tokens() {
    let addr = gateway("", "");
    let c = client();

    // A post without the form's token is refused and counts for nothing.
    let r = c
        .post(format!("http://{addr}/admin/login"))
        .form(&[("key", ADMIN_KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(set_cookie(&r, "gatehouse_session").is_none());
    let (form_cookie, _) = login_form(&c, addr).await;
    let r = c
        .post(format!("http://{addr}/admin/login"))
        .header("cookie", &form_cookie)
        .form(&[("key", ADMIN_KEY), ("csrf", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let r = admin_login(&c, addr, ADMIN_KEY).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/admin/audit");
    let raw = set_cookie(&r, "gatehouse_session").unwrap();
    assert!(
        raw.contains("Path=/admin")
            && raw.contains("HttpOnly")
            && raw.contains("SameSite=Strict")
            && raw.contains("Max-Age=43200")
            && !raw.contains("Secure"),
        "{raw}"
    );
    let first = session_cookie(&r);
    let id = first.trim_start_matches("gatehouse_session=");
    assert!(id.len() == 64 && id.chars().all(|ch| ch.is_ascii_hexdigit()));
    assert!(!first.contains(ADMIN_KEY));

    let p = page(&c, addr, &first).await;
    assert_eq!(p.status(), 200);
    let first_csrf = logout_token(p).await;
    assert_eq!(first_csrf.len(), 64);
    // The session opens the review pages only, not the API.
    let api = c
        .get(format!("http://{addr}/v1/models"))
        .header("cookie", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);

    // Signing in again gives a new id and ends the session the browser came with.
    let (form_cookie, token) = login_form(&c, addr).await;
    let r = c
        .post(format!("http://{addr}/admin/login"))
        .header("cookie", format!("{form_cookie}; {first}"))
        .form(&[("key", ADMIN_KEY), ("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let second = session_cookie(&r);
    assert_ne!(second, first);
    assert_eq!(page(&c, addr, &first).await.status(), 303, "rotated out");
    let p = page(&c, addr, &second).await;
    assert_eq!(p.status(), 200);
    let csrf = logout_token(p).await;
    assert_ne!(csrf, first_csrf);

    // Logout needs the session's token; then the session is gone on the server.
    let r = logout(&c, addr, &second, &first_csrf).await;
    assert_eq!(r.status(), 403);
    assert_eq!(code(r).await, "csrf_failed");
    assert_eq!(page(&c, addr, &second).await.status(), 200);
    let r = logout(&c, addr, &second, &csrf).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/admin/login");
    assert!(set_cookie(&r, "gatehouse_session")
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(page(&c, addr, &second).await.status(), 303);

    // A user key cannot sign in.
    assert_eq!(admin_login(&c, addr, USER_KEY).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_in_redis_are_shared_by_replicas_and_end_with_their_key() {
    let p = prefix("shared");
    let (a, b) = (gateway("", &redis(&p)), gateway("", &redis(&p)));
    let c = client();
    let cfg = common::config_with_env(
        &format!("auth: none\nmodels:\n  - id: up\n    backend: remote\n    base_url: http://127.0.0.1:9/v1\n{}", redis(&p)),
        &[],
    );
    let (keys, key) = common::redis_admin_key(&cfg, "reviewer").await;

    let r = admin_login(&c, a, &key).await;
    assert_eq!(r.status(), 303);
    let s = session_cookie(&r);
    // Replica b knows the session replica a started, and ends it for both.
    let on_b = page(&c, b, &s).await;
    assert_eq!(on_b.status(), 200);
    let csrf = logout_token(on_b).await;
    assert_eq!(logout(&c, b, &s, &csrf).await.status(), 303);
    assert_eq!(page(&c, a, &s).await.status(), 303);

    // Revoking the key ends its sessions at their next request.
    let s = session_cookie(&admin_login(&c, b, &key).await);
    assert_eq!(page(&c, a, &s).await.status(), 200);
    keys.revoke("reviewer").await.unwrap();
    assert_eq!(page(&c, a, &s).await.status(), 303);
    assert_eq!(page(&c, b, &s).await.status(), 303);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_sign_ins_are_throttled_per_source() {
    let p = prefix("throttle");
    for (name, replicas) in [
        ("memory", vec![gateway("", "")]),
        (
            "redis",
            vec![gateway("", &redis(&p)), gateway("", &redis(&p))],
        ),
    ] {
        let c = client();
        for i in 0..5 {
            let at = replicas[i % replicas.len()];
            let r = admin_login(&c, at, "gh_wrong_guess").await;
            assert_eq!(r.status(), 401, "{name}: failure {i}");
        }
        // The sixth try is refused even with the right key, on every replica.
        for &at in &replicas {
            let r = admin_login(&c, at, ADMIN_KEY).await;
            assert_eq!(r.status(), 429, "{name}");
            let wait: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=300).contains(&wait), "{name}: {wait}");
            assert!(set_cookie(&r, "gatehouse_session").is_none());
            assert!(r.text().await.unwrap().contains("Too many failed sign-ins"));
        }
    }
}

#[tokio::test]
async fn cookies_are_secure_behind_tls() {
    let c = client();
    let tls = gateway("  public_url: https://gatehouse.example.com/\n", "");
    let (csrf_cookie, _) = {
        let r = c
            .get(format!("http://{tls}/admin/login"))
            .send()
            .await
            .unwrap();
        (set_cookie(&r, "gatehouse_login_csrf").unwrap(), ())
    };
    assert!(csrf_cookie.contains("; Secure"), "{csrf_cookie}");
    let r = admin_login(&c, tls, ADMIN_KEY).await;
    assert!(set_cookie(&r, "gatehouse_session")
        .unwrap()
        .contains("; Secure"));

    // A TLS-terminating proxy says so with X-Forwarded-Proto.
    let plain = gateway("", "");
    let (form_cookie, token) = login_form(&c, plain).await;
    let signin = |proto: Option<&'static str>| {
        let mut req = c
            .post(format!("http://{plain}/admin/login"))
            .header("cookie", &form_cookie)
            .form(&[("key", ADMIN_KEY), ("csrf", token.as_str())]);
        if let Some(p) = proto {
            req = req.header("x-forwarded-proto", p);
        }
        req.send()
    };
    let r = signin(Some("https")).await.unwrap();
    assert!(set_cookie(&r, "gatehouse_session")
        .unwrap()
        .contains("; Secure"));
    let r = signin(None).await.unwrap();
    assert!(!set_cookie(&r, "gatehouse_session")
        .unwrap()
        .contains("Secure"));
}

#[tokio::test]
async fn auth_none_keeps_the_admin_endpoints_closed_unless_opened() {
    let c = client();
    let keyless = |auth: &str| {
        start(common::config(&format!(
            "server:\n  listen: 127.0.0.1:0\nmodels:\n  - id: up\n    backend: remote\n    base_url: http://127.0.0.1:9/v1\n{auth}"
        )))
    };
    let closed = keyless("auth: none\n");
    for path in [
        "/admin/audit",
        "/admin/drift",
        "/v1/policies",
        "/v1/rag/collections",
        "/admin/login",
    ] {
        let r = c
            .get(format!("http://{closed}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        assert_eq!(code(r).await, "admin_closed", "{path}");
    }
    let r = c
        .get(format!("http://{closed}/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the API itself is open");

    let open = keyless("auth:\n  none:\n    open_admin: true\n");
    for path in ["/admin/audit", "/v1/policies"] {
        let r = c.get(format!("http://{open}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let r = c
        .get(format!("http://{open}/admin/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "nothing to sign into");
}
