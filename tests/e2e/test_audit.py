"""The audit log end to end: requests from the official openai SDK, the review page in a
real headless Chromium (Debian's chromium, driven through chromedriver by Selenium), and the
`gatehouse audit` CLI on the same log. Screenshots are saved as test artifacts."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import openai
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import ROOT, _binary, start

ARTIFACTS = Path(os.environ.get("GATEHOUSE_ARTIFACTS", ROOT / "tests/e2e/artifacts"))
HMAC = "e2e-audit-hmac-key-0123456789abcdef"

POLICY = (ROOT / "tests/fixtures/audited-policy.yaml").read_text()


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("audit")
    (tmp / "policies").mkdir()
    (tmp / "policies" / "audited.yaml").write_text(POLICY)
    cfg = tmp / "gatehouse.yaml"
    cfg.write_text(
        f"""
auth:
  keys:
    - {{id: app, tenant: acme, key_env: E2E_AUDIT_APP}}
    - {{id: reviewer, tenant: ops, role: admin, key_env: E2E_AUDIT_ADMIN}}
tenants:
  "*": {{}}
policies:
  dir: {tmp / "policies"}
  watch: false
audit:
  dir: {tmp / "log"}
  hmac_key_env: E2E_AUDIT_HMAC
  checkpoint_every: 3
models:
  - id: smollm2-135m
    backend: local
    path: {ROOT / "models/smollm2-135m-instruct-q4_1.gguf"}
    dtype: f32
"""
    )
    env = dict(os.environ, E2E_AUDIT_APP="e2e-app", E2E_AUDIT_ADMIN="e2e-admin",
               E2E_AUDIT_HMAC=HMAC)
    proc, base = start(cfg, env)
    client = openai.OpenAI(base_url=base + "/v1", api_key="e2e-app", max_retries=0)
    client.chat.completions.create(
        model="smollm2-135m", temperature=0, max_tokens=8,
        messages=[{"role": "user", "content": "Mail ana@example.org a haiku."}])
    with pytest.raises(openai.PermissionDeniedError) as e:
        client.chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": "What about bluebird?"}])
    assert e.value.code == "policy_violation"
    yield base, cfg, env, tmp / "log"
    proc.terminate()
    assert proc.wait(timeout=60) == 0


def _browser():
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    assert chromium and driver, (
        "Debian's chromium and chromium-driver are needed (scripts/test installs them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--window-size=1400,1000", "--disable-gpu"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(driver), options=opts)


def test_review_page_in_headless_chromium(audited):
    base, _, _, _ = audited
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser = _browser()
    wait = WebDriverWait(browser, 20)
    try:
        # Not signed in: the page sends the browser to the login form.
        browser.get(base + "/admin/audit")
        wait.until(ec.presence_of_element_located((By.ID, "key")))
        assert browser.current_url.endswith("/admin/login")
        browser.find_element(By.ID, "key").send_keys("e2e-app")
        browser.find_element(By.ID, "login").click()
        assert "not an admin key" in wait.until(
            ec.presence_of_element_located((By.ID, "login-error"))).text
        browser.find_element(By.ID, "key").send_keys("e2e-admin")
        browser.find_element(By.ID, "login").click()

        # The log, with the chain verified by the server.
        table = wait.until(ec.presence_of_element_located((By.ID, "records")))
        chain = browser.find_element(By.ID, "chain").text
        assert chain.startswith("Chain verified"), chain
        assert "signed checkpoints verified" in chain, chain
        rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert len(rows) >= 2
        browser.save_screenshot(str(ARTIFACTS / "audit-log.png"))

        # Filter: blocked requests only.
        Select(browser.find_element(By.NAME, "action")).select_by_visible_text("block")
        browser.find_element(By.ID, "apply").click()
        wait.until(ec.url_contains("action=block"))
        rows = browser.find_elements(By.CSS_SELECTOR, "#records tbody tr")
        assert len(rows) == 1, [r.text for r in rows]
        assert "no-codeword (block)" in rows[0].text
        assert "blocked" in rows[0].text
        browser.save_screenshot(str(ARTIFACTS / "audit-filtered.png"))

        # Open it: its decision, with the rule, stage and span, never the matched text.
        rows[0].find_element(By.CSS_SELECTOR, "a.open").click()
        decisions = wait.until(ec.presence_of_element_located((By.ID, "decisions")))
        text = decisions.text
        assert "no-codeword" in text and "input" in text and "block" in text, text
        fields = browser.find_element(By.ID, "fields").text
        assert "policy_violation" in fields and "acme" in fields and "app" in fields, fields
        browser.save_screenshot(str(ARTIFACTS / "audit-record.png"))
    finally:
        browser.quit()
    assert (ARTIFACTS / "audit-record.png").stat().st_size > 10_000


def test_cli_on_the_same_log(audited):
    _, cfg, env, _ = audited

    def gh(*args):
        return subprocess.run([str(_binary()), "audit", *args, "--config", str(cfg)],
                              cwd=ROOT, env=env, capture_output=True, text=True)

    v = gh("verify")
    assert v.returncode == 0, v.stdout + v.stderr
    assert v.stdout.startswith("ok: "), v.stdout
    s = gh("search", "--rule", "pii-email", "--json")
    assert s.returncode == 0, s.stderr
    recs = [json.loads(line) for line in s.stdout.splitlines()]
    assert len(recs) == 1
    u = recs[0]["unmapped"]
    assert u["prompt"][0]["content"] == "Mail [EMAIL_1] a haiku."
    assert "ana@example.org" not in s.stdout
    assert u["tokens"]["completion"] == 8
    st = gh("stats")
    assert "no-codeword/block" in st.stdout, st.stdout
