"""The README's curl and Python examples work as written (against a gateway on port 0)."""
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _block(lang, marker):
    for body in re.findall(rf"```{lang}\n(.*?)```", README, re.S):
        if marker in body:
            return body
    raise AssertionError(f"no ```{lang} block containing {marker!r} in README.md")


def test_curl_example(gateway):
    cmd = _block("sh", "curl").replace("http://127.0.0.1:8080", gateway)
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert '"object":"chat.completion"' in out.stdout.replace(" ", "")


def test_python_example(gateway):
    code = _block("python", "OpenAI(").replace("http://127.0.0.1:8080", gateway)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def test_template_example(gateway):
    cmd = _block("sh", "template:soc-triage").replace("http://127.0.0.1:8080", gateway)
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    answer = json.loads(json.loads(out.stdout)["choices"][0]["message"]["content"])
    assert answer["severity"] in ("info", "low", "medium", "high", "critical")
    assert isinstance(answer["mitre_attack"], list)
