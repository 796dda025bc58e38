"""From a checked spec to the typed plan of a gateway: pure, no I/O.

The plan holds every value the rendered files and the Docker calls need,
already resolved: topic lines in the order mosquitto must see them, the
certificate files with their host and container paths, and the names of
the image, container and volume. Rendering and Docker both read the plan,
so the compose file and `bridge-gen up` cannot drift apart.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass, replace
from pathlib import Path

from bridge_gen import kp1
from bridge_gen.spec import Bridge, Endpoint, Local, Spec, Tls, TopicRule

LABEL_PREFIX = "io.bridge-gen"
CERTS_DIR = "/mosquitto/certs"
SECRETS_IN = "/run/bridge-gen"
RUN_DIR = "/mosquitto/run"
SOCKET = f"{RUN_DIR}/local.sock"
DATA_DIR = "/mosquitto/data"
CONF_PATH = "/mosquitto/config/mosquitto.conf"
ACL_PATH = "/mosquitto/config/acl"
# The local listeners' files sit beside the bridges' in folders named after
# them; no bridge name may start with "_".
LOCAL_FILES = "_local"

# The container drops every capability but those its start needs: the
# entrypoints copy root-owned keys (DAC_OVERRIDE) and hand them and the
# data folder to the broker's user (CHOWN, FOWNER), and mosquitto switches
# to that user (SETUID, SETGID). Its root file system is read-only; it
# writes only to the data volume and two small memory-only folders.
CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID")
TMPFS = (CERTS_DIR, RUN_DIR, "/tmp")

# The container's log is rotated: mosquitto logs every connection, and a
# gateway runs for months.
LOG_MAX_SIZE = "10m"
LOG_MAX_FILES = 3

# A crash (not a stop) loses what arrived since the last save; a save writes
# the whole queue, so this trades a few seconds of exposure against I/O.
AUTOSAVE_SECONDS = 5


@dataclass(frozen=True)
class Layout:
    """Where the broker finds its files: in the container, or on this host."""

    socket: str
    data_dir: str
    certs_dir: str | None  # None: read certificates where they lie on the host
    run_as: str | None = None  # a `user` directive, for brokers started as root
    acl_path: str = ACL_PATH


CONTAINER = Layout(socket=SOCKET, data_dir=DATA_DIR, certs_dir=CERTS_DIR)


def host_layout(run_dir: Path, run_as: str | None = None) -> Layout:
    """For running the rendered config with a mosquitto binary on this host.

    Started as root, mosquitto switches to the user `mosquitto`, who cannot
    read keys that are 0600; `run_as` keeps the broker as the given user.
    """
    return Layout(
        socket=str(run_dir / "local.sock"),
        data_dir=str(run_dir / "data"),
        certs_dir=None,
        run_as=run_as,
        acl_path=str(run_dir / "acl"),
    )


@dataclass(frozen=True)
class TopicLine:
    """One `topic` directive; empty strings render as `""`."""

    pattern: str
    direction: str
    qos: int
    local_prefix: str
    remote_prefix: str
    note: str
    # What the line carries, for reports: the KP1 kind and the endpoint's
    # token, both empty for a raw `topics` rule.
    kind: str = ""
    endpoint: str = ""

    @property
    def local_topic(self) -> str:
        return self.local_prefix + self.pattern

    @property
    def remote_topic(self) -> str:
        return self.remote_prefix + self.pattern


@dataclass(frozen=True)
class FileMount:
    """A host file mounted read-only, then copied where the broker reads it."""

    role: str  # ca, cert, key or passwd
    host_path: Path
    mount_path: str  # where the read-only bind mount lands
    broker_path: str  # where the entrypoint copies it for uid 1883

    @property
    def secret(self) -> bool:
        return self.role in ("key", "passwd")


@dataclass(frozen=True)
class HeartbeatPlan:
    """What `status` publishes on the local broker, and where answers land.

    Kaa answers the probe on `accepted` or `refused`; any other broker
    sends it back on `accepted` (`refused` is None), and only the echo that
    carries the probe's own payload counts.
    """

    send: str
    accepted: str
    refused: str | None

    @property
    def kind(self) -> str:
        return "echo" if self.refused is None else "kaa"


@dataclass(frozen=True)
class BridgePlan:
    name: str
    addresses: tuple[str, ...]
    remote_clientid: str
    local_clientid: str
    keepalive: int
    ca: FileMount | None
    cert: FileMount | None
    key: FileMount | None
    lines: tuple[TopicLine, ...]
    # Only a one-off connection (verify --live) asks the remote to forget
    # its session: a gateway's bridge keeps what was queued for it.
    clean_session: bool = False
    heartbeat: HeartbeatPlan | None = None

    @property
    def files(self) -> tuple[FileMount, ...]:
        return tuple(f for f in (self.ca, self.cert, self.key) if f is not None)


@dataclass(frozen=True)
class UserPlan:
    """A local user and the topic filters it may publish and subscribe on."""

    name: str
    admin: bool
    topics: tuple[str, ...]


@dataclass(frozen=True)
class ListenerTls:
    port: int
    cert: FileMount
    key: FileMount
    ca: FileMount | None  # set: clients must present a certificate it signed

    @property
    def files(self) -> tuple[FileMount, ...]:
        return tuple(f for f in (self.ca, self.cert, self.key) if f is not None)


@dataclass(frozen=True)
class Limits:
    """What the container may use; None is no limit."""

    memory: str | None = None  # as Docker takes it: 256m
    cpus: str | None = None
    pids: int = 64
    health_interval: int = 30


@dataclass(frozen=True)
class GatewayPlan:
    gateway: str
    base_image: str
    network: str
    restart: str
    port: int
    bind: str
    allow_anonymous: bool
    bridges: tuple[BridgePlan, ...]
    buffer_messages: int = 100_000
    queue_qos0: bool = True
    layout: Layout = CONTAINER
    plain: bool = True
    users: tuple[UserPlan, ...] = ()
    tls: ListenerTls | None = None
    # The hashed password file; `pipeline.bundle` places it with the files
    # it is written with.
    passwd: FileMount | None = None
    limits: Limits = Limits()

    @property
    def container_name(self) -> str:
        return f"bridge-gen-{self.gateway}"

    @property
    def image_name(self) -> str:
        return f"bridge-gen/{self.gateway}"

    @property
    def volume_name(self) -> str:
        return f"bridge-gen-{self.gateway}-data"

    @property
    def listener_address(self) -> str:
        # With Docker's port publishing the host side does the binding; the
        # broker in the container must listen on every container interface.
        return self.bind if self.network == "host" else "0.0.0.0"

    @property
    def files(self) -> tuple[FileMount, ...]:
        """Every file mounted from the host: bridges', listeners', passwords."""
        found = [f for b in self.bridges for f in b.files]
        found += self.tls.files if self.tls else ()
        found += [self.passwd] if self.passwd else []
        return tuple(found)

    @property
    def listeners(self) -> tuple[tuple[str, int], ...]:
        """(plain or tls, port) of each listener devices use."""
        found = [("plain", self.port)] if self.plain else []
        found += [("tls", self.tls.port)] if self.tls else []
        return tuple(found)

    def labels(self) -> dict[str, str]:
        return {f"{LABEL_PREFIX}.gateway": self.gateway}


def plan(
    spec: Spec,
    spec_dir: Path,
    *,
    network: str | None = None,
    layout: Layout = CONTAINER,
    lines: dict[int, list[TopicLine]] | None = None,
) -> GatewayPlan:
    """Resolve a checked spec; `network` overrides the spec's container.network.

    `lines` are each bridge's topic lines in spec order where the caller
    built them already (lint does); the rest are built here.
    """
    lines = lines or {}
    container = spec.container
    return GatewayPlan(
        gateway=spec.gateway,
        base_image=spec.container.image,
        network=network or spec.container.network,
        restart=spec.container.restart,
        port=spec.local.port,
        bind=spec.local.bind,
        allow_anonymous=spec.local.anonymous,
        bridges=tuple(
            _bridge(spec, b, spec_dir, layout, lines.get(i))
            for i, b in enumerate(spec.bridges)
        ),
        buffer_messages=spec.buffer.messages,
        queue_qos0=spec.buffer.qos0 == "queue",
        layout=layout,
        plain=spec.local.plain,
        users=users(spec),
        tls=_listener_tls(spec.local, spec_dir, layout),
        passwd=_passwd(spec.local, spec_dir, layout),
        limits=Limits(
            container.memory, container.cpus, container.pids, container.health_interval
        ),
    )


def users(spec: Spec) -> tuple[UserPlan, ...]:
    """Each local user with its own topics: its endpoints' first, as written."""
    owned: dict[str, list[str]] = {user.name: [] for user in spec.local.users}
    for bridge in spec.bridges:
        for endpoint in bridge.endpoints:
            if endpoint.user in owned:
                # The endpoint's topic and every topic below it: replies,
                # commands and the other kinds live there.
                owned[endpoint.user] += [endpoint.local, f"{endpoint.local}/#"]
    return tuple(
        UserPlan(
            user.name,
            user.admin,
            tuple(dict.fromkeys([*owned[user.name], *user.topics])),
        )
        for user in spec.local.users
    )


def _listener_tls(local: Local, spec_dir: Path, layout: Layout) -> ListenerTls | None:
    tls = local.tls
    if tls is None:
        return None
    files = {
        role: _mount(LOCAL_FILES, role, path, spec_dir, layout, name)
        for role, path, name in (
            ("ca", tls.ca, "clients-ca.crt"),
            ("cert", tls.cert, "server.crt"),
            ("key", tls.key, "server.key"),
        )
    }
    return ListenerTls(tls.port, files["cert"], files["key"], files["ca"])


def _passwd(local: Local, where: Path, layout: Layout) -> FileMount | None:
    if not any(user.password_sources for user in local.users):
        return None
    return _mount(LOCAL_FILES, "passwd", "passwd", where, layout, "passwd")


def _bridge(
    spec: Spec,
    bridge: Bridge,
    spec_dir: Path,
    layout: Layout,
    built: list[TopicLine] | None,
) -> BridgePlan:
    remote_id = bridge.clientid or f"{spec.gateway}-{bridge.name}"
    if built is None:
        built = [line for e in bridge.endpoints for line in endpoint_lines(bridge, e)]
        built += [rule_line(rule) for rule in bridge.topics]
    lines = order_lines(built)
    tls = bridge.tls or Tls()
    return BridgePlan(
        name=bridge.name,
        addresses=tuple(bridge.address),
        remote_clientid=remote_id,
        local_clientid=f"local.{remote_id}",
        keepalive=bridge.keepalive,
        ca=_mount(bridge.name, "ca", tls.ca, spec_dir, layout),
        cert=_mount(bridge.name, "cert", tls.cert, spec_dir, layout),
        key=_mount(bridge.name, "key", tls.key, spec_dir, layout),
        lines=tuple(lines),
        heartbeat=heartbeat_plan(bridge),
    )


def heartbeat_plan(bridge: Bridge) -> HeartbeatPlan | None:
    """The probe of a bridge whose heartbeat lint accepted; None without one."""
    beat = bridge.heartbeat
    if beat is None:
        return None
    if beat.topic is not None and beat.reply is not None:
        return HeartbeatPlan(beat.topic, beat.reply, None)
    for endpoint in bridge.endpoints:
        if endpoint.token == beat.token:
            # The endpoint's own telemetry line carries the probe, and its
            # answer lines bring Kaa's verdict back below it.
            accepted, refused = kp1.answers(endpoint.local)
            return HeartbeatPlan(endpoint.local, accepted, refused)
    return None


_FILE_NAMES = {"ca": "ca.crt", "cert": "client.crt", "key": "client.key"}


def _mount(
    folder: str,
    role: str,
    path: str | None,
    base: Path,
    layout: Layout,
    name: str | None = None,
) -> FileMount | None:
    """`folder` is a bridge's name, or LOCAL_FILES for the listeners."""
    if path is None:
        return None
    # Absolute but not resolved: a symlink (live/cert.pem) must keep
    # pointing at whatever the rotation tool makes it point to next.
    absolute = os.path.normpath(os.path.join(base.resolve(), path))
    host_path = Path("/" + absolute.lstrip("/"))  # POSIX keeps a leading "//"
    return file_mount(folder, role, host_path, layout, name)


def file_mount(
    folder: str, role: str, host_path: Path, layout: Layout, name: str | None = None
) -> FileMount:
    """A file at `host_path`, where `layout` has the broker read it."""
    name = name or _FILE_NAMES[role]
    broker = f"{layout.certs_dir}/{folder}/{name}" if layout.certs_dir else None
    return FileMount(
        role=role,
        host_path=host_path,
        mount_path=f"{SECRETS_IN}/{folder}/{name}",
        broker_path=broker or str(host_path),
    )


def relocate(gateway: GatewayPlan, layout: Layout) -> GatewayPlan:
    """The same gateway, run where `layout` says: the broker's files move."""

    def moved(folder: str, f: FileMount) -> FileMount:
        name = f.mount_path.rsplit("/", 1)[1]
        return file_mount(folder, f.role, f.host_path, layout, name)

    def bridge_moved(bridge: BridgePlan) -> BridgePlan:
        return replace(bridge, **{f.role: moved(bridge.name, f) for f in bridge.files})

    tls = gateway.tls
    if tls is not None:
        tls = replace(tls, **{f.role: moved(LOCAL_FILES, f) for f in tls.files})
    passwd = gateway.passwd and moved(LOCAL_FILES, gateway.passwd)
    return replace(
        gateway,
        bridges=tuple(map(bridge_moved, gateway.bridges)),
        tls=tls,
        passwd=passwd,
        layout=layout,
    )


def resolve(bridge: Bridge, endpoint: Endpoint) -> kp1.Resolved:
    """An endpoint with what it leaves unset taken from its bridge."""
    defaults = bridge.defaults

    def pick(name: str, fallback):
        own = getattr(endpoint, name)
        if own is not None:
            return own
        inherited = getattr(defaults, name)
        return fallback if inherited is None else inherited

    return kp1.Resolved(
        base=endpoint.local,
        token=endpoint.token,
        app_version=endpoint.app_version or bridge.app_version or "",
        request_id=pick("request_id", None),
        telemetry=pick("telemetry", True),
        metrics=tuple(pick("metrics", ())),
        metadata=pick("metadata", False),
        commands=tuple(pick("commands", ())),
        config=pick("config", False),
        ota=pick("ota", False),
        extensions=_layered(kp1.EXTENSIONS, bridge.extensions, endpoint.extensions),
        layout=_layered(kp1.LAYOUT, bridge.layout, endpoint.layout),
    )


def _layered(base: dict[str, str], *overrides) -> dict[str, str]:
    out = dict(base)
    for layer in overrides:
        if layer is None:
            continue
        # getattr, not model_dump: this runs for every endpoint of a
        # thousands-strong inventory, and the keys are known.
        for key in base:
            value = getattr(layer, key)
            if value:
                out[key] = value
    return out


def endpoint_lines(
    bridge: Bridge, endpoint: Endpoint, resolved: kp1.Resolved | None = None
) -> list[TopicLine]:
    """Every KP1 mapping of one endpoint, as exact-topic lines.

    `resolved` saves resolving again where the caller already did.
    """
    resolved = resolved or resolve(bridge, endpoint)
    found = kp1.routes(resolved)
    kinds = ", ".join(dict.fromkeys(r.kind for r in found))
    note = f"endpoint {endpoint.token}: {kinds}"
    token = endpoint.token
    return [
        TopicLine("", r.direction, bridge.qos, r.local, r.remote, note, r.kind, token)
        for r in found
    ]


def rule_line(rule: TopicRule) -> TopicLine:
    return TopicLine(
        rule.pattern,
        rule.direction,
        rule.qos,
        rule.local_prefix,
        rule.remote_prefix,
        "topic rules",
    )


# Topic line order.


def order_lines(lines: list[TopicLine]) -> list[TopicLine]:
    """Specific lines before the broader lines that cover them; else as given.

    mosquitto renames a bridged message by the first topic line, in file
    order, whose filter matches it: the local topic for `out`, the remote
    one for `in`, `both` counting as each. A line that came after another
    whose filter covers it (`site/alarm` after `site/#`, both `out`) would
    never rename anything. Endpoints and exact-topic rules are never broad,
    so this is a stable topological sort: each line keeps its place in the
    spec unless it must move up ahead of a broader one, which then follows
    every line it covers.

    What no order fixes is left to `lint`, which refuses it: equal filters
    (they cover each other; they keep their order here), and `both` lines
    that each cover the other in opposite directions (a cycle, broken here
    at the earliest line so that no line is ever dropped). Filters that
    overlap without either covering the other (`a/+/c`, `a/b/+`) lose
    something in any order; `lint` warns about them.
    """
    return [lines[i] for i in line_order(lines)]


def line_order(lines: list[TopicLine]) -> list[int]:
    """The indices of `lines` in the order `order_lines` gives them."""
    if not any(has_wildcard(line) for line in lines):
        return list(range(len(lines)))  # a Kaa inventory: all exact topics
    waits_for, unblocks = _dependencies(lines)

    ready = [i for i, deps in waits_for.items() if not deps]
    heapq.heapify(ready)
    order: list[int] = []
    placed: set[int] = set()
    while len(order) < len(lines):
        if not ready:
            # A cycle: let the earliest waiting line go first.
            ready = [min(i for i in waits_for if i not in placed)]
        i = heapq.heappop(ready)
        if i in placed:
            continue
        order.append(i)
        placed.add(i)
        for k in unblocks[i]:
            waits_for[k].discard(i)
            if not waits_for[k] and k not in placed:
                heapq.heappush(ready, k)
    return order


def _dependencies(
    lines: list[TopicLine],
) -> tuple[dict[int, set[int]], dict[int, list[int]]]:
    """Which lines each line must follow, and the reverse."""
    # Only a filter with a wildcard can cover another one strictly, so only
    # those lines wait: the work is (wildcard lines) x (all lines).
    waits_for: dict[int, set[int]] = {i: set() for i in range(len(lines))}
    unblocks: dict[int, list[int]] = {i: [] for i in range(len(lines))}
    for i, line in enumerate(lines):
        if not has_wildcard(line):
            continue
        for j, other in enumerate(lines):
            if j != i and covers_line(line, other, strictly=True):
                waits_for[i].add(j)
                unblocks[j].append(i)
    return waits_for, unblocks


def directions(direction: str) -> tuple[str, ...]:
    """The directions a line takes part in: `both` is `in` and `out`."""
    return ("in", "out") if direction == "both" else (direction,)


def match_filter(line: TopicLine, direction: str) -> str:
    """The filter mosquitto matches a message against in that direction."""
    return line.local_topic if direction == "out" else line.remote_topic


def covers_line(wide: TopicLine, narrow: TopicLine, *, strictly: bool) -> bool:
    """Whether `wide` catches every message of `narrow` in a shared direction."""
    for direction in set(directions(wide.direction)) & set(
        directions(narrow.direction)
    ):
        a, b = match_filter(wide, direction), match_filter(narrow, direction)
        if covers(a, b) and not (strictly and covers(b, a)):
            return True
    return False


def covers(wide: str, narrow: str) -> bool:
    """Whether every topic the filter `narrow` matches, `wide` matches too.

    MQTT rules: `#` also matches its parent level (`a/#` matches `a`), and
    a filter that starts with a wildcard matches no topic starting with `$`.
    Exact for valid filters; tests check it against matching by brute force.
    """
    if narrow.startswith("$") and wide[:1] in ("+", "#"):
        return False
    # Every topic has a first level, so `+/#` matches exactly what `#` does.
    wide, narrow = ("#" if f == "+/#" else f for f in (wide, narrow))
    wide_levels, narrow_levels = wide.split("/"), narrow.split("/")
    for i, level in enumerate(wide_levels):
        if level == "#":
            return True
        if i == len(narrow_levels) or narrow_levels[i] == "#":
            return False
        if level != "+" and level != narrow_levels[i]:
            return False
    return len(wide_levels) == len(narrow_levels)


def overlaps(one: str, other: str) -> bool:
    """Whether some topic matches both filters."""
    for first, second in ((one, other), (other, one)):
        if first.startswith("$") and second[:1] in ("+", "#"):
            return False
    a, b = one.split("/"), other.split("/")
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else None
        y = b[i] if i < len(b) else None
        if x == "#" or y == "#":
            return True
        if x is None or y is None:
            return False
        if "+" not in (x, y) and x != y:
            return False
    return True


def has_wildcard(line: TopicLine) -> bool:
    # Called for every line of every endpoint: no generator here.
    pattern = line.pattern
    return "+" in pattern or "#" in pattern
