"""The demo runs a whole gateway here and shows telemetry arriving."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
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


def test_sigterm_stops_and_removes_what_the_demo_started(mosquitto_bin: str) -> None:
    # As a CI timeout or `kill` would: the run unwinds like Ctrl-C.
    demo = subprocess.Popen(
        [sys.executable, "-m", "bridge_gen", "demo", "--local"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    work = None
    deadline = time.monotonic() + 60
    for line in demo.stdout:
        found = re.match(r"working in (\S+)", line)
        work = found.group(1) if found else work
        if "is connected to the stand-in cloud" in line or time.monotonic() > deadline:
            break
    demo.send_signal(signal.SIGTERM)
    rest = demo.communicate(timeout=60)[0]

    assert demo.returncode == 130, rest
    assert "interrupted" in rest
    assert work is not None and not Path(work).exists()
    left = subprocess.run(["pgrep", "-f", work], capture_output=True, text=True)
    assert left.stdout == ""
