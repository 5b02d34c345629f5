"""health_gate's tls probe against real TLS servers on loopback serving real generated certificates.

The probe judges what a client is served by tls_check's rules (``_tls.check_endpoint``): a good certificate passes
and its sample records the certificate (sha256, issuer, notAfter); a wrong name, an expired certificate, one
expiring within ``min_days``, a self-signed one, a chain whose root is not in the bundle, an unexpected fingerprint
or issuer and a refused connection each fail the gate with their own reason; a server that accepts the connection and
never answers the handshake fails the sample at the probe's timeout. Detection time within the gate's bound:
test_detection_time.py.
"""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives import hashes
from unit.tls import certgen

from ansible_collections.sophia.migrate.plugins.module_utils._health import FAILURE, SUCCESS
from ansible_collections.sophia.migrate.plugins.module_utils._health_probe_spec import normalize_probe
from ansible_collections.sophia.migrate.plugins.module_utils._health_probes import run_probe
from ansible_collections.sophia.migrate.plugins.modules import health_gate
from support.modules import run_module
from support.servers import free_port
from support.tls_servers import TlsServer

WWW = "www.sophia-intel.ai"
ISSUER = "O=Sophia test,CN=Sophia test intermediate"
JITTER = 0.3  # scheduling jitter on a loaded 2-core machine


def stamp(when) -> str:
    return f"{when:%Y-%m-%dT%H:%M:%SZ}"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls-probe")
    pki = certgen.Pki()
    certs = {
        "good": pki.leaf([WWW, "sophia-intel.ai"]),
        "expired": pki.leaf([WWW], days=(-120, -2)),
        "expiring": pki.leaf([WWW], days=(-80, 10)),
    }
    own = certgen.self_signed([WWW])
    started = {name: TlsServer(tmp, name, pki.fullchain(cert), cert.key_pem) for name, cert in certs.items()}
    started["self_signed"] = TlsServer(tmp, "self", own.pem, own.key_pem)
    yield {
        "bundle": pki.bundle(tmp / "ca.pem"),
        "other_bundle": certgen.Pki().bundle(tmp / "other-ca.pem"),
        "certs": certs,
        "servers": started,
    }
    for server in started.values():
        server.close()


def probe(tls, server="good", **extra):
    return {"name": "edge", "type": "tls", "host": "127.0.0.1", "port": tls["servers"][server].port,
            "server_name": WWW, "ca_path": tls["bundle"], "timeout": 2, **extra}


def gate(capsys, *probes, **policy):
    return run_module(health_gate, {"probes": list(probes), "interval": 0, "count": 1, **policy}, capsys)


def test_good_certificate_passes_and_the_sample_records_it(capsys, tls):
    cert = tls["certs"]["good"].cert
    colons = ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))
    res = gate(capsys, probe(tls, expected_sha256=colons, expected_issuer="Sophia test intermediate"))
    assert res["passed"] and res["verdict"] == "passed", res.get("msg")
    (sample,) = res["samples"]
    assert sample["outcome"] == SUCCESS and "message" not in sample
    assert sample["certificate"] == {"sha256": cert.fingerprint(hashes.SHA256()).hex(), "issuer": ISSUER,
                                     "not_after": stamp(cert.not_valid_after_utc), "days_left": 89}
    assert sample["latency_ms"] > 0
    assert tls["servers"]["good"].sni[-1] == WWW  # server_name went out as SNI
    # server_name defaults to host; another name the certificate covers passes too; min_days 0 accepts anything valid
    res = gate(capsys, {k: v for k, v in probe(tls, min_days=0).items() if k != "server_name"} | {"host": "localhost"},
               probe(tls, name="apex", server_name="sophia-intel.ai"))
    assert [s["outcome"] for s in res["samples"]] == [FAILURE, SUCCESS]
    assert res["samples"][0]["message"].startswith("host name mismatch: the certificate is for www.sophia-intel.ai, "
                                                   "sophia-intel.ai, not localhost")


def failure_cases(tls):
    expired = tls["certs"]["expired"].cert
    expiring = tls["certs"]["expiring"].cert
    good = tls["certs"]["good"].cert.fingerprint(hashes.SHA256()).hex()
    return {
        "wrong name": (probe(tls, server_name="api.sophia-intel.ai"),
                       "host name mismatch: the certificate is for www.sophia-intel.ai, sophia-intel.ai, "
                       "not api.sophia-intel.ai"),
        "expired": (probe(tls, "expired"),
                    f"expired: notBefore {stamp(expired.not_valid_before_utc)}, "
                    f"notAfter {stamp(expired.not_valid_after_utc)} (2 days ago)"),
        "expiring": (probe(tls, "expiring"),
                     f"expires soon: 9 days left (notAfter {stamp(expiring.not_valid_after_utc)}), fewer than 14"),
        "min_days above the days left": (probe(tls, "good", min_days=100), "expires soon: 89 days left (notAfter "),
        "self-signed": (probe(tls, "self_signed"),
                        f"untrusted: the chain does not verify against the CA bundle {tls['bundle']} "
                        "(self-signed certificate)"),
        "root not in the bundle": (probe(tls, ca_path=tls["other_bundle"]),
                                   f"untrusted: the chain does not verify against the CA bundle "
                                   f"{tls['other_bundle']} (unable to get local issuer certificate)"),
        "system trust": ({k: v for k, v in probe(tls).items() if k != "ca_path"},
                         "untrusted: the chain does not verify against the system trust store (unable to get "
                         "local issuer certificate)"),
        "fingerprint": (probe(tls, expected_sha256="00" * 32),
                        f"unexpected certificate: sha256 {good}, expected {'00' * 32}"),
        "issuer": (probe(tls, expected_issuer="R11"), f"unexpected issuer: {ISSUER}, expected R11"),
    }


CASES = ["wrong name", "expired", "expiring", "min_days above the days left", "self-signed", "root not in the bundle",
         "system trust", "fingerprint", "issuer"]


@pytest.mark.parametrize("case", CASES)
def test_each_problem_fails_the_gate_with_its_reason(case, capsys, tls):
    spec, reason = failure_cases(tls)[case]
    res = gate(capsys, spec)
    assert res["failed"] and res["verdict"] == "failed"
    (sample,) = res["samples"]
    assert sample["outcome"] == FAILURE and sample["message"].startswith(reason), sample["message"]
    assert f"last problem: edge: {reason}" in res["msg"]
    assert sample["certificate"]["sha256"]  # what was served is recorded with the failure too


def test_every_reason_of_one_certificate_is_named(capsys, tls):
    res = gate(capsys, probe(tls, "self_signed", server_name="api.sophia-intel.ai", expected_issuer="R11"))
    message = res["samples"][0]["message"]
    parts = [part.split(":")[0] for part in message.split("; ")]
    assert parts == ["untrusted", "host name mismatch", "unexpected issuer"]


def test_refused(capsys, tls):
    port = free_port()
    res = gate(capsys, probe(tls, port=port))
    (sample,) = res["samples"]
    assert res["failed"] and sample["message"] == f"connection refused (127.0.0.1:{port})"
    assert "certificate" not in sample


def test_handshake_never_answered_fails_at_the_probe_timeout(tls, tmp_path):
    # the probe alone (no round deadline around it): its own timeout bounds connection + handshake
    good = tls["certs"]["good"]
    hung = TlsServer(tmp_path, "hung", good.pem, good.key_pem)
    hung.hang = True
    spec = normalize_probe({"name": "edge", "type": "tls", "host": "127.0.0.1", "port": hung.port,
                            "server_name": WWW, "ca_path": tls["bundle"], "timeout": 1.0}, 0)
    try:
        start = time.monotonic()
        sample = run_probe(spec, None, lambda *_a, **_k: (0, "", ""))
        elapsed = time.monotonic() - start
    finally:
        hung.close()
    assert sample.outcome == FAILURE
    assert sample.message == (f"TLS handshake timed out (127.0.0.1:{hung.port}): the connection was accepted, the "
                              "handshake did not finish within 1s")
    assert 0.9 <= elapsed <= 1.0 + JITTER, elapsed


def test_tls_probe_holds_a_gate_with_latency_condition(capsys, tls):
    res = gate(capsys, probe(tls, success_condition={"max_latency_ms": 5000}), count=3, interval=0.2,
               consecutive_successes=3)
    assert res["passed"] and res["rounds"] == 3
    assert len({s["certificate"]["sha256"] for s in res["samples"]}) == 1
