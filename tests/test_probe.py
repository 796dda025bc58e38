"""The live probe against real TLS servers: what it reports for each outcome.

Stand-in brokers with certificates made wrong on purpose, and a few tiny
servers in a thread for what mosquitto never does (hang, speak plain text,
hang up after the handshake). Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import errno
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from bridge_gen import pki, probe
from bridge_gen.pki import Pki
from bridge_gen.standin import StandInBroker, free_port
from tests.mqtt_probe import mosquitto_with

NOW = dt.datetime.now(dt.timezone.utc)


def files(p: Pki) -> probe.Tls:
    return probe.Tls(p.ca_cert, p.client_cert, p.client_key)


def with_server_cert(p: Pki, **issue) -> Pki:
    """The same PKI with its server certificate replaced."""
    ca = pki.load_cert_key(p.ca_cert, p.ca_key)
    server = pki.issue_cert(ca, "odd server", usage="server", **issue)
    pki.write_cert(p.server_cert, server.cert)
    pki.write_key(p.server_key, server.key)
    return p


@contextmanager
def broker(tmp: Path, p: Pki, mosquitto: str, **options) -> Iterator[StandInBroker]:
    standin = StandInBroker(tmp / "broker", p, mosquitto=mosquitto, **options)
    # Our own client would fail against these certificates too: wait only
    # for the port to listen.
    standin.client_ca = p.ca_cert
    with standin:
        yield standin


@contextmanager
def one_shot(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A server on 127.0.0.1 that passes its first connection to `handle`."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            handle(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(10)


def server_context(p: Pki) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(p.server_cert, p.server_key)
    return context


def test_accepted_shows_the_version_and_the_certificate(
    standin_broker: StandInBroker, throwaway_pki: Pki
) -> None:
    found = probe.inspect("127.0.0.1", standin_broker.port, files(throwaway_pki))

    assert found.failure is None
    assert found.tls_version == "TLSv1.3"
    leaf = found.chain[0]
    assert leaf.subject == "CN=bridge-gen stand-in server"
    assert leaf.issuer == "CN=bridge-gen throwaway CA"
    assert leaf.not_after.startswith(str((NOW + dt.timedelta(days=365)).year))
    # The ssl module reads the whole chain only from Python 3.13 on.
    assert found.whole_chain == hasattr(ssl.SSLSocket, "get_unverified_chain")


def test_connection_refused() -> None:
    port = free_port()
    found = probe.inspect("127.0.0.1", port, None)
    assert found.category == probe.REFUSED
    assert found.failure == (
        f"connection refused: nothing accepts connections at 127.0.0.1:{port}"
    )


def test_timeout_in_the_handshake(throwaway_pki: Pki) -> None:
    # Listening, never answering: the kernel completes the TCP handshake.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        found = probe.inspect("127.0.0.1", port, files(throwaway_pki), timeout=1)
    assert found.failure == (
        f"timeout: 127.0.0.1:{port} did not finish the TLS handshake within 1 s"
    )


@pytest.mark.parametrize(
    ("error", "category", "text"),
    [
        (socket.gaierror(-2, "Name or service not known"), probe.RESOLVE, "the host"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), probe.UNREACHABLE, "cannot"),
        (TimeoutError(), probe.TIMEOUT, "no answer from"),
    ],
)
def test_failures_before_any_connection(
    monkeypatch: pytest.MonkeyPatch, error: OSError, category: str, text: str
) -> None:
    # Without sending anything: the socket layer is made to fail as it would.
    def fail(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(probe.socket, "create_connection", fail)
    found = probe.inspect("gateway.test", 8883, None)
    assert found.category == category
    assert found.failure.startswith(f"{category}: {text}")


def test_unknown_ca(standin_broker: StandInBroker, tmp_path: Path, throwaway_pki):
    other = pki.write_cert(tmp_path / "other-ca.crt", pki.new_ca("other CA").cert)
    tls = probe.Tls(other, throwaway_pki.client_cert, throwaway_pki.client_key)

    found = probe.inspect("127.0.0.1", standin_broker.port, tls)

    assert found.category == probe.UNKNOWN_CA
    assert found.failure.startswith(
        "unknown CA: its certificate is not signed by a CA in `tls.ca`; the server"
        " presented CN=bridge-gen stand-in server, issued by CN=bridge-gen"
        " throwaway CA, valid until "
    )
    assert found.chain[0].subject == "CN=bridge-gen stand-in server"


def test_hostname_mismatch(mosquitto_bin: str, tmp_path: Path, throwaway_pki) -> None:
    p = with_server_cert(
        throwaway_pki, dns_names=["other.example"], ip_addresses=["127.0.0.1"]
    )
    with broker(tmp_path, p, mosquitto_bin) as standin:
        found = probe.inspect("localhost", standin.port, files(p))
    assert found.category == probe.HOSTNAME
    assert found.failure.startswith(
        "hostname mismatch: its certificate does not name localhost, the host in"
        " `address`; the server presented CN=odd server"
    )


def test_ip_address_mismatch(mosquitto_bin: str, tmp_path: Path, throwaway_pki) -> None:
    p = with_server_cert(throwaway_pki, dns_names=["localhost"])
    with broker(tmp_path, p, mosquitto_bin) as standin:
        found = probe.inspect("127.0.0.1", standin.port, files(p))
    assert found.category == probe.IP_ADDRESS
    assert found.failure.startswith(
        "IP address mismatch: its certificate has no IP address entry for 127.0.0.1"
    )


def test_expired_server_certificate(
    mosquitto_bin: str, tmp_path: Path, throwaway_pki
) -> None:
    p = with_server_cert(
        throwaway_pki,
        ip_addresses=["127.0.0.1"],
        not_after=NOW - dt.timedelta(days=2),
    )
    with broker(tmp_path, p, mosquitto_bin) as standin:
        found = probe.inspect("127.0.0.1", standin.port, files(p))
    assert found.category == probe.EXPIRED
    assert found.failure.startswith(
        "server certificate expired: its certificate has expired"
    )


def test_server_certificate_not_valid_yet(
    mosquitto_bin: str, tmp_path: Path, throwaway_pki
) -> None:
    p = with_server_cert(
        throwaway_pki,
        ip_addresses=["127.0.0.1"],
        not_before=NOW + dt.timedelta(days=2),
    )
    with broker(tmp_path, p, mosquitto_bin) as standin:
        found = probe.inspect("127.0.0.1", standin.port, files(p))
    assert found.category == probe.UNVERIFIED
    assert found.failure.endswith("(certificate is not yet valid)")


def test_client_certificate_rejected(
    standin_broker: StandInBroker, tmp_path: Path, throwaway_pki: Pki
) -> None:
    stranger = pki.issue_cert(pki.new_ca("stranger CA"), "stranger", usage="client")
    cert = pki.write_cert(tmp_path / "stranger.crt", stranger.cert)
    key = pki.write_key(tmp_path / "stranger.key", stranger.key)

    found = probe.inspect(
        "127.0.0.1", standin_broker.port, probe.Tls(throwaway_pki.ca_cert, cert, key)
    )

    assert found.category == probe.REJECTED
    # Whether mosquitto's alert is readable or it just hangs up depends on
    # timing; either way the category and the cause are the same.
    assert found.failure.startswith("certificate rejected by the server: the remote")
    assert "rejected the client certificate" in found.failure


def test_mqtt_connection_refused(
    mosquitto_bin: str, tmp_path: Path, throwaway_pki: Pki
) -> None:
    class Closed(StandInBroker):
        def config_text(self) -> str:
            text = super().config_text()
            return text.replace("allow_anonymous true", "allow_anonymous false")

    standin = Closed(
        tmp_path / "closed", throwaway_pki, mosquitto=mosquitto_bin,
        require_certificate=False,
    )  # fmt: skip
    standin.client_ca = throwaway_pki.ca_cert
    with standin:
        found = probe.inspect(
            "127.0.0.1", standin.port, probe.Tls(throwaway_pki.ca_cert)
        )
    assert found.failure == (
        "MQTT connection refused: the remote refused the MQTT connection:"
        " not authorised"
    )
    assert found.tls_version == "TLSv1.3"


def test_not_a_tls_port(throwaway_pki: Pki) -> None:
    def plain(conn: socket.socket) -> None:
        conn.recv(1024)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    with one_shot(plain) as port:
        found = probe.inspect("127.0.0.1", port, files(throwaway_pki))
    assert found.failure == (
        "not TLS: the handshake failed; is the remote port a TLS port?"
    )


def test_a_plain_mqtt_broker_is_not_tls(
    mosquitto_bin: str, tmp_path: Path, throwaway_pki: Pki
) -> None:
    port = free_port()
    conf = tmp_path / "plain.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    with mosquitto_with(mosquitto_bin, conf, port):
        found = probe.inspect("127.0.0.1", port, files(throwaway_pki))
    assert found.category == probe.NOT_TLS, found.failure
    assert found.failure.endswith("is it a TLS port?")


def test_handshake_refused_for_another_reason(throwaway_pki: Pki) -> None:
    context = server_context(throwaway_pki)
    context.set_ciphers("aNULL")  # nothing a verifying client offers
    context.maximum_version = ssl.TLSVersion.TLSv1_2

    def refuse(conn: socket.socket) -> None:
        with suppress(ssl.SSLError):
            context.wrap_socket(conn, server_side=True)

    with one_shot(refuse) as port:
        found = probe.inspect("127.0.0.1", port, files(throwaway_pki))
    assert found.category == probe.HANDSHAKE
    assert "TLS alert" in found.failure


def test_closed_after_the_handshake(throwaway_pki: Pki) -> None:
    context = server_context(throwaway_pki)

    def hang_up(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as stream:
            stream.recv(1024)

    with one_shot(hang_up) as port:
        found = probe.inspect("127.0.0.1", port, files(throwaway_pki))
    assert found.category == probe.CLOSED
    assert found.tls_version is not None


def test_unusable_tls_files(standin_broker: StandInBroker, throwaway_pki, tmp_path):
    tls = probe.Tls(throwaway_pki.ca_cert, tmp_path / "gone.crt", tmp_path / "x.key")
    found = probe.inspect("127.0.0.1", standin_broker.port, tls)
    assert found.category == probe.TLS_FILES
