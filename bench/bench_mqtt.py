"""Benchmarks 1 and 2: messages through the generated bridge.

One TLS stand-in cloud (mosquitto on 127.0.0.1, client certificates
required) and one bridge container made by bridge-gen (host network, TLS to
the stand-in). A mosquitto_sub on the stand-in counts and timestamps what
arrives; publishers send either to the bridge's local listener (bridged) or
straight to the stand-in over TLS (direct), on the same kp1 topic.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

from common import (
    APP,
    Counter,
    bridge_container,
    counter,
    mosquitto_pub,
    paho_publish,
    percentile,
    say,
)

DEVICE_TOPIC = "bench/dev-0"
TOKEN = "tok-0"
REMOTE_TOPIC = f"kp1/{APP}/dcx/{TOKEN}/json"
SIZE = 100  # bytes per payload, newline included for mosquitto_pub -l


def sizes(quick: bool) -> dict:
    if quick:
        return {
            "messages": 5_000,
            "reps": 2,
            "paho_reps": 1,
            "paced_messages": 1_000,
            "paced_rate": 1_000,
            "backlog": 20_000,
            "backlog_reps": 1,
        }
    return {
        "messages": 20_000,
        "reps": 7,
        "paho_reps": 3,
        "paced_messages": 5_000,
        "paced_rate": 1_000,
        "backlog": 100_000,
        "backlog_reps": 3,
    }


def run(work: Path, standin, quick: bool) -> dict:
    """Both benchmarks on one stand-in and one bridge container."""
    n = sizes(quick)
    say("mqtt: bringing up the bridge container (bridge-gen up, host network)")
    with bridge_container(work, standin, [(DEVICE_TOPIC, TOKEN)]) as bridge:
        say(f"mqtt: bridge {bridge.container} up in {bridge.seconds_to_up:.1f} s")
        version = _container_mosquitto(bridge.container)
        out = {
            "setup": {
                "bridge_container": bridge.container,
                "bridge_mosquitto": version,
                "seconds_to_up": bridge.seconds_to_up,
                "payload_bytes": SIZE,
                "qos": 1,
                "publisher_inflight": 20,
                "subscriber": "mosquitto_sub (QoS 1, on the stand-in, TLS)",
                **n,
            }
        }
        out["throughput"] = throughput(work, standin, bridge, n)
        out["backlog"] = backlog(work, standin, bridge, n)
    return out


def _container_mosquitto(name: str) -> str:
    done = subprocess.run(
        ["docker", "exec", name, "mosquitto", "-h"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def _paths(standin, bridge) -> dict[str, tuple[int, str, object]]:
    return {
        "direct": (standin.port, REMOTE_TOPIC, standin.pki),
        "bridge": (bridge.port, DEVICE_TOPIC, None),
    }


def _one_run(work, standin, path, publisher, count, tag, **kwargs) -> dict:
    port, topic, pki = path
    with counter(work, standin, REMOTE_TOPIC, client_id=f"count-{tag}") as seen:
        publish = mosquitto_pub if publisher == "mosquitto_pub" else paho_publish
        sent = publish(
            port,
            topic,
            count,
            size=SIZE,
            pki=pki,
            client_id=f"pub-{tag}",
            warmup=seen.wait_warmup,
            **kwargs,
        )
        seen.wait_for(count, timeout=120)
        return _measure(seen, sent.started_ns, count)


def _measure(seen: Counter, started_ns: int, count: int) -> dict:
    arrivals = seen.arrivals
    if not arrivals.distinct:
        return {"sent": count, "received": 0, "lost": count}
    _, last = arrivals.span()
    seconds = (last - started_ns) / 1e9
    lat = arrivals.latencies_ms()
    return {
        "sent": count,
        "received": arrivals.distinct,
        "lost": count - arrivals.distinct,
        "duplicates": arrivals.total - arrivals.distinct,
        "seconds": seconds,
        "msgs_per_s": arrivals.distinct / seconds,
        "latency_ms": {
            "p50": percentile(lat, 50),
            "p95": percentile(lat, 95),
            "p99": percentile(lat, 99),
            "max": max(lat),
        },
    }


def throughput(work: Path, standin, bridge, n: dict) -> dict:
    paths = _paths(standin, bridge)
    runs: dict[str, dict[str, list[dict]]] = {}
    for publisher, reps in (("mosquitto_pub", n["reps"]), ("paho", n["paho_reps"])):
        runs[publisher] = {"direct": [], "bridge": []}
        for rep in range(reps):
            # Alternate which path goes first, so drift hits both alike.
            order = ("direct", "bridge") if rep % 2 == 0 else ("bridge", "direct")
            for name in order:
                tag = f"{publisher[:4]}-{name}-{rep}"
                result = _one_run(
                    work, standin, paths[name], publisher, n["messages"], tag
                )
                runs[publisher][name].append(result)
                say(
                    f"mqtt: {publisher} {name} #{rep + 1}:"
                    f" {result.get('msgs_per_s', 0):,.0f} msg/s,"
                    f" lost {result['lost']}"
                )

    paced = {}
    for name in ("direct", "bridge"):
        result = _one_run(
            work,
            standin,
            paths[name],
            "mosquitto_pub",
            n["paced_messages"],
            f"paced-{name}",
            rate=n["paced_rate"],
        )
        paced[name] = result
        lat = result.get("latency_ms", {})
        say(
            f"mqtt: paced {n['paced_rate']}/s {name}: p50 {lat.get('p50', 0):.2f} ms"
            f" p99 {lat.get('p99', 0):.2f} ms, lost {result['lost']}"
        )

    summary = {}
    for publisher, by_path in runs.items():
        med = {
            name: statistics.median(r.get("msgs_per_s", 0.0) for r in results)
            for name, results in by_path.items()
        }
        summary[publisher] = {
            "direct_msgs_per_s": med["direct"],
            "bridge_msgs_per_s": med["bridge"],
            "ratio": med["bridge"] / med["direct"] if med["direct"] else 0.0,
            "lost": sum(r["lost"] for rs in by_path.values() for r in rs),
            "burst_latency_ms": {
                name: _median_latency(results) for name, results in by_path.items()
            },
        }
    return {"runs": runs, "paced": paced, "summary": summary}


def _median_latency(results: list[dict]) -> dict:
    keys = ("p50", "p95", "p99", "max")
    have = [r["latency_ms"] for r in results if "latency_ms" in r]
    return {k: statistics.median(x[k] for x in have) for k in keys} if have else {}


def backlog(work: Path, standin, bridge, n: dict) -> dict:
    """Stop the stand-in, publish, start it, time until everything arrives."""
    count = n["backlog"]
    reps = []
    for rep in range(n["backlog_reps"]):
        first = rep * count
        # One persistent-session counter id for every rep: its queue at the
        # stand-in survives the outage, and no stale session piles up.
        seen = Counter(
            work, standin, REMOTE_TOPIC, client_id="count-backlog", persistent=True
        )
        try:
            seen.wait_subscribed()
            down = time.time_ns()
            standin.stop()
            sent = mosquitto_pub(
                bridge.port,
                DEVICE_TOPIC,
                count,
                size=SIZE,
                client_id=f"pub-backlog-{rep}",
                first=first,
            )
            time.sleep(1.0)  # the bridge has noticed the outage by now
            back = time.time_ns()
            standin.start()
            ready = time.time_ns()
            seen.wait_for(count, timeout=300)
            result = _drain(seen, count, sent, back, ready)
            result["outage_seconds"] = (back - down) / 1e9
        finally:
            seen.close()
            if not standin.running:
                standin.start()
        reps.append(result)
        say(
            f"mqtt: backlog #{rep + 1}: {result['received']:,} of {count:,} in"
            f" {result.get('seconds_to_all', float('nan')):.1f} s after the uplink"
            f" returned (reconnect {result.get('seconds_to_first', 0):.1f} s,"
            f" drain {result.get('drain_msgs_per_s', 0):,.0f} msg/s)"
        )
    return {
        "messages": count,
        "runs": reps,
        "median_seconds_to_all": statistics.median(
            r.get("seconds_to_all", float("nan")) for r in reps
        ),
    }


def _drain(seen: Counter, count, sent, back, ready) -> dict:
    arrivals = seen.arrivals
    result = {
        "sent": count,
        "received": arrivals.distinct,
        "lost": count - arrivals.distinct,
        "duplicates": arrivals.total - arrivals.distinct,
        "publish_seconds": sent.seconds,
        "accept_msgs_per_s": count / sent.seconds,
        "standin_start_seconds": (ready - back) / 1e9,
    }
    if not arrivals.distinct:
        return result
    times = arrivals.arrival_times()
    first, last = times[0], times[-1]
    result.update(
        {
            "seconds_to_first": (first - back) / 1e9,
            "seconds_to_all": (last - back) / 1e9,
            "drain_seconds": (last - first) / 1e9,
            "drain_msgs_per_s": arrivals.distinct / max((last - first) / 1e9, 1e-9),
            # cumulative arrivals, thinned for the plot
            "curve": [
                ((t - back) / 1e9, i + 1)
                for i, t in enumerate(times)
                if i % max(1, len(times) // 200) == 0 or i == len(times) - 1
            ],
        }
    )
    return result
