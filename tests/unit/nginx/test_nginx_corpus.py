"""nginx_routes on a corpus of real nginx configurations from public repositories (tests/fixtures/nginx/corpus).

Each file must give valid output (every route host a valid Ingress host, every path a valid Ingress path, every name
DNS-1123) or a clean refusal that names the file and line of the construct, or the file that cannot be read; never a
silent empty result (nothing found and nothing reported), never "Module failed". The share of such files is written
to tests/output/figures/nginx_corpus.txt.
"""

from __future__ import annotations

import os
import re

from ansible_collections.sophia.migrate.plugins.module_utils import _nginx_ingress
from ansible_collections.sophia.migrate.plugins.modules import nginx_routes
from support.figures import corpus_figure
from support.modules import run_module

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
CORPUS = os.path.join(ROOT, "fixtures", "nginx", "corpus")
REPORTED = ("routes", "redirects", "handled", "unsupported", "rejected", "streams", "unresolved_includes")
COLUMNS = ("file", "repository", "path", "commit", "license", "role", "options")
CLEAN_REFUSAL = re.compile(r"nginx_routes: option 'path': \S+(:\d+: .+|: cannot read: .+|: no server block .+)",
                           re.DOTALL)


def sources(corpus: str) -> list[dict[str, str]]:
    """The rows of SOURCES.md (file, repository, path, commit, license, role, options)."""
    rows = []
    with open(os.path.join(corpus, "SOURCES.md"), encoding="utf-8") as handle:
        for line in handle:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 7 and cells[0] not in ("File (here)", "---"):
                rows.append(dict(zip(COLUMNS, cells, strict=True)))
    return rows


def module_args(row: dict[str, str], empty_root: str) -> dict[str, str]:
    """The module's options for a row; absolute includes never read files of the machine running the test."""
    args = {"path": os.path.join(CORPUS, row["file"]), "include_root": empty_root}
    for option in row["options"].split():
        key, value = option.split("=", 1)
        args[key] = os.path.join(CORPUS, value)
    return args


def judge(result: dict) -> str:
    """'valid', 'refused', 'silent-empty' or 'bad: <why>'."""
    if result.get("failed"):
        msg = result.get("msg", "")
        if "Module failed" in msg or "Traceback" in msg or not CLEAN_REFUSAL.fullmatch(msg):
            return f"bad: {msg[:300]}"
        return "refused"
    if not any(result.get(key) for key in REPORTED):
        return "silent-empty"
    for route in result["routes"]:
        host, problem = _nginx_ingress.ingress_host(route["host"]) if route["host"] else ("", "")
        if problem or host != route["host"] or _nginx_ingress.ingress_path_problem(route["path"]):
            return f"bad: route {route['host']!r} {route['path']!r}"
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", route["name"]) or len(route["name"]) > 63:
            return f"bad: route name {route['name']!r}"
    return "valid"


def test_sources_name_repository_commit_and_license_of_every_file():
    rows = sources(CORPUS)
    files = {os.path.relpath(os.path.join(d, f), CORPUS) for d, _dirs, fs in os.walk(CORPUS) for f in fs}
    files.discard("SOURCES.md")
    assert {r["file"] for r in rows} == files
    for row in rows:
        assert row["repository"].startswith("https://github.com/") and re.fullmatch(r"[0-9a-f]{40}", row["commit"])
        assert row["license"] and row["role"] in ("main", "included")
    assert sum(r["role"] == "main" for r in rows) >= 30


def test_corpus_valid_or_cleanly_refused(capsys, tmp_path):
    verdicts = {}
    for row in sources(CORPUS):
        if row["role"] == "main":
            verdicts[row["file"]] = judge(run_module(nginx_routes, module_args(row, str(tmp_path)), capsys))
    corpus_figure("nginx_corpus", "nginx_routes", verdicts)
