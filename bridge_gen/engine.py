"""Every call to the Docker engine: build, start, watch and stop a bridge.

This is the one module that imports the docker SDK, and only the commands
that need Docker import this module. Engine errors become BridgeGenErrors
with a hint here, so no other layer sees a docker exception.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import docker
import docker.errors
from docker.types import LogConfig, Mount

from bridge_gen import brokerlog, probe
from bridge_gen import heartbeat as heartbeats
from bridge_gen import plan as plans
from bridge_gen.brokerlog import diagnose, lines_of
from bridge_gen.errors import (
    BridgeGenError,
    BridgeNotConnected,
    DockerFailed,
    DockerUnavailable,
    NotDeployed,
)
from bridge_gen.plan import BridgePlan, GatewayPlan
from bridge_gen.render import RenderedFile, render

HASH_LABEL = f"{plans.LABEL_PREFIX}.config-hash"
SPEC_LABEL = f"{plans.LABEL_PREFIX}.spec-hash"
GATEWAY_LABEL = f"{plans.LABEL_PREFIX}.gateway"
IMAGE_FILES = ("Dockerfile", "mosquitto.conf", "acl", "bridge-entrypoint.sh")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BridgeState:
    name: str
    connected: bool | None  # None: the broker is not running to ask
    reason: str | None = None
    heartbeat: heartbeats.Heartbeat | None = None  # None: the spec sets none
    since: str | None = None  # connected since (the log's UTC time)
    attempts: int = 0  # to connect, since the container started; 1 if steady


@dataclass(frozen=True)
class Status:
    gateway: str
    container: str
    state: str  # running, exited, restarting, ... or absent
    health: str | None
    started_at: str | None
    image: str | None
    bridges: tuple[BridgeState, ...] = field(default_factory=tuple)
    # Queued by the broker for any client, its retained messages left out;
    # as of its last $SYS update (every 10 s).
    stored_messages: int | None = None
    buffer_limit: int | None = None  # per bridge, from the spec
    dropped_warnings: int = 0  # "messages are being dropped" in the log
    # The spec was edited since `up` made the container; None: not known.
    stale: bool | None = None
    last_drop: str | None = None


def engine() -> docker.DockerClient:
    """A client for the engine that answered, or DockerUnavailable."""
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as exc:
        raise DockerUnavailable(
            f"cannot reach the Docker engine at {where} ({_why_unreachable(exc)});"
            " start it (e.g. `sudo systemctl start docker`) or point DOCKER_HOST"
            " at one"
        ) from None
    return client


def _why_unreachable(exc: Exception) -> str:
    text = str(exc)
    if "No such file" in text:
        return "no such socket"
    if "Permission denied" in text:
        return "permission denied: run as root or join the docker group"
    if "Connection refused" in text:
        return "connection refused"
    return _short(exc)


@contextmanager
def _engine_errors(doing: str) -> Iterator[None]:
    try:
        yield
    except docker.errors.APIError as exc:
        raise DockerFailed(f"Docker refused to {doing}: {_short(exc)}") from None
    except docker.errors.DockerException as exc:
        raise DockerFailed(f"could not {doing}: {_short(exc)}") from None


def spec_hash(plan: GatewayPlan, files: tuple[RenderedFile, ...]) -> str:
    """Changes when the spec changes what runs; reads no file to tell.

    `status` compares it with the running container's, to say when the
    spec was edited after `up`.
    """
    digest = hashlib.sha256()
    # Only what the image is built from: the compose file's relative paths
    # depend on where it is written, not on what runs.
    for item in files:
        if item.name in IMAGE_FILES:
            digest.update(f"{item.name}\0{item.mode}\0{item.text}\0".encode())
    digest.update(f"{plan.network}\0{plan.bind}\0{plan.listeners}\0".encode())
    digest.update(f"{plan.limits}\0".encode())
    for mount in plan.files:
        # The password file lies where the command wrote it.
        if mount.role != "passwd":
            digest.update(f"{mount.mount_path}\0{mount.host_path}\0".encode())
    return digest.hexdigest()


def config_hash(
    plan: GatewayPlan, files: tuple[RenderedFile, ...], base_id: str
) -> str:
    """Changes when anything the container is made from changes."""
    digest = hashlib.sha256(f"{base_id}\0{spec_hash(plan, files)}\0".encode())
    for mount in plan.files:
        # Rotating a certificate in place must replace the container, whose
        # entrypoint copied the old one. The file's identity and times tell
        # that without reading it: a key may be readable by Docker only.
        try:
            info = mount.host_path.stat()
        except OSError as exc:
            raise BridgeGenError(
                f"cannot use {mount.host_path}: {exc.strerror}"
            ) from None
        stamp = f"{mount.host_path}\0{info.st_ino}\0{info.st_size}\0{info.st_mtime_ns}"
        digest.update(stamp.encode())
    return digest.hexdigest()


def up(
    client: docker.DockerClient,
    plan: GatewayPlan,
    files: tuple[RenderedFile, ...],
    *,
    on_progress: Progress,
    timeout: float,
) -> str:
    """Build and start the bridge, wait until every bridge is connected.

    Returns what was done: "unchanged", "created" or "replaced".
    """
    base_id = _ensure_base(client, plan.base_image, on_progress)
    wanted = config_hash(plan, files, base_id)
    current = _find(client, plan)
    same = current is not None and current.labels.get(HASH_LABEL) == wanted
    if same and current.status == "running":
        wait_connected(current, plan, timeout=timeout, on_progress=on_progress)
        return "unchanged"

    image = _ensure_image(client, plan, files, wanted, on_progress)
    action = "created"
    if current is not None:
        on_progress(f"replacing the old container {current.name}")
        _remove(current)
        action = "replaced"

    container = _start(client, plan, image, wanted, spec_hash(plan, files))
    on_progress(f"started container {container.name}; waiting for the bridges")
    wait_connected(container, plan, timeout=timeout, on_progress=on_progress)
    return action


def _find(client: docker.DockerClient, plan: GatewayPlan):  # -> Container | None
    with _engine_errors("look up containers"):
        try:
            found = client.containers.get(plan.container_name)
        except docker.errors.NotFound:
            return None
    if found.labels.get(GATEWAY_LABEL) != plan.gateway:
        raise DockerFailed(
            f"a container named {plan.container_name} exists but bridge-gen did"
            " not make it; remove or rename it first"
        )
    return found


def _ensure_image(client, plan, files, wanted: str, on_progress: Progress) -> str:
    tag = f"{plan.image_name}:{wanted[:12]}"
    with _engine_errors("inspect images"):
        try:
            # `latest` follows the image in use, for the compose file.
            client.images.get(tag).tag(plan.image_name, "latest")
            on_progress(f"image {tag} is up to date")
            return tag
        except docker.errors.ImageNotFound:
            pass

    context = _context_tar(files)
    labels = {**plan.labels(), HASH_LABEL: wanted}
    with _engine_errors("build the image"):
        stream = client.api.build(
            fileobj=context,
            custom_context=True,
            tag=tag,
            labels=labels,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                raise DockerFailed(f"image build failed: {chunk['error'].strip()}")
            text = chunk.get("stream", "").strip()
            # Steps tell the user where the build is; the rest is noise.
            if text.startswith(("Step ", "Successfully")):
                on_progress(text)
        client.images.get(tag).tag(plan.image_name, "latest")
    return tag


def has_image(client: docker.DockerClient, name: str) -> bool:
    with _engine_errors("inspect images"):
        try:
            client.images.get(name)
        except docker.errors.ImageNotFound:
            return False
    return True


def _ensure_base(client, base: str, on_progress: Progress) -> str:
    """The id of the base image, pulled first when it is not here."""
    try:
        return client.images.get(base).id
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.DockerException as exc:
        raise DockerFailed(f"could not inspect {base}: {_short(exc)}") from None
    on_progress(f"pulling {base}")
    try:
        return client.images.pull(base).id
    except docker.errors.DockerException as exc:
        raise DockerFailed(
            f"the base image {base} is not on this engine and could not be"
            f" pulled ({_short(exc)}); load it with `docker load` or set"
            " container.image in the spec"
        ) from None


def _context_tar(files: tuple[RenderedFile, ...]) -> io.BytesIO:
    # Only the three files the Dockerfile copies: nothing else from the
    # output folder (a key someone put there) ever reaches the engine.
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for item in files:
            if item.name not in IMAGE_FILES:
                continue
            data = item.text.encode("utf-8")
            info = tarfile.TarInfo(item.name)
            info.size = len(data)
            info.mode = item.mode
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def _start(client, plan: GatewayPlan, image: str, wanted: str, spec: str):
    mounts = [Mount(plans.DATA_DIR, plan.volume_name, type="volume")]
    mounts += [
        Mount(f.mount_path, str(f.host_path), type="bind", read_only=True)
        for f in plan.files
    ]
    options: dict = {
        "name": plan.container_name,
        "detach": True,
        "labels": {
            **plan.labels(),
            HASH_LABEL: wanted,
            SPEC_LABEL: spec,
        },
        "mounts": mounts,
        "tmpfs": {path: "size=1m" for path in plans.TMPFS},
        "read_only": True,
        "cap_drop": ["ALL"],
        "cap_add": list(plans.CAPABILITIES),
        "security_opt": ["no-new-privileges"],
        "pids_limit": plan.limits.pids,
        "log_config": LogConfig(
            type="json-file",
            config={
                "max-size": plans.LOG_MAX_SIZE,
                "max-file": str(plans.LOG_MAX_FILES),
            },
        ),
    }
    if plan.limits.memory:
        options["mem_limit"] = plan.limits.memory
    if plan.limits.cpus:
        options["nano_cpus"] = round(float(plan.limits.cpus) * 1e9)
    if plan.restart != "no":
        options["restart_policy"] = {"Name": plan.restart}
    if plan.network == "host":
        options["network_mode"] = "host"
    else:
        options["ports"] = {
            f"{port}/tcp": (plan.bind, port) for _, port in plan.listeners
        }

    with _engine_errors("create the data volume"):
        try:
            client.volumes.get(plan.volume_name)
        except docker.errors.NotFound:
            client.volumes.create(plan.volume_name, labels=plan.labels())
    with _engine_errors("start the container"):
        return client.containers.run(image, **options)


def bridge_states(container, plan: GatewayPlan) -> dict[str, bool] | None:
    """Each bridge's connection state, as the broker itself publishes it.

    None when the broker does not answer on its local socket at all.
    """
    return brokerlog.bridge_states(broker_sys(container, plan))


def broker_sys(container, plan: GatewayPlan) -> dict[str, str] | None:
    """The broker's retained $SYS values that bridge-gen reads, or None."""
    try:
        code, output = container.exec_run(brokerlog.sys_command(plan.layout.socket))
    except docker.errors.APIError:
        return None
    return brokerlog.read_sys(code, output.decode("utf-8", "replace"))


def broker_lines(
    container, plan: GatewayPlan, *, tail: int = 1000, started: str | None = None
) -> list[str]:
    """The broker's log as bridge-gen reads it: its own visits left out.

    Every status read logs a connection on the local socket; waiting for
    a bridge, those lines would push the one that says why it failed out
    of what `diagnose` looks at. `started` (Docker's StartedAt) reads the
    whole of this run instead of the last `tail` lines.
    """
    try:
        moment = datetime.fromisoformat((started or "")[:19] + "+00:00")
        options: dict = {"since": int(moment.timestamp())}
    except ValueError:
        options = {"tail": tail}
    with _engine_errors("read the container log"):
        raw = container.logs(**options)
    socket = plan.layout.socket
    lines = raw.decode("utf-8", "replace").splitlines()
    return [line for line in lines if not brokerlog.own_line(line, socket)]


def log_lines(container, *, tail: int | str = 200) -> list[str]:
    with _engine_errors("read the container log"):
        raw = container.logs(tail=tail)
    return raw.decode("utf-8", "replace").splitlines()


def wait_connected(
    container, plan: GatewayPlan, *, timeout: float, on_progress: Progress
) -> None:
    """Return once every bridge is connected; else say why, per bridge."""
    deadline = time.monotonic() + timeout
    container.reload()
    restarts = container.attrs.get("RestartCount", 0)
    while True:
        container.reload()
        # A broker that dies at start is restarted by the policy; waiting
        # out the timeout would only delay the same answer.
        crashed = container.attrs.get("RestartCount", 0) > restarts
        if crashed or container.status in ("exited", "dead", "restarting"):
            raise BridgeNotConnected(_stopped_message(container, plan))

        states = bridge_states(container, plan) or {}
        waiting = [b for b in plan.bridges if not states.get(b.remote_clientid)]
        if not waiting:
            return
        lines = broker_lines(container, plan)
        stuck = [b for b in waiting if _permanent(lines, b)]
        if stuck or time.monotonic() > deadline:
            late = stuck or waiting
            raise BridgeNotConnected(
                "\n".join(
                    f"bridge {b.name} did not connect"
                    f"{'' if stuck else f' within {timeout:g} s'}:"
                    f" {explain(lines, b)} (see `bridge-gen logs`)"
                    for b in late
                )
            )
        time.sleep(0.5)


def _permanent(lines: list[str], bridge: BridgePlan) -> bool:
    found = diagnose(lines_of(lines, bridge.name))
    return bool(found and found.permanent)


def _stopped_message(container, plan: GatewayPlan) -> str:
    lines = broker_lines(container, plan, tail=200)
    # A broker that cannot start would only be restarted over and over.
    with _engine_errors("stop the failing container"):
        container.stop(timeout=5)
    found = diagnose(lines)
    why = found.reason if found else "; ".join(lines[-3:]) or "no log output"
    return f"the broker in container {container.name} stopped: {why}"


def explain(lines: list[str], bridge: BridgePlan) -> str:
    """Why a bridge is down: from the log when it says, else by probing."""
    found = diagnose(lines_of(lines, bridge.name))
    if found and found.specific:
        return found.reason

    host, _, port = bridge.addresses[0].rpartition(":")
    tls = probe.tls_of(bridge)
    probed = probe.probe(host, int(port), tls)
    if probed:
        return probed
    if found:
        return found.reason
    return "the remote accepts connections from here; the bridge has not yet"


def send_heartbeat(
    container, plan: GatewayPlan, beat: plans.HeartbeatPlan, timeout: float
) -> heartbeats.Heartbeat:
    """Publish one heartbeat through the container's broker and read the answer."""
    sent = heartbeats.probe(beat, timeout)
    try:
        _, output = container.exec_run(sent.command(plan.layout.socket))
    except docker.errors.APIError:
        return heartbeats.Heartbeat(heartbeats.NOT_SENT)
    return heartbeats.read(sent, output.decode("utf-8", "replace"))


def status(
    client: docker.DockerClient,
    plan: GatewayPlan,
    *,
    heartbeat_timeout: float = 5.0,
) -> Status:
    """The container, each bridge's state and, where the spec asks, a heartbeat."""
    container = _find(client, plan)
    if container is None:
        return Status(plan.gateway, plan.container_name, "absent", None, None, None)
    attrs = container.attrs.get("State", {})
    started = attrs.get("StartedAt") or ""
    running = container.status == "running"
    numbers = broker_sys(container, plan) if running else None
    states = brokerlog.bridge_states(numbers)
    # Since this start: the attempts and drops of this run, however long
    # ago it began (the log is rotated, so this stays bounded).
    lines = broker_lines(container, plan, started=started)
    drops = [line for line in lines if "messages are being dropped" in line]
    bridges = []
    for bridge in plan.bridges:
        if states is None:
            connected = None
            reason = (
                "the broker does not answer on its local socket"
                if running
                else f"the container is {container.status}"
            )
        else:
            connected = states.get(bridge.remote_clientid, False)
            reason = None if connected else explain(lines, bridge)
        beat = None
        if bridge.heartbeat is not None:
            # A probe sent while the bridge is down would only wait out its
            # timeout, and reach the remote later as stale data.
            beat = (
                send_heartbeat(container, plan, bridge.heartbeat, heartbeat_timeout)
                if connected
                else heartbeats.Heartbeat(heartbeats.NOT_SENT)
            )
        tried = brokerlog.attempts(lines, bridge.name, since=started[:19])
        bridges.append(
            BridgeState(
                bridge.name,
                connected,
                reason,
                beat,
                since=tried[-1] if connected and tried else None,
                attempts=len(tried),
            )
        )
    return Status(
        gateway=plan.gateway,
        container=container.name,
        state=container.status,
        health=(attrs.get("Health") or {}).get("Status"),
        started_at=started or None,
        image=(container.image.tags or [container.image.short_id])[0],
        bridges=tuple(bridges),
        stored_messages=brokerlog.queued(numbers),
        buffer_limit=plan.buffer_messages,
        dropped_warnings=len(drops),
        last_drop=drops[-1].split(": ", 1)[0] if drops else None,
        stale=_stale(container, plan),
    )


def _stale(container, plan: GatewayPlan) -> bool | None:
    made_from = container.labels.get(SPEC_LABEL)
    if made_from is None:
        return None  # a container from before the label: not known
    # `up --network` may have overridden the spec's network; compare like
    # with like. Rendering reads no file and no password.
    mode = container.attrs.get("HostConfig", {}).get("NetworkMode")
    network = "host" if mode == "host" else "bridge"
    ran = replace(plan, network=network)
    return made_from != spec_hash(ran, render(ran, Path(".")))


def follow_logs(
    client, plan: GatewayPlan, *, tail: int | str, follow: bool
) -> Iterator[str]:
    container = _find(client, plan)
    if container is None:
        raise NotDeployed(_not_deployed(plan))
    with _engine_errors("read the container log"):
        if not follow:
            yield from log_lines(container, tail=tail)
            return
        pending = b""
        for chunk in container.logs(stream=True, follow=True, tail=tail):
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line.decode("utf-8", "replace")
        if pending:
            yield pending.decode("utf-8", "replace")


def down(
    client, plan: GatewayPlan, *, volumes: bool, images: bool = False
) -> list[str]:
    done = []
    container = _find(client, plan)
    with _engine_errors("remove the container"):
        if container is not None:
            _remove(container)
            done.append(f"removed container {plan.container_name}")
        if volumes:
            try:
                client.volumes.get(plan.volume_name).remove()
                done.append(f"removed volume {plan.volume_name}")
            except docker.errors.NotFound:
                pass
    if images:
        with _engine_errors("remove the images"):
            done += _remove_images(client, plan)
    return done


def _remove(container) -> None:
    # SIGTERM first: mosquitto writes its queue to the data volume on the
    # way out, where SIGKILL would lose what arrived since the last autosave.
    with _engine_errors("stop the container"):
        if container.status == "running":
            container.stop(timeout=20)
        # v=True also drops the anonymous volume the base image declares for
        # /mosquitto/log; the named data volume stays.
        container.remove(force=True, v=True)


def _remove_images(client, plan: GatewayPlan) -> list[str]:
    # By label, not name: an interrupted build leaves untagged images too.
    done = []
    mine = {"label": f"{GATEWAY_LABEL}={plan.gateway}"}
    for image in client.images.list(filters=mine):
        with contextlib.suppress(docker.errors.NotFound):
            client.images.remove(image.id, force=True)
            done.append(f"removed image {', '.join(image.tags) or image.short_id}")
    return done


def _not_deployed(plan: GatewayPlan) -> str:
    return (
        f"gateway {plan.gateway} is not running here (no container"
        f" {plan.container_name}); start it with `bridge-gen up`"
    )


def _short(exc: Exception) -> str:
    text = str(getattr(exc, "explanation", None) or exc)
    return " ".join(text.split())[:300]
