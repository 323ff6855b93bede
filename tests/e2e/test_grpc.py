"""The gRPC API with the official Python `grpcio` stack: stubs generated from
proto/gatehouse/v1/inference.proto by `grpcio-tools`, server reflection read as grpcurl reads
it (`grpcio-reflection`: list the services, fetch the descriptors, call a method with
messages built from them alone), the standard health service (`grpcio-health-checking`) and
error details (`grpcio-status`), against the real binary and SmolLM2."""
import importlib
import os
import sys

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_status import rpc_status
from grpc_tools import protoc

from conftest import ROOT, start

MODEL = "smollm2-135m"


@pytest.fixture(scope="module")
def grpc_addr(tmp_path_factory):
    env = dict(os.environ,
               GATEHOUSE__RAG__DATA_DIR=str(tmp_path_factory.mktemp("rag")),
               GATEHOUSE__AUDIT__DIR=str(tmp_path_factory.mktemp("audit")))
    proc, _ = start("config/gatehouse.yaml", env, ["--grpc-listen", "127.0.0.1:0"])
    line = proc.stdout.readline().strip()
    prefix = "gatehouse gRPC listening on "
    assert line.startswith(prefix), f"unexpected second line {line!r}"
    yield line[len(prefix):]
    proc.terminate()
    assert proc.wait(timeout=60) == 0


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    """inference_pb2 and inference_pb2_grpc, generated here from the repository's proto."""
    out = tmp_path_factory.mktemp("stubs")
    proto_dir = ROOT / "proto"
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    rc = protoc.main([
        "grpc_tools.protoc", f"-I{proto_dir}", f"-I{include}",
        f"--python_out={out}", f"--grpc_python_out={out}",
        str(proto_dir / "gatehouse/v1/inference.proto"),
    ])
    assert rc == 0
    sys.path.insert(0, str(out))
    try:
        yield (importlib.import_module("gatehouse.v1.inference_pb2"),
               importlib.import_module("gatehouse.v1.inference_pb2_grpc"))
    finally:
        sys.path.remove(str(out))


def ask(pb, text, max_tokens=16):
    return pb.ChatRequest(model=MODEL, messages=[pb.Message(role="user", content=text)],
                          max_tokens=max_tokens, temperature=0)


def test_generated_stubs_chat_stream_and_list(grpc_addr, stubs):
    pb, pb_grpc = stubs
    with grpc.insecure_channel(grpc_addr) as ch:
        inference = pb_grpc.InferenceStub(ch)
        # Long enough for the output guard's hold-back to release it in several deltas.
        prompt = "Count from 1 to 60, one number per line."
        whole, call = inference.Chat.with_call(ask(pb, prompt, 96))
        assert whole.id.startswith("chatcmpl-")
        assert whole.content.strip()
        assert whole.finish_reason in ("stop", "length")
        assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens
        assert any(k == "x-request-id" for k, _ in call.initial_metadata())
        # Not from the response cache (the default config has one), as over HTTP.
        parts = list(inference.ChatStream(ask(pb, prompt, 96),
                                          metadata=(("cache-control", "no-cache"),)))
        assert len(parts) > 2
        assert "".join(p.delta for p in parts) == whole.content
        assert [p.finish_reason for p in parts[:-1]] == [""] * (len(parts) - 1)
        assert parts[-1].finish_reason == whole.finish_reason
        assert parts[-1].usage == whole.usage
        models = inference.ListModels(pb.ListModelsRequest()).models
        assert [(m.id, m.kind, m.state) for m in models][:1] == [(MODEL, "chat", "ready")]


def test_errors_carry_error_info(grpc_addr, stubs):
    pb, pb_grpc = stubs
    with grpc.insecure_channel(grpc_addr) as ch:
        inference = pb_grpc.InferenceStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            inference.Chat(pb.ChatRequest(model="no-such-model",
                                          messages=[pb.Message(role="user", content="hi")]))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        status = rpc_status.from_call(err.value)
        from google.rpc import error_details_pb2
        info = error_details_pb2.ErrorInfo()
        assert status.details[0].Unpack(info)
        assert (info.reason, info.domain, info.metadata["http_status"]) == (
            "model_not_found", "gatehouse", "404")


def test_reflection_alone_is_enough_to_call(grpc_addr):
    """What grpcurl does: no proto, only the server's reflection."""
    with grpc.insecure_channel(grpc_addr) as ch:
        db = ProtoReflectionDescriptorDatabase(ch)
        services = set(db.get_services())
        assert {"gatehouse.v1.Inference", "grpc.health.v1.Health"} <= services
        pool = descriptor_pool.DescriptorPool(db)
        service = pool.FindServiceByName("gatehouse.v1.Inference")
        assert [m.name for m in service.methods] == ["Chat", "ChatStream", "Embed", "ListModels"]
        method = service.FindMethodByName("Chat")
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        request = json_format.ParseDict(
            {"model": MODEL, "messages": [{"role": "user", "content": "Say hi."}],
             "maxTokens": 8, "temperature": 0}, request_cls())
        call = ch.unary_unary("/gatehouse.v1.Inference/Chat",
                              request_serializer=lambda m: m.SerializeToString(),
                              response_deserializer=response_cls.FromString)
        answer = json_format.MessageToDict(call(request))
        assert answer["model"] == MODEL
        assert answer["usage"]["completionTokens"] >= 1


def test_health_service(grpc_addr):
    with grpc.insecure_channel(grpc_addr) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("", "gatehouse.v1.Inference", MODEL):
            r = health.Check(health_pb2.HealthCheckRequest(service=service))
            assert r.status == health_pb2.HealthCheckResponse.SERVING, service
