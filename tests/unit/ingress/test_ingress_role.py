"""ingress_certs renders, validates and stages its manifests (ansible-playbook on localhost, no cluster).

The Sophia nginx-proxy fixture is parsed by nginx_routes inside the role; every generated manifest is
validated again here with the same offline validator (kubernetes-validate for core kinds, the CRDs and chart
values in specs/k8s for HelmChart/ClusterIssuer/Certificate), and the content is checked per controller.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import textwrap

import pytest
import yaml
from unit.tls import certgen

from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_validate
from support.kube_api import KubeApi

pytestmark = pytest.mark.slow  # runs ansible-playbook (~20 s a run on this machine)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
NGINX_CONF = os.path.join(ROOT, "tests", "fixtures", "nginx", "sophia", "nginx.conf")
SPECS = os.path.join(ROOT, "specs", "k8s")
# The certificates nginx-proxy serves in the fixture (ssl_certificate /etc/letsencrypt/live/<host>/fullchain.pem),
# made here: root -> intermediate -> leaf, the full chain in fullchain.pem as Let's Encrypt writes it.
PKI = certgen.Pki()
WWW = PKI.leaf(["www.sophia-intel.ai", "sophia-intel.ai"])
API = PKI.leaf(["api.sophia-intel.ai"])
KEY = WWW.key_pem.decode()
KEY_BODY = KEY.splitlines()[1]  # a line of the key's base64, as it would appear if it were ever printed


def write_edge_certificates(tmp_path, www=WWW, api=API):
    PKI.write(tmp_path / "le" / "live" / "www.sophia-intel.ai", www)
    PKI.write(tmp_path / "le" / "live" / "api.sophia-intel.ai", api)
    return PKI.bundle(tmp_path / "ca.pem")


def run_role(tmp_path, extra=None, check=False, verbosity=0):
    (tmp_path / "play.yml").write_text(textwrap.dedent("""\
        - hosts: localhost
          connection: local
          gather_facts: false
          roles:
            - sophia.migrate.ingress_certs
        """))
    bundle = write_edge_certificates(tmp_path) if not (tmp_path / "ca.pem").exists() else str(tmp_path / "ca.pem")
    variables = {
        "ingress_certs_nginx_config": NGINX_CONF,
        "ingress_certs_acme_email": "ops@sophia-intel.ai",
        "ingress_certs_service_map": {"127.0.0.1:8000": {"name": "orchestrator", "port": 8000}},
        "ingress_certs_tls_path_map": {"/etc/letsencrypt": str(tmp_path / "le")},
        "ingress_certs_tls_ca_bundle": bundle,
        "ingress_certs_staging_dir": str(tmp_path / "staging"),
        "ingress_certs_manifests_dir": str(tmp_path / "k3s-manifests"),
        "ingress_certs_tls_apply": False,  # no API server: test_imported_secrets_go_through_the_api gives one
        **(extra or {}),
    }
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    argv = [os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", "localhost,", str(tmp_path / "play.yml"),
            "-e", f"@{tmp_path / 'vars.json'}",
            "-e", f"ansible_python_interpreter={os.path.join(ROOT, '.venv', 'bin', 'python')}"]
    if check:
        argv += ["--check", "--diff"]
    if verbosity:
        argv.append("-" + "v" * verbosity)
    env = {**os.environ, "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(argv, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def changed(out):
    line = next(x for x in out.splitlines() if x.startswith("localhost") and "changed=" in x)
    return int(line.split("changed=")[1].split()[0])


def docs(directory):
    out = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".yaml"):
            out[name] = [d for d in yaml.safe_load_all((directory / name).read_text()) if d]
    return out


def validate(directory):
    result = _k8s_validate.validate_documents(_k8s_validate.load_manifest_files([str(directory)]),
                                              _k8s_validate.Schemas([SPECS]))
    assert result["valid"], result["errors"]
    assert result["warnings"] == []
    return result


@pytest.fixture(scope="module")
def f5(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("f5")
    fresh = tmp_path_factory.mktemp("f5-fresh-check")
    fresh_check = run_role(fresh, check=True)  # check mode on a host that never converged: writes nothing
    assert fresh_check.returncode == 0, fresh_check.stdout[-4000:]
    assert changed(fresh_check.stdout) > 0 and not (fresh / "staging").exists()
    assert "+++ after:" in fresh_check.stdout and KEY_BODY not in fresh_check.stdout
    first = run_role(tmp_path)
    check = run_role(tmp_path, check=True)  # a second run in check mode: nothing would change (idempotent)
    return tmp_path, first, check


def test_f5_render_validate_stage_install_idempotent(f5):
    tmp_path, first, check = f5
    assert first.returncode == 0, first.stdout[-4000:]
    assert changed(first.stdout) > 0
    assert check.returncode == 0 and changed(check.stdout) == 0, check.stdout[-4000:]
    staged = sorted(os.listdir(tmp_path / "staging"))
    assert staged == ["sophia-ingress-00-namespace.yaml", "sophia-ingress-10-controller.yaml",
                      "sophia-ingress-20-cert-manager.yaml", "sophia-ingress-30-cluster-issuers.yaml",
                      "sophia-ingress-40-tls-secrets.yaml", "sophia-ingress-50-certificates.yaml",
                      "sophia-ingress-60-ingresses.yaml"]
    # the TLS Secrets (keys) are staged only: K3s would apply the auto-deploy copy again at every start
    installed = [name for name in staged if name != "sophia-ingress-40-tls-secrets.yaml"]
    assert sorted(os.listdir(tmp_path / "k3s-manifests")) == sorted([*installed, "traefik.yaml.skip"])
    for name in staged:
        assert stat.S_IMODE(os.stat(tmp_path / "staging" / name).st_mode) == 0o600
    result = validate(tmp_path / "staging")
    assert result["kinds"]["Ingress"] == 8 + 2  # one minion per route + one master per host
    assert result["kinds"]["ClusterIssuer"] == 2 and result["kinds"]["HelmChart"] == 2


def test_f5_manifest_content(f5):
    tmp_path = f5[0]
    out = docs(tmp_path / "staging")
    controller = out["sophia-ingress-10-controller.yaml"][0]
    assert controller["spec"]["chart"] == "nginx-ingress" and controller["spec"]["version"] == "2.7.0"
    cm = out["sophia-ingress-20-cert-manager.yaml"][0]
    assert yaml.safe_load(cm["spec"]["valuesContent"])["crds"]["enabled"] is True
    issuers = {d["metadata"]["name"]: d for d in out["sophia-ingress-30-cluster-issuers.yaml"]}
    assert issuers["letsencrypt-staging"]["spec"]["acme"]["server"].startswith("https://acme-staging-v02")
    solver = issuers["letsencrypt-production"]["spec"]["acme"]["solvers"][0]
    assert solver["http01"]["ingress"]["ingressClassName"] == "nginx"
    # the solver's Ingress joins the host's master as a minion (F5 NGINX refuses a second plain Ingress for a host)
    template = solver["http01"]["ingress"]["ingressTemplate"]["metadata"]["annotations"]
    assert template == {"nginx.org/mergeable-ingress-type": "minion"}
    certs = out["sophia-ingress-50-certificates.yaml"]
    # Staging stage: staging certificates only, into their own Secrets.
    assert {(c["metadata"]["name"], c["spec"]["secretName"], c["spec"]["issuerRef"]["name"]) for c in certs} == {
        ("www-sophia-intel-ai-staging", "www-sophia-intel-ai-tls-staging", "letsencrypt-staging"),
        ("api-sophia-intel-ai-staging", "api-sophia-intel-ai-tls-staging", "letsencrypt-staging")}
    ingresses = {d["metadata"]["name"]: d for d in out["sophia-ingress-60-ingresses.yaml"]}
    master = ingresses["www-sophia-intel-ai-master"]
    assert master["metadata"]["annotations"]["nginx.org/mergeable-ingress-type"] == "master"
    assert master["spec"]["tls"] == [{"hosts": ["www.sophia-intel.ai"], "secretName": "www-sophia-intel-ai-tls"}]
    research = ingresses["www-api-research"]
    ann = research["metadata"]["annotations"]
    assert ann["nginx.org/mergeable-ingress-type"] == "minion"
    assert ann["nginx.org/proxy-read-timeout"] == "300s" and ann["nginx.org/client-max-body-size"] == "10m"
    path = research["spec"]["rules"][0]["http"]["paths"][0]
    assert path["path"] == "/api/research"
    assert path["backend"]["service"] == {"name": "mcp-research", "port": {"number": 8080}}
    assert ingresses["www-root"]["metadata"]["annotations"]["nginx.org/websocket-services"] == "sophia-dashboard"
    assert ingresses["www-api-mcp"]["metadata"]["annotations"]["nginx.org/proxy-buffering"] == "False"
    orchestrator = ingresses["www-api-orchestrator"]["spec"]["rules"][0]["http"]["paths"][0]
    assert orchestrator["backend"]["service"]["name"] == "orchestrator"
    secrets = {d["metadata"]["name"]: d for d in out["sophia-ingress-40-tls-secrets.yaml"]}
    assert sorted(secrets) == ["api-sophia-intel-ai-tls", "www-sophia-intel-ai-tls"]
    secret = secrets["www-sophia-intel-ai-tls"]
    assert secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["tls.key"]).decode() == KEY
    assert base64.b64decode(secret["data"]["tls.crt"]) == PKI.fullchain(WWW)  # the full chain, as served
    # every Secret an Ingress references exists, and every imported Secret is referenced
    referenced = {t["secretName"] for d in out["sophia-ingress-60-ingresses.yaml"] for t in d["spec"].get("tls", [])}
    assert referenced == set(secrets)


def test_secrets_never_in_output(f5):
    _tmp, first, check = f5
    for res in (first, check):
        assert KEY_BODY not in res.stdout + res.stderr
        assert base64.b64encode(KEY.encode()).decode()[:40] not in res.stdout + res.stderr


def test_community_controller_needs_acknowledgement(tmp_path):
    res = run_role(tmp_path, {"ingress_certs_controller": "ingress-nginx"})
    assert res.returncode != 0 and "ingress_certs_ack_retired_ingress_nginx" in res.stdout
    res = run_role(tmp_path, {"ingress_certs_controller": "ingress-nginx",
                              "ingress_certs_ack_retired_ingress_nginx": True})
    assert res.returncode == 0, res.stdout[-4000:]
    assert "WARNING ingress_certs: deploying the retired community ingress-nginx" in res.stdout
    validate(tmp_path / "staging")
    out = docs(tmp_path / "staging")
    assert out["sophia-ingress-10-controller.yaml"][0]["spec"]["chart"] == "ingress-nginx"
    ingresses = {d["metadata"]["name"]: d for d in out["sophia-ingress-60-ingresses.yaml"]}
    ann = ingresses["www-api-memory"]["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert ann["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert not any(k.startswith("nginx.org/") for d in ingresses.values() for k in d["metadata"]["annotations"])
    issuers = out["sophia-ingress-30-cluster-issuers.yaml"]
    assert all("ingressTemplate" not in i["spec"]["acme"]["solvers"][0]["http01"]["ingress"] for i in issuers)
    assert ingresses["www-api-memory"]["spec"]["tls"][0]["secretName"] == "www-sophia-intel-ai-tls"


def test_traefik_is_configured_not_replaced(tmp_path):
    res = run_role(tmp_path, {"ingress_certs_controller": "traefik", "ingress_certs_http_port": 8080,
                              "ingress_certs_tls_from_edge": False})
    assert res.returncode == 0, res.stdout[-4000:]
    validate(tmp_path / "staging")
    out = docs(tmp_path / "staging")
    hcc = out["sophia-ingress-10-controller.yaml"][0]
    assert hcc["kind"] == "HelmChartConfig" and hcc["metadata"]["name"] == "traefik"
    assert yaml.safe_load(hcc["spec"]["valuesContent"])["ports"]["web"]["exposedPort"] == 8080
    assert "traefik.yaml.skip" not in os.listdir(tmp_path / "k3s-manifests")
    assert "sophia-ingress-40-tls-secrets.yaml" not in os.listdir(tmp_path / "staging")
    classes = {d["spec"]["ingressClassName"] for d in out["sophia-ingress-60-ingresses.yaml"]}
    assert classes == {"traefik"}


def test_production_refused_without_permission(tmp_path):
    res = run_role(tmp_path, {"ingress_certs_issuance_stage": "production"})
    assert res.returncode != 0 and "ingress_certs_allow_production" in res.stdout
    assert not (tmp_path / "staging").exists()


def test_unmapped_ip_upstream_is_refused_with_the_fix(tmp_path):
    res = run_role(tmp_path, {"ingress_certs_service_map": {}})
    assert res.returncode != 0
    assert "www-api-orchestrator" in res.stdout and "127.0.0.1:8000" in res.stdout
    assert "ingress_certs_service_map" in res.stdout


HOSTILE_CONF = os.path.join(ROOT, "tests", "fixtures", "nginx", "hostile", "nginx.conf")


def test_hostile_nginx_config_adds_no_rule(tmp_path):
    """Newline-injected server_name and location paths, regex and wildcard-suffix names: no extra rule, all valid."""
    res = run_role(tmp_path, {"ingress_certs_nginx_config": HOSTILE_CONF, "ingress_certs_tls_import": [],
                              "ingress_certs_service_map": {}})
    assert res.returncode == 0, res.stdout[-4000:]
    assert "not valid for an Ingress" in res.stdout and "app.*" in res.stdout  # the rejections are shown
    validate(tmp_path / "staging")
    for name in os.listdir(tmp_path / "staging"):
        text = (tmp_path / "staging" / name).read_text()
        assert "kube-dns" not in text and "hijack" not in text and "injected" not in text
    ingresses = docs(tmp_path / "staging")["sophia-ingress-60-ingresses.yaml"]
    rules = [(d["metadata"]["name"], r.get("host"), p["path"], p["backend"]["service"]["name"])
             for d in ingresses for r in d["spec"]["rules"] for p in (r.get("http") or {}).get("paths", [])]
    assert sorted(rules) == [("ok-api", "ok.example.com", "/api/", "app"), ("ok-root", "ok.example.com", "/", "app"),
                             ("wildcard-root", "*.wild.example.com", "/", "app")]
    masters = sorted((d["metadata"]["name"], d["spec"]["rules"]) for d in ingresses
                     if d["metadata"]["name"].endswith("-master"))
    assert masters == [("ok-example-com-master", [{"host": "ok.example.com"}]),
                       ("wildcard-wild-example-com-master", [{"host": "*.wild.example.com"}])]


def test_a_given_route_list_is_checked_before_rendering(tmp_path):
    route = {"name": "www-admin", "host": "www.example.com\n      http: {}\n    - host: hijack.example.com",
             "path": "/admin", "path_type": "Prefix", "tls": False, "upstreams": ["app:8000"]}
    res = run_role(tmp_path, {"ingress_certs_nginx_config": "", "ingress_certs_routes": [route],
                              "ingress_certs_tls_import": []})
    assert res.returncode != 0
    assert 'route "www-admin" has host "www.example.com\\n      http: {}' in res.stdout, res.stdout[-3000:]
    assert not (tmp_path / "staging").exists()


# --- continuity: the certificates nginx-proxy serves become the Secrets the Ingresses reference (issue 21) -------
def test_imported_secrets_at_vvv_community_controller(tmp_path):
    """Found from the edge's configuration, read, checked, rendered 0600: the key never shows, even at -vvv."""
    res = run_role(tmp_path, {"ingress_certs_controller": "ingress-nginx",
                              "ingress_certs_ack_retired_ingress_nginx": True}, verbosity=3)
    assert res.returncode == 0, res.stdout[-4000:]
    out = res.stdout + res.stderr
    assert KEY_BODY not in out and API.key_pem.decode().splitlines()[1] not in out
    for key in (WWW.key_pem, API.key_pem):
        assert base64.b64encode(key).decode()[:40] not in out
    assert "www.sophia-intel.ai www-sophia-intel-ai-tls" in out  # the import is reported, by host and Secret
    path = tmp_path / "staging" / "sophia-ingress-40-tls-secrets.yaml"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not (tmp_path / "k3s-manifests" / "sophia-ingress-40-tls-secrets.yaml").exists()
    validate(tmp_path / "staging")
    manifests = docs(tmp_path / "staging")
    secrets = {d["metadata"]["name"]: d for d in manifests["sophia-ingress-40-tls-secrets.yaml"]}
    referenced = {t["secretName"] for d in manifests["sophia-ingress-60-ingresses.yaml"]
                  for t in d["spec"].get("tls", [])}
    assert referenced == set(secrets) == {"www-sophia-intel-ai-tls", "api-sophia-intel-ai-tls"}
    assert base64.b64decode(secrets["api-sophia-intel-ai-tls"]["data"]["tls.crt"]) == PKI.fullchain(API)
    assert secrets["api-sophia-intel-ai-tls"]["metadata"]["annotations"]["sophia.migrate/imported-from"] == \
        str(tmp_path / "le" / "live" / "api.sophia-intel.ai" / "fullchain.pem")


def secret_object(name: str, issued, certificate_name: str = "") -> dict:
    annotations = {"cert-manager.io/certificate-name": certificate_name} if certificate_name else {}
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": "sophia", "annotations": annotations},
            "data": {"tls.crt": base64.b64encode(PKI.fullchain(issued)).decode(),
                     "tls.key": base64.b64encode(issued.key_pem).decode()}}


def test_imported_secrets_go_through_the_api_and_never_over_an_issued_one(tmp_path):
    """The imported Secrets are written through the Kubernetes API (stand-in: tests/support/kube_api.py, answering as
    the API server does for core/v1 Secrets and Namespaces), never through the auto-deploy directory, whose files K3s
    applies again at every start. A later run leaves a Secret cert-manager issued into as it is, updates one imported
    earlier when certbot renewed nginx-proxy's certificate, and then writes nothing."""
    api = KubeApi()
    try:
        missing = {"ingress_certs_tls_apply": True, "ingress_certs_kubeconfig": str(tmp_path / "no-kubeconfig")}
        before_k3s = run_role(tmp_path, missing, check=True)  # the first --check, before K3s ever started: passes
        assert before_k3s.returncode == 0 and api.writes == [], before_k3s.stdout[-3000:]
        refused = run_role(tmp_path, missing)  # a real run without the kubeconfig: stops, naming it
        assert refused.returncode != 0 and "Module failed" not in refused.stdout
        assert f"ingress_certs: {tmp_path / 'no-kubeconfig'} is not on localhost" in " ".join(refused.stdout.split())
        extra = {"ingress_certs_tls_apply": True, "ingress_certs_kubeconfig": api.kubeconfig(str(tmp_path / "kube"))}
        stale = tmp_path / "k3s-manifests" / "sophia-ingress-40-tls-secrets.yaml"  # where an earlier version put them
        stale.parent.mkdir()
        stale.write_text("# imported Secrets, applied by K3s at every start\n")
        first = run_role(tmp_path, extra)
        assert first.returncode == 0, first.stdout[-4000:]
        assert sorted(api.writes) == [("POST", "namespaces", "sophia"), ("POST", "secrets", "api-sophia-intel-ai-tls"),
                                      ("POST", "secrets", "www-sophia-intel-ai-tls")]
        assert not stale.exists()
        www = api.objects[("secrets", "sophia", "www-sophia-intel-ai-tls")]
        assert base64.b64decode(www["data"]["tls.crt"]) == PKI.fullchain(WWW)
        assert base64.b64decode(www["data"]["tls.key"]) == WWW.key_pem
        assert KEY_BODY not in first.stdout + first.stderr

        # cert-manager issues www's certificate into its Secret; certbot renews api's on the Compose side
        issued = PKI.leaf(["www.sophia-intel.ai"], days=(0, 90))
        api.put_object("secrets", "sophia", secret_object("www-sophia-intel-ai-tls", issued, "www-sophia-intel-ai"))
        renewed = PKI.leaf(["api.sophia-intel.ai"], days=(0, 120))
        write_edge_certificates(tmp_path, api=renewed)
        api.writes.clear()
        second = run_role(tmp_path, extra)
        assert second.returncode == 0, second.stdout[-4000:]
        assert api.writes == [("PUT", "secrets", "api-sophia-intel-ai-tls")], second.stdout[-3000:]
        out = " ".join(second.stdout.split())
        kept = "keep www-sophia-intel-ai-tls issued by cert-manager (Certificate www-sophia-intel-ai)"
        assert kept in out, out[-3000:]
        assert "write api-sophia-intel-ai-tls update nginx-proxy serves another certificate now" in out
        www = api.objects[("secrets", "sophia", "www-sophia-intel-ai-tls")]
        assert base64.b64decode(www["data"]["tls.crt"]) == PKI.fullchain(issued)  # never put back
        assert base64.b64decode(api.objects[("secrets", "sophia", "api-sophia-intel-ai-tls")]["data"]["tls.crt"]) \
            == PKI.fullchain(renewed)

        api.writes.clear()
        third = run_role(tmp_path, extra)
        assert third.returncode == 0 and api.writes == [] and changed(third.stdout) == 0, third.stdout[-3000:]
        assert "keep api-sophia-intel-ai-tls holds this certificate already" in " ".join(third.stdout.split())
    finally:
        api.close()


def staging_certificate(host: str, ready: bool, **status) -> dict:
    """A staging Certificate as cert-manager keeps it (cert-manager.io/v1 status: Ready condition, notAfter)."""
    base = host.replace(".", "-")
    condition = {"type": "Ready", "status": "True" if ready else "False",
                 "reason": "Ready" if ready else "Failed",
                 "message": "Certificate is up to date and has not expired" if ready
                 else "The certificate request has failed to complete and will be retried"}
    return {"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": f"{base}-staging", "namespace": "sophia"},
            "spec": {"secretName": f"{base}-tls-staging", "dnsNames": [host],
                     "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "letsencrypt-staging"}},
            "status": {"conditions": [condition], **status}}


def test_production_orders_only_after_a_ready_staging_certificate_with_the_state_in_the_ledger(tmp_path):
    """Production Certificates are rendered only for hosts whose staging Certificate is Ready (read through the API
    stand-in, tests/support/kube_api.py, which serves cert-manager.io/v1 Certificates as the API server does); the
    other host is named with cert-manager's reason and waits. Each order's state goes to the ledger, once."""
    production = {"ingress_certs_issuance_stage": "production", "ingress_certs_allow_production": True,
                  "ingress_certs_dns_check": False, "ingress_certs_dns_expected_addresses": ["192.0.2.10"],
                  "ingress_certs_ledger_path": str(tmp_path / "ledger.json")}
    blind = run_role(tmp_path, production)  # tls_apply false: the staging certificates cannot be read
    assert blind.returncode != 0 and "Module failed" not in blind.stdout
    assert "this run does not read the cluster (ingress_certs_tls_apply=false" in " ".join(blind.stdout.split())
    api = KubeApi()
    try:
        api.put_object("certificates", "sophia", staging_certificate("www.sophia-intel.ai", True,
                                                                     notAfter="2027-03-07T00:00:00Z"))
        api.put_object("certificates", "sophia", staging_certificate("api.sophia-intel.ai", False,
                                                                     failedIssuanceAttempts=1,
                                                                     lastFailureTime="2026-12-07T10:00:00Z"))
        extra = {**production, "ingress_certs_tls_apply": True,
                 "ingress_certs_kubeconfig": api.kubeconfig(str(tmp_path / "kube"))}
        first = run_role(tmp_path, extra)
        assert first.returncode == 0, first.stdout[-4000:]
        certificates = docs(tmp_path / "staging")["sophia-ingress-50-certificates.yaml"]
        issued = sorted((c["metadata"]["name"], c["spec"]["secretName"], c["spec"]["issuerRef"]["name"])
                        for c in certificates)
        assert issued == [("api-sophia-intel-ai-staging", "api-sophia-intel-ai-tls-staging", "letsencrypt-staging"),
                          ("www-sophia-intel-ai", "www-sophia-intel-ai-tls", "letsencrypt-production"),
                          ("www-sophia-intel-ai-staging", "www-sophia-intel-ai-tls-staging", "letsencrypt-staging")]
        out = " ".join(first.stdout.split())
        assert ("api.sophia-intel.ai: staging Certificate api-sophia-intel-ai-staging is not Ready: Failed: The "
                "certificate request has failed to complete") in out, out[-3000:]
        with open(tmp_path / "ledger.json") as handle:
            entries = [e for e in json.load(handle)["entries"] if e["step"].startswith("certificate/")]
        state = {e["step"]: (e["status"], e["data"]["stage"], e["data"]["not_after"]) for e in entries}
        assert state == {"certificate/www-sophia-intel-ai-staging": ("done", "staging", "2027-03-07T00:00:00Z"),
                         "certificate/api-sophia-intel-ai-staging": ("failed", "staging", "")}
        again = run_role(tmp_path, extra)
        assert again.returncode == 0 and changed(again.stdout) == 0, again.stdout[-3000:]
        with open(tmp_path / "ledger.json") as handle:
            assert len([e for e in json.load(handle)["entries"] if e["step"].startswith("certificate/")]) == 2
    finally:
        api.close()


def test_missing_certificate_file_refused_by_name_before_anything_is_written(tmp_path):
    write_edge_certificates(tmp_path)
    os.unlink(tmp_path / "le" / "live" / "api.sophia-intel.ai" / "fullchain.pem")
    res = run_role(tmp_path)
    assert res.returncode != 0
    path = tmp_path / "le" / "live" / "api.sophia-intel.ai" / "fullchain.pem"
    assert f"certificate file {path}" in res.stdout and "does not exist" in res.stdout, res.stdout[-3000:]
    assert not (tmp_path / "staging").exists()


def test_expired_certificate_refused_with_its_dates(tmp_path):
    old = PKI.leaf(["www.sophia-intel.ai"], days=(-200, -3))
    write_edge_certificates(tmp_path, www=old)
    res = run_role(tmp_path)
    assert res.returncode != 0
    before = old.cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    after = old.cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"expired (notBefore {before}, notAfter {after})" in res.stdout, res.stdout[-3000:]
    assert "www.sophia-intel.ai/fullchain.pem" in res.stdout
    assert not (tmp_path / "staging").exists()


def test_challenge_path_of_every_tls_host_is_forwarded_to_k3s_and_taken_out_again(tmp_path):
    """With ingress_certs_acme_forward_target, the role edits nginx-proxy's own configuration (the Sophia fixture: a
    :80 server with certbot's webroot for www, none for api, which that server answers as the first on the port):
    the webroot is kept, the tokens it lacks go to K3s, nginx-proxy is reloaded once; state=absent gives every file
    back byte for byte."""
    edge = tmp_path / "edge"
    shutil.copytree(os.path.dirname(NGINX_CONF), edge)
    before = {p.name: p.read_text() for p in (edge / "conf.d").iterdir()}
    forward = {"ingress_certs_nginx_config": str(edge / "nginx.conf"),
               "ingress_certs_acme_forward_target": "172.17.0.1:30080",
               "ingress_certs_edge_reload_command": ["touch", str(tmp_path / "reloaded")],
               "ingress_certs_install": False}
    out = run_role(tmp_path, forward)
    assert out.returncode == 0, out.stdout[-4000:]
    assert "Module failed" not in out.stdout
    www = (edge / "conf.d" / "sophia-www.conf").read_text()
    assert www.count("try_files $uri @sophia_acme_k3s;") == 1 and www.count("proxy_pass http://172.17.0.1:30080;") == 1
    assert "root /var/www/certbot;" in www  # certbot's renewals keep their webroot
    assert (edge / "conf.d" / "sophia-api.conf").read_text() == before["sophia-api.conf"]
    assert (tmp_path / "reloaded").exists()
    assert "api.sophia-intel.ai -> 172.17.0.1:30080 (present)" in out.stdout

    back = run_role(tmp_path, {**forward, "ingress_certs_acme_forward_state": "absent"})
    assert back.returncode == 0, back.stdout[-4000:]
    assert {p.name: p.read_text() for p in (edge / "conf.d").glob("*.conf")} == before
    assert len(list((edge / "conf.d").glob("sophia-www.conf.*~"))) == 2  # a backup before each write
