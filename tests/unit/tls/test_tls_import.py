"""tls_import: the certificates nginx-proxy serves, found per host, read, and checked before they become Secrets.

Real certificates made in the test (root -> intermediate -> leaf, cryptography); the module runs in-process.
"""

from __future__ import annotations

import base64
import json
import os

import pytest
from cryptography.hazmat.primitives import serialization
from unit.tls import certgen

from ansible_collections.sophia.migrate.plugins.modules import tls_import
from support.modules import run_module

WWW, API = "www.sophia-intel.ai", "api.sophia-intel.ai"


@pytest.fixture(scope="module")
def pki():
    return certgen.Pki()


def server(name, cert, key, line=1, tls=True):
    return {"names": [name], "ports": [443], "tls": tls, "ssl_certificate": cert, "ssl_certificate_key": key,
            "file": "/etc/nginx/conf.d/site.conf", "line": line}


def read(paths):
    """What the role's slurp step gives the module: contents of the files that exist, errors for the others."""
    contents, errors = {}, {}
    for path in paths:
        if os.path.exists(path):
            with open(path, "rb") as handle:
                contents[path] = base64.b64encode(handle.read()).decode()
        else:
            errors[path] = f"file not found: {path}"
    return contents, errors


def run(capsys, hosts, servers, tmp_path, ca_bundle, **extra):
    args = {"hosts": hosts, "servers": servers, "path_map": {"/etc/letsencrypt": str(tmp_path / "le")},
            "prefix": str(tmp_path / "nginx"), **extra}
    planned = run_module(tls_import, args, capsys)
    assert not planned.get("failed"), planned
    contents, errors = read(planned["files"])
    return planned, run_module(tls_import, {**args, "contents": contents, "read_errors": errors,
                                            "ca_bundle": ca_bundle}, capsys)


def edge(tmp_path, pki, www=None, api=None, chain=True):
    """Two hosts served by nginx-proxy with certificates under /etc/letsencrypt (mapped into tmp_path/le)."""
    www = www or pki.leaf([WWW, "sophia-intel.ai"])
    api = api or pki.leaf([API])
    pki.write(tmp_path / "le" / "live" / WWW, www, chain)
    pki.write(tmp_path / "le" / "live" / API, api, chain)
    return [server(WWW, f"/etc/letsencrypt/live/{WWW}/fullchain.pem", f"/etc/letsencrypt/live/{WWW}/privkey.pem", 5),
            server(API, f"/etc/letsencrypt/live/{API}/fullchain.pem", f"/etc/letsencrypt/live/{API}/privkey.pem", 20)]


def test_happy_path_names_paths_chain_and_no_key_in_output(capsys, tmp_path, pki):
    servers = edge(tmp_path, pki)
    planned, res = run(capsys, [WWW, API], servers, tmp_path, pki.bundle(tmp_path / "ca.pem"))
    assert not res.get("failed"), res.get("msg", res)
    assert [(s["host"], s["name"]) for s in planned["secrets"]] == [(WWW, "www-sophia-intel-ai-tls"),
                                                                    (API, "api-sophia-intel-ai-tls")]
    assert planned["secrets"][0]["cert_file"] == str(tmp_path / "le" / "live" / WWW / "fullchain.pem")
    assert planned["secrets"][0]["source"] == f"server {WWW} (/etc/nginx/conf.d/site.conf:5)"
    www = res["certificates"][0]
    assert www["chain"] == ["O=Sophia test,CN=www.sophia-intel.ai", "O=Sophia test,CN=Sophia test intermediate"]
    assert www["dns_names"] == [WWW, "sophia-intel.ai"] and 88 <= www["days_left"] <= 90
    assert res["problems"] == [] and res["missing"] == []
    text = json.dumps(res) + json.dumps(planned)
    assert "PRIVATE KEY" not in text
    for path in planned["files"]:
        with open(path, "rb") as handle:
            assert base64.b64encode(handle.read()).decode()[:60] not in text


def test_missing_file_refused_by_name(capsys, tmp_path, pki):
    servers = edge(tmp_path, pki)
    os.unlink(tmp_path / "le" / "live" / API / "privkey.pem")
    _planned, res = run(capsys, [WWW, API], servers, tmp_path, pki.bundle(tmp_path / "ca.pem"))
    assert res["failed"]
    expected = (f"key file {tmp_path}/le/live/{API}/privkey.pem (server {API} (/etc/nginx/conf.d/site.conf:20)) "
                "does not exist")
    assert expected in res["msg"], res["msg"]
    assert [p["host"] for p in res["problems"]] == [API]


def test_expired_certificate_refused_with_its_dates(capsys, tmp_path, pki):
    old = pki.leaf([WWW], days=(-400, -10))
    servers = edge(tmp_path, pki, www=old)
    _planned, res = run(capsys, [WWW, API], servers, tmp_path, pki.bundle(tmp_path / "ca.pem"))
    assert res["failed"]
    before = old.cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    after = old.cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"certificate file {tmp_path}/le/live/{WWW}/fullchain.pem" in res["msg"]
    assert f"expired (notBefore {before}, notAfter {after})" in res["msg"], res["msg"]


def test_key_of_another_certificate_refused(capsys, tmp_path, pki):
    servers = edge(tmp_path, pki)
    other = pki.leaf([WWW])
    (tmp_path / "le" / "live" / WWW / "privkey.pem").write_bytes(other.key_pem)
    _planned, res = run(capsys, [WWW, API], servers, tmp_path, pki.bundle(tmp_path / "ca.pem"))
    assert res["failed"]
    assert f"key file {tmp_path}/le/live/{WWW}/privkey.pem does not match the certificate" in res["msg"], res["msg"]


def test_incomplete_chain_refused(capsys, tmp_path, pki):
    servers = edge(tmp_path, pki, chain=False)  # leaf only: the intermediate is missing
    _planned, res = run(capsys, [WWW], servers, tmp_path, pki.bundle(tmp_path / "ca.pem"))
    assert res["failed"]
    assert "the chain is incomplete: it ends at O=Sophia test,CN=www.sophia-intel.ai, issued by O=Sophia test," \
           "CN=Sophia test intermediate" in res["msg"], res["msg"]


def test_chain_to_a_ca_outside_the_bundle_refused(capsys, tmp_path, pki):
    servers = edge(tmp_path, pki)
    _planned, res = run(capsys, [WWW], servers, tmp_path, certgen.Pki().bundle(tmp_path / "other-ca.pem"))
    assert res["failed"] and "neither in the file nor a CA of the CA bundle" in res["msg"]


def test_certificate_for_another_host_refused(capsys, tmp_path, pki):
    servers = edge(tmp_path, pki, api=pki.leaf(["docs.sophia-intel.ai"]))
    _planned, res = run(capsys, [WWW, API], servers, tmp_path, pki.bundle(tmp_path / "ca.pem"))
    assert res["failed"]
    assert f"is not valid for {API} (it names docs.sophia-intel.ai)" in res["msg"], res["msg"]


def test_host_without_certificate_reported_and_refused_unless_allowed(capsys, tmp_path, pki):
    servers = edge(tmp_path, pki)
    servers.append(server("docs.sophia-intel.ai", "", "", 40))  # listen 443 ssl, no ssl_certificate in the block
    planned, res = run(capsys, [WWW, API, "docs.sophia-intel.ai"], servers, tmp_path, pki.bundle(tmp_path / "ca.pem"))
    assert planned["missing"] == [{
        "host": "docs.sophia-intel.ai", "secret": "docs-sophia-intel-ai-tls",
        "reason": "server docs.sophia-intel.ai (/etc/nginx/conf.d/site.conf:40) has no ssl_certificate in its "
                  "server block (inherited from http, or set in an include that was not read); give its files in "
                  "certificates (ingress_certs_tls_import in the role)"}]
    assert res["failed"] and "docs.sophia-intel.ai (Secret docs-sophia-intel-ai-tls)" in res["msg"]
    _planned, res = run(capsys, [WWW, API, "docs.sophia-intel.ai"], servers, tmp_path,
                        pki.bundle(tmp_path / "ca.pem"), fail_on_missing=False)
    assert not res.get("failed") and [c["host"] for c in res["certificates"]] == [WWW, API]
    assert res["missing"][0]["host"] == "docs.sophia-intel.ai"


def test_explicit_entry_wins_and_relative_paths_use_the_prefix(capsys, tmp_path, pki):
    servers = edge(tmp_path, pki)
    pki.write(tmp_path / "nginx" / "certs", pki.leaf([API]))
    servers[1] = server(API, "certs/fullchain.pem", "certs/privkey.pem", 20)
    explicit = pki.write(tmp_path / "explicit", pki.leaf([WWW]))
    planned, res = run(capsys, [WWW, API], servers, tmp_path, pki.bundle(tmp_path / "ca.pem"),
                       certificates=[{"host": WWW, "cert_file": explicit[0], "key_file": explicit[1]}])
    assert not res.get("failed"), res.get("msg")
    assert [s["cert_file"] for s in planned["secrets"]] == [explicit[0], str(tmp_path / "nginx/certs/fullchain.pem")]


def test_certificate_path_with_variables_is_refused_by_name(capsys, tmp_path, pki):
    servers = [server(WWW, "/etc/letsencrypt/live/$ssl_server_name/fullchain.pem", "/k.pem")]
    res = run_module(tls_import, {"hosts": [WWW], "servers": servers, "contents": {}}, capsys)
    assert res["failed"] and "ssl_certificate /etc/letsencrypt/live/$ssl_server_name/fullchain.pem is chosen at " \
                             "run time" in res["msg"]


def test_encrypted_key_and_garbage_refused(capsys, tmp_path, pki):
    servers = edge(tmp_path, pki)
    issued = pki.leaf([WWW])
    pki.write(tmp_path / "le" / "live" / WWW, issued)
    (tmp_path / "le" / "live" / WWW / "privkey.pem").write_bytes(issued.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")))
    (tmp_path / "le" / "live" / API / "fullchain.pem").write_bytes(b"not a certificate\n")
    _planned, res = run(capsys, [WWW, API], servers, tmp_path, pki.bundle(tmp_path / "ca.pem"))
    assert res["failed"]
    assert f"key file {tmp_path}/le/live/{WWW}/privkey.pem holds an encrypted private key" in res["msg"]
    assert f"certificate file {tmp_path}/le/live/{API}/fullchain.pem holds no PEM certificate" in res["msg"]


def test_bad_servers_entry_is_a_clean_failure(capsys):
    res = run_module(tls_import, {"hosts": [WWW], "servers": [{"names": "www", "tls": True}]}, capsys)
    assert res["failed"] and res["msg"] == "tls_import: servers[0].names must be a list of server names"


def test_host_of_a_given_route_list_without_edge_configuration(capsys):
    res = run_module(tls_import, {"hosts": [WWW], "contents": {}}, capsys)
    assert res["failed"] and res["missing"][0]["reason"] == (
        "no nginx-proxy configuration was read (no servers given); give its files in certificates "
        "(ingress_certs_tls_import in the role)")


# --- which Secrets to write, given what the cluster has (option existing) ------------------------------------------
def live(name, pki, cert, issued_by=""):
    """A Secret as the role reduces kubernetes.core.k8s_info's object: name, cert-manager's annotation, tls.crt."""
    return {"name": name, "issued_by": issued_by, "certificate": base64.b64encode(pki.fullchain(cert)).decode()}


def test_without_existing_every_secret_is_written(capsys, tmp_path, pki):
    _planned, res = run(capsys, [WWW, API], edge(tmp_path, pki), tmp_path, pki.bundle(tmp_path / "ca.pem"))
    assert [(a["secret"], a["action"]) for a in res["apply"]] == [("www-sophia-intel-ai-tls", "write"),
                                                                  ("api-sophia-intel-ai-tls", "write")]
    assert res["kept"] == []


def test_issued_secret_is_never_replaced_and_a_renewal_updates_an_imported_one(capsys, tmp_path, pki):
    www, api = pki.leaf([WWW]), pki.leaf([API], days=(0, 120))
    servers = edge(tmp_path, pki, www=www, api=api)
    older_api, issued = pki.leaf([API], days=(-30, 60)), pki.leaf([WWW], days=(0, 90))
    existing = [live("www-sophia-intel-ai-tls", pki, issued, issued_by="www-sophia-intel-ai"),
                live("api-sophia-intel-ai-tls", pki, older_api)]
    _planned, res = run(capsys, [WWW, API], servers, tmp_path, pki.bundle(tmp_path / "ca.pem"), existing=existing)
    assert not res.get("failed"), res
    assert [(a["secret"], a["action"]) for a in res["apply"]] == [("api-sophia-intel-ai-tls", "update")]
    assert "nginx-proxy serves another certificate now" in res["apply"][0]["reason"]
    reason = "issued by cert-manager (Certificate www-sophia-intel-ai): never replaced by the imported certificate"
    assert res["kept"] == [{"secret": "www-sophia-intel-ai-tls", "reason": reason}]


def test_absent_same_longer_lived_and_unreadable_secrets(capsys, tmp_path, pki):
    www, api = pki.leaf([WWW], days=(-1, 30)), pki.leaf([API])
    servers = edge(tmp_path, pki, www=www, api=api)
    longer = pki.leaf([WWW], days=(0, 80))  # someone put a certificate valid longer there: not replaced by ours
    existing = [live("www-sophia-intel-ai-tls", pki, longer)]
    _planned, res = run(capsys, [WWW, API], servers, tmp_path, pki.bundle(tmp_path / "ca.pem"), existing=existing)
    assert [(a["secret"], a["action"]) for a in res["apply"]] == [("api-sophia-intel-ai-tls", "create")]
    assert res["kept"][0]["secret"] == "www-sophia-intel-ai-tls" and "valid longer" in res["kept"][0]["reason"]
    same = [live("www-sophia-intel-ai-tls", pki, www), {"name": "api-sophia-intel-ai-tls", "certificate": "%%%"}]
    _planned, res = run(capsys, [WWW, API], servers, tmp_path, pki.bundle(tmp_path / "ca.pem"), existing=same)
    assert [(a["secret"], a["action"], a["reason"]) for a in res["apply"]] == [
        ("api-sophia-intel-ai-tls", "update", "the Secret holds no readable certificate")]
    assert res["kept"][0]["reason"].startswith("holds this certificate already")


def test_existing_entry_without_a_name_is_a_clean_failure(capsys, tmp_path, pki):
    res = run_module(tls_import, {"hosts": [WWW], "existing": [{"issued_by": "x"}]}, capsys)
    assert res["failed"] and "existing[0] must be a mapping with a non-empty text name" in res["msg"]
