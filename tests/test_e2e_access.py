"""Who gets into a running gateway, and what stays secret: on a real engine.

One gateway for the whole module, with local users (a password from an
environment variable, one from a file, one written in the spec), per-device
access, a TLS listener that demands client certificates, and limits. The
cloud is a local TLS stand-in. The health check test stops the broker, so
it runs last.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from bridge_gen import passwords, state
from bridge_gen.cli import app
from bridge_gen.pki import Pki, make_throwaway_pki
from bridge_gen.standin import StandInBroker, find_mosquitto, free_port, tls_client
from tests.mqtt_probe import Listener, plain_client

pytestmark = pytest.mark.docker

SPEC = """\
version: 1
gateway: {gateway}
local:
  port: {port}
  bind: 127.0.0.1
  users:
    - name: admin
      password_env: {env}
      admin: true
    - name: sensor-1
      password_file: sensor-1.pw
    - name: sensor-2
      password: {literal}
  tls:
    port: {tls_port}
    cert: {local.server_cert}
    key: {local.server_key}
    ca: {local.ca_cert}
container:
  memory: 64m
  cpus: "0.5"
  health_interval: 1
bridges:
  - name: kaa
    address: 127.0.0.1:{remote}
    tls:
      ca: {cloud.ca_cert}
      cert: {cloud.client_cert}
      key: {cloud.client_key}
    app_version: app-v1
    endpoints:
      - local: plant/sensor-1
        token: tok-1
        user: sensor-1
      - local: plant/sensor-2
        token: tok-2
        user: sensor-2
"""


@dataclass
class Gateway:
    name: str
    spec: Path
    port: int
    tls_port: int
    local: Pki  # the gateway's listener CA, server and a device (CN sensor-1)
    cloud: Pki
    passwords: dict[str, str]
    keys: list[Path]
    container: object
    cloud_port: int


@pytest.fixture(scope="module")
def gateway_up(tmp_path_factory, docker_client) -> Iterator[Gateway]:
    mosquitto = find_mosquitto()
    if mosquitto is None:
        pytest.fail("mosquitto is not installed")
    work = tmp_path_factory.mktemp("access")
    name = f"t-{uuid.uuid4().hex[:8]}"
    cloud_pki = make_throwaway_pki(work / "cloud")
    local_pki = make_throwaway_pki(work / "local", client_cn="sensor-1")
    secrets = {
        "admin": f"env-{uuid.uuid4().hex}",
        "sensor-1": f"file-{uuid.uuid4().hex}",
        "sensor-2": f"spec-{uuid.uuid4().hex}",
    }
    (work / "sensor-1.pw").write_text(secrets["sensor-1"] + "\n")
    env = f"T_ADMIN_PW_{uuid.uuid4().hex[:6].upper()}"
    os.environ[env] = secrets["admin"]
    port, tls_port = free_port(), free_port()
    spec = work / "spec.yaml"

    with StandInBroker(work / "standin", cloud_pki, mosquitto=mosquitto) as cloud:
        spec.write_text(
            SPEC.format(
                gateway=name,
                port=port,
                tls_port=tls_port,
                env=env,
                literal=secrets["sensor-2"],
                local=local_pki,
                cloud=cloud_pki,
                remote=cloud.port,
            )
        )
        try:
            up = CliRunner().invoke(app, ["up", str(spec), "--network", "host"])
            assert up.exit_code == 0, up.output
            yield Gateway(
                name,
                spec,
                port,
                tls_port,
                local_pki,
                cloud_pki,
                secrets,
                [cloud_pki.client_key, local_pki.server_key, local_pki.client_key],
                docker_client.containers.get(f"bridge-gen-{name}"),
                cloud.port,
            )
        finally:
            CliRunner().invoke(app, ["down", str(spec), "--volumes", "--images"])
            os.environ.pop(env, None)


def connects(port: int, *, user=None, password=None, tls=None) -> bool:
    """Whether the broker accepts this client (a CONNACK with success)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=uuid.uuid4().hex)
    if user is not None:
        client.username_pw_set(user, password)
    if tls is not None:
        client.tls_set(**tls)
    result: queue.Queue[bool] = queue.Queue()
    client.on_connect = lambda _c, _u, _f, code, _p: result.put(not code.is_failure)
    client.on_disconnect = lambda *_: result.put(False)
    try:
        client.connect("127.0.0.1", port, keepalive=10)
    except (ssl.SSLError, OSError):
        return False
    client.loop_start()
    try:
        return result.get(timeout=10)
    except queue.Empty:
        return False
    finally:
        client.disconnect()
        client.loop_stop()


def user_client(port: int, user: str, password: str) -> Listener:
    client_id = f"{user}-{port}"
    return Listener(plain_client(port, client_id, user=user, password=password))


@pytest.fixture
def cloud_inbox(gateway_up: Gateway) -> Iterator[Listener]:
    port = gateway_up.cloud_port
    client = tls_client(gateway_up.cloud, "127.0.0.1", port, uuid.uuid4().hex)
    inbox = Listener(client)
    inbox.subscribe("kp1/#")
    yield inbox
    inbox.close()


def test_anonymous_clients_and_wrong_passwords_are_refused(
    gateway_up: Gateway,
) -> None:
    port, secrets = gateway_up.port, gateway_up.passwords
    assert not connects(port)
    assert not connects(port, user="sensor-1", password="not-the-password")
    assert not connects(port, user="sensor-1", password=secrets["sensor-2"])
    for user in ("admin", "sensor-1", "sensor-2"):
        assert connects(port, user=user, password=secrets[user]), user


def test_a_device_may_use_its_own_topics_only(
    gateway_up: Gateway, cloud_inbox: Listener
) -> None:
    port, secrets = gateway_up.port, gateway_up.passwords
    one = user_client(port, "sensor-1", secrets["sensor-1"])
    two = user_client(port, "sensor-2", secrets["sensor-2"])
    admin = user_client(port, "admin", secrets["admin"])
    try:
        one.subscribe("plant/sensor-2/#")
        admin.subscribe("plant/#")

        # Not carried: sensor-1 writing as sensor-2. Carried: its own data.
        one.client.publish("plant/sensor-2", b"forged", qos=1).wait_for_publish(5)
        one.client.publish("plant/sensor-1", b"own", qos=1).wait_for_publish(5)
        arrived = cloud_inbox.drain(3)
        assert [(m.topic, m.payload) for m in arrived] == [
            ("kp1/app-v1/dcx/tok-1/json", b"own")
        ]

        # sensor-2's data reaches the admin, never sensor-1.
        two.client.publish("plant/sensor-2/x", b"two", qos=1).wait_for_publish(5)
        # The admin sees every topic: the forged message never got in.
        assert [m.payload for m in admin.drain(3)] == [b"own", b"two"]
        assert [m.payload for m in one.drain(1)] == []
    finally:
        for client in (one, two, admin):
            client.close()


def test_a_device_cannot_take_the_bridges_client_id(
    gateway_up: Gateway, cloud_inbox: Listener
) -> None:
    # The bridge's own client on the local broker has a predictable id; a
    # device that claims it is known by its user name instead.
    port, secrets = gateway_up.port, gateway_up.passwords
    thief = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"local.{gateway_up.name}-kaa"
    )
    thief.username_pw_set("sensor-1", secrets["sensor-1"])
    thief.connect("127.0.0.1", port)
    thief.loop_start()
    two = user_client(port, "sensor-2", secrets["sensor-2"])
    try:
        time.sleep(1)
        two.client.publish("plant/sensor-2", b"still carried", qos=1)
        assert cloud_inbox.next(10).payload == b"still carried"
        status = CliRunner().invoke(app, ["status", str(gateway_up.spec), "--json"])
        assert json.loads(status.stdout)["bridges"][0]["connected"] is True
    finally:
        two.close()
        thief.disconnect()
        thief.loop_stop()


def test_the_tls_listener_takes_only_devices_its_ca_signed(
    gateway_up: Gateway, tmp_path: Path, cloud_inbox: Listener
) -> None:
    local, port = gateway_up.local, gateway_up.tls_port
    device = {
        "ca_certs": str(local.ca_cert),
        "certfile": str(local.client_cert),
        "keyfile": str(local.client_key),
    }
    assert connects(port, tls=device)

    # Without a client certificate, or with one from another CA: refused.
    assert not connects(port, tls={"ca_certs": str(local.ca_cert)})
    rogue = make_throwaway_pki(tmp_path / "rogue", client_cn="sensor-1")
    forged = {**device, "certfile": str(rogue.client_cert)}
    forged["keyfile"] = str(rogue.client_key)
    assert not connects(port, tls=forged)

    # The certificate's name is the user: sensor-1's topic is carried.
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="tls-sensor-1")
    client.tls_set(**device)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish("plant/sensor-1", b"over tls", qos=1).wait_for_publish(5)
        assert cloud_inbox.next(10).payload == b"over tls"
    finally:
        client.disconnect()
        client.loop_stop()


def test_no_key_or_password_in_the_image_files_inspect_or_logs(
    gateway_up: Gateway, docker_client, tmp_path: Path
) -> None:
    container = gateway_up.container
    container.reload()
    # Lines of each key's base64 body, and each password.
    needles = [p.encode() for p in gateway_up.passwords.values()]
    for key in gateway_up.keys:
        needles += [line.encode() for line in key.read_text().splitlines()[1:-1]]

    rendered = tmp_path / "rendered"
    env = {k: v for k, v in os.environ.items() if k.startswith("T_ADMIN_PW_")}
    assert env, "the admin password's variable is gone"
    spec = str(gateway_up.spec)
    render = CliRunner().invoke(app, ["render", spec, "-o", str(rendered)])
    assert render.exit_code == 0, render.output
    written = [*rendered.iterdir(), *state.root().joinpath(gateway_up.name).iterdir()]
    haystacks = {
        "the saved image": b"".join(container.image.save(named=False)),
        "docker inspect": json.dumps([container.attrs, container.image.attrs]).encode(),
        "the container's logs": container.logs(),
        **{str(path): path.read_bytes() for path in written},
    }
    for where, haystack in haystacks.items():
        found = [n for n in needles if n in haystack]
        assert found == [], f"secret bytes in {where}"

    # The password files hold hashes that the broker accepts, mode 0600.
    for passwd in (rendered / "passwd", state.root() / gateway_up.name / "passwd"):
        assert passwd.stat().st_mode & 0o777 == 0o600
        lines = passwd.read_text().splitlines()
        assert passwords.verify(lines[0], "admin", gateway_up.passwords["admin"])
    assert (state.root() / gateway_up.name).stat().st_mode & 0o777 == 0o700

    # In the container: the broker's own copy, readable by it alone.
    code, out = container.exec_run(
        ["stat", "-c", "%a %U", "/mosquitto/certs/_local/passwd"]
    )
    assert (code, out.decode().strip()) == (0, "400 mosquitto")


def test_the_container_runs_with_its_limits(gateway_up: Gateway) -> None:
    host = gateway_up.container.attrs["HostConfig"]
    assert host["PidsLimit"] == 64
    assert host["Memory"] == 64 * 1024 * 1024
    assert host["NanoCpus"] == 500_000_000
    assert host["ReadonlyRootfs"] is True
    assert host["CapAdd"] and "NET_ADMIN" not in host["CapAdd"]


def test_the_health_check_turns_unhealthy_when_the_broker_stops(
    gateway_up: Gateway,
) -> None:
    container = gateway_up.container
    assert health_becomes(container, "healthy", 30)
    container.reload()
    pid = container.attrs["State"]["Pid"]
    # A hung broker: still a process, answering nothing.
    os.kill(pid, signal.SIGSTOP)
    try:
        assert health_becomes(container, "unhealthy", 60)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert health_becomes(container, "healthy", 30)


def health_becomes(container, wanted: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        container.reload()
        if container.attrs["State"].get("Health", {}).get("Status") == wanted:
            return True
        time.sleep(0.5)
    return False
