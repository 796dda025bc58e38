"""The pure path from a spec file to a plan and rendered files.

`validate`, `render` and `up` all go through `prepare`, so they run exactly
the same checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bridge_gen import lint, spec
from bridge_gen.errors import Problem, SpecError
from bridge_gen.plan import CONTAINER, GatewayPlan, Layout, plan
from bridge_gen.render import RenderedFile, render
from bridge_gen.yamlfile import Located


@dataclass(frozen=True)
class Prepared:
    spec: spec.Spec
    plan: GatewayPlan
    warnings: tuple[Problem, ...]
    endpoints: int
    topic_lines: int


def prepare(
    spec_path: Path,
    *,
    files_required: bool,
    network: str | None = None,
    layout: Layout = CONTAINER,
) -> Prepared:
    """Load, check and plan a spec; raises SpecError listing every problem."""
    model, located = spec.load(spec_path)
    findings = lint.lint(model, located, files_required=files_required)
    loopback = _loopback_remotes(model, located, network or model.container.network)
    # It can never connect, so `up` refuses; rendering may be for elsewhere.
    (findings.errors if files_required else findings.warnings).extend(loopback)
    if findings.errors:
        raise SpecError(findings.errors)

    gateway = plan(model, spec_path.resolve().parent, network=network, layout=layout)
    return Prepared(
        spec=model,
        plan=gateway,
        warnings=tuple(findings.warnings),
        endpoints=sum(len(b.endpoints) for b in model.bridges),
        topic_lines=sum(len(b.lines) for b in gateway.bridges),
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


def bundle(prepared: Prepared, out_dir: Path) -> tuple[RenderedFile, ...]:
    return render(prepared.plan, out_dir)
