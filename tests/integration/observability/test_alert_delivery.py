"""An alert reaches a person: the role's Alertmanager configuration, run by the real Alertmanager (Debian's).

The observability role runs through ansible-playbook on localhost (nothing installed) with a webhook receiver in
``observability_alert_receivers``; the ``alertmanager.config`` it renders into kube-prometheus-stack's values is
checked by ``amtool check-config`` and then served by Debian's ``prometheus-alertmanager`` on loopback (clustering
off). Alerts are posted to its API v2 as Prometheus posts them: the warning reaches the webhook (a local HTTP server
standing for the team's endpoint) with its labels, ``SophiaGPUUtilisationHigh`` among them; the chart's always-firing
``Watchdog`` (severity none) never does. The only setting that differs from production's is
``observability_alert_group_wait`` (1s instead of 30s), so the test does not wait half a minute for the first
notification. Then the whole lab path: Debian's real Prometheus scrapes a DCGM-exporter stand-in serving a recorded
scrape (no GPU here), evaluates the role's GPU rules and fires SophiaGPUUtilisationHigh for the GPU above 80 % only,
through the real Alertmanager to the webhook. The filter's refusals of bad receivers are tested in
tests/unit/observability/test_alertmanager_config.py.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import yaml
from unit.observability.render import render_observability

from support.playbooks import role_play, run_play
from support.servers import free_port

ALERTMANAGER = shutil.which("prometheus-alertmanager", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin"]))
PROMETHEUS = shutil.which("prometheus", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin"]))
FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "gpu", "dcgm-exporter-4.6.0.prom")
AMTOOL = shutil.which("amtool", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin"]))
pytestmark = pytest.mark.skipif(ALERTMANAGER is None or AMTOOL is None,
                                reason="prometheus-alertmanager is not installed (make setup installs it)")


class Webhook:
    """The team's endpoint: records every notification Alertmanager posts."""

    def __init__(self):
        self.received: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                return

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.received.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/alerts"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


def alert(name: str, severity: str, **labels) -> dict:
    now = datetime.datetime.now(datetime.timezone.utc)
    return {"labels": {"alertname": name, "severity": severity, **labels},
            "annotations": {"summary": f"{name} (test)"},
            "startsAt": now.isoformat(), "endsAt": (now + datetime.timedelta(minutes=10)).isoformat()}


@contextlib.contextmanager
def served(tmp_path, name: str, argv: list[str], ready: str):
    """A real server (``argv``) logging to ``tmp_path/<name>.log``, up once ``ready`` answers 200; stopped after."""
    log = open(tmp_path / f"{name}.log", "w", encoding="utf-8")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(ready, timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / f"{name}.log").read_text()
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def alertmanager(tmp_path, webhook: Webhook, port: int):
    """Debian's Alertmanager on the configuration the role renders for a webhook receiver (checked by amtool)."""
    staging, _prometheus = render_observability(tmp_path / "role", {
        "observability_alert_receivers": [{"name": "ops-hook", "webhook_url": webhook.url}],
        "observability_alert_group_wait": "1s"})
    kps = yaml.safe_load((staging / "sophia-kube-prometheus-stack.yaml").read_text())
    config = yaml.safe_load(kps["spec"]["valuesContent"])["alertmanager"]["config"]
    assert [r["name"] for r in config["receivers"]] == ["null", "ops-hook"]
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
    check = subprocess.run([AMTOOL, "check-config", str(tmp_path / "alertmanager.yml")], capture_output=True,
                           text=True, timeout=60, check=False)
    assert check.returncode == 0 and "SUCCESS" in check.stdout, check.stdout + check.stderr
    return served(tmp_path, "alertmanager", [
        ALERTMANAGER, f"--config.file={tmp_path / 'alertmanager.yml'}", f"--storage.path={tmp_path / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        f"http://127.0.0.1:{port}/api/v2/status")


def wait_for(webhook: Webhook, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not webhook.received and time.monotonic() < deadline:
        time.sleep(0.2)


def test_a_warning_reaches_the_webhook_through_the_real_alertmanager(tmp_path, webhook):
    (tmp_path / "role").mkdir()
    port = free_port()
    with alertmanager(tmp_path, webhook, port):
        posted = requests.post(f"http://127.0.0.1:{port}/api/v2/alerts", timeout=5, json=[
            alert("SophiaGPUUtilisationHigh", "warning", namespace="monitoring", gpu="0", modelName="NVIDIA A10"),
            alert("Watchdog", "none", namespace="monitoring")])
        assert posted.status_code == 200, posted.text
        wait_for(webhook, 30)
        time.sleep(2)  # a Watchdog notification, were it routed, would come in the same group_wait
    assert webhook.received, (tmp_path / "alertmanager.log").read_text()[-3000:]
    names = [a["labels"]["alertname"] for n in webhook.received for a in n["alerts"]]
    assert names == ["SophiaGPUUtilisationHigh"], webhook.received
    first = webhook.received[0]
    assert first["receiver"] == "ops-hook" and first["status"] == "firing"
    assert first["alerts"][0]["labels"]["gpu"] == "0"


class DcgmStandin:
    """A DCGM-exporter stand-in (no GPU here): serves the recorded scrape tests/fixtures/gpu/dcgm-exporter-4.6.0.prom
    at /metrics in Prometheus' text format, as dcgm-exporter 4.6.0 does (GPU 0 at 87 %, GPU 1 at 61 %)."""

    def __init__(self):
        with open(FIXTURE, "rb") as handle:
            body = handle.read()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                return

            def do_GET(self):
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (make setup installs Debian's prometheus)")
def test_the_gpu_alert_fired_by_a_real_prometheus_reaches_the_webhook(tmp_path, webhook):
    """The whole path in the lab: a real Prometheus scrapes the DCGM stand-in, evaluates the role's rendered sophia-gpu
    group and sends the alert to the real Alertmanager, which posts it to the webhook. Only the GPU above 80 % alerts.
    Differs from production, to run in seconds: the rule's window (observability_gpu_util_window 1m) and ``for``
    (0s), Prometheus' scrape and evaluation interval (1s) and Alertmanager's group_wait (1s)."""
    (tmp_path / "role").mkdir()
    (tmp_path / "rules").mkdir()
    staging, _prometheus = render_observability(tmp_path / "rules", {
        "observability_gpu_util_window": "1m", "observability_gpu_util_for": "0s"})
    rule = yaml.safe_load((staging / "sophia-migration-alerts.yaml").read_text())
    groups = [g for g in rule["spec"]["groups"] if g["name"] == "sophia-gpu"]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    am_port, prom_port, dcgm = free_port(), free_port(), DcgmStandin()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "rules.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [{"job_name": "dcgm-exporter", "static_configs": [{"targets": [dcgm.address]}]}]}))
    try:
        with alertmanager(tmp_path, webhook, am_port), served(tmp_path, "prometheus", [
                PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                f"http://127.0.0.1:{prom_port}/-/ready"):
            wait_for(webhook, 60)
            time.sleep(3)  # GPU 1 (61 %), were it alerting, would be in the same group
            recorded = requests.get(f"http://127.0.0.1:{prom_port}/api/v1/query", timeout=5, params={
                "query": "sophia:gpu_utilisation_percent:avg_window"}).json()["data"]["result"]
    finally:
        dcgm.close()
    assert webhook.received, ((tmp_path / "prometheus.log").read_text()[-2000:]
                              + (tmp_path / "alertmanager.log").read_text()[-2000:])
    fired = [a for n in webhook.received for a in n["alerts"]]
    assert {(a["labels"]["alertname"], a["labels"]["gpu"], a["labels"]["modelName"]) for a in fired} == {
        ("SophiaGPUUtilisationHigh", "0", "NVIDIA A10")}, fired
    assert fired[0]["labels"]["severity"] == "warning" and "averaged 87%" in fired[0]["annotations"]["summary"]
    assert sorted((r["metric"]["gpu"], float(r["value"][1])) for r in recorded) == [("0", 87.0), ("1", 61.0)]


def test_no_receivers_outside_the_lab_is_said_and_none_rendered(tmp_path):
    res = run_play(tmp_path, role_play("observability"), {
        "sophia_lab": False, "observability_install": False, "observability_staging_dir": str(tmp_path / "staging"),
        "observability_grafana_admin_password": "x" * 16})
    assert res.returncode == 0, res.stdout[-3000:]
    assert "WARNING observability: observability_alert_receivers is empty" in res.stdout
    values = yaml.safe_load(yaml.safe_load((tmp_path / "staging" / "sophia-kube-prometheus-stack.yaml").read_text())
                            ["spec"]["valuesContent"])
    assert values["alertmanager"] == {}


def test_a_bad_receiver_is_refused_by_name_before_anything_is_rendered(tmp_path):
    res = run_play(tmp_path, role_play("observability"), {
        "sophia_lab": True, "observability_install": False, "observability_staging_dir": str(tmp_path / "staging"),
        "observability_alert_receivers": [{"name": "ops-pager", "pagerduty_routing_key": ""}]})
    assert res.returncode != 0
    assert "receiver 1 (ops-pager): pagerduty_routing_key is missing or empty" in res.stdout, res.stdout[-3000:]
    assert not (tmp_path / "staging" / "sophia-kube-prometheus-stack.yaml").exists()
