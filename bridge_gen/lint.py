"""Rules that span fields: what each field allows alone, together may not.

Errors stop `render` and `up`; warnings are printed and the work goes on.
A missing certificate file is a warning for `render` (the files may be
put in place later) and an error for `up` (the broker would never connect).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bridge_gen import access, kp1, plan
from bridge_gen.access import missing_file
from bridge_gen.errors import Problem
from bridge_gen.names import MAX_TOPIC_BYTES, shown
from bridge_gen.plan import TopicLine, endpoint_lines, rule_line
from bridge_gen.spec import Bridge, Composed, Spec, TopicRule
from bridge_gen.yamlfile import Path_


@dataclass
class Findings:
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    # The topic lines checked, per bridge index and in spec order, so that
    # plan need not build them again for a large inventory.
    lines: dict[int, list[TopicLine]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Placed:
    """A topic line and the spec entry it comes from."""

    path: Path_
    line: TopicLine

    @property
    def prefixed(self) -> bool:
        return bool(self.line.local_prefix or self.line.remote_prefix)


def lint(
    spec: Spec,
    located: Composed,
    *,
    files_required: bool,
    passwords_required: bool = False,
) -> Findings:
    """Check the spec as a whole.

    `files_required` for commands that start the bridge, `passwords_required`
    for those that write the password file.
    """
    out = Findings()
    spec_dir = Path(located.file).resolve().parent
    bridges = list(enumerate(spec.bridges))
    _bridges(bridges, spec.gateway, located, spec_dir, files_required, out)
    access.check(
        spec,
        located,
        files_required=files_required,
        passwords_required=passwords_required,
        out=out,
    )
    out.warnings.sort(key=lambda p: (p.line or 0, p.column or 0, p.field))
    return out


def bridge_errors(
    bridges: list[tuple[int, Bridge]], gateway: str | None, located: Composed
) -> list[Problem]:
    """The errors of the bridges that are valid on their own.

    For a spec that has field errors too, so that everything is reported at
    once; certificate files are not looked at (they are warnings then).
    """
    out = Findings()
    spec_dir = Path(located.file).resolve().parent
    _bridges(bridges, gateway, located, spec_dir, False, out)
    return out.errors


def _bridges(
    bridges: list[tuple[int, Bridge]],
    gateway: str | None,
    located: Composed,
    spec_dir: Path,
    files_required: bool,
    out: Findings,
) -> None:
    _unique(bridges, "name", lambda b: b.name, located, out)
    # Two bridges with one client id knock each other off the remote. Equal
    # default ids come from equal names, reported just above.
    if gateway is not None and any(bridge.clientid for _, bridge in bridges):
        _unique(
            bridges,
            "clientid",
            lambda b: b.clientid or f"{gateway}-{b.name}",
            located,
            out,
        )
    for i, bridge in bridges:
        here: Path_ = ("bridges", i)
        _tls(bridge, here, located, spec_dir, files_required, out)
        _endpoints(bridge, here, located, out)
        # Resolved once here: an inventory may hold thousands of endpoints,
        # and three checks below look at each.
        resolved = [plan.resolve(bridge, e) for e in bridge.endpoints]
        _unanswered(bridge, resolved, here, located, out)
        same = _same_endpoints(bridge, resolved, here, located, out)
        _rules(bridge, here, located, out)
        placed = _placed(bridge, resolved, here)
        out.lines[i] = [p.line for p in placed]
        _mappings(placed, located, out, same)
        _heartbeat(bridge, resolved, placed, (*here, "heartbeat"), located, out)


def _unique(
    bridges: list[tuple[int, Bridge]],
    what: str,
    value_of: Callable[[Bridge], str],
    located: Composed,
    out: Findings,
) -> None:
    seen: dict[str, int] = {}
    for i, bridge in bridges:
        value = value_of(bridge)
        if value in seen:
            # An explicit client id is the field to fix; a default one comes
            # from the name.
            field_ = what if what == "name" or bridge.clientid else "name"
            out.errors.append(
                located.problem(
                    ("bridges", i, field_),
                    f"{what} {shown(value)} is already used by"
                    f" {located.name(('bridges', seen[value]))}",
                )
            )
        seen.setdefault(value, i)


def _tls(
    bridge: Bridge,
    here: Path_,
    located: Composed,
    spec_dir: Path,
    files_required: bool,
    out: Findings,
) -> None:
    tls = bridge.tls
    if tls is None:
        return
    if (tls.cert is None) != (tls.key is None):
        given, missing = ("cert", "key") if tls.key is None else ("key", "cert")
        out.errors.append(
            located.problem(
                (*here, "tls", given),
                f"`{given}` needs `{missing}` beside it",
            )
        )
    if tls.cert is not None and tls.ca is None:
        out.errors.append(
            located.problem(
                (*here, "tls", "cert"),
                "a client certificate without `ca` would connect in plain text;"
                " add the remote's CA file as `ca`",
            )
        )
    for role in ("ca", "cert", "key"):
        value = getattr(tls, role)
        if value is None:
            continue
        problem = missing_file(spec_dir / value)
        if problem is None:
            continue
        found = located.problem((*here, "tls", role), f"{value} {problem}")
        (out.errors if files_required else out.warnings).append(found)


def _endpoints(bridge: Bridge, here: Path_, located: Composed, out: Findings) -> None:
    if bridge.endpoints and bridge.tls is None:
        out.warnings.append(
            located.problem(
                (*here, "endpoints"),
                "Kaa endpoints over a bridge without `tls`: tokens and data travel"
                " in plain text",
            )
        )
    for j, endpoint in enumerate(bridge.endpoints):
        if endpoint.app_version is None and bridge.app_version is None:
            out.errors.append(
                located.problem(
                    (*here, "endpoints", j, "app_version"),
                    "is required (the bridge sets no `app_version` to inherit)",
                )
            )


# Kaa answers a request with `status` only when its topic carries an id.
_REQUESTS = ("metadata", "config", "ota")


def _unanswered(
    bridge: Bridge,
    resolved_all: list[kp1.Resolved],
    here: Path_,
    located: Composed,
    out: Findings,
) -> None:
    """Warn where `get` requests would go unanswered for want of a request id.

    Once per endpoint that asks for such a mapping itself, and once at the
    bridge's `defaults` for all those that only inherit it, so that a
    thousand-row inventory gives one warning, not a thousand.
    """
    inherited: set[str] = set()
    count = 0
    for j, (endpoint, resolved) in enumerate(
        zip(bridge.endpoints, resolved_all, strict=True)
    ):
        kinds = [k for k in _REQUESTS if getattr(resolved, k)]
        if resolved.request_id is not None or not kinds:
            continue
        if any(getattr(endpoint, k) for k in kinds):
            path = (*here, "endpoints", j)
            out.warnings.append(located.problem(path, _no_id(kinds), key=True))
        else:
            inherited.update(kinds)
            count += 1
    if count:
        kinds = [k for k in _REQUESTS if k in inherited]
        message = f"{_no_id(kinds)} (for {count} endpoint(s) that inherit it)"
        out.warnings.append(located.problem((*here, "defaults"), message, key=True))


def _no_id(kinds: list[str]) -> str:
    listed = " and ".join(f"`{k}`" for k in kinds)
    return (
        f"{listed} without `request_id`: Kaa sends no success answer to a"
        " request without an id, so the device's `get` requests would never be"
        " answered; set `request_id`"
    )


def _same_endpoints(
    bridge: Bridge,
    resolved_all: list[kp1.Resolved],
    here: Path_,
    located: Composed,
    out: Findings,
) -> set[Path_]:
    """Two endpoints that are one Kaa endpoint: both publish to its topics.

    Their answer lines would collide too, which `_equal_filters` would
    report in terms of one topic; this names the cause instead, once.
    """
    first: dict[tuple, Path_] = {}
    found: set[Path_] = set()
    for j, resolved in enumerate(resolved_all):
        key = (
            resolved.token,
            resolved.app_version,
            tuple(sorted(resolved.extensions.items())),
        )
        path = (*here, "endpoints", j)
        if key not in first:
            first[key] = path
            continue
        found.add(path)
        out.errors.append(
            located.problem(
                (*path, "token"),
                f"token {shown(resolved.token)} with app_version"
                f" {shown(resolved.app_version)} is already used by"
                f" {located.name(first[key])}: both would publish to the same"
                f" topics (kp1/{resolved.app_version}/…/{resolved.token}/…);"
                " give each device its own token",
            )
        )
    return found


def _rules(bridge: Bridge, here: Path_, located: Composed, out: Findings) -> None:
    for j, rule in enumerate(bridge.topics):
        _rule(rule, (*here, "topics", j), located, out)


def rule_errors(rule: TopicRule, path: Path_, located: Composed) -> list[Problem]:
    """The errors of one rule alone, for a bridge with field errors elsewhere."""
    out = Findings()
    _rule(rule, path, located, out)
    return out.errors


def _rule(rule: TopicRule, path: Path_, located: Composed, out: Findings) -> None:
    _both(rule.direction, rule.local_prefix, rule.remote_prefix, path, located, out)
    if rule.pattern == "":
        if not (rule.local_prefix and rule.remote_prefix):
            out.errors.append(
                located.problem(
                    (*path, "pattern"),
                    "an empty pattern renames one exact topic and needs both"
                    " `local_prefix` and `remote_prefix`",
                )
            )
        return
    for side in ("local_prefix", "remote_prefix"):
        prefix = getattr(rule, side)
        if prefix and not prefix.endswith("/"):
            out.errors.append(
                located.problem(
                    (*path, side),
                    f"must end with '/' ({shown(prefix)} + {shown(rule.pattern)}"
                    f" would give {shown(prefix + rule.pattern)}); write"
                    f" {shown(prefix + '/')}",
                )
            )


def _both(
    direction: str,
    local_prefix: str,
    remote_prefix: str,
    path: Path_,
    located: Composed,
    out: Findings,
) -> None:
    # try_private is false and the bridge speaks MQTT 3.1.1, which has no
    # "no local": the remote sends the bridge's own publishes back to it.
    if direction != "both":
        return
    if local_prefix == remote_prefix:
        out.errors.append(
            located.problem(
                (*path, "direction"),
                "`both` with the same topic on each side echoes every message"
                " back to where it came from; use an `in` and an `out` rule with"
                " different prefixes",
            )
        )
        return
    out.warnings.append(
        located.problem(
            (*path, "direction"),
            "`both`: the remote sends each message this bridge publishes back to"
            " it, so local subscribers get it twice; an `in` and an `out` rule"
            " with disjoint prefixes do not",
        )
    )


def _placed(
    bridge: Bridge, resolved_all: list[kp1.Resolved], here: Path_
) -> list[_Placed]:
    placed = [
        _Placed((*here, "endpoints", j), line)
        for j, (endpoint, resolved) in enumerate(
            zip(bridge.endpoints, resolved_all, strict=True)
        )
        for line in endpoint_lines(bridge, endpoint, resolved)
    ]
    placed += [
        _Placed((*here, "topics", j), rule_line(rule))
        for j, rule in enumerate(bridge.topics)
    ]
    return placed


def _mappings(
    placed: list[_Placed], located: Composed, out: Findings, done: set[Path_]
) -> None:
    """Lines no order can make work: equal filters, and renamed-away lines.

    The order itself is `plan.order_lines`' job. What it cannot fix: two
    lines with one filter in one direction (only the first would work), a
    line without prefixes whose every message a line with prefixes renames
    (mosquitto skips lines without prefixes when it looks for the first
    match), and partial overlaps, where each order loses something.
    """
    _lengths(placed, located, out)
    _equal_filters(placed, located, out, done)
    _cycles(placed, located, out)
    # One finding per line, and a partial overlap only on the later line.
    reported: set[Path_] = set()
    broad = [(i, p) for i, p in enumerate(placed) if plan.has_wildcard(p.line)]
    for j, other in enumerate(placed):
        for i, wide in broad:
            if other.path in reported or other.path == wide.path:
                continue
            problem = _shadow(wide, other, located, later=j > i)
            if problem is not None:
                reported.add(other.path)
                kind, found = problem
                (out.errors if kind == "error" else out.warnings).append(found)


def _equal_filters(
    placed: list[_Placed], located: Composed, out: Findings, done: set[Path_]
) -> None:
    first: dict[tuple[str, str], Path_] = {}
    reported = set(done)
    for item in placed:
        for direction in plan.directions(item.line.direction):
            key = (direction, plan.match_filter(item.line, direction))
            if key not in first:
                first[key] = item.path
                continue
            if first[key] == item.path or item.path in reported:
                continue
            reported.add(item.path)
            side = "local" if direction == "out" else "remote"
            out.errors.append(
                located.problem(
                    item.path,
                    f"{side} topic {shown(key[1])} is already mapped {direction}"
                    f" by {located.name(first[key])}; mosquitto would use only one of"
                    " them",
                    key=True,
                )
            )


def _cycles(placed: list[_Placed], located: Composed, out: Findings) -> None:
    # After plan's ordering, a line still behind one that strictly covers it
    # is in a cycle of `both` lines: no order lets all of them work.
    if not any(plan.has_wildcard(p.line) for p in placed):
        return
    ordered = [placed[i] for i in plan.line_order([p.line for p in placed])]
    for i, wide in enumerate(ordered):
        if not plan.has_wildcard(wide.line):
            continue
        for other in ordered[i + 1 :]:
            if not plan.covers_line(wide.line, other.line, strictly=True):
                continue
            out.errors.append(
                located.problem(
                    other.path,
                    f"is shadowed by {located.name(wide.path)}, which catches all its"
                    " messages in one direction, and no order avoids it: these"
                    " `both` rules cover each other in opposite directions;"
                    " split them into `in` and `out` rules",
                    key=True,
                )
            )


def _shadow(
    wide: _Placed, other: _Placed, located: Composed, *, later: bool
) -> tuple[str, Problem] | None:
    shared = set(plan.directions(wide.line.direction)) & set(
        plan.directions(other.line.direction)
    )
    for direction in sorted(shared):
        a = plan.match_filter(wide.line, direction)
        b = plan.match_filter(other.line, direction)
        if a == b or not plan.overlaps(a, b):
            continue
        if plan.covers(a, b) and wide.prefixed and not other.prefixed:
            return "error", located.problem(
                other.path,
                f"never takes effect: every message it would bridge {direction}"
                f" also matches {located.name(wide.path)} ({shown(a)}), whose prefixes"
                " rename it (mosquitto skips lines without prefixes when it"
                " renames)",
                key=True,
            )
        if plan.covers(a, b) or plan.covers(b, a):
            continue  # the order takes care of it
        if later and (wide.prefixed or other.prefixed):
            return "warning", located.problem(
                other.path,
                f"overlaps {located.name(wide.path)} ({shown(a)}) {direction}: a"
                " message on a topic both match is renamed by the first of"
                " them in mosquitto.conf only",
                key=True,
            )
    return None


def _lengths(placed: list[_Placed], located: Composed, out: Findings) -> None:
    # Each field is within the limit alone; prefix + pattern, or the KP1
    # topic built around a token, may not be.
    reported: set[Path_] = set()
    for item in placed:
        sides = (("local", item.line.local_topic), ("remote", item.line.remote_topic))
        for side, topic in sides:
            size = len(topic.encode("utf-8"))
            if size <= MAX_TOPIC_BYTES or item.path in reported:
                continue
            reported.add(item.path)
            out.errors.append(
                located.problem(
                    item.path,
                    f"the {side} topic would be {size} bytes long; MQTT allows"
                    f" {MAX_TOPIC_BYTES}",
                    key=True,
                )
            )


def _heartbeat(
    bridge: Bridge,
    resolved_all: list[kp1.Resolved],
    placed: list[_Placed],
    here: Path_,
    located: Composed,
    out: Findings,
) -> None:
    beat = bridge.heartbeat
    if beat is None:
        return
    echo = beat.topic is not None or beat.reply is not None
    if beat.token is not None and echo:
        message = (
            "`token` (a Kaa endpoint) and `topic`/`reply` (any broker) are two"
            " kinds of heartbeat; keep one"
        )
        out.errors.append(located.problem((*here, "token"), message))
    elif beat.token is not None:
        _kaa_heartbeat(bridge, beat.token, resolved_all, here, located, out)
    elif echo:
        _echo_heartbeat(beat.topic, beat.reply, placed, here, located, out)
    else:
        message = "needs `token` (a Kaa endpoint) or `topic` and `reply` (any broker)"
        out.errors.append(located.problem(here, message))


def _kaa_heartbeat(
    bridge: Bridge,
    token: str,
    resolved_all: list[kp1.Resolved],
    here: Path_,
    located: Composed,
    out: Findings,
) -> None:
    found = [j for j, e in enumerate(bridge.endpoints) if e.token == token]
    if not found:
        message = f"no endpoint of this bridge has the token {shown(token)}"
        out.errors.append(located.problem((*here, "token"), message))
        return
    endpoint = resolved_all[found[0]]
    name = located.name((*here[:-1], "endpoints", found[0]))
    if not endpoint.telemetry:
        why = f"the endpoint at {name} does not carry telemetry, which the probe sends"
    elif endpoint.request_id is None:
        why = (
            f"the endpoint at {name} has no `request_id`: Kaa confirms only"
            " requests that carry one, so no heartbeat would be accepted"
        )
    else:
        return
    out.errors.append(located.problem((*here, "token"), why))


def _echo_heartbeat(
    topic: str | None,
    reply: str | None,
    placed: list[_Placed],
    here: Path_,
    located: Composed,
    out: Findings,
) -> None:
    if topic is None or reply is None:
        given, missing = ("reply", "topic") if topic is None else ("topic", "reply")
        message = f"`{given}` needs `{missing}` beside it"
        out.errors.append(located.problem((*here, given), message))
        return
    if topic == reply:
        message = "must differ from `topic`, or the probe would read its own message"
        out.errors.append(located.problem((*here, "reply"), message))
        return
    problems = {
        "topic": None
        if _carried(placed, "out", topic)
        else f"no rule of this bridge carries {shown(topic)} out to the remote",
        "reply": _reply_problem(placed, reply),
    }
    for key, message in problems.items():
        if message is not None:
            out.errors.append(located.problem((*here, key), message))


def _reply_problem(placed: list[_Placed], reply: str) -> str | None:
    if not _carried(placed, "in", reply):
        return (
            f"nothing this bridge brings in lands on {shown(reply)}; map the"
            " remote topic the echo comes back on to it with an `in` rule"
        )
    if _carried(placed, "out", reply):
        return (
            f"{shown(reply)} is carried out too, so every echo would go back"
            " up to the remote"
        )
    return None


def _carried(placed: list[_Placed], direction: str, topic: str) -> bool:
    """Whether a line of the bridge takes this local topic in that direction."""
    return any(
        direction in plan.directions(p.line.direction)
        and plan.covers(p.line.local_topic, topic)
        for p in placed
    )
