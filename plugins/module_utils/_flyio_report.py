"""The Fly.io audit report: one document of the verdicts and their evidence, as JSON and Markdown.

``audit_report`` builds the document (every text in it redacted), ``render_markdown`` its Markdown page,
and ``sync_report`` writes both files (mode 0600) unless they already hold the same audit.
"""

from __future__ import annotations

import datetime
import json
import os
import stat
import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils._files import atomic_write
from ansible_collections.sophia.migrate.plugins.module_utils._flyio_api import FlyError
from ansible_collections.sophia.migrate.plugins.module_utils._flyio_redact import redact_secrets, redact_value
from ansible_collections.sophia.migrate.plugins.module_utils._flyio_verdict import VERDICTS, judge_app


def _md(text: t.Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(doc: dict[str, t.Any]) -> str:
    lines = [
        f"# Fly.io audit ({doc['environment']})",
        "",
        f"- run: `{doc['run_id']}`",
        f"- written: {doc['written_at']}",
        f"- API: {doc['api']}",
        f"- destroy enabled: {doc['destroy']}",
        "",
        "## Verdicts",
        "",
        "| app | verdict | machines | volumes | certificates | IPs | reasons / notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in doc["verdicts"]:
        info = doc["apps"].get(v["app"]) or {}
        vols = info.get("volumes")
        vol_text = (
            "unknown"
            if vols is None and info.get("exists")
            else ", ".join(f"{x.get('id')} {x.get('name')} {x.get('size_gb')} GB" for x in vols or []) or "-"
        )
        certs = info.get("certificates")
        ips = info.get("ips")
        cert_text = (
            "unknown"
            if certs is None and info.get("exists")
            else ", ".join(str(c.get("hostname")) for c in certs or []) or "-"
        )
        ip_text = (
            "unknown"
            if ips is None and info.get("exists")
            else ", ".join(str(i.get("address")) for i in ips or []) or "-"
        )
        why = "; ".join(v["reasons"] + v["notes"]) or "-"
        machines = len(info.get("machines") or []) if info.get("exists") else "-"
        lines.append(
            f"| {v['app']} | **{v['verdict']}** | {machines} | {_md(vol_text)} | {_md(cert_text)} | "
            f"{_md(ip_text)} | {_md(why)} |"
        )
    if doc.get("destroyed"):
        lines += ["", "## Destroyed in this run", ""]
        lines += [f"- {d['name']}: {d.get('msg', '')}" for d in doc["destroyed"]]
    lines += ["", "## Probes", "", "| host | resolves | addresses | HTTPS status | detail |", "|---|---|---|---|---|"]
    for p in doc["probes"]:
        lines.append(
            f"| {p.get('host')} | {p.get('resolves')} | {', '.join(p.get('addresses') or []) or '-'} | "
            f"{p.get('status') if p.get('status') is not None else '-'} | {_md(p.get('detail', ''))} |"
        )
    scan = doc["scan"]
    lines += [
        "",
        "## Repository references",
        "",
        f"Scanned {scan.get('files_scanned', 0)} files in: " + ", ".join(f"`{p}`" for p in doc["repo_paths"]),
        "",
    ]
    if scan.get("missing_paths"):
        lines += [f"- missing path: `{p}`" for p in scan["missing_paths"]] + [""]
    lines += ["| file:line | kind | value | app |", "|---|---|---|---|"]
    for r in scan.get("references", []):
        lines.append(f"| `{_md(r['location'])}` | {r['kind']} | `{_md(r['value'])}` | {r.get('app') or '-'} |")
    if doc.get("skipped_steps"):
        lines += ["", "## Skipped", ""] + [f"- {s}" for s in doc["skipped_steps"]]
    return "\n".join(lines) + "\n"


def audit_report(
    apps: list[str],
    infos: list[dict[str, t.Any]] | None,
    scan: dict[str, t.Any],
    probes: list[dict[str, t.Any]],
    backups: dict[str, t.Any],
    destroyed: list[dict[str, t.Any]],
    environment: str,
    run_id: str,
    api: str,
    destroy: bool,
    repo_paths: list[str],
    skipped_steps: list[str],
) -> dict[str, t.Any]:
    by_name = {i["name"]: i for i in infos or []}
    probe_by_app = {p.get("app"): p for p in probes}
    names = list(dict.fromkeys([*apps, *by_name]))
    gone_now = {d["name"] for d in destroyed if d.get("deleted")}
    verdicts = []
    for name in names:
        info = by_name.get(name) if infos is not None else None
        if name in gone_now:
            info = {**(info or {}), "name": name, "exists": False}
        verdicts.append(judge_app(info, name, scan, probe_by_app.get(name), backups))
    counts = {v: sum(1 for x in verdicts if x["verdict"] == v) for v in VERDICTS}
    # everything that goes into the report and the module's result, redacted (scan texts, URLs, messages)
    return redact_value(
        {
            "environment": environment,
            "run_id": run_id,
            "written_at": _now(),
            "api": api,
            "destroy": destroy,
            "repo_paths": repo_paths,
            "apps": by_name,
            "verdicts": verdicts,
            "counts": counts,
            "probes": probes,
            "scan": scan,
            "destroyed": destroyed,
            "skipped_steps": skipped_steps,
        }
    )


REPORT_FILES = {"json": "flyio_audit.json", "markdown": "flyio_audit.md"}
# What a scan result carries into the report (sophia.migrate.flyio_repo_scan returns the skipped files as
# ``skipped_files``: ``skipped`` is a reserved key in Ansible results).
SCAN_KEYS = ("references", "fly_tomls", "files_scanned", "skipped", "missing_paths", "apps_referenced", "notes")


def scan_for_report(scan: dict[str, t.Any] | None) -> dict[str, t.Any]:
    """The scan part of a report from a ``scan_paths`` result or a registered flyio_repo_scan result."""
    scan = dict(scan or {})
    if "skipped_files" in scan:
        scan["skipped"] = scan.pop("skipped_files")
    elif not isinstance(scan.get("skipped"), list):
        scan.pop("skipped", None)  # a registered task result's 'skipped: true', not the list of skipped files
    # a scan result from elsewhere (an older version, a hand-made one) is redacted here as well
    return redact_value({k: scan[k] for k in SCAN_KEYS if k in scan})


def report_paths(directory: str, run_id: str) -> dict[str, str]:
    run_dir = os.path.join(directory, run_id)
    return {key: os.path.join(run_dir, name) for key, name in REPORT_FILES.items()}


def report_texts(doc: dict[str, t.Any]) -> dict[str, str]:
    return {"json": json.dumps(doc, indent=2, sort_keys=True) + "\n", "markdown": render_markdown(doc)}


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise FlyError(f"cannot read the existing report {path}: {getattr(exc, 'strerror', None) or exc}") from exc


REPORT_MODE = 0o600
# Modes left as they are on existing report files: nothing beyond owner read/write and group read (0640).
_REPORT_MODE_ALLOWED = 0o640


def _mode_too_open(path: str) -> bool:
    try:
        return bool(stat.S_IMODE(os.stat(path).st_mode) & ~_REPORT_MODE_ALLOWED)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise FlyError(f"cannot read the mode of the existing report {path}: {exc.strerror or exc}") from exc


def _shown_before(key: str, text: str | None) -> str | None:
    """An existing report's text for the diff, redacted (a report written by an earlier version may hold secrets)."""
    if text is None:
        return None
    if key == "json":
        try:
            return json.dumps(redact_value(json.loads(text)), indent=2, sort_keys=True) + "\n"
        except ValueError:
            pass
    return "\n".join(redact_secrets(line) for line in text.split("\n"))


def _write_private(path: str, text: str) -> None:
    """Write ``path`` atomically, mode 0600 from the start (a temporary file in the same directory, then rename)."""
    atomic_write(path, text, REPORT_MODE)


def sync_report(directory: str, run_id: str, doc: dict[str, t.Any], check_mode: bool = False) -> dict[str, t.Any]:
    """Write the report files (mode 0600) unless they already hold the same audit.

    ``written_at`` alone does not make a difference: when the files on disk differ from ``doc`` only by it, they
    are left as they are (and their ``written_at`` is kept). A file that holds the same audit but whose mode lets
    more than its owner write or more than owner and group read is set to 0600 (a change). Returns ``paths``,
    ``changed``, ``doc`` (as on disk afterwards), ``before`` and ``after`` (file texts, None for a file that did
    not exist; ``before`` redacted). In check mode nothing is written; ``changed`` tells whether it would be.
    """
    paths = report_paths(directory, run_id)
    raw = {key: _read_text(path) for key, path in paths.items()}
    before = {key: _shown_before(key, text) for key, text in raw.items()}
    too_open = [path for path in paths.values() if _mode_too_open(path)]
    try:
        previous = json.loads(raw["json"]) if raw["json"] is not None else None
    except ValueError:
        previous = None
    run_dir = os.path.dirname(paths["json"])
    if isinstance(previous, dict) and isinstance(previous.get("written_at"), str):
        kept = {**doc, "written_at": previous["written_at"]}
        texts = report_texts(kept)
        if texts == raw:
            if too_open and not check_mode:
                try:
                    for path in too_open:
                        os.chmod(path, REPORT_MODE)
                except OSError as exc:
                    raise FlyError(f"cannot set the mode of the report {path}: {exc.strerror or exc}") from exc
            return {"paths": paths, "changed": bool(too_open), "doc": kept, "before": before, "after": texts}
    texts = report_texts(doc)
    changed = texts != raw or bool(too_open)
    if changed and not check_mode:
        try:
            os.makedirs(run_dir, exist_ok=True)
            for key in ("json", "markdown"):
                _write_private(paths[key], texts[key])
        except OSError as exc:
            raise FlyError(f"cannot write the report under {run_dir}: {exc.strerror or exc}") from exc
    return {"paths": paths, "changed": changed, "doc": doc, "before": before, "after": texts}


def write_report(directory: str, run_id: str, doc: dict[str, t.Any], check_mode: bool = False) -> dict[str, str]:
    """Paths of the report files, written unless check_mode (see sync_report)."""
    return sync_report(directory, run_id, doc, check_mode)["paths"]


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
