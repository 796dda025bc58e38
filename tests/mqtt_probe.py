"""Small paho helpers the end-to-end tests publish and listen with."""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


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


def plain_client(port: int, client_id: str, host: str = "127.0.0.1") -> mqtt.Client:
    """A connected plain-MQTT client on the local listener, loop running."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    connected = queue.Queue()
    client.on_connect = lambda *args: connected.put(True)
    client.connect(host, port, keepalive=30)
    client.loop_start()
    connected.get(timeout=10)
    return client
