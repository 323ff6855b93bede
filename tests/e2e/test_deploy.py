"""The deployment artefacts, checked offline: the Kubernetes manifests rendered with
`kubectl kustomize`, validated against the Kubernetes 1.30 OpenAPI schemas
(kubernetes-validate) and by checkov, as is deploy/Containerfile; the configs they ship are
accepted by `gatehouse config check`; what the manifests promise each other holds (grace
periods, probes, autoscaler queries, names)."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, _binary

K8S = ROOT / "deploy" / "kubernetes"
# checkov and kubernetes-validate live in a venv of their own (tests/deploy/requirements.txt).
VENV_BIN = Path(os.environ.get("GATEHOUSE_DEPLOY_TOOLS", ROOT / ".venv-deploy" / "bin"))
KUBERNETES_VERSION = "1.30"

# Each rendering a user can apply: the gateway tier alone, and the production overlays
# (engines and monitoring, scaled by KEDA or by an HPA on prometheus-adapter's metric).
RENDERINGS = {
    "base": K8S / "base",
    "production": K8S / "overlays" / "production",
    "adapter": K8S / "overlays" / "production-adapter",
}


def kustomize(path):
    out = subprocess.run(
        ["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout
    return out, [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """name -> (path of the rendered YAML, its objects)."""
    assert shutil.which("kubectl"), "kubectl (for `kubectl kustomize`) is not installed"
    out_dir = tmp_path_factory.mktemp("rendered")
    result = {}
    for name, path in RENDERINGS.items():
        text, objects = kustomize(path)
        file = out_dir / name / "rendered.yaml"
        file.parent.mkdir()
        file.write_text(text)
        result[name] = (file, objects)
    return result


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def one(objects, kind, name):
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


@pytest.mark.parametrize("name", ["base", "production", "adapter"])
def test_every_object_validates_against_the_kubernetes_schemas(rendered, name):
    file, objects = rendered[name]
    r = subprocess.run(
        [str(VENV_BIN / "kubernetes-validate"), "-k", KUBERNETES_VERSION, "--strict", str(file)],
        capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    passed = r.stdout.count(" passed for resource ")
    # Only the custom resources (KEDA, Prometheus Operator) have no built-in schema.
    custom = [o for o in objects if o["kind"] in ("ScaledObject", "ServiceMonitor")]
    assert passed == len(objects) - len(custom), r.stdout


def checkov(directory, framework):
    r = subprocess.run(
        [str(VENV_BIN / "checkov"), "-d", str(directory), "--framework", framework,
         "--skip-download", "--compact", "--quiet"],
        capture_output=True, text=True, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    return r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("name", ["production", "adapter"])
def test_checkov_passes_the_manifests(rendered, name):
    code, out = checkov(rendered[name][0].parent, "kubernetes")
    assert code == 0, out
    assert re.search(r"Passed checks: [1-9]\d*, Failed checks: 0", out), out


def test_checkov_passes_the_containerfile(tmp_path):
    # checkov recognises Dockerfiles by name; the content is the Containerfile's.
    shutil.copy(ROOT / "deploy" / "Containerfile", tmp_path / "Dockerfile")
    code, out = checkov(tmp_path, "dockerfile")
    assert code == 0, out
    assert re.search(r"Passed checks: [1-9]\d*, Failed checks: 0", out), out


def test_the_containerfile_runs_unprivileged_with_a_health_check():
    text = (ROOT / "deploy" / "Containerfile").read_text()
    assert re.search(r"^USER 10001", text, re.M)
    assert "HEALTHCHECK" in text and "/readyz" in text
    # Only /app/data is written: the manifests mount it and keep the root read-only.
    assert 'VOLUME ["/app/data"]' in text


def config_check(config, env):
    return subprocess.run(
        [str(_binary()), "config", "check", "--config", str(config)],
        capture_output=True, text=True, env={**os.environ, **env}, cwd=ROOT,
    )


def test_the_shipped_configs_are_valid(rendered, tmp_path):
    """The ConfigMaps' configs, laid out as the pods mount them (/app/config, /app/policies,
    /app/prompts, /app/models), pass `gatehouse config check`."""
    _, objects = rendered["production"]
    app = tmp_path / "app"
    for name, mount in [("gatehouse-policies", "policies"), ("gatehouse-prompts", "prompts")]:
        cm = one(objects, "ConfigMap", name)
        items = one(objects, "Deployment", "gatehouse-gateway")["spec"]["template"]["spec"]["volumes"]
        paths = {i["key"]: i["path"] for v in items if v["name"] == mount
                 for i in v["configMap"]["items"]}
        assert set(paths) == set(cm["data"]), f"{name}: every key is mounted"
        for key, text in cm["data"].items():
            f = app / mount / paths[key]
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(text)
    (app / "models").symlink_to(ROOT / "models")
    (app / "config").mkdir()
    env = {"REDIS_URL": "redis://127.0.0.1:6379", "GATEHOUSE_ADMIN_KEY": "k" * 32,
           "GATEHOUSE_AUDIT_KEY": "h" * 64}
    for cm_prefix, key in [("gatehouse-config", "gatehouse.yaml"),
                           ("gatehouse-engine-config", "engine.yaml")]:
        cm = [o for o in by_kind(objects, "ConfigMap")
              if o["metadata"]["name"].startswith(cm_prefix + "-")]
        assert len(cm) == 1, cm_prefix
        config = app / "config" / key
        config.write_text(cm[0]["data"][key])
        r = config_check(config, env)
        assert r.returncode == 0, f"{key}: {r.stdout}{r.stderr}"


def test_the_container_config_is_valid_and_keeps_admin_closed(tmp_path):
    """The image's config, where the Containerfile puts it beside the repository's policies,
    prompts and models, passes `gatehouse config check`; it allows serving without keys on
    the container's addresses only explicitly, and leaves the admin endpoints closed."""
    text = (ROOT / "deploy" / "Containerfile").read_text()
    assert "COPY --from=build /src/deploy/container/gatehouse.yaml /app/config/gatehouse.yaml" in text
    app = tmp_path / "app"
    app.mkdir()
    for d in ["models", "policies", "prompts"]:
        (app / d).symlink_to(ROOT / d)
    (app / "config").mkdir()
    config = app / "config" / "gatehouse.yaml"
    source = (ROOT / "deploy" / "container" / "gatehouse.yaml").read_text()
    config.write_text(source)
    r = config_check(config, {})
    assert r.returncode == 0, f"{r.stdout}{r.stderr}"
    assert "admin endpoints closed" in r.stdout and "any address allowed" in r.stdout, r.stdout
    # Without the explicit opt-in the same config is refused, naming the listen address.
    config.write_text(source.replace("auth:\n  none:\n    allow_remote: true\n", "auth: none\n"))
    r = config_check(config, {})
    assert r.returncode != 0 and "server.listen" in r.stderr + r.stdout, f"{r.stdout}{r.stderr}"


def seconds_of(value):
    return int(value) if isinstance(value, int) else int(str(value).rstrip("s"))


def test_pods_drain_before_they_are_killed(rendered):
    """terminationGracePeriodSeconds covers the preStop delay plus the config's
    shutdown_grace_secs; probes are /healthz (liveness) and /readyz (readiness)."""
    _, objects = rendered["production"]
    configs = {o["metadata"]["name"].rsplit("-", 1)[0]: yaml.safe_load(next(iter(o["data"].values())))
               for o in by_kind(objects, "ConfigMap") if "config" in o["metadata"]["name"]}
    for kind, name, config in [("Deployment", "gatehouse-gateway", "gatehouse-config"),
                               ("StatefulSet", "gatehouse-engine", "gatehouse-engine-config")]:
        pod = one(objects, kind, name)["spec"]["template"]["spec"]
        c = pod["containers"][0]
        pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
        grace = configs[config]["server"]["shutdown_grace_secs"]
        assert pod["terminationGracePeriodSeconds"] >= pre_stop + grace, name
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
        assert pod["securityContext"]["runAsNonRoot"]
    engine = one(objects, "StatefulSet", "gatehouse-engine")["spec"]["template"]["spec"]
    assert engine["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_autoscalers_point_at_real_targets_and_recorded_series(rendered):
    rules = yaml.safe_load((ROOT / "deploy/prometheus/gatehouse-rules.yml").read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    _, prod = rendered["production"]
    config = yaml.safe_load(next(iter(
        o for o in by_kind(prod, "ConfigMap") if o["metadata"]["name"].startswith("gatehouse-config-")
    ))["data"]["gatehouse.yaml"])
    scaled = one(prod, "ScaledObject", "gatehouse-engine")
    target = scaled["spec"]["scaleTargetRef"]
    one(prod, target["kind"], target["name"])
    for trigger in scaled["spec"]["triggers"]:
        names = set(re.findall(r"gatehouse:[a-z0-9_:]+", trigger["metadata"]["query"]))
        assert names and names <= recorded, trigger
    # The gateways know every engine replica the autoscaler may start.
    urls = config["models"][0]["base_urls"]
    assert len(urls) == scaled["spec"]["maxReplicaCount"]
    assert urls == [f"http://gatehouse-engine-{i}.gatehouse-engine:8080/v1"
                    for i in range(len(urls))]
    _, adapter = rendered["adapter"]
    hpa = one(adapter, "HorizontalPodAutoscaler", "gatehouse-engine")
    one(adapter, hpa["spec"]["scaleTargetRef"]["kind"], hpa["spec"]["scaleTargetRef"]["name"])
    gw = one(prod, "HorizontalPodAutoscaler", "gatehouse-gateway")
    assert gw["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_services_and_policies_match_the_pods(rendered):
    _, objects = rendered["production"]
    for svc in by_kind(objects, "Service"):
        selector = svc["spec"]["selector"]
        pods = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")
                and selector.items() <= o["spec"]["template"]["metadata"]["labels"].items()]
        assert pods, f"service {svc['metadata']['name']} selects no pods"
        ports = {p["name"] for p in pods[0]["spec"]["template"]["spec"]["containers"][0]["ports"]}
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in ports, (svc["metadata"]["name"], p)
    for pdb in by_kind(objects, "PodDisruptionBudget"):
        sel = pdb["spec"]["selector"]["matchLabels"]
        assert any(o["kind"] in ("Deployment", "StatefulSet")
                   and sel.items() <= o["spec"]["template"]["metadata"]["labels"].items()
                   for o in objects), pdb["metadata"]["name"]
    # Policies and prompts keep their names, so the kubelet updates them in place and the
    # gateways hot-reload them (gateway/tests/policy.rs replays the kubelet's symlink swap).
    names = {o["metadata"]["name"] for o in by_kind(objects, "ConfigMap")}
    assert {"gatehouse-policies", "gatehouse-prompts"} <= names
