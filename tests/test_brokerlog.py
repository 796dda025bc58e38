"""Reasons read from mosquitto 2.0's own log lines, as the broker wrote them."""

from __future__ import annotations

from bridge_gen import brokerlog
from bridge_gen.brokerlog import diagnose, lines_of

ATTEMPT = [
    "2026-12-04T15:59:05: Connecting bridge (step 1) kaa (127.0.0.1:18883)",
    "2026-12-04T15:59:05: Connecting bridge (step 2) kaa (127.0.0.1:18883)",
]


def test_rejected_client_certificate() -> None:
    lines = [
        *ATTEMPT,
        "2026-12-04T15:59:05: OpenSSL Error[0]: error:0A000418:SSL routines::"
        "tlsv1 alert unknown ca",
        "2026-12-04T15:59:05: Error creating bridge: Protocol error.",
    ]
    found = diagnose(lines)

    assert found is not None
    assert (
        found.reason
        == "the remote rejected the client certificate (TLS alert: unknown ca)"
    )
    assert found.specific and not found.permanent


def test_vague_line_alone_is_not_specific() -> None:
    found = diagnose(
        [*ATTEMPT, "2026-12-04T15:58:43: Error creating bridge: Protocol error."]
    )

    assert found is not None
    assert found.reason == "could not connect to the remote: Protocol error"
    assert not found.specific


def test_key_that_does_not_match_is_permanent() -> None:
    lines = [
        *ATTEMPT,
        "2026-12-04T16:20:01: OpenSSL Error[0]: error:05800074:x509 certificate"
        " routines::key values mismatch",
        "2026-12-04T16:20:01: Error: Unable to load client key file"
        ' "/mosquitto/certs/kaa/client.key".',
    ]
    found = diagnose(lines)

    assert found is not None
    assert found.reason == (
        "the client key in `tls.key` does not belong to the certificate in `tls.cert`"
    )
    assert found.permanent


def test_port_in_use() -> None:
    found = diagnose(["2026-12-04T16:00:00: Error: Address already in use"])

    assert found is not None and found.permanent
    assert "`local.port`" in found.reason


def test_errors_are_told_apart_per_bridge() -> None:
    lines = [
        "t: Connecting bridge (step 1) one (127.0.0.1:1)",
        "t: Error creating bridge: Connection refused.",
        "t: Connecting bridge (step 1) two (127.0.0.1:2)",
        "t: OpenSSL Error[0]: error:0A000086:SSL routines::certificate verify failed",
    ]

    one = diagnose(lines_of(lines, "one"))
    two = diagnose(lines_of(lines, "two"))

    assert one is not None and one.reason.startswith("connection refused")
    assert two is not None and two.reason.startswith("TLS verification failed")


def test_nothing_to_say() -> None:
    assert diagnose([*ATTEMPT, "t: mosquitto version 2.0.11 running"]) is None


def test_attempts_are_the_first_steps_of_one_bridge_since_a_time() -> None:
    lines = [
        "2026-12-04T10:00:00: Connecting bridge (step 1) kaa (h:1)",
        "2026-12-04T10:00:01: Connecting bridge (step 1) other (h:2)",
        "2026-12-04T11:00:00: mosquitto version 2.0.11 starting",
        "2026-12-04T11:00:00: Connecting bridge (step 1) kaa (h:1)",
        "2026-12-04T11:00:05: Connecting bridge (step 2) kaa (h:1)",
        "2026-12-04T11:00:09: Connecting bridge (step 1) kaa (h:1)",
    ]
    assert brokerlog.attempts(lines, "kaa", since="2026-12-04T11:00:00") == [
        "2026-12-04T11:00:00",
        "2026-12-04T11:00:09",
    ]
    assert brokerlog.attempts(lines, "other") == ["2026-12-04T10:00:01"]


def test_bridge_gens_own_visits_are_told_apart() -> None:
    socket = "/mosquitto/run/local.sock"
    own = [
        f"2026-12-04T10:00:00: New connection from {socket}:0 on port 0.",
        f"2026-12-04T10:00:00: New client connected from {socket}:0 as"
        " bridge-gen-status (p2, c1, k60).",
        "2026-12-04T10:00:02: Client bridge-gen-status disconnected.",
        "2026-12-04T10:00:02: Client bg-hb-1a2b3c4d-p disconnected.",
        "2026-12-04T10:00:02: Client bridge-gen-health closed its connection.",
    ]
    theirs = [
        "2026-12-04T10:00:03: Connecting bridge (step 1) kaa (h:1)",
        "2026-12-04T10:00:04: Client press-1 disconnected.",
        "2026-12-04T10:00:04: New client connected from 10.0.0.7:5123 as"
        " press-2 (p2, c1, k60, u'press-2').",
    ]
    assert [brokerlog.own_line(line, socket) for line in own] == [True] * 5
    assert [brokerlog.own_line(line, socket) for line in theirs] == [False] * 3


def test_queued_messages_leave_the_retained_ones_out() -> None:
    answer = (
        "$SYS/broker/connection/gw-kaa/state 1\n"
        "$SYS/broker/store/messages/count 140\n"
        "$SYS/broker/retained messages/count 37\n"
    )
    numbers = brokerlog.read_sys(0, answer)
    assert numbers is not None
    assert numbers["$SYS/broker/connection/gw-kaa/state"] == "1"
    assert brokerlog.queued(numbers) == 103
    assert brokerlog.queued({}) is None


def test_bridge_gens_own_visits_do_not_push_the_reason_out() -> None:
    # Waiting for a bridge, every status read logs three lines; the line
    # that says why the bridge failed must stay within what diagnose reads.
    from bridge_gen import engine
    from bridge_gen.plan import CONTAINER

    socket = CONTAINER.socket
    visit = [
        f"2026-12-04T10:00:01: New connection from {socket}:0 on port 0.",
        f"2026-12-04T10:00:01: New client connected from {socket}:0 as"
        " bridge-gen-status (p2, c1, k60).",
        "2026-12-04T10:00:01: Client bridge-gen-status disconnected.",
    ]
    log = [
        "2026-12-04T10:00:00: Connecting bridge (step 1) kaa (127.0.0.1:8883)",
        "2026-12-04T10:00:00: OpenSSL Error[0]: error:0A000418:SSL routines::"
        "tlsv1 alert unknown ca",
        *visit * 40,
    ]

    class Container:
        def logs(self, **_: object) -> bytes:
            return "\n".join(log).encode()

    class Plan:
        layout = CONTAINER

    assert diagnose(lines_of(log, "kaa")) is None
    lines = engine.broker_lines(Container(), Plan())  # type: ignore[arg-type]
    found = diagnose(lines_of(lines, "kaa"))
    assert found is not None
    assert found.reason == (
        "the remote rejected the client certificate (TLS alert: unknown ca)"
    )
