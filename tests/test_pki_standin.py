"""The throwaway PKI and the TLS stand-in broker, against the real binary."""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import queue
import socket
import stat
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.x509 import SubjectAlternativeName
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    PolicyBuilder,
    Store,
    VerificationError,
)
from paho.mqtt.enums import CallbackAPIVersion

from bridge_gen.pki import (
    Pki,
    issue_cert,
    load_cert_key,
    make_throwaway_pki,
    new_ca,
    write_cert,
    write_key,
)
from bridge_gen.standin import StandInBroker, StandInError, tls_client

LOCALHOST = x509.DNSName("localhost")
LOOPBACK_IP = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _verify_server(
    ca: x509.Certificate,
    leaf: x509.Certificate,
    name: x509.DNSName | x509.IPAddress,
    when: dt.datetime | None = None,
) -> None:
    when = when or dt.datetime.now(dt.timezone.utc)
    builder = PolicyBuilder().store(Store([ca])).time(when)
    builder.build_server_verifier(name).verify(leaf, [])


def _connects(client: mqtt.Client, broker: StandInBroker) -> bool:
    """True if the broker sends a successful CONNACK within 5 s."""
    outcome: list[bool] = []
    client.on_connect = lambda *a: outcome.append(not a[3].is_failure)
    client.on_disconnect = lambda *a: outcome.append(False)
    try:
        client.connect(broker.host, broker.port)
    except OSError:
        return False

    # Driven here rather than by loop_start(): a refused client would sit
    # in paho's reconnect wait, and joining that thread costs a second.
    deadline = time.monotonic() + 5.0
    while not outcome and time.monotonic() < deadline:
        client.loop(timeout=0.1)
    client.disconnect()
    return outcome[:1] == [True]


def _log_once_it_shows(broker: StandInBroker, text: str) -> str:
    """The broker log, after waiting up to 3 s for ``text`` to appear."""
    # The broker may log a refusal just after the client has seen it.
    deadline = time.monotonic() + 3.0
    log = broker.log_path.read_text()
    while text not in log and time.monotonic() < deadline:
        time.sleep(0.05)
        log = broker.log_path.read_text()
    assert text in log
    return log


def _client(client_id: str, ca: Path, cert: Path | None = None) -> mqtt.Client:
    """A TLS client trusting ``ca``; ``cert``'s key is its .key sibling."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    key = cert.with_suffix(".key") if cert else None
    client.tls_set(
        ca_certs=str(ca),
        certfile=str(cert) if cert else None,
        keyfile=str(key) if key else None,
    )
    return client


# --- PKI ---------------------------------------------------------------


def test_server_certificate_verifies_for_dns_and_ip(
    throwaway_pki: Pki,
) -> None:
    ca = _load(throwaway_pki.ca_cert)
    server = _load(throwaway_pki.server_cert)

    _verify_server(ca, server, LOCALHOST)
    _verify_server(ca, server, LOOPBACK_IP)

    ext = server.extensions.get_extension_for_class(SubjectAlternativeName)
    sans = ext.value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1")
    ]


def test_client_certificate_is_signed_by_the_ca_for_client_auth(
    throwaway_pki: Pki,
) -> None:
    ca = _load(throwaway_pki.ca_cert)
    client = _load(throwaway_pki.client_cert)

    client.verify_directly_issued_by(ca)
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    cn = client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert cn[0].value == "bridge-gen-client"


def test_ca_may_sign_certificates_only(throwaway_pki: Pki) -> None:
    ca = _load(throwaway_pki.ca_cert)

    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)

    assert basic.critical and basic.value.ca
    assert basic.value.path_length == 0
    assert usage.value.key_cert_sign and not usage.value.digital_signature


def test_keys_are_0600_and_certificates_0644(throwaway_pki: Pki) -> None:
    modes = {
        p.name: stat.S_IMODE(p.stat().st_mode)
        for p in throwaway_pki.directory.iterdir()
    }

    assert modes == {
        "ca.crt": 0o644,
        "ca.key": 0o600,
        "server.crt": 0o644,
        "server.key": 0o600,
        "client.crt": 0o644,
        "client.key": 0o600,
    }


def test_rewriting_replaces_a_world_readable_key(tmp_path: Path) -> None:
    old_key = tmp_path / "ca.key"
    old_key.write_text("old")
    old_key.chmod(0o644)

    pki = make_throwaway_pki(tmp_path)

    assert stat.S_IMODE(pki.ca_key.stat().st_mode) == 0o600
    assert pki.ca_key.read_text().startswith("-----BEGIN PRIVATE KEY-----")


def test_building_blocks_make_the_broken_cases(throwaway_pki: Pki) -> None:
    ca = load_cert_key(throwaway_pki.ca_cert, throwaway_pki.ca_key)
    now = dt.datetime.now(dt.timezone.utc)
    day = dt.timedelta(days=1)
    # All DNS-only: the IP check below relies on that.
    dns = ["localhost"]
    server = functools.partial(issue_cert, usage="server", dns_names=dns)

    expired = server(ca, "old", not_after=now - day)
    early = server(ca, "new", not_before=now + day)
    dns_only = server(ca, "dns")
    foreign = server(new_ca("other CA"), "x")

    _verify_server(ca.cert, dns_only.cert, LOCALHOST)
    for leaf, name in (
        (expired, LOCALHOST),
        (early, LOCALHOST),
        (dns_only, LOOPBACK_IP),
        (foreign, LOCALHOST),
    ):
        with pytest.raises(VerificationError):
            _verify_server(ca.cert, leaf.cert, name)


def test_validity_window_must_not_be_empty() -> None:
    now = dt.datetime.now(dt.timezone.utc)

    with pytest.raises(ValueError, match="before it starts"):
        new_ca(not_before=now, not_after=now)


# --- stand-in broker ---------------------------------------------------


@pytest.mark.broker
def test_client_with_certificate_publishes_and_receives(
    standin_broker: StandInBroker, throwaway_pki: Pki
) -> None:
    broker = standin_broker
    client = tls_client(throwaway_pki, broker.host, broker.port)
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed = threading.Event()
    client.on_message = lambda _c, _u, msg: received.put(msg)
    client.on_subscribe = lambda *_args: subscribed.set()

    try:
        client.subscribe("standin/echo/#", qos=1)
        assert subscribed.wait(5.0)
        client.publish("standin/echo/1", b"hello", qos=1).wait_for_publish(5.0)
        msg = received.get(timeout=5.0)
    finally:
        client.disconnect()
        client.loop_stop()

    assert (msg.topic, msg.payload) == ("standin/echo/1", b"hello")


@pytest.mark.broker
def test_client_without_certificate_is_refused(
    standin_broker: StandInBroker, throwaway_pki: Pki
) -> None:
    client = _client("no-cert", throwaway_pki.ca_cert)

    assert not _connects(client, standin_broker)
    log = _log_once_it_shows(standin_broker, "SSL routines")
    assert "as no-cert" not in log


@pytest.mark.broker
def test_client_certificate_from_another_ca_is_refused(
    standin_broker: StandInBroker, throwaway_pki: Pki, tmp_path: Path
) -> None:
    intruder = issue_cert(new_ca("other CA"), "intruder", usage="client")
    cert = write_cert(tmp_path / "intruder.crt", intruder.cert)
    write_key(tmp_path / "intruder.key", intruder.key)
    client = _client("intruder", throwaway_pki.ca_cert, cert)

    assert not _connects(client, standin_broker)
    log = _log_once_it_shows(standin_broker, "SSL routines")
    assert "as intruder" not in log


@pytest.mark.broker
def test_restart_serves_the_same_port_again(
    standin_broker: StandInBroker, throwaway_pki: Pki
) -> None:
    port = standin_broker.port

    standin_broker.stop()
    assert not standin_broker.running
    standin_broker.start()

    assert standin_broker.port == port
    pki = throwaway_pki
    client = _client("after-restart", pki.ca_cert, pki.client_cert)
    assert _connects(client, standin_broker)


@pytest.mark.broker
def test_start_failure_shows_the_broker_log(
    tmp_path: Path, throwaway_pki: Pki, mosquitto_bin: str
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        broker = StandInBroker(
            tmp_path / "b", throwaway_pki, port=port, mosquitto=mosquitto_bin
        )

        with pytest.raises(StandInError) as caught:
            broker.start(timeout=5.0)

    assert "mosquitto exited with code" in str(caught.value)
    assert "Address already in use" in str(caught.value)
    assert not broker.running


@pytest.mark.broker
def test_optional_client_certificate_admits_anonymous_tls(
    tmp_path: Path, throwaway_pki: Pki, mosquitto_bin: str
) -> None:
    broker = StandInBroker(
        tmp_path / "b",
        throwaway_pki,
        require_certificate=False,
        mosquitto=mosquitto_bin,
    )

    with broker:
        client = _client("anonymous", throwaway_pki.ca_cert)
        assert _connects(client, broker)

    assert "require_certificate" not in broker.config_text()
