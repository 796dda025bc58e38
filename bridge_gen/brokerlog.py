"""What the broker says: why a bridge is not connected, and its $SYS state.

The $SYS part is the one way bridge-gen asks a running broker about its
bridges, whether the broker runs in a container or on this host: the same
`mosquitto_sub` command over the broker's local socket, read the same way.

mosquitto logs a failed bridge attempt as OpenSSL error codes, socket errors
or CONNACK refusals, spread over several lines. `diagnose` picks the most
recent line that explains a failure and says what it means for the user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnosis:
    reason: str  # what went wrong, for the user
    line: str  # the log line it was read from
    specific: bool  # False: the log says only that something failed
    permanent: bool = False  # waiting longer will not help


# (pattern, reason, permanent): most telling first. A permanent cause does
# not go away by waiting (a file the broker cannot load), so `up` stops at
# once; the others (the remote down, refusing) may clear on a later try.
_TABLE: tuple[tuple[str, str, bool], ...] = (
    (
        r"key values mismatch",
        "the client key in `tls.key` does not belong to the certificate in `tls.cert`",
        True,
    ),
    (
        r"problems getting password|bad decrypt|bad password",
        "the client key is protected by a passphrase, which a bridge cannot"
        " use: store it decrypted (openssl pkey -in KEY -out KEY.plain)",
        True,
    ),
    (
        r"bridge-gen: cannot read (\S+)",
        "the container cannot read {0}: check that the host file exists"
        " and that the Docker engine may read it",
        True,
    ),
    (
        r"(unable to load|cannot open|error loading)[^\"]*\"?([^\"]*)",
        "mosquitto cannot load a TLS file: {0} {1}",
        True,
    ),
    (
        r"permission denied",
        "permission denied reading a file the broker needs",
        True,
    ),
    (
        r"address already in use",
        "the listener's port is already in use on this host: change"
        " `local.port`, or stop what holds it",
        True,
    ),
    (
        r"certificate verify failed",
        "TLS verification failed: the remote's certificate does not verify"
        " against `tls.ca`, or does not name the host in `address`",
        False,
    ),
    (
        r"alert (unknown ca|bad certificate|certificate required|"
        r"certificate unknown|certificate revoked|access denied|"
        r"certificate expired|decrypt error|handshake failure)",
        "the remote rejected the client certificate (TLS alert: {0})",
        False,
    ),
    (
        r"wrong version number|packet length too long|unexpected eof",
        "TLS handshake failed: is the remote port a TLS port?",
        False,
    ),
    (
        r"connection refused: (.+)",
        "the remote refused the MQTT connection: {0}",
        False,
    ),
    (
        r"error creating bridge: connection refused",
        "connection refused: nothing accepts connections at the remote"
        " address and port",
        False,
    ),
    (
        r"(temporary failure in name resolution|name or service not known|"
        r"unable to resolve|no address associated)",
        "the remote's host name does not resolve ({0})",
        False,
    ),
    # From here on the log names no cause, only that an attempt failed.
    (r"error creating bridge: (.+)", "could not connect to the remote: {0}", False),
    (r"(error: .+)", "mosquitto reported: {0}", False),
)

_RULES = tuple(
    (re.compile(pattern, re.IGNORECASE), reason, permanent)
    for pattern, reason, permanent in _TABLE
)
_FIRST_VAGUE = next(
    i for i, rule in enumerate(_TABLE) if rule[0].startswith("error creating bridge: (")
)


_ATTEMPT = re.compile(r"Connecting bridge \(step \d\) (\S+) \(")


_FIRST_STEP = re.compile(r"^(\S+): Connecting bridge \(step 1\) (\S+) \(")


def attempts(lines: list[str], bridge: str, since: str = "") -> list[str]:
    """When the bridge tried to connect, oldest first, from `since` on.

    Times are the log's own (YYYY-MM-DDTHH:MM:SS, the container's clock, in
    UTC), so they compare as text with Docker's start time.
    """
    found = []
    for line in lines:
        match = _FIRST_STEP.match(line)
        if match and match.group(2) == bridge and match.group(1) >= since:
            found.append(match.group(1))
    return found


def lines_of(lines: list[str], bridge: str) -> list[str]:
    """The lines about one bridge, and those about the broker as a whole.

    mosquitto does not name the bridge in its error lines; they follow the
    "Connecting bridge ... NAME" line of the attempt that failed.
    """
    current = None
    kept = []
    for line in lines:
        found = _ATTEMPT.search(line)
        if found:
            current = found.group(1)
        if current is None or current == bridge:
            kept.append(line)
    return kept


def diagnose(lines: list[str], window: int = 60) -> Diagnosis | None:
    """The most telling failure among the last `window` log lines, if any.

    One failed attempt logs a precise line (an OpenSSL error) and then a
    vague one ("Error creating bridge: Protocol error"); the precise one
    wins, and among equals the newest.
    """
    best: tuple[int, Diagnosis] | None = None
    for line in reversed(lines[-window:]):
        for rank, (pattern, reason, permanent) in enumerate(_RULES):
            found = pattern.search(line)
            if found is None:
                continue
            if best is None or rank < best[0]:
                text = reason.format(*(g.strip(" .") for g in found.groups()))
                text = " ".join(text.split())
                specific = rank < _FIRST_VAGUE
                best = (rank, Diagnosis(text, line.strip(), specific, permanent))
            break
    return best[1] if best else None


STORED = "$SYS/broker/store/messages/count"  # queued and retained alike
RETAINED = "$SYS/broker/retained messages/count"
SYS_TOPICS = ("$SYS/broker/connection/+/state", STORED, RETAINED)


# bridge-gen's own clients on the local socket (status, the health check,
# heartbeats) have ids that start so; no local user may be named so.
OWN_CLIENT_PREFIXES = ("bridge-gen-", "bg-")
_OWN_CLIENT = re.compile(
    rf"Client ((?:{'|'.join(map(re.escape, OWN_CLIENT_PREFIXES))})\S+)"
    r" (disconnected|closed)"
)


def own_line(line: str, socket: str) -> bool:
    """Whether a log line is about bridge-gen's own visits to the broker.

    Each status call, health check and heartbeat logs a connection and a
    disconnection; `logs` leaves them out so the bridge's lines stand out.
    """
    return f"{socket}:" in line or _OWN_CLIENT.search(line) is not None


def sys_command(socket: str) -> list[str]:
    """The mosquitto_sub call that reads the retained $SYS values we use."""
    topics = [arg for topic in SYS_TOPICS for arg in ("-t", topic)]
    return [
        "mosquitto_sub", "--unix", socket, "-i", "bridge-gen-status",
        *topics, "-v", "--retained-only", "-W", "2",
    ]  # fmt: skip


def read_sys(code: int, text: str) -> dict[str, str] | None:
    """Topic to value from that call's output; None if the broker is silent."""
    # 27 is mosquitto_sub's "timed out": an answer with nothing retained.
    if code not in (0, 27) or text.startswith("Error"):
        return None
    # From the right: a topic may hold a space ("retained messages").
    pairs = (line.rsplit(" ", 1) for line in text.splitlines() if " " in line)
    return {topic: value.strip() for topic, value in pairs}


def queued(numbers: dict[str, str] | None) -> int | None:
    """Messages the broker holds but its retained ones: what waits to go."""
    stored = _count((numbers or {}).get(STORED))
    if stored is None:
        return None
    return max(stored - (_count((numbers or {}).get(RETAINED)) or 0), 0)


def _count(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def bridge_states(found: dict[str, str] | None) -> dict[str, bool] | None:
    """Remote client id to connected, from the $SYS values."""
    if found is None:
        return None
    prefix = "$SYS/broker/connection/"
    return {
        topic[len(prefix) :].split("/")[0]: value == "1"
        for topic, value in found.items()
        if topic.startswith(prefix) and topic.endswith("/state")
    }
