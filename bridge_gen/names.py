"""Checks for every string that reaches mosquitto.conf, Docker or Kaa.

Each check returns the value unchanged or raises ValueError with a message
that is shown to the user as it is, after the file, line and field path.
mosquitto.conf has no quoting (a value runs to the end of its line) and no
escape for spaces in topic lines, so these checks are what keeps a spec
value from becoming a directive of its own.
"""

from __future__ import annotations

import ipaddress
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
_APP_VERSION = re.compile(r"^[a-z0-9_-]+$")
_GATEWAY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_BRIDGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_MAX_TOPIC_BYTES = 65535


def no_control(value: str) -> str:
    """Refuse line breaks and other control characters anywhere."""
    found = _CONTROL.search(value)
    if found:
        raise ValueError(
            f"may not contain the control character {found.group()!r}"
            " (a line break would start a new mosquitto.conf directive)"
        )
    return value


def single_line(value: str) -> str:
    """A value mosquitto reads to the end of its line: no edge spaces."""
    no_control(value)
    if value != value.strip():
        raise ValueError("may not start or end with spaces (mosquitto trims them)")
    return value


def _topic_text(value: str, what: str) -> str:
    no_control(value)
    if " " in value:
        raise ValueError(
            f"a {what} may not contain spaces (mosquitto 2.0 topic lines cannot"
            " express them)"
        )
    if len(value.encode("utf-8", "surrogatepass")) > _MAX_TOPIC_BYTES:
        raise ValueError(f"a {what} may be at most {_MAX_TOPIC_BYTES} bytes")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"a {what} must be valid UTF-8") from None
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


def topic_prefix(value: str) -> str:
    """A bridge prefix: plain text, concatenated to the pattern as is."""
    _topic_text(value, "prefix")
    for char in "+#":
        if char in value:
            raise ValueError(f"may not contain the wildcard '{char}'")
    return value


def kaa_token(value: str) -> str:
    """A Kaa endpoint token: non-empty, none of `+ # / .`, no spaces."""
    if not value:
        raise ValueError("may not be empty")
    no_control(value)
    for char in "+#/.":
        if char in value:
            raise ValueError(f"may not contain '{char}'")
    if any(c.isspace() for c in value):
        raise ValueError("may not contain spaces")
    return value


def app_version(value: str) -> str:
    """A Kaa application version name: lowercase letters, digits, - and _."""
    if not _APP_VERSION.match(value):
        raise ValueError(
            f"{value!r} is not a Kaa application version name: use lowercase"
            " letters, digits, '-' and '_' (e.g. my-app-v1)"
        )
    return value


def gateway_name(value: str) -> str:
    """Names the image, container and volumes, so Docker's rules apply."""
    if not _GATEWAY.match(value):
        raise ValueError(
            f"{value!r} is not a gateway name: start with a lowercase letter or"
            " digit, then lowercase letters, digits, '-' or '_', 63 at most"
        )
    return value


def bridge_name(value: str) -> str:
    """A mosquitto connection name, also part of client ids."""
    if not _BRIDGE.match(value):
        raise ValueError(
            f"{value!r} is not a bridge name: start with a letter or digit, then"
            " letters, digits, '-' or '_', 64 at most"
        )
    return value


def host(value: str) -> str:
    """A DNS name or an IPv4 address, as mosquitto's `address` takes it."""
    no_control(value)
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        ip = None
    if ip is not None and ip.version == 6:
        raise ValueError("IPv6 addresses are not supported; use a DNS name")
    if ip is None and not _HOSTNAME.match(value):
        raise ValueError(f"{value!r} is not a host name or IPv4 address")
    return value


def host_port(value: str) -> tuple[str, int]:
    """Split `host:port` and check both halves."""
    no_control(value)
    name, sep, port_text = value.rpartition(":")
    if not sep or not name:
        raise ValueError(f"{value!r} must be host:port, e.g. mqtt.example.com:8883")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"the port in {value!r} must be a number from 1 to 65535")
    return host(name), int(port_text)
