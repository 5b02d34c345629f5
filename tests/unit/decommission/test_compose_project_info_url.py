"""compose_project_info and a malformed docker_host: a clean failure naming the option, no credentials shown."""

from __future__ import annotations

import json

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import _docker_compose as dc
from ansible_collections.sophia.migrate.plugins.modules import compose_project_info
from support.modules import run_module


@pytest.mark.parametrize(
    ("docker_host", "text"),
    [
        ("tcp://u:S3cr3tPw@[::1:2375", "option 'docker_host' is not a valid URL (Invalid IPv6 URL): 'tcp://[::1:2375'"),
        ("tcp://u:S3cr3tPw@127.0.0.1:99999", "option 'docker_host' is not a valid URL (Port out of range"),
    ],
)
def test_malformed_docker_host_fails_cleanly(docker_host, text, capsys):
    res = run_module(compose_project_info, {"docker_host": docker_host, "project": "sophia"}, capsys)
    assert res["failed"] and text in res["msg"], res["msg"]
    assert "S3cr3tPw" not in res["msg"]
    assert "S3cr3tPw" not in json.dumps({k: v for k, v in res.items() if k != "invocation"})


def test_no_project_lists_every_project(monkeypatch, capsys):
    """Without `project` (the first EXAMPLE) the module lists projects; `services` alone needs a project."""
    monkeypatch.setattr(dc, "client", lambda *_a, **_k: object())
    monkeypatch.setattr(dc, "discover", lambda _cli, project, sizes: {"sophia": {"services": {}}})
    res = run_module(compose_project_info, {"sizes": False}, capsys)
    assert not res.get("failed"), res
    assert res["projects"] == {"sophia": {"services": {}}}
    res = run_module(compose_project_info, {"services": ["redis"]}, capsys)
    assert res["failed"] and "project" in res["msg"]
