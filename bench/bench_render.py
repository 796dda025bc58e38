"""Benchmark 3: `render` time and peak memory against a plain YAML parse.

Render is what `bridge-gen render` does in process: pipeline.prepare (load,
validate, lint, plan) and pipeline.bundle (the five files), timed here in
one warm process after a first call. The floor is PyYAML's C loader on the
same text. Peak memory is measured in a fresh child per size: tracemalloc's
peak of Python allocations, and the child's peak RSS (VmHWM).

Run as `python bench_render.py --child SPEC MODE` it is that child.
"""

from __future__ import annotations

import cProfile
import gc
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import LOOPBACK, REPO, proc_status, say

BENCH_FILE = Path(__file__).resolve()

COUNTED = ("resolve", "endpoint_lines", "_layered")

# Entry points of the stages of a render, for the profile's summary.
PHASES = (
    ("YAML load with positions (yamlfile.load_file)", "yamlfile.py", "load_file"),
    ("spec model (spec.check, pydantic)", "spec.py", "check"),
    ("lint (lint.lint)", "lint.py", "lint"),
    ("plan (plan.plan)", "plan.py", "plan"),
    ("templates (render.render)", "render.py", "render"),
)


def sizes(quick: bool) -> dict:
    if quick:
        return {"endpoints": [10, 100, 1_000, 10_000], "reps": 3, "big_reps": 2}
    return {"endpoints": [10, 100, 1_000, 10_000], "reps": 15, "big_reps": 7}


def spec_text(endpoints: int) -> str:
    """One bridge with `endpoints` Kaa endpoints, as a user would write it."""
    head = f"""\
version: 1
gateway: bench-render-{endpoints}
container:
  network: host
local:
  port: 1883
  bind: {LOOPBACK}
bridges:
  - name: kaa
    address: {LOOPBACK}:8883
    tls:
      ca: certs/ca.crt
      cert: certs/client.crt
      key: certs/client.key
    app_version: plant-app-v1
    endpoints:
"""
    rows = "".join(
        f"      - local: plant/line-{i // 100}/dev-{i}\n"
        f"        token: endpoint-token-{i:06d}\n"
        for i in range(endpoints)
    )
    return head + rows


def _render(spec: Path, out: Path):
    from bridge_gen import pipeline

    prepared = pipeline.prepare(spec, files_required=False)
    return prepared, pipeline.bundle(prepared, out)[1]


def _timed(fn, reps: int, *, collect: bool = True) -> list[float]:
    """Wall times of `fn`; collect=False runs it with the cyclic GC off."""
    times = []
    for _ in range(reps):
        gc.collect()
        if not collect:
            gc.disable()
        try:
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        finally:
            gc.enable()
    return times


def run(work: Path, quick: bool) -> dict:
    import yaml

    from bridge_gen import pipeline

    try:  # bridge-gen's own loader alone: an internal API, skipped if gone
        from bridge_gen.yamlfile import load_file
    except ImportError:
        load_file = None
    n = sizes(quick)
    out = work / "render-out"
    rows = []
    profile = None
    _render(_write(work, 10), out)  # imports, template compilation
    for count in n["endpoints"]:
        spec = _write(work, count)
        text = spec.read_text()
        reps = n["big_reps"] if count >= 10_000 else n["reps"]
        first = _timed(lambda s=spec: _render(s, out), 1)[0]

        def parse(s=spec):
            return yaml.load(s.read_text(), Loader=yaml.CSafeLoader)

        parse_t = _timed(parse, reps)
        prepare_t = _timed(
            lambda s=spec: pipeline.prepare(s, files_required=False), reps
        )
        prepared = pipeline.prepare(spec, files_required=False)
        bundle_t = _timed(lambda p=prepared: pipeline.bundle(p, out), reps)
        render_t = _timed(lambda s=spec: _render(s, out), reps)
        parse_nogc = _timed(parse, reps, collect=False)
        render_nogc = _timed(lambda s=spec: _render(s, out), reps, collect=False)
        load_t = None
        if load_file is not None:
            load_t = _timed(lambda s=spec: load_file(s, lenient=True), reps)
        memory = _memory(spec)
        cli = _cli_render(spec, work / f"cli-out-{count}", 1 if quick else 3)
        row = {
            "endpoints": count,
            "topic_lines": prepared.topic_lines,
            "spec_bytes": len(text.encode()),
            "conf_bytes": len(pipeline.bundle(prepared, out)[1][0].text.encode()),
            "parse_s": statistics.median(parse_t),
            "prepare_s": statistics.median(prepare_t),
            "bundle_s": statistics.median(bundle_t),
            "load_s": statistics.median(load_t) if load_t else None,
            "render_s": statistics.median(render_t),
            "render_first_s": first,
            "render_min_s": min(render_t),
            "parse_min_s": min(parse_t),
            "parse_nogc_s": statistics.median(parse_nogc),
            "render_nogc_s": statistics.median(render_nogc),
            "reps": reps,
            "cli_render_s": cli,
            **memory,
        }
        row["ratio"] = row["render_s"] / row["parse_s"]
        rows.append(row)
        say(
            f"render: {count:>6} endpoints: render {row['render_s'] * 1000:8.1f} ms"
            f" (prepare {row['prepare_s'] * 1000:.1f} + bundle"
            f" {row['bundle_s'] * 1000:.1f}), parse {row['parse_s'] * 1000:7.1f} ms,"
            f" x{row['ratio']:.2f}; peak {row['tracemalloc_peak_mib']:.1f} MiB"
            f" traced, {row['max_rss_mib']:.1f} MiB RSS"
        )
    biggest = _write(work, n["endpoints"][-1])
    profile = _profile(biggest, out)
    return {"sizes": rows, "profile": profile, "target_endpoints": rows[-1]}


def _write(work: Path, count: int) -> Path:
    spec = work / f"render-{count}.yaml"
    if not spec.exists():
        spec.write_text(spec_text(count))
    return spec


def _memory(spec: Path) -> dict:
    found = {}
    for mode in ("trace", "rss", "parse-trace"):
        done = subprocess.run(
            [sys.executable, str(BENCH_FILE), "--child", str(spec), mode],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
            cwd=REPO,
        )
        found.update(json.loads(done.stdout))
    return found


def _cli_render(spec: Path, out: Path, reps: int) -> float:
    exe = Path(sys.executable).parent / "bridge-gen"
    command = [str(exe) if exe.exists() else "bridge-gen", "render", str(spec)]
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run(
            [*command, "--out", str(out)],
            capture_output=True,
            timeout=600,
            check=True,
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _profile(spec: Path, out: Path, top: int = 10) -> dict:
    profiler = cProfile.Profile()
    profiler.enable()
    _render(spec, out)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    entries = stats.stats.items()  # type: ignore[attr-defined]
    for (path, line, name), (_cc, calls, tottime, cumtime, _) in entries:
        rows.append(
            {
                "function": f"{_short(path)}:{line}({name})",
                "calls": calls,
                "tottime_s": tottime,
                "cumtime_s": cumtime,
            }
        )
    by_own = sorted(rows, key=lambda r: r["tottime_s"], reverse=True)[:top]
    ours = [r for r in rows if "bridge_gen/" in r["function"]]
    by_cum = sorted(ours, key=lambda r: r["cumtime_s"], reverse=True)[:top]
    phases = {}
    calls_of: dict[str, int] = {}
    for (path, _line, name), (_cc, calls, _tt, cumtime, _) in entries:
        for label, file, func in PHASES:
            if path.endswith(f"bridge_gen/{file}") and name == func:
                phases[label] = max(phases.get(label, 0.0), cumtime)
        if path.endswith("bridge_gen/plan.py") and name in COUNTED:
            calls_of[name] = calls
    return {
        "endpoints": int(spec.stem.split("-")[-1]),
        "total_s": total,
        "phases": {label: phases.get(label, 0.0) for label, _, _ in PHASES},
        "calls": calls_of,
        "top_tottime": by_own,
        "top_cumtime_bridge_gen": by_cum,
    }


def _short(path: str) -> str:
    if path.startswith(str(REPO) + "/"):
        return path[len(str(REPO)) + 1 :]
    for marker in ("site-packages/", "bridge_gen/", "lib/python3"):
        if marker in path:
            head = "" if marker != "bridge_gen/" else "bridge_gen/"
            return head + path.split(marker, 1)[1]
    return path


def child(spec: Path, mode: str) -> dict:
    """In a fresh process: peak memory of one render (or one parse)."""
    import tracemalloc

    import yaml

    from bridge_gen import pipeline

    out = spec.parent / "child-out"
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent
    # across fork and exec, so a child would report the bench's own peak.
    base_rss = proc_status(os.getpid())["VmRSS"]
    if mode == "parse-trace":
        tracemalloc.start()
        yaml.load(spec.read_text(), Loader=yaml.CSafeLoader)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return {"parse_tracemalloc_peak_mib": peak / 2**20}
    if mode == "trace":
        tracemalloc.start()
        pipeline.bundle(pipeline.prepare(spec, files_required=False), out)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return {"tracemalloc_peak_mib": peak / 2**20}
    pipeline.bundle(pipeline.prepare(spec, files_required=False), out)
    peak_rss = proc_status(os.getpid())["VmHWM"]
    return {
        "max_rss_mib": peak_rss / 1024,
        "rss_after_imports_mib": base_rss / 1024,
    }


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(child(Path(sys.argv[2]), sys.argv[3])))
    else:
        sys.exit("usage: bench_render.py --child SPEC trace|rss|parse-trace")
