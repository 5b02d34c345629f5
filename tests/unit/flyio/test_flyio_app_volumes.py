"""flyio_app deletes only when the app's volumes were listed positively and the backup declaration names each one.

Recorded answers of GET /apps/{app}/volumes (tests/fixtures/flyio/api/volumes_answers.json) are replayed by the
Machines API stand-in on loopback; every other answer of the stand-in is validated against the OpenAPI document."""

from __future__ import annotations

import json
import os
import typing as t

import pytest
from standins.fly_machines_standin import FlyMachinesStandin, OpenApi, machine, volume

from ansible_collections.sophia.migrate.plugins.module_utils import _flyio_answers, _flyio_verdict
from ansible_collections.sophia.migrate.plugins.modules import flyio_app, flyio_app_info, flyio_audit_report
from support.modules import run_module

TOKEN = "unit-" + "fly-token-5e1d"
APP = "sophiaai-jobs-v2"
VOLUMES_PATH = f"/v1/apps/{APP}/volumes"
ANSWERS_FILE = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "flyio", "api", "volumes_answers.json")
with open(ANSWERS_FILE, encoding="utf-8") as _handle:
    ANSWERS: dict[str, dict[str, t.Any]] = {k: v for k, v in json.load(_handle).items() if not k.startswith("_")}
NOT_LISTED = sorted(k for k, v in ANSWERS.items() if not v["listed"])


@pytest.fixture
def fly() -> t.Iterator[FlyMachinesStandin]:
    with FlyMachinesStandin(token=TOKEN) as api:
        api.retry_after = "0"
        api.add_app(APP, machines=[machine("148ed193b95089", state="stopped")])
        yield api
        assert api.violations == [], api.violations


def args(fly: FlyMachinesStandin, **kw: t.Any) -> dict[str, t.Any]:
    return {
        "name": APP,
        "confirm": APP,
        "api_token": TOKEN,
        "api_url": fly.url,
        "graphql_url": fly.graphql_url,
        "retries": 0,
        "backoff": 0.01,
        "poll_interval": 0.01,
        **kw,
    }


def record(fly: FlyMachinesStandin, key: str) -> None:
    fly.recorded[VOLUMES_PATH] = ANSWERS[key]


# --- the recorded answers and the OpenAPI document -----------------------------------------------------------
def test_volume_properties_are_those_of_the_openapi_document():
    schema = OpenApi().resolve({"$ref": "#/components/schemas/Volume"})
    assert {k: v["type"] for k, v in schema["properties"].items()} == _flyio_answers.VOLUME_PROPERTIES


@pytest.mark.parametrize("key", sorted(k for k, v in ANSWERS.items() if "openapi_valid" in v))
def test_recorded_200_bodies_against_the_openapi_document(key):
    answer = ANSWERS[key]
    problems = OpenApi().check_response("GET", VOLUMES_PATH, 200, json.loads(answer["body"]))
    assert (problems == []) is answer["openapi_valid"], problems


# --- refusals: the volumes are not listed positively ----------------------------------------------------------
@pytest.mark.parametrize("key", NOT_LISTED)
@pytest.mark.parametrize("backup", [None, ["vol_jobs0001", "jobs_data"]])
def test_destroy_is_refused_when_the_volumes_are_not_listed_positively(fly, capsys, key, backup):
    record(fly, key)
    extra = {"backup": backup} if backup is not None else {}
    result = run_module(flyio_app, args(fly, accept_data_loss=True, **extra), capsys)
    assert result["failed"] is True and result["changed"] is False
    assert "volumes could not be listed" in result["msg"] and "nothing was deleted" in result["msg"]
    assert result["volumes_not_backed_up"] is None and result["deleted"] is False
    assert fly.calls("DELETE") == [] and APP in fly.apps
    assert TOKEN not in json.dumps(result)


@pytest.mark.parametrize("key", ["404_fly_error", "200_no_id"])
def test_check_mode_refuses_too(fly, capsys, key):
    record(fly, key)
    result = run_module(flyio_app, args(fly, backup=["vol_jobs0001"]), capsys, check_mode=True)
    assert result["failed"] is True and "volumes could not be listed" in result["msg"]


@pytest.mark.parametrize("key", NOT_LISTED)
def test_info_reports_the_volumes_unknown_and_the_verdict_blocks(fly, capsys, key):
    record(fly, key)
    info = run_module(flyio_app_info, {k: v for k, v in args(fly, apps=[APP]).items() if k in INFO_KEYS}, capsys)
    assert not info.get("failed"), info.get("msg")
    app = info["apps"][0]
    assert app["exists"] is True and app["volumes"] is None and app["volume_count"] is None
    assert any(i.startswith("volumes: list volumes of app") for i in app["incomplete"])
    verdict = run_module(
        flyio_audit_report,
        {"apps": [APP], "infos": info["apps"], "scan": {"files_scanned": 1}, "backups": {APP: ["vol_jobs0001"]}},
        capsys,
    )["verdicts"][0]
    assert verdict["verdict"] == "blocked"
    assert any("volumes could not be listed" in r for r in verdict["reasons"]), verdict["reasons"]


INFO_KEYS = {"api_token", "api_url", "graphql_url", "retries", "backoff", "apps"}


# --- the backup declaration must name every volume ------------------------------------------------------------
@pytest.mark.parametrize(
    ("backup", "missing"),
    [
        (None, ["vol_jobs0001", "vol_jobs0002"]),
        ("/var/backups/sophia/fly/jobs_data.tar.gz", ["vol_jobs0001", "vol_jobs0002"]),
        (True, ["vol_jobs0001", "vol_jobs0002"]),
        (["vol_jobs0001"], ["vol_jobs0002"]),
        ({"jobs_data": "/var/backups/jobs_data.tar.gz"}, ["vol_jobs0002"]),
    ],
)
def test_destroy_is_refused_when_a_listed_volume_is_not_named(fly, capsys, backup, missing):
    record(fly, "200_two_volumes")
    extra = {"backup": backup} if backup is not None else {}
    result = run_module(flyio_app, args(fly, **extra), capsys)
    assert result["failed"] is True and "not named in backup" in result["msg"], result["msg"]
    assert result["volumes_not_backed_up"] == missing
    assert all(m in result["msg"] for m in missing) and "nothing was deleted" in result["msg"]
    if backup is True or isinstance(backup, str):
        assert "a text or true names no volume" in result["msg"]
    assert fly.calls("DELETE") == []


@pytest.mark.parametrize(
    "backup",
    [
        ["vol_jobs0001", "vol_jobs0002"],
        ["jobs_data", "vol_jobs0002"],
        {"vol_jobs0001": "/var/backups/jobs_data.tar.gz", "jobs_cache": "nothing to keep: a cache"},
    ],
)
def test_destroy_is_allowed_when_every_listed_volume_is_named(fly, capsys, backup):
    record(fly, "200_two_volumes")
    plan = run_module(flyio_app, args(fly, backup=backup), capsys, check_mode=True)
    assert plan["changed"] is True and not plan.get("failed") and plan["volumes_not_backed_up"] == []
    assert [v["id"] for v in plan["will_lose"]["volumes"]] == ["vol_jobs0001", "vol_jobs0002"]
    assert plan["backup"] == backup and plan["backup_declared"] is True and fly.calls("DELETE") == []
    done = run_module(flyio_app, args(fly, backup=backup), capsys)
    assert done["deleted"] is True and len(fly.calls("DELETE")) == 1 and APP not in fly.apps


def test_accept_data_loss_still_covers_listed_volumes_without_backup(fly, capsys):
    record(fly, "200_two_volumes")
    done = run_module(flyio_app, args(fly, backup=["vol_jobs0001"], accept_data_loss=True), capsys)
    assert done["deleted"] is True and done["volumes_not_backed_up"] == ["vol_jobs0002"]


@pytest.mark.parametrize("backup", [None, "no data kept", True])
def test_no_declaration_is_needed_when_no_volume_is_listed_positively(fly, capsys, backup):
    record(fly, "200_empty_list")
    extra = {"backup": backup} if backup is not None else {}
    done = run_module(flyio_app, args(fly, **extra), capsys)
    assert done["deleted"] is True and done["volumes_not_backed_up"] == []


@pytest.mark.parametrize(
    ("backup", "message"),
    [
        (3, "must be a list of volume ids/names or a dict"),
        (["vol_1", 2], "the list must hold volume ids or names"),
        ([""], "the list must hold volume ids or names"),
        ({"vol_1": ""}, "volume vol_1: say where its data was saved"),
        ({"vol_1": ["x"]}, "volume vol_1: say where its data was saved"),
    ],
)
def test_a_malformed_backup_declaration_is_a_clear_error(fly, capsys, backup, message):
    result = run_module(flyio_app, args(fly, backup=backup), capsys)
    assert result["failed"] is True and "option 'backup'" in result["msg"] and message in result["msg"]
    assert fly.requests == []
    report = run_module(flyio_audit_report, {"apps": [APP], "backups": {APP: backup}}, capsys)
    assert report["failed"] is True and f"option 'backups': {APP}: " in report["msg"] and message in report["msg"]


# --- GET /apps/{app}: a 404 means "gone" only when the Fly API says so -------------------------------------
@pytest.mark.parametrize("key", ["404_proxy_html", "404_go_router_text", "404_other_json"])
def test_app_404_that_is_not_a_fly_error_is_not_gone(fly, capsys, key):
    fly.recorded[f"/v1/apps/{APP}"] = ANSWERS[key]
    info = run_module(flyio_app_info, {k: v for k, v in args(fly, apps=[APP]).items() if k in INFO_KEYS}, capsys)
    assert info["failed"] is True and "HTTP 404 with a body that is not a Fly API error" in info["msg"]
    result = run_module(flyio_app, args(fly, backup=["vol_jobs0001"]), capsys)
    assert result["failed"] is True and "not a Fly API error" in result["msg"]
    assert "nothing was deleted" in result["msg"] and fly.calls("DELETE") == []


def test_app_404_with_the_fly_error_body_is_gone(fly, capsys):
    fly.recorded[f"/v1/apps/{APP}"] = ANSWERS["404_fly_error"]
    info = run_module(flyio_app_info, {k: v for k, v in args(fly, apps=[APP]).items() if k in INFO_KEYS}, capsys)
    assert info["apps"][0]["exists"] is False and info["missing"] == [APP]
    result = run_module(flyio_app, args(fly), capsys)
    assert result["changed"] is False and result["existed"] is False and fly.calls("DELETE") == []


@pytest.mark.parametrize(
    ("body", "fly"),
    [
        (b'{"error":"app not found"}', True),
        (b'{"error":"not found","status":"not_found","details":{}}', True),
        (b'{"error":""}', False),
        (b'{"message":"Not Found"}', False),
        (b'{"error":"x","details":"text"}', False),
        (b"404 page not found", False),
        (b"", False),
        (b"[]", False),
    ],
)
def test_fly_error_body(body, fly):
    assert _flyio_answers.fly_error_body(body) is fly


# --- verdicts --------------------------------------------------------------------------------------------------
VOLS = [{"id": "vol_1", "name": "data", "size_gb": 3}, {"id": "vol_2", "name": "cache", "size_gb": 1}]


@pytest.mark.parametrize(
    ("volumes", "declared", "verdict", "reason"),
    [
        (None, ["vol_1", "vol_2"], "blocked", "volumes could not be listed"),
        (VOLS, "/backups/a.tar", "blocked", "a text or true names no volume"),
        (VOLS, True, "blocked", "vol_2"),
        (VOLS, ["vol_1"], "blocked", "vol_2"),
        (VOLS, ["data", "vol_2"], "safe to destroy", None),
        (VOLS, {"vol_1": "/backups/1.tar", "cache": "a cache, nothing kept"}, "safe to destroy", None),
        ([], None, "safe to destroy", None),
        ([], "no data", "safe to destroy", None),
    ],
)
def test_verdict_needs_every_volume_named(volumes, declared, verdict, reason):
    info = {"name": "a", "exists": True, "forbidden": False, "machines": [], "volumes": volumes, "incomplete": []}
    judged = _flyio_verdict.judge_app(info, "a", {"files_scanned": 1}, None,
                                      {"a": declared} if declared is not None else {})
    assert judged["verdict"] == verdict, judged["reasons"]
    if reason:
        assert any(reason in r for r in judged["reasons"]), judged["reasons"]


def test_the_integration_world_volume_of_the_standin_is_listed(fly, capsys):
    fly.apps[APP]["volumes"] = [volume("vol_jobs0001", "jobs_data", 10, "148ed193b95089")]
    done = run_module(flyio_app, args(fly, backup={"jobs_data": "/var/backups/jobs.tar.gz"}), capsys)
    assert done["deleted"] is True and done["volumes_not_backed_up"] == []
