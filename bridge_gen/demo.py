"""The demo: a whole gateway on this machine, no cloud account needed.

A throwaway CA and certificates, a local TLS broker that demands client
certificates standing in for Kaa, a bridge rendered from the embedded
spec and brought up (in Docker when an engine answers, else with the
local mosquitto binary), telemetry published by a pretend device and
watched arriving on its kp1 topics, a reply carried back, then everything
torn down. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import json
import queue
import secrets
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bridge_gen import pipeline, sandbox
from bridge_gen.errors import BridgeGenError
from bridge_gen.pki import make_throwaway_pki
from bridge_gen.standin import StandInBroker, find_mosquitto, free_port, tls_client

Say = Callable[[str], None]
BASE_IMAGE = "eclipse-mosquitto:2.0"

SPEC = """\
# The demo gateway: two devices, each a Kaa endpoint, over mutual TLS to a
# local stand-in for Kaa. Written by `bridge-gen demo`.
version: 1
gateway: {gateway}
container:
  network: host
local:
  port: {local_port}
  bind: 127.0.0.1
bridges:
  - name: kaa
    address: 127.0.0.1:{cloud_port}
    tls:
      ca: certs/ca.crt
      cert: certs/client.crt
      key: certs/client.key
    app_version: demo-app-v1
    endpoints:
      - local: devices/thermo-1
        token: thermo-1-token
        request_id: 42
      - local: devices/meter-2
        token: meter-2-token
"""

SAMPLES = (
    ("devices/thermo-1", {"temperature": 21.5, "humidity": 40}),
    ("devices/meter-2", {"energy_kwh": 1042.7}),
    ("devices/thermo-1", {"temperature": 21.7, "humidity": 41}),
)


def run(say: Say, *, use_docker: bool | None, keep: Path | None) -> None:
    """Run the demo; `use_docker` None picks Docker when an engine answers."""
    mosquitto = find_mosquitto()
    if mosquitto is None:
        raise BridgeGenError(
            "the demo needs the mosquitto binary for its stand-in cloud;"
            " install it (Debian: apt-get install mosquitto)"
        )
    with ExitStack() as stack:
        work = keep or stack.enter_context(sandbox.temp_dir("bridge-gen-demo-"))
        say(f"working in {work}")
        pki = make_throwaway_pki(work / "certs")
        say(
            "made a throwaway CA, a server certificate for the stand-in and a"
            " client certificate for the bridge"
        )

        cloud = stack.enter_context(
            StandInBroker(work / "cloud", pki, mosquitto=mosquitto)
        )
        say(
            f"stand-in cloud: TLS on 127.0.0.1:{cloud.port}, client certificate"
            " required"
        )

        spec = work / "spec.yaml"
        # A name of its own per run, so two demos on one engine never meet.
        gateway = f"demo-{secrets.token_hex(3)}"
        spec.write_text(
            SPEC.format(gateway=gateway, local_port=free_port(), cloud_port=cloud.port)
        )
        bridge = _bridge(use_docker, mosquitto, spec, work, say)
        local_port = stack.enter_context(bridge)
        say("the bridge is connected to the stand-in cloud")
        _exchange(pki, cloud.port, local_port, say)
    say("demo finished; everything it started is stopped")


def _bridge(use_docker: bool | None, mosquitto: str, spec: Path, work: Path, say: Say):
    """The demo bridge, in Docker or with the binary; yields the local port."""
    engine, why_not = sandbox.docker_engine(use_docker, BASE_IMAGE)
    if engine is None and use_docker:
        raise BridgeGenError(f"--docker was given, but {why_not}")
    if engine is None and why_not:
        say(f"{why_not}; running the bridge with the local mosquitto binary")

    if engine is not None:
        prepared = pipeline.prepare(spec, files_required=True)
        plan, files = pipeline.bundle(prepared, spec.parent)
        return sandbox.in_docker(engine, plan, files, say, timeout=30)
    run_dir = work / "bridge"
    layout = sandbox.binary_layout(run_dir)
    prepared = pipeline.prepare(spec, files_required=True, layout=layout)
    return sandbox.with_binary(mosquitto, prepared.plan, run_dir, say, timeout=20)


def _exchange(pki, cloud_port: int, local_port: int, say: Say) -> None:
    cloud = tls_client(pki, "127.0.0.1", cloud_port, client_id="demo-cloud")
    device = _plain_client(local_port)
    at_cloud: queue.Queue = queue.Queue()
    at_device: queue.Queue = queue.Queue()
    cloud.on_message = lambda _c, _u, m: at_cloud.put((m.topic, m.payload))
    device.on_message = lambda _c, _u, m: at_device.put((m.topic, m.payload))
    try:
        cloud.subscribe("kp1/+/dcx/+/json/#", qos=1)
        device.subscribe("devices/+/status", qos=1)
        time.sleep(0.5)  # let both subscriptions settle before publishing

        for topic, sample in SAMPLES:
            sent = time.monotonic()
            payload = json.dumps(sample)
            device.publish(topic, payload, qos=1)
            say(f"device  -> {topic}  {payload}")
            got_topic, got = at_cloud.get(timeout=10)
            took = (time.monotonic() - sent) * 1000
            say(f"cloud   <- {got_topic}  {got.decode()}  ({took:.0f} ms)")

        reply = "kp1/demo-app-v1/dcx/thermo-1-token/json/42/status"
        cloud.publish(reply, b"", qos=1)
        say(f"cloud   -> {reply}  (Kaa's 'accepted' for request 42)")
        got_topic, _ = at_device.get(timeout=10)
        say(f"device  <- {got_topic}  (empty, as Kaa sends it: the data was taken)")
    except queue.Empty:
        raise BridgeGenError("a message did not arrive within 10 s") from None
    finally:
        for client in (device, cloud):
            client.disconnect()
            client.loop_stop()


def _plain_client(port: int):
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="demo-device")
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    return client
