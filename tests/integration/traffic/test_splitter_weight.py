"""splitter_weight against a real HAProxy: a backend or server name carrying another Runtime API command is
refused before anything is sent, in check mode too, and the running HAProxy is left as it was."""

from __future__ import annotations

import os
import subprocess
import textwrap
import time
import typing as t

import pytest
from traffic_support import free_port

from ansible_collections.sophia.migrate.plugins.module_utils._haproxy import RuntimeApi
from ansible_collections.sophia.migrate.plugins.modules import splitter_weight
from support.modules import run_module
from support.servers import require_binary


@pytest.fixture
def haproxy(tmp_path) -> t.Iterator[dict[str, t.Any]]:
    sock = str(tmp_path / "admin.sock")
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(textwrap.dedent(f"""\
        global
            stats socket {sock} mode 600 level admin
        defaults
            mode http
            timeout connect 1s
            timeout client 5s
            timeout server 5s
        frontend www
            bind 127.0.0.1:{free_port()}
            default_backend route_x
        backend route_x
            server compose1 127.0.0.1:{free_port()} weight 100
            server k3s1 127.0.0.1:{free_port()} weight 0
        """))
    proc = subprocess.Popen([require_binary("haproxy"), "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists(sock):
        assert proc.poll() is None and time.monotonic() < deadline, "haproxy did not start"
        time.sleep(0.05)
    yield {"socket": sock, "api": RuntimeApi(sock, 2)}
    proc.terminate()
    proc.wait(10)


def _frontend_status(api: RuntimeApi) -> str:
    for line in api.command("show stat").splitlines():
        fields = line.split(",")
        if fields[:2] == ["www", "FRONTEND"]:
            return fields[17]
    raise AssertionError("no frontend www in show stat")


@pytest.mark.parametrize("check_mode", [True, False])
def test_an_injected_backend_name_is_refused_and_sends_nothing(haproxy, capsys, check_mode):
    api = haproxy["api"]
    assert _frontend_status(api) == "OPEN"
    args = {"runtime_api": haproxy["socket"], "backend": "route_x; disable frontend www",
            "old_servers": ["compose1"], "new_servers": ["k3s1"], "share": 50}
    result = run_module(splitter_weight, args, capsys, check_mode=check_mode)
    assert _frontend_status(api) == "OPEN"  # the second command never reached HAProxy
    assert result["failed"] and "option backend: 'route_x; disable frontend www' is not a HAProxy name" in result["msg"]
    servers = api.servers("route_x")
    assert (servers["compose1"]["weight"], servers["k3s1"]["weight"]) == (100, 0)


def test_an_injected_server_name_is_refused_and_a_valid_run_still_works(haproxy, capsys):
    api = haproxy["api"]
    args = {"runtime_api": haproxy["socket"], "backend": "route_x", "old_servers": ["compose1"],
            "new_servers": ["k3s1"], "share": 50}
    bad = run_module(splitter_weight, {**args, "old_servers": ["compose1 weight 0; disable frontend www"]}, capsys)
    assert bad["failed"] and "option old_servers: server" in bad["msg"]
    assert _frontend_status(api) == "OPEN"
    good = run_module(splitter_weight, args, capsys)
    assert not good.get("failed") and good["share"] == 50, good
