"""tls_probes: tls_check's targets as health_gate tls probes (each one then accepted by health_gate's own check)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sophia.migrate.plugins.filter.tls_probes import tls_probes
from ansible_collections.sophia.migrate.plugins.module_utils._health_probe_spec import normalize_probe


def test_one_probe_per_target_with_sni_address_port_and_expectations(tmp_path):
    bundle = tmp_path / "ca.pem"
    probes = tls_probes([{"host": "www.sophia-intel.ai", "address": "192.0.2.10"},
                         {"host": "api.sophia-intel.ai", "port": 8443, "expect_issuer": "R11",
                          "expect_sha256": "ab" * 32}], str(bundle), 21)
    assert probes == [
        {"name": "tls www.sophia-intel.ai@192.0.2.10:443", "type": "tls", "host": "192.0.2.10",
         "server_name": "www.sophia-intel.ai", "port": 443, "min_days": 21, "ca_path": str(bundle)},
        {"name": "tls api.sophia-intel.ai@api.sophia-intel.ai:8443", "type": "tls", "host": "api.sophia-intel.ai",
         "server_name": "api.sophia-intel.ai", "port": 8443, "min_days": 21, "expected_issuer": "R11",
         "expected_sha256": "ab" * 32, "ca_path": str(bundle)},
    ]


def test_an_empty_bundle_leaves_the_system_trust_and_health_gate_accepts_the_probes():
    probes = tls_probes([{"host": "www.sophia-intel.ai", "address": "192.0.2.10"}], "", 14)
    assert "ca_path" not in probes[0]
    checked = normalize_probe(probes[0], 0)
    assert checked["server_name"] == "www.sophia-intel.ai" and checked["min_days"] == 14


@pytest.mark.parametrize(("targets", "days", "message"), [
    ("www.sophia-intel.ai", 14, "must be a list of targets"),
    ({"host": "x"}, 14, "must be a list of targets"),
    ([{"address": "192.0.2.1"}], 14, "target 0 must be a mapping with a host name"),
    (["www.sophia-intel.ai"], 14, "target 0 must be a mapping with a host name"),
    ([{"host": "a.example", "expect_sha": "x"}], 14, "target 0 (a.example): unknown keys expect_sha"),
    ([{"host": "a.example"}], -1, "min_days must be a whole number of days"),
    ([{"host": "a.example"}], True, "min_days must be a whole number of days"),
])
def test_bad_targets_are_refused_by_name(targets, days, message):
    with pytest.raises(AnsibleFilterError) as err:
        tls_probes(targets, "", days)
    assert message in str(err.value)
