# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: latency_table
short_description: The per-route latency table (baseline, pre-warming, after, now) from the ledger
version_added: 0.3.0
description:
  - Reads the ledger entries P(sophia.migrate.traffic_shift#role) records with M(sophia.migrate.route_latency)
    (steps C(latency/<route>/baseline), C(latency/<route>/prewarm), C(latency/<route>/after) in Phase 2B and
    C(latency/<route>/now) in Phase 2C, status C(done); the last of each counts) and returns one row per route,
    sorted by route.
  - Each figure is reduced to C(p50_ms), C(p95_ms), C(p99_ms), C(error_rate) and C(count); a measurement that was
    not taken is null. C(maintained) is what M(sophia.migrate.route_latency) found comparing the latest of C(now)
    and C(after) with the baseline (C(within_baseline)), null when it was not compared; C(regressions) says why not
    maintained.
author:
  - Sophia Platform Team (@sophia-ai)
options:
  _input:
    description: The ledger's C(entries).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: The table for the report
  ansible.builtin.set_fact:
    latency_rows: "{{ ledger.ledger.entries | sophia.migrate.latency_table }}"
"""

RETURN = r"""
_value:
  description:
    - One mapping per route with C(route), C(baseline), C(prewarm), C(after), C(now), C(maintained) and
      C(regressions).
  type: list
  elements: dict
"""

import typing as t
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

KINDS = ("baseline", "prewarm", "after", "now")
FIGURES = ("p50_ms", "p95_ms", "p99_ms", "error_rate", "count")


def _figures(data: t.Any) -> dict[str, t.Any] | None:
    if not isinstance(data, Mapping):
        return None
    return {key: data.get(key) for key in FIGURES}


def latency_table(entries: t.Any) -> list[dict[str, t.Any]]:
    if not isinstance(entries, list):
        raise AnsibleFilterError(f"latency_table: expects the ledger's entries (a list), got {type(entries).__name__}")
    rows: dict[str, dict[str, t.Any]] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or entry.get("status") != "done":
            continue
        parts = str(entry.get("step", "")).split("/")
        if len(parts) != 3 or parts[0] != "latency" or parts[2] not in KINDS:
            continue
        row = rows.setdefault(parts[1], {"route": parts[1], **dict.fromkeys(KINDS), "_regressions": {}, "_within": {},
                                         "_at": {}})
        data = entry.get("data") if isinstance(entry.get("data"), Mapping) else {}
        row[parts[2]] = _figures(data)
        row["_regressions"][parts[2]] = data.get("regressions") or []
        row["_within"][parts[2]] = data.get("within_baseline")
        row["_at"][parts[2]] = index
    out = []
    for route in sorted(rows):
        row = rows[route]
        regressions, within, at = row.pop("_regressions"), row.pop("_within"), row.pop("_at")
        # the later of the 100% measurement and Phase 2C's (a walk redone after a rollback measures again)
        latest = max((k for k in ("after", "now") if k in at), key=at.get, default=None)
        # compared with the baseline by route_latency (null: not compared, or nothing measured after the walk)
        row["maintained"] = within.get(latest) if latest else None
        row["regressions"] = regressions.get(latest, []) if latest else []
        out.append(row)
    return out


class FilterModule:
    def filters(self) -> dict[str, t.Any]:
        return {"latency_table": latency_table}
