"""Verdicts of the Fly.io audit: may an app be destroyed, and what would be lost with it.

``judge_app`` weighs the evidence gathered (the API's view of the app, the repository scan, the DNS and
HTTPS probes, the declared backups) into ``gone``, ``safe to destroy`` or ``blocked`` with reasons;
``what_will_be_lost`` lists what deleting an app destroys; the backup declaration helpers say which volumes
a declaration names and what is wrong with one.
"""

from __future__ import annotations

import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils._flyio_scan import unreadable

VERDICTS = ("gone", "safe to destroy", "blocked")


def backup_names(declared: t.Any) -> set[str]:
    """Volume ids/names a backup declaration names: a list of them, or a dict of them -> where the data went.

    Free text and ``true`` name no volume (they only say that something was saved somewhere).
    """
    if isinstance(declared, (list, tuple)):
        return {str(x).strip() for x in declared if isinstance(x, str) and x.strip()}
    if isinstance(declared, dict):
        return {str(k).strip() for k, v in declared.items() if isinstance(v, str) and v.strip() and str(k).strip()}
    return set()


def backup_declaration_problem(declared: t.Any) -> str | None:
    """Why a backup declaration is malformed (None when it is usable): see backup_names for the forms."""
    if declared is None or declared is True or declared is False or isinstance(declared, str):
        return None
    if isinstance(declared, (list, tuple)):
        bad = [x for x in declared if not isinstance(x, str) or not x.strip()]
        return f"the list must hold volume ids or names (text), got {bad[0]!r}" if bad else None
    if isinstance(declared, dict):
        for key, where in declared.items():
            if not isinstance(key, str) or not key.strip():
                return f"a key must be a volume id or name, got {key!r}"
            if not isinstance(where, str) or not where.strip():
                return f"volume {key}: say where its data was saved (a non-empty text), got {where!r}"
        return None
    return f"must be a list of volume ids/names or a dict volume -> where its data was saved, got {declared!r}"


def volumes_not_backed_up(volumes: list[dict[str, t.Any]], declared: t.Any) -> list[dict[str, t.Any]]:
    """The volumes whose id or name the declaration does not name."""
    named = backup_names(declared)
    return [v for v in volumes if v.get("id") not in named and (v.get("name") or None) not in named]


def what_will_be_lost(info: dict[str, t.Any]) -> dict[str, t.Any]:
    """What deleting the app destroys, as far as it is known (``unknown`` lists the gaps, volumes included)."""
    vols = info.get("volumes") or []
    return {
        "machines": len(info.get("machines") or []),
        "volumes": [
            {
                "id": v.get("id"),
                "name": v.get("name"),
                "size_gb": v.get("size_gb"),
                "attached_machine_id": v.get("attached_machine_id"),
            }
            for v in vols
        ],
        "volume_total_gb": sum(int(v.get("size_gb") or 0) for v in vols),
        "certificates": [c.get("hostname") for c in (info.get("certificates") or [])],
        "ips": [i.get("address") for i in (info.get("ips") or [])],
        "secret_names": list(info.get("secret_names") or []),
        "unknown": list(info.get("incomplete") or []),
    }


def assemble_probes(
    dns_results: list[dict[str, t.Any]], http_results: list[dict[str, t.Any]]
) -> list[dict[str, t.Any]]:
    """One probe per host from dns_check's ``results`` and ansible.builtin.uri's loop ``results``."""
    http = {}
    for r in http_results or []:
        item = r.get("item") if isinstance(r, dict) else None
        if isinstance(item, dict) and item.get("host") and not r.get("skipped"):
            http[item["host"]] = r
    out = []
    for d in dns_results or []:
        host = str(d.get("host", ""))
        h = http.get(host, {})
        status = h.get("status")
        status = int(status) if isinstance(status, int) and status > 0 else None
        detail = "; ".join(d.get("errors") or []) or ("" if status else str(h.get("msg", "")))
        out.append(
            {
                "app": host[: -len(".fly.dev")] if host.endswith(".fly.dev") else host,
                "host": host,
                "resolves": bool(d.get("addresses")),
                "addresses": list(d.get("addresses") or []),
                "status": status,
                "url": h.get("url", ""),
                "detail": detail[:200],
            }
        )
    return out


def judge_app(
    info: dict[str, t.Any] | None,
    name: str,
    scan: dict[str, t.Any] | None,
    probe: dict[str, t.Any] | None,
    backups: dict[str, t.Any],
) -> dict[str, t.Any]:
    """``gone``, ``safe to destroy`` or ``blocked`` with reasons, from the evidence gathered."""
    reasons: list[str] = []
    notes: list[str] = []
    scan = scan or {}
    mine = [r for r in scan.get("references") or [] if r.get("app") == name]
    ref_lines = [f"{r['location']} ({r['kind']}: {r['value']})" for r in mine]
    if info is None:
        return {
            "app": name,
            "verdict": "blocked",
            "reasons": ["no API evidence (no token given, or the API step was skipped): existence, volumes unknown"],
            "notes": ref_lines,
            "references": mine,
        }
    if info.get("forbidden"):
        return {
            "app": name,
            "verdict": "blocked",
            "reasons": [f"the token cannot read this app (HTTP 403): {info.get('error', '')}".strip()],
            "notes": [],
            "references": mine,
        }
    if info.get("exists") is False:
        if mine:
            notes.append(f"app is gone but {len(mine)} reference(s) remain: " + "; ".join(ref_lines[:20]))
        if probe and probe.get("resolves"):
            notes.append(f"{probe.get('host')} still resolves to {', '.join(probe.get('addresses') or [])}")
        return {"app": name, "verdict": "gone", "reasons": [], "notes": notes, "references": mine}
    started = [m for m in info.get("machines") or [] if m.get("state") == "started"]
    if started:
        reasons.append(
            f"{len(started)} machine(s) started ({', '.join(str(m.get('id')) for m in started)}): "
            "stop them and watch for traffic first"
        )
    if probe and probe.get("status") is not None and 0 < int(probe["status"]) < 500:
        reasons.append(f"{probe.get('url')} answers HTTP {probe['status']}: it may still serve traffic")
    if mine:
        reasons.append(f"{len(mine)} reference(s) left in the repositories: " + "; ".join(ref_lines[:20]))
    if not scan.get("files_scanned") and not scan.get("references"):
        reasons.append("no repository scan (flyio_audit_repo_paths empty or unreadable): references unknown")
    if scan.get("missing_paths"):
        reasons.append(f"repository path(s) not found, scan incomplete: {', '.join(scan['missing_paths'])}")
    gaps = unreadable(scan)
    if gaps:
        reasons.append(f"{len(gaps)} file(s)/director(ies) could not be read, scan incomplete: {', '.join(gaps[:10])}")
    declared = backups.get(name)
    volumes = info.get("volumes")
    if not isinstance(volumes, list):
        gap = next((g for g in info.get("incomplete") or [] if str(g).startswith("volumes:")), "")
        reasons.append(
            "the volumes could not be listed, so none can be ruled out"
            + (f" ({gap[len('volumes:') :].strip()})" if gap else "")
        )
    else:
        vague = "" if not (declared is True or isinstance(declared, str)) else " (a text or true names no volume)"
        for vol in volumes_not_backed_up(volumes, declared):
            reasons.append(
                f"volume {vol.get('id')} ({vol.get('name')}, {vol.get('size_gb')} GB) has no declared backup: "
                f"name it by id or name in the app's backups{vague}"
            )
    for gap in info.get("incomplete") or []:
        notes.append(f"not known: {gap}")
    verdict = "blocked" if reasons else "safe to destroy"
    return {"app": name, "verdict": verdict, "reasons": reasons, "notes": notes, "references": mine}
