"""An alert reaches a person: the role's Alertmanager configuration, run by the real Alertmanager (Debian's).

The observability role runs through ansible-playbook on localhost (nothing installed) with a webhook receiver in
``observability_alert_receivers``; the ``alertmanager.config`` it renders into kube-prometheus-stack's values is
checked by ``amtool check-config`` and then served by Debian's ``prometheus-alertmanager`` on loopback (clustering
off). Alerts are posted to its API v2 as Prometheus posts them: the warning reaches the webhook (a local HTTP server
standing for the team's endpoint) with its labels, ``SophiaGPUUtilisationHigh`` among them; the chart's always-firing
``Watchdog`` (severity none) never does. The only setting that differs from production's is
``observability_alert_group_wait`` (1s instead of 30s), so the test does not wait half a minute for the first
notification. The filter's refusals of bad receivers are tested in tests/unit/observability/test_alertmanager_config.py.
"""

from __future__ import annotations

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


def test_a_warning_reaches_the_webhook_through_the_real_alertmanager(tmp_path, webhook):
    staging, _prometheus = render_observability(tmp_path, {
        "observability_alert_receivers": [{"name": "ops-hook", "webhook_url": webhook.url}],
        "observability_alert_group_wait": "1s"})
    kps = yaml.safe_load((staging / "sophia-kube-prometheus-stack.yaml").read_text())
    config = yaml.safe_load(kps["spec"]["valuesContent"])["alertmanager"]["config"]
    assert [r["name"] for r in config["receivers"]] == ["null", "ops-hook"]
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
    check = subprocess.run([AMTOOL, "check-config", str(tmp_path / "alertmanager.yml")], capture_output=True,
                           text=True, timeout=60, check=False)
    assert check.returncode == 0 and "SUCCESS" in check.stdout, check.stdout + check.stderr
    port = free_port()
    log = open(tmp_path / "alertmanager.log", "w", encoding="utf-8")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([ALERTMANAGER, f"--config.file={tmp_path / 'alertmanager.yml'}",
                             f"--storage.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                             "--cluster.listen-address="], stdout=log, stderr=subprocess.STDOUT)
    try:
        api = f"http://127.0.0.1:{port}/api/v2"
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{api}/status", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "alertmanager.log").read_text()
            time.sleep(0.2)
        posted = requests.post(f"{api}/alerts", timeout=5, json=[
            alert("SophiaGPUUtilisationHigh", "warning", namespace="monitoring", gpu="0", modelName="NVIDIA A10"),
            alert("Watchdog", "none", namespace="monitoring")])
        assert posted.status_code == 200, posted.text
        deadline = time.monotonic() + 30
        while not webhook.received and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # a Watchdog notification, were it routed, would come in the same group_wait
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert webhook.received, (tmp_path / "alertmanager.log").read_text()[-3000:]
    names = [a["labels"]["alertname"] for n in webhook.received for a in n["alerts"]]
    assert names == ["SophiaGPUUtilisationHigh"], webhook.received
    first = webhook.received[0]
    assert first["receiver"] == "ops-hook" and first["status"] == "firing"
    assert first["alerts"][0]["labels"]["gpu"] == "0"


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
