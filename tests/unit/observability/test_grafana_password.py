"""observability: Grafana's admin password comes from the inventory (the vault), lands only in the rendered
kube-prometheus-stack manifest (mode 0600), never in the output (-vvv, --diff), and is required outside the lab.

The role runs through ansible-playbook on localhost; nothing is installed on a cluster (the K3s auto-deploy
directory is a temporary directory).
"""

from __future__ import annotations

import os
import stat

import pytest
import yaml

from support.playbooks import role_play, run_play

PASSWORD = "S3cr3t-Grafana-zq9"


def run(tmp_path, extra, check=False):
    variables = {
        "observability_staging_dir": str(tmp_path / "staging"),
        "observability_manifests_dir": str(tmp_path / "k3s-manifests"),
        **extra,
    }
    return run_play(tmp_path, role_play("observability"), variables, check=check)


def grafana_values(path):
    kps = yaml.safe_load(path.read_text())
    return yaml.safe_load(kps["spec"]["valuesContent"])["grafana"]


@pytest.mark.parametrize("check", [False, True])
def test_password_rendered_0600_and_never_printed(tmp_path, monkeypatch, check):
    monkeypatch.setenv("ANSIBLE_VERBOSITY", "3")
    # --check --diff: the manifests are still rendered (check_mode false), and a diff would show their content
    res = run(tmp_path, {"sophia_lab": False, "sophia_grafana_admin_password": PASSWORD}, check=check)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert PASSWORD not in out, "\n".join(line for line in out.splitlines() if PASSWORD in line)
    places = [tmp_path / "staging"] + ([] if check else [tmp_path / "k3s-manifests"])
    for directory in places:
        manifest = directory / "sophia-kube-prometheus-stack.yaml"
        assert grafana_values(manifest)["adminPassword"] == PASSWORD
        assert stat.S_IMODE(os.stat(manifest).st_mode) == 0o600
        assert grafana_values(manifest)["sidecar"]["dashboards"]["enabled"] is True  # the rest is still there


def test_empty_password_refused_outside_the_lab(tmp_path):
    res = run(tmp_path, {"sophia_lab": False})
    assert res.returncode != 0
    assert "observability_grafana_admin_password is empty" in res.stdout, res.stdout[-3000:]
    assert not (tmp_path / "staging").exists()


def test_lab_without_password_keeps_the_chart_default(tmp_path):
    res = run(tmp_path, {"sophia_lab": True, "observability_install": False})
    assert res.returncode == 0, res.stdout[-3000:]
    assert "adminPassword" not in grafana_values(tmp_path / "staging" / "sophia-kube-prometheus-stack.yaml")
