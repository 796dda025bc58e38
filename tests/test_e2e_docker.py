"""End to end on a real Docker engine: render, up, carry, status, down.

The bridge container runs on the host network; the cloud is a local TLS
mosquitto that demands client certificates (bridge_gen.standin).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bridge_gen import pki as pkis
from bridge_gen import state
from bridge_gen.cli import app
from bridge_gen.pki import Pki
from bridge_gen.standin import StandInBroker, free_port, tls_client
from tests.mqtt_probe import Listener, plain_client

pytestmark = pytest.mark.docker

SPEC = """\
version: 1
gateway: {gateway}
local:
  port: {port}
  bind: 127.0.0.1
bridges:
  - name: kaa
    address: 127.0.0.1:{remote}
    tls:
      ca: {ca}
      cert: {cert}
      key: {key}
    app_version: app-v1
    endpoints:
      - local: devices/data
        token: tok-1
        request_id: 42
      - local: devices/other
        token: tok-2
"""


def write_spec(
    folder: Path, gateway: str, remote: int, client: Pki
) -> tuple[Path, int]:
    port = free_port()
    spec = folder / "spec.yaml"
    spec.write_text(
        SPEC.format(
            gateway=gateway,
            port=port,
            remote=remote,
            ca=client.ca_cert,
            cert=client.client_cert,
            key=client.client_key,
        )
    )
    return spec, port


def test_up_carries_telemetry_and_replies_then_down(
    tmp_path: Path,
    gateway: str,
    standin_broker: StandInBroker,
    throwaway_pki: Pki,
) -> None:
    runner = CliRunner()
    spec, port = write_spec(tmp_path, gateway, standin_broker.port, throwaway_pki)

    # The key is 0600 and owned by root, as most tools write it: the broker
    # in the container runs as uid 1883 and must still be able to use it.
    assert throwaway_pki.client_key.stat().st_mode & 0o777 == 0o600

    up = runner.invoke(app, ["up", str(spec), "--network", "host"])
    assert up.exit_code == 0, up.output
    assert f"gateway {gateway}: container bridge-gen-{gateway} created;" in up.stdout
    assert "connected: kaa" in up.stdout

    cloud = Listener(tls_client(throwaway_pki, "127.0.0.1", standin_broker.port))
    cloud.subscribe("kp1/#")
    device = Listener(plain_client(port, "device-1"))
    device.subscribe("devices/#")
    try:
        device.client.publish("devices/data", b'{"t": 21}', qos=1).wait_for_publish(5)
        got = cloud.next()
        assert (got.topic, got.payload) == (
            "kp1/app-v1/dcx/tok-1/json/42",
            b'{"t": 21}',
        )

        cloud.client.publish("kp1/app-v1/dcx/tok-1/json/42/status", b"", qos=1)
        cloud.client.publish(
            "kp1/app-v1/dcx/tok-2/json/error",
            b'{"statusCode": 400, "reasonPhrase": "bad"}',
            qos=1,
        )
        seen = device.drain(3)
        topics = sorted(m.topic for m in seen)
        # Its own message once (no echo from the bridge), then both replies.
        assert topics == ["devices/data", "devices/data/status", "devices/other/error"]
        # The cloud sees its own two replies once each (it subscribes to
        # kp1/#), and nothing sent back up by the bridge.
        echoed = sorted(m.topic for m in cloud.drain(1))
        assert echoed == [
            "kp1/app-v1/dcx/tok-1/json/42/status",
            "kp1/app-v1/dcx/tok-2/json/error",
        ]
    finally:
        device.close()
        cloud.close()

    status = runner.invoke(app, ["status", str(spec), "--json"])
    report = json.loads(status.stdout)
    assert status.exit_code == 0
    assert report["ok"] is True
    (bridge,) = report["bridges"]
    since = bridge.pop("since")
    assert bridge == {
        "name": "kaa",
        "connected": True,
        "reason": None,
        "heartbeat": None,
        "attempts": 1,
    }
    # Connected since the broker's attempt, after the container started.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", since)
    assert since >= report["started_at"][:19]

    watched = runner.invoke(
        app, ["status", str(spec), "--json", "--watch", "0.2", "--times", "2"]
    )
    reports = [json.loads(line) for line in watched.stdout.splitlines()]
    assert [r["ok"] for r in reports] == [True, True]

    again = runner.invoke(app, ["up", str(spec), "--network", "host"])
    assert again.exit_code == 0
    assert "unchanged" in again.stdout

    logs = runner.invoke(app, ["logs", str(spec), "--tail", "0"])
    assert "Connecting bridge (step 1) kaa (127.0.0.1:" in logs.stdout
    # The status calls above logged their visits; only --all shows them.
    assert "bridge-gen-status" not in logs.stdout
    every = runner.invoke(app, ["logs", str(spec), "--tail", "0", "--all"])
    assert "Client bridge-gen-status disconnected." in every.stdout

    # The files `up` kept for the gateway on this host go with it.
    kept = state.root() / gateway
    assert (kept / "mosquitto.conf").is_file()
    down = runner.invoke(app, ["down", str(spec)])
    assert down.stdout == f"removed container bridge-gen-{gateway}\nremoved {kept}\n"
    assert not kept.exists()
    gone = runner.invoke(app, ["status", str(spec)])
    assert gone.exit_code == 1
    assert f"container bridge-gen-{gateway} absent" in gone.stdout

    purge = runner.invoke(app, ["down", str(spec), "--volumes"])
    assert f"removed volume bridge-gen-{gateway}-data" in purge.stdout


def test_key_stays_out_of_the_image_and_the_container_is_locked_down(
    tmp_path: Path,
    gateway: str,
    standin_broker: StandInBroker,
    throwaway_pki: Pki,
    docker_client,
) -> None:
    spec, _ = write_spec(tmp_path, gateway, standin_broker.port, throwaway_pki)
    up = CliRunner().invoke(app, ["up", str(spec), "--network", "host"])
    assert up.exit_code == 0, up.output
    container = docker_client.containers.get(f"bridge-gen-{gateway}")

    # No byte of the key's PEM body in any layer of the saved image.
    body = throwaway_pki.client_key.read_text().splitlines()[1].encode()
    saved = b"".join(container.image.save(named=False))
    assert body not in saved
    assert body not in json.dumps(container.attrs).encode()

    # The broker reads its own copy, on a memory-only file system.
    code, out = container.exec_run(
        ["stat", "-c", "%a %U", "/mosquitto/certs/kaa/client.key"]
    )
    assert (code, out.decode().strip()) == (0, "400 mosquitto")
    host = container.attrs["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]


def test_status_sees_the_remote_start_refusing_the_certificate(
    tmp_path: Path, gateway: str, standin_broker: StandInBroker, throwaway_pki: Pki
) -> None:
    runner = CliRunner()
    spec, _ = write_spec(tmp_path, gateway, standin_broker.port, throwaway_pki)
    assert runner.invoke(app, ["up", str(spec), "--network", "host"]).exit_code == 0

    # As when Kaa suspends a certificate: the same remote, on the same port,
    # now trusts another CA for its clients.
    other = pkis.new_ca("another CA", valid_days=365)
    other_ca = pkis.write_cert(tmp_path / "other-ca.crt", other.cert)
    standin_broker.client_ca = other_ca
    standin_broker.restart()

    deadline = time.monotonic() + 10
    report = {}
    while time.monotonic() < deadline:
        result = runner.invoke(app, ["status", str(spec), "--json"])
        report = json.loads(result.stdout)
        if report["bridges"][0]["connected"] is False:
            break
        time.sleep(0.5)
    bridge = report["bridges"][0]
    assert bridge["connected"] is False
    assert "rejected the client certificate" in bridge["reason"]
    assert bridge["since"] is None

    # mosquitto waits a few seconds before it tries again; each new attempt
    # is counted.
    deadline = time.monotonic() + 30
    while bridge["attempts"] < 2 and time.monotonic() < deadline:
        time.sleep(1)
        result = runner.invoke(app, ["status", str(spec), "--json"])
        bridge = json.loads(result.stdout)["bridges"][0]
    assert bridge["attempts"] >= 2
    assert bridge["connected"] is False


def test_up_with_a_changed_spec_replaces_the_container(
    tmp_path: Path,
    gateway: str,
    standin_broker: StandInBroker,
    throwaway_pki: Pki,
) -> None:
    runner = CliRunner()
    spec, _ = write_spec(tmp_path, gateway, standin_broker.port, throwaway_pki)
    assert runner.invoke(app, ["up", str(spec), "--network", "host"]).exit_code == 0

    spec.write_text(spec.read_text().replace("token: tok-2", "token: tok-3"))
    again = runner.invoke(app, ["up", str(spec), "--network", "host"])

    assert again.exit_code == 0, again.output
    assert f"container bridge-gen-{gateway} replaced" in again.stdout


def test_up_fails_with_the_reason_when_the_remote_rejects_the_cert(
    tmp_path: Path,
    gateway: str,
    standin_broker: StandInBroker,
    throwaway_pki: Pki,
) -> None:
    # A client certificate from a CA the remote does not trust.
    stranger = pkis.new_ca("some other CA")
    client = pkis.issue_cert(stranger, "intruder", usage="client")
    pkis.write_cert(tmp_path / "other.crt", client.cert)
    pkis.write_key(tmp_path / "other.key", client.key)
    spec, _ = write_spec(tmp_path, gateway, standin_broker.port, throwaway_pki)
    spec.write_text(
        spec.read_text()
        .replace(str(throwaway_pki.client_cert), str(tmp_path / "other.crt"))
        .replace(str(throwaway_pki.client_key), str(tmp_path / "other.key"))
    )

    result = CliRunner().invoke(
        app, ["up", str(spec), "--network", "host", "--timeout", "15"]
    )

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    last = result.stderr.splitlines()[-1]
    assert last.startswith("error: bridge kaa did not connect within 15 s: the remote")
    assert "rejected the client certificate" in last


def test_up_fails_with_the_reason_when_nothing_listens(
    tmp_path: Path, gateway: str, throwaway_pki: Pki
) -> None:
    remote = free_port()
    spec, _ = write_spec(tmp_path, gateway, remote, throwaway_pki)

    result = CliRunner().invoke(
        app, ["up", str(spec), "--network", "host", "--timeout", "8"]
    )

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "error: bridge kaa did not connect within 8 s: connection refused:"
        f" nothing accepts connections at 127.0.0.1:{remote} (see `bridge-gen"
        " logs`)"
    )


def test_status_says_when_the_spec_changed_since_up(
    tmp_path: Path, gateway: str, standin_broker: StandInBroker, throwaway_pki: Pki
) -> None:
    runner = CliRunner()
    spec, _ = write_spec(tmp_path, gateway, standin_broker.port, throwaway_pki)
    assert runner.invoke(app, ["up", str(spec), "--network", "host"]).exit_code == 0
    before = json.loads(runner.invoke(app, ["status", str(spec), "--json"]).stdout)
    assert (before["stale"], before["warnings"]) == (False, [])

    # A new endpoint in the spec, and no `up` since.
    spec.write_text(
        spec.read_text() + "      - local: devices/third\n        token: tok-3\n"
    )
    after = runner.invoke(app, ["status", str(spec)])
    assert after.exit_code == 0
    assert (
        f"warning: the container was made from an earlier version of {spec};"
        " run `bridge-gen up` to apply the spec as it is now"
    ) in after.stderr
