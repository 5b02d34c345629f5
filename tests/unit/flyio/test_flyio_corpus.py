"""flyio_repo_scan on a corpus of real fly.toml files and deploy workflows from public repositories
(tests/fixtures/flyio/corpus).

Each file must give valid output - a Fly configuration listed in fly_tomls with the app its TOML names, a workflow
with its flyctl steps (and every configuration it names found or noted) - or a clean refusal; never a silent empty
result, never "Module failed". The share is written to tests/output/figures/flyio_corpus.txt.
"""

from __future__ import annotations

import os
import re

import tomllib

from ansible_collections.sophia.migrate.plugins.modules import flyio_repo_scan
from support.figures import corpus_figure
from support.modules import run_module

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
CORPUS = os.path.abspath(os.path.join(ROOT, "fixtures", "flyio", "corpus"))
COLUMNS = ("file", "repository", "path", "commit", "license", "role", "options")


def sources() -> list[dict[str, str]]:
    rows = []
    with open(os.path.join(CORPUS, "SOURCES.md"), encoding="utf-8") as handle:
        for line in handle:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 7 and cells[0] not in ("File (here)", "---"):
                rows.append(dict(zip(COLUMNS, cells, strict=True)))
    return rows


def is_workflow(name: str) -> bool:
    return "/.github/workflows/" in f"/{name}"


def judge(path: str, result: dict) -> str:
    """'valid', 'refused', 'silent-empty' or 'bad: <why>'."""
    if result.get("failed"):
        msg = result.get("msg", "")
        return "refused" if msg.startswith("flyio_repo_scan: ") and "Module failed" not in msg else f"bad: {msg}"
    if is_workflow(path):
        steps = [r for r in result["references"] if r["kind"] == "flyctl"]
        if not steps:
            return "silent-empty"
        with open(path, encoding="utf-8") as handle:
            named = len(re.findall(r"fly(?:ctl)?\b[^\n]*\s(?:--config|-c)[\s=]", handle.read()))
        return "valid" if len(result["notes"]) + len(result["fly_tomls"]) >= named else "bad: a --config was lost"
    mine = [t for t in result["fly_tomls"] if t["file"] == path]
    if not mine and not result["notes"]:
        return "silent-empty"
    with open(path, "rb") as handle:
        app = tomllib.load(handle).get("app")
    if mine and mine[0]["app"] != (app if isinstance(app, str) else None):
        return f"bad: app {mine[0]['app']!r}, the TOML says {app!r}"
    return "valid"


def test_sources_name_repository_commit_and_license_of_every_file():
    rows = sources()
    files = {os.path.relpath(os.path.join(d, f), CORPUS) for d, _dirs, fs in os.walk(CORPUS) for f in fs}
    files.discard("SOURCES.md")
    assert {r["file"] for r in rows} == files
    for row in rows:
        assert row["repository"].startswith("https://github.com/") and re.fullmatch(r"[0-9a-f]{40}", row["commit"])
        assert row["license"] and row["role"] == "main"
    assert sum(not is_workflow(r["file"]) for r in rows) >= 20
    assert sum(is_workflow(r["file"]) for r in rows) >= 5


def test_corpus_valid_or_cleanly_refused(capsys):
    verdicts = {}
    for row in sources():
        path = os.path.join(CORPUS, row["file"])
        verdicts[row["file"]] = judge(path, run_module(flyio_repo_scan, {"paths": [path]}, capsys))
    corpus_figure("flyio_corpus", "flyio_repo_scan", verdicts)


def test_the_named_configuration_of_a_corpus_workflow_is_noted_when_absent(capsys):
    path = os.path.join(CORPUS, "tuist", ".github", "workflows", "deployment-staging.yml")
    result = run_module(flyio_repo_scan, {"paths": [path]}, capsys)
    (note,) = result["notes"]
    assert "fly.staging.toml" in note["reason"] and "not found" in note["reason"]
