"""flyio_repo_scan: Fly configurations named in workflows and *.toml files with a top-level app (issue 24)."""

from __future__ import annotations

import os

from ansible_collections.sophia.migrate.plugins.module_utils import _flyio_scan
from ansible_collections.sophia.migrate.plugins.modules import flyio_repo_scan
from support.modules import run_module

WORKFLOW = """\
name: deploy
on: {push: {branches: [main]}}
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: superfly/flyctl-actions/setup-flyctl@master
      - run: flyctl deploy --remote-only --config fly-danger.toml
      - run: fly deploy -c deploy/production.cfg --app billing-prod
      - run: |
          flyctl deploy \\
            --config=ops/staging.conf \\
            --remote-only
      - run: flyctl deploy --config missing/fly.toml
      - run: flyctl deploy --config ${{ matrix.config }}
      - run: flyctl deploy --config ../../elsewhere/fly.toml
      - uses: superfly/flyctl-actions@1.5
        with:
          args: "deploy -c worker.conf"
"""


def tree(tmp_path):
    root = tmp_path / "repo"
    (root / ".github" / "workflows").mkdir(parents=True)
    (root / ".github" / "workflows" / "deploy.yml").write_text(WORKFLOW)
    (root / "fly-danger.toml").write_text('app = "danger-app"\nprimary_region = "ams"\n')
    (root / "deploy").mkdir()
    (root / "deploy" / "production.cfg").write_text('app = "billing-prod"\n[http_service]\ninternal_port = 8080\n')
    (root / "ops").mkdir()
    (root / "ops" / "staging.conf").write_text('# staging\napp = "billing-staging"\n')
    (root / "worker.conf").write_text('app = "billing-worker"\n')
    (root / "infra").mkdir()
    (root / "infra" / "edge.toml").write_text('# not named fly*.toml\napp = "edge-proxy"\n\n[build]\nimage = "x"\n')
    (root / "pyproject.toml").write_text('[project]\nname = "x"\napp = "not-top-level"\n')
    (root / "broken.toml").write_text('app = "half\n[[[\n')
    (root / "latin1.toml").write_bytes(b'app = "caf\xe9"\n')
    return root


def test_configs_named_in_workflows_and_toml_with_a_top_level_app(tmp_path):
    root = tree(tmp_path)
    result = _flyio_scan.scan_paths([str(root)])
    apps = {os.path.relpath(t["file"], root): t["app"] for t in result["fly_tomls"]}
    assert apps == {"fly-danger.toml": "danger-app", "deploy/production.cfg": "billing-prod",
                    "ops/staging.conf": "billing-staging", "worker.conf": "billing-worker",
                    "infra/edge.toml": "edge-proxy"}
    named = {os.path.relpath(t["file"], root): t.get("named_in", "") for t in result["fly_tomls"]}
    assert named["deploy/production.cfg"].endswith("deploy.yml:10")
    assert named["ops/staging.conf"].endswith("deploy.yml:12")  # the line the command starts on
    assert named["fly-danger.toml"] == ""  # found by its content already
    assert {"danger-app", "billing-prod", "billing-staging", "billing-worker", "edge-proxy"} <= set(
        result["apps_referenced"])
    refs = {(os.path.relpath(r["file"], root), r["line"]) for r in result["references"] if r["kind"] == "fly_toml_app"}
    assert ("infra/edge.toml", 2) in refs and ("ops/staging.conf", 2) in refs


def test_what_cannot_be_read_as_a_fly_config_is_noted_never_a_crash(tmp_path):
    root = tree(tmp_path)
    result = _flyio_scan.scan_paths([str(root)])
    notes = {os.path.relpath(n["file"], root) + ":" + str(n["line"]): n["reason"] for n in result["notes"]}
    assert "not valid TOML" in notes["broken.toml:None"]
    assert "not UTF-8" in notes["latin1.toml:None"]
    workflow = ".github/workflows/deploy.yml"
    assert "was not found" in notes[f"{workflow}:15"] and "missing/fly.toml" in notes[f"{workflow}:15"]
    assert "variable" in notes[f"{workflow}:16"]
    assert "outside the scanned tree" in notes[f"{workflow}:17"]
    assert not any(os.path.basename(t["file"]) in ("pyproject.toml", "broken.toml", "latin1.toml")
                   for t in result["fly_tomls"])
    # the files are still scanned as text
    assert result["files_scanned"] == 9
    kinds = [(os.path.relpath(r["file"], root), r["line"], r["kind"], r["value"]) for r in result["references"]]
    assert len(kinds) == len(set(kinds))  # nothing counted twice


def test_module_returns_the_notes(tmp_path, capsys):
    root = tree(tmp_path)
    result = run_module(flyio_repo_scan, {"paths": [str(root)]}, capsys)
    assert not result.get("failed") and len(result["notes"]) == 5
    assert len(result["fly_tomls"]) == 5
