"""A fleet file: shared defaults and a list of gateways, one spec each.

    version: 1
    fleet: plants                # marks a fleet file, and names it
    defaults:                    # anything a spec holds but `gateway`
      bridges:
        - name: kaa
          address: mqtt.cloud.kaaiot.com:8883
    gateways:
      - gateway: plant-a
        bridges:
          - name: kaa            # merged into the default bridge `kaa`
            endpoints: [...]

A gateway's spec is the defaults with its entry merged over them: mappings
merge key by key, `bridges` merge by `name` (a bridge with a new name is
added after the default ones), and any other value or list in the entry
replaces the default one. The result is checked as a whole spec.

Each part of the result remembers where it was written, so a problem is
reported at that line with that path: `gateways[1].bridges[0].address` in
a gateway's entry, `defaults.bridges[0].address` in the defaults. A problem
in the defaults that only some gateways have (a value one of them fails to
override) says which: `for gateway plant-b: ...`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bridge_gen import names, spec
from bridge_gen.errors import Problem, SpecError, UsageError
from bridge_gen.names import shown
from bridge_gen.yamlfile import Located, Path_

MARKER = "fleet"


def _fleet_name(value: str) -> str:
    # Only a label in what bridge-gen prints, so one easy to type and grep.
    if not re.fullmatch(names.BRIDGE, value):
        raise ValueError(
            f"{shown(value)} is not a fleet name: start with a letter or digit,"
            " then letters, digits, '-' or '_', 64 at most"
        )
    return value


FleetName = spec.checked_text(_fleet_name, names.BRIDGE)


class FleetFile(BaseModel):
    """The top of a fleet file; each gateway is checked as a spec after."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: spec.Version = Field(description="Spec format version; 1")
    fleet: FleetName = Field(description="The fleet's name")
    defaults: dict[str, Any] = Field(
        {}, description="What every gateway has unless its entry says otherwise"
    )
    gateways: list[dict[str, Any]] = Field(
        min_length=1, description="One entry per gateway: `gateway` and overrides"
    )


@dataclass(frozen=True)
class Member:
    """One gateway: its name as written and its spec, composed."""

    name: str
    composed: spec.Composed


def is_fleet(located: Located) -> bool:
    return isinstance(located.data, dict) and MARKER in located.data


def members(located: Located) -> tuple[str, list[Member]]:
    """The fleet's name and its gateways; raises SpecError for the file's shape.

    What is wrong inside a gateway's spec is left to checking that spec.
    """
    whole = spec.Composed.whole(located)
    try:
        top = FleetFile.model_validate(located.data)
    except ValidationError as exc:
        problems = [
            spec.field_problem(whole, err, FleetFile)
            for err in exc.errors()
            if not whole.is_voided(tuple(err["loc"]))
        ]
        raise SpecError(located.problems + problems) from None

    problems = _misplaced(top, whole)
    given = [_name(entry, j) for j, entry in enumerate(top.gateways)]
    for j, name in enumerate(given):
        if name in given[:j]:
            first = given.index(name)
            problems.append(
                whole.problem(
                    ("gateways", j, "gateway"),
                    f"gateway {shown(name)} is already used by gateways[{first}]",
                )
            )
    if problems:
        raise SpecError(located.problems + problems)
    return top.fleet, [
        Member(name, _compose(located, j)) for j, name in enumerate(given)
    ]


def _name(entry: dict[str, Any], j: int) -> str:
    name = entry.get("gateway")
    return name if isinstance(name, str) else f"gateways[{j}]"


def _misplaced(top: FleetFile, whole: spec.Composed) -> list[Problem]:
    found = []
    if "gateway" in top.defaults:
        found.append(
            whole.problem(
                ("defaults", "gateway"),
                "names one gateway; write it in each entry under `gateways`",
                key=True,
            )
        )
    places = [("defaults",)] + [("gateways", j) for j in range(len(top.gateways))]
    for place, part in zip(places, [top.defaults, *top.gateways], strict=True):
        if "version" in part:
            found.append(
                whole.problem(
                    (*place, "version"),
                    "is written once, at the top of the fleet file",
                    key=True,
                )
            )
    return found


def _compose(located: Located, j: int) -> spec.Composed:
    data = located.data
    defaults = _Part(data.get("defaults", {}), ("defaults",))
    entry = _Part(data["gateways"][j], ("gateways", j))
    origins: dict[Path_, Path_] = {("version",): ("version",)}
    merged = _merge(defaults, entry, (), origins)
    return spec.Composed(
        located.file,
        {"version": data["version"], **merged},
        origins={path: (located, at) for path, at in origins.items()},
    )


@dataclass(frozen=True)
class _Part:
    """A value and the path in the fleet file where it was written."""

    value: Any
    at: Path_

    def get(self, key: str | int) -> _Part:
        return _Part(self.value[key], (*self.at, key))


def _merge(base: _Part, over: _Part, here: Path_, origins: dict[Path_, Path_]) -> Any:
    """`over` merged into `base`; records in `origins` where each part is from."""
    # A merged mapping counts as the gateway's: it is what makes it one
    # gateway's, and the values it takes from the defaults say so below.
    origins[here] = over.at
    if isinstance(base.value, dict) and isinstance(over.value, dict):
        return _mapping(base, over, here, origins)
    lists = isinstance(base.value, list) and isinstance(over.value, list)
    if here == ("bridges",) and lists:
        return _bridges(base, over, here, origins)
    return over.value


def _mapping(
    base: _Part, over: _Part, here: Path_, origins: dict[Path_, Path_]
) -> dict[str, Any]:
    out = {}
    for key in {**base.value, **over.value}:
        if key in base.value and key in over.value:
            out[key] = _merge(base.get(key), over.get(key), (*here, key), origins)
            continue
        part = over.get(key) if key in over.value else base.get(key)
        out[key] = part.value
        origins[(*here, key)] = part.at
    return out


def _bridges(
    base: _Part, over: _Part, here: Path_, origins: dict[Path_, Path_]
) -> list[Any]:
    out = list(base.value)
    by_name: dict[str, int] = {}
    for k, bridge in enumerate(base.value):
        origins[(*here, k)] = (*base.at, k)
        name = bridge.get("name") if isinstance(bridge, dict) else None
        if isinstance(name, str):
            by_name.setdefault(name, k)
    for k, bridge in enumerate(over.value):
        name = bridge.get("name") if isinstance(bridge, dict) else None
        # A name given twice in one entry is added the second time, so that
        # the spec check reports the duplicate instead of merging silently.
        at = by_name.pop(name, None) if isinstance(name, str) else None
        if at is None:
            origins[(*here, len(out))] = (*over.at, k)
            out.append(bridge)
        else:
            out[at] = _merge(base.get(at), over.get(k), (*here, at), origins)
    return out


def choose(
    found: list[Member], gateway: str | None, file: str, *, fleet: bool
) -> Member:
    """The gateway asked for; without a name, the only one there is."""
    listed = ", ".join(member.name for member in found)
    if gateway is None:
        if len(found) == 1:
            return found[0]
        raise UsageError(
            f"{file} holds {len(found)} gateways ({listed}); choose one with"
            " --gateway NAME"
        )
    for member in found:
        if member.name == gateway:
            return member
    holds = "holds the gateways" if fleet else "is the spec of the gateway"
    raise UsageError(f"no gateway {shown(gateway)} in {file}; it {holds} {listed}")


def combine(reports: list[tuple[str, list[Problem]]], file: str) -> list[Problem]:
    """The problems of several gateways, each once, saying whose it is.

    A problem every gateway has is shown as it is; one in the defaults (or
    a shared inventory) that only some have names them. A gateway's own
    entry is named by its path already.
    """
    whose: dict[Problem, list[str]] = {}
    for name, problems in reports:
        for problem in problems:
            whose.setdefault(problem, []).append(name)
    out = []
    for problem, gateways in whose.items():
        own = problem.file == file and problem.field.startswith("gateways[")
        if own or len(gateways) == len(reports):
            out.append(problem)
            continue
        label = "gateway" if len(gateways) == 1 else "gateways"
        message = f"for {label} {', '.join(gateways)}: {problem.message}"
        out.append(dataclasses.replace(problem, message=message))
    return out


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a fleet file, built from the spec's.

    In the defaults and in an entry every key is optional but a bridge's
    `name` (bridges merge by it), and an entry needs its `gateway`.
    """
    gateway = spec.json_schema()
    defs = gateway.pop("$defs")
    partial = dict(defs)
    partial["Bridge"] = {**defs["Bridge"], "required": ["name"]}
    properties = dict(gateway["properties"])
    properties.pop("version")
    own = properties.pop("gateway")
    part = {"type": "object", "additionalProperties": False}
    return {
        "$schema": gateway["$schema"],
        "title": "bridge-gen fleet",
        "type": "object",
        "additionalProperties": False,
        "required": ["version", "fleet", "gateways"],
        "properties": {
            "version": gateway["properties"]["version"],
            "fleet": FleetFile.model_json_schema()["properties"]["fleet"],
            "defaults": {**part, "properties": properties},
            "gateways": {
                "type": "array",
                "minItems": 1,
                "items": {
                    **part,
                    "required": ["gateway"],
                    "properties": {"gateway": own, **properties},
                },
            },
        },
        "$defs": partial,
    }
