"""cert_orders: cert-manager's Certificates (as the API returns them, cert-manager.io/v1 with the status fields of
specs/k8s/cert-manager-crd-cert-manager.io_certificates-v1.21.1.yaml) read as orders, staging before production."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sophia.migrate.plugins.filter.cert_orders import cert_orders

WWW, API = "www.sophia-intel.ai", "api.sophia-intel.ai"


def certificate(name, host, stage, ready=None, **status):
    conditions = [] if ready is None else [{"type": "Ready", "status": "True" if ready else "False",
                                            "reason": "Ready" if ready else "DoesNotExist",
                                            "message": "Certificate is up to date and has not expired" if ready
                                            else "Issuing certificate as Secret does not exist"}]
    secret = name.replace("-staging", "") + "-tls" + ("-staging" if stage == "staging" else "")
    issuer = {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": f"letsencrypt-{stage}"}
    return {"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": name, "namespace": "sophia"},
            "spec": {"secretName": secret, "dnsNames": [host], "issuerRef": issuer},
            "status": {"conditions": conditions, **status}}


def test_production_only_for_hosts_whose_staging_certificate_is_ready():
    live = [certificate("www-sophia-intel-ai-staging", WWW, "staging", True, notAfter="2027-03-01T00:00:00Z"),
            certificate("api-sophia-intel-ai-staging", API, "staging", False, failedIssuanceAttempts=2,
                        lastFailureTime="2026-12-07T10:00:00Z")]
    out = cert_orders(live, [WWW, API])
    assert out["staging_ready"] == [WWW] and out["production_allowed"] == [WWW]
    assert out["waiting"] == [{"host": API, "reason": "staging Certificate api-sophia-intel-ai-staging is not Ready: "
                                                      "DoesNotExist: Issuing certificate as Secret does not exist"}]
    by_name = {o["name"]: o for o in out["orders"]}
    assert by_name["www-sophia-intel-ai-staging"] == {
        "name": "www-sophia-intel-ai-staging", "stage": "staging", "issuer": "letsencrypt-staging", "dns_names": [WWW],
        "secret": "www-sophia-intel-ai-tls-staging", "ready": True, "not_after": "2027-03-01T00:00:00Z",
        "failed_attempts": 0, "last_failure": "", "reason": "Ready: Certificate is up to date and has not expired",
        "ledger_status": "done"}
    assert by_name["api-sophia-intel-ai-staging"]["ledger_status"] == "failed"
    assert by_name["api-sophia-intel-ai-staging"]["failed_attempts"] == 2


def test_a_production_certificate_once_ordered_stays_and_a_pending_order_is_started():
    live = [certificate("www-sophia-intel-ai", WWW, "production"),  # no status yet: pending
            certificate("www-sophia-intel-ai-staging", WWW, "staging", False)]
    out = cert_orders(live, [WWW, API])
    assert out["production_ordered"] == [WWW] and out["production_allowed"] == [WWW]
    assert [o["ledger_status"] for o in out["orders"]] == ["started", "started"]
    assert out["orders"][0]["reason"] == "no Ready condition yet (the order is pending)"
    assert out["waiting"] == [{"host": API, "reason": "no staging Certificate names it yet (run Phase 2A with "
                                                      "ingress_certs_issuance_stage=staging)"}]


def test_nothing_ordered_yet_everything_waits():
    out = cert_orders([], [WWW])
    assert out["orders"] == [] and out["production_allowed"] == [] and [w["host"] for w in out["waiting"]] == [WWW]


@pytest.mark.parametrize(("certificates", "hosts", "message"), [
    ({"items": []}, [WWW], "the input must be a list of Certificates, got dict"),
    ([{"metadata": {}}], [WWW], "Certificate 0 has no metadata.name"),
    ([{"metadata": {"name": "x"}, "spec": {"dnsNames": "www"}}], [WWW], "Certificate x: spec.dnsNames must be a list"),
    ([], "www", "hosts must be a list of host names"),
])
def test_bad_input_is_named(certificates, hosts, message):
    with pytest.raises(AnsibleFilterError, match=message):
        cert_orders(certificates, hosts)
