#!/usr/bin/env python3
"""Samples a running gatehouse every INTERVAL seconds until a stop file appears: RSS, open
file descriptors and threads of its process (/proc), requests in flight, queue depths, and
from its /metrics the requests, 5xx answers and latency percentiles of each interval (from
the histogram's bucket deltas). Prints one table row per sample and writes every sample as
JSON lines to OUT.

usage: sample.py PID METRICS_URL INTERVAL OUT STOPFILE
"""
import json
import os
import re
import sys
import time
import urllib.request

pid, url, interval, out_path, stop = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
LINE = re.compile(r'^([a-z_:]+)(?:\{(.*)\})?\s+([0-9.eE+-]+|NaN|\+Inf)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def proc():
    status = open(f"/proc/{pid}/status").read()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) * 1024
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds, threads


def scrape():
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    samples = []
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            labels = dict(LABEL.findall(m.group(2) or ""))
            samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def totals(samples):
    """Requests and 5xx by status, latency buckets summed over routes (probes excluded)."""
    requests, errors5, buckets, statuses = 0.0, 0.0, {}, {}
    for name, labels, v in samples:
        route = labels.get("route", "")
        if route in ("/metrics", "/healthz", "/readyz"):
            continue
        if name == "gatehouse_http_requests_total":
            requests += v
            statuses[labels["status"]] = statuses.get(labels["status"], 0) + v
            if labels["status"].startswith("5"):
                errors5 += v
        elif name == "gatehouse_http_request_duration_seconds_bucket":
            # Only successful answers: refusals (429, 403) are fast and would hide queueing.
            if labels.get("status", "").startswith("2"):
                le = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
                buckets[le] = buckets.get(le, 0) + v
    return requests, errors5, buckets, statuses


def gauge(samples, name, **want):
    return sum(v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in want.items()))


def quantile(deltas, q):
    """The upper bound of the bucket holding quantile q (Prometheus' histogram_quantile
    without interpolation: an upper bound, never an underestimate)."""
    les = sorted(deltas)
    total = deltas[les[-1]] if les else 0
    if total <= 0:
        return float("nan")
    for le in les:
        if deltas[le] >= q * total:
            return le
    return float("inf")


def main():
    start = time.time()
    prev = totals(scrape())
    out = open(out_path, "w")
    print("| t s | RSS MiB | fds | threads | in flight | queue (smollm2) | audit queue | req/s | 5xx | p50 ms | p99 ms |", flush=True)
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    next_at = start + interval
    while not os.path.exists(stop):
        time.sleep(max(0.0, next_at - time.time()))
        next_at += interval
        # The load ends just before the stop file appears: an interval cut short by it would
        # show connections closing, not the steady state.
        if os.path.exists(stop):
            break
        try:
            rss, fds, threads = proc()
            samples = scrape()
        except (OSError, ValueError, AttributeError) as e:
            print(f"sample failed: {e}", flush=True)
            break
        cur = totals(samples)
        d_req = cur[0] - prev[0]
        d_5xx = cur[1] - prev[1]
        d_buckets = {le: cur[2].get(le, 0) - prev[2].get(le, 0) for le in cur[2]}
        d_status = {s: cur[3].get(s, 0) - prev[3].get(s, 0) for s in cur[3] if cur[3].get(s, 0) - prev[3].get(s, 0) > 0}
        prev = cur
        row = {
            "t": round(time.time() - start, 1), "rss": rss, "fds": fds, "threads": threads,
            "in_flight": gauge(samples, "gatehouse_http_requests_in_flight"),
            "queue": gauge(samples, "gatehouse_queue_depth", model="smollm2-135m"),
            "audit_queue": gauge(samples, "gatehouse_audit_queue_depth"),
            "rps": d_req / interval, "errors5": d_5xx, "statuses": d_status,
            "p50": quantile(d_buckets, 0.5) * 1000, "p99": quantile(d_buckets, 0.99) * 1000,
        }
        out.write(json.dumps(row) + "\n")
        out.flush()
        print(f'| {row["t"]:.0f} | {rss / 2**20:.1f} | {fds} | {threads} | {row["in_flight"]:.0f} | {row["queue"]:.0f} | '
              f'{row["audit_queue"]:.0f} | {row["rps"]:.0f} | {d_5xx:.0f} | {row["p50"]:.1f} | {row["p99"]:.1f} |', flush=True)


main()
