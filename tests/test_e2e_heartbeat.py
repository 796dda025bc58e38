"""Heartbeats through the real bridge container, answered by the Kaa look-alike.

`status` publishes a probe on the local broker, the bridge carries it to
the look-alike as telemetry, and Kaa's answer comes back: accepted, refused,
or none at all. The time of the last confirmed delivery outlives each call.
"""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bridge_gen.cli import app
from bridge_gen.pki import Pki
from bridge_gen.standin import StandInBroker, free_port
from tests.kaa_cloud import KaaCloud

pytestmark = pytest.mark.docker

APP = "line3-app-v1"
BEAT = "gw-heartbeat"

SPEC = """\
version: 1
gateway: {gateway}
container: {{network: host}}
local: {{port: {port}, bind: 127.0.0.1}}
bridges:
  - name: kaa
    address: 127.0.0.1:{remote}
    tls: {{ca: {pki.ca_cert}, cert: {pki.client_cert}, key: {pki.client_key}}}
    app_version: {app}
    heartbeat: {{token: {beat}}}
    endpoints:
      - {{local: line3/press-1, token: press-1-token}}
      - {{local: gateway/heartbeat, token: {beat}, request_id: 7}}
"""


@pytest.fixture
def kaa(standin_broker: StandInBroker, throwaway_pki: Pki) -> Iterator[KaaCloud]:
    with KaaCloud(throwaway_pki, "127.0.0.1", standin_broker.port) as cloud:
        yield cloud
    assert cloud.handler_errors() == []


def status(spec: Path, *extra: str) -> tuple[int, dict, str]:
    result = CliRunner().invoke(app, ["status", str(spec), "--json", *extra])
    return result.exit_code, json.loads(result.stdout), result.stderr


def test_status_confirms_delivery_then_sees_refusal_and_silence(
    tmp_path: Path,
    gateway: str,
    standin_broker: StandInBroker,
    throwaway_pki: Pki,
    kaa: KaaCloud,
    state_home: Path,
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        SPEC.format(
            gateway=gateway,
            port=free_port(),
            remote=standin_broker.port,
            pki=throwaway_pki,
            app=APP,
            beat=BEAT,
        )
    )
    up = CliRunner().invoke(app, ["up", str(spec)])
    assert up.exit_code == 0, up.output

    # Accepted: Kaa took the probe as telemetry of the heartbeat endpoint.
    text = CliRunner().invoke(app, ["status", str(spec)])
    row = next(line for line in text.stdout.splitlines() if line.startswith("kaa"))
    # bridge, state, since (date and time), attempts, delivered.
    assert row.split()[:2] == ["kaa", "connected"]
    assert row.split()[4:6] == ["1", "now"]
    assert "accepted" in row and " ms" in row
    code, report, _ = status(spec)
    beat = report["bridges"][0]["heartbeat"]
    assert code == 0
    assert beat["result"] == "accepted"
    assert 0 < beat["round_trip_ms"] < 5000
    assert beat["last_confirmed_ago_s"] < 1
    assert report["warnings"] == []
    sample = kaa.wait_for(f"kp1/{APP}/dcx/{BEAT}/json/7").json()
    assert list(sample[0]) == ["bridge_gen_heartbeat"]
    confirmed = beat["last_confirmed"]

    folder = state_home / "bridge-gen" / gateway
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "heartbeat.json").stat().st_mode) == 0o600

    # Refused: the bridge is still connected, yet nothing is delivered.
    kaa.refuse(APP, BEAT, 403, "endpoint token suspended")
    code, report, _ = status(spec)
    beat = report["bridges"][0]["heartbeat"]
    assert code == 0
    assert (beat["result"], beat["error"]) == (
        "refused",
        "403 endpoint token suspended",
    )
    assert beat["last_confirmed"] == confirmed
    (warning,) = report["warnings"]
    assert warning.startswith(
        "bridge kaa: connected but no confirmed delivery (refused: 403 endpoint"
        " token suspended); last confirmed "
    )
    assert warning.endswith((" now", " s ago"))

    # No reply: the cloud's services are gone, its broker still accepts the
    # bridge. The last confirmed time is the one from before.
    kaa.close()
    code, report, _ = status(spec, "--heartbeat-timeout", "2")
    beat = report["bridges"][0]["heartbeat"]
    assert report["bridges"][0]["connected"] is True
    assert (beat["result"], beat["round_trip_ms"]) == ("no reply", None)
    assert beat["last_confirmed"] == confirmed
    assert beat["last_confirmed_ago_s"] >= 1
    text = CliRunner().invoke(app, ["status", str(spec), "--heartbeat-timeout", "2"])
    assert "no reply within 2 s" in text.stdout
    assert "warning: bridge kaa: connected but no confirmed delivery" in text.stderr

    # Disconnected: no probe is sent, and the time still stands.
    standin_broker.stop()
    deadline = time.monotonic() + 15
    while True:
        code, report, _ = status(spec)
        bridge = report["bridges"][0]
        if bridge["connected"] is False or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert (code, bridge["connected"]) == (1, False)
    assert bridge["heartbeat"]["result"] == "not sent"
    assert bridge["heartbeat"]["last_confirmed"] == confirmed
    assert report["warnings"] == []


ECHO_SPEC = """\
version: 1
gateway: {gateway}
container: {{network: host}}
local: {{port: {port}, bind: 127.0.0.1}}
bridges:
  - name: central
    address: 127.0.0.1:{remote}
    tls: {{ca: {pki.ca_cert}, cert: {pki.client_cert}, key: {pki.client_key}}}
    heartbeat: {{topic: hb/ping, reply: hb/pong}}
    topics:
      - {{pattern: "", local_prefix: hb/ping, remote_prefix: {gateway}/hb}}
      - pattern: ""
        direction: in
        local_prefix: hb/pong
        remote_prefix: {gateway}/hb
"""


def test_any_broker_echoes_the_heartbeat_back(
    tmp_path: Path, gateway: str, standin_broker: StandInBroker, throwaway_pki: Pki
) -> None:
    # The bridge subscribes to the remote topic it publishes the probe on,
    # and MQTT 3.1.1 has no "no local": the remote broker itself echoes it.
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        ECHO_SPEC.format(
            gateway=gateway,
            port=free_port(),
            remote=standin_broker.port,
            pki=throwaway_pki,
        )
    )
    up = CliRunner().invoke(app, ["up", str(spec)])
    assert up.exit_code == 0, up.output

    code, report, _ = status(spec)
    beat = report["bridges"][0]["heartbeat"]
    assert code == 0
    assert beat["result"] == "echoed"
    # A loopback echo may take less than the 0.1 ms it is rounded to.
    assert beat["round_trip_ms"] >= 0
    assert beat["last_confirmed_ago_s"] < 1
