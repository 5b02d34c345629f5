"""health_gate and bad or secret-bearing URLs: clean failures naming the probe, credentials never in the output."""

from __future__ import annotations

import json

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils._http import redact_url
from ansible_collections.sophia.migrate.plugins.modules import health_gate
from support.modules import run_module


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@h.example:6333/x?token=1", "https://h.example:6333/x"),
        ("redis://:p@[::1:6379/0", "redis://[::1:6379/0"),  # malformed: no parse, still redacted
        ("redis://:ab#cd@host/0", "redis://host/0"),  # unencoded '#' in the password
        ("http://h/p?sig=abc#frag", "http://h/p"),
        ("http://host?x=1", "http://host"),
        ("redis://10.0.0.1:6379", "redis://10.0.0.1:6379"),
        ("http://[::1]:80/a@b", "http://[::1]:80/a@b"),
        (None, ""),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        ({"type": "redis", "url": "redis://:S3cr3tPw@[::1:6379/0"}, "url 'redis://[::1:6379/0' is not a valid URL"),
        ({"type": "redis", "url": "http://:S3cr3tPw@h:6379"}, "url must start with redis:// or rediss:// or unix://"),
        ({"type": "redis", "url": "redis://:S3cr3tPw@h:99999/0"}, "is not a valid URL (Port out of range"),
        ({"type": "http", "url": "http://:S3cr3tPw@[::1/health"}, "url 'http://[::1/health' is not a valid URL"),
        ({"type": "prometheus", "url": "https://[fe80::1", "query": "up"}, "is not a valid URL"),
        ({"type": "http", "url": "http:///health?S3cr3tPw"}, "url 'http:///health' names no host"),
    ],
)
def test_malformed_urls_fail_cleanly_without_credentials(probe, message, capsys):
    res = run_module(health_gate, {"probes": [probe], "count": 1}, capsys)
    assert res["failed"] and message in res["msg"] and f"probe '{probe['type']}-0'" in res["msg"], res["msg"]
    assert "S3cr3tPw" not in json.dumps(res)


def test_malformed_baseline_url_fails_cleanly(capsys):
    args = {
        "probes": [{"name": "k3s", "type": "tcp", "host": "127.0.0.1", "port": 1}],
        "baseline": {"candidate": "k3s", "probe": {"type": "http", "url": "http://u:S3cr3tPw@[::1:80/"}},
        "count": 1,
    }
    res = run_module(health_gate, args, capsys)
    assert res["failed"] and "not a valid URL" in res["msg"]
    assert "S3cr3tPw" not in json.dumps(res)


def test_redis_url_refused_by_redis_py_is_a_failed_sample(capsys):
    # the URL parses, but redis-py refuses its query option: a failed probe, not a crash
    res = run_module(
        health_gate,
        {"probes": [{"type": "redis", "url": "redis://:S3cr3tPw@127.0.0.1:1/0?socket_timeout=soon"}], "count": 1},
        capsys,
    )
    assert res["failed"] and "Redis URL 'redis://127.0.0.1:1/0' rejected" in res["msg"], res["msg"]
    assert "S3cr3tPw" not in json.dumps(res)


def test_secrets_are_masked_in_the_invocation_and_result(capsys):
    res = run_module(
        health_gate,
        {
            "probes": [
                {"name": "r", "type": "redis", "host": "127.0.0.1", "port": 1, "password": "S3cr3tPw", "timeout": 1},
                {"name": "u", "type": "redis", "url": "redis://user:S3cr3tPw2@127.0.0.1:1/0", "timeout": 1},
                {"name": "h", "type": "http", "url": "http://127.0.0.1:1/x?token=S3cr3tPw3", "timeout": 1,
                 "headers": {"Authorization": "Bearer S3cr3tPw4"}},
            ],
            "count": 1,
            "fail_on_failure": False,
        },
        capsys,
    )
    text = json.dumps(res)
    for secret in ("S3cr3tPw", "S3cr3tPw2", "S3cr3tPw3", "S3cr3tPw4"):
        assert secret not in text
    shown = res["invocation"]["module_args"]["probes"]
    assert [p["url"] for p in shown] == [None, "redis://127.0.0.1:1/0", "http://127.0.0.1:1/x"]
    assert res["verdict"] == "failed" and res["rounds"] == 1
