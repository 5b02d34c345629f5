#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: flyio_audit_report
short_description: Give each Fly.io app a verdict (gone, safe to destroy, blocked) and write the audit report
version_added: 0.1.0
description:
  - From the evidence gathered by the other steps of a Fly.io audit - the apps as the Machines API sees them
    (O(infos), from M(sophia.migrate.flyio_app_info)), the references left in the repositories (O(scan), from
    M(sophia.migrate.flyio_repo_scan)), the DNS and HTTP probes of C(<app>.fly.dev) (O(dns_results),
    O(http_results)) and the declared backups (O(backups)) - gives every app one verdict.
  - V(gone) - the API answers 404 for the app (or it was destroyed in this run, O(destroyed)). References still
    left and a host name that still resolves are listed as notes.
  - V(safe to destroy) - the app exists and nothing below holds.
  - V(blocked), with every reason that applies - no API evidence (O(infos) not given) or the token may not read the
    app (403); a machine is C(started); C(<app>.fly.dev) answers HTTP with a status below 500; references to the app
    remain; no scan was run, a scanned path does not exist or a file or directory could not be read; the app's
    volumes could not be listed (RV(sophia.migrate.flyio_app_info#module:apps[].volumes) is null); a volume is not
    named in O(backups).
  - Every text that goes into the verdicts and the report is redacted as M(sophia.migrate.flyio_repo_scan) redacts
    its references (credentials in URLs, tokens, secret assignments), also when O(scan) comes from elsewhere.
  - With O(directory), writes C(flyio_audit.json) and C(flyio_audit.md) under O(directory)/O(run_id)/, mode
    C(0600) (a temporary file in the same directory, created 0600, then renamed). Files that already hold the same
    audit are left alone (C(changed=false)); the time the report was written does not count as a difference, so the
    earlier C(written_at) is kept. An existing file whose mode allows more than C(0640) is set to C(0600)
    (C(changed=true)).
  - Without O(directory), only computes and returns the verdicts; never changes anything.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
attributes:
  check_mode:
    support: full
    details:
      - Nothing is written; C(changed) tells whether the report files would be written.
  diff_mode:
    support: full
    details:
      - Before and after texts of the two report files (only with O(directory)); the before text is redacted too.
options:
  apps:
    description:
      - Names of the apps to account for. The apps of O(infos) are added after them (without duplicates).
    type: list
    elements: str
    default: []
  infos:
    description:
      - The RV(sophia.migrate.flyio_app_info#module:apps) result - one dict per app with at least C(name), and
        C(exists), C(forbidden), C(machines), C(volumes), C(certificates), C(ips), C(incomplete).
      - Leave it unset (or V(null)) when the API was not asked (no token). An app without an entry here is
        V(blocked) for want of API evidence.
    type: list
    elements: dict
  scan:
    description:
      - The result of M(sophia.migrate.flyio_repo_scan) (a registered result can be passed as it is), with
        C(references), C(files_scanned), C(missing_paths), C(skipped_files), C(fly_tomls), C(apps_referenced).
      - An empty dict means no scan was run - no app can then be judged V(safe to destroy).
    type: dict
    default: {}
  dns_results:
    description:
      - The RV(sophia.migrate.dns_check#module:results) result for the C(<app>.fly.dev) names - one dict per host
        with C(host), C(addresses), C(errors).
    type: list
    elements: dict
    default: []
  http_results:
    description:
      - The C(results) of an M(ansible.builtin.uri) task looped over the DNS results that resolve - each with
        C(item.host), C(status), C(url), C(msg). Skipped loop items are ignored.
    type: list
    elements: dict
    default: []
  backups:
    description:
      - Declared backups - app name to the list of its backed-up volume ids or names, or to a dict of volume id or
        name to where that volume's data was saved (a non-empty text).
      - An app with a volume that the declaration does not name is V(blocked). Free text or V(true) names no volume
        (it is accepted, and not needed, for an app without volumes).
    type: dict
    default: {}
  destroyed:
    description:
      - The results of the destroy step (M(sophia.migrate.flyio_app) in a loop), each with C(name), C(deleted)
        and C(msg). Apps with C(deleted=true) are judged V(gone). Entries without C(name) are ignored.
    type: list
    elements: dict
    default: []
  skipped_steps:
    description: Steps of the audit that were skipped, one sentence each (empty items are dropped).
    type: list
    elements: str
    default: []
  directory:
    description:
      - Reports directory; the files go to its subdirectory O(run_id). Created when missing.
      - When not set, no file is written and RV(paths) is empty.
    type: path
  run_id:
    description: Identifier of the run, the subdirectory of O(directory). A single path component.
    type: str
    default: manual
  environment:
    description: Environment the audit ran in (V(lab), V(production)), written into the report.
    type: str
    default: ""
  api:
    description: The Machines API that was asked (or why none was), written into the report. Never a token.
    type: str
    default: ""
  destroy:
    description: Whether the destroy step was enabled in this run, written into the report.
    type: bool
    default: false
  repo_paths:
    description: The repository paths that were scanned, written into the report.
    type: list
    elements: str
    default: []
notes:
  - The files are written on the host the module runs on; the C(sophia.migrate.flyio_audit) role runs it on the
    controller.
  - The report is a record of the run. The C(sophia.migrate.flyio_audit) role does not count writing it as a change
    of the managed systems (as M(sophia.migrate.migration_report)), so a re-run of C(playbooks/phase1.yml) stays at
    C(changed=0); the module itself reports whether it wrote the files.
seealso:
  - module: sophia.migrate.flyio_repo_scan
  - module: sophia.migrate.flyio_app_info
  - module: sophia.migrate.flyio_app
  - module: sophia.migrate.dns_check
"""

EXAMPLES = r"""
- name: Verdicts only (nothing written)
  sophia.migrate.flyio_audit_report:
    apps: [sophiaai-dashboard-v2, sophiaai-jobs-v2]
    infos: "{{ fly.apps }}"
    scan: "{{ fly_refs }}"
    backups:
      sophiaai-jobs-v2:
        vol_jobs0001: /var/backups/sophia/fly/jobs_data.tar.gz
  register: audit

- name: Safe to destroy
  ansible.builtin.debug:
    msg: "{{ audit.verdicts | selectattr('verdict', 'equalto', 'safe to destroy') | map(attribute='app') | list }}"

- name: Markdown + JSON report of the run, without API evidence (no token)
  sophia.migrate.flyio_audit_report:
    apps: [sophiaai-dashboard-v2, sophiaai-jobs-v2]
    scan: "{{ fly_refs }}"
    dns_results: "{{ fly_dns.results }}"
    http_results: "{{ fly_http.results | default([]) }}"
    skipped_steps: ["API inventory and destroy: no API token"]
    directory: /srv/sophia/reports
    run_id: "20261125T070000Z"
    environment: production
    api: not asked (no API token)
    repo_paths: [/srv/src/sophia-main]
"""

RETURN = r"""
verdicts:
  description: One verdict per app, in the order of O(apps) then O(infos).
  returned: always
  type: list
  elements: dict
  contains:
    app:
      description: App name.
      type: str
    verdict:
      description: V(gone), V(safe to destroy) or V(blocked).
      type: str
    reasons:
      description: Why the app is blocked (empty otherwise).
      type: list
      elements: str
    notes:
      description: What else is worth knowing (leftover references of a gone app, what could not be read).
      type: list
      elements: str
    references:
      description: The scan references that name this app.
      type: list
      elements: dict
  sample:
    - app: sophiaai-jobs-v2
      verdict: blocked
      reasons:
        - "volume vol_jobs0001 (jobs_data, 10 GB) has no declared backup: name it by id or name in the app's backups"
      notes: []
      references: []
counts:
  description: Number of apps per verdict.
  returned: always
  type: dict
  sample: {"gone": 5, "safe to destroy": 0, "blocked": 4}
probes:
  description: One probe per host of O(dns_results) with C(app), C(host), C(resolves), C(addresses), C(status),
    C(url), C(detail).
  returned: always
  type: list
  elements: dict
  sample:
    - {app: sophiaai-dashboard-v2, host: sophiaai-dashboard-v2.fly.dev, resolves: true, addresses: [66.241.124.1],
       status: 301, url: "https://sophiaai-dashboard-v2.fly.dev:443/", detail: ""}
paths:
  description: Paths of the report files (written, left as they were, or that would be written in check mode);
    empty without O(directory).
  returned: always
  type: dict
  sample: {"json": "/srv/sophia/reports/20261125T070000Z/flyio_audit.json",
           "markdown": "/srv/sophia/reports/20261125T070000Z/flyio_audit.md"}
written_at:
  description: The C(written_at) of the report on disk (the earlier one when the files were left as they were).
  returned: when O(directory) is set
  type: str
  sample: "2026-11-25T07:00:03+00:00"
"""

import os

from ansible_collections.sophia.migrate.plugins.module_utils import _flyio_api, _flyio_report, _flyio_verdict
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule

ARGUMENT_SPEC = {
    "apps": {"type": "list", "elements": "str", "default": []},
    "infos": {"type": "list", "elements": "dict"},
    "scan": {"type": "dict", "default": {}},
    "dns_results": {"type": "list", "elements": "dict", "default": []},
    "http_results": {"type": "list", "elements": "dict", "default": []},
    "backups": {"type": "dict", "default": {}},
    "destroyed": {"type": "list", "elements": "dict", "default": []},
    "skipped_steps": {"type": "list", "elements": "str", "default": []},
    "directory": {"type": "path"},
    "run_id": {"type": "str", "default": "manual"},
    "environment": {"type": "str", "default": ""},
    "api": {"type": "str", "default": ""},
    "destroy": {"type": "bool", "default": False},
    "repo_paths": {"type": "list", "elements": "str", "default": []},
}
REFERENCE_KEYS = ("file", "line", "location", "kind", "value")
# What each entry of 'infos' holds when it is a flyio_app_info result: list -> type of its items (null allowed).
INFO_LISTS = {
    "machines": dict,
    "volumes": dict,
    "certificates": dict,
    "ips": dict,
    "secret_names": str,
    "incomplete": str,
}


def validate(p: dict) -> list[str]:
    """Every problem of the options, one message each (empty when they are usable)."""
    errors = []
    bad = [a for a in p["apps"] if not _flyio_api.valid_app_name(a)]
    if bad:
        errors.append(f"option 'apps': not a Fly app name: {', '.join(bad)}")
    for i, info in enumerate(p["infos"] or []):
        if not isinstance(info.get("name"), str) or not info["name"]:
            errors.append(
                f"option 'infos': entry {i} has no 'name' (pass the 'apps' result of sophia.migrate.flyio_app_info)"
            )
            continue
        for key, kind in INFO_LISTS.items():
            value = info.get(key)
            if value is not None and (not isinstance(value, list) or not all(isinstance(x, kind) for x in value)):
                errors.append(
                    f"option 'infos': {info['name']}: '{key}' must be a list of "
                    f"{'objects' if kind is dict else 'texts'} or null, got {value!r:.80}"
                )
    scan = p["scan"]
    refs = scan.get("references", [])
    if not isinstance(refs, list):
        errors.append("option 'scan': 'references' must be a list (pass the result of sophia.migrate.flyio_repo_scan)")
    else:
        for i, ref in enumerate(refs):
            missing = [k for k in REFERENCE_KEYS if not isinstance(ref, dict) or k not in ref]
            if missing:
                errors.append(f"option 'scan': reference {i} lacks {', '.join(missing)}")
                break
    if "files_scanned" in scan and (
        isinstance(scan["files_scanned"], bool) or not isinstance(scan["files_scanned"], int)
    ):
        errors.append(f"option 'scan': 'files_scanned' must be a number, got {scan['files_scanned']!r}")
    for key in ("missing_paths", "skipped_files", "fly_tomls", "apps_referenced"):
        if key in scan and not isinstance(scan[key], list):
            errors.append(f"option 'scan': '{key}' must be a list")
    for i, d in enumerate(p["dns_results"]):
        if not isinstance(d.get("host"), str) or not d["host"]:
            errors.append(
                f"option 'dns_results': entry {i} has no 'host' (pass the results of sophia.migrate.dns_check)"
            )
            break
        for key in ("addresses", "errors"):
            value = d.get(key)
            if value is not None and (not isinstance(value, list) or not all(isinstance(x, str) for x in value)):
                errors.append(f"option 'dns_results': {d['host']}: '{key}' must be a list of texts, got {value!r:.80}")
    for i, d in enumerate(p["destroyed"]):
        if d.get("name") is not None and not isinstance(d["name"], str):
            errors.append(f"option 'destroyed': entry {i}: 'name' must be an app name, got {d['name']!r:.80}")
    for app, declared in p["backups"].items():
        problem = _flyio_verdict.backup_declaration_problem(declared)
        if problem:
            errors.append(f"option 'backups': {app}: {problem}")
    run_id = p["run_id"]
    if not run_id or run_id in (".", "..") or "/" in run_id or os.sep in run_id or "\0" in run_id:
        errors.append(f"option 'run_id': must be a single directory name, got {run_id!r}")
    if p["directory"] is not None and not p["directory"].strip():
        errors.append("option 'directory': empty; leave it unset to write no file")
    elif p["directory"] is not None and "\0" in p["directory"]:
        errors.append(f"option 'directory': holds a NUL character, got {p['directory']!r}")
    return errors


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    errors = validate(p)
    if errors:
        module.fail_json(msg="flyio_audit_report: " + "; ".join(errors))
    probes = _flyio_verdict.assemble_probes(p["dns_results"], p["http_results"])
    destroyed = [d for d in p["destroyed"] if d.get("name")]
    doc = _flyio_report.audit_report(
        list(p["apps"]),
        p["infos"],
        _flyio_report.scan_for_report(p["scan"]),
        probes,
        p["backups"],
        destroyed,
        p["environment"],
        p["run_id"],
        p["api"],
        p["destroy"],
        list(p["repo_paths"]),
        [s for s in p["skipped_steps"] if s],
    )
    result = {"changed": False, "verdicts": doc["verdicts"], "counts": doc["counts"], "probes": probes, "paths": {}}
    if p["directory"]:
        try:
            written = _flyio_report.sync_report(p["directory"], p["run_id"], doc, module.check_mode)
        except _flyio_api.FlyError as exc:
            module.fail_json(msg=f"flyio_audit_report: {exc}", **result)
        result.update(changed=written["changed"], paths=written["paths"], written_at=written["doc"]["written_at"])
        if module._diff:
            result["diff"] = [
                {
                    "before_header": written["paths"][key],
                    "after_header": written["paths"][key],
                    "before": written["before"][key] or "",
                    "after": written["after"][key],
                }
                for key in ("markdown", "json")
            ]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
