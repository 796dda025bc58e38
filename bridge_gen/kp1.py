"""Kaa's KP1 topics for one endpoint: every route between device and cloud.

Pure functions from a resolved endpoint to routes. Each route renames one
exact topic; a device publishes below its own base topic and receives the
platform's answers and pushes further below it, never on a topic it
publishes to itself, so no mapping echoes a device's message back.

Default local layout, with base B, request id N (when set) and the Kaa
Cloud extension names:

    B                      -> dcx/T/json[/N]            telemetry
    B/status, B/error      <- dcx/T/json[/N]/status|error
    B/metrics/M            -> dcx/T/plain/M             plain metric M
    B/metrics/M/error      <- dcx/T/plain/M/error
    B/metadata/R           -> epmx/T/R[/N]              R: get, update,
    B/metadata/R/status    <- epmx/T/R[/N]/status          update/keys,
    B/metadata/R/error     <- epmx/T/R[/N]/error           delete/keys
    B/commands/C           <- cex/T/command/C/status    command push
    B/commands/C/result    -> cex/T/result/C[/N]        the device's result
    B/commands/C/result/status|error <- cex/T/result/C[/N]/status|error
    B/config               <- cmx/T/config/json/status  configuration push
    B/config/get           -> cmx/T/config/json[/N]     request
    B/config/get/status|error <- cmx/T/config/json[/N]/status|error
    B/config/applied       -> cmx/T/applied/json[/N]    report
    B/config/applied/status|error <- cmx/T/applied/json[/N]/status|error
    B/ota...               as B/config..., with cmx_ota

Without a request id Kaa sends no success answer (`status`) to a request,
so those routes exist only with one; errors come either way.
"""

from __future__ import annotations

from dataclasses import dataclass

EXTENSIONS = {
    "dcx": "dcx",
    "epmx": "epmx",
    "cex": "cex",
    "cmx": "cmx",
    "cmx_ota": "cmx_ota",
}
LAYOUT = {
    "metrics": "metrics",
    "metadata": "metadata",
    "commands": "commands",
    "config": "config",
    "ota": "ota",
}
METADATA_REQUESTS = ("get", "update", "update/keys", "delete/keys")


@dataclass(frozen=True)
class Route:
    direction: str  # out: device to platform; in: platform to device
    local: str
    remote: str
    kind: str


@dataclass(frozen=True)
class Resolved:
    """An endpoint with every default filled in."""

    base: str
    token: str
    app_version: str
    request_id: int | None
    telemetry: bool
    metrics: tuple[str, ...]
    metadata: bool
    commands: tuple[str, ...]
    config: bool
    ota: bool
    extensions: dict[str, str]
    layout: dict[str, str]

    def remote(self, extension: str, *resource: str) -> str:
        instance = self.extensions[extension]
        return "/".join(("kp1", self.app_version, instance, self.token, *resource))

    def local(self, kind: str, *rest: str) -> str:
        return "/".join((self.base, self.layout[kind], *rest))


def routes(e: Resolved) -> list[Route]:
    """Every route of one endpoint, device-to-platform first per kind."""
    out: list[Route] = []
    if e.telemetry:
        out += _request(e, "telemetry", e.base, e.remote("dcx", "json"))
    for metric in e.metrics:
        remote = e.remote("dcx", "plain", metric)
        local = e.local("metrics", metric)
        out.append(Route("out", local, remote, "metrics"))
        out.append(Route("in", f"{local}/error", f"{remote}/error", "metrics"))
    if e.metadata:
        for request in METADATA_REQUESTS:
            local = e.local("metadata", request)
            out += _request(e, "metadata", local, e.remote("epmx", request))
    for command in e.commands:
        out.append(
            Route(
                "in",
                e.local("commands", command),
                e.remote("cex", "command", command, "status"),
                "commands",
            )
        )
        local = e.local("commands", command, "result")
        out += _request(e, "commands", local, e.remote("cex", "result", command))
    if e.config:
        out += _configuration(e, "cmx", "config")
    if e.ota:
        out += _configuration(e, "cmx_ota", "ota")
    return out


def answers(local: str) -> tuple[str, str]:
    """Where Kaa's success and error answers to a request on `local` land."""
    return f"{local}/status", f"{local}/error"


def _request(e: Resolved, kind: str, local: str, remote: str) -> list[Route]:
    """A request up, with its answers back below the local topic."""
    if e.request_id is not None:
        remote = f"{remote}/{e.request_id}"
    status, error = answers(local)
    found = [Route("out", local, remote, kind)]
    if e.request_id is not None:
        found.append(Route("in", status, f"{remote}/status", kind))
    found.append(Route("in", error, f"{remote}/error", kind))
    return found


def _configuration(e: Resolved, extension: str, kind: str) -> list[Route]:
    push = Route(
        "in", e.local(kind), e.remote(extension, "config", "json", "status"), kind
    )
    get = _request(e, kind, e.local(kind, "get"), e.remote(extension, "config", "json"))
    applied = _request(
        e, kind, e.local(kind, "applied"), e.remote(extension, "applied", "json")
    )
    return [push, *get, *applied]
