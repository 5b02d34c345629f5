"""Every module, hostile values for each of its options: a clean JSON result (failed or not), never a crash or a hang.

For each module in plugins/modules/ the test reads its argument_spec (by running ``main()`` up to the construction
of ``AnsibleModule``), starts from a small valid argument set (base_args(): loopback endpoints on closed ports, files
in tmp_path), and then, option by option (suboptions and the keys of list/dict elements included), replaces the
value with hostile ones chosen by the option's type: wrong types, empty / 100 KB / control-character / unicode /
injection-looking / path-traversal strings, huge and negative numbers, NaN and infinity, missing paths, a directory
where a file is expected, non-UTF-8 files, random bytes where an archive or a document is expected, malformed and
unreachable URLs. runner.py runs every case in a forked child with a hard timeout, the network fenced to loopback.

A case fails on an exception escaping ``main()`` (ansible-core 2.19 reports it as "Module failed: ..."), on output
that is not the module's JSON result, and on a hang.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from ansible.module_utils import basic
from unit.tls import certgen

from ansible_collections.sophia.migrate.plugins.module_utils import _gpu

ROOT = Path(__file__).resolve().parents[3]
MODULES_DIR = ROOT / "plugins" / "modules"
RUNNER = Path(__file__).with_name("runner.py")
MODULES = sorted(p.stem for p in MODULES_DIR.glob("*.py") if not p.stem.startswith("_"))
CASE_TIMEOUT = 10.0  # seconds for one module run; every endpoint is a closed loopback port, nothing should wait
MODULE_DEADLINE = 150.0  # seconds for all the cases of one module
MARKER = "hostile-injected"  # what the injection-looking strings would create if a shell ever ran them

# --- hostile values ------------------------------------------------------------------------------------------
LONG = "A" * 100_000
CTRL = "nul\x00byte\nnew line\r\n\ttab\x1b[31mescape\x7f\x08"
INJECT = f"$(touch {MARKER}); touch {MARKER} #`touch {MARKER}`|| true"
TRAVERSAL = "../../../etc/passwd"
STRUCTURED = 'key: [unclosed\n- {"a": !!python/object/apply:os.system ["touch ' + MARKER + '"]}\n{"json": '
UNICODE = "ünïcødé ✓ \u202eevil\u202c 🙂 \u3000 Ω"
STRINGS: list[t.Any] = ["", LONG, CTRL, INJECT, TRAVERSAL, STRUCTURED, UNICODE, {"a": [1]}]
ENDPOINTS: list[t.Any] = [
    "", "http://[::1", "::bad::", "http://127.0.0.1:99999/", "ftp://x", "http://user:p%40ss@127.0.0.1:1/",
    "redis://:p@[::1:6379/0", "http://127.0.0.1:1/" + "a" * 100_000, "http://127.0.0.1:1/\r\nX-Injected: 1", INJECT,
    [1],
]
INTS: list[t.Any] = ["abc", 10**30, -(10**30), -1, 0, [1]]
FLOATS: list[t.Any] = ["abc", "nan", "inf", 10**30, -1, 0]
BOOLS: list[t.Any] = ["abc", [1]]
CHOICES: list[t.Any] = ["not-a-choice", {"a": 1}]
DICTS: list[t.Any] = [
    "abc", [1], {"": None}, {"k": {"deep": [None, 10**30]}}, {"K" * 10_000: CTRL}, {INJECT: TRAVERSAL},
]
RAWS: list[t.Any] = [None, "", LONG, [1, {"a": None}], {"a": [None]}, 10**30, CTRL]
ENDPOINT_WORDS = ("url", "host", "runtime_api", "location", "nameservers", "docker_host")


class Files:
    """The file-system side of the hostile values, all under tmp_path; the cases run in ``cwd`` (deep enough
    that ``../../../etc/passwd`` stays inside tmp_path)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.cwd = tmp_path / "cwd" / "a" / "b" / "c"
        self.cwd.mkdir(parents=True)
        # where modules write (dest, directory, ledger): a name option that lets ../../../etc/passwd out of its
        # directory ends up in out_root / "x" / "etc", still in tmp_path, and the test sees it
        self.out_root = tmp_path / "out"
        self.out = self.out_root / "x" / "y" / "z"
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.tmpdir = tmp_path / "tmpdir"
        self.tmpdir.mkdir()
        self.missing = tmp_path / "missing" / "nothing.yml"
        self.directory = tmp_path / "a-directory"
        self.directory.mkdir()
        (self.directory / "inside.txt").write_text("x\n", encoding="utf-8")
        self.non_utf8 = tmp_path / "latin1.yml"
        self.non_utf8.write_bytes(b"name: caf\xe9\nkey: \xff\xfe\x00\xc3\x28 value\n")
        self.random = tmp_path / "random.tar.gz"
        self.random.write_bytes(random.Random(0).randbytes(8192))
        self.empty = tmp_path / "empty.yml"
        self.empty.write_bytes(b"")
        self.paths: list[t.Any] = [
            str(self.missing), str(self.directory), str(self.non_utf8), str(self.random), str(self.empty), "",
            TRAVERSAL, "a\x00b", "x" * 5000, [1],
        ]

    def file(self, name: str, text: str) -> str:
        path = self.tmp / "inputs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return str(path)

    def dir(self, name: str) -> str:
        path = self.tmp / "inputs" / name
        path.mkdir(parents=True, exist_ok=True)
        return str(path)


# --- a valid starting point per module -----------------------------------------------------------------------
CLOSED = "http://127.0.0.1:1"
TEST_CA_PEM = certgen.ca().pem.decode()  # a real CA certificate: a CA bundle OpenSSL loads
NO_DOCKER = "unix:///nonexistent/hostile-input-docker.sock"
COMPOSE = """\
name: demo
services:
  web:
    image: nginx:1.27
    ports: ["8080:80"]
    environment: {MODE: prod, API_TOKEN: s3cret}
    volumes: [data:/data]
  redis:
    image: redis:7
volumes:
  data: {}
"""
NGINX = """\
events {}
http {
  upstream api { server 127.0.0.1:8001; }
  server {
    listen 80;
    server_name www.example.test;
    location / { root /srv/www; }
    location /api/ { proxy_pass http://api/; }
  }
}
"""
PROMETHEUS = """\
global: {scrape_interval: 15s}
scrape_configs:
  - job_name: web
    static_configs: [{targets: ["web:8080"]}]
"""
DASHBOARD = json.dumps({"title": "Demo", "uid": "demo", "panels": [
    {"type": "graph", "title": "rps", "datasource": "Prometheus", "targets": [{"expr": "rate(x[1m])"}]}]})
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: demo}\ndata: {a: b}\n"
GPU_CSV = (ROOT / "tests" / "fixtures" / "gpu" / "a10.csv").read_text(encoding="utf-8")
GPU_LIST = (ROOT / "tests" / "fixtures" / "gpu" / "a100_mig.L.txt").read_text(encoding="utf-8")
FLY = {"api_token": "t0ken", "api_url": CLOSED + "/v1", "graphql_url": CLOSED + "/graphql", "timeout": 0.5,
       "retries": 0, "backoff": 0}
# validate_certs false: no CA bundle to load per run (the hostile TLS file options are still checked)
QDRANT = {"url": CLOSED, "timeout": 0.5, "retries": 0, "backoff": 0, "validate_certs": False}
REDIS = {"host": "127.0.0.1", "port": 1, "connect_timeout": 0.5}
FLY_INFO = {"name": "a", "exists": True, "forbidden": False, "machines": [], "volumes": [], "certificates": [],
            "ips": [], "secret_names": [], "incomplete": []}


def base_args(name: str, f: Files) -> dict[str, t.Any]:
    """A small valid argument set for module ``name``: it runs, and fails only on the closed endpoints."""
    table: dict[str, t.Callable[[], dict[str, t.Any]]] = {
        "compose_project_info": lambda: {"project": "demo", "services": ["web"], "docker_host": NO_DOCKER},
        "compose_service_idle": lambda: {"project": "demo", "service": "web", "window": 0.1,
                                         "docker_host": NO_DOCKER},
        "compose_to_k8s": lambda: {"src": [f.file("compose.yml", COMPOSE)], "project_name": "demo",
                                   "dest": str(f.out / "manifests"), "namespace": "demo",
                                   "stateful": ["redis"], "secret_env": ["API_TOKEN"], "variables": {"TAG": "1"},
                                   "gpu_plan": {"services": {"web": {"gpus": 1, "resource": "nvidia.com/gpu"}}},
                                   "volume_sizes": {"data": "2Gi"}, "validate": False},
        "dns_check": lambda: {"hosts": ["www.example.test",
                                        {"name": "api.example.test", "expected_addresses": ["192.0.2.1"]}],
                              "expected_addresses": ["192.0.2.1"], "nameservers": ["127.0.0.1"], "port": 1,
                              "timeout": 0.05},
        "flyio_app": lambda: {**FLY, "name": "app-a", "confirm": "app-a", "backup": ["data"], "wait": False},
        "flyio_app_info": lambda: {**FLY, "org": "org-a", "apps": ["app-a"]},
        "flyio_audit_report": lambda: {"apps": ["a"], "infos": [dict(FLY_INFO)],
                                       "scan": {"references": [], "files_scanned": 1, "missing_paths": []},
                                       "backups": {"a": {"vol_1": str(f.random)}},
                                       "destroyed": [{"name": "a", "deleted": True, "msg": "deleted"}],
                                       "dns_results": [{"host": "a.fly.dev", "addresses": []}],
                                       "http_results": [{"url": "https://a.fly.dev", "status": 200}],
                                       "skipped_steps": ["none"], "directory": str(f.out / "reports"),
                                       "run_id": "r1", "environment": "lab", "api": "stand-in",
                                       "repo_paths": [f.dir("repo")]},
        "flyio_repo_scan": lambda: {"paths": [f.dir("repo"), f.file("repo/fly.toml", 'app = "app-a"\n')]},
        "gpu_facts": lambda: {"nvidia_smi": str(f.missing), "query_output": GPU_CSV, "list_output": GPU_LIST},
        "gpu_plan": lambda: {"gpus": _gpu.parse_query_csv(GPU_CSV), "requests": {"web": 1}},
        # probes[0] is a tls probe (its keys get the hostile values); the http keys get them through baseline.probe
        "health_gate": lambda: {"probes": [{"name": "edge", "type": "tls", "host": "127.0.0.1", "port": 1,
                                            "server_name": "www.example.test", "min_days": 14, "timeout": 0.3,
                                            "ca_path": f.file("tls/probe-ca.pem", TEST_CA_PEM),
                                            "expected_sha256": "ab" * 32, "expected_issuer": "R11"},
                                           {"name": "web", "type": "http", "url": CLOSED + "/health",
                                            "timeout": 0.3, "expected_status": [200],
                                            "success_condition": {"max_latency_ms": 500}}],
                                "baseline": {"candidate": "web", "probe": {"name": "old", "type": "http",
                                                                           "url": CLOSED + "/old", "timeout": 0.3}},
                                "interval": 0, "count": 1},
        "k8s_manifest_validate": lambda: {"paths": [f.file("manifests/cm.yaml", CONFIGMAP)],
                                          "schema_dirs": [f.dir("schemas")]},
        "ledger": lambda: {"path": str(f.out / "ledger.json"), "step": "demo/step", "phase": "p1",
                           "data": {"a": 1}, "undo": {"action": "noop"}, "key": "k", "value": 1},
        "migration_report": lambda: {"directory": str(f.out / "reports"), "run_id": "r1", "phase": "p1",
                                     "steps": [{"name": "s", "outcome": "ran"}], "limitations": ["none"],
                                     "artifacts": [{"name": "a", "path": str(f.empty)}]},
        "monitoring_translate": lambda: {"prometheus_config": f.file("prometheus.yml", PROMETHEUS),
                                         "dashboards_dir": str(Path(f.file("dashboards/demo.json", DASHBOARD)).parent),
                                         "services": {"web": "web"}, "datasource_map": {"Prometheus": "p"}},
        "nginx_routes": lambda: {"path": f.file("nginx/nginx.conf", NGINX), "hosts": ["www.example.test"]},
        "migration_status": lambda: {"ledger_path": str(f.out / "ledger.json"), "directory": str(f.out / "status"),
                                     "live_shares": {"www-root": 100}},
        "nginx_edge": lambda: {"config": f.file("edge/nginx.conf", NGINX),
                               "routes": [{"name": "api", "host": "www.example.test", "path": "/api",
                                           "splitter": "127.0.0.1:9101"}]},
        "qdrant_compare": lambda: {"source": dict(QDRANT), "target": dict(QDRANT), "collection": "c",
                                   "search_samples": 1},
        "qdrant_snapshot": lambda: {**QDRANT, "collection": "c", "state": "listed",
                                    "dest": str(f.out / "snap"), "src": str(f.random),
                                    "source": {"url": CLOSED}},
        "redis_migrate": lambda: {"mode": "verify", "source": dict(REDIS), "target": dict(REDIS),
                                  "replicaof": {"host": "127.0.0.1", "port": 1}, "databases": [0],
                                  "dest": str(f.out / "dump.rdb"), "sync_timeout": 1, "cutover_timeout": 1},
        "route_latency": lambda: {"urls": [CLOSED], "paths": ["/health"], "headers": {"Host": "www.example.test"},
                                  "count": 2, "concurrency": 2, "timeout": 0.5, "compare_urls": [CLOSED],
                                  "compare_paths": ["/"], "latency_floor_ms": 10},
        "splitter_hold": lambda: {"runtime_api": str(f.tmp / "haproxy.sock"), "backend": "route_x",
                                  "servers": ["compose1"], "state": "held", "park": "127.0.0.1:1",
                                  "addresses": {"compose1": "127.0.0.1:9101"}, "timeout": 0.5},
        "splitter_weight": lambda: {"runtime_api": str(f.tmp / "haproxy.sock"), "backend": "route_x",
                                    "old_servers": ["compose1"], "new_servers": ["k3s1"], "share": 25,
                                    "state_file": str(f.out / "server-state"), "timeout": 0.5},
        "success_criteria": lambda: {"prometheus_url": CLOSED, "latency_selectors": {"web": '{service="web"}'},
                                     "latency_baseline": {"web": 0.12},
                                     "ledger_path": str(f.out / "ledger.json")},
        "tls_check": lambda: {"targets": [{"host": "www.example.test", "address": "127.0.0.1", "port": 1,
                                           "expect_sha256": "ab" * 32, "expect_issuer": "R11"}],
                              "ca_bundle": f.file("tls/ca.pem", "-----BEGIN CERTIFICATE-----\nAA==\n"
                                                  "-----END CERTIFICATE-----\n"), "timeout": 0.5, "min_days": 14},
        "tls_import": lambda: {"hosts": ["www.example.test"],
                               "servers": [{"names": ["www.example.test"], "tls": True, "ports": [443],
                                            "ssl_certificate": "/etc/x/cert.pem", "ssl_certificate_key": "key.pem",
                                            "file": "nginx.conf", "line": 1}],
                               "certificates": [{"host": "api.example.test", "cert_file": str(f.empty),
                                                 "key_file": str(f.random)}],
                               "path_map": {"/etc/x": f.dir("tls/x")}, "prefix": f.dir("tls/conf"),
                               "contents": {str(f.empty): "Y2VydA==", str(f.random): "!!"},
                               "read_errors": {"/x": "file not found: /x"},
                               "ca_bundle": f.file("tls/ca.pem", "-----BEGIN CERTIFICATE-----\nAA==\n"
                                                   "-----END CERTIFICATE-----\n"), "min_days": 0},
        "tree_compare": lambda: {"source": f.dir("tree/src"), "target": f.dir("tree/dst")},
        "manifest_files": lambda: {"files": [{"name": "a.yaml", "content": "kind: A\n"}],
                                   "dest": [f.dir("manifest_files/one"), f.dir("manifest_files/two")], "mode": "0600"},
        "usage_report": lambda: {"prometheus_url": CLOSED, "timeout": 0.5, "namespace": "demo",
                                 "workloads": ["web"]},
        "volume_backup": lambda: {"source": f.dir("volume"), "dest": str(f.out / "backup.tar.gz"),
                                  "ledger_path": str(f.out / "ledger.json"), "ledger_step": "backup/x"},
        "k8s_schedulable": lambda: {"paths": [f.dir("manifests")], "runtime_classes": ["nvidia"],
                                    "nodes": [{"name": "gpu-1", "labels": {"nvidia.com/gpu.present": "true"},
                                               "gpus": 1, "time_slicing_replicas": 1}]},
        "k8s_verify": lambda: {"kubeconfig": str(f.random), "timeout": 0.5,
                               "expect": {"gpu_node": "gpu-1", "gpu_allocatable": 1}},
    }
    return table[name]()


# --- reading the argument_spec -------------------------------------------------------------------------------
class _Captured(Exception):
    pass


def argument_spec(name: str) -> dict[str, t.Any]:
    """The module's argument_spec, as its main() passes it to AnsibleModule (nothing hand-copied)."""
    module = importlib.import_module(f"ansible_collections.sophia.migrate.plugins.modules.{name}")

    def capture(self: t.Any, argument_spec: dict[str, t.Any], **_kwargs: t.Any) -> None:
        raise _Captured(argument_spec)

    real = basic.AnsibleModule.__init__
    basic.AnsibleModule.__init__ = capture  # type: ignore[method-assign]
    try:
        module.main()
    except _Captured as captured:
        return captured.args[0]
    finally:
        basic.AnsibleModule.__init__ = real  # type: ignore[method-assign]
    raise AssertionError(f"{name}: main() did not create an AnsibleModule")


# --- the cases -----------------------------------------------------------------------------------------------
def _inferred(value: t.Any) -> dict[str, t.Any]:
    """A spec for a key of a free-form dict (no suboptions declared), from the base value."""
    for kind, types in (("bool", bool), ("int", int), ("float", float), ("str", str), ("dict", dict),
                        ("list", list)):
        if isinstance(value, types):
            return {"type": kind}
    return {"type": "raw"}


def hostile_values(name: str, spec: dict[str, t.Any], files: Files) -> list[t.Any]:
    kind = spec.get("type", "str")
    if spec.get("choices"):
        values = list(CHOICES)
        return [[v] for v in values] + ["not-a-choice"] if kind == "list" else values
    endpoint = any(word in name for word in ENDPOINT_WORDS)
    if kind == "list":
        element = spec.get("elements", "str")
        inner = hostile_values(name, {"type": element}, files) if element != "dict" else []
        lists: list[t.Any] = ["abc,def", [], [None], [{"a": 1}] if element != "dict" else ["not-a-dict"],
                              {"a": 1}]
        return lists + [[v] for v in inner[:6]]
    if kind == "path":
        return files.paths
    if kind == "str":
        return ENDPOINTS if endpoint else STRINGS
    return {"int": INTS, "float": FLOATS, "bool": BOOLS, "dict": DICTS}.get(kind, RAWS)


def _sub_mutations(spec: dict[str, t.Any], value: t.Any, files: Files) -> t.Iterator[tuple[str, t.Any]]:
    """Hostile variants of one (dict or list-of-dict) option value, one nested key at a time."""
    kind = spec.get("type", "str")
    if kind == "list" and spec.get("elements") == "dict" and isinstance(value, list) and value:
        for label, element in _sub_mutations({"type": "dict", "options": spec.get("options")}, value[0], files):
            yield f"[0]{label}", [element, *value[1:]]
        return
    if kind != "dict" or not isinstance(value, dict):
        return
    options = spec.get("options") or {key: _inferred(val) for key, val in value.items()}
    for key, sub in options.items():
        for hostile in hostile_values(key, sub, files):
            yield f".{key}={_short(hostile)}", {**value, key: hostile}
        if key in value:
            for label, nested in _sub_mutations(sub, value[key], files):
                yield f".{key}{label}", {**value, key: nested}


def _short(value: t.Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:40] + f"...<{len(text)} chars>"


def cases(name: str, files: Files) -> list[tuple[str, dict[str, t.Any]]]:
    spec = argument_spec(name)
    base = base_args(name, files)
    out: list[tuple[str, dict[str, t.Any]]] = [("base", base)]
    covered: set[str] = set()  # suboption specs shared by several options (source / target) are covered once
    for option, option_spec in spec.items():
        for hostile in hostile_values(option, option_spec, files):
            out.append((f"{option}={_short(hostile)}", {**base, option: hostile}))
        shared = json.dumps(option_spec.get("options"), sort_keys=True, default=repr)
        if option_spec.get("options") and shared in covered:
            continue
        covered.add(shared)
        if option in base:
            for label, value in _sub_mutations(option_spec, base[option], files):
                out.append((f"{option}{label}", {**base, option: value}))
    return out


def run_cases(name: str, all_cases: list[tuple[str, dict[str, t.Any]]], files: Files) -> list[dict[str, t.Any]]:
    env = {k: v for k, v in os.environ.items()
           if not k.upper().endswith("_PROXY") and not k.startswith(("FLY_", "DOCKER_", "KUBECONFIG", "REDIS"))}
    env.update({"HOME": str(files.home), "TMPDIR": str(files.tmpdir), "DOCKER_HOST": NO_DOCKER, "NO_PROXY": "*",
                "PYTHONPATH": str(ROOT / ".ansible" / "collections"), "LC_ALL": "C.UTF-8"})
    request = {"module": name, "timeout": CASE_TIMEOUT, "deadline": MODULE_DEADLINE,
               "cases": [{"args": args, "cwd": str(files.cwd)} for _label, args in all_cases]}
    proc = subprocess.run([sys.executable, str(RUNNER)], input=json.dumps(request), capture_output=True, text=True,
                          env=env, cwd=str(files.cwd), timeout=MODULE_DEADLINE + 2 * CASE_TIMEOUT + 30, check=False)
    assert proc.returncode == 0, f"runner for {name} failed:\n{proc.stderr[-5000:]}"
    results = json.loads(proc.stdout)
    assert len(results) == len(all_cases)
    return results


def say(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """One line in pytest's own output (make test's log), even for a test that passes, with or without xdist."""
    with capsys.disabled():
        sys.stderr.write(line + "\n")


@pytest.mark.parametrize("name", MODULES)
def test_module_survives_hostile_values(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = Files(tmp_path)
    all_cases = cases(name, files)
    results = run_cases(name, all_cases, files)
    bad = [f"  {label}: {res['status']}\n    " + res["detail"].strip().replace("\n", "\n    ")
           for (label, _args), res in zip(all_cases, results, strict=True) if res["status"] != "ok"]
    say(capsys, f"hostile inputs: {name}: {len(all_cases)} cases, {len(bad)} crashed or hung, "
                f"{sum(r['seconds'] for r in results):.1f}s")
    assert not bad, f"{name}: {len(bad)} of {len(all_cases)} hostile cases crashed or hung:\n" + "\n".join(bad)
    injected = [str(p) for p in tmp_path.rglob(MARKER)]
    assert not injected, f"{name}: an injection-looking value was run by a shell: {injected}"
    escaped = [str(p) for p in files.out_root.rglob("passwd")]
    assert not escaped, f"{name}: a name option took ../../../etc/passwd out of its directory: {escaped}"
    assert results[0]["status"] == "ok"


def test_every_module_has_a_valid_base(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A module added to plugins/modules/ gets hostile inputs too: it needs a base argument set here."""
    files = Files(tmp_path)
    assert len(MODULES) >= 24
    total = 0
    for name in MODULES:
        assert isinstance(base_args(name, files), dict), name
        spec = argument_spec(name)
        count = len(cases(name, files))
        assert count > 3 * len(spec), f"{name}: only {count} cases for {len(spec)} options"
        total += count
    say(capsys, f"hostile inputs: {len(MODULES)} modules x {total} cases (each a run of the module)")
