# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: missing_evidence
short_description: What evidence is missing before a Compose service may be retired
version_added: 0.1.0
description:
  - Given the migration ledger and the services to retire, returns for each service the list of
    missing evidence (empty when the service may go). Evidence is read from the ledger
    written by the other roles; traffic is proven by a state key whose value is 100 (percent on the
    new side), data by steps whose latest entry has status C(done).
author:
  - Sophia Platform Team (@sophia-ai)
positional: services
options:
  _input:
    description: The ledger document, the C(ledger) result of P(sophia.migrate.ledger#module) reading it.
    type: dict
    required: true
  services:
    description: Services, each a dict with C(name) and optionally C(traffic_key) and C(data_steps).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Refuse with the missing evidence
  ansible.builtin.assert:
    that: missing | dict2items | selectattr('value') | list | length == 0
    fail_msg: "{{ missing }}"
  vars:
    missing: "{{ ledger.ledger | sophia.migrate.missing_evidence(compose_decommission_services) }}"
"""

RETURN = r"""
_value:
  description: Missing evidence per service name (an empty list means the service may be retired).
  type: dict
"""

from ansible.errors import AnsibleFilterError


def _latest(entries, step):
    for entry in reversed(entries):
        if entry.get("step") == step:
            return entry
    return None


def missing_evidence(ledger, services):
    if not isinstance(ledger, dict) or "entries" not in ledger:
        raise AnsibleFilterError("missing_evidence: the input must be a ledger document (with 'entries')")
    if not isinstance(services, list):
        raise AnsibleFilterError("missing_evidence: 'services' must be a list of dicts with a 'name'")
    state = ledger.get("state") or {}
    entries = ledger.get("entries") or []
    out = {}
    for index, svc in enumerate(services):
        if not isinstance(svc, dict) or not svc.get("name"):
            raise AnsibleFilterError(f"missing_evidence: services[{index}] needs a 'name'")
        missing = []
        key = svc.get("traffic_key")
        if key:
            weight = state.get(key)
            if weight is None:
                missing.append(f"no traffic record '{key}' in the ledger (traffic_shift has not moved this route)")
            elif str(weight) != "100":
                missing.append(f"traffic '{key}' is at {weight}% on the new side, not 100%")
        for step in svc.get("data_steps") or []:
            entry = _latest(entries, step)
            if entry is None:
                missing.append(f"data step '{step}' is not in the ledger")
            elif entry.get("status") != "done":
                missing.append(f"data step '{step}' is '{entry.get('status')}', not 'done'")
        out[svc["name"]] = missing
    return out


class FilterModule:
    def filters(self):
        return {"missing_evidence": missing_evidence}
