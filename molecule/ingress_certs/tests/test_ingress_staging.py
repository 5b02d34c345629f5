"""Verify the staged and installed ingress_certs manifests on the converged systemd container."""

import base64

import pytest
import yaml

STAGING = "/var/lib/sophia/ingress_certs/staging"
MANIFESTS = "/var/lib/rancher/k3s/server/manifests"
FILES = [
    "sophia-ingress-00-namespace.yaml",
    "sophia-ingress-10-controller.yaml",
    "sophia-ingress-20-cert-manager.yaml",
    "sophia-ingress-30-cluster-issuers.yaml",
    "sophia-ingress-40-tls-secrets.yaml",
    "sophia-ingress-50-certificates.yaml",
    "sophia-ingress-60-ingresses.yaml",
]


def load(host, path):
    return [d for d in yaml.safe_load_all(host.file(path).content_string) if d]


SECRETS = "sophia-ingress-40-tls-secrets.yaml"  # staged only: K3s applies the auto-deploy files at every start


@pytest.mark.parametrize("name", FILES)
def test_staged_and_installed_root_0600(host, name):
    for directory in (STAGING, MANIFESTS) if name != SECRETS else (STAGING,):
        f = host.file(f"{directory}/{name}")
        assert f.exists and f.user == "root" and f.mode == 0o600
    if name == SECRETS:
        assert not host.file(f"{MANIFESTS}/{name}").exists
    else:
        assert host.file(f"{STAGING}/{name}").content_string == host.file(f"{MANIFESTS}/{name}").content_string


def test_directories_private(host):
    assert host.file(STAGING).mode == 0o700 and host.file(MANIFESTS).mode == 0o700


def test_bundled_traefik_skipped(host):
    assert host.file(f"{MANIFESTS}/traefik.yaml.skip").exists


def test_controller_ports_and_chart(host):
    (chart,) = load(host, f"{STAGING}/sophia-ingress-10-controller.yaml")
    assert chart["spec"]["chart"] == "nginx-ingress"
    values = yaml.safe_load(chart["spec"]["valuesContent"])
    assert values["controller"]["service"]["httpPort"]["port"] == 8080
    assert values["controller"]["service"]["httpsPort"]["port"] == 8443


def test_routes_from_the_nginx_proxy_config(host):
    ingresses = {d["metadata"]["name"]: d for d in load(host, f"{STAGING}/sophia-ingress-60-ingresses.yaml")}
    assert {"www-root", "www-api-research", "www-api-context", "www-api-memory", "www-api-mcp",
            "www-api-orchestrator", "api-root", "api-v1-embeddings"} <= set(ingresses)
    rule = ingresses["www-api-research"]["spec"]["rules"][0]
    assert rule["host"] == "www.sophia-intel.ai" and rule["http"]["paths"][0]["path"] == "/api/research"


def test_imported_secret_holds_the_edge_key(host):
    (secret,) = load(host, f"{STAGING}/sophia-ingress-40-tls-secrets.yaml")
    key = base64.b64decode(secret["data"]["tls.key"]).decode()
    assert key == host.file("/opt/sophia/tls/privkey.pem").content_string


def test_staging_certificates_only(host):
    certs = load(host, f"{STAGING}/sophia-ingress-50-certificates.yaml")
    assert {c["spec"]["issuerRef"]["name"] for c in certs} == {"letsencrypt-staging"}
