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
    new side), data by steps whose latest entry has status C(done), a replacement running on K3s by
    the ledger step named in C(replacement_key) whose latest entry has status C(done) (for the
    monitoring services V(phase2a), the phase whose observability step installs the K3s monitoring
    stack; its entry is C(done) only when no step of the phase failed).
  - Every service needs evidence of its kind - at least one of C(traffic_key), C(data_steps),
    C(replacement_key), or an explicit C(retire_without_replacement) with a non-empty reason. A service
    with none of them, or with one that is empty or of the wrong type, is refused by name.
author:
  - Sophia Platform Team (@sophia-ai)
positional: services
options:
  _input:
    description: The ledger document, the C(ledger) result of P(sophia.migrate.ledger#module) reading it.
    type: dict
    required: true
  services:
    description:
      - Services, each a dict with C(name) and at least one of C(traffic_key) (str), C(data_steps) (list of str),
        C(replacement_key) (str, a ledger step) and C(retire_without_replacement) (str, the reason).
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


EVIDENCE_KEYS = ("traffic_key", "data_steps", "replacement_key", "retire_without_replacement")


def _text(value):
    return value.strip() if isinstance(value, str) else ""


def _step_problem(entries, step, kind):
    entry = _latest(entries, step)
    if entry is None:
        return f"{kind} '{step}' is not in the ledger"
    if entry.get("status") != "done":
        return f"{kind} '{step}' is '{entry.get('status')}', not 'done'"
    return None


def _service_missing(svc, state, entries):
    given = [k for k in EVIDENCE_KEYS if k in svc and svc[k] is not None]
    if not given:
        return ["no evidence declared: give traffic_key, data_steps or replacement_key (a ledger step that proves "
                "its replacement runs on K3s), or retire_without_replacement with the reason"]
    missing = []
    if "traffic_key" in given:
        key = _text(svc["traffic_key"])
        weight = state.get(key) if key else None
        if not key:
            missing.append("traffic_key must be a non-empty string")
        elif weight is None:
            missing.append(f"no traffic record '{key}' in the ledger (traffic_shift has not moved this route)")
        elif str(weight) != "100":
            missing.append(f"traffic '{key}' is at {weight}% on the new side, not 100%")
    if "data_steps" in given:
        steps = svc["data_steps"]
        if not isinstance(steps, list) or not steps or not all(_text(step) for step in steps):
            missing.append("data_steps must be a non-empty list of ledger step names")
        else:
            missing += [p for p in (_step_problem(entries, step.strip(), "data step") for step in steps) if p]
    if "replacement_key" in given:
        key = _text(svc["replacement_key"])
        problem = _step_problem(entries, key, "replacement step") if key else None
        if problem or not key:
            missing.append(problem or "replacement_key must be a non-empty string (a ledger step)")
    if "retire_without_replacement" in given and not _text(svc["retire_without_replacement"]):
        missing.append("retire_without_replacement needs the reason (a non-empty string)")
    return missing


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
        out[svc["name"]] = _service_missing(svc, state, entries)
    return out


class FilterModule:
    def filters(self):
        return {"missing_evidence": missing_evidence}
