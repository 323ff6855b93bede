"""Guardrails end to end: the official openai SDK, curl and the policy CLI against the real
binary, its default config and the shipped policies."""
import json
import subprocess

import openai
import pytest

from conftest import ROOT, _binary


@pytest.fixture()
def client(gateway):
    return openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)


def test_answers_carry_the_policy_header(client):
    raw = client.chat.completions.with_raw_response.create(
        model="smollm2-135m",
        messages=[{"role": "user", "content": "Say hi"}],
        max_tokens=4,
        temperature=0,
    )
    assert raw.headers["x-gatehouse-policy"].startswith("default; version=")
    assert raw.parse().choices[0].message.content is not None


def test_limit_violation_is_a_bad_request_with_a_stable_code(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=100000,
        )
    err = e.value.body
    assert err["code"] == "policy_violation"
    assert err["rule"] == "limits" and err["entity"] == "max_output_tokens"


def test_redacted_input_is_counted_in_a_header_with_curl(gateway):
    body = json.dumps({
        "model": "smollm2-135m",
        "max_tokens": 2,
        "messages": [{"role": "user", "content": "my key is AKIAIOSFODNN7EXAMPLE"}],
    })
    out = subprocess.run(
        ["curl", "-sS", "-D", "-", "-o", "/dev/null", "-H", "content-type: application/json",
         "-d", body, gateway + "/v1/chat/completions"],
        capture_output=True, text=True, check=True,
    ).stdout.lower()
    assert "x-gatehouse-policy-redactions: 1" in out, out


def run_cli(*args, stdin=None):
    return subprocess.run([str(_binary()), "policy", *args], cwd=ROOT, capture_output=True,
                          text=True, input=stdin)


def test_policy_check_and_test_pass_on_the_shipped_policies():
    r = run_cli("check")
    assert r.returncode == 0, r.stderr
    assert "policy `soc`" in r.stdout
    r = run_cli("test")
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 failed" in r.stdout


def test_policy_check_points_at_the_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nrules:\n  - id: r\n    kind: secrets\n    entities: [aws_access_key, passport]\n")
    r = run_cli("check", str(bad))
    assert r.returncode != 0
    assert f"{bad}:5:5: rules[0].entities:" in r.stderr, r.stderr


def test_policy_explain_json():
    r = run_cli("explain", "--json", "--policy", "policies/soc.yaml",
                "login from 203.0.113.7 by jdoe@corp.example")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["action"] == "redact"
    assert out["redacted"] == "login from [IP_1] by [EMAIL_1]"
    assert [(d["rule"], d["entity"], d["action"]) for d in out["decisions"]] == [
        ("pii", "ipv4", "redact"), ("pii", "email", "redact")]
    assert set(out["decisions"][0]) == {"rule", "kind", "entity", "action", "start", "end", "score", "detail"}
