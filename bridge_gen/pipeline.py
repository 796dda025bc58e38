"""The pure path from a spec file to a plan and rendered files.

`validate`, `render` and `up` all go through `prepare` (one gateway) or
`prepare_all` (every gateway of a fleet file), so they run exactly the same
checks. A plain spec is a fleet of one to both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from bridge_gen import credentials, fleet, lint, spec
from bridge_gen.errors import BridgeGenError, Problem, SpecError
from bridge_gen.plan import CONTAINER, GatewayPlan, Layout, plan
from bridge_gen.render import BUNDLE, RenderedFile, render
from bridge_gen.yamlfile import Located, load_file


@dataclass(frozen=True)
class Prepared:
    spec: spec.Spec
    plan: GatewayPlan
    warnings: tuple[Problem, ...]
    endpoints: int
    topic_lines: int
    spec_dir: Path
    fleet: str | None = None  # the fleet file's name, for a fleet's gateway


@dataclass(frozen=True)
class Gateways:
    """Every gateway of a file; `fleet` is None for a plain spec."""

    fleet: str | None
    gateways: tuple[Prepared, ...]
    warnings: tuple[Problem, ...]


@dataclass(frozen=True)
class _Source:
    fleet: str | None
    members: list[fleet.Member]
    problems: list[Problem]  # what the loader found: a duplicate key


@dataclass(frozen=True)
class _Options:
    files_required: bool  # certificate files must exist: the bridge starts
    passwords_required: bool  # passwords must be readable: they are written
    network: str | None
    layout: Layout


def prepare(
    spec_path: Path,
    *,
    files_required: bool,
    passwords_required: bool | None = None,
    network: str | None = None,
    layout: Layout = CONTAINER,
    gateway: str | None = None,
) -> Prepared:
    """Load, check and plan one gateway; raises SpecError listing every problem.

    From a fleet file, the gateway named (required when it holds several);
    a plain spec takes a name too, when it is that spec's gateway. Other
    gateways of the fleet are not checked. `passwords_required` defaults to
    `files_required`; `render` needs the passwords but not the certificates.
    """
    source = _read(spec_path)
    member = fleet.choose(
        source.members, gateway, str(spec_path), fleet=source.fleet is not None
    )
    required = files_required if passwords_required is None else passwords_required
    options = _Options(files_required, required, network, layout)
    return _checked(spec_path, source, [member], options).gateways[0]


def prepare_all(
    spec_path: Path,
    *,
    files_required: bool,
    passwords_required: bool | None = None,
    network: str | None = None,
    layout: Layout = CONTAINER,
) -> Gateways:
    """Every gateway of a file, all checked: if one is wrong, none is returned."""
    source = _read(spec_path)
    required = files_required if passwords_required is None else passwords_required
    options = _Options(files_required, required, network, layout)
    return _checked(spec_path, source, source.members, options)


def _read(spec_path: Path) -> _Source:
    located = load_file(spec_path, lenient=True)
    if not fleet.is_fleet(located):
        name = located.data.get("gateway")
        whole = fleet.Member(str(name), spec.Composed.whole(located))
        return _Source(None, [whole], located.problems)
    name, members = fleet.members(located)
    return _Source(name, members, located.problems)


def _checked(
    spec_path: Path,
    source: _Source,
    members: list[fleet.Member],
    options: _Options,
) -> Gateways:
    done: list[Prepared] = []
    reports: list[tuple[str, list[Problem]]] = []
    for member in members:
        try:
            prepared = _one(spec_path, member, source.problems, options)
            prepared = dataclasses.replace(prepared, fleet=source.fleet)
        except SpecError as exc:
            reports.append((member.name, exc.problems))
            continue
        reports.append((member.name, []))
        done.append(prepared)
    file = str(spec_path)
    if len(done) < len(members):
        raise SpecError(fleet.combine(reports, file))
    warnings = [(m.name, list(p.warnings)) for m, p in zip(members, done, strict=True)]
    return Gateways(
        fleet=source.fleet,
        gateways=tuple(done),
        warnings=tuple(fleet.combine(warnings, file)),
    )


def _one(
    spec_path: Path,
    member: fleet.Member,
    loaded: list[Problem],
    options: _Options,
) -> Prepared:
    model, located = spec.check(member.composed, loaded)
    findings = lint.lint(
        model,
        located,
        files_required=options.files_required,
        passwords_required=options.passwords_required,
    )
    network = options.network or model.container.network
    loopback = _loopback_remotes(model, located, network)
    # It can never connect, so `up` refuses; rendering may be for elsewhere.
    (findings.errors if options.files_required else findings.warnings).extend(loopback)
    if findings.errors:
        raise SpecError(findings.errors)

    spec_dir = spec_path.resolve().parent
    gateway = plan(
        model,
        spec_dir,
        network=options.network,
        layout=options.layout,
        lines=findings.lines,
    )
    return Prepared(
        spec=model,
        plan=gateway,
        warnings=tuple(findings.warnings),
        endpoints=sum(len(b.endpoints) for b in model.bridges),
        topic_lines=sum(len(b.lines) for b in gateway.bridges),
        spec_dir=spec_dir,
    )


def _loopback_remotes(
    model: spec.Spec, located: Located, network: str
) -> list[Problem]:
    if network != "bridge":
        return []
    found = []
    for i, bridge in enumerate(model.bridges):
        for address in bridge.address:
            host = address.rpartition(":")[0]
            if host == "localhost" or host.startswith("127."):
                found.append(
                    located.problem(
                        ("bridges", i, "address"),
                        f"{host} in a container on Docker's bridge network is the"
                        " container itself, not this host; set `container.network:"
                        " host` (or pass --network host) to reach a broker here",
                    )
                )
                break
    return found


# Every file a bundle may hold, so that one a spec no longer needs is removed.
FILES = (*(name for name, _, _ in BUNDLE), "passwd")


def bundle(
    prepared: Prepared, out_dir: Path
) -> tuple[GatewayPlan, tuple[RenderedFile, ...]]:
    """The files to write into `out_dir`, and the plan they belong to.

    The hashed password file is written with the others, 0600, and mounted
    from there: the plan returned says so, and is the one to start.
    """
    placed = prepared.plan
    if placed.passwd is not None:
        passwd = dataclasses.replace(
            placed.passwd, host_path=out_dir.resolve() / "passwd"
        )
        placed = dataclasses.replace(placed, passwd=passwd)
    files = render(placed, out_dir)
    if placed.passwd is not None:
        try:
            text = credentials.password_file(
                prepared.spec, prepared.spec_dir, placed.passwd.host_path
            )
        except credentials.Unreadable as exc:
            # Read moments ago by lint; something changed it since.
            raise BridgeGenError(f"local users: {exc}") from None
        files += (RenderedFile("passwd", text, 0o600),)
    return placed, files
