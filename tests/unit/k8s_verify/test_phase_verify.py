"""The post-deploy verification steps of playbooks/phase2a.yml and phase2b.yml, run for real on localhost.

No lab and no API server: an inventory that puts localhost in every group, the phase playbook run with only its
verification and report plays. Where K3s is staged (or nothing was applied) the report lists every check as skipped
with the reason and the phase passes; where K3s was started but no API server answers, or a verdict over given
objects fails, the playbook fails naming the reasons.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "k8s_verify"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def run_phase(tmp_path: Path, playbook: str, extra: dict, skip: str = "") -> tuple[subprocess.CompletedProcess, dict]:
    state = tmp_path / "state"
    inventory = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "sophia_environment": "test", "sophia_lab": False, "sophia_ledger_path": str(state / "ledger.json"),
                 "sophia_reports_dir": str(tmp_path / "reports")},
        "children": {"controller": {"hosts": {"localhost": None}}, "compose_host": {"hosts": {"localhost": None}},
                     "edge": {"hosts": {"localhost": None}},
                     "k3s_cluster": {"children": {"k3s_server": {"hosts": {"localhost": None}},
                                                  "k3s_agent": {"hosts": {}}}}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory), encoding="utf-8")
    (tmp_path / "extra.json").write_text(json.dumps({"phase_run_id": "t1", **extra}), encoding="utf-8")
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    argv = [str(BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"), f"playbooks/{playbook}.yml",
            "--tags", "verify,report", "-e", f"@{tmp_path / 'extra.json'}"]
    if skip:
        argv += ["--skip-tags", skip]
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    report_path = tmp_path / "reports" / "t1" / f"{playbook}.json"
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.exists() else {}
    return proc, report


def verify_steps(report: dict) -> dict[str, dict]:
    return {s["name"]: s for s in report["steps"] if s["name"].startswith("verif")}


def test_phase2a_with_k3s_staged_lists_each_check_not_run_with_the_reason(tmp_path):
    proc, report = run_phase(tmp_path, "phase2a", {"k3s_gpu_service_enabled": False})
    assert proc.returncode == 0, proc.stdout[-4000:]
    steps = verify_steps(report)
    reason = ("not run: K3s was staged, not started (k3s_gpu_service_enabled=false) on localhost: there is no API "
              "server to verify")
    # the ingress controller's and cert-manager's install Jobs and Deployments are expected too
    assert list(steps) == [f"verify {c} on localhost" for c in (
        "nodes_ready", "helm_jobs", "cuda_smoke", "controllers", "certificates", "rollouts", "pvcs", "pending_pods")]
    assert all(s["outcome"] == "skipped" and s["reason"] == reason for s in steps.values()), steps


def test_phase2a_with_k3s_started_and_no_api_server_fails(tmp_path):
    extra = {"k3s_gpu_service_enabled": True, "k3s_gpu_kubeconfig_dest": str(tmp_path / "no-kubeconfig")}
    proc, _report = run_phase(tmp_path, "phase2a", extra)
    assert proc.returncode != 0
    out = " ".join(proc.stdout.split())
    assert "the post-deploy verification of localhost failed (1 problem(s)): not run: no API server: no usable " \
           "kubeconfig" in out, out[-4000:]


def test_phase2a_failed_verdict_fails_with_the_reasons(tmp_path):
    objects: dict = {}
    for name in ("12-node-not-ready.yaml", "10-certificate-http01-404.yaml"):
        for kind, items in yaml.safe_load((FIXTURES / name).read_text(encoding="utf-8"))["objects"].items():
            objects.setdefault(kind, []).extend(items)
    proc, report = run_phase(tmp_path, "phase2a", {"k3s_gpu_verify_objects": objects, "ingress_certs_install": False})
    assert proc.returncode != 0
    out = " ".join(proc.stdout.split())
    assert "k3s_gpu: the post-deploy verification of localhost failed" in out, out[-4000:]
    assert "is not Ready: Ready=Unknown (NodeStatusUnknown: Kubelet stopped posting node status.)" in out
    assert "Certificate" in out and "staging-example-com is not Ready" in out
    assert report == {}  # the phase stopped there: no report says it passed


def test_phase2b_nothing_applied_lists_each_check_not_run(tmp_path):
    proc, report = run_phase(tmp_path, "phase2b", {"k8s_services_apply": False},
                             skip="k8s_services,data_migration,traffic_shift")
    assert proc.returncode == 0, proc.stdout[-4000:]
    steps = verify_steps(report)
    reason = "not run: k8s_services_apply is false: the manifests were rendered and validated, not applied to a cluster"
    assert list(steps) == [f"verify {c} on localhost" for c in
                           ("nodes_ready", "certificates", "rollouts", "pvcs", "pending_pods")]
    assert all(s["outcome"] == "skipped" and s["reason"] == reason for s in steps.values()), steps
    assert [s["name"] for s in report["steps"]][1] == "verify nodes_ready on localhost"  # right after k8s_services


def test_phase2b_failed_verdict_fails_with_the_reasons(tmp_path):
    objects: dict = {}
    for name in ("14-deployment-mariadb-unavailable.yaml", "15-pvc-wait-for-first-consumer.yaml"):
        for kind, items in yaml.safe_load((FIXTURES / name).read_text(encoding="utf-8"))["objects"].items():
            objects.setdefault(kind, []).extend(items)
    proc, report = run_phase(tmp_path, "phase2b", {"k8s_services_verify_objects": objects},
                             skip="k8s_services,data_migration,traffic_shift")
    assert proc.returncode != 0
    out = " ".join(proc.stdout.split())
    assert "k8s_services: the applied services on localhost failed their verification" in out, out[-4000:]
    assert "Deployment drupal/mariadb is not rolled out: 0/1 available" in out
    assert "PersistentVolumeClaim" in out and "WaitForFirstConsumer" in out
    assert report == {}


def test_phase2a_expects_gpus_times_time_slicing_replicas_from_the_plan(tmp_path):
    objects = yaml.safe_load((FIXTURES / "01-gpu-node-with-gpu.yaml").read_text(encoding="utf-8"))["objects"]
    plan = {"mode": "time-slicing", "gpus_found": 1, "time_slicing_replicas": 3, "device_plugin_config": {}}
    proc, _report = run_phase(tmp_path, "phase2a", {
        "k3s_gpu_verify_objects": objects, "ingress_certs_install": False, "k3s_gpu_gpu_enabled": True,
        "k3s_gpu_plan": {"plan": plan}, "k3s_gpu_config": {"node-name": "k8s-node1"}})
    assert proc.returncode != 0
    out = " ".join(proc.stdout.split())  # the YAML callback folds long lines
    assert "node k8s-node1 advertises nvidia.com/gpu=1 (capacity 1), the plan expects 3" in out, out[-4000:]
    assert "Job kube-system/helm-install-nvidia-device-plugin: not found" in out
    assert "no pod nvidia-device-plugin/nvidia-device-plugin-*" in out
    assert ("(3 problem(s)): node k8s-node1 advertises nvidia.com/gpu=1 (capacity 1), the plan expects 3; Job "
            "kube-system/helm-install-nvidia-device-plugin: not found") in out
    assert ". Not run: cuda_smoke: recorded objects given (k3s_gpu_verify_objects): no smoke pod is created" in out
