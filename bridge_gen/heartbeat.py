"""Heartbeats: proof that data really crosses a bridge, kept between runs.

A connected bridge only says the remote accepted the connection. The
heartbeat publishes one message on the local broker, which the bridge
carries out like any device's, and waits for the far side's answer: Kaa's
`status` (it took the data) or `error` (it refused it), or, for any other
broker, the message echoed back. The probe runs inside the container over
the broker's unix socket, the admin path that needs no local credentials.

The script below is what runs there (busybox sh and mosquitto's clients
are all the image has). mosquitto_sub flushes only the messages it prints,
not its own notices, so the shell cannot see the SUBACK; a retained message
on a topic of the probe's own tells it instead: it arrives once the
subscriptions are in place, and only then is the probe published.

The time of the last confirmed delivery is kept per gateway in a small file
under the user's state folder, so every `status` call can say how long ago
data last arrived.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from bridge_gen import state
from bridge_gen.plan import HeartbeatPlan

_R = TypeVar("_R", bound=Any)

ACCEPTED = "accepted"  # Kaa answered on .../status
ECHOED = "echoed"  # any broker: the probe came back
REFUSED = "refused"  # Kaa answered on .../error
NO_REPLY = "no reply"
NOT_SENT = "not sent"  # the bridge is down or the broker does not answer
CONFIRMED = (ACCEPTED, ECHOED)

_READY = "ready"
_YEAR_5000 = 95_617_584_000  # seconds since 1970: no later time is kept

# Arguments: socket, client id, probe topic, payload, seconds to wait, the
# topic of a confirmation, of a refusal, and the payload (hex) a
# confirmation must carry ("" for any). Each message is printed as
# "<unix time> <topic> <payload in hex>", so no payload can break a line.
# The marker that says the subscriptions are in place lives below `$`: no
# bridge rule with a wildcard matches it, so it never leaves the gateway.
SCRIPT = r"""
sock=$1 id=$2 topic=$3 payload=$4 wait=$5 yes=$6 no=$7 match=$8
ready="\$bridge-gen/heartbeat/$id"
pub() { mosquitto_pub --unix "$sock" -i "$id-p" -q 1 "$@"; }
pub -r -t "$ready" -m ready || exit 1
sh -c 'echo "$$"; exec "$@"' sh mosquitto_sub --unix "$sock" -i "$id" -q 1 \
  -t "$topic" -t "$yes" -t "$no" -t "$ready" -F '%U %t %x' -W "$wait" |
{
  read -r pid
  while IFS= read -r line; do
    printf '%s\n' "$line"
    case "$line" in
      *" $ready 7265616479") pub -r -n -t "$ready"; pub -t "$topic" -m "$payload" ;;
      *" $yes $match"* | *" $no "*) kill "$pid" ;;
    esac
  done
}
pub -r -n -t "$ready"
"""


@dataclass(frozen=True)
class Probe:
    """One heartbeat: the command to run in the container, and how to read it."""

    plan: HeartbeatPlan
    nonce: str
    payload: str
    timeout: float

    def command(self, socket: str) -> list[str]:
        match = self.payload.encode().hex() if self.plan.kind == "echo" else ""
        refused = self.plan.refused or self.plan.accepted
        wait = str(max(1, math.ceil(self.timeout)))
        return [
            "sh", "-c", SCRIPT, "sh", socket, f"bg-hb-{self.nonce}",
            self.plan.send, self.payload, wait, self.plan.accepted, refused, match,
        ]  # fmt: skip


def probe(plan: HeartbeatPlan, timeout: float) -> Probe:
    nonce = secrets.token_hex(4)
    # A JSON array of one sample, the form every Kaa version takes as
    # telemetry; the nonce tells this probe's message from any other.
    payload = json.dumps([{"bridge_gen_heartbeat": nonce}])
    return Probe(plan, nonce, payload, timeout)


@dataclass(frozen=True)
class Heartbeat:
    """One bridge's heartbeat, as `status` reports it."""

    result: str  # ACCEPTED, ECHOED, REFUSED, NO_REPLY or NOT_SENT
    round_trip_ms: float | None = None
    error: str | None = None  # what the remote said when it refused
    last_confirmed: str | None = None  # ISO 8601, UTC; None: never
    last_confirmed_ago_s: float | None = None

    @property
    def confirmed(self) -> bool:
        return self.result in CONFIRMED


def read(probe: Probe, text: str) -> Heartbeat:
    """What the probe's output says: the answer and the time it took.

    Both times are the subscriber's own stamps inside the container: when
    the broker handed it the probe, and when the answer came.
    """
    sent: float | None = None
    for stamp, topic, body in _messages(text):
        if sent is None:
            if topic == probe.plan.send and probe.nonce in body:
                sent = stamp
            continue
        ms = round((stamp - sent) * 1000, 1)
        if topic == probe.plan.refused:
            return Heartbeat(REFUSED, ms, _refusal(body))
        if topic == probe.plan.accepted and probe.plan.kind == "kaa":
            return Heartbeat(ACCEPTED, ms)
        if topic == probe.plan.accepted and probe.nonce in body:
            return Heartbeat(ECHOED, ms)
    return Heartbeat(NO_REPLY if sent is not None else NOT_SENT)


def _messages(text: str) -> list[tuple[float, str, str]]:
    found = []
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) != 3:
            continue
        try:
            stamp = float(parts[0])
            body = bytes.fromhex(parts[2]).decode("utf-8", "replace")
        except ValueError:
            continue
        found.append((stamp, parts[1], body))
    return found


def _refusal(body: str) -> str:
    # Kaa's error payload: {"statusCode": 400, "reasonPhrase": "..."}.
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and ("statusCode" in data or "reasonPhrase" in data):
        code = data.get("statusCode")
        reason = data.get("reasonPhrase") or ""
        return " ".join(str(p) for p in (code, reason) if p not in (None, ""))
    return " ".join(body.split())[:200] or "no reason given"


# The last confirmed delivery, kept between runs.


def load(gateway: str) -> dict[str, float]:
    """Bridge name to the unix time of its last confirmed delivery."""
    try:
        data = json.loads((state.folder_of(gateway) / "heartbeat.json").read_text())
    except (OSError, ValueError):
        return {}
    bridges = data.get("bridges") if isinstance(data, dict) else None
    if not isinstance(bridges, dict):
        return {}
    # A damaged file gives "never", not a crash: only times a clock shows.
    return {
        name: float(value)
        for name, value in bridges.items()
        if isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value < _YEAR_5000
    }


def save(gateway: str, confirmed: dict[str, float]) -> None:
    """Write the times atomically; the folder 0700 and the file 0600."""
    folder = state.private_folder(gateway)
    text = json.dumps({"version": 1, "bridges": confirmed}, indent=2, sort_keys=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".heartbeat.")
    try:
        # mkstemp creates the file 0600.
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text + "\n")
        os.replace(temporary, folder / "heartbeat.json")
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def remember(
    gateway: str, beats: dict[str, Heartbeat], now: float | None = None
) -> tuple[dict[str, Heartbeat], str | None]:
    """Each heartbeat with its last confirmed delivery; the times are saved.

    Returns the heartbeats and, when the state file cannot be written, why
    (the report stands without it).
    """
    now = time.time() if now is None else now
    known = load(gateway)
    fresh = {name: now for name, beat in beats.items() if beat.confirmed}
    problem = None
    if fresh:
        known.update(fresh)
        try:
            save(gateway, known)
        except OSError as exc:
            where = state.folder_of(gateway)
            problem = f"cannot keep the heartbeat times in {where}: {exc.strerror}"
    dated = {name: _dated(beat, known.get(name), now) for name, beat in beats.items()}
    return dated, problem


def _dated(beat: Heartbeat, last: float | None, now: float) -> Heartbeat:
    if last is None:
        return beat
    stamp = datetime.fromtimestamp(last, timezone.utc).isoformat(timespec="seconds")
    ago = round(max(0.0, now - last), 1)
    return dataclasses.replace(
        beat, last_confirmed=stamp.replace("+00:00", "Z"), last_confirmed_ago_s=ago
    )


def ago(seconds: float | None) -> str:
    """How long ago, for people: now, 42 s ago, 5 min ago, 3 h ago, 2 d ago."""
    if seconds is None:
        return "never"
    if seconds < 1:
        return "now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= 2 * size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def describe(beat: Heartbeat, timeout: float) -> str:
    """The heartbeat's result in a few words."""
    if beat.result == REFUSED:
        return f"refused: {beat.error}"
    if beat.result == NO_REPLY:
        return f"no reply within {timeout:g} s"
    return beat.result


def warning(
    name: str, connected: bool | None, beat: Heartbeat | None, timeout: float
) -> str | None:
    """A bridge the broker calls connected while no data gets through."""
    if not connected or beat is None or beat.confirmed or beat.result == NOT_SENT:
        return None
    return (
        f"bridge {name}: connected but no confirmed delivery"
        f" ({describe(beat, timeout)}); last confirmed"
        f" {ago(beat.last_confirmed_ago_s)}"
    )


def warnings(report: Any, timeout: float) -> list[str]:
    """The bridges of a status report that are connected yet not delivering."""
    found = (warning(b.name, b.connected, b.heartbeat, timeout) for b in report.bridges)
    return [text for text in found if text]


def record(report: _R) -> tuple[_R, str | None]:
    """A status report whose heartbeats carry their last confirmed delivery.

    `report` is engine's Status (taken by its fields, so that this module
    needs no Docker); the times are saved for the next call.
    """
    beats = {b.name: b.heartbeat for b in report.bridges if b.heartbeat is not None}
    if not beats:
        return report, None
    dated, problem = remember(report.gateway, beats)
    bridges = tuple(
        dataclasses.replace(b, heartbeat=dated[b.name]) if b.name in dated else b
        for b in report.bridges
    )
    return dataclasses.replace(report, bridges=bridges), problem
