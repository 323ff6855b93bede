"""Starts the real `gatehouse` binary on port 0 with the default config for the e2e tests."""
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _binary():
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    path = Path(os.environ.get("GATEHOUSE_BIN", Path(target) / "debug" / "gatehouse"))
    assert path.is_file(), f"{path} missing: build it first (scripts/test does)"
    return path


def start(config, env, extra_args=()):
    """Runs `gatehouse serve --config CONFIG` on port 0 with `env`; returns (process, base URL)
    once /readyz says ready. With `--grpc-listen`, the next stdout line names the gRPC
    address."""
    proc = subprocess.Popen(
        [str(_binary()), "serve", "--config", str(config), "--listen", "127.0.0.1:0",
         *extra_args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = proc.stdout.readline().strip()
    prefix = "gatehouse listening on "
    assert line.startswith(prefix), f"unexpected first line {line!r}"
    base = line[len(prefix):]
    deadline = time.time() + 180
    while True:
        try:
            with urllib.request.urlopen(base + "/readyz") as r:
                if json.load(r)["status"] == "ready":
                    break
        except Exception:
            pass
        assert time.time() < deadline, "gateway not ready"
        time.sleep(0.2)
    return proc, base


@pytest.fixture(scope="session")
def gateway(tmp_path_factory):
    # A data dir of its own: the default one may be held by a gateway the developer runs.
    env = dict(os.environ, GATEHOUSE__RAG__DATA_DIR=str(tmp_path_factory.mktemp("rag")),
               GATEHOUSE__AUDIT__DIR=str(tmp_path_factory.mktemp("audit")))
    proc, base = start("config/gatehouse.yaml", env)
    yield base
    proc.terminate()
    assert proc.wait(timeout=60) == 0
