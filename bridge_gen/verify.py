"""`bridge-gen verify`: every mapping of a gateway, proven on this machine.

The gateway's own rendered configuration runs here, with each bridge's
remote replaced by a local stand-in (throwaway certificates, 127.0.0.1)
and the local listener on a free loopback port. For every topic line, in
each direction it carries, one uniquely tagged message is published on
the source side; it must arrive on exactly the expected topic on the
other side, once, and never come back to the side it was sent from.

`--live` instead sends one telemetry request per Kaa bridge to the real
remote, through a throwaway local broker, and waits for Kaa's answer.

Planning the probes, deriving the plans that run and judging what
arrived are pure; `run` and `run_live` hold the side effects.
"""

from __future__ import annotations

import json
import queue
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bridge_gen import render, sandbox
from bridge_gen.errors import BridgeGenError
from bridge_gen.pki import Pki, make_throwaway_pki
from bridge_gen.plan import (
    CONTAINER,
    BridgePlan,
    GatewayPlan,
    Layout,
    TopicLine,
    directions,
    file_mount,
    relocate,
)
from bridge_gen.standin import (
    LOOPBACK,
    StandInBroker,
    StandInError,
    find_mosquitto,
    free_port,
    tls_client,
)

Say = sandbox.Say
LOCAL = "local"
PAYLOAD_PREFIX = b"bridge-gen verify "
LIVE_TOPIC = "bridge-gen-verify"

# After the last expected arrival, how long an echo or a second copy has to
# show up. On loopback a round trip through a bridge takes milliseconds.
SETTLE_SECONDS = 1.0


# What to send and what must arrive: pure.


@dataclass(frozen=True)
class Probe:
    """One tagged message for one direction of one topic line."""

    bridge: str
    mapping: str  # bridge/endpoint/kind, or bridge/rule LOCAL-FILTER
    direction: str  # out: local to remote; in: remote to local
    source: str
    expected: str
    tag: str

    @property
    def origin(self) -> str:
        return LOCAL if self.direction == "out" else remote_side(self.bridge)

    @property
    def destination(self) -> str:
        return remote_side(self.bridge) if self.direction == "out" else LOCAL


@dataclass(frozen=True)
class Arrival:
    side: str  # LOCAL, or remote_side(bridge)
    topic: str
    tag: str
    at: float  # time.monotonic()


@dataclass(frozen=True)
class Outcome:
    bridge: str
    mapping: str
    direction: str
    source: str
    expected: str
    result: str  # pass, FAIL or echo
    latency_ms: float | None
    detail: str

    @property
    def passed(self) -> bool:
        return self.result == "pass"


@dataclass(frozen=True)
class Report:
    mode: str  # docker or local
    outcomes: tuple[Outcome, ...]


def remote_side(bridge: str) -> str:
    return f"remote {bridge}"


def plan_probes(plan: GatewayPlan, run_id: str) -> list[Probe]:
    """A probe per direction of every topic line, each with its own tag."""
    probes = []
    for bridge in plan.bridges:
        for line in bridge.lines:
            for direction in directions(line.direction):
                tag = f"{run_id}-{len(probes) + 1}"
                probes.append(_probe(bridge.name, line, direction, tag))
    return probes


def _probe(bridge: str, line: TopicLine, direction: str, tag: str) -> Probe:
    level = concrete(line.pattern, f"verify-{tag}")
    local, remote = line.local_prefix + level, line.remote_prefix + level
    source, expected = (local, remote) if direction == "out" else (remote, local)
    return Probe(bridge, mapping_name(bridge, line), direction, source, expected, tag)


def concrete(pattern: str, level: str) -> str:
    """A topic the pattern matches: each wildcard level becomes `level`."""
    return "/".join(
        level if part in ("+", "#") else part for part in pattern.split("/")
    )


def mapping_name(bridge: str, line: TopicLine) -> str:
    if line.kind:
        return f"{bridge}/{line.endpoint}/{line.kind}"
    return f"{bridge}/rule {line.local_topic}"


def judge(probe: Probe, arrivals: list[Arrival], sent: float, waited: float) -> Outcome:
    """What became of one probe, from everything that arrived anywhere."""
    mine = [a for a in arrivals if a.tag == probe.tag]
    there = [a for a in mine if a.side == probe.destination]
    hits = [a for a in there if a.topic == probe.expected]
    latency = (hits[0].at - sent) * 1000 if hits else None
    verdict = _verdict(probe, mine, there, hits, waited)
    return Outcome(
        probe.bridge,
        probe.mapping,
        probe.direction,
        probe.source,
        probe.expected,
        verdict[0],
        None if latency is None else round(latency, 1),
        verdict[1],
    )


def _verdict(
    probe: Probe,
    mine: list[Arrival],
    there: list[Arrival],
    hits: list[Arrival],
    waited: float,
) -> tuple[str, str]:
    if not there:
        return "FAIL", f"nothing arrived within {waited:g} s"
    if not hits:
        return "FAIL", f"arrived on {there[0].topic} instead"
    # The source side's own subscriber sees the original once; more is an
    # echo (a `both` line over MQTT 3.1.1, or two lines feeding each other).
    back = [a for a in mine if a.side == probe.origin]
    originals = [a for a in back if a.topic == probe.source][:1]
    echoes = [a for a in back if a not in originals]
    if echoes:
        return "echo", f"came back on {echoes[0].topic}"
    if len(there) > 1:
        others = sorted({a.topic for a in there} - {probe.expected})
        also = f"; also on {', '.join(others)}" if others else ""
        return "FAIL", f"arrived {len(there)} times{also}"
    return "pass", ""


# The plans that run: pure. Everything verify changes in the gateway's
# plan is decided in these functions, nowhere else.


def local_side(
    plan: GatewayPlan, *, port: int, layout: Layout, gateway: str
) -> GatewayPlan:
    """The gateway's broker as verify runs it: on loopback, open to probes.

    The probes connect as anonymous clients on a free 127.0.0.1 port, so
    whatever guards the real listener (anonymous access off, local users
    and their access list, the TLS listener) is switched off here; the
    access list has tests of its own. The run
    gets a gateway name of its own, so its container, image and volume
    never meet the real gateway's, and no restart policy.
    """
    moved = relocate(plan, layout)
    return replace(
        moved,
        gateway=gateway,
        network="host",
        restart="no",
        port=port,
        bind=LOOPBACK,
        allow_anonymous=True,
        plain=True,
        users=(),
        tls=None,
        passwd=None,
    )


def throwaway_plan(
    plan: GatewayPlan,
    *,
    pki: Pki,
    remotes: dict[str, int],
    port: int,
    layout: Layout,
    gateway: str,
) -> GatewayPlan:
    """The plan with every bridge aimed at its stand-in on `remotes[name]`."""
    files = (("ca", pki.ca_cert), ("cert", pki.client_cert), ("key", pki.client_key))

    def aimed(bridge: BridgePlan) -> BridgePlan:
        return replace(
            bridge,
            addresses=(f"{LOOPBACK}:{remotes[bridge.name]}",),
            **{
                role: file_mount(bridge.name, role, path, layout)
                for role, path in files
            },
        )

    local = local_side(plan, port=port, layout=layout, gateway=gateway)
    return replace(local, bridges=tuple(map(aimed, local.bridges)))


# Running the probes.


def run(
    plan: GatewayPlan, say: Say, *, use_docker: bool | None, timeout: float
) -> Report:
    """Run the gateway against stand-ins and send every probe through it."""
    mosquitto = _mosquitto()
    client, mode = _engine(use_docker, plan.base_image, say)
    run_id = secrets.token_hex(3)
    probes = plan_probes(plan, run_id)
    with ExitStack() as stack:
        work = stack.enter_context(sandbox.temp_dir("bridge-gen-verify-"))
        pki = make_throwaway_pki(work / "certs")
        remotes = {
            b.name: stack.enter_context(
                StandInBroker(work / f"remote-{i}", pki, mosquitto=mosquitto)
            )
            for i, b in enumerate(plan.bridges)
        }
        say(
            f"{len(remotes)} stand-in remote(s) on {LOOPBACK}, TLS with throwaway"
            " certificates"
        )
        layout = sandbox.binary_layout(work / "bridge") if client is None else CONTAINER
        trial = throwaway_plan(
            plan,
            pki=pki,
            remotes={name: broker.port for name, broker in remotes.items()},
            port=free_port(),
            layout=layout,
            gateway=f"verify-{run_id}",
        )
        port = stack.enter_context(
            _bridge(client, mosquitto, trial, work, say, timeout)
        )
        _wait_subscribed(trial, remotes, timeout)
        say(f"every bridge is connected; sending {len(probes)} tagged message(s)")
        outcomes = _exchange(probes, port, remotes, pki, run_id, timeout)
    return Report(mode, tuple(outcomes))


def _mosquitto() -> str:
    found = find_mosquitto()
    if found is None:
        raise BridgeGenError(
            "verify needs the mosquitto binary for its stand-ins;"
            " install it (Debian: apt-get install mosquitto)"
        )
    return found


def _engine(use_docker: bool | None, image: str, say: Say):
    client, why_not = sandbox.docker_engine(use_docker, image)
    if client is None and use_docker:
        raise BridgeGenError(f"--docker was given, but {why_not}")
    if client is not None:
        say(f"running the bridge in a throwaway container from {image}")
        return client, "docker"
    because = f"{why_not}; " if why_not else ""
    say(f"{because}running the bridge with the local mosquitto binary")
    return None, "local"


def _bridge(
    client,
    mosquitto: str | None,
    plan: GatewayPlan,
    work: Path,
    say: Say,
    timeout: float,
):
    """The context that runs `plan`, in Docker or with the binary."""
    if client is not None:
        files = render.render(plan, work / "bundle")
        return sandbox.in_docker(client, plan, files, say, timeout)
    assert mosquitto is not None  # _engine chose the binary
    return sandbox.with_binary(mosquitto, plan, work / "bridge", say, timeout)


def _wait_subscribed(
    plan: GatewayPlan, remotes: dict[str, StandInBroker], timeout: float
) -> None:
    # A probe published remotely before the bridge's SUBSCRIBE reached the
    # stand-in would be lost, and reported as a mapping that fails.
    deadline = time.monotonic() + timeout
    for bridge in plan.bridges:
        wanted = sum("in" in directions(line.direction) for line in bridge.lines)
        broker = remotes[bridge.name]
        while len(broker.subscriptions(bridge.remote_clientid)) < wanted:
            if time.monotonic() > deadline:
                return  # the `in` probes will say what is missing
            time.sleep(0.1)


class _Inbox:
    """Every tagged message any of verify's clients received."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self._cond = threading.Condition()

    def listen(self, side: str):
        def on_message(_client, _userdata, message) -> None:
            if not message.payload.startswith(PAYLOAD_PREFIX):
                return
            tag = message.payload[len(PAYLOAD_PREFIX) :].decode("ascii", "replace")
            with self._cond:
                self.arrivals.append(
                    Arrival(side, message.topic, tag, time.monotonic())
                )
                self._cond.notify_all()

        return on_message

    def wait(self, wanted: dict[str, str], deadline: float) -> None:
        """Until each tag arrived on its side (tag to side), or the deadline."""
        with self._cond:
            while True:
                seen = {(a.tag, a.side) for a in self.arrivals}
                if all(item in seen for item in wanted.items()):
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def snapshot(self) -> list[Arrival]:
        with self._cond:
            return list(self.arrivals)


def _exchange(
    probes: list[Probe],
    port: int,
    remotes: dict[str, StandInBroker],
    pki: Pki,
    run_id: str,
    timeout: float,
) -> list[Outcome]:
    inbox = _Inbox()
    # `#` matches no topic that starts with `$`: those levels are asked for
    # by name, on every side, so a probe there is seen wherever it lands.
    dollars = {
        topic.split("/", 1)[0] + "/#"
        for probe in probes
        for topic in (probe.source, probe.expected)
        if topic.startswith("$")
    }
    filters = ["#", *sorted(dollars)]
    with _clients(port, remotes, pki, run_id, inbox, timeout, filters) as clients:
        sent: dict[str, float] = {}
        for probe in probes:
            sent[probe.tag] = time.monotonic()
            clients[probe.origin].publish(
                probe.source, PAYLOAD_PREFIX + probe.tag.encode(), qos=1
            )
        inbox.wait({p.tag: p.destination for p in probes}, time.monotonic() + timeout)
        time.sleep(SETTLE_SECONDS)
        arrivals = inbox.snapshot()
    return [judge(p, arrivals, sent[p.tag], timeout) for p in probes]


@contextmanager
def _clients(
    port: int,
    remotes: dict[str, StandInBroker],
    pki: Pki,
    run_id: str,
    inbox: _Inbox,
    timeout: float,
    filters: list[str],
) -> Iterator[dict[str, mqtt.Client]]:
    """One client per side, each subscribed to `filters` on its side."""
    clients: dict[str, mqtt.Client] = {}
    try:
        clients[LOCAL] = _plain_client(port, f"bridge-gen-verify-{run_id}", timeout)
        for i, (name, broker) in enumerate(remotes.items()):
            clients[remote_side(name)] = tls_client(
                pki, LOOPBACK, broker.port, f"bridge-gen-verify-{run_id}-{i}"
            )
        for side, client in clients.items():
            client.on_message = inbox.listen(side)
            for topic in filters:
                _subscribe(client, topic, timeout)
        yield clients
    finally:
        for client in clients.values():
            client.disconnect()
            client.loop_stop()


def _plain_client(port: int, client_id: str, timeout: float) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    try:
        client.connect(LOOPBACK, port, keepalive=30)
    except OSError as exc:
        raise StandInError(f"cannot connect to the bridge's listener: {exc}") from None
    client.loop_start()
    if not connected.wait(timeout):
        client.loop_stop()
        raise StandInError(f"the bridge's listener on port {port} did not answer")
    return client


def _subscribe(client: mqtt.Client, topic: str, timeout: float) -> None:
    done = threading.Event()
    client.on_subscribe = lambda *_: done.set()
    client.subscribe(topic, qos=1)
    if not done.wait(timeout):
        raise StandInError(f"no SUBACK for {topic} within {timeout:g} s")


# --live: one request per Kaa bridge to the real remote.


@dataclass(frozen=True)
class LiveProbe:
    bridge: str
    endpoint: str
    local: str  # where verify publishes, on its throwaway broker
    remote: str  # the kp1 request topic, with a request id


@dataclass(frozen=True)
class LiveOutcome:
    bridge: str
    endpoint: str
    remote: str
    result: str  # accepted, refused, no reply, or skipped
    latency_ms: float | None
    detail: str

    @property
    def passed(self) -> bool:
        return self.result in ("accepted", "skipped")


def live_probes(plan: GatewayPlan, run_id: str, request_id: int) -> list[LiveProbe]:
    """One telemetry request per bridge that carries Kaa telemetry."""
    found = []
    for bridge in plan.bridges:
        line = next(
            (x for x in bridge.lines if x.kind == "telemetry" and x.direction == "out"),
            None,
        )
        if line is None:
            continue
        remote = f"{_without_request_id(line.remote_topic)}/{request_id}"
        local = f"{LIVE_TOPIC}/{run_id}/{bridge.name}"
        found.append(LiveProbe(bridge.name, line.endpoint, local, remote))
    return found


def _without_request_id(topic: str) -> str:
    # kp1/APP/dcx/TOKEN/json[/N]: the resource is never a number.
    head, _, last = topic.rpartition("/")
    return head if last.isdigit() else topic


def live_plan(
    plan: GatewayPlan,
    probes: list[LiveProbe],
    *,
    run_id: str,
    port: int,
    layout: Layout,
) -> GatewayPlan:
    """Only the bridges probed, each carrying only its request and answers.

    The real address and certificates stay. A client id of its own and a
    clean session keep the gateway's running bridge connected and leave no
    session behind at the remote.
    """
    by_bridge = {p.bridge: p for p in probes}
    local = local_side(plan, port=port, layout=layout, gateway=f"verify-{run_id}")
    bridges = []
    for bridge in local.bridges:
        probe = by_bridge.get(bridge.name)
        if probe is None:
            continue
        client_id = f"{bridge.remote_clientid}-verify-{run_id}"
        bridges.append(
            replace(
                bridge,
                remote_clientid=client_id,
                local_clientid=f"local.{client_id}",
                clean_session=True,
                lines=_live_lines(probe, bridge.lines[0].qos),
            )
        )
    return replace(local, bridges=tuple(bridges))


def _live_lines(probe: LiveProbe, qos: int) -> tuple[TopicLine, ...]:
    note = f"verify --live: endpoint {probe.endpoint}"
    return tuple(
        TopicLine("", d, qos, probe.local + s, probe.remote + s, note, "telemetry")
        for d, s in (("out", ""), ("in", "/status"), ("in", "/error"))
    )


def live_outcome(
    probe: LiveProbe, reply: tuple[str, bytes, float] | None, sent: float
) -> LiveOutcome:
    """accepted, refused (with Kaa's reason) or no reply."""
    if reply is None:
        return LiveOutcome(
            probe.bridge, probe.endpoint, probe.remote, "no reply", None, ""
        )
    topic, payload, at = reply
    latency = round((at - sent) * 1000, 1)
    if topic.endswith("/status"):
        return LiveOutcome(
            probe.bridge, probe.endpoint, probe.remote, "accepted", latency, ""
        )
    return LiveOutcome(
        probe.bridge, probe.endpoint, probe.remote, "refused", latency, _reason(payload)
    )


def _reason(payload: bytes) -> str:
    try:
        body = json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", "replace")[:200]
    if isinstance(body, dict) and "reasonPhrase" in body:
        return f"{body.get('statusCode', '?')} {body['reasonPhrase']}"
    return json.dumps(body)[:200]


def skipped(plan: GatewayPlan, probes: list[LiveProbe]) -> list[LiveOutcome]:
    probed = {p.bridge for p in probes}
    return [
        LiveOutcome(b.name, "", "", "skipped", None, "no Kaa telemetry mapping")
        for b in plan.bridges
        if b.name not in probed
    ]


def run_live(
    plan: GatewayPlan, say: Say, *, use_docker: bool | None, timeout: float
) -> tuple[str, list[LiveOutcome]]:
    """Send one telemetry request per Kaa bridge to the real remote."""
    run_id = secrets.token_hex(3)
    probes = live_probes(plan, run_id, request_id=100_000 + secrets.randbelow(900_000))
    if not probes:
        return "none", skipped(plan, probes)
    client, mode = _engine(use_docker, plan.base_image, say)
    mosquitto = _mosquitto() if client is None else None
    with ExitStack() as stack:
        work = stack.enter_context(sandbox.temp_dir("bridge-gen-verify-"))
        layout = sandbox.binary_layout(work / "bridge") if client is None else CONTAINER
        trial = live_plan(plan, probes, run_id=run_id, port=free_port(), layout=layout)
        port = stack.enter_context(
            _bridge(client, mosquitto, trial, work, say, timeout)
        )
        say(f"connected to the real remote; sending {len(probes)} request(s)")
        outcomes = _ask(probes, port, run_id, timeout)
    return mode, outcomes + skipped(plan, probes)


def _ask(
    probes: list[LiveProbe], port: int, run_id: str, timeout: float
) -> list[LiveOutcome]:
    replies: queue.Queue[tuple[str, bytes, float]] = queue.Queue()
    client = _plain_client(port, f"bridge-gen-verify-{run_id}", timeout)
    try:
        client.on_message = lambda _c, _u, m: replies.put(
            (m.topic, m.payload, time.monotonic())
        )
        _subscribe(client, f"{LIVE_TOPIC}/{run_id}/+/+", timeout)
        sent = time.monotonic()
        payload = json.dumps([{"bridge_gen_verify": run_id}])
        for probe in probes:
            client.publish(probe.local, payload, qos=1)
        got = _replies(replies, {p.local for p in probes}, sent + timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return [live_outcome(p, got.get(p.local), sent) for p in probes]


def _replies(
    replies: queue.Queue, waiting: set[str], deadline: float
) -> dict[str, tuple[str, bytes, float]]:
    """The first answer per request topic, until all came or the deadline."""
    got: dict[str, tuple[str, bytes, float]] = {}
    while waiting - set(got) and (left := deadline - time.monotonic()) > 0:
        try:
            reply = replies.get(timeout=left)
        except queue.Empty:
            break
        asked = reply[0].rpartition("/")[0]
        got.setdefault(asked, reply)
    return got
