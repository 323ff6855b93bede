//! `deploy/prometheus/gatehouse-rules.yml` and the Grafana dashboard's queries in a real
//! Prometheus (Debian's `prometheus` package; `PROMETHEUS_BIN` to use another) scraping a
//! running gateway: every rule evaluates without error, every query is accepted.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn prometheus_bin() -> PathBuf {
    let bin = std::env::var_os("PROMETHEUS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"));
    assert!(
        bin.exists(),
        "{} not found: install Debian's `prometheus` package (scripts/test does) or set PROMETHEUS_BIN",
        bin.display()
    );
    bin
}

/// A Prometheus process, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Prometheus scraping `target` every second with the rules loaded, on a free port
/// (another process may take the port between our probe and its bind: then try again).
async fn start_prometheus(dir: &Path, target: SocketAddr) -> Prometheus {
    let rules = common::repo().join("deploy/prometheus/gatehouse-rules.yml");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
         scrape_configs:\n  - job_name: gatehouse\n    static_configs:\n      - targets: ['{target}']\n",
        rules.display()
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let http = reqwest::Client::new();
    for _ in 0..5 {
        let port = common::free_port();
        let mut child = Command::new(prometheus_bin())
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn prometheus");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            let ready = http.get(format!("{url}/-/ready")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return Prometheus { child, url };
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("prometheus did not start");
}

async fn api(http: &reqwest::Client, url: &str, path: &str, query: &[(&str, &str)]) -> Value {
    let r = http
        .get(format!("{url}/api/v1/{path}"))
        .query(query)
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

/// An instant query's whole answer.
async fn query(http: &reqwest::Client, url: &str, promql: &str) -> Value {
    api(http, url, "query", &[("query", promql)]).await
}

#[tokio::test]
async fn prometheus_evaluates_every_rule_and_dashboard_query() {
    let upstream = common::mock_upstream().await;
    let yaml = format!(
        "auth: none\nserver:\n  listen: 127.0.0.1:0\ndrift:\n  reference_requests: 1\n  window_requests: 1\n  min_requests: 1\n\
         models:\n  - id: up\n    backend: remote\n    base_url: http://{upstream}/v1\n"
    );
    let addr = common::start(common::config(&yaml));
    // Traffic of each kind, so that most series the rules read exist: answers, a stream,
    // and a 404.
    let http = reqwest::Client::new();
    let chat = format!("http://{addr}/v1/chat/completions");
    for (model, stream) in [("up", false), ("up", true), ("up", false), ("nope", false)] {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "stream": stream});
        http.post(&chat)
            .json(&body)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }

    let dir = common::temp_dir("gatehouse-prometheus");
    let prom = start_prometheus(&dir, addr).await;
    let url = prom.url.clone();

    // Scraped, and every rule evaluated at least once.
    let deadline = Instant::now() + Duration::from_secs(60);
    let rules = loop {
        let up = query(&http, &url, "up{job=\"gatehouse\"}").await;
        let scraped = up["data"]["result"][0]["value"][1] == "1";
        let rules = api(&http, &url, "rules", &[]).await;
        let all: Vec<Value> = rules["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let evaluated = !all.is_empty()
            && all.iter().all(|r| {
                r["lastEvaluation"]
                    .as_str()
                    .is_some_and(|t| !t.starts_with("0001"))
            });
        if scraped && evaluated {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "not scraped ({up}) or rules not evaluated ({rules})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let source =
        std::fs::read_to_string(common::repo().join("deploy/prometheus/gatehouse-rules.yml"))
            .unwrap();
    let expected = source.matches("- record:").count() + source.matches("- alert:").count();
    assert_eq!(
        rules.len(),
        expected,
        "Prometheus loaded {} of {expected} rules",
        rules.len()
    );
    for r in &rules {
        assert_eq!(
            r["health"], "ok",
            "rule {} failed: {}",
            r["name"], r["lastError"]
        );
    }

    // The series the rules need are really there.
    let v = query(&http, &url, "gatehouse:http_requests:rate5m").await;
    assert_eq!(v["status"], "success", "{v}");
    let requests = query(&http, &url, "gatehouse_http_requests_total").await;
    assert!(
        requests["data"]["result"]
            .as_array()
            .is_some_and(|r| r.len() >= 2),
        "{requests}"
    );

    // Every dashboard query and every rule expression, as instant queries.
    let mut queries = common::dashboard_queries();
    assert!(queries.len() >= 20, "{} dashboard queries", queries.len());
    queries.extend(
        rules
            .iter()
            .map(|r| r["query"].as_str().unwrap().to_string()),
    );
    for q in &queries {
        let v = query(&http, &url, q).await;
        assert_eq!(v["status"], "success", "`{q}`: {v}");
    }
    drop(prom);
    let _ = std::fs::remove_dir_all(&dir);
}
