"""`scripts/fleet up|status|down`: two gateways sharing Redis and Qdrant in front of two engine
gatehouses, all real processes on free loopback ports, then stopped again."""
import json
import os
import subprocess
import urllib.request

import pytest

from conftest import ROOT


def env_file(path):
    return dict(line.split("=", 1) for line in path.read_text().split() if "=" in line)


def call(url, key, body=None):
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.status, dict(r.headers), json.loads(r.read())


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    state = tmp_path_factory.mktemp("fleet")
    env = {**os.environ, "FLEET_DIR": str(state)}
    up = subprocess.run([str(ROOT / "scripts" / "fleet"), "up"], env=env,
                        capture_output=True, text=True, timeout=1800)
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        yield state, env_file(state / "fleet.env"), env
    finally:
        down = subprocess.run([str(ROOT / "scripts" / "fleet"), "down"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stderr


def test_both_gateways_route_to_the_engines_and_share_redis(fleet):
    state, urls, _ = fleet
    key = urls["FLEET_ADMIN_KEY"]
    body = {"model": "smollm2-135m", "temperature": 0, "max_tokens": 8,
            "messages": [{"role": "system", "content": "You answer in one word."},
                         {"role": "user", "content": "Say hello."}]}
    status, headers, first = call(urls["GATEWAY_1"] + "/v1/chat/completions", key, body)
    assert status == 200 and first["choices"][0]["message"]["content"]
    backend = headers["x-gatehouse-backend"]
    assert backend in (urls["ENGINE_1"] + "/v1", urls["ENGINE_2"] + "/v1"), headers
    # The other gateway: the same prefix goes to the same engine (the map is in Redis), and the
    # deterministic answer comes from the shared response cache.
    status, headers, second = call(urls["GATEWAY_2"] + "/v1/chat/completions", key, body)
    assert status == 200
    assert headers["x-cache"] == "HIT", headers
    assert second["choices"] == first["choices"]
    # Both engines serve.
    for engine in ("ENGINE_1", "ENGINE_2"):
        with urllib.request.urlopen(urls[engine] + "/readyz", timeout=10) as r:
            assert r.status == 200


def test_status_names_every_process(fleet):
    _, _, env = fleet
    out = subprocess.run([str(ROOT / "scripts" / "fleet"), "status"], env=env,
                         capture_output=True, text=True, check=True).stdout
    for name in ("redis", "qdrant", "engine-1", "engine-2", "gateway-1", "gateway-2"):
        assert f"{name}: running" in out, out
