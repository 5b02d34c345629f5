"""compose_to_k8s / _compose_load, _compose_translate*: corpus validation, golden files, GPU, probes, secrets,
errors."""

from __future__ import annotations

import base64
import glob
import json
import os
import pathlib
import re
import stat
import subprocess
import sys

import pytest
import yaml

from ansible_collections.sophia.migrate.plugins.module_utils import (
    _compose_load,
    _compose_output,
    _compose_translate,
    _compose_translate_context,
    _compose_values,
    _k8s_validate,
)
from ansible_collections.sophia.migrate.plugins.modules import compose_to_k8s
from support.figures import corpus_figure
from support.modules import run_module

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "compose")
FIXTURES = os.path.normpath(FIXTURES)
CORPUS = sorted(glob.glob(os.path.join(FIXTURES, "corpus", "*.yaml")))
SOPHIA = os.path.join(FIXTURES, "sophia", "docker-compose.yml")
SPEC = os.path.join(FIXTURES, "spec", "compose.yaml")
GOLDEN = os.path.join(FIXTURES, "golden")
SCHEMAS = _k8s_validate.Schemas()
COLLECTIONS = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".ansible", "collections"))

# Every fake secret value written in the fixtures' env/secret files.
SOPHIA_SECRETS = [
    "sk-test-sophia-openai-0000000001", "sk-ant-test-sophia-0000000002", "ghp_testsophiagithubtoken0000003",
    "pat-test-sophia-hubspot-0000004", "lambda-test-sophia-key-0000005", "redis-test-sophia-0000007",
    "qdrant-test-sophia-0000008", "grafana-test-sophia-0000009",
]
SPEC_SECRETS = ["sk_test_spec_0000000010", "quoted-token-0000000011", "spec-db-password-0000000012",
                "spec-db-env-password-0000000013", "spec-api-key-0000000014"]


def _translate(path, profiles=("*",), **opts):
    project = _compose_load.load_project([path], profiles=profiles)
    return _compose_translate.translate(project, _compose_translate_context.Options(**opts))


def _docs(out):
    return [d for name in sorted(out["objects"]) for d in out["objects"][name]]


def _by(out, service, kind, name=None):
    return next(d for d in out["objects"][service] if d["kind"] == kind and d["metadata"]["name"] == (name or {
        "ConfigMap": f"{service}-env", "Secret": f"{service}-env"}.get(kind, d["metadata"]["name"])))


def _pod(out, service):
    kinds = {d["kind"]: d for d in out["objects"][service]}
    return (kinds.get("Deployment") or kinds.get("Job") or kinds["StatefulSet"])["spec"]["template"]["spec"]


# Corpus files that need an outside input even with every profile active: the clean refusal each gives.
CORPUS_REFUSALS = {
    "docker-compose__pkg-e2e-fixtures-env-secret-compose.yaml": r"variable SECRET for secret secret is not set",
}


@pytest.mark.parametrize("path", [*CORPUS, SOPHIA, SPEC], ids=os.path.basename)
def test_every_compose_file_translates_to_valid_manifests(path):
    if os.path.basename(path) in CORPUS_REFUSALS:
        with pytest.raises(_compose_values.ComposeError, match=CORPUS_REFUSALS[os.path.basename(path)]):
            _translate(path)
        return
    out = _translate(path)
    docs = _docs(out)
    assert docs, "no objects produced"
    summary = _k8s_validate.validate_documents([(path, d) for d in docs], SCHEMAS, strict=True)
    assert summary["errors"] == []
    assert summary["warnings"] == []
    # deterministic: a second translation dumps byte for byte the same
    again = _translate(path)
    assert _compose_output.dump(_docs(again)) == _compose_output.dump(docs)
    # every workload has exactly one container named after the service
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            assert len(d["spec"]["template"]["spec"]["containers"]) == 1


def _run_as_a_new_user(path, capsys):
    """compose_to_k8s on a corpus file with no option but src (as a new user tries it): ('valid', result) for
    manifests that validate, ('refused', msg) for a clean refusal naming what is wrong or missing, ('empty', result)
    for a success with nothing in it, ('broken', msg) for anything else (a crash, an unnamed error)."""
    result = run_module(compose_to_k8s, {"src": [path]}, capsys)
    if result.get("failed"):
        msg = result.get("msg", "")
        named = any(word in msg for word in ("service ", "option ", "variable", "include", "volume", "profile",
                                             os.path.basename(path)))
        clean = msg.startswith("compose_to_k8s: ") and "Traceback" not in msg and "Module failed" not in msg
        return ("refused" if clean and named else "broken"), msg
    if not result["manifests"] or not result["services"]:
        return "empty", result
    return ("valid" if result["validation"]["errors"] == [] else "broken"), result


def test_corpus_as_a_new_user_figure(capsys):
    """Every corpus file gives valid manifests or a clean refusal, never a silent empty result; the figure goes to
    tests/output/figures/compose_corpus.txt (printed at the end of make test)."""
    outcomes = {os.path.basename(p): _run_as_a_new_user(p, capsys) for p in CORPUS}
    verdicts = {n: {"empty": "silent-empty"}.get(kind, kind) for n, (kind, _o) in outcomes.items()}
    corpus_figure("compose_corpus", "compose_to_k8s", verdicts)


def test_corpus_is_present_with_its_sources():
    assert len(CORPUS) >= 30
    sources = pathlib.Path(os.path.join(FIXTURES, "corpus", "SOURCES.md")).read_text(encoding="utf-8")
    for path in CORPUS:
        assert os.path.basename(path) in sources


def _normalise(text: str) -> str:
    return text.replace(FIXTURES, "<fixtures>")


@pytest.mark.parametrize("path,services", [
    (SOPHIA, ["mcp-research", "redis", "sophia-dashboard", "nginx-proxy"]),
    (SPEC, ["web", "api", "db", "inference"]),
], ids=["sophia", "spec"])
def test_golden_files(path, services):
    out = _translate(path, namespace="sophia" if path == SOPHIA else "default",
                     stateful=("redis", "qdrant") if path == SOPHIA else ())
    for service in services:
        text = _normalise(_compose_output.dump(out["objects"][service]))
        golden = os.path.join(GOLDEN, f"{os.path.basename(os.path.dirname(path))}-{service}.yaml")
        if os.environ.get("UPDATE_GOLDEN"):
            with open(golden, "w", encoding="utf-8") as handle:
                handle.write(text)
        with open(golden, encoding="utf-8") as handle:
            assert text == handle.read(), f"{service} differs from {golden} (UPDATE_GOLDEN=1 to regenerate)"


def test_sophia_stack_shape():
    out = _translate(SOPHIA, profiles=("monitoring",), namespace="sophia")
    expected = {"sophia-dashboard", "mcp-research", "mcp-context", "mcp-github", "mcp-business", "mcp-lambda",
                "mcp-hubspot", "mcp-agents", "sophia-jobs", "redis", "qdrant", "nginx-proxy", "prometheus",
                "grafana", "loki", "cadvisor", "node-exporter"}
    assert set(out["services"]) == expected
    assert out["services"]["redis"]["kind"] == "StatefulSet"
    assert out["services"]["qdrant"]["kind"] == "StatefulSet"
    assert out["order"]["stateful"] == ["qdrant", "redis"]
    assert "sophia-dashboard" in out["order"]["stateless"]
    # dependencies come first in the order
    stateless = out["order"]["stateless"]
    assert stateless.index("sophia-dashboard") < stateless.index("nginx-proxy")
    assert stateless.index("prometheus") < stateless.index("grafana")
    # applied: stateless first, but redis (stateful) before the MCP services that wait for it, qdrant before context
    apply = out["order"]["apply"]
    assert sorted(apply) == sorted(expected)
    assert apply[0] == "cadvisor" and apply.index("redis") < apply.index("mcp-agents")
    assert apply.index("qdrant") < apply.index("mcp-context")
    assert apply.index("sophia-dashboard") < apply.index("redis")  # no dependency: stateless goes first
    for name in apply:
        for dep in out["services"][name]["depends_on"]:
            assert apply.index(dep) < apply.index(name)
    dash = _by(out, "sophia-dashboard", "Service")
    assert dash["spec"]["ports"] == [{"name": "tcp-3000", "port": 3000, "targetPort": 3000, "protocol": "TCP"}]
    redis = _by(out, "redis", "StatefulSet")
    assert redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "redis-data"
    assert redis["spec"]["serviceName"] == "redis"
    assert _by(out, "redis", "Service")["spec"]["clusterIP"] == "None"
    redis_container = redis["spec"]["template"]["spec"]["containers"][0]
    assert redis_container["securityContext"] == {"runAsUser": 999, "runAsGroup": 999}
    # without the profile the monitoring services are left out
    assert "grafana" not in _translate(SOPHIA, profiles=())["services"]
    # unsupported fields are listed, not dropped
    fields = {(u["service"], u["field"]) for u in out["unsupported"]}
    assert {("node-exporter", "network_mode"), ("node-exporter", "pid"), ("cadvisor", "devices")} <= fields


@pytest.mark.parametrize("service", ["mcp-research", "mcp-context", "mcp-agents"])
def test_gpu_services_get_gpu_limits_runtime_class_and_tolerations(service):
    out = _translate(SOPHIA, namespace="sophia")
    pod = _pod(out, service)
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


@pytest.mark.parametrize("service", ["sophia-dashboard", "mcp-github", "redis", "sophia-jobs"])
def test_cpu_services_get_no_gpu(service):
    pod = _pod(_translate(SOPHIA), service)
    assert "runtimeClassName" not in pod
    assert "nvidia.com/gpu" not in pod["containers"][0].get("resources", {}).get("limits", {})


def test_gpu_plan_time_slicing_and_none():
    plan = {"mode": "time-slicing", "time_slicing_replicas": 4,
            "services": {"mcp-research": {"gpus": 1, "resource": "nvidia.com/gpu.shared", "shared": True},
                         "mcp-github": {"gpus": 1, "resource": "nvidia.com/gpu", "shared": True}},
            "device_plugin_config": {}}
    out = _translate(SOPHIA, gpu_plan=plan)
    research = _pod(out, "mcp-research")["containers"][0]["resources"]["limits"]
    assert research["nvidia.com/gpu.shared"] == "1" and "nvidia.com/gpu" not in research
    assert out["services"]["mcp-research"]["gpu"] == {"count": 1, "resource": "nvidia.com/gpu.shared", "shared": True}
    # the plan adds a GPU to a service the Compose file runs on CPU
    assert _pod(out, "mcp-github")["runtimeClassName"] == "nvidia"
    # a service not in the plan keeps its Compose reservation, marked shared under time-slicing
    assert out["services"]["mcp-agents"]["gpu"]["shared"] is True
    none = _translate(SOPHIA, gpu_plan={"mode": "none", "services": {}})
    assert all(info["gpu"] is None for info in none["services"].values())
    assert any("mcp-research" in w and "mode is none" in w for w in none["warnings"])


def test_gpu_count_all_device_ids_and_count():
    out = _translate(SPEC, profiles=("gpu",), gpu_count_all=2)
    assert out["services"]["allgpus"]["gpu"]["count"] == 2
    assert any(n["service"] == "allgpus" and "count: all" in n["note"] for n in out["notes"])
    assert out["services"]["inference"]["gpu"]["count"] == 2  # device_ids ["0", "3"]
    assert out["services"]["trainer"]["gpu"]["count"] == 2
    assert _pod(out, "trainer")["volumes"][-1] == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}


def test_healthchecks_become_probes():
    out = _translate(SPEC, profiles=("gpu",))
    web = _pod(out, "web")["containers"][0]
    assert web["livenessProbe"] == {"httpGet": {"path": "/healthz", "port": 80, "scheme": "HTTP"}, "periodSeconds": 90,
                                    "timeoutSeconds": 10, "failureThreshold": 3, "initialDelaySeconds": 40}
    assert web["readinessProbe"] == web["livenessProbe"]
    db = _pod(out, "db")["containers"][0]
    assert db["livenessProbe"]["exec"]["command"] == ["/bin/sh", "-c", "pg_isready -U postgres"]
    assert db["livenessProbe"]["failureThreshold"] == 10
    sophia_jobs = _pod(_translate(SOPHIA), "sophia-jobs")["containers"][0]
    assert sophia_jobs["livenessProbe"]["exec"]["command"] == ["python", "-m", "sophia_jobs.healthcheck"]
    # `curl ... || exit 1` is not a plain HTTP check: stays an exec probe
    assert "exec" in _pod(out, "inference")["containers"][0]["livenessProbe"]
    assert "livenessProbe" not in _pod(out, "migrate")["containers"][0]  # NONE
    assert "livenessProbe" not in _pod(out, "allgpus")["containers"][0]  # disable: true


def test_compose_spec_features():
    out = _translate(SPEC, profiles=("gpu",))
    assert "debugtools" not in out["services"] and "trainer" in out["services"]
    assert "trainer" not in _translate(SPEC, profiles=())["services"]
    web = _pod(out, "web")["containers"][0]
    # extends (from base.yaml): environment and tty inherited; depends_on is not
    assert _by(out, "web", "ConfigMap")["data"] == {"BASE_URL": "http://web.example", "TIMEZONE": "UTC"}
    assert web["tty"] is True
    assert out["services"]["web"]["depends_on"] == ["api", "migrate"]
    assert web["command"] == ["/docker-entrypoint.sh"] and web["args"] == ["nginx", "-g", "daemon off;"]
    assert web["securityContext"] == {"runAsUser": 1000, "runAsGroup": 1000}
    assert [p["containerPort"] for p in web["ports"]] == [80, 443, 9000, 9001, 7000]
    assert [p["protocol"] for p in web["ports"]][2:4] == ["UDP", "UDP"]
    deploy = _by(out, "web", "Deployment")
    assert deploy["spec"]["replicas"] == 2
    assert deploy["metadata"]["annotations"]["compose.label/com.example.role"] == "frontend"
    assert deploy["metadata"]["annotations"]["sophia.migrate/depends-on"] == (
        "api:service_healthy,migrate:service_completed_successfully")
    assert _pod(out, "web")["initContainers"][0]["command"][2].startswith("until nc -z api 5000")
    assert web["resources"] == {"limits": {"cpu": "500m", "memory": "256Mi"},
                                "requests": {"cpu": "100m", "memory": "64Mi"}}
    # configs -> ConfigMap mounted with subPath; secrets -> Secret under /run/secrets
    conf = _by(out, "web", "ConfigMap", "specdemo-webconf")
    assert "listen 80" in conf["data"]["default.conf"]
    api = _pod(out, "api")["containers"][0]
    assert {"name": "secret-api-key", "mountPath": "/run/secrets/api.key", "subPath": "api.key",
            "readOnly": True} in api["volumeMounts"]
    assert api["securityContext"] == {"readOnlyRootFilesystem": True,
                                      "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}}
    assert _pod(out, "api")["terminationGracePeriodSeconds"] == 45
    assert _pod(out, "api")["hostAliases"] == [{"ip": "169.254.169.254", "hostnames": ["metadata.internal"]}]
    # env_file + interpolation defaults; plain values in the ConfigMap, secret-looking ones in the Secret
    expected_env = {"APP_MODE": "production", "FEATURE_FLAGS": "a,b", "LOG_LEVEL": "debug",
                    "PLAIN_VALUE": "hello world"}
    assert _by(out, "api", "ConfigMap")["data"] == expected_env
    secret = _by(out, "api", "Secret")
    assert sorted(secret["data"]) == ["DB_PASSWORD", "SESSION_TOKEN", "STRIPE_SECRET"]
    assert base64.b64decode(secret["data"]["SESSION_TOKEN"]).decode() == "quoted-token-0000000011"
    # db: named volume -> StatefulSet claim template, anonymous volume -> emptyDir
    db = _by(out, "db", "StatefulSet")
    assert db["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert {"name": "vol-1", "emptyDir": {}} in db["spec"]["template"]["spec"]["volumes"]
    cache = _pod(out, "cache")["containers"][0]
    assert cache["resources"]["limits"] == {"cpu": "250m", "memory": "512Mi"}
    listed = {(u["service"], u["field"]) for u in out["unsupported"]}
    assert listed >= {("db", "sysctls"), ("db", "ulimits")}
    # placement constraints are node affinity, restart "no" a Job (tests below in detail)
    assert _pod(out, "web")["affinity"]["nodeAffinity"]
    assert out["services"]["migrate"]["kind"] == "Job"


def test_urls_with_passwords_are_secret_without_being_listed():
    out = _translate(SOPHIA)
    assert "DATABASE_URL" in _by(out, "mcp-github", "Secret")["data"]
    assert "DATABASE_URL" not in _by(out, "mcp-github", "ConfigMap")["data"]
    assert "REDIS_URL" in _by(out, "mcp-github", "ConfigMap")["data"]  # no password in it


def test_deployment_with_named_volume_gets_pvc_and_recreate():
    out = _translate(SOPHIA, volume_sizes={"research-cache": "20Gi"}, storage_class="local-path")
    pvc = _by(out, "mcp-research", "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == "sophia-research-cache"
    assert pvc["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}},
                           "storageClassName": "local-path"}
    assert _by(out, "mcp-research", "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    stateful = _translate(SOPHIA, stateful=("mcp-research",))
    assert stateful["services"]["mcp-research"]["kind"] == "StatefulSet"
    assert _translate(SOPHIA, stateless=("redis",))["services"]["redis"]["kind"] == "Deployment"


@pytest.mark.parametrize("value,expected", [("512m", "512Mi"), ("2G", "2Gi"), ("1gb", "1Gi"), (1048576, "1Mi"),
                                            ("1.5g", "1536Mi"), ("100k", "100Ki"), ("1000", "1000"),
                                            ("8073741824", "8073741824")])
def test_memory_quantity(value, expected):
    assert _compose_values.memory_quantity(value, "x") == expected


@pytest.mark.parametrize("value,expected", [("1m30s", 90), ("10s", 10), ("500ms", 1), (5, 5), ("1h", 3600)])
def test_duration(value, expected):
    assert _compose_values.duration_seconds(value, "x") == expected


def test_interpolation():
    env = {"A": "1", "EMPTY": ""}
    assert _compose_load.interpolate("${A}-$A-${B:-d}-${EMPTY:-e}-${EMPTY-f}-$$A-${A:+set}", env) == "1-1-d-e--$A-set"
    with pytest.raises(_compose_values.ComposeError, match="required variable B is missing: need B"):
        _compose_load.interpolate({"image": "x:${B:?need B}"}, env)


MALFORMED = [
    ("services:\n  web:\n    image: [unclosed\n", r"invalid YAML"),
    ("services:\n  web:\n    image: a\n    depends_on: [db]\n", r"service web: depends_on: unknown service 'db'"),
    ("services:\n  web:\n    image: a\n    ports: ['80:80:80:80']\n", r"service web: ports\[0\]: invalid port"),
    ("services:\n  web:\n    image: a\n    ports: ['99999:80']\n", r"service web: ports\[0\]: port 99999 out of range"),
    ("services:\n  web:\n    image: a\n    deploy: {resources: {limits: {memory: 12parsecs}}}\n",
     r"service web: deploy.resources.limits.memory: invalid memory value '12parsecs'"),
    ("services:\n  web:\n    image: a\n    mem_limit: 1x\n", r"service web: mem_limit: invalid memory value"),
    ("services:\n  web:\n    image: a\n    deploy: {resources: {limits: {cpus: lots}}}\n",
     r"service web: deploy.resources.limits.cpus: invalid CPU value"),
    ("services:\n  web:\n    image: a\n    healthcheck: {test: [CMD], interval: soon}\n",
     r"service web: healthcheck.test: CMD needs a command"),
    ("services:\n  web:\n    image: a\n    healthcheck: {test: [CMD, x], interval: soon}\n",
     r"service web: healthcheck.interval: invalid duration 'soon'"),
    ("services:\n  web:\n    image: a\n    volumes: ['data:/x']\n",
     r"service web: volumes\[0\]: named volume 'data' is not declared"),
    ("services:\n  web:\n    build: .\n    secrets: [nope]\n", r"service web: secrets\[0\]: 'nope' is not declared"),
    ("services:\n  web:\n    command: x\n", r"service web: image: required"),
    ("services:\n  web:\n    image: a\n"
     "    deploy: {resources: {reservations: {devices: [{driver: nvidia, count: many}]}}}\n",
     r"service web: deploy.resources.reservations.devices\[0\].count: invalid GPU count 'many'"),
    ("- a\n- b\n", r"must be a mapping"),
]


@pytest.mark.parametrize("text,message", MALFORMED, ids=[m[1][:40] for m in MALFORMED])
def test_malformed_input_names_service_and_field(tmp_path, text, message):
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    with pytest.raises(_compose_values.ComposeError, match=message):
        _compose_translate.translate(_compose_load.load_project([str(path)]))


# ----------------------------------------------------------------------------- the module

def _args(tmp_path, **extra):
    return {"src": [SOPHIA], "dest": str(tmp_path / "out"), "namespace": "sophia", "profiles": ["monitoring"],
            "stateful": ["redis", "qdrant"], "secret_env": ["DATABASE_URL"], **extra}


def test_module_writes_files_and_never_prints_secrets(tmp_path, capsys):
    result = run_module(compose_to_k8s, _args(tmp_path, _ansible_diff=True), capsys)
    printed = json.dumps(result)
    assert result["changed"] is True and not result.get("failed")
    assert result["validation"]["errors"] == [] and result["validation"]["documents"] > 50
    for value in [*SOPHIA_SECRETS, "db-test-sophia-0000006"]:
        assert value not in printed
        assert base64.b64encode(value.encode()).decode() not in printed
    # ... but they are in the files, which are 0600
    research = pathlib.Path(result["files"]["mcp-research"]).read_text(encoding="utf-8")
    assert base64.b64encode(b"sk-test-sophia-openai-0000000001").decode() in research
    assert stat.S_IMODE(os.stat(result["files"]["mcp-research"]).st_mode) == 0o600
    docs = list(yaml.safe_load_all(research))
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert "DATABASE_URL" in secret["data"] and "SOPHIA_REGION" not in secret["data"]
    redacted = next(d for d in result["manifests"]
                    if d["kind"] == "Secret" and d["metadata"]["name"] == "mcp-research-env")
    assert set(redacted["data"].values()) == {_compose_output.REDACTED}
    # the redis password is in redis' command line and healthcheck: redacted in the result, kept in the file
    redis = next(d for d in result["manifests"] if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "redis")
    assert _compose_output.REDACTED in redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "redis-test-sophia-0000007" in pathlib.Path(result["files"]["redis"]).read_text(encoding="utf-8")
    assert result["diff"] and all("redis-test-sophia-0000007" not in d["after"] for d in result["diff"])
    assert result["order"]["stateful"] == ["qdrant", "redis"]
    assert {(u["service"], u["field"]) for u in result["unsupported"]} >= {("node-exporter", "network_mode")}
    # idempotent
    again = run_module(compose_to_k8s, _args(tmp_path), capsys)
    assert again["changed"] is False


def test_module_secret_variables_are_no_log_and_redacted(tmp_path, capsys):
    result = run_module(compose_to_k8s, _args(tmp_path, secret_variables={"REDIS_PASSWORD": "override-secret-4242"},
                                              variables={"COMPOSE_TAG": "1"}), capsys)
    assert "override-secret-4242" not in json.dumps(result)
    assert result["services"]["redis"]["ports"] == [6379]  # plain variables are not masked
    assert "override-secret-4242" in pathlib.Path(result["files"]["redis"]).read_text(encoding="utf-8")


def test_module_check_mode_diffs_against_rendered_files(tmp_path, capsys):
    run_module(compose_to_k8s, _args(tmp_path), capsys)
    path = tmp_path / "out" / "sophia-dashboard.yaml"
    original = path.read_text()
    path.write_text(original.replace("replicas: 1", "replicas: 3"))
    result = run_module(compose_to_k8s, _args(tmp_path, _ansible_diff=True), capsys, check_mode=True)
    assert result["changed"] is True
    assert [d["after_header"] for d in result["diff"]] == [str(path)]
    assert "replicas: 3" in result["diff"][0]["before"] and "replicas: 1" in result["diff"][0]["after"]
    assert "replicas: 3" in path.read_text()  # nothing written in check mode
    fresh = run_module(compose_to_k8s, _args(tmp_path, dest=str(tmp_path / "new")), capsys, check_mode=True)
    assert fresh["changed"] is True and not (tmp_path / "new").exists()


def test_module_malformed_input_fails_cleanly(tmp_path, capsys):
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  web:\n    image: a\n    ports: ['eighty']\n")
    result = run_module(compose_to_k8s, {"src": [str(bad)]}, capsys)
    assert result["failed"] is True
    assert result["msg"] == ("compose_to_k8s: service web: ports[0]: invalid port 'eighty' "
                             "(expected [IP:][HOST:]CONTAINER[/PROTOCOL])")
    missing = run_module(compose_to_k8s, {"src": [str(tmp_path / "nope.yaml")]}, capsys)
    assert missing["failed"] is True and "nope.yaml: cannot read compose file" in missing["msg"]
    unknown = run_module(compose_to_k8s, {"src": [SOPHIA], "services": ["ghost"]}, capsys)
    assert "option services: not in the compose project: ghost" in unknown["msg"]


# ----------------------------------------------------------------------------- name collisions

COLLISIONS = [
    ("services:\n  api_x: {image: a}\n  api-x: {image: b}\n",
     "services: services 'api-x' and 'api_x' both become the Kubernetes name 'api-x'"),
    ("services:\n  API: {image: a}\n  api: {image: b}\n",
     "services: services 'API' and 'api' both become the Kubernetes name 'api'"),
    ("services:\n  web: {image: a, volumes: ['data_1:/a', 'data-1:/b']}\nvolumes: {data_1: {}, data-1: {}}\n",
     "volumes: volumes 'data-1' and 'data_1' both become the Kubernetes name 'data-1'"),
    ("services:\n  web: {image: a, secrets: [db_pass]}\n"
     "secrets: {db_pass: {content: one}, db-pass: {content: two}}\n",
     "secrets: secrets 'db-pass' and 'db_pass' both become the Kubernetes name 'db-pass'"),
    ("services:\n  web: {image: a, configs: [app.conf]}\n"
     "configs: {app.conf: {content: one}, app_conf: {content: two}}\n",
     "configs: configs 'app.conf' and 'app_conf' both become the Kubernetes name 'app-conf'"),
    # the environment Secret of service 'x' of project 'x' and the Compose secret 'env'
    ("name: x\nservices:\n  x: {image: a, environment: {DB_PASSWORD: hunter2}, secrets: [env]}\n"
     "secrets: {env: {content: one}}\n",
     "the environment of service 'x' and secret 'env' both become the Kubernetes Secret 'x-env'"),
    # a named volume called like the pod volume that a bind mount gets
    ("services:\n  web: {image: a, volumes: ['./a:/a', 'vol-0:/data']}\nvolumes: {vol-0: {}}\n",
     "service web: two different volumes of the pod are named 'vol-0'"),
]


@pytest.mark.parametrize("text,message", COLLISIONS, ids=[m[1][:50] for m in COLLISIONS])
def test_names_that_map_to_one_kubernetes_object_are_refused(tmp_path, text, message):
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    with pytest.raises(_compose_values.ComposeError) as err:
        _compose_translate.translate(_compose_load.load_project([str(path)]))
    assert message in str(err.value)


def test_shared_volumes_and_secrets_are_not_collisions(tmp_path):
    path = tmp_path / "compose.yaml"
    path.write_text("services:\n"
                    "  a: {image: a, volumes: ['data:/d'], secrets: [tok, {source: tok, target: /etc/tok}]}\n"
                    "  b: {image: b, volumes: ['data:/d', 'data:/e'], secrets: [tok]}\n"
                    "volumes: {data: {}}\nsecrets: {tok: {content: t0ken-value}}\n")
    out = _compose_translate.translate(_compose_load.load_project([str(path)]))
    pod = _pod(out, "a")
    assert [v["name"] for v in pod["volumes"]] == ["data", "secret-tok"]
    assert len(pod["containers"][0]["volumeMounts"]) == 3
    summary = _k8s_validate.validate_documents([("x", d) for d in _docs(out)], SCHEMAS, strict=True)
    assert summary["errors"] == []


def test_module_refuses_colliding_services_cleanly(tmp_path, capsys):
    path = tmp_path / "compose.yaml"
    path.write_text("services:\n  api_x: {image: a}\n  api-x: {image: b}\n")
    result = run_module(compose_to_k8s, {"src": [str(path)], "dest": str(tmp_path / "out")}, capsys)
    assert result["failed"] is True
    assert "'api-x' and 'api_x' both become the Kubernetes name 'api-x'" in result["msg"]
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- secret environment names

SECRET_NAMES = ["DB_PASS", "PASSWORD", "PASS", "MYSQL_PWD", "PWD", "db_pass", "db-pass", "DB_PASSWD", "SMTP_PASSWORD",
                "dbPassword", "CLIENT_SECRET", "SECRET", "JWT_SECRET_KEY", "GITHUB_TOKEN", "TOKEN", "ACCESSTOKEN",
                "API_KEY", "OPENAI_APIKEY", "KEY", "SSH_KEY_FILE", "PASS_FILE", "TOKEN_URL_SIGNED", "AWS_CREDENTIALS",
                "GPG_PASSPHRASE", "REDIS_PWD_FILE"]
PLAIN_NAMES = ["TOKENIZERS_PARALLELISM", "BYPASS_CACHE", "COMPASS_URL", "PASSENGER_COUNT", "KEYCLOAK_URL",
               "LOG_LEVEL", "DATABASE_HOST", "PORT", "PWDIR"]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_default_secret_patterns_catch(name):
    assert _compose_values.is_secret_name(name, _compose_values.DEFAULT_SECRET_PATTERNS, ())


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_default_secret_patterns_leave_plain_names(name):
    assert not _compose_values.is_secret_name(name, _compose_values.DEFAULT_SECRET_PATTERNS, ())


def test_module_output_never_holds_secret_env_values(tmp_path, capsys):
    values = {name: f"s3cr3t-value-{index:04d}" for index, name in enumerate(SECRET_NAMES)}
    env = "\n".join(f"      {name}: {value}" for name, value in values.items())
    path = tmp_path / "compose.yaml"
    path.write_text(f"services:\n  app:\n    image: app\n    environment:\n{env}\n      LOG_LEVEL: info\n")
    result = run_module(compose_to_k8s, {"src": [str(path)], "dest": str(tmp_path / "out"), "_ansible_diff": True},
                        capsys)
    assert not result.get("failed"), result.get("msg")
    printed = json.dumps(result)
    for value in values.values():
        assert value not in printed and base64.b64encode(value.encode()).decode() not in printed
    assert result["services"]["app"]["secret_keys"] == sorted(values)
    docs = list(yaml.safe_load_all(pathlib.Path(result["files"]["app"]).read_text(encoding="utf-8")))
    secret = next(d for d in docs if d["kind"] == "Secret")
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    assert set(secret["data"]) == set(values) and config["data"] == {"LOG_LEVEL": "info"}


def test_error_messages_never_quote_secret_values(tmp_path, capsys):
    (tmp_path / ".env").write_text("REDIS_PASS=hunter2-from-dotenv\n")
    path = tmp_path / "compose.yaml"
    path.write_text("services:\n  redis:\n    image: redis\n"
                    "    command: 'redis-server --requirepass ${REDIS_PASS} --x \"${EXTRA}'\n")
    result = run_module(compose_to_k8s, {"src": [str(path)], "secret_variables": {"EXTRA": "given-secret-77"}},
                        capsys)
    assert result["failed"] is True and "service redis: command: cannot split" in result["msg"]
    assert "hunter2-from-dotenv" not in json.dumps(result) and "given-secret-77" not in json.dumps(result)
    assert _compose_output.REDACTED in result["msg"]


# ----------------------------------------------------------------------------- hostile files

def test_module_non_utf8_files_fail_cleanly_naming_the_file(tmp_path, capsys):
    compose = tmp_path / "compose.yaml"
    compose.write_bytes("services:\n  web: {image: caf\xe9}\n".encode("latin-1"))
    result = run_module(compose_to_k8s, {"src": [str(compose)]}, capsys)
    assert result["failed"] is True
    assert result["msg"] == (f"compose_to_k8s: {compose}: not UTF-8 text (byte b'\\xe9' at offset 28): "
                             "cannot read compose file")
    compose.write_text("services:\n  web: {image: a, env_file: [app.env], configs: [c], secrets: [s]}\n"
                       "configs: {c: {file: ./c.conf}}\nsecrets: {s: {file: ./s.bin}}\n")
    (tmp_path / "app.env").write_bytes(b"A=\xff\n")
    result = run_module(compose_to_k8s, {"src": [str(compose)]}, capsys)
    assert result["failed"] is True and f"cannot read env file {tmp_path / 'app.env'}: not UTF-8 text" in result["msg"]
    (tmp_path / "app.env").write_text("A=1\n")
    (tmp_path / "c.conf").write_bytes(b"\xfe\xff")
    (tmp_path / "s.bin").write_bytes(b"\x00\xffbinary-keystore")
    result = run_module(compose_to_k8s, {"src": [str(compose)]}, capsys)
    assert result["failed"] is True and f"cannot read config file {tmp_path}/./c.conf: not UTF-8" in result["msg"]
    # a binary secret file is fine: Secret data is base64
    (tmp_path / "c.conf").write_text("x = 1\n")
    result = run_module(compose_to_k8s, {"src": [str(compose)], "dest": str(tmp_path / "out")}, capsys)
    assert not result.get("failed"), result.get("msg")
    secret = next(d for d in yaml.safe_load_all(pathlib.Path(result["files"]["web"]).read_text())
                  if d["kind"] == "Secret")
    assert base64.b64decode(secret["data"]["s"]) == b"\x00\xffbinary-keystore"


BILLION_LAUGHS = """\
x-a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
x-b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
x-c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
x-d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
x-e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
x-f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
x-g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
x-h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
services: {web: {image: nginx, command: *h}}
"""


def test_alias_bomb_is_refused_quickly(tmp_path):
    """9 lines that stand for 43 million strings: refused in well under the time a walk over them takes (~1 min)."""
    path = tmp_path / "compose.yaml"
    path.write_text(BILLION_LAUGHS)
    script = ("import sys\nfrom ansible_collections.sophia.migrate.plugins.module_utils import _compose_load, "
              "_compose_translate, _compose_values\n"
              "try:\n    _compose_translate.translate(_compose_load.load_project([sys.argv[1]]))\n"
              "except _compose_values.ComposeError as exc:\n    print(exc)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([COLLECTIONS, os.environ.get("PYTHONPATH", "")])}
    try:
        res = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=10,
                             check=False, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("the alias bomb was not refused within 10 s")
    assert res.returncode == 0, res.stderr
    assert f"{path}: with its YAML aliases expanded the file holds more than 100000 values" in res.stdout


def test_recursive_alias_and_deep_nesting_are_refused(tmp_path):
    path = tmp_path / "compose.yaml"
    path.write_text("x-loop: &loop [*loop]\nservices: {web: {image: a, command: *loop}}\n")
    with pytest.raises(_compose_values.ComposeError, match="refers to a node that contains it"):
        _compose_load.load_project([str(path)])
    path.write_text("services: {web: {image: a, command: " + "[" * 5000 + "]" * 5000 + "}}\n")
    with pytest.raises(_compose_values.ComposeError, match="nested too deeply"):
        _compose_load.load_project([str(path)])


def test_a_large_real_file_is_not_an_alias_bomb(tmp_path):
    services = "".join(f"  s{i}: &s{i} {{image: img{i}, environment: {{A: '1', B: '2'}}, ports: ['{8000 + i}']}}\n"
                       for i in range(300))
    path = tmp_path / "compose.yaml"
    path.write_text("services:\n" + services)
    assert len(_compose_load.load_project([str(path)])["services"]) == 300


def test_resource_overrides_replace_measured_keys_and_never_the_gpu():
    """Phase 2C's approved right-sizing reaches the manifests (before: written to a file nothing read)."""
    out = _translate(SOPHIA, resource_overrides={
        "mcp-research": {"requests": {"cpu": "500m", "memory": "3Gi"}, "limits": {"memory": "6Gi"}},
        "sophia-dashboard": {"requests": {"cpu": "100m"}}})
    research = _pod(out, "mcp-research")["containers"][0]["resources"]
    assert research["requests"] == {"cpu": "500m", "memory": "3Gi"}
    assert research["limits"]["memory"] == "6Gi" and research["limits"]["cpu"] == "4"
    assert research["limits"]["nvidia.com/gpu"] == "1"
    dashboard = _pod(out, "sophia-dashboard")["containers"][0]["resources"]
    assert dashboard == {"limits": {"cpu": "500m", "memory": "512Mi"}, "requests": {"cpu": "100m"}}
    untouched = _pod(_translate(SOPHIA), "mcp-context")["containers"][0]["resources"]
    assert _pod(out, "mcp-context")["containers"][0]["resources"] == untouched


@pytest.mark.parametrize(("overrides", "needle"), [
    ({"mcp-gone": {"requests": {"cpu": "1"}}}, "not in the compose project: mcp-gone"),
    ({"redis": {"requests": {"nvidia.com/gpu": "1"}}}, "a mapping of cpu and/or memory"),
    ({"redis": {"minimum": {"cpu": "1"}}}, "a mapping with requests and/or limits"),
    ({"redis": {"limits": {"memory": "lots"}}}, "is not a Kubernetes quantity"),
    ({"redis": {"requests": {"memory": "4Gi"}, "limits": {"memory": "2Gi"}}}, "requests.memory 4Gi is above limits"),
    ({"redis": {"requests": {"cpu": "1500m"}}}, "requests.cpu 1500m is above limits.cpu 1"),
])
def test_resource_overrides_refused_before_anything_is_written(overrides, needle):
    with pytest.raises(_compose_values.ComposeError, match=re.escape(needle)):
        _translate(SOPHIA, resource_overrides=overrides)
