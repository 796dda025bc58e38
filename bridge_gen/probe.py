"""A one-shot connection to a bridge's remote, to say why a bridge fails.

mosquitto 2.0 logs a refused TCP connection and several TLS failures alike
("Protocol error"), so when a bridge does not come up bridge-gen connects
to the remote itself, the way the bridge would (same CA, same client
certificate, host name checked), and reports the first step that fails.
The probe uses a client id of its own, so it never displaces the bridge's
session at the remote.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import ssl
import struct
from dataclasses import dataclass
from pathlib import Path

from bridge_gen.plan import BridgePlan

_CONNACK_CODES = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}


@dataclass(frozen=True)
class Tls:
    ca: Path
    cert: Path | None = None
    key: Path | None = None


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
    where = f"{host}:{port}"
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror:
        return f"the host name {host} does not resolve"
    except ConnectionRefusedError:
        return f"connection refused: nothing accepts connections at {where}"
    except TimeoutError:
        return f"no answer from {where} within {timeout:g} s (a firewall?)"
    except OSError as exc:
        return f"cannot connect to {where}: {exc.strerror or exc}"

    with raw:
        try:
            stream = _wrap(raw, host, tls) if tls else raw
        except ssl.SSLCertVerificationError as exc:
            return (
                f"TLS verification failed: {exc.verify_message}; the remote's"
                " certificate must be signed by `tls.ca` and name the host"
                " written in `address`"
            )
        except ssl.SSLError as exc:
            return _tls_failure(exc, tls)
        except OSError as exc:
            return f"cannot use the TLS files: {exc.strerror or exc}"
        return _mqtt_connect(stream, where, tls)


def _wrap(raw: socket.socket, host: str, tls: Tls) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(tls.ca))
    if tls.cert and tls.key:
        context.load_cert_chain(str(tls.cert), str(tls.key))
    return context.wrap_socket(raw, server_hostname=host)


def _mqtt_connect(stream: socket.socket, where: str, tls: Tls | None) -> str | None:
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
        return _tls_failure(exc, tls)
    except OSError as exc:
        return f"{where} closed the connection: {exc.strerror or exc}"
    if len(answer) < 4 or answer[0] != 0x20:
        return f"{where} closed the connection without answering the MQTT CONNECT"
    if answer[3] != 0:
        why = _CONNACK_CODES.get(answer[3], f"code {answer[3]}")
        return f"the remote refused the MQTT connection: {why}"
    with contextlib.suppress(OSError):
        stream.sendall(b"\xe0\x00")  # DISCONNECT, to leave politely
    return None


def _tls_failure(exc: ssl.SSLError, tls: Tls | None) -> str:
    text = exc.reason or str(exc)
    lowered = text.lower()
    if isinstance(exc, ssl.SSLEOFError) or "eof" in lowered:
        # mosquitto hangs up without a readable alert when it refuses a
        # client certificate; with none presented that is the likely cause.
        if tls and tls.cert:
            return (
                "the remote closed the TLS connection during the handshake: it"
                " rejected the client certificate (not signed by a CA it"
                " trusts, expired, or revoked)"
            )
        return (
            "the remote closed the TLS connection during the handshake: it"
            " probably requires a client certificate (`tls.cert`, `tls.key`)"
        )
    if "alert" in lowered:
        alert = lowered.split("alert", 1)[1].replace("_", " ").strip()
        return f"the remote rejected the client certificate (TLS alert: {alert})"
    if "wrong version number" in lowered or "record layer" in lowered:
        return "TLS handshake failed: is the remote port a TLS port?"
    return f"TLS handshake failed: {text}"
