"""response_format, tools and templates through the official openai SDK and curl."""
import json
import subprocess

import pytest
from openai import OpenAI

MODEL = "smollm2-135m"

ALERT_SCHEMA = {
    "type": "object",
    "properties": {
        "verdict": {"enum": ["benign", "suspicious", "malicious"]},
        "score": {"type": "integer", "minimum": 0, "maximum": 100},
        "reasons": {"type": "array", "items": {"type": "string", "maxLength": 40}, "minItems": 1, "maxItems": 3},
    },
    "required": ["verdict", "score", "reasons"],
    "additionalProperties": False,
}

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 30}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture
def client(gateway):
    return OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)


def test_response_format_json_schema(client):
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Is 'Failed password for root from 203.0.113.9' suspicious?"}],
        temperature=0,
        max_tokens=200,
        response_format={"type": "json_schema", "json_schema": {"name": "alert", "strict": True, "schema": ALERT_SCHEMA}},
    )
    value = json.loads(r.choices[0].message.content)
    assert value["verdict"] in ("benign", "suspicious", "malicious")
    assert 0 <= value["score"] <= 100
    assert 1 <= len(value["reasons"]) <= 3
    assert set(value) == {"verdict", "score", "reasons"}


def test_streamed_json_object(client):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Return a JSON object with the name and age of a person."}],
        temperature=0,
        max_tokens=120,
        stream=True,
        response_format={"type": "json_object"},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert isinstance(json.loads(text), dict)


def test_tool_call_round_trip(client):
    messages = [{"role": "user", "content": "What's the weather in Oslo?"}]
    r = client.chat.completions.create(
        model=MODEL, messages=messages, tools=[WEATHER], tool_choice="required", temperature=0, max_tokens=60
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)

    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21, "sky": "clear"}'})
    r = client.chat.completions.create(
        model=MODEL, messages=messages, tools=[WEATHER], tool_choice="none", temperature=0, max_tokens=30
    )
    assert r.choices[0].message.content
    assert not r.choices[0].message.tool_calls


def test_streamed_tool_call_deltas(client):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Lima?"}],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0,
        max_tokens=60,
        stream=True,
    )
    name, args, finish, call_id = "", "", None, None
    for chunk in stream:
        if not chunk.choices:
            continue
        for d in chunk.choices[0].delta.tool_calls or []:
            call_id = d.id or call_id
            name += (d.function.name or "") if d.function else ""
            args += (d.function.arguments or "") if d.function else ""
        finish = chunk.choices[0].finish_reason or finish
    assert name == "get_weather" and call_id.startswith("call_")
    assert "city" in json.loads(args)
    assert finish == "tool_calls"


def test_template_with_variables_and_headers(client):
    raw = client.chat.completions.with_raw_response.create(
        model="template:soc-triage",
        messages=[],
        extra_body={"variables": {"record": "EventID=4625 An account failed to log on. TargetUserName=admin IpAddress=203.0.113.7"}},
    )
    assert raw.headers["x-gatehouse-template"] == "soc-triage@1"
    value = json.loads(raw.parse().choices[0].message.content)
    assert value["severity"] in ("info", "low", "medium", "high", "critical")
    assert isinstance(value["indicators"], list)


def test_bad_template_variable_is_a_400_naming_the_field(client, gateway):
    out = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", "-H", "content-type: application/json",
         "-d", json.dumps({"model": "template:soc-triage", "variables": {"record": ""}}),
         gateway + "/v1/chat/completions"],
        capture_output=True, text=True, check=True,
    )
    body, status = out.stdout.rsplit("\n", 1)
    assert status == "400"
    err = json.loads(body)["error"]
    assert err["code"] == "invalid_template_variables"
    assert err["errors"][0].startswith("variables.record: ")
