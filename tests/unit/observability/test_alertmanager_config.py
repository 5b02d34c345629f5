"""sophia.migrate.alertmanager_config: every kind of receiver rendered as Alertmanager reads it, and bad input
refused naming the receiver, without ever printing a secret. The rendered configuration is run by the real
Alertmanager in tests/integration/observability/test_alert_delivery.py."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sophia.migrate.plugins.filter.alertmanager_config import alertmanager_config

SECRET = "https://hooks.slack.com/services/T000/B000/very-secret-token"


def test_each_kind_becomes_its_alertmanager_config_and_every_receiver_gets_warnings_and_criticals():
    config = alertmanager_config([
        {"name": "hook", "webhook_url": "https://ops.example/alerts"},
        {"name": "slack", "slack_api_url": SECRET, "slack_channel": "#ops"},
        {"name": "pager", "pagerduty_routing_key": "R0UT1NG"},
        {"name": "mail", "email_to": "ops@example.org", "email_from": "am@example.org",
         "email_smarthost": "smtp.example.org:587", "email_auth_username": "am", "email_auth_password": "pw"},
    ], ["alertname"], "10s", "2h")
    assert config["receivers"] == [
        {"name": "null"},
        {"name": "hook", "webhook_configs": [{"url": "https://ops.example/alerts", "send_resolved": True}]},
        {"name": "slack", "slack_configs": [{"api_url": SECRET, "channel": "#ops", "send_resolved": True}]},
        {"name": "pager", "pagerduty_configs": [{"routing_key": "R0UT1NG", "send_resolved": True}]},
        {"name": "mail", "email_configs": [{"to": "ops@example.org", "from": "am@example.org",
                                            "smarthost": "smtp.example.org:587", "send_resolved": True,
                                            "auth_username": "am", "auth_password": "pw"}]},
    ]
    route = config["route"]
    assert route["receiver"] == "null" and route["group_by"] == ["alertname"]
    assert (route["group_wait"], route["repeat_interval"]) == ("10s", "2h")
    assert [(r["receiver"], r["matchers"], r["continue"]) for r in route["routes"]] == [
        (name, ['severity=~"warning|critical"'], True) for name in ("hook", "slack", "pager", "mail")]


@pytest.mark.parametrize(("receivers", "message"), [
    ({"name": "x"}, "the receivers must be a list, got dict"),
    (["hook"], "receiver 1 must be a mapping, got str"),
    ([{"webhook_url": "https://a.example/"}], "receiver 1 needs a name"),
    ([{"name": "null", "webhook_url": "https://a.example/"}], "not 'null'"),
    ([{"name": "a", "webhook_url": "https://a.example/"}, {"name": "a", "webhook_url": "https://b.example/"}],
     "receiver 2 (a): the name is used twice"),
    ([{"name": "a"}], "receiver 1 (a) must set exactly one of webhook_url, slack_api_url, pagerduty_routing_key, "
                      "email_to, got none"),
    ([{"name": "a", "webhook_url": "https://a.example/", "pagerduty_routing_key": "k"}],
     "got webhook_url, pagerduty_routing_key"),
    ([{"name": "a", "webhook_url": "https://a.example/", "channel": "#x"}], "unknown field(s) channel for a webhook"),
    ([{"name": "m", "email_to": "ops@example.org", "email_smarthost": "smtp:25"}],
     "receiver 1 (m): email_from is missing or empty (got None)"),
    ([{"name": "s", "slack_api_url": ""}], "receiver 1 (s): slack_api_url is missing or empty; secrets come from"),
])
def test_bad_receivers_are_refused_by_position_and_name(receivers, message):
    with pytest.raises(AnsibleFilterError) as err:
        alertmanager_config(receivers)
    assert message in str(err.value)


def test_a_secret_is_never_in_the_message():
    bad = SECRET.replace("https://", "hxxps://")
    with pytest.raises(AnsibleFilterError) as err:
        alertmanager_config([{"name": "s", "slack_api_url": bad}])
    assert "slack_api_url must be an http(s) URL" in str(err.value) and "very-secret" not in str(err.value)


@pytest.mark.parametrize(("args", "message"), [
    ((["a", ""],), "group_by must be a list of label names"),
    ((None, "soon"), "group_wait must be a duration such as 30s or 4h, got 'soon'"),
    ((None, "30s", 4), "repeat_interval must be a duration"),
])
def test_bad_timing_is_refused(args, message):
    with pytest.raises(AnsibleFilterError) as err:
        alertmanager_config([], *args)
    assert message in str(err.value)
