"""health_gate at -vvv never prints a probe's secrets: a Redis password (option and URL), an Authorization header,
a token in a URL's query string.

The gate runs through ansible-playbook at verbosity 3, where the module's invocation (its arguments) and its whole
result are printed, against real servers: Debian's redis-server requiring a password and a local HTTP server
requiring the bearer token. A passing gate and a failing one (wrong port) are both printed.
"""

from __future__ import annotations

import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from support.playbooks import run_play
from support.servers import RedisServer, free_port

REDIS_PASSWORD = "S3cr3t-Redis-pw1"
BEARER = "S3cr3t-Bearer-tok2"
QUERY_TOKEN = "S3cr3t-Query-tok3"
SECRETS = (REDIS_PASSWORD, BEARER, QUERY_TOKEN)


@pytest.fixture
def vvv(monkeypatch):
    monkeypatch.setenv("ANSIBLE_VERBOSITY", "3")


@pytest.fixture
def guarded():
    """An HTTP server that answers 200 only with the bearer token and the query token."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            return

        def do_GET(self):
            ok = self.headers.get("Authorization") == f"Bearer {BEARER}" and f"token={QUERY_TOKEN}" in self.path
            seen.append(ok)
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


PLAY = textwrap.dedent("""\
    - hosts: localhost
      connection: local
      gather_facts: false
      tasks:
        - name: gate with secrets (passes)
          sophia.migrate.health_gate:
            probes:
              - {name: redis-pw, type: redis, host: 127.0.0.1, port: "{{ redis_port }}",
                 password: "{{ redis_password }}"}
              - {name: redis-url, type: redis, url: "redis://:{{ redis_password }}@127.0.0.1:{{ redis_port }}/0"}
              - name: api
                type: http
                url: "{{ http_base }}/health?token={{ query_token }}"
                headers: {Authorization: "Bearer {{ bearer }}"}
            baseline:
              candidate: api
              probe: {name: api-base, type: http, url: "{{ http_base }}/health?token={{ query_token }}",
                      headers: {Authorization: "Bearer {{ bearer }}"}}
              latency_tolerance: 1000
            interval: 0.1
            count: 2
          register: good

        - name: the gate passed with the real secrets
          ansible.builtin.assert:
            that: [good.passed]

        - name: gate with secrets (fails, nothing listens)
          sophia.migrate.health_gate:
            probes:
              - {name: redis-down, type: redis, url: "redis://:{{ redis_password }}@127.0.0.1:{{ closed_port }}/0",
                 timeout: 1}
            count: 1
          ignore_errors: true
          register: bad

        - name: the failure is readable
          ansible.builtin.assert:
            that: [bad.failed, "'redis-down' in bad.msg"]
    """)


def test_secrets_never_printed_at_vvv(tmp_path, vvv, guarded):
    http_base, seen = guarded
    with RedisServer(password=REDIS_PASSWORD) as redis:
        res = run_play(
            tmp_path,
            PLAY,
            {
                "redis_port": redis.port,
                "redis_password": REDIS_PASSWORD,
                "http_base": http_base,
                "bearer": BEARER,
                "query_token": QUERY_TOKEN,
                "closed_port": free_port(),
            },
        )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert seen and all(seen), "the HTTP probe did not send the secrets"
    assert "invocation" in out and "module_args" in out, "not run at -vvv"
    for secret in SECRETS:
        leaks = "\n".join(line for line in out.splitlines() if secret in line)
        assert secret not in out, f"{secret} printed:\n{leaks}"
    # the invocation still shows the probes, their URLs without credentials or query
    assert f"redis://127.0.0.1:{redis.port}/0" in out and f"{http_base}/health" in out
