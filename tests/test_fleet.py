"""Fleet files: one file, shared defaults, a bundle per gateway."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bridge_gen import pipeline
from bridge_gen.cli import app
from bridge_gen.errors import SpecError, UsageError

SAMPLES = Path(__file__).resolve().parent.parent / "sample-configs"
NAMES = ["plant-a", "plant-b", "plant-c"]

FLEET = """\
version: 1
fleet: plants
defaults:
  local: {port: 1883, bind: 127.0.0.1}
  bridges:
    - name: kaa
      address: mqtt.example.com:8883
      tls: {ca: ca.crt}
      app_version: app-v1
      qos: 0
      endpoints:
        - {local: shared/t, token: shared}
gateways:
  - gateway: one
  - gateway: two
    local: {port: 1884}
    bridges:
      - name: kaa
        app_version: app-v2
        endpoints:
          - {local: own/t, token: own}
      - name: extra
        address: other.example.com:1883
        topics: [{pattern: 'x/#', local_prefix: l/, remote_prefix: r/}]
"""


def run(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fleet sample with its inventory and certificates, as a user has it."""
    for name in ("fleet.yaml", "plant-b.csv"):
        shutil.copy(SAMPLES / name, tmp_path / name)
    (tmp_path / "certs").mkdir()
    for name in ("ca.crt", "client.crt", "client.key"):
        (tmp_path / "certs" / name).write_text("placeholder\n")
    monkeypatch.chdir(tmp_path)
    return Path("fleet.yaml")


def small(tmp_path: Path, text: str = FLEET) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    (tmp_path / "ca.crt").write_text("placeholder\n")
    return path


# Merging.


def test_merge_rules(tmp_path: Path) -> None:
    one, two = pipeline.prepare_all(small(tmp_path), files_required=False).gateways

    # Mappings merge key by key.
    assert (one.plan.port, one.plan.bind) == (1883, "127.0.0.1")
    assert (two.plan.port, two.plan.bind) == (1884, "127.0.0.1")
    # Bridges merge by name; a new name is added after the default ones.
    assert [b.name for b in two.plan.bridges] == ["kaa", "extra"]
    kaa = two.plan.bridges[0]
    assert kaa.addresses == ("mqtt.example.com:8883",)
    # Other lists replace the default one.
    assert [line.remote_topic for line in kaa.lines] == [
        "kp1/app-v2/dcx/own/json",
        "kp1/app-v2/dcx/own/json/error",
    ]
    assert {line.qos for line in kaa.lines} == {0}
    assert [line.remote_topic for line in one.plan.bridges[0].lines] == [
        "kp1/app-v1/dcx/shared/json",
        "kp1/app-v1/dcx/shared/json/error",
    ]
    assert [p.fleet for p in (one, two)] == ["plants", "plants"]


def test_the_defaults_are_not_changed_by_a_gateway(tmp_path: Path) -> None:
    # The merged data shares values with the file's data; a gateway's
    # inventory must not leak into the next gateway through them.
    text = FLEET.replace(
        "  - gateway: one\n",
        "  - gateway: one\n    bridges: [{name: kaa, inventory: one.csv}]\n",
    )
    (tmp_path / "one.csv").write_text("token,local\nrow,row/t\n")
    found = pipeline.prepare_all(small(tmp_path, text), files_required=False)

    assert [p.endpoints for p in found.gateways] == [2, 1]


# The commands.


def test_render_writes_a_folder_per_gateway(sample: Path) -> None:
    result = run("render", str(sample))

    assert result.exit_code == 0, result.output
    for name in NAMES:
        written = sorted(p.name for p in (Path("out") / name).iterdir())
        assert written == sorted(
            [
                ".dockerignore",
                "Dockerfile",
                "bridge-entrypoint.sh",
                "docker-compose.yml",
                "mosquitto.conf",
            ]
        )
        assert f"  created  out/{name}/mosquitto.conf\n" in result.stdout
    assert result.stdout.endswith(
        "gateway plant-a: 1 bridge(s), 2 endpoint(s), 18 topic line(s)\n"
        "gateway plant-b: 1 bridge(s), 3 endpoint(s), 9 topic line(s)\n"
        "gateway plant-c: 2 bridge(s), 1 endpoint(s), 4 topic line(s)\n"
    )
    # The same bytes as the golden files.
    golden = Path(__file__).resolve().parent / "golden" / "fleet" / "plant-b"
    conf = (Path("out") / "plant-b" / "mosquitto.conf").read_text()
    assert conf == (golden / "mosquitto.conf").read_text()


def test_render_out_and_one_gateway(sample: Path) -> None:
    result = run("render", str(sample), "--out", "bundles", "--gateway", "plant-c")

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in Path("bundles").iterdir()) == ["plant-c"]
    assert result.stdout.endswith(
        "gateway plant-c: 2 bridge(s), 1 endpoint(s), 4 topic line(s)\n"
    )


def test_one_bad_gateway_and_nothing_is_written(sample: Path) -> None:
    text = sample.read_text().replace("token: plant-c-kiln", "token: plant/c")
    sample.write_text(text)

    result = run("render", str(sample))

    assert result.exit_code == 2
    assert result.stderr == (
        "error: fleet.yaml:49:20: gateways[2].bridges[0].endpoints[0].token: may"
        " not contain '/'\n"
    )
    assert not Path("out").exists()


def test_validate_says_one_line_per_gateway(sample: Path) -> None:
    result = run("validate", str(sample))

    assert result.exit_code == 0, result.output
    assert [line.split(";")[1] for line in result.stdout.splitlines()] == [
        " gateway plant-a: 1 bridge(s), 2 endpoint(s), 18 topic line(s)",
        " gateway plant-b: 1 bridge(s), 3 endpoint(s), 9 topic line(s)",
        " gateway plant-c: 2 bridge(s), 1 endpoint(s), 4 topic line(s)",
    ]
    # A warning from the defaults, once, naming the gateways it is about.
    assert result.stderr == (
        "warning: fleet.yaml:13:5: defaults.local.allow_anonymous: for gateways"
        " plant-a, plant-c: anyone who reaches 0.0.0.0:1883 may publish and"
        " subscribe without a password; add `local.users`, or bind to 127.0.0.1\n"
    )


def test_validate_json(sample: Path) -> None:
    result = run("validate", str(sample), "--json")

    data = json.loads(result.stdout)
    assert data["fleet"] == "plants"
    assert [g["gateway"] for g in data["gateways"]] == NAMES
    assert data["gateways"][1] == {
        "bridges": 1,
        "endpoints": 3,
        "gateway": "plant-b",
        "topic_lines": 9,
    }


def test_validate_and_plan_one_gateway(sample: Path) -> None:
    validated = run("validate", str(sample), "--gateway", "plant-b")
    planned = run("plan", str(sample), "-g", "plant-b", "--json")

    assert validated.exit_code == 0, validated.output
    assert validated.stdout.splitlines()[0].startswith(
        "fleet.yaml: valid; gateway plant-b: "
    )
    assert len(validated.stdout.splitlines()) == 1
    rows = json.loads(planned.stdout)
    assert {r["gateway"] for r in rows} == {"plant-b"}
    assert rows[0] == {
        "bridge": "kaa",
        "direction": "out",
        "gateway": "plant-b",
        "local": "oven/1",
        "mapping": "endpoint plant-b-oven-1: telemetry",
        "qos": 1,
        "remote": "kp1/plant-app-v1/dcx/plant-b-oven-1/json/1",
    }


def test_plan_names_the_gateway_of_each_row(sample: Path) -> None:
    result = run("plan", str(sample))

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["gateway", "bridge", "local", "topic", "remote"] + [
        "topic",
        "qos",
    ]
    assert lines[-6:] == [
        "gateway plant-a: 1 bridge(s), 2 endpoint(s), 18 topic line(s)",
        "while its remote is down, each bridge holds up to 100000 messages (QoS 0 too)",
        "gateway plant-b: 1 bridge(s), 3 endpoint(s), 9 topic line(s)",
        "while its remote is down, each bridge holds up to 100000 messages (QoS 0 too)",
        "gateway plant-c: 2 bridge(s), 1 endpoint(s), 4 topic line(s)",
        "while its remote is down, each bridge holds up to 500000 messages (QoS 0 too)",
    ]


@pytest.mark.parametrize("command", ["up", "status", "logs", "down"])
def test_docker_commands_need_a_gateway(
    command: str, sample: Path, tmp_path: Path
) -> None:
    # Refused before any engine is looked for.
    nowhere = {"DOCKER_HOST": f"unix://{tmp_path / 'none.sock'}"}
    result = CliRunner().invoke(app, [command, str(sample)], env=nowhere)

    assert result.exit_code == 2
    assert result.stderr == (
        "error: fleet.yaml holds 3 gateways (plant-a, plant-b, plant-c); choose"
        " one with --gateway NAME\n"
    )


@pytest.mark.parametrize("command", ["validate", "plan", "render", "status"])
def test_an_unknown_gateway_lists_the_names(command: str, sample: Path) -> None:
    result = run(command, str(sample), "--gateway", "plant-x")

    assert result.exit_code == 2
    assert result.stderr == (
        "error: no gateway 'plant-x' in fleet.yaml; it holds the gateways"
        " plant-a, plant-b, plant-c\n"
    )
    assert not Path("out").exists()


def test_a_fleet_of_one_needs_no_name(tmp_path: Path) -> None:
    text = FLEET[: FLEET.index("  - gateway: two")]
    prepared = pipeline.prepare(small(tmp_path, text), files_required=False)

    assert prepared.plan.gateway == "one"


def test_a_plain_spec_takes_its_own_name_only(tmp_path: Path) -> None:
    spec = SAMPLES / "kaa-single.yaml"
    same = pipeline.prepare(spec, files_required=False, gateway="kaa-tutorial")
    assert same == pipeline.prepare(spec, files_required=False)

    with pytest.raises(UsageError) as caught:
        pipeline.prepare(spec, files_required=False, gateway="plant-a")
    assert str(caught.value) == (
        f"no gateway 'plant-a' in {spec}; it is the spec of the gateway kaa-tutorial"
    )


# Problems: where they were written, and whose they are.


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        pipeline.prepare_all(small(tmp_path, text), files_required=False)
    file = str(tmp_path / "fleet.yaml")
    return [str(p).replace(file, "F") for p in caught.value.problems]


def test_a_bad_default_is_reported_once(tmp_path: Path) -> None:
    text = FLEET.replace("mqtt.example.com:8883", "mqtt.example.com")
    assert problems(tmp_path, text) == [
        "F:7:16: defaults.bridges[0].address: 'mqtt.example.com' must be"
        " host:port, e.g. mqtt.example.com:8883"
    ]


def test_a_default_only_some_gateways_fail_names_them(tmp_path: Path) -> None:
    text = FLEET.replace("      app_version: app-v1\n", "")
    assert problems(tmp_path, text) == [
        "F:11:11: defaults.bridges[0].endpoints[0].app_version: for gateway one:"
        " is required (the bridge sets no `app_version` to inherit)"
    ]


def test_a_missing_value_in_a_gateway_entry(tmp_path: Path) -> None:
    text = FLEET.replace("        address: other.example.com:1883\n", "")
    assert problems(tmp_path, text) == [
        "F:22:9: gateways[1].bridges[1].address: is required"
    ]


def test_a_duplicate_across_defaults_and_entry(tmp_path: Path) -> None:
    text = FLEET.replace("{local: own/t, token: own}", "{local: own/t, token: own}")
    text = text.replace(
        "      - name: extra\n",
        "      - name: kaa\n        address: h.example.com:1\n      - name: extra\n",
    )
    assert problems(tmp_path, text) == [
        "F:22:15: gateways[1].bridges[1].name: name 'kaa' is already used by"
        " gateways[1].bridges[0]"
    ]


def test_the_shape_of_the_file(tmp_path: Path) -> None:
    text = (
        "version: 2\nfleet: Plants p\ndefault: {}\n"
        "gateways:\n  - {gateway: a, version: 1}\n  - gateway: a\n"
    )
    assert problems(tmp_path, text) == [
        "F:1:10: version: must be at most 1, got '2'",
        "F:2:8: fleet: 'Plants p' is not a fleet name: start with a letter or"
        " digit, then letters, digits, '-' or '_', 64 at most",
        "F:3:1: default: unknown key `default`; did you mean `defaults`? (known"
        " here: defaults, fleet, gateways, version)",
    ]
    text = "version: 1\nfleet: p\ngateways:\n  - {gateway: a, version: 1}\n"
    assert problems(tmp_path, text) == [
        "F:4:18: gateways[0].version: is written once, at the top of the fleet file"
    ]
