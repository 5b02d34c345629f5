"""k3s_gpu's config.yaml and manifest tasks run for real on localhost (no K3s): secrets stay out of the output and
the diff; manifests are validated in a private scratch directory that is gone afterwards, also after a failure.

The tasks write to paths under the test's temporary directory: the role's internal _k3s_gpu_config_file is
overridden, and k3s_gpu_manifests_dir / k3s_gpu_staging_dir point there too.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
import yaml

pytestmark = pytest.mark.slow  # runs ansible-playbook

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TOKEN = "K10-super-secret-token-0000000001"
DB_PASSWORD = "pg-secret-0000000002"


def run(tmp_path, tasks_from, variables, *flags):
    (tmp_path / "play.yml").write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.include_role:\n        name: sophia.migrate.k3s_gpu\n"
        f"        tasks_from: {tasks_from}\n")
    (tmp_path / "vars.json").write_text(json.dumps({"ansible_python_interpreter": sys.executable,
                                                    "k3s_gpu_service_enabled": False, **variables}))
    env = {**os.environ, "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_STDOUT_CALLBACK": "default"}
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
                           str(tmp_path / "play.yml"), "-e", f"@{tmp_path / 'vars.json'}", *flags],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def changed(out):
    line = next(x for x in out.splitlines() if x.startswith("localhost") and "changed=" in x)
    return int(line.split("changed=")[1].split()[0])


def test_config_yaml_secrets_never_in_output_or_diff(tmp_path):
    config = tmp_path / "config.yaml"
    cfg = {"token": TOKEN, "node-name": "gpu-1", "datastore-endpoint": f"postgres://k3s:{DB_PASSWORD}@db/k3s",
           "kube-apiserver-arg": [f"oidc-client-secret={TOKEN}x", "v=2"]}
    variables = {"_k3s_gpu_config_file": str(config), "k3s_gpu_config": cfg}
    rc, out = run(tmp_path, "config.yml", variables, "--diff")
    assert rc == 0, out[-3000:]
    assert yaml.safe_load(config.read_text())["token"] == TOKEN
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    assert TOKEN not in out and DB_PASSWORD not in out
    assert "token: VALUE_REDACTED" in out and "node-name: gpu-1" in out  # the redacted diff is shown
    assert "oidc-client-secret=VALUE_REDACTED" in out
    # idempotent, in check mode too
    rc, out = run(tmp_path, "config.yml", variables, "--check", "--diff")
    assert rc == 0 and changed(out) == 0, out[-3000:]
    # a new token: the change is reported, with neither the old nor the new token, and -vvv shows neither
    new = {**cfg, "token": TOKEN.replace("0001", "0009"), "node-name": "gpu-2"}
    before = config.read_text()
    rc, out = run(tmp_path, "config.yml", {**variables, "k3s_gpu_config": new}, "--check", "--diff", "-vvv")
    assert rc == 0 and changed(out) == 1, out[-3000:]
    assert config.read_text() == before  # check mode wrote nothing
    for secret in (TOKEN, new["token"], DB_PASSWORD):
        assert secret not in out
    assert "node-name: gpu-1" in out and "node-name: gpu-2" in out  # before and after


def storage(tmp_path, **extra):
    return {"k3s_gpu_manifests_dir": str(tmp_path / "manifests"), "k3s_gpu_staging_dir": str(tmp_path / "stage"),
            "k3s_gpu_config": {"node-name": "gpu-1"},
            "k3s_gpu_storage": [{"name": "qdrant-data", "path": "/var/lib/sophia/volumes/qdrant", "size": "1Gi",
                                 **extra}]}


def test_manifests_validated_in_a_private_scratch_directory_that_is_removed(tmp_path):
    (tmp_path / "manifests").mkdir(mode=0o700)
    rc, out = run(tmp_path, "manifests.yml", storage(tmp_path))
    assert rc == 0, out[-3000:]
    installed = tmp_path / "manifests" / "sophia-storage.yaml"
    assert "qdrant-data" in installed.read_text() and stat.S_IMODE(os.stat(installed).st_mode) == 0o600
    assert os.listdir(tmp_path / "stage") == []  # nothing staged stays behind (no fixed, reusable path)
    assert stat.S_IMODE(os.stat(tmp_path / "stage").st_mode) == 0o700
    rc, out = run(tmp_path, "manifests.yml", storage(tmp_path), "--check", "--diff")
    assert rc == 0 and changed(out) == 0, out[-3000:]  # idempotent
    assert os.listdir(tmp_path / "stage") == []
    # a manifest that does not validate: nothing installed, and the scratch directory is removed all the same
    rc, out = run(tmp_path, "manifests.yml", storage(tmp_path, reclaim_policy=123))
    assert rc != 0 and "k8s_manifest_validate" in out, out[-3000:]
    assert "qdrant-data" in installed.read_text() and "123" not in installed.read_text()
    assert os.listdir(tmp_path / "stage") == []


def test_no_fixed_staging_path_by_default():
    with open(os.path.join(ROOT, "roles", "k3s_gpu", "defaults", "main.yml"), encoding="utf-8") as handle:
        assert yaml.safe_load(handle)["k3s_gpu_staging_dir"] == ""
