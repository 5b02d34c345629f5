"""DNS preflight: does each host name resolve to the expected address(es)?

Used before Let's Encrypt production issuance (the ingress must answer the HTTP-01 challenge, so the
name must point at it) and at the end of the migration (the names must point at the new platform only).

Each host is resolved for the requested record types (A, AAAA; CNAME chains are followed and reported)
through the system resolver or the given nameservers and port, and compared with the expected addresses:
``match="all"`` (default) wants every resolved address to be expected and at least one address;
``match="any"`` wants at least one expected address among them. ``CNAME`` as a record type compares the
host's CNAME target with the expected names instead.
"""

from __future__ import annotations

import ipaddress
import typing as t

try:
    import dns.exception
    import dns.name
    import dns.rdatatype
    import dns.resolver

    HAS_DNSPYTHON = True
except ImportError:  # pragma: no cover - reported by the module
    HAS_DNSPYTHON = False

RECORD_TYPES = ("A", "AAAA", "CNAME")


class DnsCheckError(Exception):
    """Bad input (message names the option)."""


def normalize_expected(values: t.Iterable[str]) -> tuple[set[str], set[str]]:
    """(addresses, names): IPs in canonical form, names lower-case without the trailing dot."""
    addresses, names = set(), set()
    for raw in values:
        value = str(raw).strip()
        try:
            addresses.add(str(ipaddress.ip_address(value)))
        except ValueError:
            if not value:
                raise DnsCheckError("expected_addresses: empty entry") from None
            names.add(value.lower().rstrip("."))
    return addresses, names


def make_resolver(nameservers: list[str], port: int, timeout: float) -> t.Any:
    if nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        for ns in nameservers:
            try:
                ipaddress.ip_address(ns)
            except ValueError:
                raise DnsCheckError(f"nameservers: '{ns}' is not an IP address") from None
        resolver.nameservers = list(nameservers)
    else:
        resolver = dns.resolver.Resolver(configure=True)
    resolver.port = port
    resolver.timeout = timeout
    resolver.lifetime = timeout
    resolver.cache = None
    return resolver


def _cname_chain(answer: t.Any, qname: str) -> list[str]:
    chain, current = [], dns.name.from_text(qname)
    for rrset in answer.response.answer:
        if rrset.rdtype == dns.rdatatype.CNAME and rrset.name == current:
            current = rrset[0].target
            chain.append(current.to_text().rstrip("."))
    return chain


def resolve_host(resolver: t.Any, host: str, record_types: list[str]) -> dict[str, t.Any]:
    """Addresses (A/AAAA), CNAME chain and errors of one host name."""
    out: dict[str, t.Any] = {"addresses": [], "cname_chain": [], "cname": [], "errors": []}
    addresses: list[str] = []
    for rtype in record_types:
        try:
            answer = resolver.resolve(host, rtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            out["errors"].append(f"{rtype}: NXDOMAIN (the name does not exist)")
            break
        except dns.resolver.NoNameservers as exc:
            out["errors"].append(f"{rtype}: no nameserver answered ({exc})")
            continue
        except dns.exception.Timeout:
            out["errors"].append(f"{rtype}: timed out")
            continue
        except dns.exception.DNSException as exc:
            out["errors"].append(f"{rtype}: {exc}")
            continue
        if rtype == "CNAME":
            out["cname"] = [r.target.to_text().rstrip(".").lower() for r in answer] if answer.rrset else []
            continue
        chain = _cname_chain(answer, host)
        if chain and not out["cname_chain"]:
            out["cname_chain"] = chain
        if answer.rrset is not None:
            addresses.extend(str(ipaddress.ip_address(r.address)) for r in answer)
    out["addresses"] = sorted(set(addresses))
    return out


def judge(resolved: dict[str, t.Any], expected: set[str], expected_names: set[str], record_types: list[str],
          match: str) -> tuple[bool, str]:
    if resolved["errors"] and not resolved["addresses"] and not resolved["cname"]:
        return False, "; ".join(resolved["errors"])
    if "CNAME" in record_types:
        if not resolved["cname"]:
            return False, "no CNAME record"
        if not set(resolved["cname"]) & expected_names:
            return False, f"CNAME {', '.join(resolved['cname'])} is not one of {', '.join(sorted(expected_names))}"
        if not any(rt in record_types for rt in ("A", "AAAA")):
            return True, "CNAME matches"
    got = set(resolved["addresses"])
    if not got:
        return False, "no address records"
    if not expected:
        return False, "no expected addresses to compare with"
    if match == "any":
        if got & expected:
            return True, "at least one expected address"
        return False, f"resolves to {', '.join(sorted(got))}, none of them expected ({', '.join(sorted(expected))})"
    stray = got - expected
    if stray:
        return False, (f"resolves to unexpected address(es) {', '.join(sorted(stray))} "
                       f"(expected {', '.join(sorted(expected))})")
    return True, "every address is expected"


def check_hosts(hosts: list[t.Any], expected_addresses: list[str], record_types: list[str] | None = None,
                nameservers: list[str] | None = None, port: int = 53, timeout: float = 5.0,
                match: str = "all") -> dict[str, t.Any]:
    """Resolve and judge every host. ``hosts`` items are names or ``{name, expected_addresses}`` dicts."""
    record_types = [r.upper() for r in (record_types or ["A", "AAAA"])]
    bad = [r for r in record_types if r not in RECORD_TYPES]
    if bad:
        raise DnsCheckError(f"record_types: {', '.join(bad)} not supported (use {', '.join(RECORD_TYPES)})")
    if match not in ("all", "any"):
        raise DnsCheckError("match: must be 'all' or 'any'")
    if not 0 < port < 65536:
        raise DnsCheckError(f"port: {port} is not a port number")
    resolver = make_resolver(list(nameservers or []), port, timeout)
    results = []
    for item in hosts:
        if isinstance(item, dict):
            name = str(item.get("name") or "")
            wanted = item.get("expected_addresses") or expected_addresses
        else:
            name, wanted = str(item), expected_addresses
        if not name:
            raise DnsCheckError("hosts: an entry has no name")
        addresses, names = normalize_expected(wanted)
        resolved = resolve_host(resolver, name, record_types)
        ok, reason = judge(resolved, addresses, names, record_types, match)
        results.append({"host": name, "match": ok, "reason": reason, "expected": sorted(addresses | names),
                        **resolved})
    mismatched = [r["host"] for r in results if not r["match"]]
    return {"results": results, "matched": not mismatched, "mismatched": mismatched,
            "nameservers": list(resolver.nameservers), "port": port}
