"""The heartbeat's pure parts: reading the probe's output, and the state file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bridge_gen import heartbeat, state
from bridge_gen.heartbeat import Heartbeat
from bridge_gen.plan import HeartbeatPlan

KAA = HeartbeatPlan("gw/hb", "gw/hb/status", "gw/hb/error")
ECHO = HeartbeatPlan("hb/ping", "hb/pong", None)


def line(stamp: float, topic: str, payload: str) -> str:
    return f"{stamp:.9f} {topic} {payload.encode().hex()}"


def output(probe: heartbeat.Probe, *rest: str) -> str:
    ready = f"$bridge-gen/heartbeat/bg-hb-{probe.nonce}"
    return "\n".join(
        [line(9.0, ready, "ready"), f"9.1 {ready} ", line(10.0, "gw/hb", "[]"), *rest]
    )


def sent(probe: heartbeat.Probe, stamp: float = 10.0) -> str:
    return line(stamp, probe.plan.send, probe.payload)


def test_kaa_accepts() -> None:
    probe = heartbeat.probe(KAA, 5)
    text = output(probe, sent(probe, 10.5), line(10.5423, "gw/hb/status", ""))
    assert heartbeat.read(probe, text) == Heartbeat("accepted", 42.3)


def test_kaa_refuses_with_its_reason() -> None:
    probe = heartbeat.probe(KAA, 5)
    error = '{"statusCode": 403, "reasonPhrase": "token suspended"}'
    text = output(probe, sent(probe), line(10.25, "gw/hb/error", error))
    assert heartbeat.read(probe, text) == Heartbeat(
        "refused", 250.0, "403 token suspended"
    )


def test_an_answer_before_the_probe_is_not_its_answer() -> None:
    probe = heartbeat.probe(KAA, 5)
    text = "\n".join([line(9.9, "gw/hb/status", ""), sent(probe)])
    assert heartbeat.read(probe, text) == Heartbeat("no reply")


def test_nothing_sent_when_the_broker_did_not_take_the_probe() -> None:
    probe = heartbeat.probe(KAA, 5)
    assert heartbeat.read(probe, "Error: Connection refused") == Heartbeat("not sent")


def test_an_echo_counts_only_with_the_probes_own_payload() -> None:
    probe = heartbeat.probe(ECHO, 5)
    stale = line(10.1, "hb/pong", '[{"bridge_gen_heartbeat": "00000000"}]')
    mine = line(10.2, "hb/pong", probe.payload)
    assert heartbeat.read(probe, "\n".join([sent(probe), stale])).result == "no reply"
    assert heartbeat.read(probe, "\n".join([sent(probe), stale, mine])) == (
        Heartbeat("echoed", 200.0)
    )


def test_the_command_passes_values_as_arguments_never_in_the_script() -> None:
    probe = heartbeat.probe(ECHO, 2.5)
    command = probe.command("/mosquitto/run/local.sock")
    assert command[:3] == ["sh", "-c", heartbeat.SCRIPT]
    assert command[4:] == [
        "/mosquitto/run/local.sock",
        f"bg-hb-{probe.nonce}",
        "hb/ping",
        probe.payload,
        "3",
        "hb/pong",
        "hb/pong",
        probe.payload.encode().hex(),
    ]


@pytest.mark.parametrize(
    "seconds, said",
    [(None, "never"), (0.4, "now"), (42.9, "42 s ago"), (119, "119 s ago"),
     (300, "5 min ago"), (7300, "2 h ago"), (200_000, "2 d ago")],
)  # fmt: skip
def test_ago(seconds: float | None, said: str) -> None:
    assert heartbeat.ago(seconds) == said


def test_the_last_confirmed_time_outlives_a_failed_heartbeat(state_home: Path) -> None:
    beats, problem = heartbeat.remember(
        "gw", {"kaa": Heartbeat("accepted", 12.0), "other": Heartbeat("no reply")}, 1000
    )
    assert problem is None
    assert beats["kaa"].last_confirmed == "1970-01-01T00:16:40Z"
    assert beats["kaa"].last_confirmed_ago_s == 0
    assert beats["other"].last_confirmed is None

    later, _ = heartbeat.remember("gw", {"kaa": Heartbeat("refused", 3.0, "x")}, 1090)
    assert later["kaa"].last_confirmed == "1970-01-01T00:16:40Z"
    assert later["kaa"].last_confirmed_ago_s == 90

    folder = state_home / "bridge-gen" / "gw"
    for private, mode in ((folder.parent, 0o700), (folder, 0o700)):
        assert stat.S_IMODE(private.stat().st_mode) == mode
    assert stat.S_IMODE((folder / "heartbeat.json").stat().st_mode) == 0o600


def test_a_relative_state_home_is_ignored(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BRIDGE_GEN_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", "relative")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert state.folder_of("gw") == tmp_path / ".local/state/bridge-gen/gw"


def test_an_unwritable_state_folder_is_reported_not_fatal(state_home: Path) -> None:
    (state_home / "bridge-gen").write_text("not a folder")
    beats, problem = heartbeat.remember("gw", {"kaa": Heartbeat("accepted", 1.0)})
    assert beats["kaa"].last_confirmed_ago_s == 0
    assert problem is not None
    assert problem.startswith("cannot keep the heartbeat times in ")


def test_a_damaged_state_file_reads_as_never(state_home: Path) -> None:
    folder = state_home / "bridge-gen" / "gw"
    folder.mkdir(parents=True)
    (folder / "heartbeat.json").write_text("{not json")
    assert heartbeat.load("gw") == {}
    # Numbers no clock shows: NaN, out of range, negative.
    (folder / "heartbeat.json").write_text(
        '{"version": 1, "bridges": {"a": 1e300, "b": NaN, "c": -5, "d": 1000}}'
    )
    assert heartbeat.load("gw") == {"d": 1000.0}
    beats, _ = heartbeat.remember("gw", {"a": Heartbeat("no reply")}, 2000)
    assert beats["a"].last_confirmed is None
