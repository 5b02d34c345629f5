"""Real servers for the traffic_shift tests: Debian's nginx (two backends and a TLS edge), HAProxy
(the splitter, configured and driven by the role) and wrk (keep-alive load with POSTs).

Nothing here is a stand-in: the processes are the Debian packages. They run as plain processes in
a temporary directory (no systemd on the test host); the role starts and reloads HAProxy through
``traffic_shift_splitter_reload_command``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import textwrap
import threading
import time
import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils._haproxy import HaproxyError, RuntimeApi, share_of
from support.servers import nginx_main_conf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PLUGINS = os.path.join(ROOT, "plugins")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


class Nginx:
    """One nginx master (not daemonised) with the given http{} body."""

    def __init__(self, workdir: str, name: str, body: str, ports: list[int]):
        self.dir = os.path.join(workdir, name)
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.ports = ports
        with open(self.conf, "w") as handle:
            handle.write(nginx_main_conf(self.dir, body))
        self.proc: subprocess.Popen | None = None

    def start(self) -> Nginx:
        subprocess.run(["nginx", "-t", "-q", "-c", self.conf, "-p", self.dir], check=True)
        self.proc = subprocess.Popen(["nginx", "-c", self.conf, "-p", self.dir, "-g", "daemon off;"])
        for port in self.ports:
            wait_port(port)
        return self

    def command(self, *args: str) -> list[str]:
        return ["nginx", "-c", self.conf, "-p", self.dir, *args]

    def workers(self) -> set[int]:
        """The master's child processes now (its workers)."""
        children = set()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as handle:
                        if int(handle.read().rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                            children.add(int(entry))
                except (OSError, ValueError, IndexError):
                    continue
        return children

    def wait_gone(self, old: set[int], timeout: float = 15) -> None:
        """Returns once none of the ``old`` workers (taken before a reload) is left. `nginx -s reload` only signals the
        master: for a moment after it, an old worker may still accept a new connection and serve it with the old
        configuration (seen once under load: 1 request of 6 right after a verified edit)."""
        deadline = time.monotonic() + timeout
        while old & self.workers():
            assert time.monotonic() < deadline, f"old nginx workers left after {timeout} s: {old & self.workers()}"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def backends(workdir: str) -> tuple[Nginx, dict[str, int], dict[str, str]]:
    """Two backends ("compose" and "k3s"), each logging every request with its time ($msec)."""
    ports = {"compose": free_port(), "k3s": free_port()}
    health = {}
    servers = []
    for side, port in ports.items():
        root = os.path.join(workdir, f"{side}-root")
        os.makedirs(root, exist_ok=True)
        health[side] = os.path.join(root, "health")
        with open(health[side], "w") as handle:
            handle.write("ok\n")
        servers.append(f"""
            server {{
                listen 127.0.0.1:{port};
                keepalive_requests 100000;
                location = /health {{ access_log off; root {root}; try_files /health =503; }}
                location / {{
                    access_log {workdir}/backends/logs/{side}.log timed;
                    default_type text/plain;
                    return 200 "{side}\\n";
                }}
            }}""")
    body = "log_format timed '$msec $request_method $status';\n" + "\n".join(servers)
    return Nginx(workdir, "backends", body, list(ports.values())), ports, health


def edge(workdir: str, https_port: int, route_path: str, compose_port: int) -> Nginx:
    """The Compose side's nginx-proxy: TLS, an existing static location, and the route to migrate."""
    tls = os.path.join(workdir, "tls")
    os.makedirs(tls, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=www.sophia-intel.ai", "-keyout", f"{tls}/key.pem", "-out", f"{tls}/cert.pem"],
                   check=True, capture_output=True)
    body = f"""
        upstream splitter_keepalive {{ server 127.0.0.1:9; keepalive 8; }}
        server {{
            listen 127.0.0.1:{https_port} ssl;
            server_name www.sophia-intel.ai;
            ssl_certificate {tls}/cert.pem;
            ssl_certificate_key {tls}/key.pem;
            keepalive_requests 100000;
            location /static/ {{ default_type text/plain; return 200 "static\\n"; }}
            location {route_path} {{
                proxy_http_version 1.1;
                proxy_set_header Connection "";
                proxy_pass http://127.0.0.1:{compose_port};
            }}
        }}"""
    return Nginx(workdir, "edge", body, [https_port])


class Load:
    """wrk with keep-alive connections, half GET and half POST, paced to a target rate."""

    SCRIPT = textwrap.dedent("""\
        local n = 0
        request = function()
          n = n + 1
          if n % 2 == 0 then
            return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, '{"write": ' .. n .. '}')
          end
          return wrk.format("GET", nil)
        end
        delay = function() return DELAY end
        done = function(summary, latency, requests)
          io.write(string.format("RESULT %d %d %d %d %d %d %d %d\\n", summary.requests,
            summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
            summary.errors.timeout, latency:percentile(99), latency:percentile(50)))
        end
        """)

    def __init__(self, workdir: str, url: str, connections: int = 20, rate: int = 400):
        self.script = os.path.join(workdir, "load.lua")
        with open(self.script, "w") as handle:
            handle.write(self.SCRIPT.replace("DELAY", str(max(1, int(1000 * connections / rate)))))
        self.argv = ["wrk", "-t", "2", "-c", str(connections), "-d", "3600", "--timeout", "5", "-s", self.script, url]
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    def start(self) -> Load:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.started = time.monotonic()
        time.sleep(1)
        return self

    def stop(self) -> dict[str, t.Any]:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        out, _err = self.proc.communicate(timeout=30)
        match = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", out)
        assert match, out
        requests, connect, read, write, status, timeout, p99, p50 = map(int, match.groups())
        seconds = time.monotonic() - self.started
        return {"requests": requests, "socket_errors": connect + read + write + timeout, "non_2xx": status,
                "failed": connect + read + write + timeout + status, "rate": requests / seconds,
                "p99_ms": p99 / 1000, "p50_ms": p50 / 1000, "raw": out}


def summary(result: dict[str, t.Any]) -> str:
    return (f"{result['requests']} requests at {result['rate']:.0f}/s, failed {result['failed']} "
            f"(socket {result['socket_errors']}, non-2xx {result['non_2xx']})")


class ShareWatcher(threading.Thread):
    """Polls the splitter's live weights (Runtime API) to know when each share became live."""

    def __init__(self, socket_path: str, backend: str):
        super().__init__(daemon=True)
        self.api, self.share_of, self.backend = RuntimeApi(socket_path, 2), share_of, backend
        self.changes: list[tuple[float, int | None]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                live = self.api.servers(self.backend)
                share = self.share_of({n: s["weight"] for n, s in live.items()}, ["k3s1"],
                                      {n: s["admin"] for n, s in live.items()})
                if not self.changes or self.changes[-1][1] != share:
                    self.changes.append((time.time(), share))
            except HaproxyError:  # HAProxy not up yet, or reloading
                time.sleep(0.1)
            time.sleep(0.02)

    def stop(self) -> list[tuple[float, int | None]]:
        self.halt.set()
        self.join(5)
        return self.changes


def read_log(path: str) -> list[float]:
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [float(line.split()[0]) for line in handle if line.strip()]


def shares_per_step(workdir: str, changes: list[tuple[float, int | None]], settle: float = 0.3,
                    min_requests: int = 200) -> list[dict[str, t.Any]]:
    """Observed K3s share in each interval where the live share was constant."""
    compose = read_log(os.path.join(workdir, "backends", "logs", "compose.log"))
    k3s = read_log(os.path.join(workdir, "backends", "logs", "k3s.log"))
    out = []
    for i, (start, share) in enumerate(changes):
        end = changes[i + 1][0] if i + 1 < len(changes) else time.time()
        lo, hi = start + settle, end
        c = sum(1 for x in compose if lo <= x < hi)
        k = sum(1 for x in k3s if lo <= x < hi)
        if c + k >= min_requests:
            out.append({"share": share, "requests": c + k, "observed": round(100 * k / (c + k), 1)})
    return out


def run_playbook(workdir: str, variables: dict, check: bool = False,
                 verbosity: str = "") -> subprocess.CompletedProcess:
    playbook = os.path.join(workdir, "play.yml")
    with open(playbook, "w") as handle:
        handle.write("- hosts: localhost\n  connection: local\n  gather_facts: false\n"
                     "  roles:\n    - role: sophia.migrate.traffic_shift\n")
    with open(os.path.join(workdir, "vars.json"), "w") as handle:
        json.dump(variables, handle)
    python = os.path.join(ROOT, ".venv", "bin", "python")
    argv = [os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", "localhost,", playbook,
            "-e", f"@{workdir}/vars.json", "-e", f"ansible_python_interpreter={python}"]
    if check:
        argv += ["--check", "--diff"]
    if verbosity:
        argv.append(verbosity)
    env = {**os.environ, "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(argv, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def recap(out: str) -> dict[str, int]:
    for line in out.splitlines():
        if line.startswith("localhost") and "changed=" in line:
            return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
    raise AssertionError("no PLAY RECAP:\n" + out[-3000:])


def haproxy_available() -> bool:
    return all(shutil.which(b) for b in ("haproxy", "nginx", "wrk", "openssl"))
