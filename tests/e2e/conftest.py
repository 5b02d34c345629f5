"""Shared pieces of the end-to-end tests on the lab: the playbook runner, the lab fixture and the
writer that posts items through the edge and checks, at the end, that every acknowledged one is in the
Redis and the Qdrant that are primary then.

Real: Docker engine, nginx-proxy with TLS, Redis, HAProxy on the lab node. Stand-in: Qdrant
(tests/standins/qdrant_server.py, checked against Qdrant's OpenAPI document).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request

import pytest
import redis
import requests

from support.figures import write_figure

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EDGE = "https://127.0.0.1:18443"
REDIS = {"compose": 16379, "k3s": 26379}
QDRANT = {"compose": "http://127.0.0.1:16333", "k3s": "http://127.0.0.1:26333"}
LEDGER = os.path.join(ROOT, "lab-state", "ledger.json")


def _traffic():
    """The traffic tests' helpers (tests/integration/traffic/traffic_support.py: wrk load, its summary)."""
    folder = os.path.join(ROOT, "tests", "integration", "traffic")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module("traffic_support")


def mixed_load(work: str, edge: str, routes: list[str], host: str | None = None, client_timeout: int | None = None):
    """wrk (20 keep-alive connections, paced) through ``edge``: GETs rotating over ``routes`` and, every other request,
    a POST to one of the two stateful APIs (the static dashboard answers POST with 405). ``host``: the Host header
    (staging reaches the node by address); ``client_timeout``: a client's patience instead of wrk's 5 s (a request
    held by a write freeze is answered late, not failed)."""
    load = _traffic().Load(work, edge + routes[0])
    if client_timeout:
        load.argv[load.argv.index("--timeout") + 1] = str(client_timeout)
    host_field = f'["Host"] = "{host}", ' if host else ""
    with open(load.script, "w") as handle:
        handle.write(textwrap.dedent("""\
            local paths = {%s}
            local posts = {"/api/context/x", "/api/research/y"}
            local get = {%s}
            local post = {%s["Content-Type"] = "application/json"}
            local n = 0
            request = function()
              n = n + 1
              if n %% 2 == 0 then
                local path = posts[((n / 2) %% #posts) + 1]
                return wrk.format("POST", path, post, '{"n": ' .. n .. '}')
              end
              return wrk.format("GET", paths[(((n - 1) / 2) %% #paths) + 1], get)
            end
            delay = function() return 40 end
            done = function(summary, latency, requests)
              io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d %%d %%d\\n", summary.requests,
                summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
                summary.errors.timeout, latency:percentile(99), latency:percentile(50)))
            end
            """) % (", ".join(f'"{p}"' for p in routes), host_field.rstrip(", "), host_field))
    return load.start()


def during_load(tmp_path, edge: str, routes: list[str], writer, run, label: str, side: str | None = None,
                **load_options) -> tuple:
    """``run()`` while wrk (mixed_load) and ``writer`` go through ``edge``; prints the counts under ``label``.
    ``side``: where every acknowledged write must be afterwards (default: the side whose Redis is primary then).
    Returns (run's result, wrk's result, the writes lost per store)."""
    load = mixed_load(str(tmp_path), edge, routes, **load_options)
    writer.start()
    try:
        res = run()
        time.sleep(2)
    finally:
        writer.stop()
        result = load.stop()
    lost = writer.lost(side)
    line = f"{label}: {_traffic().summary(result)}; " + writer.report("", lost).lstrip(": ")
    print("\n" + line)
    # the rehearsal runs its files beside each other (pytest-xdist hides a worker's output): the counts are also a
    # figure, which `make test` prints at the end
    write_figure("rehearsal-" + re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:60], line)
    return res, result, lost


def side_at(edge: str, path: str, timeout: float = 10) -> tuple[str, str]:
    """(service, side) of the answer to ``path`` through ``edge`` (Host www.sophia-intel.ai, any certificate)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    req = urllib.request.Request(edge + path, headers={"Host": "www.sophia-intel.ai"})
    with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:
        body = json.loads(resp.read())
        return body["service"], body["side"]


def playbook(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "PATH": os.path.join(ROOT, ".venv", "bin") + os.pathsep + os.environ["PATH"]}
    return subprocess.run(["ansible-playbook", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def playbook_env() -> dict[str, str]:
    return {**os.environ, "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
            "PATH": os.path.join(ROOT, ".venv", "bin") + os.pathsep + os.environ["PATH"]}


def explain(out: str, tail: int = 3000) -> str:
    """A failed run's story for an assertion message: every failing task (its header and result) first, since
    a CI summary shows only the message's start, then the end of the output."""
    lines, found, task = out.splitlines(), [], ""
    for n, line in enumerate(lines):
        if line.startswith("TASK ["):
            task = line
        elif line.startswith(("fatal:", "failed:")):
            found += [task, *lines[n : n + 12]]
    return "\n".join([*found, "--- end of the output:", out[-tail:]])


def recap_changed(out: str) -> int:
    return sum(int(line.split("changed=")[1].split()[0]) for line in out.splitlines() if " changed=" in line)


def changed_tasks(out: str) -> list[str]:
    """The tasks of a run that reported a change, as 'TASK [role : name] -> host' (a loop's items count once)."""
    found, task = [], ""
    for line in out.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line.split("]")[0] + "]"
        elif line.startswith("changed: [") and task:
            entry = f"{task} -> {line.split('[')[1].split(']')[0]}"
            if entry not in found:
                found.append(entry)
    return found


def ledger() -> dict:
    with open(LEDGER) as handle:
        return json.load(handle)


def primary() -> str:
    """The side whose Redis is primary now: before the migration both are stand-alone primaries and the
    clients' endpoint is on Compose; after the cutover the Compose Redis replicates from the K3s one (or,
    after Phase 2D, is stopped); after a rollback the K3s Redis replicates from the Compose one."""
    return Stores().primary()


class Stores:
    """Where the writer checks its items: the lab's Redis and Qdrant on loopback ports, no credentials.
    tests/e2e/test_staging.py passes its own (the node's addresses, the staging secrets)."""

    def __init__(self, redis_at: dict[str, tuple[str, int]] | None = None, qdrant_at: dict[str, str] | None = None,
                 password: str | None = None, api_key: str | None = None):
        self.redis_at = redis_at or {side: ("127.0.0.1", port) for side, port in REDIS.items()}
        self.qdrant_at = qdrant_at or QDRANT
        self.password, self.headers = password, ({"api-key": api_key} if api_key else {})

    def redis(self, side: str) -> redis.Redis:
        host, port = self.redis_at[side]
        return redis.Redis(host=host, port=port, password=self.password, socket_connect_timeout=2)

    def qdrant(self, side: str) -> tuple[str, dict[str, str]]:
        return self.qdrant_at[side], self.headers

    def primary(self) -> str:
        """The side whose Redis is primary (see primary())."""
        if self.redis("k3s").info("replication")["role"] == "slave":
            return "compose"
        try:
            compose = self.redis("compose").info("replication")["role"]
        except redis.exceptions.ConnectionError:
            return "k3s"
        return "k3s" if compose == "slave" else "compose"


class Writer(threading.Thread):
    """POSTs items through the edge to mcp-context and mcp-research (Redis SET + Qdrant upsert on the side
    that answers) and remembers each acknowledged one. A write held by a data freeze is not a failure; the
    timeout is long enough for the freeze (data_migration_freeze_max_seconds)."""

    def __init__(self, timeout: float = 170, edge: str = EDGE, stores: Stores | None = None):
        super().__init__(daemon=True)
        self.edge, self.stores = edge, stores or Stores()
        self.halt = threading.Event()
        self.acked: dict[str, str] = {}
        self.failed = 0
        self.why: list[str] = []  # the first failures, each with its time and cause
        self.slowest = 0.0
        self.timeout = timeout
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname, self.ctx.verify_mode = False, ssl.CERT_NONE

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            n += 1
            item = f"e2e-{os.getpid()}-{time.time_ns()}-{n}"
            service = "context" if n % 2 else "research"
            req = urllib.request.Request(f"{self.edge}/api/{service}/items", method="POST",
                                         data=json.dumps({"id": item, "value": str(n)}).encode(),
                                         headers={"Content-Type": "application/json", "Host": "www.sophia-intel.ai"})
            started = time.monotonic()
            try:
                with urllib.request.urlopen(req, context=self.ctx, timeout=self.timeout) as resp:
                    body = json.loads(resp.read())
                    if resp.status == 201:
                        self.acked[item] = body["side"]
                    else:
                        self.fail(f"{service} answered {resp.status}: {str(body)[:200]}")
            except OSError as exc:  # HTTPError (a non-2xx answer) included
                detail = exc.read()[:200].decode(errors="replace") if isinstance(exc, urllib.error.HTTPError) else ""
                self.fail(f"{service}: {exc!r} {detail}".strip())
            self.slowest = max(self.slowest, time.monotonic() - started)
            time.sleep(0.05)

    def fail(self, why: str) -> None:
        self.failed += 1
        if len(self.why) < 5:
            self.why.append(f"{time.strftime('%H:%M:%S')} {why}")

    def stop(self) -> None:
        self.halt.set()
        self.join(self.timeout + 10)

    def lost(self, side: str | None = None) -> dict[str, list[str]]:
        """Acknowledged items missing from the Redis and from the Qdrant of ``side`` (default the primary)."""
        side = side or self.stores.primary()
        client = self.stores.redis(side)
        in_qdrant, offset = set(), None
        url, headers = self.stores.qdrant(side)
        while True:
            body = {"limit": 1000, "with_payload": True, "with_vector": False, **({"offset": offset} if offset else {})}
            page = requests.post(f"{url}/collections/sophia/points/scroll", json=body, headers=headers,
                                 timeout=30).json()
            in_qdrant.update(p["payload"].get("item") for p in page["result"]["points"])
            offset = page["result"].get("next_page_offset")
            if offset is None:
                break
        return {"redis": [i for i in self.acked if client.get(f"sophia:item:{i}") is None],
                "qdrant": [i for i in self.acked if i not in in_qdrant]}

    def diagnosis(self, lost: dict[str, list[str]]) -> dict:
        """Where the story went wrong, for an assertion message: each side's Redis role (and its primary), the
        acknowledged items per answering side, and for a few lost items whether each side's stores hold them."""
        sides: dict[str, dict] = {}
        for side in self.stores.redis_at:
            try:
                info = self.stores.redis(side).info("replication")
                sides[side] = {k: info.get(k) for k in ("role", "master_host", "master_port", "master_link_status")}
            except redis.exceptions.RedisError as exc:
                sides[side] = {"error": repr(exc)}
        answered: dict[str, int] = {}
        for side in self.acked.values():
            answered[side] = answered.get(side, 0) + 1
        sample = sorted({*lost.get("redis", [])[:3], *lost.get("qdrant", [])[:3]})
        found = {}
        for item in sample:
            found[item] = {"answered": self.acked.get(item)}
            for side in self.stores.redis_at:
                try:
                    in_redis = self.stores.redis(side).get(f"sophia:item:{item}") is not None
                except redis.exceptions.RedisError as exc:
                    in_redis = repr(exc)
                url, headers = self.stores.qdrant(side)
                try:
                    query = {"limit": 1, "filter": {"must": [{"key": "item", "match": {"value": item}}]},
                             "with_payload": False, "with_vector": False}
                    page = requests.post(f"{url}/collections/sophia/points/scroll", headers=headers, timeout=30,
                                         json=query).json()
                    in_qdrant = bool(page["result"]["points"])
                except (requests.RequestException, KeyError, ValueError) as exc:
                    in_qdrant = repr(exc)
                found[item][side] = {"redis": in_redis, "qdrant": in_qdrant}
        return {"failures": self.why, "redis": sides, "acknowledged by side": answered, "lost items": found,
                "lost counts": {store: len(items) for store, items in lost.items()}}

    def report(self, label: str, lost: dict[str, list[str]]) -> str:
        return (f"{label}: writes acknowledged {len(self.acked)}, failed {self.failed}, lost in Redis "
                f"{len(lost['redis'])}, lost in Qdrant {len(lost['qdrant'])}, slowest {self.slowest:.1f}s"
                + (f"; failures: {' | '.join(self.why)}" if self.why else ""))


@pytest.fixture(scope="session")
def lab():
    res = playbook("playbooks/lab.yml")
    assert res.returncode == 0, explain(res.stdout)
    res = playbook("playbooks/phase2a.yml")
    assert res.returncode == 0, explain(res.stdout)
    # every test starts from the Compose side, whatever an earlier run left: the rollback walks the ledger
    res = playbook("playbooks/rollback.yml")
    assert res.returncode == 0, explain(res.stdout)
    # The splitter in front of every route at 0% K3s, before any load: pointing the edge at it is a one-time nginx
    # reload, and a reload closes idle keep-alive connections, which wrk counts as read errors when it had just
    # sent on one (about 20 in 90,000 requests; docs/traffic_shift.md). A rollback leaves the splitter in place.
    res = playbook("playbooks/phase2b.yml", "--tags", "traffic_shift", "-e", "traffic_shift_target_weight=0")
    assert res.returncode == 0, explain(res.stdout)
    return True
