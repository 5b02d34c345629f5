"""tls_check against real TLS servers on loopback (Python's ssl server in a thread) serving real generated certificates.

Each failure a client would see is named in the target's reasons: a good certificate passes; a wrong host name, an
expired certificate, an untrusted (self-signed) one, an unexpected fingerprint, a refused connection and a server
that never answers the handshake each fail with their own reason, and the module fails naming them unless
report_only.
"""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives import hashes
from unit.tls import certgen

from ansible_collections.sophia.migrate.plugins.modules import tls_check
from support.modules import run_module
from support.servers import free_port
from support.tls_servers import TlsServer

WWW = "www.sophia-intel.ai"


@pytest.fixture(scope="module")
def pki():
    return certgen.Pki()


@pytest.fixture(scope="module")
def servers(tmp_path_factory, pki):
    tmp = tmp_path_factory.mktemp("tls")
    good = pki.leaf([WWW, "sophia-intel.ai"])
    expired = pki.leaf([WWW], days=(-120, -2))
    own = certgen.self_signed([WWW])
    started = {
        "good": TlsServer(tmp, "good", pki.fullchain(good), good.key_pem),
        "expired": TlsServer(tmp, "expired", pki.fullchain(expired), expired.key_pem),
        "self_signed": TlsServer(tmp, "self", own.pem, own.key_pem),
    }
    yield {"pki": pki, "bundle": pki.bundle(tmp / "ca.pem"), "good_cert": good, "expired_cert": expired,
           **started}
    for server in started.values():
        server.close()


def check(capsys, servers, targets, **extra):
    return run_module(tls_check, {"targets": targets, "ca_bundle": servers["bundle"], **extra}, capsys)


def target(servers, name, host=WWW, **extra):
    return {"host": host, "address": "127.0.0.1", "port": servers[name].port, **extra}


def test_good_certificate_passes_every_check(capsys, servers):
    fingerprint = ":".join(f"{b:02X}" for b in servers["good_cert"].cert.fingerprint(hashes.SHA256()))
    res = check(capsys, servers, [target(servers, "good", expect_sha256=fingerprint,
                                         expect_issuer="Sophia test intermediate")])
    assert not res.get("failed"), res.get("msg")
    (result,) = res["results"]
    assert result["verdict"] == "pass" and result["reasons"] == []
    assert result["checks"] == {"connect": True, "chain": True, "hostname": True, "expiry": True, "expected": True}
    assert result["certificate"]["dns_names"] == [WWW, "sophia-intel.ai"]
    assert servers["good"].sni[-1] == WWW  # the name was sent as SNI
    # a name covered by the certificate, other than the first, passes too
    res = check(capsys, servers, [target(servers, "good", host="sophia-intel.ai")])
    assert res["passed"], res.get("msg")


def test_wrong_host_name(capsys, servers):
    res = check(capsys, servers, [target(servers, "good", host="api.sophia-intel.ai")])
    assert res["failed"] and res["failed_hosts"] == [f"api.sophia-intel.ai@127.0.0.1:{servers['good'].port}"]
    (result,) = res["results"]
    assert result["checks"]["hostname"] is False and result["checks"]["chain"] is True
    assert result["reasons"] == ["host name mismatch: the certificate is for www.sophia-intel.ai, sophia-intel.ai, "
                                 "not api.sophia-intel.ai"]
    assert "host name mismatch" in res["msg"]


def test_expired(capsys, servers):
    res = check(capsys, servers, [target(servers, "expired")])
    (result,) = res["results"]
    cert = servers["expired_cert"].cert
    assert result["reasons"] == [
        f"expired: notBefore {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}, "
        f"notAfter {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ} (2 days ago)"]
    assert result["checks"]["expiry"] is False and result["checks"]["chain"] is True
    assert res["failed"] and "expired: notBefore" in res["msg"]


def test_expiring_within_the_threshold(capsys, servers):
    res = check(capsys, servers, [target(servers, "good")], min_days=120)
    (result,) = res["results"]
    assert res["failed"] and result["checks"]["expiry"] is False
    assert result["reasons"][0].startswith("expires soon: 8") and "fewer than 120" in result["reasons"][0]


def test_untrusted_self_signed_certificate(capsys, servers):
    res = check(capsys, servers, [target(servers, "self_signed")])
    (result,) = res["results"]
    assert result["checks"]["chain"] is False and result["checks"]["hostname"] is True
    assert len(result["reasons"]) == 1 and result["reasons"][0].startswith(
        f"untrusted: the chain does not verify against the CA bundle {servers['bundle']} (self-signed certificate")
    assert result["certificate"]["self_signed"] is True


def test_chain_not_trusted_without_its_root(capsys, servers, tmp_path):
    other = certgen.Pki().bundle(tmp_path / "other.pem")
    res = run_module(tls_check, {"targets": [target(servers, "good")], "ca_bundle": other}, capsys)
    (result,) = res["results"]
    assert result["reasons"][0].startswith("untrusted:") and "unable to get local issuer certificate" in \
        result["reasons"][0]


def test_unexpected_fingerprint_and_issuer(capsys, servers):
    res = check(capsys, servers, [target(servers, "good", expect_sha256="00" * 32, expect_issuer="R11")])
    (result,) = res["results"]
    assert result["checks"]["expected"] is False
    assert result["reasons"] == [
        f"unexpected certificate: sha256 {result['certificate']['sha256']}, expected {'00' * 32}",
        "unexpected issuer: O=Sophia test,CN=Sophia test intermediate, expected R11"]


def test_connection_refused(capsys, servers):
    port = free_port()
    res = check(capsys, servers, [{"host": WWW, "address": "127.0.0.1", "port": port}])
    (result,) = res["results"]
    assert result["reasons"] == [f"connection refused (127.0.0.1:{port})"]
    assert result["checks"]["connect"] is False and result["verdict"] == "fail"


def test_all_at_once_report_only_names_each(capsys, servers):
    targets = [target(servers, "good"), target(servers, "good", host="api.sophia-intel.ai"),
               target(servers, "expired"), target(servers, "self_signed"),
               target(servers, "good", expect_sha256="ab" * 32), {"host": WWW, "address": "127.0.0.1", "port": 1}]
    res = check(capsys, servers, targets, report_only=True)
    assert not res.get("failed") and res["passed"] is False
    first = [r["reasons"][0].split(":")[0] if r["reasons"] else "pass" for r in res["results"]]
    assert first == ["pass", "host name mismatch", "expired", "untrusted", "unexpected certificate",
                     "connection refused (127.0.0.1"]
    assert len(res["failed_hosts"]) == 5


def test_bad_inputs_are_clean_failures(capsys, servers, tmp_path):
    res = check(capsys, servers, [{"host": "a b", "port": 443}])
    assert res["failed"] and res["msg"].startswith("tls_check: targets[0].host must be a DNS name")
    res = check(capsys, servers, [{"host": WWW, "expect_sha256": "xyz"}])
    assert res["failed"] and "targets[0].expect_sha256 must be a SHA-256 fingerprint" in res["msg"]
    (tmp_path / "garbage.pem").write_text("not a bundle\n")
    res = run_module(tls_check, {"targets": [target(servers, "good")], "ca_bundle": str(tmp_path / "garbage.pem")},
                     capsys)
    assert res["failed"] and res["msg"].startswith("tls_check: www.sophia-intel.ai:"), res


def test_a_server_that_never_answers_the_handshake_is_a_timeout_within_the_bound(capsys, servers, tmp_path):
    # TCP accepted, the ClientHello never answered: the whole check (connection and handshake) ends at its timeout
    hung = TlsServer(tmp_path, "hung", servers["pki"].fullchain(servers["good_cert"]), servers["good_cert"].key_pem)
    hung.hang = True
    try:
        start = time.monotonic()
        res = check(capsys, servers, [{"host": WWW, "address": "127.0.0.1", "port": hung.port}], timeout=1.0)
        elapsed = time.monotonic() - start
    finally:
        hung.close()
    (result,) = res["results"]
    assert result["reasons"] == [f"TLS handshake timed out (127.0.0.1:{hung.port}): the connection was accepted, "
                                 "the handshake did not finish within 1s"]
    assert result["checks"]["connect"] is False and res["failed"]
    assert 0.9 <= elapsed <= 1.0 + 0.3, elapsed
