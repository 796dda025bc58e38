"""Benchmark 4: mosquitto start time and memory with many topic lines.

The config bridge-gen renders for N endpoints, in the host layout (as
`bridge-gen demo --local` runs it), run by this machine's mosquitto with the
remote pointing at the TLS stand-in. Measured from launch:

- listening: the device listener accepts a TCP connection;
- connected: the broker publishes bridge state 1 on its local socket;
- round trip: a message the cloud publishes on the remote topic of the
  last endpoint's last topic line reaches a device subscribed locally,
  so every subscription the bridge makes at the remote is in place.

Memory is the broker's VmRSS (and peak, VmHWM) from /proc a second after
the round trip.
"""

from __future__ import annotations

import getpass
import os
import statistics
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from common import APP, LOOPBACK, bridge_spec, gateway_name, proc_status, say
from paho.mqtt.enums import CallbackAPIVersion


def sizes(quick: bool) -> dict:
    if quick:
        return {"endpoints": [10, 1_000, 10_000], "reps": 1}
    return {"endpoints": [10, 1_000, 10_000], "reps": 5}


def run(work: Path, standin, quick: bool) -> dict:
    from bridge_gen.standin import find_mosquitto

    binary = find_mosquitto()
    if binary is None:
        raise RuntimeError("mosquitto is not installed")
    n = sizes(quick)
    rows = []
    for count in n["endpoints"]:
        runs = [
            _start_once(work, standin, binary, count, rep) for rep in range(n["reps"])
        ]
        row = {
            "endpoints": count,
            "topic_lines": runs[0]["topic_lines"],
            "conf_bytes": runs[0]["conf_bytes"],
            "runs": runs,
        }
        for key in (
            "listening_s",
            "connected_s",
            "round_trip_s",
            "rss_mib",
            "hwm_mib",
        ):
            row[key] = statistics.median(r[key] for r in runs)
        rows.append(row)
        say(
            f"broker: {count:>6} endpoints ({row['topic_lines']} lines):"
            f" listening {row['listening_s']:.3f} s, connected"
            f" {row['connected_s']:.3f} s, round trip {row['round_trip_s']:.3f} s,"
            f" RSS {row['rss_mib']:.1f} MiB"
        )
    return {"binary": binary, "sizes": rows}


def _start_once(work: Path, standin, binary: str, count: int, rep: int) -> dict:
    from bridge_gen import pipeline, render
    from bridge_gen.plan import host_layout
    from bridge_gen.standin import free_port, stop_process

    gateway = gateway_name(f"mq{count}")
    run_dir = work / gateway
    (run_dir / "data").mkdir(parents=True)
    port = free_port()
    endpoints = [(f"plant/dev-{i}", f"tok-{i}") for i in range(count)]
    spec = run_dir / "spec.yaml"
    spec.write_text(bridge_spec(gateway, port, standin.port, standin.pki, endpoints))
    user = getpass.getuser() if os.geteuid() == 0 else None
    prepared = pipeline.prepare(
        spec, files_required=True, layout=host_layout(run_dir, run_as=user)
    )
    conf = run_dir / "mosquitto.conf"
    conf.write_text(render.render_conf(prepared.plan), encoding="utf-8")
    bridge = prepared.plan.bridges[0]
    last_in = [line for line in bridge.lines if line.direction == "in"][-1]

    log = (run_dir / "mosquitto.log").open("wb")
    started = time.perf_counter()
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log)
    try:
        listening = _wait_listening(proc, port, started)
        connected = _wait_state(proc, prepared.plan.layout.socket, started)
        round_trip = _round_trip(standin, port, last_in, started)
        time.sleep(1.0)
        status = proc_status(proc.pid)
    finally:
        stop_process(proc, 30)
        log.close()
    return {
        "rep": rep,
        "topic_lines": len(bridge.lines),
        "conf_bytes": conf.stat().st_size,
        "listening_s": listening,
        "connected_s": connected,
        "round_trip_s": round_trip,
        "rss_mib": status["VmRSS"] / 1024,
        "hwm_mib": status["VmHWM"] / 1024,
    }


def _alive(proc) -> None:
    if proc.poll() is not None:
        raise RuntimeError(f"mosquitto exited with code {proc.returncode}")


def _wait_listening(proc, port: int, started: float, timeout: float = 120) -> float:
    import socket

    while time.perf_counter() - started < timeout:
        _alive(proc)
        try:
            socket.create_connection((LOOPBACK, port), timeout=0.5).close()
            return time.perf_counter() - started
        except OSError:
            time.sleep(0.002)
    raise RuntimeError(f"not listening after {timeout} s")


def _wait_state(proc, sock: str, started: float, timeout: float = 120) -> float:
    """When the broker's own $SYS notice says the bridge is connected."""
    got = threading.Event()
    at: list[float] = []

    def on_message(_c, _u, msg) -> None:
        if msg.payload == b"1" and not got.is_set():
            at.append(time.perf_counter() - started)
            got.set()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-state", transport="unix"
    )
    client.on_connect = lambda c, *_: c.subscribe("$SYS/broker/connection/+/state")
    client.on_message = on_message
    while time.perf_counter() - started < timeout:
        _alive(proc)
        try:
            client.connect(sock)
            break
        except OSError:
            time.sleep(0.002)
    client.loop_start()
    try:
        left = timeout - (time.perf_counter() - started)
        if not got.wait(max(left, 0)):
            raise RuntimeError(f"bridge not connected after {timeout} s")
        return at[0]
    finally:
        client.disconnect()
        client.loop_stop()


def _round_trip(standin, port: int, line, started: float, timeout=120) -> float:
    """Publish at the cloud until it arrives at a local subscriber."""
    from bridge_gen.standin import tls_client

    got = threading.Event()
    at: list[float] = []

    def on_message(_c, _u, _m) -> None:
        if not got.is_set():
            at.append(time.perf_counter() - started)
            got.set()

    subscribed = threading.Event()
    device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-device")
    device.on_connect = lambda c, *_: c.subscribe(line.local_topic, qos=1)
    device.on_subscribe = lambda *_: subscribed.set()
    device.on_message = on_message
    device.connect(LOOPBACK, port)
    device.loop_start()
    cloud = tls_client(standin.pki, LOOPBACK, standin.port, "bench-cloud")
    try:
        if not subscribed.wait(10):
            raise RuntimeError("the local subscriber could not subscribe")
        assert line.remote_topic.startswith(f"kp1/{APP}/")
        while not got.is_set() and time.perf_counter() - started < timeout:
            cloud.publish(line.remote_topic, b"{}", qos=0)
            got.wait(0.01)
        if not got.is_set():
            raise RuntimeError(f"no round trip after {timeout} s")
        return at[0]
    finally:
        for client in (device, cloud):
            client.disconnect()
            client.loop_stop()
