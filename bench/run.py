"""Run every bridge-gen benchmark: `python bench/run.py [--quick] [--out DIR]`.

Writes DIR/results.json (with the machine it ran on) and PNG plots, and for
a full run to the default folder rewrites bench/README.md from them. See
bench/README.md for what each benchmark measures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from common import REPO, command_version, say, work_dir  # noqa: E402

BENCHMARKS = ("cli", "render", "broker", "mqtt")
DEFAULT_OUT = HERE / "results"
LATEST = HERE / "latest"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--only",
        default=",".join(BENCHMARKS),
        help=f"comma-separated subset of {','.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: redraw the plots and README from DIR/results.json",
    )
    readme = parser.add_mutually_exclusive_group()
    readme.add_argument("--readme", action="store_true", help="always rewrite it")
    readme.add_argument("--no-readme", action="store_true", help="never rewrite it")
    args = parser.parse_args(argv)
    only = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = set(only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    import report

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        results = json.loads((out / "results.json").read_text())
        return finish(results, out, args, report)
    started = time.monotonic()
    load_at_start = _loadavg()
    removed = remove_leftovers()
    if removed:
        say(f"removed leftovers of an earlier run: {', '.join(removed)}")
    results: dict = {
        "meta": {
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            "quick": args.quick,
            "benchmarks": only,
            "machine": machine(),
        }
    }
    say(
        f"machine: {results['meta']['machine']['cpu_model']}, mode "
        f"{'quick' if args.quick else 'full'}"
    )
    run_all(results, only, args.quick)

    mosquitto_image = results.get("mqtt", {}).get("setup", {}).get("bridge_mosquitto")
    if mosquitto_image:
        results["meta"]["machine"]["mosquitto_image"] = mosquitto_image
    results["meta"]["seconds"] = time.monotonic() - started
    results["meta"]["loadavg"] = f"{load_at_start} / {_loadavg()}"
    return finish(results, out, args, report)


def finish(results: dict, out: Path, args, report) -> int:
    """Targets, results.json, plots and (maybe) the README; the exit code."""
    results["targets"] = report.targets(results)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    made = report.plots(results, out)
    say(f"wrote {out / 'results.json'} and {len(made)} plot(s)")

    quick = results["meta"]["quick"]
    write = args.readme or (
        not args.no_readme and not quick and out == DEFAULT_OUT.resolve()
    )
    if write:
        images = publish_latest(out, made)
        (HERE / "README.md").write_text(report.readme(results, images, made))
        say(f"rewrote {HERE / 'README.md'}")

    for t in results["targets"]:
        say(f"{'PASS' if t['pass'] else 'FAIL'}  {t['name']}: {t['shown']}")
    only = results["meta"]["benchmarks"]
    failed = [k for k in only if "error" in results.get(k, {})]
    for name in failed:
        say(f"ERROR in {name}: see results.json")
    say(f"done in {results['meta']['seconds']:.0f} s")
    return 1 if failed else 0


def run_all(results: dict, only: list[str], quick: bool) -> None:
    from bridge_gen.pki import make_throwaway_pki
    from bridge_gen.standin import StandInBroker

    with work_dir("run") as work:
        pki = make_throwaway_pki(work / "pki")
        for name in BENCHMARKS:
            if name not in only:
                continue
            say(f"--- {name}")
            began = time.monotonic()
            try:
                if name == "cli":
                    import bench_cli

                    results[name] = bench_cli.run(work, pki, quick)
                elif name == "render":
                    import bench_render

                    results[name] = bench_render.run(work, quick)
                elif name == "broker":
                    import bench_broker

                    with StandInBroker(work / "cloud-broker", pki) as cloud:
                        results[name] = bench_broker.run(work, cloud, quick)
                else:
                    import bench_mqtt

                    # Persistence: the backlog drill's counting subscriber
                    # keeps its session while the stand-in is down.
                    with StandInBroker(
                        work / "cloud-mqtt", pki, persistence=True
                    ) as cloud:
                        results[name] = bench_mqtt.run(work, cloud, quick)
            except Exception:  # one broken benchmark must not hide the rest
                text = traceback.format_exc()
                say(f"{name} failed:\n{text}")
                results[name] = {"error": text}
            results.setdefault(name, {})["seconds"] = time.monotonic() - began


def remove_leftovers() -> list[str]:
    """Containers, volumes and images of bench gateways an earlier run left."""
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
    except Exception:
        return []
    label = "io.bridge-gen.gateway"
    removed = []

    def ours(obj) -> bool:
        labels = obj.attrs.get("Labels") or obj.attrs.get("Config", {}).get("Labels")
        return str((labels or {}).get(label, "")).startswith("bench-")

    for container in client.containers.list(all=True, filters={"label": label}):
        if ours(container) and container.name.startswith("bridge-gen-bench-"):
            container.remove(force=True, v=True)
            removed.append(container.name)
    for volume in client.volumes.list(filters={"label": label}):
        if ours(volume) and volume.name.startswith("bridge-gen-bench-"):
            volume.remove(force=True)
            removed.append(volume.name)
    for image in client.images.list(filters={"label": label}):
        if ours(image) and all(t.startswith("bridge-gen/bench-") for t in image.tags):
            client.images.remove(image.id, force=True)
            removed.append(", ".join(image.tags) or image.short_id)
    return removed


def publish_latest(out: Path, made: list[str]) -> str:
    """Where the README finds its plots: bench/latest, which git keeps."""
    if out == LATEST.resolve():
        return "latest"
    LATEST.mkdir(exist_ok=True)
    for name in [*made, "results.json"]:
        shutil.copy2(out / name, LATEST / name)
    return "latest"


def machine() -> dict:
    info = {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _mem_total_kib() / 2**20,
        "kernel": platform.release(),
        "os": _os_name(),
        "python": sys.version.split()[0] + f" ({sys.executable})",
        "mosquitto": command_version(
            [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-h"]
        ),
        "docker": _docker_version(),
        "libraries": _libraries(),
        "git": _git(),
    }
    return info


def _loadavg() -> str:
    """1, 5 and 15 minute load: other work on the machine skews the numbers."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


def _docker_version() -> str:
    server = command_version(["docker", "version", "--format", "{{.Server.Version}}"])
    client = command_version(["docker", "version", "--format", "{{.Client.Version}}"])
    return f"server {server}, client {client}"


def _libraries() -> str:
    from importlib import metadata

    import yaml

    found = []
    for name in ("paho-mqtt", "PyYAML", "pydantic", "Jinja2", "typer", "matplotlib"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} missing")
    found.append(f"libyaml {'yes' if yaml.__with_libyaml__ else 'no'}")
    return ", ".join(found)


def _git() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=REPO, check=False
        )
        return done.stdout.rstrip("\n")  # porcelain lines start with a space

    commit = git("rev-parse", "--short=12", "HEAD").strip() or "unknown"
    dirty = [
        line[3:]
        for line in git("status", "--porcelain").splitlines()
        if not line[3:].startswith("bench/")
    ]
    note = f" + {len(dirty)} uncommitted file(s) outside bench/" if dirty else ""
    return f"commit {commit}{note}"


if __name__ == "__main__":
    sys.exit(main())
