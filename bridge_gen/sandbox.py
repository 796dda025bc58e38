"""Run a rendered gateway on this machine for a while, then take it away.

`demo` and `verify` both bring up a bridge only to exercise it: with the
local mosquitto binary, or in a throwaway container on the host's network
when a Docker engine answers. Everything started here is stopped and
removed when the `with` block ends, whatever happened inside it.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bridge_gen import brokerlog, render
from bridge_gen.errors import BridgeGenError, BridgeNotConnected
from bridge_gen.plan import GatewayPlan, host_layout
from bridge_gen.render import RenderedFile
from bridge_gen.standin import stop_process

Say = Callable[[str], None]


@contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = tempfile.mkdtemp(prefix=prefix)
    try:
        yield Path(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def docker_engine(use_docker: bool | None, image: str):
    """The engine client to run the bridge with, or None and why not.

    `use_docker` None means Docker when an engine answers and already holds
    `image`; a throwaway run never pulls.
    """
    if use_docker is False:
        return None, None
    from bridge_gen import engine

    try:
        client = engine.engine()
    except BridgeGenError:
        return None, "no Docker engine answers"
    if not engine.has_image(client, image):
        return None, f"the Docker engine has no {image} image (docker pull it)"
    return client, None


def binary_layout(run_dir: Path):
    """Where a broker started from the mosquitto binary keeps its files."""
    (run_dir / "data").mkdir(parents=True, exist_ok=True)
    # Started as root, mosquitto would become `mosquitto`, who cannot read
    # 0600 keys; as anyone else the `user` directive is ignored.
    return host_layout(run_dir, run_as=getpass.getuser() if os.geteuid() == 0 else None)


@contextmanager
def in_docker(
    client, plan: GatewayPlan, files: tuple[RenderedFile, ...], say: Say, timeout: float
) -> Iterator[int]:
    """The plan's container, up until every bridge connects; yields the port."""
    from bridge_gen import engine

    say(
        f"bringing up the bridge in Docker (container {plan.container_name},"
        " host network)"
    )
    try:
        engine.up(
            client, plan, files, on_progress=lambda t: say(f"  {t}"), timeout=timeout
        )
        yield plan.port
    finally:
        engine.down(client, plan, volumes=True, images=True)
        say("removed the bridge container, its volume and its image")


@contextmanager
def with_binary(
    mosquitto: str, plan: GatewayPlan, run_dir: Path, say: Say, timeout: float
) -> Iterator[int]:
    """mosquitto on this host with the plan's config; yields the local port.

    The plan's layout must be `binary_layout(run_dir)`.
    """
    conf = run_dir / "mosquitto.conf"
    conf.write_text(render.render_conf(plan), encoding="utf-8")
    say(f"starting the bridge with {mosquitto} -c {conf}")
    log_path = run_dir / "mosquitto.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [mosquitto, "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        try:
            wait_connected(plan, proc, log_path, timeout)
            yield plan.port
        finally:
            stop_process(proc, 10)
            say("stopped the bridge")


def wait_connected(
    plan: GatewayPlan, proc: subprocess.Popen, log_path: Path, timeout: float
) -> None:
    """Return once the broker reports every bridge connected; else say why."""
    wanted = {b.remote_clientid for b in plan.bridges}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        answer = subprocess.run(
            brokerlog.sys_command(plan.layout.socket),
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        states = brokerlog.read_sys(answer.returncode, answer.stdout)
        connected = brokerlog.bridge_states(states) or {}
        if all(connected.get(client_id) for client_id in wanted):
            return
        time.sleep(0.5)
    found = brokerlog.diagnose(log_path.read_text(errors="replace").splitlines())
    why = found.reason if found else "no reason in the broker's log"
    if proc.poll() is not None:
        raise BridgeNotConnected(f"the broker exited (code {proc.returncode}): {why}")
    raise BridgeNotConnected(f"a bridge did not connect within {timeout:g} s: {why}")
