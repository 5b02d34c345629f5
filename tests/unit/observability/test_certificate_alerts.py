"""observability: the certificate alerts, evaluated by the real ``promtool test rules`` on the role's rendered rules.

The role runs through ansible-playbook on localhost (nothing installed); the groups of its PrometheusRule
(sophia-migration-alerts.yaml) become a rules file, and promtool evaluates them against series shaped as cert-manager
exports them (names and labels from internal/collectors/certificate_collector.go in cert-manager's repository): a
certificate 20 days from expiry does not alert, one 10 days from expiry does (after its ``for``, with its labels), one
not issued yet (expiration 0) does not, and a certificate whose Ready condition is False alerts after 15 minutes.
The K3s Prometheus scrapes cert-manager's controller for these metrics (a scrape job of its own).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml
from unit.observability.render import render_observability

from support.playbooks import role_play, run_play

PROMTOOL = shutil.which("promtool", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin"]))
DAY = 86400
CERT = {"issuer_name": "letsencrypt-prod", "issuer_kind": "ClusterIssuer", "issuer_group": "cert-manager.io"}


def render(tmp_path, extra=None):
    staging, prometheus = render_observability(tmp_path, extra)
    return yaml.safe_load((staging / "sophia-migration-alerts.yaml").read_text()), prometheus


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    return render(tmp_path_factory.mktemp("obs-certs"))


def series(metric, labels, value):
    text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {"series": f"{metric}{{{text}}}", "values": f"{value}x180"}  # one sample a minute for three hours


def cert(name):
    return {"name": name, "namespace": "sophia", **CERT}


def promtool_test(tmp_path, groups, tests):
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    (tmp_path / "test.yml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}, sort_keys=False))
    check = subprocess.run([PROMTOOL, "check", "rules", "rules.yml"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    return subprocess.run([PROMTOOL, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)


def expiring_alert(labels, left, days=14):
    # promtool's clock starts at 0: time() is the evaluation time, so a constant expiration timestamp of N days
    # leaves N days minus the elapsed time
    return {
        "exp_labels": {**labels, "severity": "warning"},
        "exp_annotations": {
            "summary": f"Certificate sophia/{labels['name']} expires in {left} (fewer than {days} days): "
                       "cert-manager has not renewed it",
            "description": "Issuer ClusterIssuer/letsencrypt-prod. Runbook: docs/ingress_certs.md, A certificate "
                           "renewal failed.",
        },
    }


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (make setup installs Debian's prometheus)")
def test_certificate_alerts_with_promtool(rendered, tmp_path):
    rule, _prometheus = rendered
    groups = rule["spec"]["groups"]
    assert [g["name"] for g in groups] == ["sophia-migration", "sophia-gpu", "sophia-certificates"]
    expiry = "certmanager_certificate_expiration_timestamp_seconds"
    ready = "certmanager_certificate_ready_status"
    inputs = [
        series(expiry, cert("www-20-days"), 20 * DAY),
        series(expiry, cert("api-10-days"), 10 * DAY),
        series(expiry, cert("new-not-issued"), 0),  # no notAfter yet: not "expiring" (the Ready alert covers it)
        *(series(ready, {**cert("www-20-days"), "condition": c}, int(c == "True")) for c in ("True", "False")),
        *(series(ready, {**cert("api-10-days"), "condition": c}, int(c == "True")) for c in ("True", "False")),
        *(series(ready, {**cert("new-not-issued"), "condition": c}, int(c == "False"))
          for c in ("True", "False", "Unknown")),
    ]
    test = {
        "interval": "1m",
        "input_series": inputs,
        "alert_rule_test": [
            # pending during its `for: 1h`, then firing for the 10-day certificate only
            {"eval_time": "30m", "alertname": "SophiaCertificateExpiringSoon", "exp_alerts": []},
            {"eval_time": "70m", "alertname": "SophiaCertificateExpiringSoon",
             "exp_alerts": [expiring_alert(cert("api-10-days"), "9d 22h 50m 0s")]},
            {"eval_time": "170m", "alertname": "SophiaCertificateExpiringSoon",
             "exp_alerts": [expiring_alert(cert("api-10-days"), "9d 21h 10m 0s")]},
            # Ready False: pending for 15 minutes, then firing; the Ready certificates never
            {"eval_time": "10m", "alertname": "SophiaCertificateNotReady", "exp_alerts": []},
            {"eval_time": "16m", "alertname": "SophiaCertificateNotReady", "exp_alerts": [{
                "exp_labels": {**cert("new-not-issued"), "condition": "False", "severity": "warning"},
                "exp_annotations": {
                    "summary": "Certificate sophia/new-not-issued is not Ready for 15 minutes: its issuance or "
                               "renewal fails",
                    "description": "Issuer ClusterIssuer/letsencrypt-prod. Runbook: docs/ingress_certs.md, A "
                                   "certificate renewal failed.",
                },
            }]},
        ],
    }
    res = promtool_test(tmp_path, groups, [test])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout, res.stdout


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (make setup installs Debian's prometheus)")
def test_a_20_day_certificate_alerts_with_a_21_day_threshold(tmp_path):
    (tmp_path / "role").mkdir()
    rule, _prometheus = render(tmp_path / "role", {"observability_alert_cert_expiry_days": 21})
    groups = [g for g in rule["spec"]["groups"] if g["name"] == "sophia-certificates"]
    labels = cert("www-20-days")
    test = {
        "interval": "1m",
        "input_series": [series("certmanager_certificate_expiration_timestamp_seconds", labels, 20 * DAY)],
        "alert_rule_test": [{"eval_time": "61m", "alertname": "SophiaCertificateExpiringSoon",
                             "exp_alerts": [expiring_alert(labels, "19d 22h 59m 0s", days=21)]}],
    }
    res = promtool_test(tmp_path, groups, [test])
    assert res.returncode == 0, res.stdout + res.stderr


def test_cert_manager_controller_scraped_with_the_certificates_namespace_label(rendered):
    _rule, prometheus = rendered
    jobs = {job["job_name"]: job for job in prometheus["prometheusSpec"]["additionalScrapeConfigs"]}
    job = jobs["cert-manager"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["cert-manager"]}}]
    keep = {tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    # the controller's container port (cert-manager chart: deploy/charts/cert-manager/templates/deployment.yaml)
    assert keep[("__meta_kubernetes_pod_label_app_kubernetes_io_component",
                 "__meta_kubernetes_pod_container_port_name")] == "controller;http-metrics"
    # no target `namespace`: the metrics' own namespace label (the Certificate's) stays `namespace`
    assert {r["target_label"] for r in job["relabel_configs"] if "target_label" in r} == {"pod"}


def test_bad_threshold_is_refused(tmp_path):
    res = run_play(tmp_path, role_play("observability"), {
        "sophia_lab": True, "observability_install": False, "observability_staging_dir": str(tmp_path / "staging"),
        "observability_alert_cert_expiry_days": 0})
    assert res.returncode != 0 and "observability_alert_cert_expiry_days a number of days" in res.stdout
