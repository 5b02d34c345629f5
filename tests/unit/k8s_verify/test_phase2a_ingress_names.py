"""playbooks/phase2a.yml's verification expects exactly the install Jobs and Deployments ingress_certs installs.

The role's HelmChart manifests are rendered with Ansible's templar (as the template module does) and the verification
task's vars are evaluated the way the play evaluates them, for each controller and a non-default controller namespace.
K3s' helm-controller installs HelmChart <name> as the Helm release <name> with the Job kube-system/helm-install-<name>;
the Deployment names follow each chart's naming rule with the controller.name of the vendored chart values
(specs/k8s), the role setting neither nameOverride nor fullnameOverride.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
TEMPLATES = ROOT / "roles" / "ingress_certs" / "templates"
SPECS = ROOT / "specs" / "k8s"

# In a child process: importing controller code in the test process changes how later in-process module runs report.
_RENDER = """
import json, sys
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

def trusted(value):
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [trusted(v) for v in value]
    return value

templates, play_vars, variables = json.load(sys.stdin)
out = {"manifests": {}, "vars": {}}
for path in templates:
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    out["manifests"][path] = Templar(loader=DataLoader(), variables=variables).template(trust_as_template(source))
resolved = dict(variables)
for key, value in play_vars.items():  # in the order the task lists them, each seeing the ones before
    resolved[key] = Templar(loader=DataLoader(), variables=resolved).template(trusted(value))
    out["vars"][key] = resolved[key]
json.dump(out, sys.stdout)
"""


def verify_task_vars() -> dict:
    plays = yaml.safe_load((ROOT / "playbooks" / "phase2a.yml").read_text(encoding="utf-8"))
    (task,) = [t for play in plays for t in play.get("tasks", [])
               if t.get("ansible.builtin.include_role", {}).get("tasks_from") == "verify"]
    assert task["ansible.builtin.include_role"]["name"] == "sophia.migrate.k3s_gpu"
    return task["vars"]


def render(controller: str, namespace: str) -> tuple[list[dict], dict]:
    with open(TEMPLATES.parent / "defaults" / "main.yml") as handle:
        defaults = yaml.safe_load(handle)  # the metrics switches the controller template reads, as the role has them
    metrics = {k: v for k, v in defaults.items() if k.startswith("ingress_certs_metrics")}
    variables = {**metrics, "ansible_managed": "test", "ingress_certs_controller": controller,
                 "ingress_certs_controller_namespace": namespace, "ingress_certs_http_port": 8080,
                 "ingress_certs_https_port": 8443, "ingress_certs_nginx_inc_chart_version": "2.7.0",
                 "ingress_certs_ingress_nginx_chart_version": "4.15.1",
                 "ingress_certs_cert_manager_chart_version": "v1.21.1"}
    templates = [str(TEMPLATES / "sophia-ingress-10-controller.yaml.j2"),
                 str(TEMPLATES / "sophia-ingress-20-cert-manager.yaml.j2")]
    res = subprocess.run([sys.executable, "-c", _RENDER], input=json.dumps([templates, verify_task_vars(), variables]),
                         capture_output=True, text=True, check=True, timeout=120)
    out = json.loads(res.stdout)
    docs = [d for text in out["manifests"].values() for d in yaml.safe_load_all(text) if d]
    return docs, out["vars"]


def controller_name(values_file: str) -> str:
    return yaml.safe_load((SPECS / values_file).read_text(encoding="utf-8"))["controller"]["name"]


@pytest.mark.parametrize("controller", ["nginx-inc", "ingress-nginx", "traefik"])
def test_phase2a_expects_the_install_jobs_and_deployments_of_the_rendered_helmcharts(controller):
    docs, got = render(controller, "edge-ingress")
    charts = [d for d in docs if d["kind"] == "HelmChart"]
    assert all(d["metadata"]["namespace"] == "kube-system" for d in docs)
    expected_deployments = []
    if controller == "traefik":
        # K3s bundles the HelmChart traefik; the role configures it through the HelmChartConfig of the same name
        (config,) = [d for d in docs if d["kind"] == "HelmChartConfig"]
        releases = [config["metadata"]["name"]]
        expected_deployments.append({"namespace": "kube-system", "name": config["metadata"]["name"]})
    else:
        chart = charts[0]
        values = yaml.safe_load(chart["spec"]["valuesContent"])
        assert not {"nameOverride", "fullnameOverride"} & set(values)
        assert chart["spec"]["chart"] in chart["metadata"]["name"]  # so the chart's fullname is the release name
        suffix = controller_name({"nginx-inc": "nginx-ingress-values-2.7.0.yaml",
                                  "ingress-nginx": "ingress-nginx-values-4.15.1.yaml"}[controller])
        releases = [chart["metadata"]["name"]]
        expected_deployments.append({"namespace": chart["spec"]["targetNamespace"],
                                     "name": f"{chart['metadata']['name']}-{suffix}"})
    cert_manager = charts[-1]
    assert cert_manager["spec"]["chart"] == cert_manager["metadata"]["name"]
    releases.append(cert_manager["metadata"]["name"])
    expected_deployments += [{"namespace": cert_manager["spec"]["targetNamespace"],
                              "name": cert_manager["metadata"]["name"] + suffix}
                             for suffix in ("", "-webhook", "-cainjector")]
    assert got["k3s_gpu_verify_helm_jobs"] == [f"helm-install-{r}" for r in releases]
    assert got["k3s_gpu_verify_controllers"] == expected_deployments


def test_phase2a_expects_nothing_from_ingress_certs_when_it_installs_nothing():
    variables = verify_task_vars()
    variables = {"ingress_certs_install": False, **variables}
    res = subprocess.run([sys.executable, "-c", _RENDER], input=json.dumps([[], variables, {}]),
                         capture_output=True, text=True, check=True, timeout=120)
    got = json.loads(res.stdout)["vars"]
    assert got["k3s_gpu_verify_helm_jobs"] == [] and got["k3s_gpu_verify_controllers"] == []
