"""`bridge-gen check`: what would stop this gateway, found before it runs.

Each finding has a severity, the spec field it concerns and what to do.
Certificates and keys are read here; the Docker engine, the local port
and the remote's name are asked about; with `connect`, each remote gets a
real TLS and MQTT connection with the bridge's own certificate.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from bridge_gen import certcheck, probe
from bridge_gen.plan import BridgePlan, GatewayPlan


@dataclass(frozen=True)
class Check:
    severity: str  # error, warning or ok
    field: str
    message: str


def check(
    plan: GatewayPlan,
    *,
    offline: bool,
    connect: bool,
    expiry_days: int,
    docker: bool,
) -> list[Check]:
    """Every finding for one gateway; `docker` asks the engine too."""
    found: list[Check] = []
    for i, bridge in enumerate(plan.bridges):
        found += _tls(i, bridge, expiry_days)
        if not offline:
            found += _resolves(i, bridge)
        if connect:
            found += _connects(i, bridge)
    found += _listener_tls(plan, expiry_days)
    found.append(_port(plan))
    if docker:
        found += _engine(plan)
    return found


def _engine(plan: GatewayPlan) -> list[Check]:
    from bridge_gen import engine  # the docker SDK only when asked for
    from bridge_gen.errors import DockerUnavailable

    try:
        client = engine.engine()
    except DockerUnavailable as exc:
        return [Check("error", "docker", str(exc))]
    found = [Check("ok", "docker", "the Docker engine answers")]
    if engine.has_image(client, plan.base_image):
        found.append(Check("ok", "container.image", f"{plan.base_image} is here"))
    else:
        found.append(
            Check(
                "warning",
                "container.image",
                f"{plan.base_image} is not on this engine; `up` will pull it",
            )
        )
    return found


def _tls(i: int, bridge: BridgePlan, expiry_days: int) -> list[Check]:
    if bridge.ca is None:
        return [Check("warning", f"bridges[{i}].tls", "no TLS: traffic is plain")]
    findings = certcheck.check_files(
        bridge.ca.host_path,
        bridge.cert.host_path if bridge.cert else None,
        bridge.key.host_path if bridge.key else None,
        expiry_days=expiry_days,
    )
    return [
        Check(f.severity, f"bridges[{i}].tls.{f.role}", f.message) for f in findings
    ]


def _listener_tls(plan: GatewayPlan, expiry_days: int) -> list[Check]:
    """The devices' TLS listener: its server certificate and the clients' CA."""
    tls = plan.tls
    if tls is None:
        return []
    # Separately: the clients' CA need not be the one that signed the
    # gateway's own certificate.
    findings = certcheck.check_files(
        None, tls.cert.host_path, tls.key.host_path, expiry_days=expiry_days
    )
    if tls.ca is not None:
        findings += certcheck.check_files(
            tls.ca.host_path, None, None, expiry_days=expiry_days
        )
    return [Check(f.severity, f"local.tls.{f.role}", f.message) for f in findings]


def _resolves(i: int, bridge: BridgePlan) -> list[Check]:
    out = []
    for address in bridge.addresses:
        host, _, port = address.rpartition(":")
        try:
            socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            out.append(
                Check(
                    "error",
                    f"bridges[{i}].address",
                    f"{host} does not resolve ({exc.strerror})",
                )
            )
            continue
        out.append(Check("ok", f"bridges[{i}].address", f"{host} resolves"))
    return out


def _connects(i: int, bridge: BridgePlan) -> list[Check]:
    tls = probe.tls_of(bridge)
    out = []
    for address in bridge.addresses:
        host, _, port = address.rpartition(":")
        found = probe.inspect(host, int(port), tls)
        field = f"bridges[{i}].address"
        if found.failure:
            out.append(Check("error", field, f"{address}: {found.failure}"))
            continue
        over = f" over {found.tls_version}" if found.tls_version else " (no TLS)"
        out.append(
            Check("ok", field, f"{address} accepted the bridge's connection{over}")
        )
        out += [Check("ok", field, text) for text in _chain(address, found)]
    return out


def _chain(address: str, found: probe.Probed) -> list[str]:
    """One line per certificate the server presented, its own first."""
    lines = [
        f"{address} presented {cert}" if n == 0 else f"  then {cert}"
        for n, cert in enumerate(found.chain)
    ]
    if lines and not found.whole_chain:
        # Before Python 3.13 the ssl module hands out only the server's
        # own certificate, not the intermediates it sent with it.
        lines[0] += "; only the server's own certificate is readable here"
    return lines


def _port(plan: GatewayPlan) -> Check:
    # Bind where the broker will listen; a running bridge-gen container of
    # this gateway holding it is expected, so this is only a warning.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((plan.bind, plan.port))
        except OSError as exc:
            return Check(
                "warning",
                "local.port",
                f"{plan.bind}:{plan.port} is in use ({exc.strerror}); fine if it"
                " is this gateway's own bridge, else pick another port",
            )
    return Check("ok", "local.port", f"{plan.bind}:{plan.port} is free")
