"""Throwaway certificates for tests and demos.

Everything here is built with the ``cryptography`` library; nothing shells out
to openssl. Keys are EC P-256: OpenSSL 3 and mosquitto 2.0 handle them, and
they take milliseconds to generate, so every test can have its own PKI.

The small pieces (:func:`new_ca`, :func:`issue_cert`, :func:`write_key`,
:func:`write_cert`, :func:`load_cert_key`) let a test build the broken cases:
an expired or not-yet-valid certificate, one from a foreign CA, a server
certificate without an IP SAN.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Usage = Literal["server", "client"]

# Certificates start a little in the past so that a clock a few seconds
# behind (a container, a VM after resume) still accepts them.
_BACKDATE = dt.timedelta(minutes=5)

_EKU = {
    "server": ExtendedKeyUsageOID.SERVER_AUTH,
    "client": ExtendedKeyUsageOID.CLIENT_AUTH,
}


@dataclass(frozen=True)
class CertKey:
    """A certificate together with its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Pki:
    """Paths of a throwaway CA, server and client, all in ``directory``."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def new_key() -> ec.EllipticCurvePrivateKey:
    """Return a fresh EC P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def new_ca(
    common_name: str = "bridge-gen throwaway CA",
    *,
    valid_days: int = 30,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> CertKey:
    """Return a self-signed CA allowed to sign leaf certificates only."""
    key = new_key()
    name = _name(common_name)
    start, end = _validity(valid_days, not_before, not_after)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    # path_length=0: this CA signs leaves, never another CA.
    basic = x509.BasicConstraints(ca=True, path_length=0)

    builder = (
        _base_builder(name, name, key, start, end)
        .add_extension(basic, critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
    )
    return CertKey(builder.sign(key, hashes.SHA256()), key)


def issue_cert(
    ca: CertKey,
    common_name: str,
    *,
    usage: Usage,
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str] = (),
    valid_days: int = 30,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> CertKey:
    """Return a leaf certificate for ``usage``, signed by ``ca``.

    ``not_before``/``not_after`` override ``valid_days``, so a test can ask
    for a certificate that has expired or is not valid yet.
    """
    key = key if key is not None else new_key()
    start, end = _validity(valid_days, not_before, not_after)
    ca_public = ca.key.public_key()
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    eku = x509.ExtendedKeyUsage([_EKU[usage]])
    basic = x509.BasicConstraints(ca=False, path_length=None)

    builder = (
        _base_builder(_name(common_name), ca.cert.subject, key, start, end)
        .add_extension(basic, critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(eku, critical=False)
        .add_extension(aki, critical=False)
        .add_extension(ski, critical=False)
    )
    sans = _sans(dns_names, ip_addresses)
    if sans:
        san = x509.SubjectAlternativeName(sans)
        builder = builder.add_extension(san, critical=False)
    return CertKey(builder.sign(ca.key, hashes.SHA256()), key)


def make_throwaway_pki(
    directory: Path,
    *,
    server_dns: Iterable[str] = ("localhost",),
    server_ips: Iterable[str] = ("127.0.0.1",),
    client_cn: str = "bridge-gen-client",
    valid_days: int = 365,
) -> Pki:
    """Write a CA, a server and a client certificate into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(
        directory=directory,
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )

    ca = new_ca(valid_days=valid_days)
    server = issue_cert(
        ca,
        "bridge-gen stand-in server",
        usage="server",
        dns_names=server_dns,
        ip_addresses=server_ips,
        valid_days=valid_days,
    )
    client = issue_cert(ca, client_cn, usage="client", valid_days=valid_days)

    for pair, cert_path, key_path in (
        (ca, pki.ca_cert, pki.ca_key),
        (server, pki.server_cert, pki.server_key),
        (client, pki.client_cert, pki.client_key),
    ):
        write_key(key_path, pair.key)
        write_cert(cert_path, pair.cert)
    return pki


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    """Write ``key`` as unencrypted PKCS#8 PEM, mode 0600."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_file(path, pem, 0o600)
    return path


def write_cert(path: Path, cert: x509.Certificate) -> Path:
    """Write ``cert`` as PEM, mode 0644."""
    _write_file(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return path


def load_cert_key(cert_path: Path, key_path: Path) -> CertKey:
    """Read back a pair written by this module, e.g. to issue more leaves."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{key_path}: expected an EC private key")
    return CertKey(cert, key)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    # mkstemp opens a new file with O_EXCL and mode 0600, so a key is never
    # readable by others, not even for a moment. Renaming it over the target
    # replaces an older file (or a planted symlink) instead of writing into
    # it, where an fd opened while it was world-readable could still read.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(
    valid_days: int,
    not_before: dt.datetime | None,
    not_after: dt.datetime | None,
) -> tuple[dt.datetime, dt.datetime]:
    # Given one end of the window, the other is valid_days away from it,
    # so an expired certificate needs only not_after in the past.
    days = dt.timedelta(days=valid_days)
    if not_before is not None:
        end = not_after if not_after is not None else not_before + days
        start = not_before
    elif not_after is not None:
        start, end = not_after - days, not_after
    else:
        now = dt.datetime.now(dt.timezone.utc)
        start, end = now - _BACKDATE, now + days
    if end <= start:
        raise ValueError(f"certificate would end ({end}) before it starts")
    return start, end


def _base_builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    start: dt.datetime,
    end: dt.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    # EC keys sign the TLS handshake; they never encipher a session key,
    # so key_encipherment stays off for leaves.
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _sans(
    dns_names: Iterable[str], ip_addresses: Iterable[str]
) -> list[x509.GeneralName]:
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    return sans
