"""health_gate's tls probe: its options completed with defaults, bad ones refused before any round, naming the probe
and the option (normalize_probe, and the module's message)."""

from __future__ import annotations

import pytest
from unit.tls import certgen

from ansible_collections.sophia.migrate.plugins.module_utils import _tls
from ansible_collections.sophia.migrate.plugins.module_utils._health import HealthConfigError
from ansible_collections.sophia.migrate.plugins.module_utils._health_probe_spec import normalize_probe
from ansible_collections.sophia.migrate.plugins.modules import health_gate
from support.modules import run_module


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return certgen.Pki().bundle(tmp_path_factory.mktemp("ca") / "ca.pem")


def test_defaults(bundle):
    probe = normalize_probe({"type": "tls", "host": "www.sophia-intel.ai"}, 2)
    assert probe["name"] == "tls-2" and probe["port"] == 443 and probe["server_name"] == "www.sophia-intel.ai"
    assert probe["min_days"] == 14 and probe["timeout"] == 5.0 and "ca_path" not in probe
    probe = normalize_probe({"type": "tls", "host": "192.0.2.10", "server_name": "www.sophia-intel.ai", "port": 30443,
                             "ca_path": bundle, "min_days": 0, "expected_sha256": "AB:" * 31 + "AB",
                             "expected_issuer": "R11"}, 0)
    assert probe["server_name"] == "www.sophia-intel.ai" and probe["port"] == 30443 and probe["min_days"] == 0
    assert probe["expected_sha256"] == "ab" * 32  # normalised once, as check_endpoint compares it


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "tls"}, "probe 'edge': tls needs host (the name or address to connect to)"),
        ({"type": "tls", "host": ""}, "probe 'edge': tls needs host"),
        ({"type": "tls", "host": "a b"}, "probe 'edge': host must be a host name or an IP address, got 'a b'"),
        ({"type": "tls", "host": "127.0.0.1", "server_name": "www sophia"},
         "probe 'edge': server_name must be a DNS name (ASCII, no spaces), got 'www sophia'"),
        ({"type": "tls", "host": "h", "ca_path": "/nonexistent/ca.pem"},
         "probe 'edge': ca_path '/nonexistent/ca.pem' is not a file"),
        ({"type": "tls", "host": "h", "min_days": -1},
         "probe 'edge': min_days must be a whole number of days from 0 to 3650, got -1"),
        ({"type": "tls", "host": "h", "min_days": 5000}, "min_days must be a whole number of days from 0 to 3650"),
        ({"type": "tls", "host": "h", "port": 0}, "probe 'edge': port must be a port number from 1 to 65535, got 0"),
        ({"type": "tls", "host": "h", "expected_sha256": "abc"},
         "probe 'edge': expected_sha256 must be a SHA-256 fingerprint (64 hex digits, colons allowed), got 'abc'"),
        ({"type": "tls", "host": "h", "expected_sha256": ""}, "expected_sha256 must be a SHA-256 fingerprint"),
        ({"type": "tls", "host": "h", "expected_issuer": " "}, "probe 'edge': expected_issuer is empty"),
        ({"type": "tls", "host": "h", "url": "https://h/"}, "probe 'edge': unknown option(s) url for type tls"),
        ({"type": "tls", "host": "h", "expected_status": [200], "validate_certs": False},
         "probe 'edge': unknown option(s) expected_status, validate_certs for type tls"),
        ({"type": "http", "url": "https://h/", "min_days": 14, "server_name": "h"},
         "probe 'edge': unknown option(s) min_days, server_name for type http"),
        ({"type": "tcp", "host": "h", "port": 443, "expected_sha256": "ab" * 32},
         "probe 'edge': unknown option(s) expected_sha256 for type tcp"),
    ],
)
def test_bad_options_are_refused_naming_probe_and_option(raw, message, capsys):
    with pytest.raises(HealthConfigError) as caught:
        normalize_probe({"name": "edge", **raw}, 0)
    assert message in str(caught.value)
    res = run_module(health_gate, {"probes": [{"name": "edge", **raw}], "count": 1}, capsys)
    assert res["failed"] and "rounds" not in res, res
    if raw.get("port") == 0:  # the module's argument checks (_args) refuse a port out of range first
        assert res["msg"] == "option 'probes[0].port': must be a port number from 1 to 65535, got 0"
    else:
        assert res["msg"].startswith("health_gate: ") and message in res["msg"], res["msg"]


def test_a_ca_path_that_holds_no_certificate_is_refused(tmp_path, capsys):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a bundle\n")
    res = run_module(health_gate, {"probes": [{"name": "edge", "type": "tls", "host": "h", "ca_path": str(garbage)}],
                                   "count": 1}, capsys)
    assert res["failed"] and "rounds" not in res
    assert res["msg"].startswith(f"health_gate: probe 'edge': ca_path '{garbage}' holds no CA certificate OpenSSL "
                                 "can load"), res["msg"]


def test_a_bad_baseline_tls_probe_is_refused(capsys):
    args = {"probes": [{"name": "k3s", "type": "tcp", "host": "127.0.0.1", "port": 1}],
            "baseline": {"candidate": "k3s", "probe": {"name": "old", "type": "tls", "host": "h", "min_days": -3}},
            "count": 1}
    res = run_module(health_gate, args, capsys)
    assert res["failed"] and "probe 'old': min_days must be a whole number of days" in res["msg"]


def test_without_cryptography_the_module_says_so(capsys, monkeypatch):
    monkeypatch.setattr(_tls, "HAS_CRYPTOGRAPHY", False)
    res = run_module(health_gate, {"probes": [{"type": "tls", "host": "127.0.0.1", "port": 1}], "count": 1}, capsys)
    assert res["failed"] and "cryptography" in res["msg"]
