"""The demo runs a whole gateway here and shows telemetry arriving."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from bridge_gen.cli import app


def test_demo_with_the_local_binary(mosquitto_bin: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--local", "--keep", str(tmp_path)])

    assert result.exit_code == 0, result.output
    arrivals = re.findall(r"^cloud   <- (\S+)", result.stdout, re.MULTILINE)
    assert arrivals == [
        "kp1/demo-app-v1/dcx/thermo-1-token/json/42",
        "kp1/demo-app-v1/dcx/meter-2-token/json",
        "kp1/demo-app-v1/dcx/thermo-1-token/json/42",
    ]
    assert "device  <- devices/thermo-1/status" in result.stdout
    assert result.stdout.endswith("demo finished; everything it started is stopped\n")
    # The bridge ran from a config rendered by the same templates.
    conf = (tmp_path / "bridge" / "mosquitto.conf").read_text()
    assert "bridge_keyfile " + str(tmp_path / "certs" / "client.key") in conf
