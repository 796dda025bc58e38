"""Checks of a bridge's TLS files before anything runs: parse, match, chain.

Most bridges that never connect fail on their certificates, and mosquitto
says so only in its log, once the container runs. These checks read the
files as the broker will and say what is wrong and what to do, offline.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

_BOM = b"\xef\xbb\xbf"
_PEM = b"-----BEGIN "


@dataclass(frozen=True)
class Finding:
    severity: str  # error, warning or ok
    role: str  # ca, cert or key
    message: str


class _Bad(Exception):
    """A file that cannot be used at all; its message says why."""


def check_files(
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
    *,
    now: dt.datetime | None = None,
    expiry_days: int = 30,
) -> list[Finding]:
    """Every finding about one bridge's CA, client certificate and key."""
    now = now or dt.datetime.now(dt.timezone.utc)
    found: list[Finding] = []
    cas = _load(found, "ca", ca, _certificates)
    client = _load(found, "cert", cert, _certificates)
    private = _load(found, "key", key, _private_key)

    if cas:
        if not any(_is_ca(c) for c in cas):
            found.append(Finding("error", "ca", "holds no CA certificate"))
        found += _validity("ca", cas[0], now, expiry_days)
    if client:
        leaf = client[0]
        found += _validity("cert", leaf, now, expiry_days)
        if cas and not _issued_by_any(leaf, cas):
            found.append(
                Finding(
                    "warning",
                    "cert",
                    "is not signed by a certificate in `tls.ca`; that is fine"
                    " when the remote trusts another CA (as Kaa's does), but"
                    " check that it is the one the remote issued",
                )
            )
        if private is not None and not _same_key(leaf, private):
            found.append(
                Finding(
                    "error", "key", "does not belong to the certificate in `tls.cert`"
                )
            )
    return found


def _load(found: list[Finding], role: str, path: Path | None, reader):
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        found.append(Finding("error", role, f"{path}: cannot read ({exc.strerror})"))
        return None
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    try:
        loaded = reader(data)
    except _Bad as exc:
        found.append(Finding("error", role, f"{path}: {exc}"))
        return None
    found.append(Finding("ok", role, f"{path}: readable"))
    return loaded


def _certificates(data: bytes) -> list[x509.Certificate]:
    if _PEM not in data:
        try:
            x509.load_der_x509_certificate(data)
        except ValueError:
            raise _Bad("is not a PEM certificate") from None
        raise _Bad(
            "is a DER certificate; mosquitto needs PEM: openssl x509 -inform der"
            " -in FILE -out FILE.pem"
        )
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise _Bad(f"is not a readable PEM certificate ({exc})") from None


def _private_key(data: bytes):
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise _Bad(
            "is protected by a passphrase, which a bridge cannot use: store it"
            " decrypted (openssl pkey -in KEY -out KEY.plain)"
        ) from None
    except ValueError:
        raise _Bad("is not a readable PEM private key") from None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _issued_by_any(leaf: x509.Certificate, cas: list[x509.Certificate]) -> bool:
    for ca in cas:
        try:
            leaf.verify_directly_issued_by(ca)
            return True
        except (ValueError, TypeError, InvalidSignature):
            continue
    return False


def _same_key(cert: x509.Certificate, key) -> bool:
    raw = serialization.Encoding.DER
    info = serialization.PublicFormat.SubjectPublicKeyInfo
    return cert.public_key().public_bytes(raw, info) == key.public_key().public_bytes(
        raw, info
    )


def _validity(
    role: str, cert: x509.Certificate, now: dt.datetime, days: int
) -> list[Finding]:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < start:
        return [
            Finding("error", role, f"is not valid before {start:%Y-%m-%d %H:%M} UTC")
        ]
    if now > end:
        return [Finding("error", role, f"expired on {end:%Y-%m-%d %H:%M} UTC")]
    left = (end - now).days
    if left < days:
        return [
            Finding("warning", role, f"expires in {left} day(s), on {end:%Y-%m-%d}")
        ]
    return [Finding("ok", role, f"valid until {end:%Y-%m-%d} ({left} days)")]
