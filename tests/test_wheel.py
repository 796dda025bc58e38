"""The wheel built from this tree carries its templates and renders alone."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_installs_and_renders_every_sample(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
    )
    wheel = next((tmp_path / "dist").glob("bridge_gen-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "bridge_gen/templates/mosquitto.conf.j2" in names

    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
    )
    # Run from an empty folder with only the installed copy on the path, so
    # nothing can come from this source tree.
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run(
        [sys.executable, "-c", "import bridge_gen; print(bridge_gen.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(site))

    for sample in sorted((ROOT / "sample-configs").glob("*.yaml")):
        out = tmp_path / "out" / sample.stem
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bridge_gen",
                "render",
                str(sample),
                "--out",
                str(out),
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        # A fleet's golden folder holds one folder per gateway, as --out does.
        golden = ROOT / "tests" / "golden" / sample.stem
        for expected in golden.rglob("mosquitto.conf"):
            written = out / expected.relative_to(golden)
            assert written.read_text() == expected.read_text()
