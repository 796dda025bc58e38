"""The KaaCloud responder, driven by an endpoint talking KP1 straight to it.

No bridge here: a paho TLS client plays the endpoint on the stand-in broker,
so these tests pin down what the cloud side answers before bridge tests rely
on it.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from typing import Any

import pytest

from bridge_gen.standin import StandInBroker, tls_client
from tests.kaa_cloud import KaaCloud, Kp1Topic, parse_topic
from tests.mqtt_probe import Listener, Received

APP = "bspu542ikfmmfgrk47s0-v1"
TOKEN = "sensor-1"
OTHER = "sensor-2"
BASE = f"kp1/{APP}"

broker = pytest.mark.broker


@pytest.fixture
def cloud(standin_broker: StandInBroker) -> Iterator[KaaCloud]:
    metadata = {(APP, TOKEN): {"model": "m1"}}
    configs = {(APP, TOKEN): {"configId": "c1", "config": {"rate": 10}}}
    with KaaCloud(
        standin_broker.pki,
        standin_broker.host,
        standin_broker.port,
        metadata=metadata,
        configs=configs,
    ) as kaa:
        yield kaa
    # A crash inside the responder would otherwise only show as a timeout.
    assert kaa.handler_errors() == []


@pytest.fixture
def endpoint(standin_broker: StandInBroker, cloud: KaaCloud) -> Iterator[Listener]:
    client = tls_client(
        standin_broker.pki, standin_broker.host, standin_broker.port, "endpoint"
    )
    listener = Listener(client)
    # Both tokens: one connection may serve a whole fleet.
    listener.subscribe(f"{BASE}/+/{TOKEN}/#")
    listener.subscribe(f"{BASE}/+/{OTHER}/#")
    yield listener
    listener.close()


def send(endpoint: Listener, topic: str, payload: Any = b"") -> None:
    """Publish at QoS 1 and wait for the broker's PUBACK."""
    if not isinstance(payload, bytes | str):
        payload = json.dumps(payload)
    info = endpoint.client.publish(topic, payload, qos=1)
    info.wait_for_publish(5.0)
    assert info.is_published(), f"no PUBACK for {topic}"


def replies_until(endpoint: Listener, last: str) -> list[Received]:
    """Every reply the endpoint got, up to and including one on ``last``.

    The cloud answers in the order requests arrive, and the broker keeps
    that order, so a reply to a later request proves that an earlier one
    got no reply at all.
    """
    replies = []
    while True:
        try:
            message = endpoint.next(timeout=5.0)
        except queue.Empty:
            got = [r.topic for r in replies]
            pytest.fail(f"no reply on {last} within 5 s; replies: {got}")
        if message.topic.rsplit("/", 1)[-1] in ("status", "error"):
            replies.append(message)
        if message.topic == last:
            return replies


def only_reply(endpoint: Listener, topic: str) -> Received:
    """The reply on ``topic``, failing if any other reply came first."""
    replies = replies_until(endpoint, topic)
    assert [r.topic for r in replies] == [topic]
    return replies[0]


def error_body(reply: Received) -> dict[str, Any]:
    body = json.loads(reply.payload)
    assert set(body) == {"statusCode", "reasonPhrase"}
    assert body["reasonPhrase"]
    return body


# -- topic parsing (no broker) ------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        (f"{BASE}/dcx/t/json", Kp1Topic(APP, "dcx", "t", "json", None)),
        (f"{BASE}/dcx/t/json/42", Kp1Topic(APP, "dcx", "t", "json", 42)),
        (
            f"{BASE}/epmx/t/update/keys/7",
            Kp1Topic(APP, "epmx", "t", "update/keys", 7),
        ),
        # 0 is not a positive integer, so it is part of the resource.
        (f"{BASE}/dcx/t/json/0", Kp1Topic(APP, "dcx", "t", "json/0", None)),
        (
            f"{BASE}/cex/t/command/reboot",
            Kp1Topic(APP, "cex", "t", "command/reboot", None),
        ),
    ],
)
def test_parse_topic_splits_kp1_levels(topic: str, expected: Kp1Topic) -> None:
    assert parse_topic(topic) == expected


@pytest.mark.parametrize(
    "topic",
    [
        f"{BASE}/dcx/t",  # no resource
        f"{BASE}/dcx/t/42",  # only a request id where the resource goes
        f"{BASE}/dcx/t/json/",  # trailing slash: an empty level
        f"{BASE}//t/json",
        "kp2/app/dcx/t/json",
    ],
)
def test_parse_topic_refuses_non_kp1_topics(topic: str) -> None:
    assert parse_topic(topic) is None


def test_unknown_config_extension_is_refused(throwaway_pki: Any) -> None:
    with pytest.raises(ValueError, match="not a configuration extension"):
        KaaCloud(
            throwaway_pki,
            "127.0.0.1",
            1,
            configs={(APP, TOKEN, "dcx"): {"configId": "c", "config": 1}},
        )


# -- dcx ------------------------------------------------------------------------


@broker
def test_telemetry_with_id_gets_empty_status(
    cloud: KaaCloud, endpoint: Listener
) -> None:
    send(endpoint, f"{BASE}/dcx/{TOKEN}/json/7", [{"temperature": 21}])

    reply = only_reply(endpoint, f"{BASE}/dcx/{TOKEN}/json/7/status")

    assert reply.payload == b""
    assert cloud.samples(APP, TOKEN) == [{"temperature": 21}]


@broker
def test_telemetry_without_id_gets_no_reply(
    cloud: KaaCloud, endpoint: Listener
) -> None:
    send(endpoint, f"{BASE}/dcx/{TOKEN}/json", {"temperature": 20})
    send(endpoint, f"{BASE}/dcx/{TOKEN}/json/8", {"temperature": 22})

    only_reply(endpoint, f"{BASE}/dcx/{TOKEN}/json/8/status")

    # A single object is one sample (Kaa 1.3 and later).
    samples = cloud.samples(APP, TOKEN)
    assert samples == [{"temperature": 20}, {"temperature": 22}]
    assert cloud.count(f"{BASE}/dcx/{TOKEN}/json") == 1


@broker
@pytest.mark.parametrize("suffix", ["/9", ""])
@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b'{"temperature": ', "not valid JSON"),
        (b"NaN", "not valid JSON"),
        (b"42", "must be a JSON array or object"),
    ],
)
def test_bad_telemetry_gets_error_400(
    cloud: KaaCloud, endpoint: Listener, suffix: str, payload: bytes, why: str
) -> None:
    # KP1: an error may come even for a request without an id.
    topic = f"{BASE}/dcx/{TOKEN}/json{suffix}"
    send(endpoint, topic, payload)

    body = error_body(only_reply(endpoint, f"{topic}/error"))

    assert body["statusCode"] == 400
    assert why in body["reasonPhrase"]
    assert cloud.samples(APP, TOKEN) == []


@broker
def test_plain_metric_is_recorded_without_reply(
    cloud: KaaCloud, endpoint: Listener
) -> None:
    send(endpoint, f"{BASE}/dcx/{TOKEN}/plain/temperature", "21.5")
    send(endpoint, f"{BASE}/dcx/{TOKEN}/plain/state", "on")
    send(endpoint, f"{BASE}/dcx/{TOKEN}/plain/humidity/3", "40")

    only_reply(endpoint, f"{BASE}/dcx/{TOKEN}/plain/humidity/3/status")

    assert cloud.plain_values(APP, TOKEN, "temperature") == [21.5]
    assert cloud.plain_values(APP, TOKEN, "state") == ["on"]
    assert cloud.plain_values(APP, TOKEN, "humidity") == [40]


@broker
def test_unknown_resource_gets_error_404(endpoint: Listener) -> None:
    send(endpoint, f"{BASE}/dcx/{TOKEN}/protobuf/5", b"\x08\x01")

    reply = only_reply(endpoint, f"{BASE}/dcx/{TOKEN}/protobuf/5/error")

    assert error_body(reply)["statusCode"] == 404


# -- epmx -----------------------------------------------------------------------


@broker
def test_metadata_update_keys_merges(cloud: KaaCloud, endpoint: Listener) -> None:
    epmx = f"{BASE}/epmx/{TOKEN}"
    send(endpoint, f"{epmx}/update/keys/1", {"name": "Sensor 1"})
    only_reply(endpoint, f"{epmx}/update/keys/1/status")
    send(endpoint, f"{epmx}/update/keys/2", {"fw_version": "2.0.1"})
    only_reply(endpoint, f"{epmx}/update/keys/2/status")

    send(endpoint, f"{epmx}/get/3")
    reply = only_reply(endpoint, f"{epmx}/get/3/status")

    merged = {"model": "m1", "name": "Sensor 1", "fw_version": "2.0.1"}
    assert json.loads(reply.payload) == merged


@broker
def test_metadata_update_replaces_keys(cloud: KaaCloud, endpoint: Listener) -> None:
    epmx = f"{BASE}/epmx/{TOKEN}"
    send(endpoint, f"{epmx}/update/4", {"name": "Sensor 1"})

    reply = only_reply(endpoint, f"{epmx}/update/4/status")

    assert reply.payload == b""
    assert cloud.metadata(APP, TOKEN) == {"name": "Sensor 1"}


@broker
def test_metadata_is_kept_per_token(cloud: KaaCloud, endpoint: Listener) -> None:
    send(endpoint, f"{BASE}/epmx/{OTHER}/update/keys/5", {"name": "Other"})
    only_reply(endpoint, f"{BASE}/epmx/{OTHER}/update/keys/5/status")

    send(endpoint, f"{BASE}/epmx/{TOKEN}/get/6")
    reply = only_reply(endpoint, f"{BASE}/epmx/{TOKEN}/get/6/status")

    assert json.loads(reply.payload) == {"model": "m1"}
    assert cloud.metadata(APP, OTHER) == {"name": "Other"}


@broker
def test_metadata_get_keys_and_partial_get(endpoint: Listener) -> None:
    epmx = f"{BASE}/epmx/{TOKEN}"
    send(endpoint, f"{epmx}/update/keys/1", {"name": "Sensor 1"})
    only_reply(endpoint, f"{epmx}/update/keys/1/status")

    send(endpoint, f"{epmx}/get/keys/2")
    keys = only_reply(endpoint, f"{epmx}/get/keys/2/status")
    send(endpoint, f"{epmx}/get/3", {"keys": ["name", "absent"]})
    partial = only_reply(endpoint, f"{epmx}/get/3/status")

    assert sorted(json.loads(keys.payload)) == ["model", "name"]
    assert json.loads(partial.payload) == {"name": "Sensor 1"}


@broker
def test_metadata_delete_keys(cloud: KaaCloud, endpoint: Listener) -> None:
    send(endpoint, f"{BASE}/epmx/{TOKEN}/delete/keys/9", ["model"])

    reply = only_reply(endpoint, f"{BASE}/epmx/{TOKEN}/delete/keys/9/status")

    assert reply.payload == b""
    assert cloud.metadata(APP, TOKEN) == {}


@broker
@pytest.mark.parametrize(
    ("resource", "payload"),
    [
        ("update/keys", {"bad key!": 1}),
        ("update", {"ok": 1, "no-dash": 2}),
        ("update", {}),
        ("delete/keys", ["model", "bad.key"]),
        ("delete/keys", {"model": 1}),
    ],
)
def test_bad_metadata_request_gets_error_and_changes_nothing(
    cloud: KaaCloud, endpoint: Listener, resource: str, payload: Any
) -> None:
    topic = f"{BASE}/epmx/{TOKEN}/{resource}/11"
    send(endpoint, topic, payload)

    body = error_body(only_reply(endpoint, f"{topic}/error"))

    assert body["statusCode"] == 400
    assert cloud.metadata(APP, TOKEN) == {"model": "m1"}


@broker
def test_metadata_get_without_id_gets_no_reply(endpoint: Listener) -> None:
    # 1/KP: without a request id a response SHOULD NOT be published.
    send(endpoint, f"{BASE}/epmx/{TOKEN}/get")
    send(endpoint, f"{BASE}/epmx/{TOKEN}/get/12")

    only_reply(endpoint, f"{BASE}/epmx/{TOKEN}/get/12/status")


# -- cex ------------------------------------------------------------------------


@broker
def test_pushed_command_arrives_on_command_status(
    cloud: KaaCloud, endpoint: Listener
) -> None:
    cloud.push_command(APP, TOKEN, "reboot", {"delay": 5}, command_id=3)

    message = endpoint.next(timeout=5.0)

    assert message.topic == f"{BASE}/cex/{TOKEN}/command/reboot/status"
    assert json.loads(message.payload) == [{"id": 3, "payload": {"delay": 5}}]


@broker
def test_command_request_lists_outstanding_commands(
    cloud: KaaCloud, endpoint: Listener
) -> None:
    cloud.push_command(APP, TOKEN, "reboot", None, command_id=4)
    endpoint.next(timeout=5.0)  # the push itself

    topic = f"{BASE}/cex/{TOKEN}/command/reboot/13"
    send(endpoint, topic, {"observe": True})
    reply = only_reply(endpoint, f"{topic}/status")

    assert json.loads(reply.payload) == [{"id": 4, "payload": None}]


@broker
def test_result_with_id_is_acknowledged_and_recorded(
    cloud: KaaCloud, endpoint: Listener
) -> None:
    cloud.push_command(APP, TOKEN, "reboot", {}, command_id=5)
    endpoint.next(timeout=5.0)
    result = {"id": 5, "statusCode": 200, "payload": {"uptime": 0}}

    send(endpoint, f"{BASE}/cex/{TOKEN}/result/reboot/14", [result])
    reply = only_reply(endpoint, f"{BASE}/cex/{TOKEN}/result/reboot/14/status")

    assert reply.payload == b""
    assert cloud.command_results(APP, TOKEN, "reboot") == [result]
    assert cloud.outstanding_commands(APP, TOKEN, "reboot") == []


@broker
def test_result_without_id_is_recorded_without_reply(
    cloud: KaaCloud, endpoint: Listener
) -> None:
    result = {"id": 1, "statusCode": 500, "reasonPhrase": "disk full"}
    send(endpoint, f"{BASE}/cex/{TOKEN}/result/backup", [result])
    send(endpoint, f"{BASE}/cex/{TOKEN}/result/backup/15", [])

    only_reply(endpoint, f"{BASE}/cex/{TOKEN}/result/backup/15/status")

    assert cloud.command_results(APP, TOKEN, "backup") == [result]


@broker
@pytest.mark.parametrize(
    "payload", [[{"id": 1}], [{"id": "1", "statusCode": 200}], {"id": 1}]
)
def test_malformed_result_gets_error_400(
    cloud: KaaCloud, endpoint: Listener, payload: Any
) -> None:
    topic = f"{BASE}/cex/{TOKEN}/result/reboot/16"
    send(endpoint, topic, payload)

    body = error_body(only_reply(endpoint, f"{topic}/error"))

    assert body["statusCode"] == 400
    assert cloud.command_results(APP, TOKEN, "reboot") == []


# -- cmx / cmx_ota ----------------------------------------------------------------


@broker
def test_config_request_gets_the_config(endpoint: Listener) -> None:
    topic = f"{BASE}/cmx/{TOKEN}/config/json/17"
    send(endpoint, topic, {"observe": True})

    reply = only_reply(endpoint, f"{topic}/status")

    assert json.loads(reply.payload) == {"configId": "c1", "config": {"rate": 10}}


@broker
def test_config_request_with_current_id_gets_empty_object(
    endpoint: Listener,
) -> None:
    topic = f"{BASE}/cmx/{TOKEN}/config/json/18"
    send(endpoint, topic, {"configId": "c1"})

    reply = only_reply(endpoint, f"{topic}/status")

    # 7/CMP: unchanged is answered with both fields absent.
    assert json.loads(reply.payload) == {}


@broker
def test_config_request_without_id_is_answered_by_a_push(
    endpoint: Listener,
) -> None:
    send(endpoint, f"{BASE}/cmx/{TOKEN}/config/json", {})

    reply = only_reply(endpoint, f"{BASE}/cmx/{TOKEN}/config/json/status")

    assert json.loads(reply.payload)["configId"] == "c1"


@broker
def test_endpoint_without_config_gets_null(endpoint: Listener) -> None:
    topic = f"{BASE}/cmx_ota/{TOKEN}/config/json/19"
    send(endpoint, topic, {})

    reply = only_reply(endpoint, f"{topic}/status")

    assert json.loads(reply.payload) == {"configId": "", "config": None}


@broker
@pytest.mark.parametrize("extension", ["cmx", "cmx_ota"])
def test_pushed_config_arrives_and_becomes_current(
    cloud: KaaCloud, endpoint: Listener, extension: str
) -> None:
    config = {"firmware": "2.0.1"}
    cloud.push_config(APP, TOKEN, config, "c2", extension=extension)

    pushed = endpoint.next(timeout=5.0)
    send(endpoint, f"{BASE}/{extension}/{TOKEN}/config/json/20", {})
    reply = only_reply(endpoint, f"{BASE}/{extension}/{TOKEN}/config/json/20/status")

    assert pushed.topic == f"{BASE}/{extension}/{TOKEN}/config/json/status"
    expected = {"configId": "c2", "config": config}
    assert json.loads(pushed.payload) == expected
    assert json.loads(reply.payload) == expected


@broker
def test_applied_config_is_acknowledged_and_recorded(
    cloud: KaaCloud, endpoint: Listener
) -> None:
    applied = {"configId": "c1", "statusCode": 400, "reasonPhrase": "no WPA2"}
    send(endpoint, f"{BASE}/cmx/{TOKEN}/applied/json/21", applied)

    reply = only_reply(endpoint, f"{BASE}/cmx/{TOKEN}/applied/json/21/status")

    assert reply.payload == b""
    assert cloud.applied_configs(APP, TOKEN) == [applied]


@broker
def test_applied_without_config_id_gets_error(
    cloud: KaaCloud, endpoint: Listener
) -> None:
    topic = f"{BASE}/cmx/{TOKEN}/applied/json"
    send(endpoint, topic, {"statusCode": 200})

    body = error_body(only_reply(endpoint, f"{topic}/error"))

    assert body["statusCode"] == 400
    assert cloud.applied_configs(APP, TOKEN) == []


# -- the record -------------------------------------------------------------------


@broker
def test_record_holds_requests_not_the_clouds_own_replies(
    cloud: KaaCloud, endpoint: Listener
) -> None:
    send(endpoint, f"{BASE}/dcx/{TOKEN}/json/22", [{"t": 1}])
    only_reply(endpoint, f"{BASE}/dcx/{TOKEN}/json/22/status")

    message = cloud.wait_for(f"{BASE}/dcx/+/json/#", timeout=5.0)

    assert message.parsed == Kp1Topic(APP, "dcx", TOKEN, "json", 22)
    assert message.json() == [{"t": 1}]
    assert [m.topic for m in cloud.received()] == [f"{BASE}/dcx/{TOKEN}/json/22"]


@broker
def test_wait_for_gives_up_after_its_timeout(cloud: KaaCloud) -> None:
    with pytest.raises(TimeoutError, match="nothing matching"):
        cloud.wait_for(lambda m: m.topic.endswith("/never"), timeout=0.2)


@broker
def test_cloud_answers_again_after_a_broker_restart(
    standin_broker: StandInBroker, cloud: KaaCloud
) -> None:
    standin_broker.restart()
    where = (standin_broker.host, standin_broker.port)
    fresh = Listener(tls_client(standin_broker.pki, *where, "endpoint-2"))
    try:
        fresh.subscribe(f"{BASE}/dcx/{TOKEN}/#")
        answered = _ask_until_answered(fresh)
    finally:
        fresh.close()

    # The restarted broker forgot every subscription: the cloud must have
    # subscribed again on its own.
    assert answered, "the cloud never answered after the restart"
    assert cloud.wait_subscribed(0)


def _ask_until_answered(endpoint: Listener) -> list[str]:
    # The cloud reconnects within 2 s; give it 10 tries of 1 s each.
    for request_id in range(1, 11):
        topic = f"{BASE}/dcx/{TOKEN}/json/{request_id}"
        send(endpoint, topic, [{"n": request_id}])
        got = endpoint.drain(1.0)
        answered = [m.topic for m in got if m.topic == f"{topic}/status"]
        if answered:
            return answered
    return []
