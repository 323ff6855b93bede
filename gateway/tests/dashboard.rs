//! The Grafana dashboard in `deploy/grafana/` queries only metrics the gateway exports.

mod common;

use std::collections::BTreeSet;

#[test]
fn every_metric_in_the_dashboard_is_exported() {
    let all = common::dashboard_queries();
    assert!(all.len() >= 20, "only {} queries", all.len());

    let metrics = gateway::metrics::Metrics::new();
    let exported: BTreeSet<&str> = metrics.names().iter().map(String::as_str).collect();
    let name = regex::Regex::new(r"\bgatehouse_[a-z0-9_]+").unwrap();
    let mut used = BTreeSet::new();
    let mut missing = Vec::new();
    for e in &all {
        for m in name.find_iter(e) {
            let n = m.as_str();
            // Histograms are exported as _bucket, _sum and _count series.
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s).filter(|b| exported.contains(b)))
                .unwrap_or(n);
            if exported.contains(base) {
                used.insert(base.to_string());
            } else {
                missing.push(format!("{n} in `{e}`"));
            }
        }
    }
    assert!(missing.is_empty(), "not exported: {missing:#?}");
    // The panels cover each area: traffic, models, guardrails, fleet, audit.
    for area in [
        "gatehouse_http_requests_total",
        "gatehouse_time_to_first_token_seconds",
        "gatehouse_policy_decisions_total",
        "gatehouse_cache_requests_total",
        "gatehouse_audit_records_total",
        "gatehouse_audit_dropped_total",
    ] {
        assert!(used.contains(area), "no panel uses {area}");
    }
}

#[test]
fn exported_names_match_the_metrics_page() {
    // Names come from the registered collectors; the page shows them once they have samples.
    let metrics = gateway::metrics::Metrics::new();
    metrics.in_flight.inc();
    metrics.audit.queue_depth.set(1);
    let page = metrics.render();
    for n in [
        "gatehouse_http_requests_in_flight",
        "gatehouse_audit_queue_depth",
    ] {
        assert!(metrics.names().iter().any(|x| x == n), "{n}");
        assert!(
            page.contains(&format!("# TYPE {n} gauge")),
            "{n} not on the page"
        );
    }
}
