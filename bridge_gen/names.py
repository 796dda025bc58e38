"""Checks for every string that reaches mosquitto.conf, Docker or Kaa.

Each check returns the value unchanged or raises ValueError with a message
that is shown to the user as it is, after the file, line and field path.
mosquitto.conf has no quoting (a value runs to the end of its line) and no
escape for spaces in topic lines, so these checks are what keeps a spec
value from becoming a directive of its own. Every pattern is matched with
`fullmatch`: `$` in a Python pattern also matches before a final newline.
"""

from __future__ import annotations

import ipaddress
import re

# C0, DEL, C1 (NEL among them) and the Unicode line separators: each either
# ends a line for some reader of our files (mosquitto, YAML, Python) or has
# no business in a name, topic or path.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_WHITESPACE = re.compile(r"\s")
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"

# Lone surrogates cannot be written as UTF-8 at all; noncharacters are
# refused by mosquitto's UTF-8 check and by YAML readers.
_NONCHARS = "".join(chr(p) + chr(p + 1) for p in range(0xFFFE, 0x110000, 0x10000))
_NOT_A_CHAR = re.compile(f"[\ud800-\udfff\ufdd0-\ufdef{_NONCHARS}]")

# Shared with the JSON Schema (spec.py) so editors check what we check.
APP_VERSION = r"[a-z0-9_-]+"
# Docker image path components allow `_`, `__` or runs of `-` between
# lowercase letters and digits; compose project names allow no dots.
GATEWAY = r"[a-z0-9]+(?:(?:__?|-+)[a-z0-9]+)*"
BRIDGE = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
CLIENT_ID = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
USER = r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}"
MEMORY = r"[1-9][0-9]{0,8}[kmg]"
CPUS = r"(?:0|[1-9][0-9]{0,2})(?:\.[0-9]{1,2})?"
ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,127}"
GATEWAY_MAX = 63

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_NUMERIC_HOST = re.compile(r"[0-9.]+")
_PORT = re.compile(r"[1-9][0-9]{0,4}")

_IMAGE_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REGISTRY = (
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?/)"
)
_IMAGE = re.compile(
    rf"{_REGISTRY}?{_IMAGE_PART}(?:/{_IMAGE_PART})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?"
)

MAX_TOPIC_BYTES = 65535
_MAX_PATH_BYTES = 4095
_MAX_NAME_BYTES = 255
_SHOWN = 60


def shown(value: object) -> str:
    """A user's value inside a message: quoted, escaped, never too long."""
    text = str(value)
    if len(text) > _SHOWN:
        return repr(text[: _SHOWN - 3]) + "..."
    return repr(text)


def text(value: str) -> str:
    """Any string we write: no line breaks, controls or non-characters."""
    found = _CONTROL.search(value)
    if found and found.group() in _LINE_BREAKS:
        raise ValueError(
            f"may not contain a line break ({found.group()!r}): it would start"
            " a new line in the rendered files"
        )
    if found:
        raise ValueError(f"may not contain the control character {found.group()!r}")
    found = _NOT_A_CHAR.search(value)
    if found:
        raise ValueError(
            f"may not contain U+{ord(found.group()):04X}: it is not a Unicode"
            " character, and MQTT brokers and YAML readers refuse it"
        )
    return value


def single_line(value: str) -> str:
    """A value mosquitto reads to the end of its line: no edge spaces."""
    text(value)
    if value != value.strip():
        raise ValueError("may not start or end with whitespace (mosquitto trims it)")
    return value


def _topic_text(value: str, what: str) -> str:
    text(value)
    if value == '""':
        raise ValueError(
            'may not be the two characters "" (mosquitto reads that as an empty'
            f" {what})"
        )
    if " " in value:
        raise ValueError(
            f"a {what} may not contain spaces (mosquitto 2.0 topic lines cannot"
            " express them)"
        )
    if value != value.strip():
        # Other Unicode spaces are fine inside, but render refuses a value
        # with any at its edges, as it does for every mosquitto.conf value.
        raise ValueError(f"a {what} may not start or end with whitespace")
    if len(value.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise ValueError(f"a {what} may be at most {MAX_TOPIC_BYTES} bytes")
    return value


def topic_name(value: str) -> str:
    """An exact topic a device publishes on: no wildcards, no `$` start."""
    if not value:
        raise ValueError("may not be empty")
    _topic_text(value, "topic")
    for char in "+#":
        if char in value:
            raise ValueError(
                f"may not contain the wildcard '{char}': an endpoint maps one"
                " exact topic (use a `topics` rule for patterns)"
            )
    if value.startswith("$"):
        raise ValueError("may not start with '$' (reserved for broker topics)")
    return value


def topic_filter(value: str) -> str:
    """An MQTT subscription filter, wildcards where MQTT allows them."""
    _topic_text(value, "topic pattern")
    levels = value.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError("'#' must be a whole level and the last one")
        if "+" in level and level != "+":
            raise ValueError("'+' must be a whole level")
    return value


def access_filter(value: str) -> str:
    """A topic filter of the access list: one word on its line, not empty."""
    if not value:
        raise ValueError("may not be empty")
    text(value)
    if " " in value:
        raise ValueError("may not contain spaces (the access list cannot hold them)")
    return topic_filter(value)


def topic_prefix(value: str) -> str:
    """A bridge prefix: plain text, concatenated to the pattern as is."""
    _topic_text(value, "prefix")
    for char in "+#":
        if char in value:
            raise ValueError(f"may not contain the wildcard '{char}'")
    return value


def kaa_token(value: str) -> str:
    """A Kaa endpoint token: non-empty, none of `+ # / .`, no whitespace."""
    if not value:
        raise ValueError("may not be empty")
    text(value)
    for char in "+#/.":
        if char in value:
            raise ValueError(f"may not contain '{char}'")
    # One regex pass: this runs for every endpoint of an inventory.
    if _WHITESPACE.search(value):
        raise ValueError("may not contain spaces or other whitespace")
    if len(value.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise ValueError(f"may be at most {MAX_TOPIC_BYTES} bytes")
    return value


def _matching(value: str, pattern: str, what: str) -> str:
    """`value` if `pattern` matches all of it; else `what` says the rule."""
    if not re.fullmatch(pattern, value):
        raise ValueError(f"{shown(value)} is not {what}")
    return value


def app_version(value: str) -> str:
    """A Kaa application version name: lowercase letters, digits, - and _."""
    return _matching(
        value,
        APP_VERSION,
        "a Kaa application version name: use lowercase letters, digits, '-'"
        " and '_' (e.g. my-app-v1)",
    )


def gateway_name(value: str) -> str:
    """Names the image, container, volume and compose project."""
    if len(value) > GATEWAY_MAX or not re.fullmatch(GATEWAY, value):
        raise ValueError(
            f"{shown(value)} is not a gateway name: use lowercase letters and"
            " digits joined by '-' or '_' (e.g. plant-a), at most"
            f" {GATEWAY_MAX}; it names Docker images, containers and volumes"
        )
    return value


def bridge_name(value: str) -> str:
    """A mosquitto connection name, also part of paths and client ids."""
    return _matching(
        value,
        BRIDGE,
        "a bridge name: start with a letter or digit, then letters, digits,"
        " '-' or '_', 64 at most",
    )


def client_id(value: str) -> str:
    """An MQTT client id; bridge-gen reads `$SYS/.../<id>/state` by it."""
    return _matching(
        value,
        CLIENT_ID,
        "a client id: start with a letter or digit, then letters, digits, '.',"
        " '-' or '_', 128 at most",
    )


def user_name(value: str) -> str:
    """A local user: a line of the password and ACL files, or a CN."""
    return _matching(
        value,
        USER,
        "a user name: start with a letter or digit, then letters, digits, '.',"
        " '@', '-' or '_', 64 at most",
    )


def memory(value: str) -> str:
    """A memory size as Docker takes it: a number and k, m or g."""
    _matching(value, MEMORY, "a memory size: a whole number and k, m or g (256m)")
    if size_bytes(value) < 16 * 1024 * 1024:
        raise ValueError(f"{shown(value)} is too little; the broker needs 16m at least")
    return value


def size_bytes(value: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    return int(value[:-1]) * units[value[-1]]


def cpus(value: str) -> str:
    """A CPU limit: a decimal number of CPUs, more than none."""
    _matching(value, CPUS, "a number of CPUs, e.g. 0.5 or 2")
    if float(value) < 0.01:
        raise ValueError("must be more than 0")
    return value


def env_name(value: str) -> str:
    """The name of an environment variable that holds a secret.

    The value is not repeated: a password pasted here by mistake would be.
    """
    if not re.fullmatch(ENV_NAME, value):
        raise ValueError(
            "is not an environment variable name (letters, digits and '_', not"
            " starting with a digit); give the variable's name, not the password"
        )
    return value


_MAX_PASSWORD_BYTES = 65535  # the most an MQTT CONNECT can carry


def password(value: str) -> str:
    """A password: hashed before it is written. Messages never repeat it."""
    if not value.strip():
        raise ValueError("may not be empty or only spaces")
    if len(value.encode("utf-8", "surrogatepass")) > _MAX_PASSWORD_BYTES:
        raise ValueError(f"is longer than MQTT allows ({_MAX_PASSWORD_BYTES} bytes)")
    return text(value)


def host(value: str) -> str:
    """A DNS name or an IPv4 address, as mosquitto's `address` takes it."""
    text(value)
    if ":" in value:
        raise ValueError(
            f"{shown(value)}: IPv6 addresses are not supported; use a DNS name"
        )
    if _NUMERIC_HOST.fullmatch(value):
        # All digits and dots is never a host name: it must be an address.
        return ipv4(value)
    if len(value) > 253 or not _HOSTNAME.fullmatch(value):
        raise ValueError(f"{shown(value)} is not a host name or IPv4 address")
    return value


def ipv4(value: str) -> str:
    """An IPv4 address in dotted decimal, as Docker publishes ports on."""
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(
            f"{shown(value)} is not an IPv4 address (e.g. 127.0.0.1 or 0.0.0.0)"
        ) from None
    return value


def host_port(value: str) -> str:
    """`host:port`, both halves checked; returns the value as written."""
    text(value)
    name, sep, port_text = value.rpartition(":")
    if not sep or not name:
        raise ValueError(
            f"{shown(value)} must be host:port, e.g. mqtt.example.com:8883"
        )
    port_ok = _PORT.fullmatch(port_text) and int(port_text) <= 65535
    if not port_ok:
        raise ValueError(
            f"the port in {shown(value)} must be a number from 1 to 65535,"
            " without leading zeros"
        )
    host(name)
    return value


def file_path(value: str) -> str:
    """A path to a certificate or key: one line, a real path's length."""
    if not value:
        raise ValueError("may not be empty")
    single_line(value)
    if "$" in value:
        raise ValueError(
            "may not contain '$': docker compose would read it as a variable"
        )
    # Resolving drops a trailing `/`, `.` or `x/..`, so any name in the path
    # may end up last on the line, where mosquitto would trim its spaces.
    if any(part != part.strip() for part in value.split("/")):
        raise ValueError(
            "may not have a file or folder name that starts or ends with"
            " whitespace (mosquitto trims it)"
        )
    encoded = value.encode("utf-8")
    if len(encoded) > _MAX_PATH_BYTES:
        raise ValueError(f"is longer than a path may be ({_MAX_PATH_BYTES} bytes)")
    if any(len(part) > _MAX_NAME_BYTES for part in encoded.split(b"/")):
        raise ValueError(
            f"has a file or folder name longer than {_MAX_NAME_BYTES} bytes"
        )
    return value


def image_ref(value: str) -> str:
    """A Docker image reference for `FROM`: name, optional tag and digest."""
    if len(value) > 255 or not _IMAGE.fullmatch(value):
        raise ValueError(
            f"{shown(value)} is not a Docker image reference (e.g."
            " eclipse-mosquitto:2.0 or registry.local:5000/mosquitto:2.0.20)"
        )
    return value


# Kaa names: command types are alphanumeric in KP1 (Kaa's own examples add
# `_`); extension instance names are service names.
COMMAND_TYPE = r"[A-Za-z0-9_]+"
INSTANCE = r"[a-z0-9](?:[a-z0-9_-]{0,62})"


def command_type(value: str) -> str:
    """A Kaa command type: letters, digits and `_`."""
    return _matching(
        value,
        COMMAND_TYPE,
        "a Kaa command type: use letters, digits and '_' (e.g. reboot,"
        " set_temperature)",
    )


def instance_name(value: str) -> str:
    """A Kaa extension instance name, one level of a kp1 topic."""
    return _matching(
        value,
        INSTANCE,
        "a Kaa extension instance name: lowercase letters, digits, '-' and '_'"
        " (e.g. dcx, my-dcx)",
    )


def topic_level(value: str) -> str:
    """One topic level (a metric name): no `/`, no wildcards, not empty."""
    if not value:
        raise ValueError("may not be empty")
    _topic_text(value, "topic level")
    for char in "/+#":
        if char in value:
            raise ValueError(f"may not contain '{char}' (it is one topic level)")
    return value


def sub_topic(value: str) -> str:
    """A topic below an endpoint's base: levels, no wildcards, no edge `/`."""
    topic_name(value)
    if value.startswith("/") or value.endswith("/") or "//" in value:
        raise ValueError("must be levels joined by single '/', none empty")
    return value
