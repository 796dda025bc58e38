"""Benchmark 5: cold start of the command line.

Each command runs as a fresh process, as a user types it: the installed
`bridge-gen` console script (not the pyenv shim, which adds its own
start-up), one unmeasured run first, then the median of 10. The floors are
the bare interpreter and `import bridge_gen.cli`. A check that the CLI
module, and `validate`, never import the Docker SDK (or paho, or
cryptography): only `up` and friends need them.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import LOOPBACK, REPO, say

SMALL_SPEC = """\
version: 1
gateway: bench-small
local: {{port: 1883, bind: {host}}}
container: {{network: host}}
bridges:
  - name: kaa
    address: {host}:8883
    tls: {{ca: {pki.ca_cert}, cert: {pki.client_cert}, key: {pki.client_key}}}
    app_version: demo-app-v1
    endpoints:
      - local: devices/thermo-1
        token: thermo-1-token
        request_id: 42
      - local: devices/meter-2
        token: meter-2-token
"""

HEAVY = ("docker", "paho", "cryptography", "requests", "urllib3")

PROBE = """\
import json, sys
sys.argv = ["bridge-gen", *sys.argv[1:]]
code = 0
if len(sys.argv) > 1:
    from bridge_gen.cli import main
    try:
        main()
    except SystemExit as exc:
        code = exc.code
else:
    import bridge_gen.cli
top = sorted({m.split(".")[0] for m in sys.modules})
print(json.dumps({"code": code, "top": top}), file=sys.stderr)
"""


def console_script() -> str:
    beside = Path(sys.executable).parent / "bridge-gen"
    if beside.exists():
        return str(beside)
    found = shutil.which("bridge-gen")
    if found is None:
        raise RuntimeError("bridge-gen is not installed (pip install -e .)")
    return found


def _time(command: list[str], reps: int) -> dict:
    subprocess.run(command, capture_output=True, timeout=120, check=False)
    times = []
    code = 0
    for _ in range(reps):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, timeout=120, check=False)
        times.append(time.perf_counter() - start)
        code = done.returncode
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "exit_code": code,
        "runs": times,
    }


def run(work: Path, pki, quick: bool) -> dict:
    reps = 10  # what the target is defined on; each run is well under 1 s
    spec = work / "small.yaml"
    spec.write_text(SMALL_SPEC.format(host=LOOPBACK, pki=pki))
    exe = console_script()
    py = sys.executable
    commands = {
        "python -c pass": [py, "-c", "pass"],
        "import bridge_gen.cli": [py, "-c", "import bridge_gen.cli"],
        "bridge-gen --help": [exe, "--help"],
        "bridge-gen validate SMALL": [exe, "validate", str(spec)],
    }
    timings = {}
    for name, command in commands.items():
        timings[name] = _time(command, reps)
        say(
            f"cli: {name:<28} median {timings[name]['median_s'] * 1000:6.1f} ms"
            f" (exit {timings[name]['exit_code']})"
        )
    imports = {
        "import bridge_gen.cli": _modules([]),
        "bridge-gen validate SMALL": _modules(["validate", str(spec)]),
    }
    for name, found in imports.items():
        say(f"cli: {name}: heavy modules loaded: {found['heavy'] or 'none'}")
    return {
        "console_script": exe,
        "reps": reps,
        "small_spec": spec.read_text(),
        "timings": timings,
        "imports": imports,
        "importtime_top": _importtime(),
        "quick": quick,
    }


def _modules(args: list[str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    heavy = [m for m in HEAVY if m in report["top"]]
    return {
        "exit_code": report["code"],
        "docker_imported": "docker" in report["top"],
        "heavy": heavy,
        "top_level_modules": len(report["top"]),
    }


def _importtime(top: int = 12) -> dict:
    """Where `import bridge_gen.cli` spends its time (python -X importtime)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import bridge_gen.cli"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, cumulative, name = line.split(":", 1)[1].split("|")
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        rows.append(
            {
                "module": name.strip(),
                "depth": depth,
                "own_ms": int(own) / 1000,
                "cumulative_ms": int(cumulative) / 1000,
            }
        )
    by_cumulative = sorted(rows, key=lambda r: r["cumulative_ms"], reverse=True)
    by_own = sorted(rows, key=lambda r: r["own_ms"], reverse=True)
    return {
        "total_ms": sum(r["own_ms"] for r in rows),
        "top_cumulative": by_cumulative[:top],
        "top_own": by_own[:top],
    }
