"""A throwaway certificate authority for one private TLS conversation on loopback.

The stack uses it where a server must run briefly before it can check passwords (creating the
MongoDB server's first user): the server then accepts only clients holding a certificate from this
authority, whose keys live in a private folder and are deleted afterwards.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from twin.stack.files import private_dir, write_private

VALID_FOR = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class MutualTls:
    """Where the files of one mutual-TLS conversation lie."""

    ca_file: Path  # the authority's certificate (both sides trust it)
    server_cert: Path
    server_key: Path
    client_pem: Path  # the client's certificate and key, in one file


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    usage: ExtendedKeyUsageOID | None,
    host: str | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if host is not None:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def mutual_tls(folder: Path, host: str) -> MutualTls:
    """A fresh authority, a server certificate for `host` and a client certificate, written to
    `folder` (made private, 0700; files 0600)."""
    private_dir(folder)
    ca_key, server_key, client_key = _key(), _key(), _key()
    ca_name = "twin stack provisioning authority"
    ca = _cert(ca_name, ca_key, None, None)
    server = _cert(host, server_key, (ca_name, ca_key), ExtendedKeyUsageOID.SERVER_AUTH, host)
    client = _cert("twin stack", client_key, (ca_name, ca_key), ExtendedKeyUsageOID.CLIENT_AUTH)

    def pem(cert: x509.Certificate) -> str:
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    return MutualTls(
        ca_file=write_private(folder / "ca.pem", pem(ca)),
        server_cert=write_private(folder / "server.pem", pem(server)),
        server_key=write_private(folder / "server.key", _pem(server_key)),
        client_pem=write_private(folder / "client.pem", pem(client) + _pem(client_key)),
    )
