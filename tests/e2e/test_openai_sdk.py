"""The official openai Python SDK against a running gatehouse."""
import openai
import pytest
from openai import OpenAI

MODEL = "smollm2-135m"


@pytest.fixture
def client(gateway):
    return OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)


def test_non_streamed(client):
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        temperature=0,
        max_tokens=16,
    )
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content.strip()
    assert r.usage.completion_tokens <= 16
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streamed_matches_non_streamed(client):
    kwargs = dict(model=MODEL, messages=[{"role": "user", "content": "Name two planets."}], temperature=0, max_tokens=24)
    whole = client.chat.completions.create(**kwargs)
    stream = client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs)
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert text == whole.choices[0].message.content
    assert finish == whole.choices[0].finish_reason
    assert usage.completion_tokens == whole.usage.completion_tokens


def test_models_list(client):
    assert MODEL in [m.id for m in client.models.list()]


def test_unknown_model_raises_not_found(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "model_not_found"


@pytest.mark.parametrize("kwargs,param", [
    (dict(logprobs=True), "logprobs"),
    (dict(logprobs=True, top_logprobs=2), "logprobs"),
    (dict(presence_penalty=0.5), "presence_penalty"),
])
def test_unserved_parameters_are_refused_not_ignored(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4, **kwargs
        )
    assert e.value.code == "unsupported_parameter"
    assert e.value.param == param


def test_many_concurrent_clients_get_their_own_answers(client):
    """Requests decoded together in one batch answer as they do alone."""
    from concurrent.futures import ThreadPoolExecutor

    prompts = ["Name three colours.", "Name three fruits.", "Describe a cat in one sentence.",
               "What is two plus two?", "Say hello in Spanish."]

    def ask(p):
        r = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": p}], temperature=0, max_tokens=20
        )
        return r.choices[0].message.content

    alone = [ask(p) for p in prompts]
    with ThreadPoolExecutor(len(prompts)) as pool:
        together = list(pool.map(ask, prompts))
    assert together == alone


def test_embeddings(client):
    r = client.embeddings.create(
        model="all-minilm-l6-v2",
        input=["How do I reset my password?", "I forgot my password.", "Flour and sugar."],
    )
    vecs = [d.embedding for d in r.data]
    assert [d.index for d in r.data] == [0, 1, 2]
    assert all(len(v) == 384 for v in vecs)
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))
    assert abs(dot(vecs[0], vecs[0]) - 1) < 1e-4
    assert dot(vecs[0], vecs[1]) > dot(vecs[0], vecs[2])
    assert r.usage.prompt_tokens == r.usage.total_tokens > 0
