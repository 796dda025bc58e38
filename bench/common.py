"""Shared pieces of the benchmarks: work folders, brokers, clients, numbers.

Everything listens on and talks to 127.0.0.1 only. Containers, volumes and
images made here belong to gateways named `bench-<random>` and are removed
by the context managers that made them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
LOOPBACK = "127.0.0.1"


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


@contextmanager
def work_dir(name: str) -> Iterator[Path]:
    """A fresh folder under bench/.work, removed afterwards."""
    root = BENCH / ".work"
    root.mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(OSError):
            root.rmdir()  # only when nothing else is using it


def gateway_name(kind: str) -> str:
    return f"bench-{kind}-{secrets.token_hex(3)}"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of `values` (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median": statistics.median(values) if values else float("nan"),
        "min": min(values) if values else float("nan"),
        "max": max(values) if values else float("nan"),
    }


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def wait_log(path: Path, needle: str, timeout: float = 10.0, offset: int = 0) -> None:
    """Wait until `needle` appears in a log file after `offset` bytes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            with path.open("rb") as f:
                f.seek(offset)
                if needle.encode() in f.read():
                    return
        time.sleep(0.05)
    raise RuntimeError(f"{needle!r} did not appear in {path} within {timeout} s")


def tls_args(pki) -> list[str]:
    return [
        "--cafile",
        str(pki.ca_cert),
        "--cert",
        str(pki.client_cert),
        "--key",
        str(pki.client_key),
    ]


# Payloads: "<seq> <send time ns> " padded with x to the wanted size.


def payload(seq: int, size: int) -> bytes:
    head = f"{seq} {time.time_ns()} ".encode()
    return head + b"x" * max(0, size - len(head))


@dataclass
class Arrivals:
    """What a counting subscriber saw: send and receive time per sequence."""

    first_arrival: dict[int, tuple[int, int]] = field(default_factory=dict)
    total: int = 0
    warmups: int = 0

    def add_line(self, line: str) -> None:
        # "<sec>.<nsec> <seq> <sent ns> xxx..."
        parts = line.split(" ", 3)
        if len(parts) < 3:
            return
        try:
            sec, _, nsec = parts[0].partition(".")
            received = int(sec) * 1_000_000_000 + int(nsec.ljust(9, "0")[:9])
            seq, sent = int(parts[1]), int(parts[2])
        except ValueError:
            return
        if seq < 0:
            self.warmups += 1
            return
        self.total += 1
        self.first_arrival.setdefault(seq, (sent, received))

    @property
    def distinct(self) -> int:
        return len(self.first_arrival)

    def latencies_ms(self) -> list[float]:
        return [(r - s) / 1e6 for s, r in self.first_arrival.values()]

    def span(self) -> tuple[int, int]:
        """Earliest send and latest arrival, in ns."""
        sent = min(s for s, _ in self.first_arrival.values())
        last = max(r for _, r in self.first_arrival.values())
        return sent, last

    def arrival_times(self) -> list[int]:
        return sorted(r for _, r in self.first_arrival.values())


class Counter:
    """mosquitto_sub on the stand-in, QoS 1, printing arrival time and payload.

    The C client keeps up with any publisher here, so it is never what
    limits a measurement. Line-buffered output lets us count while it runs.
    """

    def __init__(
        self,
        work: Path,
        standin,
        topic: str,
        *,
        client_id: str,
        persistent: bool = False,
    ) -> None:
        self.path = work / f"{client_id}.out"
        self.topic = topic
        self.client_id = client_id
        self.standin = standin
        self._log_offset = file_size(standin.log_path)
        command = [
            "stdbuf",
            "-oL",
            "mosquitto_sub",
            "-h",
            LOOPBACK,
            "-p",
            str(standin.port),
            *tls_args(standin.pki),
            "-i",
            client_id,
            "-q",
            "1",
            "-t",
            topic,
            "-F",
            "%U %p",
            "-W",
            "900",  # a bound, whatever happens
        ]
        if persistent:
            command.append("-c")
        self._out = self.path.open("wb")
        self.proc = subprocess.Popen(
            command, stdout=self._out, stderr=subprocess.DEVNULL
        )
        self.arrivals = Arrivals()
        self._offset = 0
        self._pending = ""

    def wait_subscribed(self, timeout: float = 10.0) -> None:
        needle = f"{self.client_id} 1 {self.topic}"
        wait_log(self.standin.log_path, needle, timeout, self._log_offset)

    def poll(self) -> int:
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        text = self._pending + data.decode("utf-8", "replace")
        *lines, self._pending = text.split("\n")
        for line in lines:
            self.arrivals.add_line(line)
        return self.arrivals.distinct

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.poll() >= count:
                return True
            if self.proc.poll() is not None:
                return self.poll() >= count
            time.sleep(0.05)
        return self.poll() >= count

    def wait_warmup(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if self.arrivals.warmups:
                return
            time.sleep(0.005)
        raise RuntimeError("the warm-up message did not arrive")

    def close(self) -> None:
        from bridge_gen.standin import stop_process

        stop_process(self.proc, 10)
        self._out.close()


@contextmanager
def counter(work: Path, standin, topic: str, **kwargs) -> Iterator[Counter]:
    found = Counter(work, standin, topic, **kwargs)
    try:
        found.wait_subscribed()
        yield found
    finally:
        found.close()


# Publishers.


@dataclass(frozen=True)
class Published:
    count: int
    started_ns: int
    finished_ns: int  # the last line handed over and the publisher exited

    @property
    def seconds(self) -> float:
        return (self.finished_ns - self.started_ns) / 1e9


# mosquitto_pub 2.0.11 -l disconnects once the message whose id equals the
# last message's id is acknowledged; ids wrap at 65,535, so one session of
# more than that stops early (and still exits 0). Longer runs are split.
SESSION_LIMIT = 50_000


def mosquitto_pub(
    port: int,
    topic: str,
    count: int,
    *,
    client_id: str,
    first: int = 0,
    warmup: Callable[[], None] | None = None,
    **kwargs,
) -> Published:
    """Publish `count` QoS 1 messages in sessions of at most SESSION_LIMIT.

    With `warmup`, the first session sends one message numbered -1 and calls
    `warmup` (which waits until it arrives) before the timed messages.
    """
    started = None
    done = first
    while done < first + count:
        part = min(SESSION_LIMIT, first + count - done)
        one = _mosquitto_pub_session(
            port,
            topic,
            part,
            client_id=f"{client_id}-{done}",
            first=done,
            warmup=warmup if done == first else None,
            **kwargs,
        )
        started = started or one.started_ns
        done += part
    assert started is not None
    return Published(count, started, time.time_ns())


def _mosquitto_pub_session(
    port: int,
    topic: str,
    count: int,
    *,
    size: int,
    pki=None,
    client_id: str,
    first: int = 0,
    warmup: Callable[[], None] | None = None,
    rate: float | None = None,
    inflight: int = 20,
) -> Published:
    """One mosquitto_pub -l session, fed line by line.

    Each line is stamped as it is written to the publisher's stdin; with
    `rate` the lines are paced, else written as fast as the pipe takes them.
    mosquitto_pub exits once every message is acknowledged.
    """
    command = ["mosquitto_pub", "-h", LOOPBACK, "-p", str(port)]
    if pki is not None:
        command += tls_args(pki)
    command += ["-i", client_id, "-q", "1", "-t", topic, "-l", "-M", str(inflight)]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    gap = 1e9 / rate if rate else 0
    try:
        if warmup is not None:
            proc.stdin.write(payload(-1, size - 1) + b"\n")
            proc.stdin.flush()
            warmup()
        started = time.time_ns()
        for seq in range(first, first + count):
            if gap:
                due = started + (seq - first) * gap
                left = (due - time.time_ns()) / 1e9
                if left > 0:
                    time.sleep(left)
            # the newline replaces the last padding byte
            proc.stdin.write(payload(seq, size - 1) + b"\n")
            if gap:
                proc.stdin.flush()
        proc.stdin.close()
        code = proc.wait(600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    if code != 0:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise RuntimeError(f"mosquitto_pub exited {code}: {err.strip()}")
    return Published(count, started, time.time_ns())


def paho_publish(
    port: int,
    topic: str,
    count: int,
    *,
    size: int,
    pki=None,
    client_id: str,
    warmup: Callable[[], None] | None = None,
    inflight: int = 20,
) -> Published:
    """The same with paho in this process (for comparison with mosquitto_pub).

    Each payload is stamped when handed to paho, which queues what is over
    its in-flight window.
    """
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    if pki is not None:
        client.tls_set(
            ca_certs=str(pki.ca_cert),
            certfile=str(pki.client_cert),
            keyfile=str(pki.client_key),
        )
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    connected = threading.Event()
    done = threading.Event()
    acked = [0]

    def on_publish(*_args) -> None:
        acked[0] += 1
        if acked[0] >= count:
            done.set()

    client.on_connect = lambda *_a: connected.set()
    client.on_publish = on_publish
    client.connect(LOOPBACK, port, keepalive=60)
    client.loop_start()
    try:
        if not connected.wait(10):
            raise RuntimeError("paho publisher could not connect")
        if warmup is not None:
            client.publish(topic, payload(-1, size), qos=1).wait_for_publish(10)
            warmup()
        acked[0] = 0
        started = time.time_ns()
        for seq in range(count):
            client.publish(topic, payload(seq, size), qos=1)
        if not done.wait(600):
            raise RuntimeError(f"only {acked[0]} of {count} acknowledged")
        return Published(count, started, time.time_ns())
    finally:
        client.disconnect()
        client.loop_stop()


# Versions, for the machine record.


def command_version(command: list[str]) -> str:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM and friends of a process, in KiB."""
    found = {}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key.startswith("Vm"):
                found[key] = int(rest.split()[0])
    return found


def cpu_count() -> int:
    return os.cpu_count() or 1


# The generated bridge.

APP = "bench-app"


def bridge_spec(
    gateway: str,
    local_port: int,
    remote_port: int,
    pki,
    endpoints: list[tuple[str, str]],
) -> str:
    """A spec for one bridge to the stand-in, host network, given endpoints."""
    lines = [
        "version: 1",
        f"gateway: {gateway}",
        "container: {network: host}",
        f"local: {{port: {local_port}, bind: {LOOPBACK}}}",
        "bridges:",
        "  - name: cloud",
        f"    address: {LOOPBACK}:{remote_port}",
        f"    tls: {{ca: {pki.ca_cert}, cert: {pki.client_cert},"
        f" key: {pki.client_key}}}",
        f"    app_version: {APP}",
        "    endpoints:",
    ]
    lines += [f"      - {{local: {dev}, token: {token}}}" for dev, token in endpoints]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class RunningBridge:
    gateway: str
    port: int
    container: str
    seconds_to_up: float


@contextmanager
def bridge_container(
    work: Path, standin, endpoints: list[tuple[str, str]]
) -> Iterator[RunningBridge]:
    """`bridge-gen up` for a bench gateway (host network); down afterwards."""
    from bridge_gen import engine, pipeline
    from bridge_gen.standin import free_port

    gateway = gateway_name("gw")
    port = free_port()
    spec = work / f"{gateway}.yaml"
    spec.write_text(bridge_spec(gateway, port, standin.port, standin.pki, endpoints))
    prepared = pipeline.prepare(spec, files_required=True)
    plan, files = pipeline.bundle(prepared, work)
    client = engine.engine()
    started = time.monotonic()
    try:
        engine.up(client, plan, files, on_progress=lambda _t: None, timeout=60)
        yield RunningBridge(
            gateway,
            port,
            prepared.plan.container_name,
            time.monotonic() - started,
        )
    finally:
        engine.down(client, prepared.plan, volumes=True, images=True)
