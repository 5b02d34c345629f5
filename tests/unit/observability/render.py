"""Render the observability role's manifests on localhost (nothing installed); shared by the role's unit tests."""

from __future__ import annotations

import yaml

from support.playbooks import role_play, run_play


def render_observability(tmp_path, extra=None):
    """Run the role with installation off; return its staging directory and the Prometheus chart values."""
    variables = {
        "sophia_lab": True,
        "observability_install": False,
        "observability_staging_dir": str(tmp_path / "staging"),
        "observability_manifests_dir": str(tmp_path / "k3s-manifests"),
        **(extra or {}),
    }
    res = run_play(tmp_path, role_play("observability"), variables)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    kps = yaml.safe_load((tmp_path / "staging" / "sophia-kube-prometheus-stack.yaml").read_text())
    return tmp_path / "staging", yaml.safe_load(kps["spec"]["valuesContent"])["prometheus"]
