"""Store-and-forward drills: no QoS 1 message lost across outages.

Each drill runs the real bridge container against the TLS stand-in and
counts what reaches the cloud side: lost, duplicated (QoS 1 may deliver
twice) and out of order. The counts are printed (`pytest -s` shows them)
and a loss fails the drill. The last drill runs Kaa's tutorial recipe the
same way, as the baseline that loses.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from bridge_gen.cli import app
from bridge_gen.pki import Pki
from bridge_gen.standin import StandInBroker, free_port, wait_listening
from tests.mqtt_probe import mosquitto_with, plain_client

pytestmark = pytest.mark.docker

TOPIC = "kp1/app-v1/dcx/tok-1/json"
SPEC = """\
version: 1
gateway: {gateway}
local: {{port: {port}, bind: 127.0.0.1}}
bridges:
  - name: kaa
    address: 127.0.0.1:{remote}
    tls: {{ca: {pki.ca_cert}, cert: {pki.client_cert}, key: {pki.client_key}}}
    endpoints:
      - {{local: devices/data, app_version: app-v1, token: tok-1}}
"""


@dataclass
class Tally:
    """What the cloud side received, by sequence number."""

    seen: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, payload: bytes) -> None:
        with self.lock:
            self.seen.append(int(payload))

    def distinct(self) -> int:
        with self.lock:
            return len(set(self.seen))

    def report(self, sent: int) -> dict[str, int]:
        with self.lock:
            seen = list(self.seen)
        unique = set(seen)
        backwards = sum(1 for a, b in zip(seen, seen[1:], strict=False) if b < a)
        return {
            "sent": sent,
            "received": len(seen),
            "lost": len(set(range(sent)) - unique),
            "duplicated": len(seen) - len(unique),
            "out_of_order": backwards,
        }


@pytest.fixture
def cloud(tmp_path: Path, throwaway_pki: Pki, mosquitto_bin: str):
    """The stand-in with persistence, so a counter's session outlives restarts."""
    with StandInBroker(
        tmp_path / "cloud", throwaway_pki, mosquitto=mosquitto_bin, persistence=True
    ) as broker:
        yield broker


@pytest.fixture
def tally(cloud: StandInBroker, throwaway_pki: Pki) -> Iterator[Tally]:
    """A persistent-session QoS 1 subscriber on the cloud side."""
    found = Tally()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="drill-counter", clean_session=False
    )
    client.tls_set(
        ca_certs=str(throwaway_pki.ca_cert),
        certfile=str(throwaway_pki.client_cert),
        keyfile=str(throwaway_pki.client_key),
    )
    client.reconnect_delay_set(0.2, 1)
    subscribed = threading.Event()
    client.on_connect = lambda c, *_: c.subscribe(TOPIC, qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, msg: found.add(msg.payload)
    client.connect("127.0.0.1", cloud.port)
    client.loop_start()
    assert subscribed.wait(10), "the counter could not subscribe"
    yield found
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def bridge(tmp_path, cloud, tally, throwaway_pki, docker_client) -> Iterator[dict]:
    """A running bridge container for a unique gateway; removed afterwards.

    It asks for `tally` so the counter subscribes before anything is sent.
    """
    gateway = f"drill-{uuid.uuid4().hex[:8]}"
    port = free_port()
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        SPEC.format(gateway=gateway, port=port, remote=cloud.port, pki=throwaway_pki)
    )
    up = CliRunner().invoke(app, ["up", str(spec), "--network", "host"])
    assert up.exit_code == 0, up.output
    yield {"spec": spec, "port": port, "name": f"bridge-gen-{gateway}"}
    CliRunner().invoke(app, ["down", str(spec), "--volumes", "--images"])


def publish(port: int, first: int, count: int, seconds: float = 0) -> None:
    """QoS 1 messages `first`.. on devices/data, spread over `seconds`."""
    client = plain_client(port, f"drill-device-{first}")
    pause = seconds / count if seconds else 0
    try:
        for seq in range(first, first + count):
            info = client.publish("devices/data", str(seq).encode(), qos=1)
            if pause:
                time.sleep(pause)
            elif seq % 500 == 0:
                info.wait_for_publish(10)
        info.wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()


def wait_all(tally: Tally, sent: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while tally.distinct() < sent and time.monotonic() < deadline:
        time.sleep(0.5)


def test_uplink_outage_loses_nothing(bridge, cloud, tally) -> None:
    cloud.stop()
    publish(bridge["port"], 0, 10_000, seconds=30)
    cloud.start()
    wait_all(tally, 10_000, timeout=180)

    report = tally.report(10_000)
    print("uplink outage:", report)
    assert report["lost"] == 0


def test_container_restart_and_kill_during_backlog(
    bridge, cloud, tally, docker_client
) -> None:
    container = docker_client.containers.get(bridge["name"])
    cloud.stop()
    publish(bridge["port"], 0, 3_000)
    container.restart(timeout=10)
    wait_listening(bridge["port"])

    publish(bridge["port"], 3_000, 3_000)
    # A crash, not a stop: SIGKILL to the broker from outside the container.
    # What the broker accepted in the last autosave interval before a crash
    # is the only thing at risk, so the drill waits that out first.
    time.sleep(7)
    container.reload()
    os.kill(container.attrs["State"]["Pid"], signal.SIGKILL)
    wait_restarted(container)
    wait_listening(bridge["port"])

    cloud.start()
    wait_all(tally, 6_000, timeout=180)
    report = tally.report(6_000)
    print("restart and kill -9 during backlog:", report)
    assert report["lost"] == 0


def test_full_buffer_is_reported_and_the_broker_keeps_running(bridge, cloud) -> None:
    spec = bridge["spec"]
    spec.write_text(spec.read_text() + "buffer: {messages: 1000}\n")
    runner = CliRunner()
    assert runner.invoke(app, ["up", str(spec), "--network", "host"]).exit_code == 0

    cloud.stop()
    publish(bridge["port"], 0, 3_000)
    status = runner.invoke(app, ["status", str(spec)])

    assert "warning: DROPPED: the broker logged" in status.stderr
    assert "raise buffer.messages" in status.stderr
    # Still serving devices.
    publish(bridge["port"], 3_000, 10)
    assert "running" in status.stdout.splitlines()[0]


def test_burst_with_the_link_up(bridge, tally) -> None:
    publish(bridge["port"], 0, 100_000)
    wait_all(tally, 100_000, timeout=300)

    report = tally.report(100_000)
    print("burst:", report)
    assert report["lost"] == 0


TUTORIAL = """\
listener {port} 127.0.0.1
allow_anonymous true
connection kaaiot
address 127.0.0.1:{remote}
topic "" both 0 devices/data {topic}
bridge_cafile {pki.ca_cert}
bridge_certfile {pki.client_cert}
bridge_keyfile {pki.client_key}
try_private false
cleansession true
notifications false
user root
"""


def test_tutorial_recipe_baseline_loses(
    tmp_path: Path, cloud, tally, throwaway_pki, mosquitto_bin
) -> None:
    port = free_port()
    conf = tmp_path / "tutorial.conf"
    conf.write_text(
        TUTORIAL.format(port=port, remote=cloud.port, topic=TOPIC, pki=throwaway_pki)
    )
    with mosquitto_with(mosquitto_bin, conf, port):
        time.sleep(1)
        cloud.stop()
        publish(port, 0, 1_000, seconds=2)
        cloud.start()
        wait_all(tally, 1_000, timeout=15)

    report = tally.report(1_000)
    print("tutorial recipe, uplink outage (baseline):", report)
    assert report["lost"] > 0


def wait_restarted(container, timeout: float = 30) -> None:
    before = container.attrs["RestartCount"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        if container.attrs["RestartCount"] > before and container.status == "running":
            return
        time.sleep(0.3)
    raise AssertionError("the container was not restarted by its policy")
