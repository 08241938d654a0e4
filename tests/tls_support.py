"""Test certificates made with ``cryptography``: a private CA and a certificate for 127.0.0.1
signed by it, as a commune would run (tests/test_http_tls.py, test_cli_tls.py,
test_upstream_tls.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path
    other_key: Path  # a valid key that belongs to no certificate here


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey, ca: bool,
) -> x509.Certificate:  # fmt: skip
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        san = x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(where: Path, ca_name: str = "loaxa commune test CA") -> Pki:
    """A CA and the station's certificate for 127.0.0.1 signed by it, written under ``where``."""
    ca_key, leaf_key, other = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = make_cert(ca_name, ca_key, None, ca_key, ca=True)
    leaf = make_cert("127.0.0.1", leaf_key, ca.subject, ca_key, ca=False)
    where.mkdir(parents=True, exist_ok=True)
    files = Pki(where / "ca.pem", where / "station.pem", where / "station.key", where / "o.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key_pem(leaf_key))
    files.other_key.write_bytes(key_pem(other))
    return files
