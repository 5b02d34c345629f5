#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: migration_report
short_description: Write a phase report (Markdown and JSON) for one run of a migration phase
version_added: 0.1.0
description:
  - Writes C(<phase>.json) and C(<phase>.md) under O(directory)/O(run_id)/, each with mode C(0600) and atomically
    (a temporary file with a random name in the same directory, fsynced, then renamed; a symbolic link at a file's
    name is replaced, never written through).
  - Each step carries an outcome that tells what ran for real (V(ran)), what was only rendered and
    validated (V(staged)), and what was skipped, with the reason; environment limitations (for
    example the lab has no GPU and no K3s binary) are listed separately.
  - A report records a run; it does not change the managed systems, so the module reports
    C(changed=false) and a re-run of a phase playbook stays at C(changed=0). In check mode it writes nothing.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
attributes:
  check_mode:
    support: full
    details:
      - Nothing is written; the report is returned.
  diff_mode:
    support: none
options:
  directory:
    description: Reports directory; the run gets a subdirectory named O(run_id).
    type: path
    required: true
  run_id:
    description:
      - Identifier of the run, for example a timestamp shared by all phases of one invocation.
      - The name of the run's subdirectory of O(directory); a path (with C(/)) or C(..) is refused.
    type: str
    required: true
  phase:
    description:
      - Phase name, used for the file names (V(phase2a) gives C(phase2a.json) and C(phase2a.md)).
      - A path (with C(/)) or C(..) is refused.
    type: str
    required: true
  environment:
    description: Environment the run targeted (V(lab), V(production)).
    type: str
    default: ""
  title:
    description: Title of the Markdown report.
    type: str
    default: ""
  steps:
    description:
      - Steps in order. Each is a dict with C(name), C(outcome) (one of V(ran), V(staged), V(skipped),
        V(failed), V(not_applicable)), optional C(reason) and C(details) (a dict).
    type: list
    elements: dict
    required: true
  limitations:
    description: What this environment could not do, one sentence each.
    type: list
    elements: str
    default: []
  artifacts:
    description:
      - Files the run produced or kept (backups, rendered manifests).
      - Each is a dict with C(name), C(path), C(size) and C(sha256).
    type: list
    elements: dict
    default: []
  latency:
    description:
      - The per-route latency table (the P(sophia.migrate.latency_table#filter) filter's rows - C(route), C(baseline),
        C(prewarm), C(after), C(now), C(maintained), C(regressions); each figure a dict with C(p50_ms), C(p95_ms),
        C(p99_ms), C(error_rate), C(count)). Written as a table in the Markdown report and as C(latency) in the JSON.
    type: list
    elements: dict
    default: []
"""

EXAMPLES = r"""
- name: Write the phase 2A report
  sophia.migrate.migration_report:
    directory: "{{ sophia_reports_dir }}"
    run_id: "{{ sophia_run_id }}"
    phase: phase2a
    environment: "{{ sophia_environment }}"
    steps:
      - name: k3s_gpu host preparation
        outcome: ran
      - name: GPU Operator
        outcome: skipped
        reason: no GPU in the lab
    limitations:
      - No K3s binary can be obtained here; manifests are rendered and validated, not applied.
"""

RETURN = r"""
paths:
  description: Paths of the files written (or that would be written in check mode).
  returned: always
  type: dict
  sample: {"json": "reports/20261125T070000/phase2a.json", "markdown": "reports/20261125T070000/phase2a.md"}
report:
  description: The report document.
  returned: always
  type: dict
"""

from ansible_collections.sophia.migrate.plugins.module_utils import _report
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "directory": {"type": "path", "required": True},
            "run_id": {"type": "str", "required": True},
            "phase": {"type": "str", "required": True},
            "environment": {"type": "str", "default": ""},
            "title": {"type": "str", "default": ""},
            "steps": {"type": "list", "elements": "dict", "required": True},
            "limitations": {"type": "list", "elements": "str", "default": []},
            "artifacts": {"type": "list", "elements": "dict", "default": []},
            "latency": {"type": "list", "elements": "dict", "default": []},
        },
        supports_check_mode=True,
    )
    p = module.params
    for name in ("run_id", "phase"):  # each names a file or directory under O(directory): never a path out of it
        value = p[name]
        if not value or value in (".", "..") or "/" in value or "\0" in value:
            module.fail_json(msg=f"migration_report: option '{name}': must be a single file name, got {value!r:.200}")
    try:
        out = _report.write_report(p["directory"], p["run_id"], p["phase"], p["environment"], p["title"], p["steps"],
                                   p["limitations"], p["artifacts"], module.check_mode, latency=p["latency"])
    except _report.ReportError as exc:
        module.fail_json(msg=f"migration_report: {exc}")
    module.exit_json(changed=False, **out)


if __name__ == "__main__":
    main()
