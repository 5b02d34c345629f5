#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: flyio_app
short_description: Retire a Fly.io app safely (destroy with confirmation, report what is lost, wait until gone)
version_added: 0.1.0
description:
  - With O(state=absent), deletes the Fly.io app O(name) through the Machines API (C(DELETE /apps/{app})) - the
    equivalent of C(fly apps destroy). Deleting an app deletes its machines, volumes and their snapshots, IP addresses,
    certificates and secrets.
  - Refuses unless O(confirm) equals O(name).
  - Before deleting, reads and returns what will be lost (RV(will_lose) - volumes and their sizes, certificates, IPs,
    secret names) and which volumes the backup declaration (O(backup)) does not name (RV(volumes_not_backed_up)).
  - Refuses unless the app's volumes were listed positively - C(GET /apps/{app}/volumes) answered 200 with a JSON list
    of volumes valid against the Machines OpenAPI C(Volume) schema, each with an C(id). A 404 (whatever its body), an
    error status or any other body leaves the volumes unknown, and an app whose volumes are unknown is never deleted,
    not even with O(accept_data_loss=true).
  - Refuses when a volume is not named in O(backup) by its id or name, unless O(accept_data_loss=true). An app whose
    volume list is positively empty needs no declaration.
  - The C(GET /apps/{app}) answer counts as "the app does not exist" only when it is a 404 whose body is the Fly API's
    error object (JSON with an C(error) text); any other 404 fails (the answer may not come from the Fly API).
  - The API answers 202 and deletes asynchronously; with O(wait=true) the module polls C(GET /apps/{app}) until it
    answers 404, for at most O(wait_timeout) seconds.
  - Never deletes on HTTP 403 (the token may not read or delete the app); the module fails and says so.
  - Idempotent - an app that does not exist (404) gives C(changed=false).
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads the app and returns what would be deleted and lost; deletes nothing.
  diff_mode:
    support: full
    details:
      - Before is the app with its volumes, certificates and IPs; after is V(exists=false).
requirements:
  - requests
options:
  name:
    description: Name of the Fly.io app.
    type: str
    required: true
  state:
    description: V(absent) - the app must not exist.
    type: str
    choices: [absent]
    default: absent
  confirm:
    description: Must be exactly O(name); a guard against deleting the wrong app (like C(fly apps destroy)'s prompt).
    type: str
    required: true
  backup:
    description:
      - The backup declaration - the volumes whose data was saved, named by volume id or name. Either a list of
        volume ids/names, or a dict of volume id/name to where its data was saved (a path, a snapshot id; a
        non-empty text). Returned in RV(backup).
      - Every volume the API lists must be named (see O(accept_data_loss)). Free text or V(true) names no volume, so
        they no longer suffice when the app has volumes; they are accepted (and not needed) for an app without
        volumes.
    type: raw
  accept_data_loss:
    description:
      - Delete an app although some of its volumes are not named in O(backup).
      - Never overrides the refusal when the volumes could not be listed.
    type: bool
    default: false
  force:
    description:
      - Append C(?force=true) - the API stops all machines and deletes at once. Without it, machines should be
        stopped before (the API may refuse otherwise).
    type: bool
    default: false
  wait:
    description: Poll until the app is gone.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for the app to be gone after the API accepted the deletion.
    type: float
    default: 300
  poll_interval:
    description: Seconds between two polls.
    type: float
    default: 2
  api_token:
    description:
      - Fly.io API token (C(Bearer) or C(FlyV1) form, see M(sophia.migrate.flyio_app_info)). Never logged.
        Defaults to E(FLY_API_TOKEN) or E(FLY_ACCESS_TOKEN).
    type: str
    required: true
  api_url:
    description: Base URL of the Machines API.
    type: str
    default: https://api.machines.dev/v1
  graphql_url:
    description: URL of the Fly.io GraphQL API (IP assignments and secret names for RV(will_lose)).
    type: str
    default: https://api.fly.io/graphql
  validate_certs:
    description: Verify the API's TLS certificate.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each HTTP answer.
    type: float
    default: 30
  retries:
    description: Retries of a call answered 429 or 5xx, with exponential backoff honouring C(Retry-After).
    type: int
    default: 5
  backoff:
    description: First backoff delay in seconds when the API sends no C(Retry-After).
    type: float
    default: 1.0
seealso:
  - module: sophia.migrate.flyio_app_info
"""

EXAMPLES = r"""
- name: Retire a legacy app whose volume was backed up
  sophia.migrate.flyio_app:
    name: sophiaai-jobs-v2
    state: absent
    confirm: sophiaai-jobs-v2
    backup:
      vol_jobs0001: /var/backups/sophia/fly/sophiaai-jobs-v2-data.tar.gz (sha256 in the ledger)
    api_token: "{{ vault_fly_api_token }}"

- name: Retire an app whose volumes (named jobs_data) were all backed up
  sophia.migrate.flyio_app:
    name: sophiaai-jobs-v2
    confirm: sophiaai-jobs-v2
    backup: [jobs_data]
    api_token: "{{ vault_fly_api_token }}"

- name: What would be lost (check mode)
  sophia.migrate.flyio_app:
    name: sophiaai-dashboard-v2
    confirm: sophiaai-dashboard-v2
    api_token: "{{ vault_fly_api_token }}"
  check_mode: true
  register: plan
"""

RETURN = r"""
name:
  description: The app.
  returned: always
  type: str
existed:
  description: Whether the app existed when the module started.
  returned: always
  type: bool
deleted:
  description: The deletion was accepted and (with O(wait)) the app is gone.
  returned: always
  type: bool
will_lose:
  description: What deleting the app destroys.
  returned: when the app existed
  type: dict
  contains:
    machines:
      description: Number of machines.
      type: int
    volumes:
      description: Volumes with C(id), C(name), C(size_gb), C(attached_machine_id).
      type: list
      elements: dict
    volume_total_gb:
      description: Sum of the volume sizes.
      type: int
    certificates:
      description: Host names with certificates.
      type: list
      elements: str
    ips:
      description: Assigned IP addresses.
      type: list
      elements: str
    secret_names:
      description: Names of the secrets (values are never read).
      type: list
      elements: str
    unknown:
      description: What could not be read (so is not listed above), such as the volumes when they were not listed.
      type: list
      elements: str
  sample:
    machines: 1
    volumes: [{id: vol_1, name: jobs_data, size_gb: 10, attached_machine_id: 148ed193b95089}]
    volume_total_gb: 10
    certificates: []
    ips: [2a09:8280:1::1]
    secret_names: [REDIS_URL]
    unknown: []
backup:
  description: The backup declaration as given (null when none).
  returned: always
  type: raw
  sample: {vol_jobs0001: /var/backups/sophia/fly/jobs_data.tar.gz}
backup_declared:
  description: Whether a backup declaration was given (whatever it names).
  returned: always
  type: bool
volumes_not_backed_up:
  description: >-
    Ids of the volumes the declaration does not name; null when the volumes could not be listed.
  returned: when the app existed
  type: list
  elements: str
  sample: []
polls:
  description: Number of C(GET /apps/{app}) polls until the app was gone.
  returned: always
  type: int
delete_status:
  description: HTTP status of the C(DELETE) call (202 accepted).
  returned: when a deletion was sent
  type: int
msg:
  description: What happened, in one sentence.
  returned: always
  type: str
"""

import typing as t

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.sophia.migrate.plugins.module_utils import _flyio_api, _flyio_redact, _flyio_verdict, _http
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "choices": ["absent"], "default": "absent"},
    "confirm": {"type": "str", "required": True},
    "backup": {"type": "raw"},
    "accept_data_loss": {"type": "bool", "default": False},
    "force": {"type": "bool", "default": False},
    "wait": {"type": "bool", "default": True},
    "wait_timeout": {"type": "float", "default": 300},
    "poll_interval": {"type": "float", "default": 2},
    "api_token": {
        "type": "str",
        "required": True,
        "no_log": True,
        "fallback": (env_fallback, ["FLY_API_TOKEN", "FLY_ACCESS_TOKEN"]),
    },
    "api_url": {"type": "str", "default": _flyio_api.DEFAULT_API_URL},
    "graphql_url": {"type": "str", "default": _flyio_api.DEFAULT_GRAPHQL_URL},
    "validate_certs": {"type": "bool", "default": True},
    "timeout": {"type": "float", "default": 30},
    "retries": {"type": "int", "default": 5},
    "backoff": {"type": "float", "default": 1.0},
}


def absent(client: _flyio_api.FlyClient, p: dict[str, t.Any], check_mode: bool) -> dict[str, t.Any]:
    """Plan, guard, delete, wait. Raises FlyError with a message that says what was (not) done."""
    name = p["name"]
    backup = p["backup"].strip() if isinstance(p["backup"], str) else p["backup"]
    result: dict[str, t.Any] = {
        "changed": False,
        "name": name,
        "existed": False,
        "deleted": False,
        "backup": backup if backup not in ("", None) else None,
        "backup_declared": backup not in ("", None, False, [], {}),
        "polls": 0,
    }
    try:
        info = client.app_info(name)
    except _flyio_api.FlyError as exc:
        raise type(exc)(f"{exc}; nothing was deleted", exc.status) from None
    if info["forbidden"]:
        raise _flyio_api.FlyForbidden(f"{info.get('error')}; nothing was deleted", 403)
    if info["exists"] is False:
        return {**result, "msg": f"app '{name}' does not exist; nothing to do"}
    lose = _flyio_verdict.what_will_be_lost(info)
    volumes = info.get("volumes")
    missing = _flyio_verdict.volumes_not_backed_up(volumes, backup) if isinstance(volumes, list) else None
    result.update(
        existed=True,
        will_lose=lose,
        volumes_not_backed_up=[v.get("id") for v in missing] if missing is not None else None,
        diff={
            "before": {
                "name": name,
                "exists": True,
                "machines": lose["machines"],
                "volumes": lose["volumes"] if isinstance(volumes, list) else "unknown",
                "certificates": lose["certificates"],
                "ips": lose["ips"],
            },
            "after": {"name": name, "exists": False},
        },
    )
    if missing is None:
        gap = next((g for g in lose["unknown"] if g.startswith("volumes:")), "volumes: not listed")
        raise _Refused(
            f"refusing to delete '{name}': its volumes could not be listed positively ({gap}); a volume could hold "
            "data, so neither a backup declaration nor accept_data_loss can cover it; nothing was deleted",
            result,
        )
    if missing and not p["accept_data_loss"]:
        vols = ", ".join(f"{v['id']} ({v.get('name')}, {v.get('size_gb')} GB)" for v in missing)
        vague = " (a text or true names no volume)" if backup is True or (isinstance(backup, str) and backup) else ""
        raise _Refused(
            f"refusing to delete '{name}': volume(s) {vols} are not named in backup{vague}; list the backed-up "
            "volume ids or names (or a dict volume -> where its data was saved), or set accept_data_loss=true; "
            "nothing was deleted",
            result,
        )
    if check_mode:
        return {**result, "changed": True, "msg": f"app '{name}' would be deleted (check mode)"}
    status = client.delete_app(name, p["force"])
    result.update(changed=status != 404, delete_status=status)
    if status == 404:
        return {**result, "msg": f"app '{name}' was already gone when the deletion was sent"}
    if not p["wait"]:
        return {**result, "msg": f"deletion of '{name}' accepted (HTTP {status}); not waiting"}
    try:
        gone, polls = client.wait_gone(name, p["wait_timeout"], p["poll_interval"])
    except _flyio_api.FlyError as exc:
        raise _WaitTimeout(
            f"deletion of '{name}' was accepted (HTTP {status}) but waiting for it to be gone failed: {exc}", result
        ) from None
    result["polls"] = polls
    if not gone:
        raise _WaitTimeout(
            f"deletion of '{name}' was accepted (HTTP {status}) but the app still exists after "
            f"{p['wait_timeout']}s ({polls} polls); run again to keep waiting",
            result,
        )
    return {**result, "deleted": True, "msg": f"app '{name}' deleted (gone after {polls} poll(s))"}


class _Refused(_flyio_api.FlyError):
    """A guard refused the deletion; ``result`` holds what was read (will_lose, volumes_not_backed_up)."""

    def __init__(self, message: str, result: dict[str, t.Any]):
        super().__init__(message)
        self.result = result


class _WaitTimeout(_flyio_api.FlyError):
    def __init__(self, message: str, result: dict[str, t.Any]):
        super().__init__(message)
        self.result = result


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, failure_note="nothing was deleted")
    if not _http.HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"))
    p = module.params
    # credentials in a URL are masked wherever the module's result would show them (invocation included)
    module.no_log_values.update(_flyio_redact.url_secrets(p["api_url"]) | _flyio_redact.url_secrets(p["graphql_url"]))
    if not _flyio_api.valid_app_name(p["name"]):
        module.fail_json(msg=f"flyio_app: option 'name': '{p['name']}' is not a Fly app name", changed=False)
    problems = [
        f"option 'backup': {problem}" for problem in [_flyio_verdict.backup_declaration_problem(p["backup"])] if problem
    ]
    for option in ("wait_timeout", "poll_interval"):
        if p[option] < 0:
            problems.append(f"option '{option}': must be 0 or more seconds, got {p[option]}")
    if problems:
        module.fail_json(msg=f"flyio_app: {'; '.join(problems)}; nothing was deleted", changed=False)
    if p["confirm"] != p["name"]:
        module.fail_json(
            msg=f"flyio_app: refusing to delete '{p['name']}': option 'confirm' must be exactly the app "
            "name; nothing was deleted",
            changed=False,
        )
    try:
        client = _flyio_api.FlyClient(
            p["api_token"],
            p["api_url"],
            p["graphql_url"],
            p["timeout"],
            p["validate_certs"],
            p["retries"],
            p["backoff"],
        )
        result = absent(client, p, module.check_mode)
    except _WaitTimeout as exc:
        module.fail_json(msg=f"flyio_app: {exc}", **{**exc.result, "changed": True})
    except _Refused as exc:
        module.fail_json(msg=f"flyio_app: {exc}", **{**exc.result, "changed": False})
    except _flyio_api.FlyError as exc:
        msg = str(exc) if "nothing was deleted" in str(exc) else f"{exc}; nothing was deleted"
        module.fail_json(msg=f"flyio_app: {msg}", changed=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
