"""A one-shot connection to a bridge's remote, to say why a bridge fails.

mosquitto 2.0 logs a refused TCP connection and several TLS failures alike
("Protocol error"), so when a bridge does not come up bridge-gen connects
to the remote itself, the way the bridge would (same CA, same client
certificate, host name checked), and reports the first step that fails.
The probe uses a client id of its own, so it never displaces the bridge's
session at the remote.

Each failure starts with its category (`connection refused`, `timeout`,
`unknown CA`, `hostname mismatch`, ...), and a connection that gets as far
as a TLS handshake also reports the TLS version and the certificates the
server presented.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import socket
import ssl
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography import x509

from bridge_gen.plan import BridgePlan

_CONNACK_CODES = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}

RESOLVE = "name does not resolve"
REFUSED = "connection refused"
TIMEOUT = "timeout"
UNREACHABLE = "unreachable"
UNKNOWN_CA = "unknown CA"
HOSTNAME = "hostname mismatch"
IP_ADDRESS = "IP address mismatch"
EXPIRED = "server certificate expired"
UNVERIFIED = "TLS verification failed"
HANDSHAKE = "TLS handshake failed"
REJECTED = "certificate rejected by the server"
NOT_TLS = "not TLS"
TLS_FILES = "TLS files unusable"
MQTT_REFUSED = "MQTT connection refused"
CLOSED = "closed"

# OpenSSL's X509_V_ERR codes, as ssl.SSLCertVerificationError.verify_code.
_VERIFY_CODES = {
    2: UNKNOWN_CA,  # unable to get issuer certificate
    18: UNKNOWN_CA,  # self-signed leaf
    19: UNKNOWN_CA,  # self-signed certificate in the chain
    20: UNKNOWN_CA,  # unable to get local issuer certificate
    21: UNKNOWN_CA,  # unable to verify the first certificate
    10: EXPIRED,
    62: HOSTNAME,
    64: IP_ADDRESS,
}


# Alerts a server sends about the client's certificate; any other alert
# (a protocol version or cipher it will not use) ends the handshake too.
_CERTIFICATE_ALERTS = ("certificate", "unknown ca", "access denied", "decrypt error")


@dataclass(frozen=True)
class Tls:
    ca: Path
    cert: Path | None = None
    key: Path | None = None


@dataclass(frozen=True)
class Certificate:
    """One certificate the server presented, as people read it."""

    subject: str
    issuer: str
    not_after: str  # ISO 8601, UTC

    def __str__(self) -> str:
        return f"{self.subject}, issued by {self.issuer}, valid until {self.not_after}"


@dataclass(frozen=True)
class Probed:
    """What one connection attempt found; `failure` None means accepted."""

    failure: str | None = None  # starts with `category`
    category: str | None = None
    tls_version: str | None = None
    # The server's certificate first. Before Python 3.13 the ssl module
    # hands out only that one, and `whole_chain` stays False.
    chain: tuple[Certificate, ...] = field(default_factory=tuple)
    whole_chain: bool = False


def tls_of(bridge: BridgePlan) -> Tls | None:
    """The files a bridge connects with, as the probe takes them."""
    if bridge.ca is None:
        return None
    return Tls(
        bridge.ca.host_path,
        bridge.cert.host_path if bridge.cert else None,
        bridge.key.host_path if bridge.key else None,
    )


def probe(host: str, port: int, tls: Tls | None, timeout: float = 5.0) -> str | None:
    """None when the remote accepts an MQTT connection; else what failed."""
    return inspect(host, port, tls, timeout).failure


def inspect(host: str, port: int, tls: Tls | None, timeout: float = 5.0) -> Probed:
    """Connect as the bridge would and say how far it got, and what it saw."""
    where = f"{host}:{port}"
    # The files first: a failure there is about them, not the remote.
    try:
        context = _context(tls, verify=True) if tls else None
    except (OSError, ssl.SSLError) as exc:
        why = getattr(exc, "strerror", None) or exc
        return _failed(TLS_FILES, f"cannot use the TLS files: {why}")
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return _connect_failure(exc, host, where, timeout)

    with raw:
        try:
            stream = context.wrap_socket(raw, server_hostname=host) if context else raw
        except ssl.SSLCertVerificationError as exc:
            assert tls is not None
            return _unverified(exc, host, port, tls, timeout)
        except ssl.SSLError as exc:
            return _failed(*_tls_failure(exc, tls))
        except TimeoutError:
            return _failed(
                TIMEOUT,
                f"{where} did not finish the TLS handshake within {timeout:g} s",
            )
        except OSError as exc:
            # A plain MQTT broker drops a connection that opens with a TLS
            # hello.
            return _failed(
                NOT_TLS,
                f"{where} closed the connection during the TLS handshake"
                f" ({exc.strerror or exc}); is it a TLS port?",
            )
        seen = _seen(stream) if tls else Probed()
        return replace(_mqtt_connect(stream, where, tls, timeout), **_fields(seen))


def _failed(category: str, text: str) -> Probed:
    return Probed(failure=f"{category}: {text}", category=category)


def _fields(seen: Probed) -> dict:
    return {
        "tls_version": seen.tls_version,
        "chain": seen.chain,
        "whole_chain": seen.whole_chain,
    }


def _connect_failure(exc: OSError, host: str, where: str, timeout: float) -> Probed:
    if isinstance(exc, socket.gaierror):
        return _failed(RESOLVE, f"the host name {host} does not resolve")
    if isinstance(exc, ConnectionRefusedError):
        return _failed(REFUSED, f"nothing accepts connections at {where}")
    if isinstance(exc, TimeoutError):
        return _failed(TIMEOUT, f"no answer from {where} within {timeout:g} s")
    return _failed(UNREACHABLE, f"cannot connect to {where}: {exc.strerror or exc}")


def _context(tls: Tls, *, verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(tls.ca))
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.cert and tls.key:
        context.load_cert_chain(str(tls.cert), str(tls.key))
    return context


def _seen(stream: ssl.SSLSocket) -> Probed:
    """The TLS version and the certificates of a finished handshake."""
    chain_of = getattr(stream, "get_unverified_chain", None)  # Python 3.13+
    if chain_of is not None:
        der = list(chain_of())
    else:
        leaf = stream.getpeercert(binary_form=True)
        der = [leaf] if leaf else []
    return Probed(
        tls_version=stream.version(),
        chain=tuple(_certificate(d) for d in der),
        whole_chain=chain_of is not None,
    )


def _certificate(der: bytes) -> Certificate:
    cert = x509.load_der_x509_certificate(der)
    return Certificate(
        subject=cert.subject.rfc4514_string() or "(empty subject)",
        issuer=cert.issuer.rfc4514_string() or "(empty issuer)",
        not_after=cert.not_valid_after_utc.isoformat(),
    )


def _unverified(
    exc: ssl.SSLCertVerificationError, host: str, port: int, tls: Tls, timeout: float
) -> Probed:
    """Why the server's certificate failed, and what it was."""
    category = _VERIFY_CODES.get(exc.verify_code, UNVERIFIED)
    # The failed handshake keeps no certificate: look again without
    # verifying, only to show the user what the server presents.
    seen = _look(host, port, tls, timeout)
    leaf = f"the server presented {seen.chain[0]}" if seen.chain else ""
    text = {
        UNKNOWN_CA: "its certificate is not signed by a CA in `tls.ca`",
        HOSTNAME: f"its certificate does not name {host}, the host in `address`",
        IP_ADDRESS: f"its certificate has no IP address entry for {host}",
        EXPIRED: "its certificate has expired",
    }.get(category, "its certificate does not verify against `tls.ca`")
    detail = "; ".join(x for x in (text, leaf) if x)
    return replace(
        _failed(category, f"{detail} ({exc.verify_message})"), **_fields(seen)
    )


def _look(host: str, port: int, tls: Tls, timeout: float) -> Probed:
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            context = _context(tls, verify=False)
            name = None if _is_ip(host) else host
            with context.wrap_socket(raw, server_hostname=name) as stream:
                return _seen(stream)
    except (OSError, ValueError):
        return Probed()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _mqtt_connect(
    stream: socket.socket, where: str, tls: Tls | None, timeout: float
) -> Probed:
    client_id = f"bridge-gen-probe-{secrets.token_hex(4)}".encode()
    body = (
        struct.pack("!H", 4)
        + b"MQTT"
        + bytes([4, 0x02])
        + struct.pack("!H", 10)
        + struct.pack("!H", len(client_id))
        + client_id
    )
    try:
        stream.sendall(bytes([0x10, len(body)]) + body)
        answer = stream.recv(4)
    except ssl.SSLError as exc:
        # With TLS 1.3 the server's verdict on the client certificate comes
        # after the handshake, on the first read.
        return _failed(*_tls_failure(exc, tls))
    except TimeoutError:
        return _failed(
            TIMEOUT, f"{where} did not answer the MQTT CONNECT within {timeout:g} s"
        )
    except OSError as exc:
        return _failed(CLOSED, f"{where} closed the connection: {exc.strerror or exc}")
    return _connack(answer, stream, where)


def _connack(answer: bytes, stream: socket.socket, where: str) -> Probed:
    if len(answer) < 4 or answer[0] != 0x20:
        return _failed(
            CLOSED, f"{where} closed the connection without answering the MQTT CONNECT"
        )
    if answer[3] != 0:
        why = _CONNACK_CODES.get(answer[3], f"code {answer[3]}")
        return _failed(MQTT_REFUSED, f"the remote refused the MQTT connection: {why}")
    with contextlib.suppress(OSError):
        stream.sendall(b"\xe0\x00")  # DISCONNECT, to leave politely
    return Probed()


def _tls_failure(exc: ssl.SSLError, tls: Tls | None) -> tuple[str, str]:
    text = exc.reason or str(exc)
    # OpenSSL's reasons read WRONG_VERSION_NUMBER, TLSV1_ALERT_UNKNOWN_CA.
    lowered = text.lower().replace("_", " ")
    if isinstance(exc, ssl.SSLEOFError) or "eof" in lowered:
        # mosquitto hangs up without a readable alert when it refuses a
        # client certificate; with none presented that is the likely cause.
        if tls and tls.cert:
            return REJECTED, (
                "the remote closed the TLS connection during the handshake: it"
                " rejected the client certificate (not signed by a CA it"
                " trusts, expired, or revoked)"
            )
        return REJECTED, (
            "the remote closed the TLS connection during the handshake: it"
            " probably requires a client certificate (`tls.cert`, `tls.key`)"
        )
    if "alert" in lowered:
        alert = lowered.split("alert", 1)[1].strip()
        if any(word in alert for word in _CERTIFICATE_ALERTS):
            return REJECTED, (
                f"the remote rejected the client certificate (TLS alert: {alert})"
            )
        return HANDSHAKE, f"the remote ended the handshake (TLS alert: {alert})"
    if "wrong version number" in lowered or "record layer" in lowered:
        return NOT_TLS, "the handshake failed; is the remote port a TLS port?"
    return HANDSHAKE, text
