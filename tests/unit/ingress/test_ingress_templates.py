"""ingress_certs templates: values that come from routes stay single YAML scalars, whatever they hold.

The templates are rendered in-process with Ansible's templar (as the template module does), from a route list whose
host, path, name and upstream path carry YAML that would add a rule to kube-dns:53 if inserted raw.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TEMPLATES = os.path.join(ROOT, "roles", "ingress_certs", "templates")
RULE = ("\n      http:\n        paths:\n          - path: /\n            pathType: Prefix\n            backend:\n"
        "              service:\n                name: kube-dns\n                port:\n                  number: 53\n"
        "    - host: hijack.example.com")
EVIL_HOST = "www.example.com" + RULE
EVIL_PATH = ("/admin\n          - path: /\n            pathType: Prefix\n            backend:\n"
             "              service:\n                name: kube-dns\n                port:\n"
             "                  number: 53\n          - path: /x")
EVIL_REWRITE = '/x" \n    nginx.org/server-snippets: "evil'
# Ansible's templar, run in a child process: importing controller code makes every later in-process module run
# of the test session send its warnings to the display instead of its result.
_RENDER = """
import json, sys
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
path, variables = json.load(sys.stdin)
with open(path, encoding="utf-8") as handle:
    source = handle.read()
sys.stdout.write(Templar(loader=DataLoader(), variables=variables).template(trust_as_template(source)))
"""


def render(name, **variables):
    base = {"ansible_managed": "test", "ingress_certs_namespace": "sophia", "ingress_certs_service_map": {},
            "_ingress_certs_class": {"nginx-inc": "nginx", "ingress-nginx": "nginx", "traefik": "traefik"},
            "_ingress_certs_tls_hosts": [], "ingress_certs_issuance_stage": "staging"}
    res = subprocess.run([sys.executable, "-c", _RENDER], input=json.dumps([os.path.join(TEMPLATES, name),
                                                                           {**base, **variables}]),
                         capture_output=True, text=True, check=True, timeout=120)
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def evil_routes():
    return [{"name": "www-admin", "host": EVIL_HOST, "path": EVIL_PATH, "path_type": "Prefix", "tls": True,
             "upstreams": ["app:8000"], "upstream_scheme": "https", "upstream_path": EVIL_REWRITE, "websocket": True,
             "buffering": False}]


@pytest.mark.parametrize("controller", ["nginx-inc", "ingress-nginx", "traefik"])
def test_ingress_values_cannot_add_rules_or_keys(controller):
    docs = render("sophia-ingress-60-ingresses.yaml.j2", ingress_certs_controller=controller,
                  _ingress_certs_routes=evil_routes(), _ingress_certs_hosts=[EVIL_HOST],
                  _ingress_certs_tls_hosts=[EVIL_HOST])
    for doc in docs:
        (rule,) = doc["spec"]["rules"]  # one rule, never the injected second one
        assert rule["host"] == EVIL_HOST  # the whole text is one (invalid, so refused by the API) value
        for path in (rule.get("http") or {}).get("paths", []):
            assert path["path"] == EVIL_PATH
            assert path["backend"]["service"] == {"name": "app", "port": {"number": 8000}}
        for tls in doc["spec"].get("tls", []):
            assert tls["hosts"] == [EVIL_HOST]
        assert "nginx.org/server-snippets" not in doc["metadata"].get("annotations", {})
    minion = docs[-1]
    assert minion["metadata"]["name"] == "www-admin"
    if controller == "nginx-inc":
        assert minion["metadata"]["annotations"]["nginx.org/rewrites"] == f"serviceName=app rewrite={EVIL_REWRITE}"
        assert docs[0]["metadata"]["name"].endswith("-master") and len(docs) == 2
    else:
        assert len(docs) == 1


@pytest.mark.parametrize("controller", ["nginx-inc", "ingress-nginx"])
def test_wildcard_host_gives_valid_object_names(controller):
    route = {"name": "wildcard-root", "host": "*.example.com", "path": "/", "path_type": "Prefix", "tls": True,
             "upstreams": ["app:8000"]}
    docs = render("sophia-ingress-60-ingresses.yaml.j2", ingress_certs_controller=controller,
                  _ingress_certs_routes=[route], _ingress_certs_hosts=["*.example.com"],
                  _ingress_certs_tls_hosts=["*.example.com"])
    names = [d["metadata"]["name"] for d in docs]
    secrets = [t["secretName"] for d in docs for t in d["spec"].get("tls", [])]
    assert secrets == ["wildcard-example-com-tls"]
    assert "*" not in "".join(names)


def test_certificates_and_tls_secrets_keep_hosts_as_one_value():
    certs = render("sophia-ingress-50-certificates.yaml.j2", _ingress_certs_tls_hosts=[EVIL_HOST])
    (cert,) = certs
    assert cert["spec"]["dnsNames"] == [EVIL_HOST]
    assert set(cert["spec"]) == {"secretName", "dnsNames", "issuerRef", "privateKey"}
    secrets = render("sophia-ingress-40-tls-secrets.yaml.j2",
                     _ingress_certs_tls_secrets=[{"name": "a\n  namespace: kube-system\n  x", "cert_file": "c",
                                                  "key_file": "k"}],
                     _ingress_certs_tls_data={"c": "Y2VydA==", "k": "a2V5"})
    (secret,) = secrets
    assert secret["metadata"]["namespace"] == "sophia"
    assert secret["metadata"]["name"].startswith("a\n")  # one (invalid, refused) value, no extra key
