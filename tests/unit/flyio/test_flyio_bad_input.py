"""Bad input to the Fly modules gives a clean failure naming the option, never a "Module failed" traceback."""

from __future__ import annotations

import json

import pytest

from ansible_collections.sophia.migrate.plugins.modules import flyio_app, flyio_app_info, flyio_audit_report
from support.modules import run_module

TOKEN = "unit-" + "bad-input-7c2e"
CLOSED = "http://127.0.0.1:9/v1"  # nothing listens: a request that is sent fails with "cannot reach"
API = {"api_token": TOKEN, "api_url": CLOSED, "graphql_url": "http://127.0.0.1:9/graphql", "retries": 0}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"api_url": "not a url"}, "option 'api_url': 'not a url' holds a space"),
        ({"api_url": "http://[::1"}, "option 'api_url': 'http://[::1' is not a valid URL"),
        ({"api_url": ""}, "option 'api_url': empty"),
        ({"api_url": "ftp://x/v1"}, "option 'api_url': 'ftp://x/v1' must start with https://"),
        ({"api_url": "http://127.0.0.1:99999/v1"}, "is not a valid URL (Port out of range"),
        ({"api_url": "https:///v1"}, "option 'api_url': 'https:///v1' has no host"),
        ({"api_url": "https://ops:pa55word@api.example/v1 "}, "option 'api_url': 'https://ops:REDACTED@api.example"),
        ({"graphql_url": "::"}, "option 'graphql_url': '::' must start with https://"),
        ({"timeout": -1}, "option 'timeout': must be a positive number"),
        ({"timeout": 0}, "option 'timeout': must be a positive number"),
        ({"retries": -3}, "option 'retries': must be 0 or more"),
        ({"backoff": -1}, "option 'backoff': must be 0 or more"),
        ({"api_token": TOKEN + "\nX-Injected: 1"}, "option 'api_token': the token holds a line break"),
        ({"api_token": TOKEN + "\u00e9\u4e2d"}, "option 'api_token': the token holds a line break"),
        ({"api_url": "http://a..b/v1"}, "the request could not be sent (LocationParseError"),
    ],
)
@pytest.mark.parametrize("module", [flyio_app_info, flyio_app])
def test_api_options(capsys, module, changes, message):
    args = {**API, **changes, **({"apps": ["a"]} if module is flyio_app_info else {"name": "a", "confirm": "a"})}
    result = run_module(module, args, capsys)
    assert result["failed"] is True and message in result["msg"], result["msg"]
    text = json.dumps(result)  # the invocation's module_args included (what -vvv shows)
    assert TOKEN not in text and "pa55word" not in text
    if module is flyio_app:
        assert "nothing was deleted" in result["msg"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"wait_timeout": -1}, "option 'wait_timeout': must be 0 or more seconds"),
        ({"poll_interval": -0.5}, "option 'poll_interval': must be 0 or more seconds"),
        ({"name": ["a"], "confirm": "['a']"}, "option 'name'"),
    ],
)
def test_flyio_app_options(capsys, changes, message):
    result = run_module(flyio_app, {**API, "name": "a", "confirm": "a", **changes}, capsys)
    assert result["failed"] is True and message in result["msg"] and result["changed"] is False


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"infos": [{"name": "a", "machines": "x"}]},
            "option 'infos': a: 'machines' must be a list of objects or null",
        ),
        ({"infos": [{"name": "a", "machines": [1]}]}, "option 'infos': a: 'machines' must be a list of objects"),
        ({"infos": [{"name": "a", "volumes": [1]}]}, "option 'infos': a: 'volumes' must be a list of objects"),
        ({"infos": [{"name": "a", "certificates": "x"}]}, "option 'infos': a: 'certificates' must be a list"),
        ({"infos": [{"name": "a", "ips": [3]}]}, "option 'infos': a: 'ips' must be a list of objects"),
        ({"infos": [{"name": "a", "incomplete": "x"}]}, "option 'infos': a: 'incomplete' must be a list of texts"),
        ({"infos": [{"name": "a", "secret_names": [1]}]}, "option 'infos': a: 'secret_names' must be a list of texts"),
        ({"dns_results": [{"host": "a.fly.dev", "errors": 5}]}, "option 'dns_results': a.fly.dev: 'errors' must be"),
        ({"dns_results": [{"host": "a.fly.dev", "addresses": 5}]}, "'addresses' must be a list of texts"),
        ({"destroyed": [{"name": ["x"], "deleted": True}]}, "option 'destroyed': entry 0: 'name' must be an app name"),
        ({"directory": "/tmp/x\0y"}, "option 'directory': holds a NUL character"),
    ],
)
def test_flyio_audit_report_options(tmp_path, capsys, changes, message):
    result = run_module(flyio_audit_report, {"apps": ["a"], **changes}, capsys)
    assert result["failed"] is True and message in result["msg"], result["msg"]


def test_null_lists_of_an_info_are_accepted(capsys):
    info = {"name": "a", "exists": True, "machines": [], "volumes": None, "certificates": None, "ips": None}
    result = run_module(flyio_audit_report, {"apps": ["a"], "infos": [info], "scan": {"files_scanned": 1}}, capsys)
    assert not result.get("failed") and result["verdicts"][0]["verdict"] == "blocked"
