"""`bridge-gen verify` as users see it: real brokers, real bridges.

Every sample's every mapping goes through a real mosquitto bridge to a TLS
stand-in and back; a mapping broken on purpose is the one that fails; the
--live request is answered by the Kaa look-alike.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bridge_gen import verify
from bridge_gen.cli import app
from bridge_gen.plan import TopicLine
from bridge_gen.standin import StandInBroker, free_port
from tests.kaa_cloud import KaaCloud

SAMPLES = Path(__file__).resolve().parent.parent / "sample-configs"
SUMMARY = re.compile(r"^gateway (\S+): (\d+) of (\d+) mapping\(s\) passed \((\w+)\)")

CASES = [
    ("generic-broker.yaml", None),
    ("kaa-full.yaml", None),
    ("kaa-inventory.yaml", None),
    ("kaa-multi.yaml", None),
    ("kaa-single.yaml", None),
    ("kaa-secure.yaml", None),
    ("fleet.yaml", "plant-a"),
    ("fleet.yaml", "plant-b"),
    ("fleet.yaml", "plant-c"),
]


def invoke(*args: str):
    return CliRunner().invoke(app, ["verify", *args])


def directions_in_plan(spec: Path, gateway: str | None) -> int:
    """How many probes the spec needs: one per topic line and direction."""
    chosen = ["--gateway", gateway] if gateway else []
    shown = CliRunner().invoke(app, ["plan", str(spec), "--json", *chosen])
    rows = json.loads(shown.stdout)
    return sum(2 if row["direction"] == "both" else 1 for row in rows)


def summary(stdout: str) -> re.Match:
    found = [m for line in stdout.splitlines() if (m := SUMMARY.match(line))]
    assert len(found) == 1, stdout
    return found[0]


def rows(stdout: str) -> list[list[str]]:
    """The result table's rows, split on the column gaps."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("mapping "))
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("gateway "):
            break
        table.append(re.split(r"\s{2,}", line.strip()))
    return table


@pytest.mark.parametrize(("name", "gateway"), CASES)
def test_every_mapping_of_every_sample_passes(
    mosquitto_bin: str, name: str, gateway: str | None
) -> None:
    spec = SAMPLES / name
    chosen = ["--gateway", gateway] if gateway else []

    result = invoke(str(spec), "--local", *chosen)

    assert result.exit_code == 0, result.output
    wanted = directions_in_plan(spec, gateway)
    found = summary(result.stdout)
    assert found.group(2, 3, 4) == (str(wanted), str(wanted), "local")
    table = rows(result.stdout)
    assert len(table) == wanted
    assert {row[4] for row in table} == {"pass"}
    assert "running the bridge with the local mosquitto binary" in result.stdout


@pytest.mark.docker
def test_in_a_throwaway_container(docker_client, mosquitto_bin: str) -> None:
    result = invoke(str(SAMPLES / "kaa-single.yaml"), "--docker")

    assert result.exit_code == 0, result.output
    assert summary(result.stdout).group(2, 3, 4) == ("3", "3", "docker")
    container = re.search(r"container (bridge-gen-verify-\w+)", result.stdout)
    assert container is not None, result.stdout
    assert (
        docker_client.containers.list(all=True, filters={"name": container.group(1)})
        == []
    )
    assert "removed the bridge container, its volume and its image" in result.stdout


def test_a_mapping_sent_elsewhere_is_the_one_that_fails(
    mosquitto_bin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What runs is changed after the probes were planned from the spec:
    # the `site/#` rule now renames to another remote prefix.
    real = verify.throwaway_plan

    def tampered(*args, **kwargs):
        plan = real(*args, **kwargs)
        bridge = plan.bridges[0]
        lines = tuple(
            dataclasses.replace(line, remote_prefix="elsewhere/")
            if line.local_prefix == "site/"
            else line
            for line in bridge.lines
        )
        return dataclasses.replace(
            plan, bridges=(dataclasses.replace(bridge, lines=lines),)
        )

    monkeypatch.setattr(verify, "throwaway_plan", tampered)

    result = invoke(str(SAMPLES / "generic-broker.yaml"), "--local")

    assert result.exit_code == 1, result.output
    inbound, outbound = rows(result.stdout)
    assert inbound[0] == "central/rule cmd/#"
    assert inbound[4] == "pass"
    tag = outbound[2].removeprefix("site/")
    assert outbound == [
        "central/rule site/#",
        "->",
        f"site/{tag}",
        f"plant-a/{tag}",
        "FAIL",
        f"arrived on elsewhere/{tag} instead",
    ]
    assert (
        "gateway plant-a: 1 of 2 mapping(s) passed (local); 1 FAILED\n" in result.stdout
    )


BOTH = """\
version: 1
gateway: echoes
local: {port: 1883, bind: 127.0.0.1}
bridges:
  - name: central
    address: broker.example.com:8883
    topics:
      - {pattern: "#", direction: both, local_prefix: a/, remote_prefix: b/}
      - {pattern: "#", direction: out, local_prefix: up/, remote_prefix: plant/}
"""


def test_a_both_rule_echoes_what_devices_publish(
    mosquitto_bin: str, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(BOTH)

    result = invoke(str(spec), "--local", "--json")

    assert result.exit_code == 1, result.output
    found = json.loads(result.stdout)
    by_result = {(f["mapping"], f["direction"]): f["result"] for f in found}
    # The remote hands the bridge's own publish back (MQTT 3.1.1 has no
    # "no local"); mosquitto does not send what came in back out.
    assert by_result == {
        ("central/rule a/#", "in"): "pass",
        ("central/rule a/#", "out"): "echo",
        ("central/rule up/#", "out"): "pass",
    }
    echo = next(f for f in found if f["result"] == "echo")
    assert echo["detail"] == f"came back on {echo['source']}"
    # Progress went to stderr; stdout is only the JSON.
    assert "gateway echoes: 2 of 3 mapping(s) passed (local); 1 FAILED" in (
        result.stderr
    )


def test_json_lists_every_mapping(mosquitto_bin: str) -> None:
    result = invoke(str(SAMPLES / "kaa-single.yaml"), "--local", "--json")

    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert [(f["direction"], f["result"]) for f in found] == [
        ("out", "pass"),
        ("in", "pass"),
        ("in", "pass"),
    ]
    first = found[0]
    assert set(first) == {
        "bridge",
        "mapping",
        "direction",
        "source",
        "expected",
        "result",
        "latency_ms",
        "detail",
    }
    assert first["mapping"] == "kaaiot/my-endpoint-token/telemetry"
    assert first["source"] == "devices/data"
    assert first["expected"] == "kp1/my-app-v1/dcx/my-endpoint-token/json/42"
    assert isinstance(first["latency_ms"], float)


def test_a_bad_spec_is_exit_code_2(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("version: 1\ngateway: Bad Name\nbridges: []\n")

    result = invoke(str(spec), "--local")

    assert result.exit_code == 2
    assert "gateway" in result.stderr


def test_probes_cover_each_direction_with_a_concrete_topic() -> None:
    line = TopicLine("+/temp/#", "both", 1, "site/", "plant/", "topic rules")

    class Bridge:
        name = "central"
        lines = (line,)

    class Plan:
        bridges = (Bridge,)

    back, out = verify.plan_probes(Plan, "r1")  # type: ignore[arg-type]
    assert (back.direction, back.source, back.expected) == (
        "in",
        "plant/verify-r1-1/temp/verify-r1-1",
        "site/verify-r1-1/temp/verify-r1-1",
    )
    assert (out.direction, out.source, out.expected) == (
        "out",
        "site/verify-r1-2/temp/verify-r1-2",
        "plant/verify-r1-2/temp/verify-r1-2",
    )


# --live, against the Kaa look-alike on a stand-in.

LIVE = """\
version: 1
gateway: live-check
local: {{port: 1883, bind: 127.0.0.1}}
bridges:
  - name: kaa
    address: 127.0.0.1:{remote}
    tls: {{ca: {pki.ca_cert}, cert: {pki.client_cert}, key: {pki.client_key}}}
    app_version: line3-app-v1
    extensions: {{dcx: {dcx}}}
    endpoints:
      - {{local: line3/press-1, token: press-1-token}}
  - name: historian
    address: 127.0.0.1:{unused}
    topics: [{{pattern: "#", local_prefix: site/, remote_prefix: plant/}}]
"""


@pytest.fixture
def kaa(standin_broker: StandInBroker, throwaway_pki) -> Iterator[KaaCloud]:
    with KaaCloud(throwaway_pki, "127.0.0.1", standin_broker.port) as cloud:
        yield cloud
    assert cloud.handler_errors() == []


def live_spec(tmp_path: Path, remote: int, pki, dcx: str) -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text(LIVE.format(remote=remote, pki=pki, dcx=dcx, unused=free_port()))
    return spec


def test_live_request_accepted(
    tmp_path: Path, standin_broker: StandInBroker, throwaway_pki, kaa: KaaCloud
) -> None:
    spec = live_spec(tmp_path, standin_broker.port, throwaway_pki, "dcx")

    result = invoke(str(spec), "--live", "--local")

    assert result.exit_code == 0, result.output
    arrived = kaa.wait_for("kp1/line3-app-v1/dcx/press-1-token/json/+")
    assert arrived.parsed.request_id is not None
    kaa_row, historian = rows_of(result.stdout, "bridge ")
    assert kaa_row[:4] == ["kaa", "press-1-token", arrived.topic, "accepted"]
    assert historian == ["historian", "skipped", "no Kaa telemetry mapping"]
    assert "gateway live-check: 1 of 1 Kaa request(s) accepted (local)" in result.stdout
    # A client id of its own: the gateway's running bridge keeps its session.
    log = standin_broker.log_path.read_text()
    assert " as live-check-kaa-verify-" in log
    assert " as live-check-kaa " not in log


def test_live_request_refused(
    tmp_path: Path, standin_broker: StandInBroker, throwaway_pki, kaa: KaaCloud
) -> None:
    spec = live_spec(tmp_path, standin_broker.port, throwaway_pki, "nodcx")

    result = invoke(str(spec), "--live", "--local", "--json")

    assert result.exit_code == 1, result.output
    kaa_answer = json.loads(result.stdout)[0]
    assert kaa_answer["result"] == "refused"
    assert kaa_answer["detail"] == "404 no extension 'nodcx' here"
    assert kaa_answer["remote"].startswith("kp1/line3-app-v1/nodcx/press-1-token/json/")
    assert "gateway live-check: 0 of 1 Kaa request(s) accepted (local); 1 FAILED" in (
        result.stderr
    )


def test_live_request_unanswered(
    tmp_path: Path, standin_broker: StandInBroker, throwaway_pki
) -> None:
    # The stand-in alone: the request arrives, and nobody answers it.
    spec = live_spec(tmp_path, standin_broker.port, throwaway_pki, "dcx")

    result = invoke(str(spec), "--live", "--local", "--timeout", "2")

    assert result.exit_code == 1, result.output
    kaa_row = rows_of(result.stdout, "bridge ")[0]
    assert kaa_row[0::3] == ["kaa", "no reply"]


def rows_of(stdout: str, header: str) -> list[list[str]]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    return [
        re.split(r"\s{2,}", line.strip())
        for line in lines[start + 1 :]
        if not line.startswith("gateway ")
    ]


def test_topics_that_start_with_a_dollar_are_seen_too(tmp_path: Path) -> None:
    # `#` matches none of them: verify must ask for them by name.
    spec = tmp_path / "dollar.yaml"
    spec.write_text(
        "version: 1\ngateway: dollar\nlocal: {bind: 127.0.0.1}\n"
        "bridges:\n  - name: gen\n    address: 127.0.0.1:1\n    topics:\n"
        '      - {pattern: "#", direction: in, local_prefix: "$cmd/",'
        ' remote_prefix: "plant/commands/"}\n'
        '      - {pattern: "#", direction: out, local_prefix: "site/",'
        ' remote_prefix: "$plant/"}\n'
        '      - {pattern: "$foo/#", direction: out}\n'
    )
    result = invoke(str(spec), "--local")
    assert result.exit_code == 0, result.output
    assert summary(result.stdout).group(2, 3) == ("3", "3")
