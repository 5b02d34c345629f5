"""flyio_app_info and flyio_app against the Machines API stand-in (every answer validated against the OpenAPI doc)."""

from __future__ import annotations

import json

from conftest import TOKEN
from standins.fly_machines_standin import OpenApi, machine

from ansible_collections.sophia.migrate.plugins.module_utils import _flyio_api
from ansible_collections.sophia.migrate.plugins.modules import flyio_app, flyio_app_info
from support.modules import run_module


def api_args(fly, **kw):
    return {"api_token": TOKEN, "api_url": fly.url, "graphql_url": fly.graphql_url, "backoff": 0.01, **kw}


def test_app_with_machines_and_volumes(legacy, capsys):
    result = run_module(flyio_app_info, api_args(legacy, apps=["sophiaai-jobs-v2"]), capsys, check_mode=True)
    assert not result.get("failed") and result["changed"] is False
    app = result["apps"][0]
    assert app["exists"] is True and app["status"] == "deployed" and app["organization"] == "sophia-ai"
    assert app["machines"][0] == {
        "id": "148ed193b95089",
        "name": "m-148ed1",
        "state": "stopped",
        "region": "iad",
        "image": "registry.fly.io/sophiaai-jobs-v2:deployment-7",
        "updated_at": "2024-05-01T10:00:00Z",
        "created_at": "2024-01-10T09:00:00Z",
    }
    assert app["volumes"][0]["size_gb"] == 10 and app["volumes"][0]["attached"] is True
    assert [c["hostname"] for c in app["certificates"]] == ["jobs.sophia-intel.ai"]
    assert app["ips"] == [{"address": "2a09:8280:1::7", "type": "v6", "region": "global"}]
    assert app["secret_names"] == ["REDIS_URL"] and "hunter2" not in json.dumps(result)
    assert app["volume_total_gb"] == 10 and app["incomplete"] == []


def test_org_listing_plus_named_apps_404_is_exists_false(legacy, capsys):
    legacy.add_app("sophia-legacy-worker", machines=[machine("e784079b449483")])
    result = run_module(flyio_app_info, api_args(legacy, org="sophia-ai", apps=["sophiaai-dashboard-v2"]), capsys)
    assert result["org_apps"] == ["sophiaai-jobs-v2", "sophia-legacy-worker"]
    assert [a["name"] for a in result["apps"]] == ["sophiaai-jobs-v2", "sophia-legacy-worker", "sophiaai-dashboard-v2"]
    assert result["missing"] == ["sophiaai-dashboard-v2"] and result["apps"][2]["exists"] is False
    assert result["apps"][1]["started_machines"] == 1


def test_plain_bearer_token_form(fly, capsys):
    fly.token = "plain-token-1234"
    fly.add_app("a-app")
    result = run_module(flyio_app_info, api_args(fly, api_token="plain-token-1234", apps=["a-app"]), capsys)
    assert result["apps"][0]["exists"] is True
    assert fly.requests[0]["authorization"] == "Bearer plain-token-1234"


def test_flyv1_token_form_and_invalid_token(legacy, capsys):
    result = run_module(flyio_app_info, api_args(legacy, api_token=f"FlyV1 {TOKEN}", apps=["sophiaai-jobs-v2"]), capsys)
    assert result["apps"][0]["exists"] is True
    assert {r["authorization"] for r in legacy.requests} == {f"FlyV1 {TOKEN}"}
    bad = run_module(flyio_app_info, api_args(legacy, api_token="wrong-token-999", apps=["sophiaai-jobs-v2"]), capsys)
    assert bad["failed"] and "401" in bad["msg"] and "invalid" in bad["msg"]


def test_403_is_reported_per_app_and_never_deletes(legacy, capsys):
    legacy.forbidden.add("sophiaai-jobs-v2")
    result = run_module(flyio_app_info, api_args(legacy, apps=["sophiaai-jobs-v2"]), capsys)
    app = result["apps"][0]
    assert app["exists"] is None and app["forbidden"] is True and result["forbidden"] == ["sophiaai-jobs-v2"]
    gone = run_module(
        flyio_app, api_args(legacy, name="sophiaai-jobs-v2", confirm="sophiaai-jobs-v2", backup=["jobs_data"]), capsys
    )
    assert gone["failed"] and "403" in gone["msg"] and "nothing was deleted" in gone["msg"]
    assert legacy.calls("DELETE") == []
    # readable, but the DELETE itself is forbidden
    legacy.forbidden.clear()
    legacy.forbid_delete.add("sophiaai-jobs-v2")
    gone = run_module(
        flyio_app, api_args(legacy, name="sophiaai-jobs-v2", confirm="sophiaai-jobs-v2", backup=["jobs_data"]), capsys
    )
    assert gone["failed"] and "403" in gone["msg"] and "nothing was deleted" in gone["msg"]
    assert "sophiaai-jobs-v2" in legacy.apps


def test_429_then_success(legacy, capsys):
    legacy.rate_limited = 3
    result = run_module(flyio_app_info, api_args(legacy, apps=["sophiaai-jobs-v2"], include=["volumes"]), capsys)
    assert result["apps"][0]["volumes"][0]["id"] == "vol_jobs0001"
    assert len(legacy.requests) == 3 + 2  # three 429 answers, then the app and its volumes


def test_429_for_too_long_is_a_clear_error(legacy, capsys):
    legacy.rate_limited = 100
    result = run_module(flyio_app_info, api_args(legacy, apps=["sophiaai-jobs-v2"], retries=2), capsys)
    assert result["failed"] and "429" in result["msg"] and "rate limited" in result["msg"]
    assert len(legacy.requests) == 3


def test_async_delete_polls_until_gone_then_idempotent(legacy, capsys):
    legacy.delete_polls = 3
    args = api_args(
        legacy,
        name="sophiaai-jobs-v2",
        confirm="sophiaai-jobs-v2",
        poll_interval=0.01,
        backup={"vol_jobs0001": "/var/backups/sophia/fly/jobs_data.tar.gz"},
    )
    plan = run_module(flyio_app, args, capsys, check_mode=True)
    assert plan["changed"] is True and plan["deleted"] is False and legacy.calls("DELETE") == []
    assert plan["will_lose"]["volumes"] == [
        {"id": "vol_jobs0001", "name": "jobs_data", "size_gb": 10, "attached_machine_id": "148ed193b95089"}
    ]
    assert plan["will_lose"]["certificates"] == ["jobs.sophia-intel.ai"] and plan["backup_declared"] is True
    assert plan["volumes_not_backed_up"] == []
    assert plan["diff"]["after"] == {"name": "sophiaai-jobs-v2", "exists": False}
    done = run_module(flyio_app, args, capsys)
    assert done["changed"] is True and done["deleted"] is True and done["delete_status"] == 202
    assert done["polls"] == 4 and "sophiaai-jobs-v2" not in legacy.apps
    again = run_module(flyio_app, args, capsys)
    assert again["changed"] is False and again["existed"] is False and len(legacy.calls("DELETE")) == 1


def test_delete_that_never_finishes_times_out(legacy, capsys):
    legacy.delete_polls = 10_000
    result = run_module(
        flyio_app,
        api_args(
            legacy,
            name="sophiaai-jobs-v2",
            confirm="sophiaai-jobs-v2",
            backup=["vol_jobs0001"],
            wait_timeout=0.3,
            poll_interval=0.05,
        ),
        capsys,
    )
    assert result["failed"] and "still exists" in result["msg"] and result["changed"] is True


def test_volumes_without_backup_are_refused(legacy, capsys):
    result = run_module(flyio_app, api_args(legacy, name="sophiaai-jobs-v2", confirm="sophiaai-jobs-v2"), capsys)
    assert result["failed"] and "vol_jobs0001" in result["msg"] and "10 GB" in result["msg"]
    assert legacy.calls("DELETE") == []
    # free text names no volume: refused as well
    text = run_module(
        flyio_app,
        api_args(legacy, name="sophiaai-jobs-v2", confirm="sophiaai-jobs-v2", backup="/var/backups/jobs.tar.gz"),
        capsys,
    )
    assert text["failed"] and "a text or true names no volume" in text["msg"] and legacy.calls("DELETE") == []
    assert text["volumes_not_backed_up"] == ["vol_jobs0001"]
    forced = run_module(
        flyio_app,
        api_args(
            legacy,
            name="sophiaai-jobs-v2",
            confirm="sophiaai-jobs-v2",
            accept_data_loss=True,
            force=True,
            poll_interval=0.01,
        ),
        capsys,
    )
    assert forced["deleted"] is True and legacy.calls("DELETE")[0]["path"].endswith("?force=true")


def test_malformed_json_answer_is_a_clear_error(legacy, capsys):
    legacy.malformed["/v1/apps/sophiaai-jobs-v2/machines"] = b'[{"id": "148ed193b95089", "state": '
    result = run_module(flyio_app_info, api_args(legacy, apps=["sophiaai-jobs-v2"]), capsys)
    assert result["failed"] and "malformed JSON" in result["msg"] and "list machines" in result["msg"]
    assert TOKEN not in json.dumps(result)


def test_wrong_shape_answer_is_a_clear_error(legacy, capsys):
    legacy.malformed["/v1/apps"] = b'{"apps": {"name": "x"}}'
    result = run_module(flyio_app_info, api_args(legacy, org="sophia-ai"), capsys)
    assert result["failed"] and "malformed answer" in result["msg"] and "'apps'" in result["msg"]


def test_volumes_endpoint_404_leaves_the_volumes_unknown_and_refuses_the_destroy(legacy, capsys):
    # the app answers, its volumes endpoint answers 404 with a Fly error body: unknown, never "no volume"
    legacy.recorded["/v1/apps/sophiaai-jobs-v2/volumes"] = {"status": 404, "body": '{"error": "not found"}'}
    info = run_module(flyio_app_info, api_args(legacy, apps=["sophiaai-jobs-v2"]), capsys)
    assert info["apps"][0]["volumes"] is None and any("volumes:" in i for i in info["apps"][0]["incomplete"])
    result = run_module(
        flyio_app,
        api_args(legacy, name="sophiaai-jobs-v2", confirm="sophiaai-jobs-v2", accept_data_loss=True),
        capsys,
    )
    assert result["failed"] and "volumes could not be listed" in result["msg"] and legacy.calls("DELETE") == []


def test_missing_certificates_endpoint_and_graphql_failure_are_incomplete_not_fatal(legacy, capsys):
    legacy.certificates_endpoint = False
    legacy.malformed["/graphql"] = b"<html>bad gateway</html>"
    result = run_module(flyio_app_info, api_args(legacy, apps=["sophiaai-jobs-v2"]), capsys)
    app = result["apps"][0]
    assert app["certificates"] is None and app["ips"] is None and app["secret_names"] is None
    assert any("certificates" in i for i in app["incomplete"]) and any("ips/secrets" in i for i in app["incomplete"])


def test_the_validator_catches_answers_that_break_the_document():
    api = OpenApi()
    assert api.check_response("GET", "/v1/apps/x/volumes", 200, [{"size_gb": "ten"}])
    assert api.check_response("GET", "/v1/apps", 200, {"apps": "no"})
    assert api.check_response("DELETE", "/v1/apps/x", 200, None)  # the document only knows 202
    assert api.check_request("GET", "/v1/apps")  # org_slug is required
    assert not api.check_response("GET", "/v1/apps/x/machines", 200, [machine("abc")])


def test_client_sleeps_what_retry_after_says(legacy):
    legacy.rate_limited = 2
    legacy.retry_after = "7"
    slept = []
    client = _flyio_api.FlyClient(TOKEN, legacy.url, legacy.graphql_url, retries=3, backoff=0.5, sleep=slept.append)
    assert client.get_app("sophiaai-jobs-v2")["name"] == "sophiaai-jobs-v2"
    assert slept == [7.0, 7.0]
