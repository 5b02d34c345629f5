# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: alertmanager_config
short_description: Alertmanager's configuration (route and receivers) from a list of receivers in the inventory
version_added: 0.4.0
description:
  - Builds the C(route) and C(receivers) of an Alertmanager configuration (kube-prometheus-stack's
    C(alertmanager.config)) so that every alert of severity C(warning) or C(critical) reaches every receiver given.
    Alerts of another severity (the chart's always-firing C(Watchdog) has C(none)) go to the receiver C(null).
  - Each receiver is one of a webhook (C(webhook_url)), Slack (C(slack_api_url), optional C(slack_channel)),
    PagerDuty (C(pagerduty_routing_key), Events API v2) or e-mail (C(email_to), C(email_from), C(email_smarthost),
    optional C(email_auth_username) and C(email_auth_password)). Secrets come from the vault.
  - A receiver that is not a mapping, has no or a duplicate name, names no kind or two kinds, or lacks a field
    its kind needs, is refused with its position and name; secret values are never put in the message.
author:
  - Sophia Platform Team (@sophia-ai)
positional: group_by, group_wait, repeat_interval
options:
  _input:
    description: The receivers (see the description).
    type: list
    elements: dict
    required: true
  group_by:
    description: Labels alerts are grouped by.
    type: list
    elements: str
    default: [alertname, namespace]
  group_wait:
    description: How long Alertmanager waits to send the first notification of a new group.
    type: str
    default: 30s
  repeat_interval:
    description: How often a notification is sent again while its alert still fires.
    type: str
    default: 4h
"""

EXAMPLES = r"""
- name: Alertmanager configuration for kube-prometheus-stack
  ansible.builtin.set_fact:
    alertmanager_config: "{{ [{'name': 'ops-hook', 'webhook_url': vault_alert_webhook_url}]
                             | sophia.migrate.alertmanager_config }}"
"""

RETURN = r"""
_value:
  description: C({route, receivers}) in Alertmanager's configuration format (receivers C(null) first).
  type: dict
"""

import re
import typing as t
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# kind -> (Alertmanager's list key, required fields, optional fields, secret fields)
_KINDS = {
    "webhook_url": ("webhook_configs", ("webhook_url",), (), ("webhook_url",)),
    "slack_api_url": ("slack_configs", ("slack_api_url",), ("slack_channel",), ("slack_api_url",)),
    "pagerduty_routing_key": ("pagerduty_configs", ("pagerduty_routing_key",), (), ("pagerduty_routing_key",)),
    "email_to": ("email_configs", ("email_to", "email_from", "email_smarthost"),
                 ("email_auth_username", "email_auth_password"), ("email_auth_password",)),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_DURATION = re.compile(r"^[0-9]+(ms|s|m|h|d|w)$")
_URL = re.compile(r"^https?://[^\s/]+")


def _config(kind: str, item: Mapping) -> dict[str, t.Any]:
    if kind == "webhook_url":
        return {"url": item["webhook_url"], "send_resolved": True}
    if kind == "slack_api_url":
        out = {"api_url": item["slack_api_url"], "send_resolved": True}
        if item.get("slack_channel"):
            out["channel"] = item["slack_channel"]
        return out
    if kind == "pagerduty_routing_key":
        return {"routing_key": item["pagerduty_routing_key"], "send_resolved": True}
    out = {"to": item["email_to"], "from": item["email_from"], "smarthost": item["email_smarthost"],
           "send_resolved": True}
    if item.get("email_auth_username"):
        out["auth_username"] = item["email_auth_username"]
        out["auth_password"] = item.get("email_auth_password") or ""
    return out


def _receiver(n: int, item: t.Any, seen: set[str]) -> dict[str, t.Any]:
    where = f"receiver {n + 1}"
    if not isinstance(item, Mapping):
        raise AnsibleFilterError(f"alertmanager_config: {where} must be a mapping, got {type(item).__name__}")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name) or name == "null":
        raise AnsibleFilterError(f"alertmanager_config: {where} needs a name (letters, digits, '.', '_', '-'; "
                                 f"not 'null'), got {name!r:.40}")
    where = f"{where} ({name})"
    if name in seen:
        raise AnsibleFilterError(f"alertmanager_config: {where}: the name is used twice")
    seen.add(name)
    kinds = [k for k in _KINDS if k in item]
    if len(kinds) != 1:
        raise AnsibleFilterError(f"alertmanager_config: {where} must set exactly one of {', '.join(_KINDS)}, "
                                 f"got {', '.join(kinds) or 'none'}")
    kind = kinds[0]
    key, required, optional, secret = _KINDS[kind]
    unknown = sorted(set(item) - {"name", *required, *optional})
    if unknown:
        raise AnsibleFilterError(f"alertmanager_config: {where}: unknown field(s) {', '.join(unknown)} for a "
                                 f"{key.split('_')[0]} receiver")
    for field in required:
        value = item.get(field)
        if not isinstance(value, str) or not value.strip():
            shown = "" if field in secret else f" (got {value!r:.60})"
            raise AnsibleFilterError(f"alertmanager_config: {where}: {field} is missing or empty{shown}; secrets "
                                     "come from the vault")
        if field.endswith("_url") and not _URL.match(value):
            raise AnsibleFilterError(f"alertmanager_config: {where}: {field} must be an http(s) URL (value not "
                                     "shown: it may hold a secret)")
    return {"name": name, key: [_config(kind, item)]}


def alertmanager_config(receivers: t.Any, group_by: t.Any = None, group_wait: str = "30s",
                        repeat_interval: str = "4h") -> dict[str, t.Any]:
    if not isinstance(receivers, list):
        raise AnsibleFilterError(f"alertmanager_config: the receivers must be a list, got {type(receivers).__name__}")
    group_by = ["alertname", "namespace"] if group_by is None else group_by
    if not isinstance(group_by, list) or not all(isinstance(x, str) and x for x in group_by):
        raise AnsibleFilterError("alertmanager_config: group_by must be a list of label names")
    for label, value in (("group_wait", group_wait), ("repeat_interval", repeat_interval)):
        if not isinstance(value, str) or not _DURATION.match(value):
            raise AnsibleFilterError(f"alertmanager_config: {label} must be a duration such as 30s or 4h, got "
                                     f"{value!r:.40}")
    seen: set[str] = set()
    built = [_receiver(n, item, seen) for n, item in enumerate(receivers)]
    routes = [{"receiver": r["name"], "matchers": ['severity=~"warning|critical"'], "continue": True} for r in built]
    return {
        "route": {"receiver": "null", "group_by": list(group_by), "group_wait": group_wait, "group_interval": "5m",
                  "repeat_interval": repeat_interval, "routes": routes},
        "receivers": [{"name": "null"}, *built],
    }


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"alertmanager_config": alertmanager_config}
