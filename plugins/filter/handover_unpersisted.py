# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: handover_unpersisted
short_description: Which public ports were not handed over with rules that survive a reboot
version_added: 0.3.0
description:
  - Phase 2D retires the Compose stack only after its public ports go to the K3s ingress by DNAT rules that a boot
    unit restores (P(sophia.migrate.traffic_shift#role), C(traffic_shift_handover_persist)). This filter reads the
    ledger's C(traffic/handover/<port>) records (the latest per port counts) and returns one sentence per port whose
    latest record is missing, not C(done), or does not name the boot unit in C(data.persisted).
  - An empty list means every port is handed over and persisted.
author:
  - Sophia Platform Team (@sophia-ai)
positional: ports
options:
  _input:
    description: The ledger document, the C(ledger) result of P(sophia.migrate.ledger#module) reading it.
    type: dict
    required: true
  ports:
    description: The public ports handed over (C(traffic_shift_handover)'s C(port) values).
    type: list
    elements: int
    required: true
"""

EXAMPLES = r"""
- name: Refuse the retirement while a port's handover would not survive a reboot
  ansible.builtin.assert:
    that: ledger.ledger | sophia.migrate.handover_unpersisted([443, 80]) | length == 0
"""

RETURN = r"""
_value:
  description: One sentence per port that is not handed over with persisted rules, in the order of O(ports).
  type: list
  elements: str
"""

import typing as t
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError


def handover_unpersisted(ledger: t.Any, ports: t.Any) -> list[str]:
    if not isinstance(ledger, Mapping) or not isinstance(ledger.get("entries", []), list):
        raise AnsibleFilterError("handover_unpersisted: the input must be the ledger document (a mapping with entries)")
    if isinstance(ports, (str, bytes)) or not isinstance(ports, (list, tuple)):
        raise AnsibleFilterError(f"handover_unpersisted: ports must be a list of port numbers, got {ports!r}")
    latest: dict[str, Mapping] = {}
    for entry in ledger.get("entries", []):
        if isinstance(entry, Mapping) and isinstance(entry.get("step"), str):
            latest[entry["step"]] = entry
    problems = []
    for port in ports:
        if isinstance(port, bool) or not str(port).isdigit():
            raise AnsibleFilterError(f"handover_unpersisted: {port!r} is not a port number")
        entry = latest.get(f"traffic/handover/{int(port)}")
        if entry is None:
            problems.append(f"port {port}: no handover recorded")
        elif entry.get("status") != "done":
            problems.append(f"port {port}: the handover's latest record is {entry.get('status')!r}, not done")
        elif not (entry.get("data") or {}).get("persisted"):
            problems.append(f"port {port}: handed over but not persisted (no boot unit restores its DNAT rules)")
    return problems


class FilterModule:
    def filters(self) -> dict[str, t.Any]:
        return {"handover_unpersisted": handover_unpersisted}
