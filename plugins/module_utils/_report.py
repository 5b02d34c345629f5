"""Phase reports: one directory per run with report.json (machine-readable) and report.md (for people).

A report lists each step with its outcome, separating what ran for real from what was only
staged or skipped (and why), so nobody mistakes a lab run for a production run.
"""

from __future__ import annotations

import json
import os
import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils._files import atomic_write
from ansible_collections.sophia.migrate.plugins.module_utils._ledger import now_iso, write_atomic

REPORT_MODE = 0o600  # step details and artifact paths are for the operators, not for every local user
OUTCOMES = ("ran", "staged", "skipped", "failed", "not_applicable")
_ICON = {"ran": "ran", "staged": "staged only", "skipped": "skipped", "failed": "FAILED", "not_applicable": "n/a"}


class ReportError(Exception):
    pass


def validate_steps(steps: list[dict[str, t.Any]]) -> None:
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or not step.get("name"):
            raise ReportError(f"steps[{i}]: each step needs a 'name'")
        if step.get("outcome", "ran") not in OUTCOMES:
            raise ReportError(f"steps[{i}] ({step['name']}): outcome '{step.get('outcome')}' is not one of "
                              f"{', '.join(OUTCOMES)}")


def _md_value(value: t.Any) -> str:
    if isinstance(value, (dict, list)):
        return "`" + json.dumps(value, sort_keys=True)[:300] + "`"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _latency_cell(figures: t.Any) -> str:
    if not isinstance(figures, dict) or figures.get("count") is None:
        return "-"
    ms = " / ".join("-" if figures.get(k) is None else f"{figures[k]:g}" for k in ("p50_ms", "p95_ms", "p99_ms"))
    return f"{ms}, {figures.get('error_rate')}, {figures.get('count')}"


def render_markdown(report: dict[str, t.Any]) -> str:
    lines = [
        f"# {report['title']}",
        "",
        f"- phase: `{report['phase']}`",
        f"- environment: `{report['environment']}`",
        f"- run: `{report['run_id']}`",
        f"- written: {report['written_at']}",
        f"- verdict: **{report['verdict']}**",
        "",
        "## Steps",
        "",
        "| step | outcome | details |",
        "|---|---|---|",
    ]
    for step in report["steps"]:
        details = "; ".join(f"{k}: {_md_value(v)}" for k, v in sorted((step.get("details") or {}).items()))
        if step.get("reason"):
            details = f"{step['reason']}" + (f"; {details}" if details else "")
        lines.append(f"| {step['name']} | {_ICON[step.get('outcome', 'ran')]} | {details} |")
    if report.get("limitations"):
        lines += ["", "## What this environment could not do", ""]
        lines += [f"- {item}" for item in report["limitations"]]
    if report.get("latency"):
        lines += ["", "## Latency per route", "",
                  "p50 / p95 / p99 in ms, error rate, requests (sophia.migrate.route_latency; the Compose side",
                  "before the walk, the K3s side straight before its first share, through the splitter at 100%,",
                  "and in Phase 2C).", "",
                  "| route | baseline (Compose) | pre-warming (K3s) | after (100% K3s) | now | maintained |",
                  "|---|---|---|---|---|---|"]
        for row in report["latency"]:
            cells = [_latency_cell(row.get(kind)) for kind in ("baseline", "prewarm", "after", "now")]
            regressions = "; ".join(row.get("regressions") or [])
            kept = {True: "yes", False: f"NO: {regressions}", None: "-"}.get(row.get("maintained"), "-")
            lines.append(f"| {row.get('route', '')} | " + " | ".join(cells) + f" | {_md_value(kept)} |")
    if report.get("artifacts"):
        lines += ["", "## Artifacts", "", "| name | path | size | sha256 |", "|---|---|---|---|"]
        for art in report["artifacts"]:
            lines.append(f"| {art.get('name', '')} | `{art.get('path', '')}` | {art.get('size', '')} | "
                         f"`{art.get('sha256', '')}` |")
    return "\n".join(lines) + "\n"


def write_report(directory: str, run_id: str, phase: str, environment: str, title: str,
                 steps: list[dict[str, t.Any]], limitations: list[str], artifacts: list[dict[str, t.Any]],
                 check_mode: bool = False, latency: list[dict[str, t.Any]] | None = None) -> dict[str, t.Any]:
    validate_steps(steps)
    verdict = "failed" if any(s.get("outcome") == "failed" for s in steps) else "passed"
    report = {
        "title": title or f"sophia.migrate {phase} report",
        "phase": phase,
        "environment": environment,
        "run_id": run_id,
        "written_at": now_iso(),
        "verdict": verdict,
        "steps": steps,
        "limitations": limitations,
        "artifacts": artifacts,
    }
    if latency:
        report["latency"] = latency
    run_dir = os.path.join(directory, run_id)
    paths = {"json": os.path.join(run_dir, f"{phase}.json"), "markdown": os.path.join(run_dir, f"{phase}.md")}
    if not check_mode:
        try:
            os.makedirs(run_dir, exist_ok=True)
            write_atomic(paths["json"], report, mode=REPORT_MODE)
            atomic_write(paths["markdown"], render_markdown(report), REPORT_MODE)
        except OSError as exc:
            raise ReportError(f"cannot write the report under {run_dir}: {exc.strerror}") from exc
    return {"report": report, "paths": paths}
