"""Certificates and TLS endpoints: read, describe and judge them (tls_check, tls_import, health_gate's tls probe).

The parsing and the public-key and signature checks are the ``cryptography`` library's; the trust of a served chain
is judged by OpenSSL through Python's ``ssl`` module, as a real client does. Every problem is returned as text that
names what failed (file, host, dates) and never holds key material.
"""

from __future__ import annotations

import datetime
import errno
import functools
import hashlib
import itertools
import os
import re
import socket
import ssl
import time
import typing as t
import warnings

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtensionOID, NameOID
except ImportError:  # pragma: no cover - reported by the modules with missing_required_lib
    HAS_CRYPTOGRAPHY = False
else:
    # 42 added the timezone-aware validity dates this module reads; an older one (Debian 12's python3-cryptography 38,
    # which certbot pulls in) counts as missing, so the modules fail cleanly instead of on an attribute
    HAS_CRYPTOGRAPHY = hasattr(x509.Certificate, "not_valid_before_utc")
REQUIREMENT = "cryptography >= 42"

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.+?-----END CERTIFICATE-----", re.DOTALL)
_SHA256 = re.compile(r"[0-9a-f]{64}")
# OpenSSL verify results that are about time, not trust (reported from the certificate's own dates instead)
_TIME_ERRORS = frozenset({9, 10})  # X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_HAS_EXPIRED


class TlsError(Exception):
    """A problem with a certificate, a key or an endpoint; the message names it."""


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def stamp(when: datetime.datetime) -> str:
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def not_before(cert: x509.Certificate) -> datetime.datetime:
    return cert.not_valid_before_utc


def not_after(cert: x509.Certificate) -> datetime.datetime:
    return cert.not_valid_after_utc


def load_chain(data: bytes, what: str) -> list[x509.Certificate]:
    """Every PEM certificate in ``data``, in file order (TlsError naming ``what`` when there is none or one is bad)."""
    blocks = _PEM_CERT.findall(data)
    if not blocks:
        raise TlsError(f"{what} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    chain = []
    for number, block in enumerate(blocks, 1):
        try:
            chain.append(x509.load_pem_x509_certificate(block))
        except ValueError as exc:
            raise TlsError(f"{what}: certificate {number} of {len(blocks)} cannot be read ({exc})") from None
    return chain


def load_key(data: bytes, what: str) -> t.Any:
    """The private key in ``data`` (TlsError naming ``what``: no key, an encrypted key, an unreadable key)."""
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TlsError(f"{what} holds an encrypted private key (nginx-proxy would ask for a passphrase; "
                       "a kubernetes.io/tls Secret needs it unencrypted)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise TlsError(f"{what} holds no readable PEM private key") from None


def public_der(public_key: t.Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches(cert: x509.Certificate, key: t.Any) -> bool:
    return public_der(cert.public_key()) == public_der(key.public_key())


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex without separators."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def normalise_fingerprint(value: str) -> str:
    """``AB:CD:...`` / ``sha256:abcd...`` / ``abcd...`` -> lowercase hex ('' when it is not 64 hex digits)."""
    text = value.strip().lower()
    if text.startswith("sha256:") or text.startswith("sha256="):
        text = text[7:]
    text = text.replace(":", "").replace(" ", "")
    return text if _SHA256.fullmatch(text) else ""


def common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def dns_names(cert: x509.Certificate) -> list[str]:
    """The DNS names of the subjectAltName (the common name only when there is no subjectAltName)."""
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        cn = common_name(cert.subject)
        return [cn] if cn else []
    return [str(n) for n in san.get_values_for_type(x509.DNSName)]


def covers(cert: x509.Certificate, host: str) -> bool:
    """Whether ``cert`` is valid for ``host`` (RFC 6125: exact, or a wildcard for exactly the leftmost label).

    A wildcard host (``*.example.com``, an Ingress host) needs the same wildcard in the certificate.
    """
    host = host.lower().rstrip(".")
    for san in dns_names(cert):
        name = san.lower().rstrip(".")
        if name == host:
            return True
        if name.startswith("*.") and not host.startswith("*.") and "." in host \
                and host.split(".", 1)[1] == name[2:] and host.split(".", 1)[0]:
            return True
    return False


def self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    return signed_by(cert, cert)


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` issued ``cert`` (names and signature, cryptography's verify_directly_issued_by)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def describe(cert: x509.Certificate, now: datetime.datetime | None = None) -> dict[str, t.Any]:
    now = now or utcnow()
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "dns_names": dns_names(cert),
        "not_before": stamp(not_before(cert)),
        "not_after": stamp(not_after(cert)),
        "days_left": int((not_after(cert) - now).total_seconds() // 86400),
        "sha256": fingerprint(cert),
        "serial": format(cert.serial_number, "x"),
        "self_signed": self_signed(cert),
    }


def default_ca_bundle() -> str:
    """The system's CA bundle file (OpenSSL's default paths, the SSL_CERT_FILE environment variable first)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (os.environ.get(paths.openssl_cafile_env or "SSL_CERT_FILE", ""), paths.cafile,
                      paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return candidate
    return ""


def load_anchors(path: str) -> list[x509.Certificate]:
    """The certificates of a PEM CA bundle (TlsError naming the file)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise TlsError(f"CA bundle {path}: cannot read ({exc.strerror or exc})") from None
    blocks = _PEM_CERT.findall(data)
    if not blocks:
        raise TlsError(f"CA bundle {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    anchors = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # old roots of a system bundle (negative serial numbers) are still roots
        for block in blocks:
            try:
                anchors.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                continue  # a certificate this library cannot read cannot be an anchor here; the others still are
    return anchors


def chain_problems(chain: list[x509.Certificate], anchors: list[x509.Certificate], what: str,
                   now: datetime.datetime | None = None, min_days: int = 0) -> list[str]:
    """What is wrong with ``chain`` as a served chain (leaf first): order, signatures, completeness, dates."""
    now = now or utcnow()
    problems = []
    leaf = chain[0]
    if now > not_after(leaf):
        problems.append(f"{what}: the certificate for {common_name(leaf.subject) or leaf.subject.rfc4514_string()} "
                        f"expired (notBefore {stamp(not_before(leaf))}, notAfter {stamp(not_after(leaf))})")
    elif now < not_before(leaf):
        problems.append(f"{what}: the certificate is not valid yet (notBefore {stamp(not_before(leaf))}, "
                        f"notAfter {stamp(not_after(leaf))})")
    elif min_days and not_after(leaf) - now < datetime.timedelta(days=min_days):
        problems.append(f"{what}: the certificate expires in less than {min_days} days "
                        f"(notAfter {stamp(not_after(leaf))})")
    for position, (cert, issuer) in enumerate(itertools.pairwise(chain), 1):
        if not signed_by(cert, issuer):
            problems.append(f"{what}: certificate {position} ({cert.subject.rfc4514_string()}) is not issued by the "
                            f"next one in the file ({issuer.subject.rfc4514_string()}); the chain must be in order, "
                            "leaf first")
            return problems
        if now > not_after(issuer) or now < not_before(issuer):
            problems.append(f"{what}: intermediate certificate {position + 1} ({issuer.subject.rfc4514_string()}) "
                            f"is outside its validity (notBefore {stamp(not_before(issuer))}, "
                            f"notAfter {stamp(not_after(issuer))})")
    last = chain[-1]
    if not self_signed(last) and not any(last.issuer == a.subject and signed_by(last, a) for a in anchors):
        problems.append(f"{what}: the chain is incomplete: it ends at {last.subject.rfc4514_string()}, issued by "
                        f"{last.issuer.rfc4514_string()}, which is neither in the file nor a CA of the CA bundle "
                        "(give the full chain, as nginx serves it: leaf first, then the intermediates)")
    return problems


# --- endpoints --------------------------------------------------------------------------------------------------
def is_server_name(name: t.Any) -> bool:
    """Whether ``name`` can be sent as SNI and checked against a certificate: a DNS name (ASCII, no spaces)."""
    return isinstance(name, str) and 0 < len(name) <= 253 and name.isascii() and not name.startswith(".") \
        and ".." not in name and not any(c.isspace() or ord(c) < 33 or ord(c) == 127 for c in name)


def is_address(address: t.Any) -> bool:
    """Whether ``address`` can be connected to: a host name or an IP address (no spaces, no control characters)."""
    return isinstance(address, str) and 0 < len(address) <= 253 \
        and not any(c.isspace() or ord(c) < 33 or ord(c) == 127 for c in address)


@functools.lru_cache(maxsize=16)
def trust_context(ca_bundle: str = "") -> ssl.SSLContext:
    """A client context that verifies the chain against ``ca_bundle`` (the system trust when empty), not the name.

    The host name is judged from the certificate (its own reason); ssl.SSLError / OSError when the bundle cannot be
    loaded. Cached: a gate's rounds load a bundle once.
    """
    context = ssl.create_default_context(cafile=ca_bundle or None)
    context.check_hostname = False
    return context


@functools.lru_cache(maxsize=1)
def _accept_any_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class _NoCertificate(Exception):
    """The endpoint served no certificate; the message is the reason a client would give."""


def _connect_error(exc: BaseException, where: str, address: str) -> str:
    code = getattr(exc, "errno", None)
    if isinstance(exc, ConnectionRefusedError) or code == errno.ECONNREFUSED:
        return f"connection refused ({where})"
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"unreachable ({where}): {getattr(exc, 'strerror', None) or exc}"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"connection timed out ({where})"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {address} ({exc.strerror or exc})"
    return f"connection failed ({where}): {getattr(exc, 'strerror', None) or exc}"


def _served_certificate(address: str, port: int, server_name: str, context: ssl.SSLContext, deadline: float,
                        timeout: float) -> bytes:
    """The DER certificate ``address:port`` serves for SNI ``server_name``, connection and handshake both ending by
    ``deadline`` (monotonic). ssl.SSLCertVerificationError when ``context`` does not trust it; _NoCertificate with
    the reason when there is no certificate to judge (refused, unreachable, timed out, handshake failed)."""
    where = f"{address}:{port}"
    left = deadline - time.monotonic()
    if left <= 0:
        raise _NoCertificate(f"connection timed out ({where}): no time left of {timeout:g}s")
    try:
        sock = socket.create_connection((address, port), timeout=left)
    except (OSError, ValueError, UnicodeError) as exc:
        raise _NoCertificate(_connect_error(exc, where, address)) from None
    with sock:
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)  # the whole handshake, not each read (CPython's handshake keeps one deadline)
            with context.wrap_socket(sock, server_hostname=server_name) as tls:
                der = tls.getpeercert(binary_form=True)
        except ssl.SSLCertVerificationError:
            raise
        except TimeoutError:
            raise _NoCertificate(f"TLS handshake timed out ({where}): the connection was accepted, the handshake "
                                 f"did not finish within {timeout:g}s") from None
        except ssl.SSLError as exc:
            raise _NoCertificate(f"TLS handshake failed ({where}): {exc.reason or exc}") from None
        except (OSError, ValueError, UnicodeError) as exc:
            raise _NoCertificate(f"TLS handshake failed ({where}): "
                                 f"{getattr(exc, 'strerror', None) or exc}") from None
    if not der:
        raise _NoCertificate(f"TLS handshake failed ({where}): the server sent no certificate")
    return der


def _expiry_problem(cert: x509.Certificate, info: dict[str, t.Any], now: datetime.datetime, min_days: int) -> str:
    if now > not_after(cert):
        days = int((now - not_after(cert)).total_seconds() // 86400)
        ago = f"{days} day{'s' if days != 1 else ''} ago" if days else "less than a day ago"
        return f"expired: notBefore {info['not_before']}, notAfter {info['not_after']} ({ago})"
    if now < not_before(cert):
        return f"not valid yet: notBefore {info['not_before']}, notAfter {info['not_after']}"
    if info["days_left"] < min_days:
        return f"expires soon: {info['days_left']} days left (notAfter {info['not_after']}), fewer than {min_days}"
    return ""


def _expected_problems(cert: x509.Certificate, info: dict[str, t.Any], expect_sha256: str,
                       expect_issuer: str) -> list[str]:
    problems = []
    if expect_sha256 and info["sha256"] != normalise_fingerprint(expect_sha256):
        problems.append(f"unexpected certificate: sha256 {info['sha256']}, expected "
                        f"{normalise_fingerprint(expect_sha256)}")
    if expect_issuer and not issuer_matches(cert, expect_issuer):
        problems.append(f"unexpected issuer: {info['issuer']}, expected {expect_issuer}")
    return problems


def check_endpoint(server_name: str, address: str, port: int, ca_bundle: str, min_days: int, timeout: float,
                   expect_sha256: str = "", expect_issuer: str = "",
                   now: datetime.datetime | None = None) -> dict[str, t.Any]:
    """Connect with SNI ``server_name`` to ``address:port`` and judge the served certificate.

    checks: connect, chain (OpenSSL against ``ca_bundle``, or the system trust when empty), hostname, expiry (days
    left at least ``min_days``), expected (fingerprint / issuer when given). ``reasons`` names every failure.
    ``timeout`` bounds the whole check, connections and handshakes together: a server that accepts the connection
    and never answers the ClientHello is a ``TLS handshake timed out`` at ``timeout``, never a hang. The callers:
    tls_check (one result per target) and health_gate's tls probe (one sample per round).
    """
    deadline = time.monotonic() + timeout
    now = now or utcnow()
    checks: dict[str, bool | None] = {"connect": False, "chain": None, "hostname": None, "expiry": None,
                                      "expected": None}
    result: dict[str, t.Any] = {"host": server_name, "address": address, "port": port, "verdict": "fail",
                                "reasons": [], "checks": checks, "certificate": {}}
    reasons: list[str] = result["reasons"]
    verifying = trust_context(ca_bundle or "")
    der = b""
    trust_error = ""
    try:
        der = _served_certificate(address, port, server_name, verifying, deadline, timeout)
    except ssl.SSLCertVerificationError as exc:
        trust_error = "" if exc.verify_code in _TIME_ERRORS else (exc.verify_message or str(exc))
        checks["chain"] = not trust_error
        try:  # the certificate the verification refused, to judge the rest: a second handshake, same deadline
            der = _served_certificate(address, port, server_name, _accept_any_context(), deadline, timeout)
        except _NoCertificate as again:
            reasons.append(str(again))
            return result
    except _NoCertificate as exc:
        reasons.append(str(exc))
        return result
    else:
        checks["chain"] = True
    checks["connect"] = True
    if trust_error:
        reasons.append(f"untrusted: the chain does not verify against "
                       f"{'the CA bundle ' + ca_bundle if ca_bundle else 'the system trust store'} ({trust_error})")
    cert = x509.load_der_x509_certificate(der)
    info = describe(cert, now)
    result["certificate"] = info
    checks["hostname"] = covers(cert, server_name)
    if not checks["hostname"]:
        reasons.append(f"host name mismatch: the certificate is for {', '.join(info['dns_names']) or 'no DNS name'}, "
                       f"not {server_name}")
    expiry = _expiry_problem(cert, info, now, min_days)
    checks["expiry"] = not expiry
    if expiry:
        reasons.append(expiry)
    if expect_sha256 or expect_issuer:
        expected = _expected_problems(cert, info, expect_sha256, expect_issuer)
        checks["expected"] = not expected
        reasons.extend(expected)
    result["verdict"] = "pass" if not reasons else "fail"
    return result


def issuer_matches(cert: x509.Certificate, expected: str) -> bool:
    """``expected`` equals the issuer's RFC 4514 form, its common name or its organisation."""
    issuer = cert.issuer
    candidates = {issuer.rfc4514_string(), common_name(issuer)}
    candidates.update(str(a.value) for a in issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return expected.strip() in candidates
