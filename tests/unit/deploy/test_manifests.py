"""deploy/compose and deploy/k8s: valid, safe by default, and consistent with the settings
the code reads (every TONGDAI_ variable documented in deploy/ENVIRONMENT.md; what a
deployment must set, set; nothing set that no code reads; secrets never literal)."""
from __future__ import annotations

import ast
import dataclasses
import importlib
import re
import shutil
import subprocess
import tomllib
import typing
from pathlib import Path

import pytest
import yaml

from routing.contract.environ import env_name

pytestmark = pytest.mark.fsconf

REPO = Path(__file__).resolve().parents[3]
COMPOSE = REPO / "deploy" / "compose" / "compose.yaml"
K8S = REPO / "deploy" / "k8s"
ENVIRONMENT = (REPO / "deploy" / "ENVIRONMENT.md").read_text()
FS_START = (REPO / "fs-conf" / "bin" / "tongdai-freeswitch").read_text()

# Which compose services / Kubernetes containers run each deployable's settings. A new
# settings module makes the test fail until it is placed here (and deployed).
DEPLOYED = {
    "esl_bridge.settings": {"compose": ["bridge"], "k8s": [("StatefulSet", "tongdai-freeswitch", "bridge")]},
    "streams.settings": {"compose": ["worker"], "k8s": [("Deployment", "tongdai-worker", "worker")]},
    "analytics.settings": {"compose": ["sink", "migrate"],
                           "k8s": [("Deployment", "tongdai-sink", "sink"), ("Job", "tongdai-migrate", "migrate")]},
    "api.settings": {"compose": ["api"], "k8s": [("Deployment", "tongdai-api", "api")]},
    "deploy.local.settings": None,  # the local development stack: never deployed
}
SECRET = re.compile(r"PASSWORD|SECRET|TOKEN_SECRET")


def settings_modules() -> dict[str, type]:
    """Every deployable's settings class: found by its `settings.py`, typed by `load`."""
    found = {}
    for path in sorted([*REPO.glob("*/settings.py"), *REPO.glob("deploy/*/settings.py")]):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        module = importlib.import_module(name)
        cls = typing.get_type_hints(module.load)["return"]
        assert dataclasses.is_dataclass(cls), name
        found[name] = cls
    return found


SETTINGS = settings_modules()


def variables(cls: type) -> dict[str, object]:
    return {env_name(f.name): f.default for f in dataclasses.fields(cls)}


def must_set(cls: type) -> set[str]:
    """What a container cannot run well without: loopback or checkout-path defaults,
    secrets, and the bridge's name."""
    repo = str(REPO)
    out = set()
    for f in dataclasses.fields(cls):
        default = ",".join(f.default) if isinstance(f.default, tuple) else str(f.default)
        if "127.0.0.1" in default or repo in default or SECRET.search(f.name.upper()) \
                or f.name == "bridge_name":
            out.add(env_name(f.name))
    return out


ALL_CODE_VARS = {name for cls in SETTINGS.values() for name in variables(cls)}
FS_VARS = set(re.findall(r"\bTONGDAI_[A-Z0-9_]+", FS_START)) - {"TONGDAI_"}
DOCUMENTED = set(re.findall(r"`(TONGDAI_[A-Z0-9_]+)`", ENVIRONMENT))


def test_settings_are_discovered():
    assert {"esl_bridge.settings", "streams.settings", "analytics.settings",
            "deploy.local.settings"} <= set(SETTINGS)


@pytest.mark.parametrize("module", sorted(SETTINGS))
def test_every_settings_module_is_placed_in_the_deployments(module):
    assert module in DEPLOYED, f"{module}: new deployable; add it to compose, k8s and DEPLOYED"


@pytest.mark.parametrize("module", sorted(SETTINGS))
def test_every_variable_the_code_reads_is_documented(module):
    missing = set(variables(SETTINGS[module])) - DOCUMENTED
    assert not missing, f"add to deploy/ENVIRONMENT.md: {sorted(missing)}"


def environ_reads() -> set[str]:
    """TONGDAI_ names the product's code reads from the environment directly
    (`os.environ[...]`, `os.environ.get(...)`, `os.getenv(...)`), outside settings.py."""
    names = set()
    for package in ("routing", "esl_bridge", "streams", "analytics", "api", "deploy"):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                key = None
                if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
                    key = node.slice
                elif isinstance(node, ast.Call) and ast.unparse(node.func) in (
                        "os.environ.get", "os.getenv") and node.args:
                    key = node.args[0]
                if isinstance(key, ast.Constant) and str(key.value).startswith("TONGDAI_"):
                    names.add(key.value)
    return names


def test_variables_read_outside_the_settings_are_documented():
    assert not environ_reads() - DOCUMENTED, sorted(environ_reads() - DOCUMENTED)


def test_every_freeswitch_container_variable_is_documented():
    assert FS_VARS and not FS_VARS - DOCUMENTED, sorted(FS_VARS - DOCUMENTED)


# ------------------------------------------------------------------------- compose
@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def service_env(compose: dict, name: str) -> dict[str, str]:
    env = compose["services"][name].get("environment") or {}
    assert isinstance(env, dict), f"{name}: use the mapping form of environment"
    return {k: str(v) for k, v in env.items()}


def test_compose_has_the_whole_product(compose):
    assert {"freeswitch", "kafka", "clickhouse", "bridge", "worker", "sink", "api",
            "migrate", "topics"} <= set(compose["services"])


@pytest.mark.parametrize("module", sorted(m for m, d in DEPLOYED.items() if d))
def test_compose_sets_what_each_deployable_needs(compose, module):
    for service in DEPLOYED[module]["compose"]:
        missing = must_set(SETTINGS[module]) - set(service_env(compose, service))
        assert not missing, f"compose service {service}: set {sorted(missing)}"


def test_compose_sets_only_variables_something_reads(compose):
    for name, service in compose["services"].items():
        for var in (service.get("environment") or {}):
            if var.startswith("TONGDAI_"):
                assert var in ALL_CODE_VARS | FS_VARS, f"{name}: {var} is read by nothing"


def test_compose_secrets_come_from_the_env_file(compose):
    for name in compose["services"]:
        for var, value in service_env(compose, name).items():
            if SECRET.search(var) or var == "TONGDAI_FREESWITCH":
                secret_part = value.rsplit(":", 1)[-1] if var == "TONGDAI_FREESWITCH" else value
                assert re.search(r"\$\{TONGDAI_[A-Z_]+:\?[^}]*\}$", value), (name, var)
                assert secret_part.endswith("}"), (name, var)
    text = COMPOSE.read_text()
    assert "ClueCon" not in text
    env_example = (COMPOSE.parent / ".env.example").read_text()
    for line in env_example.splitlines():
        if re.match(r"TONGDAI_\w*(PASSWORD|SECRET)\w*=", line):
            assert line.endswith("="), f"no secret values in .env.example: {line}"
    assert ".env" in (COMPOSE.parent / ".gitignore").read_text().split()


def test_compose_publishes_on_loopback_only(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports") or []:
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"
        assert service.get("network_mode") != "host", name


def test_compose_health_checks_and_volumes(compose):
    services = compose["services"]
    for name, service in services.items():
        if service.get("restart") != "no":  # one-shot jobs (topics, migrate) excepted
            assert service.get("healthcheck", {}).get("test"), f"{name}: no health check"
            assert service.get("restart") == "unless-stopped", name
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in services
            if cond["condition"] == "service_healthy":
                assert services[dep].get("healthcheck"), dep
    for name, path in [("kafka", "/var/lib/kafka/data"), ("clickhouse", "/var/lib/clickhouse"),
                       ("freeswitch", "/var/lib/freeswitch/recordings"),
                       ("bridge", "/var/lib/tongdai/bridge")]:
        mounts = [v.split(":") for v in services[name]["volumes"]]
        assert any(m[1] == path and m[0] in compose["volumes"] for m in mounts), name


def test_compose_creates_the_topics_before_anything_uses_them(compose):
    services = compose["services"]
    assert "ensure_topics('kafka:9092', 8)" in " ".join(services["topics"]["entrypoint"])
    assert service_env(compose, "worker")["TONGDAI_TOPIC_PARTITIONS"] == "8"
    for name in ("api", "worker", "sink", "bridge"):
        assert services[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_compose_kafka_runs_in_kraft_mode(compose):
    env = service_env(compose, "kafka")
    assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]
    assert not any("ZOOKEEPER" in k for k in env)


def test_compose_images_are_pinned(compose):
    for name, service in compose["services"].items():
        image = service.get("image", "")
        assert image and not image.endswith(":latest") and ":" in image, name


def test_compose_freeswitch_runs_fs_conf_with_the_bridges_network(compose):
    fs = service_env(compose, "freeswitch")
    bridge = service_env(compose, "bridge")
    host, port, _ = bridge["TONGDAI_FREESWITCH"].split(":", 2)
    assert host == fs["TONGDAI_FS_ESL_LISTEN_IP"] and port == "8021"
    subnet = compose["networks"]["tongdai"]["ipam"]["config"][0]["subnet"]
    assert fs["TONGDAI_FS_ESL_ALLOW_CIDR"] == subnet
    assert fs["TONGDAI_FS_API_URL"] == "http://api:8080"
    dockerfile = (COMPOSE.parent / "freeswitch.Dockerfile").read_text()
    assert "COPY fs-conf /opt/tongdai/fs-conf" in dockerfile
    assert 'ENTRYPOINT ["/opt/tongdai/fs-conf/bin/tongdai-freeswitch"]' in dockerfile
    rtp = [p for p in compose["services"]["freeswitch"]["ports"] if "16384" in p][0]
    assert rtp.split(":")[1] == f"{fs['TONGDAI_FS_RTP_START']}-{fs['TONGDAI_FS_RTP_END']}"


def test_the_image_holds_every_package(compose):
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    dockerfile = (COMPOSE.parent / "Dockerfile").read_text()
    for pattern in packages:
        assert f"COPY {pattern.rstrip('*')} " in dockerfile, pattern


# ---------------------------------------------------------------------- Kubernetes
def k8s_docs() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                doc["__file__"] = path.name
                docs.append(doc)
    return docs


DOCS = k8s_docs()
WORKLOADS = [d for d in DOCS if d["kind"] in ("Deployment", "StatefulSet", "Job")]


def find(kind: str, name: str) -> dict:
    return next(d for d in DOCS if d["kind"] == kind and d["metadata"]["name"] == name)


def containers(doc: dict) -> list[dict]:
    return doc["spec"]["template"]["spec"]["containers"]


def container(kind: str, name: str, cname: str) -> dict:
    return next(c for c in containers(find(kind, name)) if c["name"] == cname)


def config_map() -> dict[str, str]:
    return find("ConfigMap", "tongdai-config")["data"]


def container_env(c: dict) -> dict[str, dict]:
    env = {e["name"]: e for e in c.get("env", [])}
    for source in c.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        for key, value in find("ConfigMap", ref)["data"].items():
            env.setdefault(key, {"name": key, "value": value})
    return env


def test_k8s_documents_are_valid_objects():
    assert DOCS
    for d in DOCS:
        if d["kind"] == "Kustomization":
            continue
        assert d.get("apiVersion") and d.get("metadata", {}).get("name"), d["__file__"]
    kustomization = next(d for d in DOCS if d["kind"] == "Kustomization")
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_k8s_selectors_match_their_pods():
    for d in WORKLOADS:
        if d["kind"] != "Job":
            labels = d["spec"]["template"]["metadata"]["labels"]
            assert d["spec"]["selector"]["matchLabels"].items() <= labels.items(), d["metadata"]["name"]
    for s in (d for d in DOCS if d["kind"] == "Service" and d["spec"].get("selector")):
        assert any(s["spec"]["selector"].items() <= w["spec"]["template"]["metadata"]["labels"].items()
                   for w in WORKLOADS), s["metadata"]["name"]


def test_k8s_every_container_requests_resources_and_long_runners_have_probes():
    for d in WORKLOADS:
        for c in containers(d):
            requests = c.get("resources", {}).get("requests", {})
            assert {"cpu", "memory"} <= set(requests), (d["metadata"]["name"], c["name"])
            if d["kind"] != "Job":
                assert c.get("readinessProbe"), (d["metadata"]["name"], c["name"])


@pytest.mark.parametrize("module", sorted(m for m, d in DEPLOYED.items() if d))
def test_k8s_sets_what_each_deployable_needs(module):
    for kind, name, cname in DEPLOYED[module]["k8s"]:
        env = container_env(container(kind, name, cname))
        missing = must_set(SETTINGS[module]) - set(env)
        assert not missing, f"{name}/{cname}: set {sorted(missing)}"


def test_k8s_sets_only_variables_something_reads():
    for d in WORKLOADS:
        for c in containers(d):
            for var in container_env(c):
                if var.startswith("TONGDAI_"):
                    assert var in ALL_CODE_VARS | FS_VARS, f"{d['metadata']['name']}: {var}"


def test_k8s_secrets_come_from_the_secret():
    assert not any(SECRET.search(k) for k in config_map())
    for d in WORKLOADS:
        for c in containers(d):
            env = {e["name"]: e for e in c.get("env", [])}
            for name, e in env.items():
                if SECRET.search(name):
                    assert e["valueFrom"]["secretKeyRef"]["name"] == "tongdai-secrets", name
                if name == "TONGDAI_FREESWITCH":
                    ref = re.fullmatch(r"[^:]+:\d+:\$\((\w+)\)", e["value"]).group(1)
                    assert "secretKeyRef" in env[ref]["valueFrom"]
    assert "ClueCon" not in "".join(p.read_text() for p in K8S.glob("*"))


def test_k8s_workers_scale_as_a_deployment():
    worker = find("Deployment", "tongdai-worker")
    assert worker["spec"]["replicas"] >= 2
    assert not any("persistentVolumeClaim" in v for v in worker["spec"]["template"]["spec"].get("volumes", []))
    hpa = find("HorizontalPodAutoscaler", "tongdai-worker")
    assert hpa["spec"]["maxReplicas"] <= int(config_map()["TONGDAI_TOPIC_PARTITIONS"])


def test_k8s_api_is_behind_a_service():
    service = find("Service", "tongdai-api")
    port_names = {p["name"] for p in container("Deployment", "tongdai-api", "api")["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    assert service["spec"]["type"] == "ClusterIP"


def test_k8s_one_bridge_per_freeswitch_node():
    fs = find("StatefulSet", "tongdai-freeswitch")
    assert {c["name"] for c in containers(fs)} == {"freeswitch", "bridge"}
    bridge = container_env(container("StatefulSet", "tongdai-freeswitch", "bridge"))
    assert bridge["TONGDAI_FREESWITCH"]["value"].startswith("127.0.0.1:8021:")
    assert bridge["TONGDAI_BRIDGE_NAME"]["value"] == "$(POD_NAME)"
    freeswitch = container_env(container("StatefulSet", "tongdai-freeswitch", "freeswitch"))
    assert freeswitch["TONGDAI_FS_ESL_LISTEN_IP"]["value"] == "127.0.0.1"
    assert freeswitch["TONGDAI_FS_ESL_ALLOW_CIDR"]["value"] == "127.0.0.1/32"
    claims = {t["metadata"]["name"] for t in fs["spec"]["volumeClaimTemplates"]}
    assert {"recordings", "bridge-state"} <= claims


def test_k8s_kafka_and_clickhouse_are_external():
    kinds = {(d["kind"], d.get("metadata", {}).get("name")) for d in DOCS}
    assert ("Service", "tongdai-kafka") in kinds and ("Service", "tongdai-clickhouse") in kinds
    assert not any("kafka" in d["metadata"]["name"] or "clickhouse" in d["metadata"]["name"]
                   for d in WORKLOADS)
    cm = config_map()
    assert cm["TONGDAI_KAFKA_BOOTSTRAP"].startswith("tongdai-kafka:")
    assert cm["TONGDAI_CLICKHOUSE_HOST"] == "tongdai-clickhouse"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_builds_the_manifests():
    done = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    built = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert len(built) == len([d for d in DOCS if d["kind"] != "Kustomization"])
    for d in built:
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == "tongdai", d["metadata"]["name"]
    images = {c["image"] for d in built if d["kind"] in ("Deployment", "StatefulSet", "Job")
              for c in d["spec"]["template"]["spec"]["containers"]}
    assert all(":" in i and not i.endswith(":latest") for i in images), images
