"""The certificates nginx-proxy serves today, as kubernetes.io/tls Secrets for the Ingresses (tls_import module).

``plan()`` finds, for every TLS host of the Ingresses, the ``ssl_certificate`` / ``ssl_certificate_key`` of the
nginx-proxy server that serves it (from sophia.migrate.nginx_routes' ``servers``), or an explicit entry, and maps the
paths nginx sees (inside its container) to paths on the host. ``check()`` judges what was read from those files:
the key matches the certificate, the chain is complete as given (leaf first, each issued by the next, the last one a
root or issued by a CA of the CA bundle), nothing in it is expired, the certificate is valid for the host. Nothing
returned holds key material.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import os
import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils import _tls


class CertImportError(Exception):
    """Input that cannot be planned (the message names the option)."""


_GIVE = "give its files in certificates (ingress_certs_tls_import in the role)"


def secret_name(host: str) -> str:
    """The Secret the Ingresses reference for ``host`` (roles/ingress_certs/templates: ``<host with - >-tls``)."""
    return host.replace(".", "-").replace("*", "wildcard") + "-tls"


def host_path(path: str, path_map: dict[str, str], prefix: str) -> str:
    """The host path of a file nginx names ``path`` (its container's view): relative to ``prefix``, else the longest
    ``path_map`` directory that holds it, else unchanged."""
    if not os.path.isabs(path):
        return os.path.normpath(os.path.join(prefix, path)) if prefix else path
    for directory in sorted(path_map, key=len, reverse=True):
        root = directory.rstrip("/") or "/"
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return os.path.normpath(os.path.join(path_map[directory], path[len(root):].lstrip("/")))
    return path


def _server_where(server: dict[str, t.Any]) -> str:
    names = server.get("names") or ["_"]
    return f"server {names[0]} ({server.get('file', '?')}:{server.get('line', '?')})"


def _check_servers(servers: list[t.Any]) -> list[dict[str, t.Any]]:
    out = []
    for index, server in enumerate(servers):
        where = f"servers[{index}]"
        if not isinstance(server, dict):
            raise CertImportError(f"{where} must be a dict (a server of sophia.migrate.nginx_routes), got "
                                  f"{type(server).__name__}")
        names = server.get("names", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CertImportError(f"{where}.names must be a list of server names")
        for key in ("ssl_certificate", "ssl_certificate_key", "file"):
            if not isinstance(server.get(key, ""), str) or "\x00" in server.get(key, ""):
                raise CertImportError(f"{where}.{key} must be a path (text without NUL)")
        if not isinstance(server.get("tls", False), bool):
            raise CertImportError(f"{where}.tls must be true or false")
        out.append(server)
    return out


def _check_certificates(certificates: list[t.Any]) -> list[dict[str, str]]:
    out = []
    for index, entry in enumerate(certificates):
        where = f"certificates[{index}]"
        if not isinstance(entry, dict):
            raise CertImportError(f"{where} must be a dict with host, cert_file and key_file")
        for key in ("host", "cert_file", "key_file"):
            value = entry.get(key)
            if not isinstance(value, str) or not value or "\x00" in value:
                raise CertImportError(f"{where}.{key} must be a non-empty text (got {type(value).__name__})")
        out.append({"host": entry["host"].lower(), "cert_file": entry["cert_file"], "key_file": entry["key_file"]})
    return out


def plan(hosts: list[str], servers: list[t.Any], certificates: list[t.Any], path_map: dict[str, str],
         prefix: str) -> dict[str, t.Any]:
    """secrets (one per host: name, host, cert_file, key_file, source), files to read, missing hosts, problems."""
    servers = _check_servers(servers)
    explicit = {c["host"]: c for c in _check_certificates(certificates)}
    secrets: list[dict[str, str]] = []
    missing: list[dict[str, str]] = []
    problems: list[dict[str, str]] = []
    wanted = list(dict.fromkeys([h.lower() for h in hosts] + list(explicit)))
    for host in wanted:
        if host in explicit:
            entry = explicit[host]
            secrets.append({"name": secret_name(host), "host": host, "cert_file": entry["cert_file"],
                            "key_file": entry["key_file"], "source": "certificates"})
            continue
        serving = [s for s in servers if s.get("tls") and host in [n.lower() for n in s.get("names") or []]]
        with_cert = [s for s in serving if s.get("ssl_certificate")]
        if not with_cert:
            if serving:
                reason = (f"{', '.join(_server_where(s) for s in serving)} has no ssl_certificate in its server "
                          "block (inherited from http, or set in an include that was not read); " + _GIVE)
            elif servers:
                reason = "no TLS server of nginx-proxy serves this host; " + _GIVE
            else:
                reason = "no nginx-proxy configuration was read (no servers given); " + _GIVE
            missing.append({"host": host, "secret": secret_name(host), "reason": reason})
            continue
        server = with_cert[0]
        cert, key = server["ssl_certificate"], server.get("ssl_certificate_key", "")
        where = _server_where(server)
        if not key:
            reason = f"{where} has ssl_certificate {cert} but no ssl_certificate_key"
            problems.append({"host": host, "file": cert, "reason": reason})
            continue
        dynamic = [p for p in (cert, key) if "$" in p or p.startswith("data:") or p.startswith("engine:")]
        if dynamic:
            problems.append({"host": host, "file": dynamic[0], "reason": (
                f"{where}: ssl_certificate {dynamic[0]} is chosen at run time (variables, data: or engine:); "
                "give this host's files in certificates")})
            continue
        secrets.append({"name": secret_name(host), "host": host, "cert_file": host_path(cert, path_map, prefix),
                        "key_file": host_path(key, path_map, prefix), "source": where,
                        "nginx_cert_file": cert, "nginx_key_file": key})
    files = list(dict.fromkeys(f for s in secrets for f in (s["cert_file"], s["key_file"])))
    return {"secrets": secrets, "files": files, "missing": missing, "problems": problems}


def _read(path: str, role: str, entry: dict[str, str], contents: dict[str, t.Any],
          read_errors: dict[str, t.Any]) -> tuple[bytes, str]:
    """(bytes, problem) of one file as the reading step returned it."""
    what = f"{role} {path}" + (f" ({entry['source']})" if entry.get("source", "certificates") != "certificates"
                               else "")
    if path not in contents:
        error = str(read_errors.get(path, "not read"))
        if "not found" in error.lower() or "no such file" in error.lower():
            return b"", f"{what} does not exist"
        return b"", f"{what} cannot be read: {error}"
    value = contents[path]
    if not isinstance(value, str):
        return b"", f"{what}: the content given is not base64 text"
    try:
        return base64.b64decode(value, validate=True), ""
    except (binascii.Error, ValueError):
        return b"", f"{what}: the content given is not base64 text"


def check(secrets: list[dict[str, str]], contents: dict[str, t.Any], read_errors: dict[str, t.Any],
          anchors: list[t.Any], min_days: int = 0,
          now: datetime.datetime | None = None) -> tuple[list[dict[str, t.Any]], list[dict[str, str]]]:
    """(certificates: what each Secret will hold, described; problems: host, file, reason)."""
    now = now or _tls.utcnow()
    certificates, problems = [], []
    for entry in secrets:
        host, cert_file, key_file = entry["host"], entry["cert_file"], entry["key_file"]
        found = []
        cert_data, problem = _read(cert_file, "certificate file", entry, contents, read_errors)
        if problem:
            found.append((cert_file, problem))
        key_data, problem = _read(key_file, "key file", entry, contents, read_errors)
        if problem:
            found.append((key_file, problem))
        chain: list[t.Any] = []
        if cert_data:
            try:
                chain = _tls.load_chain(cert_data, f"certificate file {cert_file}")
            except _tls.TlsError as exc:
                found.append((cert_file, str(exc)))
        key = None
        if key_data:
            try:
                key = _tls.load_key(key_data, f"key file {key_file}")
            except _tls.TlsError as exc:
                found.append((key_file, str(exc)))
        if chain:
            if key is not None and not _tls.key_matches(chain[0], key):
                found.append((key_file, f"key file {key_file} does not match the certificate in {cert_file} "
                                        f"({chain[0].subject.rfc4514_string()}): different public keys"))
            if not _tls.covers(chain[0], host):
                names = ", ".join(_tls.dns_names(chain[0])) or "no DNS name"
                found.append((cert_file, f"certificate file {cert_file} is not valid for {host} (it names {names})"))
            found.extend((cert_file, p) for p in _tls.chain_problems(chain, anchors, f"certificate file {cert_file}",
                                                                     now, min_days))
            certificates.append({"host": host, "secret": entry["name"], "cert_file": cert_file,
                                 "key_file": key_file, "source": entry.get("source", ""),
                                 "chain": [c.subject.rfc4514_string() for c in chain],
                                 **_tls.describe(chain[0], now)})
        problems.extend({"host": host, "file": f, "reason": r} for f, r in found)
    return certificates, problems


# cert-manager writes this annotation on every Secret it issues into (cert-manager.io/v1, Certificate.spec.secretName).
ISSUED_ANNOTATION = "cert-manager.io/certificate-name"


def _live_leaf(value: t.Any) -> t.Any:
    """The first certificate of a Secret's ``tls.crt`` (base64 PEM, as the API returns it), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return _tls.load_chain(base64.b64decode(value, validate=True), "tls.crt")[0]
    except (binascii.Error, ValueError, _tls.TlsError, IndexError):
        return None


def existing_problems(existing: list[t.Any]) -> list[str]:
    """What is wrong with the ``existing`` entries (each a dict with a non-empty text ``name``)."""
    return [f"existing[{i}] must be a mapping with a non-empty text name (got {type(e).__name__})"
            for i, e in enumerate(existing)
            if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not e["name"]]


def decide(certificates: list[dict[str, t.Any]],
           existing: list[dict[str, t.Any]]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(apply, kept) for the Secrets ``certificates`` describe (check()'s result), given the Secrets of those names
    the cluster has now (``existing``: ``name``, ``issued_by`` - the Secret's cert-manager.io/certificate-name
    annotation, empty when it has none - and ``certificate``, its tls.crt as the API returns it).

    A Secret cert-manager issued into is never replaced: the imported certificate only bridges until the issued one
    is there, and replacing it would make cert-manager order again (Let's Encrypt's rate limits). An absent Secret is
    created; one imported earlier is updated when nginx-proxy now serves another certificate that is valid at least
    as long (certbot renewed it on the Compose side); otherwise it is kept, with the reason."""
    by_name = {e["name"]: e for e in existing}
    apply, kept = [], []
    for cert in certificates:
        name = cert["secret"]
        live = by_name.get(name)
        if live is None:
            apply.append({"secret": name, "action": "create", "reason": "not in the cluster yet"})
            continue
        if live.get("issued_by"):
            kept.append({"secret": name, "reason": f"issued by cert-manager (Certificate {live['issued_by']}): never "
                                                   "replaced by the imported certificate"})
            continue
        leaf = _live_leaf(live.get("certificate"))
        if leaf is None:
            apply.append({"secret": name, "action": "update", "reason": "the Secret holds no readable certificate"})
        elif _tls.fingerprint(leaf) == cert["sha256"]:
            kept.append({"secret": name, "reason": f"holds this certificate already (sha256 {cert['sha256'][:16]}...)"})
        elif _tls.stamp(_tls.not_after(leaf)) > cert["not_after"]:
            kept.append({"secret": name, "reason": f"holds a certificate valid longer (notAfter "
                                                   f"{_tls.stamp(_tls.not_after(leaf))}) than nginx-proxy's "
                                                   f"({cert['not_after']})"})
        else:
            apply.append({"secret": name, "action": "update",
                          "reason": f"nginx-proxy serves another certificate now (sha256 "
                                    f"{_tls.fingerprint(leaf)[:16]}... -> {cert['sha256'][:16]}..., notAfter "
                                    f"{cert['not_after']})"})
    return apply, kept
