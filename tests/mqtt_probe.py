"""Small paho helpers the end-to-end tests publish and listen with."""

from __future__ import annotations

import queue
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bridge_gen.standin import stop_process, wait_listening


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes


class Listener:
    """Collects every message a client receives, for tests to wait on."""

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client
        self.inbox: queue.Queue[Received] = queue.Queue()
        client.on_message = lambda _c, _u, msg: self.inbox.put(
            Received(msg.topic, msg.payload)
        )

    def subscribe(self, topic: str, qos: int = 1) -> None:
        done = queue.Queue()
        self.client.on_subscribe = lambda *args: done.put(True)
        self.client.subscribe(topic, qos)
        done.get(timeout=5)

    def next(self, timeout: float = 10.0) -> Received:
        return self.inbox.get(timeout=timeout)

    def drain(self, seconds: float) -> list[Received]:
        """Everything that arrives within `seconds` (a bounded wait)."""
        end = time.monotonic() + seconds
        got = []
        while (left := end - time.monotonic()) > 0:
            try:
                got.append(self.inbox.get(timeout=left))
            except queue.Empty:
                break
        return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def plain_client(
    port: int,
    client_id: str,
    host: str = "127.0.0.1",
    *,
    user: str | None = None,
    password: str | None = None,
) -> mqtt.Client:
    """A connected plain-MQTT client on the local listener, loop running.

    Fails the test when the broker refuses it.
    """
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    if user is not None:
        client.username_pw_set(user, password)
    connected: queue.Queue[bool] = queue.Queue()
    client.on_connect = lambda _c, _u, _f, code, _p: connected.put(not code.is_failure)
    client.connect(host, port, keepalive=30)
    client.loop_start()
    assert connected.get(timeout=10), f"{user or client_id} was refused"
    return client


@contextmanager
def mosquitto_with(binary: str, conf: Path, port: int) -> Iterator[None]:
    """mosquitto running `conf` until the block ends, listening on `port`."""
    broker = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        yield
    finally:
        stop_process(broker, 10)
