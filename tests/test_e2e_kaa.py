"""Every KP1 mapping kind, end to end through the real bridge container.

A device publishes on its local topics; the Kaa look-alike (tests/kaa_cloud)
receives on the exact kp1 topics and answers or pushes; the answers arrive
on the device's local topics, once each, and nothing is echoed back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bridge_gen.cli import app
from bridge_gen.pki import Pki
from bridge_gen.standin import StandInBroker, free_port
from tests.kaa_cloud import KaaCloud
from tests.mqtt_probe import Listener, plain_client

pytestmark = pytest.mark.docker

APP = "line3-app-v1"
TOKEN = "press-1-token"

SPEC = """\
version: 1
gateway: {gateway}
container: {{network: host}}
local: {{port: {port}, bind: 127.0.0.1}}
bridges:
  - name: kaa
    address: 127.0.0.1:{remote}
    tls: {{ca: {pki.ca_cert}, cert: {pki.client_cert}, key: {pki.client_key}}}
    app_version: {app}
    defaults: {{request_id: 5}}
    endpoints:
      - local: line3/press-1
        token: {token}
        metrics: [pressure]
        metadata: true
        commands: [stop]
        config: true
        ota: true
      - local: line3/press-2
        token: press-2-token
"""


@pytest.fixture
def kaa(standin_broker: StandInBroker, throwaway_pki: Pki) -> Iterator[KaaCloud]:
    cloud = KaaCloud(
        throwaway_pki,
        "127.0.0.1",
        standin_broker.port,
        metadata={(APP, TOKEN): {"model": "P-100"}},
        configs={(APP, TOKEN): {"configId": "c1", "config": {"speed": 3}}},
    )
    with cloud:
        yield cloud
    assert cloud.handler_errors() == []


def up(tmp_path: Path, text: str) -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    result = CliRunner().invoke(app, ["up", str(spec)])
    assert result.exit_code == 0, result.output
    return spec


def test_every_mapping_kind_round_trips(
    tmp_path: Path, gateway: str, standin_broker, throwaway_pki, kaa: KaaCloud
) -> None:
    port = free_port()
    up(
        tmp_path,
        SPEC.format(
            gateway=gateway,
            port=port,
            remote=standin_broker.port,
            pki=throwaway_pki,
            app=APP,
            token=TOKEN,
        ),
    )
    device = Listener(plain_client(port, "press-1"))
    device.subscribe("line3/#")
    base = "line3/press-1"
    remote = f"kp1/{APP}"

    def send(topic: str, payload: object) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload)
        device.client.publish(topic, data, qos=1).wait_for_publish(5)

    try:
        # Telemetry, accepted and refused.
        send(base, [{"t": 1}])
        send(f"{base}/metrics/pressure", b"4.5")
        send(f"{base}/metadata/update/keys", {"site": "hall-3"})
        send(f"{base}/metadata/get", b"")
        send(f"{base}/config/get", {})
        send(f"{base}/ota/get", {})
        kaa.push_command(APP, TOKEN, "stop", {"now": True}, command_id=9)
        # Pushed only once the device has Kaa's answer (c1) to its request:
        # else the push may reach Kaa before the request does.
        got: dict[str, bytes] = {}
        while f"{base}/config/get/status" not in got:
            message = device.next(10)
            got[message.topic] = message.payload
        kaa.push_config(APP, TOKEN, {"speed": 4}, "c2")

        got |= {m.topic: m.payload for m in device.drain(6)}
        assert kaa.wait_for(f"{remote}/dcx/{TOKEN}/json/5").json() == [{"t": 1}]
        assert kaa.plain_values(APP, TOKEN, "pressure") == [4.5]
        assert got[f"{base}/status"] == b""
        assert json.loads(got[f"{base}/metadata/get/status"]) == {
            "model": "P-100",
            "site": "hall-3",
        }
        assert f"{base}/metadata/update/keys/status" in got
        assert json.loads(got[f"{base}/config/get/status"])["configId"] == "c1"
        assert f"{base}/ota/get/status" in got
        assert json.loads(got[f"{base}/commands/stop"]) == [
            {"id": 9, "payload": {"now": True}}
        ]
        assert json.loads(got[f"{base}/config"]) == {
            "configId": "c2",
            "config": {"speed": 4},
        }

        # The device answers the command and reports the configuration.
        send(f"{base}/commands/stop/result", [{"id": 9, "statusCode": 200}])
        send(f"{base}/config/applied", {"configId": "c2"})
        send(base, b"not json")
        later = {m.topic: m.payload for m in device.drain(4)}
        assert kaa.command_results(APP, TOKEN, "stop") == [{"id": 9, "statusCode": 200}]
        assert f"{base}/commands/stop/result/status" in later
        assert kaa.applied_configs(APP, TOKEN)[-1]["configId"] == "c2"
        assert json.loads(later[f"{base}/error"])["statusCode"] == 400

        # Each message arrived once, on the device's own topics only: the
        # device saw what it sent itself once, and no answer twice.
        topics = [m.topic for m in device.drain(1)]
        assert topics == []
        assert not [t for t in got if t.startswith("line3/press-2")]
        assert kaa.count(f"{remote}/dcx/{TOKEN}/json/5") == 2
    finally:
        device.close()


def test_a_thousand_endpoints_each_reach_their_token(
    tmp_path: Path, gateway: str, standin_broker, throwaway_pki, kaa: KaaCloud
) -> None:
    port = free_port()
    lines = (
        SPEC.split("    endpoints:\n")[0]
        .format(
            gateway=gateway,
            port=port,
            remote=standin_broker.port,
            pki=throwaway_pki,
            app=APP,
            token=TOKEN,
        )
        .replace("defaults: {request_id: 5}", "defaults: {}")
    )
    endpoints = "".join(
        f"      - {{local: floor/dev-{i}, token: tok-{i}}}\n" for i in range(1000)
    )
    up(tmp_path, lines + "    endpoints:\n" + endpoints)

    device = plain_client(port, "many")
    try:
        for i in range(1000):
            device.publish(f"floor/dev-{i}", json.dumps([{"i": i}]), qos=1)
        kaa.wait_for(lambda _m: kaa.count(f"kp1/{APP}/dcx/+/json") >= 1000, 60)
    finally:
        device.disconnect()
        device.loop_stop()

    for i in (0, 1, 499, 998, 999):
        assert kaa.samples(APP, f"tok-{i}") == [{"i": i}]
    arrived = {m.parsed.token for m in kaa.received(f"kp1/{APP}/dcx/+/json")}
    assert arrived == {f"tok-{i}" for i in range(1000)}
