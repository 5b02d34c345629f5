#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ledger
short_description: Record and read steps of the migration ledger
version_added: 0.1.0
description:
  - Reads and writes the migration ledger, a JSON document on the controller or the target
    that records every completed migration step, what it changed and how to undo it.
  - Phase playbooks read it to resume after an interruption; C(playbooks/rollback.yml) walks it backwards.
  - Writes are atomic (temporary file, fsync, rename) and locked, so concurrent writers never lose entries.
  - A ledger file that cannot be parsed is never overwritten; the module fails and names the file.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  path:
    description: Path of the ledger JSON file. Created (mode 0600) on the first write.
    type: path
    required: true
  operation:
    description:
      - V(record) appends an entry for O(step) unless the latest entry for it already has the same
        O(status), O(data) and O(undo).
      - V(read) returns the ledger, the latest entry of O(step) when given, and the steps to undo.
      - V(set_state) stores O(value) under O(key) in the ledger's state map (for example a route's live weight).
    type: str
    choices: [record, read, set_state]
    default: record
  step:
    description: Name of the step, for example V(redis/cutover) or V(traffic/www/api). Required for O(operation=record).
    type: str
  status:
    description: Status of the step.
    type: str
    choices: [started, done, failed, rolled_back]
    default: done
  phase:
    description: Phase the step belongs to, for example V(phase2b).
    type: str
    default: ""
  data:
    description: Facts about what the step did (paths, checksums, weights).
    type: dict
    default: {}
  undo:
    description: How to undo the step, read by the rollback playbook.
    type: dict
    default: {}
  key:
    description: State key for O(operation=set_state).
    type: str
  value:
    description: State value for O(operation=set_state).
    type: raw
"""

EXAMPLES = r"""
- name: Record that Redis was cut over, and how to go back
  sophia.migrate.ledger:
    path: "{{ sophia_ledger_path }}"
    step: redis/cutover
    phase: phase2b
    data:
      new_primary: 10.43.0.12:6379
    undo:
      action: redis_failback
      primary: 127.0.0.1:6379

- name: Read the ledger to resume
  sophia.migrate.ledger:
    path: "{{ sophia_ledger_path }}"
    operation: read
    step: redis/cutover
  register: ledger

- name: Skip the cutover when it is already done
  ansible.builtin.debug:
    msg: already cut over
  when: ledger.entry.status | default('') == 'done'

- name: Remember the live weight of a route
  sophia.migrate.ledger:
    path: "{{ sophia_ledger_path }}"
    operation: set_state
    key: traffic/www/api
    value: 25
"""

RETURN = r"""
entry:
  description: The entry recorded, or the latest entry of O(step) when reading.
  returned: when O(step) is given
  type: dict
  sample: {"step": "redis/cutover", "status": "done", "seq": 4, "at": "2026-11-25T07:00:00.000+00:00"}
ledger:
  description: The whole ledger document.
  returned: when O(operation=read)
  type: dict
undo:
  description: Entries whose undo is pending, newest first (what C(rollback.yml) walks).
  returned: when O(operation=read)
  type: list
  elements: dict
"""

from ansible_collections.sophia.migrate.plugins.module_utils import _ledger
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule


def run(module: AnsibleModule) -> dict:
    p = module.params
    path = p["path"]
    if p["operation"] == "read":
        data = _ledger.load(path)
        result = {"changed": False, "ledger": data, "undo": _ledger.pending_undo(data)}
        if p["step"]:
            result["entry"] = _ledger.find(data, p["step"]) or {}
        return result
    if p["operation"] == "set_state":
        if not p["key"]:
            module.fail_json(msg="ledger: option 'key' is required when operation=set_state")
        before = _ledger.get_state(path, p["key"])
        changed = _ledger.set_state(path, p["key"], p["value"], check_mode=module.check_mode)
        return {"changed": changed, "diff": {"before": {p["key"]: before}, "after": {p["key"]: p["value"]}}}
    if not p["step"]:
        module.fail_json(msg="ledger: option 'step' is required when operation=record")
    before = _ledger.find(_ledger.load(path), p["step"]) or {}
    changed, entry = _ledger.record(path, p["step"], p["status"], p["phase"], p["data"], p["undo"], module.check_mode)
    return {"changed": changed, "entry": entry, "diff": {"before": before, "after": entry}}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "operation": {"type": "str", "choices": ["record", "read", "set_state"], "default": "record"},
            "step": {"type": "str"},
            "status": {"type": "str", "choices": list(_ledger.STATUSES), "default": "done"},
            "phase": {"type": "str", "default": ""},
            "data": {"type": "dict", "default": {}},
            "undo": {"type": "dict", "default": {}},
            "key": {"type": "str", "no_log": False},
            "value": {"type": "raw"},
        },
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except _ledger.LedgerError as exc:
        module.fail_json(msg=f"ledger: {exc}")


if __name__ == "__main__":
    main()
