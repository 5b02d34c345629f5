# Copyright (c) sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the migration stands, from the ledger (and live readings the caller passes): the status an operator asks
for at any time (playbooks/status.yml)."""

from __future__ import annotations

import json
import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils import _ledger

PHASES = ("phase1", "phase2a", "phase2b", "phase2c", "phase2d", "rollback")


def _latest(entries: list[dict[str, t.Any]]) -> dict[str, dict[str, t.Any]]:
    out: dict[str, dict[str, t.Any]] = {}
    for entry in entries:
        out[entry["step"]] = entry
    return out


def _clean(entry: dict[str, t.Any]) -> dict[str, t.Any]:
    """The roles record dicts and numbers; anything else in a hand-edited ledger reads as absent, never a crash."""
    out = dict(entry)
    for key in ("data", "undo"):
        out[key] = out[key] if isinstance(out.get(key), dict) else {}
    if not isinstance(out["data"].get("gate"), dict):
        out["data"].pop("gate", None)
    out["seq"] = out["seq"] if isinstance(out.get("seq"), int) else 0
    return out


def status(ledger: dict[str, t.Any], live_shares: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
    entries = [_clean(e) for e in ledger.get("entries", []) if isinstance(e, dict) and isinstance(e.get("step"), str)]
    latest = _latest(entries)
    state = ledger.get("state") if isinstance(ledger.get("state"), dict) else {}
    live_shares = live_shares or {}
    phases = [{"phase": p, "status": latest[p].get("status"), "at": latest[p].get("at", "")}
              for p in PHASES if p in latest]
    last = max(entries, key=lambda e: e.get("seq", 0), default=None)
    names = sorted({k.split("/", 1)[1] for k in state if k.startswith("traffic/") and k != "traffic/edge"}
                   | set(live_shares))
    routes = []
    for name in names:
        recorded = state.get(f"traffic/{name}")
        live = live_shares.get(name)
        routes.append({"route": name, "ledger_share": recorded, "live_share": live,
                       "agrees": None if live is None or not isinstance(live, int) else live == recorded})
    gates = []
    for name in names:
        walked = [e for e in entries if e["step"].startswith(f"traffic/{name}/") and (e.get("data") or {}).get("gate")]
        if walked:
            entry = walked[-1]
            gates.append({"route": name, "share": entry["data"].get("share"), "at": entry.get("at", ""),
                          **{k: entry["data"]["gate"].get(k) for k in ("verdict", "rounds", "duration_s", "reason")}})
    data = [{"step": s, "status": e.get("status"), "at": e.get("at", "")} for s, e in latest.items()
            if s.split("/", 1)[0] in ("redis", "qdrant", "volume")]
    backups = [{"step": s, "path": (e.get("data") or {}).get("path"), "sha256": (e.get("data") or {}).get("sha256"),
                "size": (e.get("data") or {}).get("size"), "status": e.get("status"), "at": e.get("at", "")}
               for s, e in latest.items() if s.startswith("backup/")]
    pending = [{"step": e["step"], "action": (e.get("undo") or {}).get("action"), "phase": e.get("phase", "")}
               for e in _ledger.pending_undo({"entries": entries})]
    return {
        "environment": ledger.get("environment", ""),
        "phases": phases,
        "last_step": {k: last.get(k) for k in ("step", "status", "phase", "at")} if last else None,
        "edge_handed_over": state.get("traffic/edge"),
        "routes": routes, "gates": gates, "data": data, "backups": backups, "pending_undo": pending,
        "disagreements": [r["route"] for r in routes if r["agrees"] is False],
    }


def _table(head: list[str], rows: list[list[t.Any]]) -> list[str]:
    if not rows:
        return ["(none)", ""]
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows], ""]


def _cell(value: t.Any) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def markdown(report: dict[str, t.Any]) -> str:
    lines = [f"# sophia.migrate status ({report['environment'] or 'unknown environment'})", ""]
    last = report["last_step"]
    lines += [f"Last step: `{last['step']}` {last['status']} at {last['at']}" if last else "Nothing recorded yet.", ""]
    phases = [[p["phase"], p["status"], p["at"]] for p in report["phases"]]
    lines += ["## Phases", "", *_table(["phase", "status", "at"], phases)]
    lines += ["## Routes (share on K3s, %)", "", *_table(
        ["route", "ledger", "live", "agrees"],
        [[r["route"], r["ledger_share"], r["live_share"], {True: "yes", False: "NO", None: ""}[r["agrees"]]]
         for r in report["routes"]])]
    if report["edge_handed_over"] is not None:
        lines += [f"Public ports handed over to K3s: {report['edge_handed_over']}%", ""]
    lines += ["## Last gate per route", "", *_table(["route", "share", "verdict", "rounds", "seconds", "at"], [
        [g["route"], g["share"], g["verdict"], g["rounds"], g["duration_s"], g["at"]] for g in report["gates"]])]
    data = [[d["step"], d["status"], d["at"]] for d in report["data"]]
    lines += ["## Data stores", "", *_table(["step", "status", "at"], data)]
    lines += ["## Backups", "", *_table(["step", "path", "sha256", "size"],
                                        [[b["step"], b["path"], b["sha256"], b["size"]] for b in report["backups"]])]
    lines += ["## Pending undo (newest first: what rollback.yml would do)", "",
              *_table(["step", "action", "phase"],
                      [[u["step"], u["action"], u["phase"]] for u in report["pending_undo"]])]
    return "\n".join(lines)


def to_json(report: dict[str, t.Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True) + "\n"
