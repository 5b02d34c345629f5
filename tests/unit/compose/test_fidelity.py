"""Fidelity: for each Compose key compose_to_k8s supports, what Compose would do compared with what the manifest
makes Kubernetes do: what the container runs, its environment and filesystem, the ports it exposes, when it restarts
and how it is probed. The manifests are read back as Kubernetes reads them (envFrom resolved, mounts joined to their
volumes)."""

from __future__ import annotations

import base64
import textwrap

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import (
    _compose_load,
    _compose_translate,
    _compose_translate_context,
    _k8s_validate,
)

COMPOSE = """
name: fid
services:
  exec-both:
    image: example/app:1
    entrypoint: ["/bin/tini", "--"]
    command: serve --port 8080 "--name=a b"
  exec-command:
    image: example/app:1
    command: ["python", "-m", "app"]
  exec-entrypoint:
    image: example/app:1
    entrypoint: /entry.sh --flag
  exec-none:
    image: example/app:1
  env:
    image: example/app:1
    env_file: [app.env]
    environment:
      FROM_FILE_OVERRIDDEN: compose
      PLAIN: "a b"
      NUMBER: 5
      FLAG: true
      FROM_VARIABLES:
      NOT_SET_ANYWHERE:
      INTERPOLATED: "${HOST:-localhost}:${PORT}"
      DB_PASSWORD: s3cret-value
  env-list:
    image: example/app:1
    environment: ["A=1", "B=x=y", "FROM_VARIABLES"]
  files:
    image: example/app:1
    working_dir: /srv
    read_only: true
    user: "1000:2000"
    volumes:
      - data:/var/lib/data
      - data:/backup:ro
      - /anonymous
      - type: tmpfs
        target: /tmp/cache
    tmpfs: /run
    secrets: [token]
    configs: [{source: conf, target: /etc/app/app.conf}]
  ports:
    image: example/app:1
    ports: ["8080:80", "443", "127.0.0.1:5353:53/udp", {target: 9000, published: "9001"}]
    expose: ["7000", "7001/udp"]
  restart-always: {image: example/app:1, restart: always}
  restart-unless: {image: example/app:1, restart: unless-stopped}
  restart-default: {image: example/app:1}
  restart-no: {image: example/app:1, restart: "no"}
  restart-failure: {image: example/app:1, restart: "on-failure:4"}
  probe-cmd:
    image: example/app:1
    healthcheck: {test: ["CMD", "pg_isready", "-U", "app"], interval: 15s, timeout: 5s, retries: 4, start_period: 1m}
  probe-shell:
    image: example/app:1
    healthcheck: {test: "redis-cli ping | grep PONG"}
  probe-http:
    image: example/app:1
    ports: ["3000"]
    healthcheck: {test: ["CMD-SHELL", "curl -f http://localhost:3000/health"], interval: 500ms}
  probe-none:
    image: example/app:1
    healthcheck: {test: ["NONE"]}
volumes: {data: {}}
secrets: {token: {content: tok-0000000001}}
configs: {conf: {content: "key = value"}}
"""


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    root = tmp_path_factory.mktemp("fidelity")
    (root / "compose.yaml").write_text(textwrap.dedent(COMPOSE), encoding="utf-8")
    (root / "app.env").write_text("FROM_FILE=file\nFROM_FILE_OVERRIDDEN=file\n", encoding="utf-8")
    project = _compose_load.load_project([str(root / "compose.yaml")],
                                         variables={"FROM_VARIABLES": "var", "PORT": "81"})
    result = _compose_translate.translate(project, _compose_translate_context.Options())
    docs = [d for name in sorted(result["objects"]) for d in result["objects"][name]]
    summary = _k8s_validate.validate_documents([(d["kind"], d) for d in docs], _k8s_validate.Schemas(), strict=True)
    assert summary["errors"] == []
    return result


def _workload(out, service):
    return next(d for d in out["objects"][service] if d["kind"] in ("Deployment", "StatefulSet", "Job"))


def _container(out, service):
    return _workload(out, service)["spec"]["template"]["spec"]["containers"][0]


def _environment(out, service):
    """The environment the container sees: envFrom ConfigMaps and Secrets resolved, then env entries."""
    objects = {(d["kind"], d["metadata"]["name"]): d for d in out["objects"][service]}
    env = {}
    for source in _container(out, service).get("envFrom", []):
        if "configMapRef" in source:
            env.update(objects[("ConfigMap", source["configMapRef"]["name"])]["data"])
        else:
            data = objects[("Secret", source["secretRef"]["name"])]["data"]
            env.update({k: base64.b64decode(v).decode() for k, v in data.items()})
    env.update({e["name"]: e["value"] for e in _container(out, service).get("env", [])})
    return env


def _argv(out, service, image_entrypoint=("<image-entrypoint>",), image_cmd=("<image-cmd>",)):
    """The process Kubernetes starts: command replaces the image ENTRYPOINT (and drops its CMD), args replace CMD,
    exactly as Compose's entrypoint and command do."""
    container = _container(out, service)
    entry = container.get("command")
    args = container.get("args")
    if entry is not None:
        return [*entry, *(args or [])]
    return [*image_entrypoint, *(args if args is not None else image_cmd)]


# ----------------------------------------------------------------------------- what the container runs

@pytest.mark.parametrize("service,argv", [
    ("exec-both", ["/bin/tini", "--", "serve", "--port", "8080", "--name=a b"]),
    ("exec-command", ["<image-entrypoint>", "python", "-m", "app"]),
    ("exec-entrypoint", ["/entry.sh", "--flag"]),  # Compose: entrypoint set, command unset -> image CMD dropped
    ("exec-none", ["<image-entrypoint>", "<image-cmd>"]),
])
def test_process(out, service, argv):
    assert _argv(out, service) == argv


# ----------------------------------------------------------------------------- environment

def test_environment_mapping_env_file_and_interpolation(out):
    assert _environment(out, "env") == {
        "FROM_FILE": "file", "FROM_FILE_OVERRIDDEN": "compose",  # environment wins over env_file
        "PLAIN": "a b", "NUMBER": "5", "FLAG": "true",
        "FROM_VARIABLES": "var",  # a key without a value takes the variable...
        # ... NOT_SET_ANYWHERE is left out (Compose does not set it)
        "INTERPOLATED": "localhost:81", "DB_PASSWORD": "s3cret-value",
    }


def test_environment_list_form(out):
    assert _environment(out, "env-list") == {"A": "1", "B": "x=y", "FROM_VARIABLES": "var"}


# ----------------------------------------------------------------------------- filesystem

def test_filesystem(out):
    pod = _workload(out, "files")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: (volumes[m["name"]], m.get("readOnly", False), m.get("subPath"))
              for m in container["volumeMounts"]}
    claim = mounts["/var/lib/data"][0]["persistentVolumeClaim"]["claimName"]
    # the same named volume in two places is one claim, read-only where Compose says :ro
    assert mounts["/backup"][0]["persistentVolumeClaim"]["claimName"] == claim == "fid-data"
    assert (mounts["/var/lib/data"][1], mounts["/backup"][1]) == (False, True)
    assert mounts["/anonymous"][0]["emptyDir"] == {}
    assert mounts["/tmp/cache"][0]["emptyDir"] == {"medium": "Memory"}
    assert mounts["/run"][0]["emptyDir"] == {"medium": "Memory"}
    secret_volume, read_only, key = mounts["/run/secrets/token"]
    assert read_only and key == "token" and secret_volume["secret"]["secretName"] == "fid-token"
    secret = next(d for d in out["objects"]["files"] if d["kind"] == "Secret")
    assert base64.b64decode(secret["data"][key]).decode() == "tok-0000000001"
    config_volume, _ro, config_key = mounts["/etc/app/app.conf"]
    config = next(d for d in out["objects"]["files"] if d["kind"] == "ConfigMap")
    assert config_volume["configMap"]["name"] == config["metadata"]["name"] and config["data"][config_key] == \
        "key = value"
    assert container["workingDir"] == "/srv"
    assert container["securityContext"] == {"readOnlyRootFilesystem": True, "runAsUser": 1000, "runAsGroup": 2000}
    assert any(d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] == claim for d in out["objects"]["files"])


# ----------------------------------------------------------------------------- ports

def test_ports(out):
    container = _container(out, "ports")
    exposed = {(p["containerPort"], p["protocol"]) for p in container["ports"]}
    assert exposed == {(80, "TCP"), (443, "TCP"), (53, "UDP"), (9000, "TCP"), (7000, "TCP"), (7001, "UDP")}
    service = next(d for d in out["objects"]["ports"] if d["kind"] == "Service")
    # other services reach the container port by the Service name, as Compose services reach it by service name
    assert {(p["port"], p["targetPort"], p["protocol"]) for p in service["spec"]["ports"]} == {
        (port, port, proto) for port, proto in exposed}
    assert service["spec"]["selector"] == _workload(out, "ports")["spec"]["selector"]["matchLabels"]


# ----------------------------------------------------------------------------- restart

@pytest.mark.parametrize("service,kind,policy,backoff", [
    ("restart-always", "Deployment", "Always", None),
    ("restart-unless", "Deployment", "Always", None),
    # Compose's default is "no" but a service without restart is a long-running one in practice: kept a Deployment
    ("restart-default", "Deployment", "Always", None),
    ("restart-no", "Job", "Never", 0),
    ("restart-failure", "Job", "OnFailure", 4),
])
def test_restart(out, service, kind, policy, backoff):
    workload = _workload(out, service)
    assert workload["kind"] == kind
    # a Deployment's pods always restart (restartPolicy Always, the only value it accepts: unset means Always)
    assert workload["spec"]["template"]["spec"].get("restartPolicy", "Always") == policy
    assert workload["spec"].get("backoffLimit") == backoff


# ----------------------------------------------------------------------------- probes

def test_probe_cmd(out):
    probe = _container(out, "probe-cmd")["livenessProbe"]
    assert probe == {"exec": {"command": ["pg_isready", "-U", "app"]}, "periodSeconds": 15, "timeoutSeconds": 5,
                     "failureThreshold": 4, "initialDelaySeconds": 60}
    assert _container(out, "probe-cmd")["readinessProbe"] == probe


def test_probe_shell_and_defaults(out):
    probe = _container(out, "probe-shell")["livenessProbe"]
    # CMD-SHELL runs through /bin/sh -c; Compose's defaults: interval 30s, timeout 30s, retries 3
    assert probe == {"exec": {"command": ["/bin/sh", "-c", "redis-cli ping | grep PONG"]}, "periodSeconds": 30,
                     "timeoutSeconds": 30, "failureThreshold": 3}


def test_probe_http_and_sub_second_interval(out):
    probe = _container(out, "probe-http")["livenessProbe"]
    assert probe["httpGet"] == {"path": "/health", "port": 3000, "scheme": "HTTP"}
    assert probe["periodSeconds"] == 1  # 500ms rounds up to Kubernetes' smallest period


def test_probe_none(out):
    assert "livenessProbe" not in _container(out, "probe-none")
