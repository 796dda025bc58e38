"""TLS files checked before anything runs, with real certificates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from bridge_gen import pki
from bridge_gen.certcheck import check_files

NOW = dt.datetime.now(dt.timezone.utc)
DAY = dt.timedelta(days=1)


def problems(found) -> list[tuple[str, str, str]]:
    return [(f.severity, f.role, f.message) for f in found if f.severity != "ok"]


def write(tmp: Path, name: str, pair: pki.CertKey) -> tuple[Path, Path]:
    return (
        pki.write_cert(tmp / f"{name}.crt", pair.cert),
        pki.write_key(tmp / f"{name}.key", pair.key),
    )


def test_a_good_set_has_no_problem(tmp_path: Path, throwaway_pki) -> None:
    found = check_files(
        throwaway_pki.ca_cert, throwaway_pki.client_cert, throwaway_pki.client_key
    )
    assert problems(found) == []
    # Each file readable, and how long each certificate is valid.
    assert [f.role for f in found] == ["ca", "cert", "key", "ca", "cert"]
    valid = [f.message for f in found if f.message.startswith("valid until ")]
    assert len(valid) == 2 and all(m.endswith(" days)") for m in valid)


def test_expired_and_not_yet_valid(tmp_path: Path) -> None:
    ca = pki.new_ca(valid_days=365)
    ca_path = pki.write_cert(tmp_path / "ca.crt", ca.cert)
    old = pki.issue_cert(ca, "old", usage="client", not_after=NOW - DAY)
    new = pki.issue_cert(ca, "new", usage="client", not_before=NOW + DAY)

    for name, pair, start in (("old", old, "expired on"), ("new", new, "is not valid")):
        cert, key = write(tmp_path, name, pair)
        [(severity, role, message)] = problems(check_files(ca_path, cert, key))
        assert (severity, role) == ("error", "cert")
        assert message.startswith(start)


def test_expiring_soon_is_a_warning(tmp_path: Path) -> None:
    ca = pki.new_ca(valid_days=365)
    ca_path = pki.write_cert(tmp_path / "ca.crt", ca.cert)
    soon = pki.issue_cert(ca, "soon", usage="client", valid_days=10)
    cert, key = write(tmp_path, "soon", soon)

    [(severity, role, message)] = problems(check_files(ca_path, cert, key))
    assert (severity, role) == ("warning", "cert")
    assert message.startswith("expires in 9 day(s)") or message.startswith(
        "expires in 10 day(s)"
    )


def test_key_of_another_certificate(tmp_path: Path, throwaway_pki) -> None:
    other = pki.write_key(tmp_path / "other.key", pki.new_key())
    found = check_files(throwaway_pki.ca_cert, throwaway_pki.client_cert, other)
    assert problems(found) == [
        ("error", "key", "does not belong to the certificate in `tls.cert`")
    ]


def test_certificate_from_another_ca(tmp_path: Path, throwaway_pki) -> None:
    other = pki.new_ca("other", valid_days=365)
    stranger = pki.issue_cert(other, "x", usage="client", valid_days=365)
    cert, key = write(tmp_path, "x", stranger)
    [(severity, role, message)] = problems(
        check_files(throwaway_pki.ca_cert, cert, key)
    )
    assert (severity, role) == ("warning", "cert")
    assert message.startswith("is not signed by a certificate in `tls.ca`")


def test_encrypted_key_der_cert_and_not_a_ca(tmp_path: Path, throwaway_pki) -> None:
    key = serialization.load_pem_private_key(
        throwaway_pki.client_key.read_bytes(), None
    )
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    der = tmp_path / "ca.der"
    der.write_bytes(
        pki.load_cert_key(
            throwaway_pki.ca_cert, throwaway_pki.ca_key
        ).cert.public_bytes(serialization.Encoding.DER)
    )
    found = problems(check_files(der, throwaway_pki.client_cert, locked))
    assert found == [
        (
            "error",
            "ca",
            f"{der}: is a DER certificate; mosquitto needs PEM:"
            " openssl x509 -inform der -in FILE -out FILE.pem",
        ),
        (
            "error",
            "key",
            f"{locked}: is protected by a passphrase, which a bridge"
            " cannot use: store it decrypted (openssl pkey -in KEY -out KEY.plain)",
        ),
    ]

    # A leaf given as the CA file.
    leaf_as_ca = problems(check_files(throwaway_pki.client_cert, None, None))
    assert ("error", "ca", "holds no CA certificate") in leaf_as_ca


def test_crlf_and_bom_files_are_read(tmp_path: Path, throwaway_pki) -> None:
    crlf = tmp_path / "crlf.crt"
    crlf.write_bytes(
        b"\xef\xbb\xbf" + throwaway_pki.client_cert.read_bytes().replace(b"\n", b"\r\n")
    )
    found = check_files(throwaway_pki.ca_cert, crlf, throwaway_pki.client_key)
    assert problems(found) == []


def test_missing_file(tmp_path: Path) -> None:
    found = check_files(tmp_path / "nope.crt", None, None)
    assert problems(found) == [
        (
            "error",
            "ca",
            f"{tmp_path / 'nope.crt'}: cannot read (No such file or directory)",
        )
    ]
