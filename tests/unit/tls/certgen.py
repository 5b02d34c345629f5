"""Real certificates for the TLS tests: a root CA, an intermediate, leaves (cryptography, made in the test)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import typing as t

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


class Issued(t.NamedTuple):
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sophia test")])


def ca(cn: str = "Sophia test root", issuer: Issued | None = None, days: tuple[int, int] = (-10, 3650)) -> Issued:
    """A CA certificate: self-signed root, or an intermediate signed by ``issuer``."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder()
               .subject_name(_name(cn))
               .issuer_name(issuer.cert.subject if issuer else _name(cn))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW + days[0] * DAY)
               .not_valid_after(NOW + days[1] * DAY)
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    return Issued(builder.sign(issuer.key if issuer else key, hashes.SHA256()), key)


def leaf(names: list[str], issuer: Issued, days: tuple[int, int] = (-1, 90)) -> Issued:
    """A server certificate for ``names`` (DNS names; IP addresses as IP SANs) signed by ``issuer``."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    cert = (x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(issuer.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW + days[0] * DAY)
            .not_valid_after(NOW + days[1] * DAY)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                           critical=False)
            .sign(issuer.key, hashes.SHA256()))
    return Issued(cert, key)


def self_signed(names: list[str], days: tuple[int, int] = (-1, 90)) -> Issued:
    """A self-signed server certificate (what an ingress controller serves by default)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(_name(names[0])).issuer_name(_name(names[0]))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW + days[0] * DAY).not_valid_after(NOW + days[1] * DAY)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(key, hashes.SHA256()))
    return Issued(cert, key)


class Pki:
    """root -> intermediate -> leaves, written as files (fullchain = leaf + intermediate, as Let's Encrypt's)."""

    def __init__(self) -> None:
        self.root = ca()
        self.intermediate = ca("Sophia test intermediate", self.root)

    def leaf(self, names: list[str], days: tuple[int, int] = (-1, 90)) -> Issued:
        return leaf(names, self.intermediate, days)

    def fullchain(self, issued: Issued) -> bytes:
        return issued.pem + self.intermediate.pem

    def write(self, directory: str | os.PathLike[str], issued: Issued, chain: bool = True,
              cert_name: str = "fullchain.pem", key_name: str = "privkey.pem") -> tuple[str, str]:
        os.makedirs(directory, exist_ok=True)
        cert_path, key_path = os.path.join(directory, cert_name), os.path.join(directory, key_name)
        with open(cert_path, "wb") as handle:
            handle.write(self.fullchain(issued) if chain else issued.pem)
        with open(key_path, "wb") as handle:
            handle.write(issued.key_pem)
        os.chmod(key_path, 0o600)
        return cert_path, key_path

    def bundle(self, path: str | os.PathLike[str]) -> str:
        with open(path, "wb") as handle:
            handle.write(self.root.pem)
        return str(path)
