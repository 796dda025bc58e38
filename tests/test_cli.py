"""The command line in-process, in temporary folders: what users see."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bridge_gen.cli import app

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample-configs" / "kaa-single.yaml"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    """The tutorial sample beside certificate files, as a user would have it."""
    shutil.copy(SAMPLE, tmp_path / "spec.yaml")
    certs = tmp_path / "certs"
    certs.mkdir()
    for name in ("ca.crt", "client.crt", "client.key"):
        (certs / name).write_text("placeholder\n")
    return tmp_path


def test_render_writes_the_bundle_and_says_what_it_did(
    runner: CliRunner, spec_dir: Path
) -> None:
    out = spec_dir / "bundle"
    result = runner.invoke(
        app, ["render", str(spec_dir / "spec.yaml"), "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    names = [
        "mosquitto.conf",
        "Dockerfile",
        "docker-compose.yml",
        "bridge-entrypoint.sh",
        ".dockerignore",
    ]
    for name in names:
        assert f"  created  {out / name}" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert (out / "bridge-entrypoint.sh").stat().st_mode & 0o777 == 0o755
    assert result.stdout.endswith(
        "gateway kaa-tutorial: 1 bridge(s), 1 endpoint(s), 3 topic line(s)\n"
    )


def test_render_again_reports_unchanged_then_updated(
    runner: CliRunner, spec_dir: Path
) -> None:
    spec = spec_dir / "spec.yaml"
    out = spec_dir / "bundle"
    runner.invoke(app, ["render", str(spec), "--out", str(out)])

    again = runner.invoke(app, ["render", str(spec), "--out", str(out)])
    assert again.stdout.count("unchanged") == 5

    spec.write_text(spec.read_text().replace("port: 1883", "port: 1884"))
    changed = runner.invoke(app, ["render", str(spec), "--out", str(out)])
    assert f"  updated  {out / 'mosquitto.conf'}" in changed.stdout
    assert f"unchanged  {out / 'bridge-entrypoint.sh'}" in changed.stdout
    assert "listener 1884 0.0.0.0" in (out / "mosquitto.conf").read_text()


def test_render_default_folder_is_out_gateway(
    runner: CliRunner, spec_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(spec_dir)
    result = runner.invoke(app, ["render", "spec.yaml"])

    assert result.exit_code == 0
    assert (spec_dir / "out" / "kaa-tutorial" / "mosquitto.conf").is_file()


def test_missing_certificates_warn_on_render(runner: CliRunner, tmp_path: Path) -> None:
    shutil.copy(SAMPLE, tmp_path / "spec.yaml")
    result = runner.invoke(
        app, ["render", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "o")]
    )

    assert result.exit_code == 0
    assert (
        f"warning: {tmp_path / 'spec.yaml'}:18:12: bridges[0].tls.key:"
        f" certs/client.key does not exist ({tmp_path / 'certs' / 'client.key'})"
    ) in result.stderr


def test_validate_prints_one_summary_line(runner: CliRunner, spec_dir: Path) -> None:
    spec = spec_dir / "spec.yaml"
    result = runner.invoke(app, ["validate", str(spec)])

    assert result.exit_code == 0
    assert result.stdout == (
        f"{spec}: valid; gateway kaa-tutorial: 1 bridge(s), 1 endpoint(s),"
        " 3 topic line(s); while its remote is down, each bridge holds up to"
        " 100000 messages (QoS 0 too)\n"
    )


def test_validate_json(runner: CliRunner, spec_dir: Path) -> None:
    result = runner.invoke(app, ["validate", str(spec_dir / "spec.yaml"), "--json"])

    data = json.loads(result.stdout)
    assert data["valid"] is True
    assert data["topic_lines"] == 3


def test_bad_spec_exit_2_one_line_per_problem_nothing_written(
    runner: CliRunner, tmp_path: Path
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "version: 1\n"
        "gateway: g\n"
        "bridges:\n"
        "  - name: kaa\n"
        "    address: host:8883\n"
        "    endpoints:\n"
        "      - local: devices/#\n"
        "        app_version: My App\n"
        "        token: abc/def\n"
    )
    out = tmp_path / "out"
    result = runner.invoke(app, ["render", str(spec), "--out", str(out)])

    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"error: {spec}:7:16: bridges[0].endpoints[0].local:")
    assert lines[1].startswith(
        f"error: {spec}:8:22: bridges[0].endpoints[0].app_version: 'My App'"
    )
    assert lines[2] == (
        f"error: {spec}:9:16: bridges[0].endpoints[0].token: may not contain '/'"
    )
    assert not out.exists()


def test_missing_file_is_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])

    assert result.exit_code == 2
    assert result.stderr == f"error: {tmp_path / 'nope.yaml'}: no such file\n"


def test_schema_is_json_schema_of_the_spec(runner: CliRunner) -> None:
    result = runner.invoke(app, ["schema"])

    schema = json.loads(result.stdout)
    assert schema["title"] == "bridge-gen spec"
    assert set(schema["required"]) == {"version", "gateway", "bridges"}


def test_up_without_docker_engine_says_where_it_looked(
    runner: CliRunner, spec_dir: Path
) -> None:
    nowhere = spec_dir / "no-engine.sock"
    result = runner.invoke(
        app,
        ["up", str(spec_dir / "spec.yaml")],
        env={"DOCKER_HOST": f"unix://{nowhere}"},
    )

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.splitlines()[-1] == (
        f"error: cannot reach the Docker engine at unix://{nowhere} (no such"
        " socket); start it (e.g. `sudo systemctl start docker`) or point"
        " DOCKER_HOST at one"
    )
    assert result.stderr.count("error:") == 1


def test_up_refuses_missing_certificate_files(
    runner: CliRunner, tmp_path: Path
) -> None:
    shutil.copy(SAMPLE, tmp_path / "spec.yaml")
    result = runner.invoke(app, ["up", str(tmp_path / "spec.yaml")])

    assert result.exit_code == 2
    assert "bridges[0].tls.ca: certs/ca.crt does not exist" in result.stderr


def test_help_teaches_the_commands(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])

    for command in ("validate", "render", "schema", "up", "status", "logs", "down"):
        assert command in result.stdout
    text = " ".join(result.stdout.split())
    assert (
        "Exit codes: 0 done, 1 the work failed, 2 bad input, 3 a bug in"
        " bridge-gen, 130 interrupted."
    ) in text


def test_unknown_option_is_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(app, ["render", "--bogus"])

    assert result.exit_code == 2


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--watch", "-1"],
        ["status", "--watch", "nan"],
        ["status", "--watch", "1", "--times", "0"],
        ["verify", "--timeout", "0"],
        ["up", "--timeout", "inf"],
    ],
)
def test_times_that_mean_nothing_are_usage_errors(args: list[str], tmp_path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("version: 1\n")
    result = CliRunner().invoke(app, [args[0], str(spec), *args[1:]])
    assert result.exit_code == 2, result.output
    assert "Invalid value" in result.output


def test_times_without_watch_is_a_usage_error(tmp_path) -> None:
    spec = ROOT / "sample-configs" / "kaa-single.yaml"
    result = CliRunner().invoke(app, ["status", str(spec), "--times", "2"])
    assert result.exit_code == 2
    assert "--times counts the reports of --watch; give --watch too" in result.stderr
