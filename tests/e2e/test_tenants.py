"""API keys, rate limits and the Redis response cache with the official openai SDK and curl,
against the real binary and the real Redis on 127.0.0.1:6379 (a key prefix of its own)."""
import json
import os
import subprocess
import time
import uuid

import openai
import pytest

from conftest import ROOT, _binary, start


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet")
    cfg = tmp / "gatehouse.yaml"
    cfg.write_text(
        f"""
auth:
  keys:
    - {{id: app, tenant: acme, key_env: E2E_APP_KEY}}
    - {{id: slow, tenant: slow, key_env: E2E_SLOW_KEY, limits: {{requests_per_minute: 6, burst: 1}}}}
  redis_keys: true
tenants:
  acme: {{}}
  slow: {{}}
redis:
  prefix: e2e-{uuid.uuid4().hex}
cache:
  store: redis
models:
  - id: smollm2-135m
    backend: local
    path: {ROOT / "models/smollm2-135m-instruct-q4_1.gguf"}
    dtype: f32
"""
    )
    env = dict(os.environ, E2E_APP_KEY="e2e-app-key", E2E_SLOW_KEY="e2e-slow-key")
    proc, base = start(cfg, env)
    yield base, cfg, env
    proc.terminate()
    assert proc.wait(timeout=60) == 0


def _client(base, key):
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)


def _ask(client):
    return client.chat.completions.with_raw_response.create(
        model="smollm2-135m",
        messages=[{"role": "user", "content": "Name a planet."}],
        temperature=0,
        max_tokens=10,
    )


def test_keys_cache_and_limits_with_the_openai_sdk(fleet):
    base, _, _ = fleet
    with pytest.raises(openai.AuthenticationError) as e:
        _client(base, "wrong").chat.completions.create(
            model="smollm2-135m", messages=[{"role": "user", "content": "hi"}])
    assert e.value.code == "invalid_api_key"

    client = _client(base, "e2e-app-key")
    first = _ask(client)
    assert first.headers["x-cache"] == "MISS"
    # The answer is stored off the request path: poll briefly for the hit.
    for _ in range(20):
        second = _ask(client)
        if second.headers["x-cache"] == "HIT":
            break
        time.sleep(0.1)
    assert second.headers["x-cache"] == "HIT"
    assert first.parse().choices[0].message.content == second.parse().choices[0].message.content

    slow = _client(base, "e2e-slow-key")
    slow.models.list()
    with pytest.raises(openai.RateLimitError) as e:
        slow.models.list()
    assert e.value.code == "rate_limit_exceeded"
    assert int(e.value.response.headers["retry-after"]) >= 1


def test_keys_made_with_the_cli_work_with_curl_until_revoked(fleet):
    base, cfg, env = fleet
    # The CLI reads the same config, so it needs the same environment.
    made = subprocess.run(
        [str(_binary()), "keys", "create", "--config", str(cfg), "--tenant", "acme", "--json"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )
    record = json.loads(made.stdout)
    assert record["key"].startswith("gh_") and record["tenant"] == "acme"

    def status(key):
        out = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Authorization: Bearer {key}",
             base + "/v1/models"],
            check=True, capture_output=True, text=True,
        )
        return out.stdout

    assert status(record["key"]) == "200"
    listed = subprocess.run(
        [str(_binary()), "keys", "list", "--config", str(cfg), "--json"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )
    assert record["key"] not in listed.stdout
    assert record["id"] in [k["id"] for k in json.loads(listed.stdout)]
    subprocess.run([str(_binary()), "keys", "revoke", "--config", str(cfg), record["id"]],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    assert status(record["key"]) == "401"
