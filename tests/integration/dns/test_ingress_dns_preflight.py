"""ingress_certs refuses Let's Encrypt production issuance unless DNS points at the ingress (real DNS on loopback)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pytest
import yaml
from standins.dns_zone import DnsZoneServer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
pytestmark = pytest.mark.slow  # runs ansible-playbook

NGINX_CONF = os.path.join(ROOT, "tests", "fixtures", "nginx", "sophia", "nginx.conf")


def run_role(tmp_path, port, expected):
    (tmp_path / "play.yml").write_text(textwrap.dedent("""\
        - hosts: localhost
          connection: local
          gather_facts: false
          roles:
            - sophia.migrate.ingress_certs
        """))
    variables = {
        "ingress_certs_nginx_config": NGINX_CONF,
        "ingress_certs_acme_email": "ops@sophia-intel.ai",
        "ingress_certs_issuance_stage": "production",
        "ingress_certs_allow_production": True,
        "ingress_certs_dns_expected_addresses": expected,
        "ingress_certs_dns_nameservers": ["127.0.0.1"],
        "ingress_certs_dns_port": port,
        "ingress_certs_service_map": {"127.0.0.1:8000": {"name": "orchestrator", "port": 8000}},
        "ingress_certs_staging_dir": str(tmp_path / "staging"),
        "ingress_certs_manifests_dir": str(tmp_path / "k3s-manifests"),
        # the fixture's certificate files (/etc/letsencrypt/...) are not on this machine: the import of the edge's
        # certificates is tested in tests/unit/tls and tests/unit/ingress; here the DNS preflight is
        "ingress_certs_tls_from_edge": False,
        # no API server here: the staging certificates cannot be read (production after a Ready staging certificate
        # is tested in tests/unit/ingress/test_ingress_role.py); here production is ordered for every host
        "ingress_certs_tls_apply": False,
        "ingress_certs_production_after_staging": False,
    }
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    argv = [os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", "localhost,", str(tmp_path / "play.yml"),
            "-e", f"@{tmp_path / 'vars.json'}",
            "-e", f"ansible_python_interpreter={os.path.join(ROOT, '.venv', 'bin', 'python')}"]
    env = {**os.environ, "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(argv, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def zone():
    with DnsZoneServer({
        "www.sophia-intel.ai": {"A": ["127.0.0.10"]},
        "api.sophia-intel.ai": {"CNAME": "edge.sophia-intel.ai"},
        "edge.sophia-intel.ai": {"A": ["127.0.0.10"]},
    }) as server:
        yield server


def test_production_refused_when_dns_points_elsewhere(tmp_path, zone):
    res = run_role(tmp_path, zone.port, ["127.0.0.77"])
    assert res.returncode != 0
    assert "refusing Let's Encrypt production issuance" in res.stdout
    assert "www.sophia-intel.ai: resolves to unexpected address(es) 127.0.0.10" in res.stdout
    assert not (tmp_path / "staging").exists()  # nothing staged, nothing installed
    assert ("www.sophia-intel.ai", "A") in zone.queries


def test_production_certificates_when_dns_matches(tmp_path, zone):
    res = run_role(tmp_path, zone.port, ["127.0.0.10"])
    assert res.returncode == 0, res.stdout[-4000:]
    certs = list(yaml.safe_load_all((tmp_path / "staging" / "sophia-ingress-50-certificates.yaml").read_text()))
    production = {c["spec"]["secretName"] for c in certs
                  if c and c["spec"]["issuerRef"]["name"] == "letsencrypt-production"}
    assert production == {"www-sophia-intel-ai-tls", "api-sophia-intel-ai-tls"}
    assert ("api.sophia-intel.ai", "A") in zone.queries  # CNAME followed by the resolver
