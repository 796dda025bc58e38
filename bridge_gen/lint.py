"""Rules that span fields: what each field allows alone, together may not.

Errors stop `render` and `up`; warnings are printed and the work goes on.
A missing certificate file is a warning for `render` (the files may be
put in place later) and an error for `up` (the broker would never connect).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bridge_gen.errors import Problem
from bridge_gen.plan import endpoint_lines, rule_line
from bridge_gen.spec import Bridge, Spec
from bridge_gen.yamlfile import Located, Path_, dotted


@dataclass
class Findings:
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def lint(spec: Spec, located: Located, *, files_required: bool) -> Findings:
    """Check the spec as a whole; `files_required` for commands that start it."""
    out = Findings()
    spec_dir = Path(located.file).resolve().parent

    seen: dict[str, int] = {}
    for i, bridge in enumerate(spec.bridges):
        here: Path_ = ("bridges", i)
        if bridge.name in seen:
            out.errors.append(
                located.problem(
                    (*here, "name"),
                    f"bridge name {bridge.name!r} is already used by"
                    f" bridges[{seen[bridge.name]}]",
                )
            )
        seen.setdefault(bridge.name, i)
        _tls(bridge, here, located, spec_dir, files_required, out)
        _endpoints(bridge, here, located, out)
        _rules(bridge, here, located, out)
        _overlaps(bridge, here, located, out)

    if spec.local.allow_anonymous and spec.local.bind not in ("127.0.0.1", "localhost"):
        out.warnings.append(
            located.problem(
                ("local", "allow_anonymous"),
                f"anyone who reaches {spec.local.bind}:{spec.local.port} may publish"
                " and subscribe without a password",
            )
        )
    return out


def _tls(
    bridge: Bridge,
    here: Path_,
    located: Located,
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
        path = spec_dir / value
        if path.is_file():
            continue
        what = "does not exist" if not path.exists() else "is not a file"
        problem = located.problem((*here, "tls", role), f"{value} {what} ({path})")
        (out.errors if files_required else out.warnings).append(problem)


def _endpoints(bridge: Bridge, here: Path_, located: Located, out: Findings) -> None:
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
                    (*here, "endpoints", j),
                    "`app_version` is required (the bridge sets none to inherit)",
                    key=True,
                )
            )


def _rules(bridge: Bridge, here: Path_, located: Located, out: Findings) -> None:
    for j, rule in enumerate(bridge.topics):
        path = (*here, "topics", j)
        if rule.pattern == "":
            if not (rule.local_prefix and rule.remote_prefix):
                out.errors.append(
                    located.problem(
                        (*path, "pattern"),
                        "an empty pattern renames one exact topic and needs both"
                        " `local_prefix` and `remote_prefix`",
                    )
                )
            continue
        for side in ("local_prefix", "remote_prefix"):
            prefix = getattr(rule, side)
            if prefix and not prefix.endswith("/"):
                out.errors.append(
                    located.problem(
                        (*path, side),
                        f"must end with '/' ({prefix!r} + {rule.pattern!r} would"
                        f" give {prefix + rule.pattern!r}); write {prefix + '/'!r}",
                    )
                )
        if rule.direction == "both" and rule.local_prefix == rule.remote_prefix:
            out.errors.append(
                located.problem(
                    (*path, "direction"),
                    "`both` with the same topic on each side echoes every message"
                    " back to where it came from; use an `in` and an `out` rule with"
                    " different prefixes",
                )
            )


def _overlaps(bridge: Bridge, here: Path_, located: Located, out: Findings) -> None:
    # mosquitto uses the first matching line, so a later line for the same
    # local topic and direction would never carry anything.
    first: dict[tuple[str, str], str] = {}
    places: list[tuple[Path_, list]] = [
        ((*here, "endpoints", j), endpoint_lines(bridge, e))
        for j, e in enumerate(bridge.endpoints)
    ]
    places += [
        ((*here, "topics", j), [rule_line(r)]) for j, r in enumerate(bridge.topics)
    ]
    for path, lines in places:
        for line in lines:
            for direction in _directions(line.direction):
                key = (direction, line.local_topic)
                if key in first:
                    out.errors.append(
                        located.problem(
                            path,
                            f"local topic {line.local_topic!r} is already mapped"
                            f" {direction} by {first[key]}; mosquitto would only"
                            " use the first",
                            key=True,
                        )
                    )
                else:
                    first[key] = dotted(path)


def _directions(direction: str) -> tuple[str, ...]:
    return ("in", "out") if direction == "both" else (direction,)
