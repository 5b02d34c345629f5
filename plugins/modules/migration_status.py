#!/usr/bin/python
# Copyright: (c) 2026, Sophia Platform Team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: migration_status
short_description: Where the migration stands, from the ledger and live readings, as data, Markdown and JSON
version_added: 0.3.0
description:
  - Reads the migration ledger (never writes it) and returns where things stand. That covers each phase's last status,
    the last step, each route's share on K3s as recorded, and as read live from the splitter when O(live_shares) is
    given, with every disagreement named. It also covers the last gate verdict per route, the data store steps, the
    backups with their path and sha256, and the undo steps C(playbooks/rollback.yml) would take, newest first.
  - With O(directory), writes C(status.md) and C(status.json) there (0600), replacing the previous ones.
  - C(playbooks/status.yml) (C(make status)) runs it after reading the live shares on the edge host.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  ledger_path:
    description: The ledger file on the controller. A missing file is an empty ledger (nothing recorded yet).
    type: path
    required: true
  live_shares:
    description:
      - Share on K3s (percent) per route name as read live from the splitter; a value that is not an integer (a
        reading that failed, as text) is shown as it is and never counts as agreement.
    type: dict
    default: {}
  directory:
    description: Where to write C(status.md) and C(status.json); omitted, nothing is written.
    type: path
  environment:
    description: Environment the ledger belongs to, shown in the title; default the one the ledger records.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Where the migration stands
  sophia.migrate.migration_status:
    ledger_path: "{{ sophia_ledger_path }}"
    live_shares: {www-root: 100, www-api-context: 25}
    directory: "{{ sophia_reports_dir }}"
  register: status
"""

RETURN = r"""
status:
  description: Phases, last step, routes (ledger and live share, agreement), gates, data steps, backups, pending undo.
  returned: always
  type: dict
markdown:
  description: The same as a Markdown page.
  returned: always
  type: str
paths:
  description: Files written (C(markdown), C(json)).
  returned: when O(directory) is set and not in check mode
  type: dict
"""

import os

from ansible_collections.sophia.migrate.plugins.module_utils import _ledger, _status
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule
from ansible_collections.sophia.migrate.plugins.module_utils._files import atomic_write


def run(module: AnsibleModule) -> dict:
    p = module.params
    try:
        ledger = _ledger.load(p["ledger_path"])
    except _ledger.LedgerError as exc:
        module.fail_json(msg=f"migration_status: {exc}")
    live = {str(k): (v if isinstance(v, int) and not isinstance(v, bool) else str(v))
            for k, v in p["live_shares"].items()}
    report = _status.status(ledger, live)
    report["environment"] = p["environment"] or report["environment"]
    text = _status.markdown(report)
    result = {"changed": False, "status": report, "markdown": text}
    if p["directory"] and not module.check_mode:
        paths = {"markdown": os.path.join(p["directory"], "status.md"),
                 "json": os.path.join(p["directory"], "status.json")}
        try:
            os.makedirs(p["directory"], mode=0o700, exist_ok=True)
            atomic_write(paths["markdown"], text + "\n")
            atomic_write(paths["json"], _status.to_json(report))
        except OSError as exc:
            reason = exc.strerror or exc
            module.fail_json(msg=f"migration_status: cannot write the status to {p['directory']}: {reason}", **result)
        result["paths"] = paths
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "ledger_path": {"type": "path", "required": True},
            "live_shares": {"type": "dict", "default": {}},
            "directory": {"type": "path"},
            "environment": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
