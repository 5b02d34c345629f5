"""Helpers that start real local servers for integration tests (bounded in time, loopback only)."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time
import typing as t

import requests


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def require_binary(name: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}", f"/sbin/{name}") if os.path.exists(p)), None
    )
    if not path:
        raise RuntimeError(f"{name} is not installed: run `make setup`")
    return path


class RedisServer:
    """A real redis-server on a free loopback port, in its own temporary directory."""

    def __init__(self, password: str | None = None, extra: t.Sequence[str] = (), port: int | None = None):
        self.port = port or free_port()
        self.password = password
        self.dir = tempfile.mkdtemp(prefix="sophia-redis-")
        self.extra = list(extra)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        argv = [
            require_binary("redis-server"),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            self.dir,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            os.path.join(self.dir, "redis.log"),
        ]
        if self.password:
            argv += ["--requirepass", self.password, "--masterauth", self.password]
        argv += self.extra
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


class K3sIngressStandIn(http.server.BaseHTTPRequestHandler):
    """A quiet stand-in for the K3s ingress: a subclass decides the body of a GET (``answer``); None is the
    controller's default backend, 404."""

    def answer(self) -> bytes | None:
        raise NotImplementedError

    def do_GET(self):
        body = self.answer()
        status = 200 if body is not None else 404
        body = body if body is not None else b"default backend - 404"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def nginx_main_conf(directory: str | os.PathLike, body: str = "include conf.d/*.conf;",
                    worker_connections: int = 1024) -> str:
    """nginx.conf for a test nginx run with ``-p directory``: pid, logs and temporary files inside it, ``body`` in its
    http block. Run as root, the workers are root too (nobody cannot read pytest's 0700 temporary directories)."""
    return ("user root;\n" if os.geteuid() == 0 else "") + textwrap.dedent(f"""\
        worker_processes 1;
        pid {directory}/nginx.pid;
        error_log {directory}/logs/error.log warn;
        events {{ worker_connections {worker_connections}; }}
        http {{
            access_log off;
            client_body_temp_path {directory}/body;
            proxy_temp_path {directory}/proxy;
            fastcgi_temp_path {directory}/fcgi;
            uwsgi_temp_path {directory}/uwsgi;
            scgi_temp_path {directory}/scgi;
        """) + body + "\n}\n"


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (two calls of free_port() may return the same one)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@contextlib.contextmanager
def prometheus_server(
    scrape_jobs: dict[str, list[str]], port: int | None = None, timeout: float = 60.0
) -> t.Iterator[str]:
    """Debian's real Prometheus scraping `scrape_jobs` (job name -> targets) every second; yields its URL.

    Yields only once /-/ready answers 200: while the TSDB opens, Prometheus already listens but answers
    every API call with a plain-text 503, so an open port is not a usable server.
    """
    port = port or free_port()
    work = tempfile.mkdtemp(prefix="sophia-prom-")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": targets}]} for job, targets in scrape_jobs.items()
        ],
    }
    with open(os.path.join(work, "prometheus.yml"), "w") as handle:
        json.dump(config, handle)  # JSON is YAML: no quoting by hand
    log = open(os.path.join(work, "prometheus.log"), "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [
            require_binary("prometheus"),
            f"--config.file={work}/prometheus.yml",
            f"--storage.tsdb.path={work}/data",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {proc.returncode}: {_tail(log.name)}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"prometheus on {url} not ready after {timeout}s: {_tail(log.name)}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def _tail(path: str, size: int = 2000) -> str:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - size))
        return handle.read().decode(errors="replace")
