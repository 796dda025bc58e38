"""The command line: parse arguments, call one stage, print, pick an exit code.

This module holds no logic of its own. Errors from every layer arrive here
as BridgeGenError and leave as one line per problem and an exit code:
0 done, 1 the work failed, 2 the input is wrong.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import signal
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from bridge_gen import __version__, output, pipeline, spec
from bridge_gen.errors import EXIT_USAGE, BridgeGenError, SpecError

app = typer.Typer(
    name="bridge-gen",
    help=(
        "Generate, run and watch a Mosquitto bridge that carries local MQTT"
        " traffic to Kaa or any MQTT broker.\n\n"
        "Write a spec (see sample-configs/), check it with `validate`, write"
        " the files with `render`, or build and start the bridge in Docker"
        " with `up`. Exit codes: 0 done, 1 the work failed, 2 bad input,"
        " 3 a bug in bridge-gen, 130 interrupted."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode=None,
)


class Network(str, Enum):
    bridge = "bridge"
    host = "host"


SpecArg = Annotated[
    Path,
    typer.Argument(help="The spec file (YAML).", show_default=False, metavar="SPEC"),
]
NetworkOpt = Annotated[
    Network | None,
    typer.Option(
        help="Container networking; overrides the spec's container.network."
        " `host` shares the host's network (the broker binds local.bind).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
# demo and verify run a bridge here; sandbox.docker_engine makes the choice.
WhereOpt = Annotated[
    bool | None,
    typer.Option(
        "--docker/--local",
        help="Run the bridge in a throwaway container, or with the local"
        " mosquitto binary; by default Docker when an engine answers and"
        " holds the base image.",
        show_default=False,
    ),
]
GatewayOpt = Annotated[
    str | None,
    typer.Option(
        "--gateway",
        "-g",
        help="In a fleet file, the gateway to act on; needed when it holds several.",
        show_default=False,
    ),
]
AllOpt = Annotated[
    str | None,
    typer.Option(
        "--gateway",
        "-g",
        help="In a fleet file, only this gateway; by default all of them.",
        show_default=False,
    ),
]

_state = {"debug": False}


def _seconds(value: float | None) -> float | None:
    """A time option: more than zero and finite (never NaN)."""
    if value is not None and not (0 < value < math.inf):
        raise typer.BadParameter(f"must be a number of seconds above 0, got {value}")
    return value


def boundary(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn bridge-gen's errors into messages and exit codes, in one place."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BridgeGenError as exc:
            for line in exc.lines():
                output.error(line)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            output.error("interrupted")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if _state["debug"]:
                raise
            output.error(
                f"internal error ({type(exc).__name__}: {exc}); this is a bug in"
                " bridge-gen: rerun with --debug for the traceback"
            )
            raise typer.Exit(3) from None

    return run


def _version(value: bool) -> None:
    if value:
        output.say(f"bridge-gen {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks of internal errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    _state["debug"] = debug


def _quiet(path: Path, gateway: str | None) -> pipeline.Prepared:
    # status, logs and down only need names from the spec; its warnings were
    # shown when it was rendered or brought up.
    return pipeline.prepare(path, files_required=False, gateway=gateway)


def _prepare(
    path: Path,
    *,
    files_required: bool,
    passwords_required: bool | None = None,
    network: Network | None = None,
    gateway: str | None = None,
) -> pipeline.Prepared:
    prepared = pipeline.prepare(
        path,
        files_required=files_required,
        passwords_required=passwords_required,
        network=network.value if network else None,
        gateway=gateway,
    )
    for problem in prepared.warnings:
        output.warn(str(problem))
    return prepared


def _prepare_all(
    path: Path,
    gateway: str | None,
    network: Network | None = None,
    *,
    passwords_required: bool = False,
) -> pipeline.Gateways:
    """One gateway when named, else every gateway in the file."""
    if gateway is not None:
        one = _prepare(
            path,
            files_required=False,
            passwords_required=passwords_required,
            network=network,
            gateway=gateway,
        )
        return pipeline.Gateways(one.fleet, (one,), ())
    found = pipeline.prepare_all(
        path,
        files_required=False,
        passwords_required=passwords_required,
        network=network.value if network else None,
    )
    for problem in found.warnings:
        output.warn(str(problem))
    return found


def _summary(prepared: pipeline.Prepared) -> str:
    bridges = len(prepared.plan.bridges)
    return (
        f"gateway {prepared.plan.gateway}: {bridges} bridge(s),"
        f" {prepared.endpoints} endpoint(s), {prepared.topic_lines} topic line(s)"
    )


def _capacity(prepared: pipeline.Prepared) -> str:
    plan = prepared.plan
    qos0 = "QoS 0 too" if plan.queue_qos0 else "QoS 0 dropped"
    return (
        f"while its remote is down, each bridge holds up to {plan.buffer_messages}"
        f" messages ({qos0})"
    )


@app.command()
@boundary
def validate(
    spec_file: SpecArg, as_json: JsonOpt = False, gateway: AllOpt = None
) -> None:
    """Check a spec with every check `render` and `up` run; write nothing.

    Problems are listed all at once as FILE:LINE:COLUMN: FIELD: MESSAGE,
    and the exit code is 2. Certificate files that do not exist yet are
    warnings here and errors for `up`. A fleet file: every gateway, one
    line each, unless --gateway names one.
    """
    if as_json:
        _validate_json(spec_file, gateway)
        return
    for prepared in _prepare_all(spec_file, gateway).gateways:
        output.say(f"{spec_file}: valid; {_summary(prepared)}; {_capacity(prepared)}")


def _validate_json(spec_file: Path, gateway: str | None) -> None:
    # Scripts get JSON on stdout either way; the exit code still says 2.
    try:
        if gateway is None:
            found = pipeline.prepare_all(spec_file, files_required=False)
        else:
            one = pipeline.prepare(spec_file, files_required=False, gateway=gateway)
            found = pipeline.Gateways(one.fleet, (one,), one.warnings)
    except SpecError as exc:
        output.emit_json(
            {"valid": False, "errors": [dataclasses.asdict(p) for p in exc.problems]}
        )
        raise typer.Exit(exc.exit_code) from None
    gateways = [_counts(prepared) for prepared in found.gateways]
    warnings = {"warnings": [dataclasses.asdict(w) for w in found.warnings]}
    if found.fleet is None:
        output.emit_json({"valid": True, **gateways[0], **warnings})
    else:
        output.emit_json(
            {"valid": True, "fleet": found.fleet, "gateways": gateways, **warnings}
        )


def _counts(prepared: pipeline.Prepared) -> dict[str, Any]:
    return {
        "gateway": prepared.plan.gateway,
        "bridges": len(prepared.plan.bridges),
        "endpoints": prepared.endpoints,
        "topic_lines": prepared.topic_lines,
    }


@app.command()
@boundary
def render(
    spec_file: SpecArg,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Folder to write into; default out/GATEWAY. For a fleet file,"
            " each gateway's files go into OUT/GATEWAY (default out/).",
        ),
    ] = None,
    network: NetworkOpt = None,
    gateway: AllOpt = None,
) -> None:
    """Write mosquitto.conf, Dockerfile, docker-compose.yml and the rest.

    The rest: the entrypoint script and .dockerignore, and with local
    users the access list (acl) and the hashed password file (passwd, 0600).

    The files are written all together or not at all, and the same spec
    always gives the same bytes. Certificates and keys are not copied: the
    compose file mounts them read-only from where the spec says they are.
    Run the result with `docker compose up -d` in that folder, or use
    `bridge-gen up`. A fleet file gives one folder per gateway, and
    nothing is written unless every gateway is valid.
    """
    from bridge_gen.writer import write_bundle

    # The password file is written here, so its passwords must be readable.
    found = _prepare_all(spec_file, gateway, network, passwords_required=True)
    for prepared in found.gateways:
        name = prepared.plan.gateway
        # A fleet's --out holds a folder per gateway; a spec's is the folder.
        fleet = found.fleet is not None
        out_dir = (out or Path("out")) / name if fleet else out or Path("out") / name
        _, files = pipeline.bundle(prepared, out_dir)
        for item in write_bundle(files, out_dir, pipeline.FILES):
            output.say(f"{item.action:>9}  {item.path}")
    for prepared in found.gateways:
        output.say(_summary(prepared))


@app.command("plan")
@boundary
def plan_command(
    spec_file: SpecArg, as_json: JsonOpt = False, gateway: AllOpt = None
) -> None:
    """Print every mapping the bridge will carry: local topic, direction, remote.

    One row per mosquitto topic line, in the order mosquitto matches them,
    so you can read what the bridge will do before it runs. For a fleet
    file each row names its gateway too.
    """
    found = _prepare_all(spec_file, gateway)
    fleet = found.fleet is not None
    rows = [
        {
            **({"gateway": prepared.plan.gateway} if fleet else {}),
            "bridge": bridge.name,
            "direction": line.direction,
            "qos": line.qos,
            "local": line.local_topic,
            "remote": line.remote_topic,
            "mapping": line.note,
        }
        for prepared in found.gateways
        for bridge in prepared.plan.bridges
        for line in bridge.lines
    ]
    if as_json:
        output.emit_json(rows)
        return
    columns = ("bridge", "local", "direction", "remote", "qos")
    output.table(
        ("gateway",) * fleet + ("bridge", "local topic", "", "remote topic", "qos"),
        [
            tuple(
                _ARROWS[str(r[c])] if c == "direction" else str(r[c])
                for c in ("gateway",) * fleet + columns
            )
            for r in rows
        ],
    )
    for prepared in found.gateways:
        output.say(_summary(prepared))
        output.say(_capacity(prepared))


_ARROWS = {"out": "->", "in": "<-", "both": "<->"}


@app.command()
@boundary
def schema(
    fleet: Annotated[
        bool, typer.Option("--fleet", help="The schema of a fleet file instead.")
    ] = False,
) -> None:
    """Print the JSON Schema of the spec, for editors and other tools.

    YAML editors with a language server pick it up from a first line like
    `# yaml-language-server: $schema=./bridge-gen.schema.json`.
    """
    from bridge_gen import fleet as fleets

    output.emit_json(fleets.json_schema() if fleet else spec.json_schema())


@app.command()
@boundary
def check(
    spec_file: SpecArg,
    as_json: JsonOpt = False,
    gateway: GatewayOpt = None,
    offline: Annotated[
        bool, typer.Option(help="Do not look up the remotes' host names.")
    ] = False,
    connect: Annotated[
        bool,
        typer.Option(
            help="Connect to each remote with the bridge's own certificate,"
            " as the bridge will."
        ),
    ] = False,
    expiry_days: Annotated[
        int, typer.Option(help="Warn about certificates expiring this soon.")
    ] = 30,
    docker: Annotated[
        bool, typer.Option(help="Ask the Docker engine about itself and the image.")
    ] = True,
) -> None:
    """Find what would stop the gateway before it runs: certificates, setup.

    Reads every certificate and key (they parse, the key matches the
    certificate, CA, validity, expiry), asks whether the Docker engine
    answers and holds the base image, whether the local port is free and
    the remotes' names resolve; with --connect, makes a real TLS and MQTT
    connection to each remote. Exit code 1 when anything is an error.
    """
    from bridge_gen import checks

    prepared = _prepare(spec_file, files_required=False, gateway=gateway)
    found = checks.check(
        prepared.plan,
        offline=offline,
        connect=connect,
        expiry_days=expiry_days,
        docker=docker,
    )
    if as_json:
        output.emit_json([dataclasses.asdict(f) for f in found])
    else:
        output.table(
            ("", "field", "finding"),
            [(f.severity, f.field, f.message) for f in found],
        )
    if any(f.severity == "error" for f in found):
        raise typer.Exit(1)


@app.command()
@boundary
def verify(
    spec_file: SpecArg,
    as_json: JsonOpt = False,
    gateway: GatewayOpt = None,
    docker: WhereOpt = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Instead, send one telemetry request per Kaa bridge to the real"
            " remote and wait for Kaa's answer.",
        ),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            help="Seconds to wait for the bridges, and for the messages.",
            callback=_seconds,
        ),
    ] = 20.0,
) -> None:
    """Prove every mapping end to end here, before the gateway is deployed.

    Runs the rendered configuration against local stand-ins of the remotes
    (throwaway certificates, 127.0.0.1 only) and sends one tagged message
    per topic line and direction: it must arrive on exactly the expected
    topic, once, and never come back. Needs the mosquitto binary. With
    --live, the real remotes with the spec's certificates instead: one
    telemetry request per Kaa bridge, reported accepted, refused or no
    reply. Exit code 1 when anything fails.
    """
    from bridge_gen import verify as verifying

    # Whatever the spec's network, verify's throwaway runs share the host's.
    prepared = _prepare(
        spec_file, files_required=live, network=Network.host, gateway=gateway
    )
    say = output.note if as_json else output.say
    if live:
        mode, answers = verifying.run_live(
            prepared.plan, say, use_docker=docker, timeout=timeout
        )
        _print_results(answers, as_json, _live_rows, _LIVE_HEADERS)
        failed = [a for a in answers if not a.passed]
        asked = [a for a in answers if a.result != "skipped"]
        summary = f"{len(asked) - len(failed)} of {len(asked)} Kaa request(s) accepted"
    else:
        report = verifying.run(prepared.plan, say, use_docker=docker, timeout=timeout)
        mode, answers = report.mode, report.outcomes
        _print_results(answers, as_json, _verify_rows, _VERIFY_HEADERS)
        failed = [a for a in answers if not a.passed]
        summary = f"{len(answers) - len(failed)} of {len(answers)} mapping(s) passed"
    say(f"gateway {prepared.plan.gateway}: {summary} ({mode}){_failed(failed)}")
    if failed:
        raise typer.Exit(1)


_VERIFY_HEADERS = (
    "mapping",
    "dir",
    "source topic",
    "expected topic",
    "result",
    "ms",
    "detail",
)
_LIVE_HEADERS = ("bridge", "endpoint", "request topic", "result", "ms", "detail")


def _verify_rows(outcome: Any) -> tuple[str, ...]:
    return (
        outcome.mapping,
        _ARROWS[outcome.direction],
        outcome.source,
        outcome.expected,
        outcome.result,
        _ms(outcome.latency_ms),
        outcome.detail,
    )


def _live_rows(outcome: Any) -> tuple[str, ...]:
    return (
        outcome.bridge,
        outcome.endpoint,
        outcome.remote,
        outcome.result,
        _ms(outcome.latency_ms),
        outcome.detail,
    )


def _ms(latency: float | None) -> str:
    return "" if latency is None else f"{latency:.1f}"


def _print_results(
    results: Any,
    as_json: bool,
    row: Callable[[Any], tuple[str, ...]],
    headers: tuple[str, ...],
) -> None:
    if as_json:
        output.emit_json([dataclasses.asdict(r) for r in results])
    else:
        output.table(headers, [row(r) for r in results])


def _failed(failed: list[Any]) -> str:
    return f"; {len(failed)} FAILED" if failed else ""


@app.command()
@boundary
def up(
    spec_file: SpecArg,
    network: NetworkOpt = None,
    gateway: GatewayOpt = None,
    timeout: Annotated[
        float,
        typer.Option(
            help="Seconds to wait for every bridge to connect.", callback=_seconds
        ),
    ] = 30.0,
) -> None:
    """Build the image, start the container, wait until the bridges connect.

    Connected means the remote accepted the bridge, as the broker itself
    reports it. When a bridge does not connect in time, the reason read from
    the broker's log is printed and the exit code is 1. Running `up` again
    with the same spec and files changes nothing; after a change it
    replaces the container. Queued messages stay in the data volume.
    """
    from bridge_gen import engine, state
    from bridge_gen.writer import write_bundle

    prepared = _prepare(
        spec_file, files_required=True, network=network, gateway=gateway
    )
    client = engine.engine()
    # The container mounts the password file from here; the other files
    # show what runs.
    folder = state.gateway_dir(prepared.plan.gateway)
    plan, files = pipeline.bundle(prepared, folder)
    write_bundle(files, folder, pipeline.FILES)
    with output.progress(f"bringing up gateway {plan.gateway}") as step:
        action = engine.up(client, plan, files, on_progress=step, timeout=timeout)
    names = ", ".join(b.name for b in prepared.plan.bridges)
    output.say(
        f"gateway {prepared.plan.gateway}: container"
        f" {prepared.plan.container_name} {action}; connected: {names}"
    )


@app.command()
@boundary
def status(
    spec_file: SpecArg,
    as_json: JsonOpt = False,
    gateway: GatewayOpt = None,
    watch: Annotated[
        float | None,
        typer.Option(
            help="Refresh every this many seconds until interrupted (Ctrl-C).",
            show_default=False,
            callback=_seconds,
        ),
    ] = None,
    times: Annotated[
        int | None,
        typer.Option(min=1, help="With --watch, stop after this many reports."),
    ] = None,
    heartbeat_timeout: Annotated[
        int,
        typer.Option(
            min=1,
            # Whole seconds: the probe's mosquitto_sub -W takes no fractions.
            help="Seconds to wait for the answer to a bridge's heartbeat.",
        ),
    ] = 5,
) -> None:
    """Show the container's state and whether each bridge is connected.

    Connected is what the broker itself reports; a bridge that is down gets
    the reason, read from the broker's log or found by connecting to its
    remote. A bridge with a `heartbeat` in the spec also sends one probe
    per report and shows whether the far side confirmed it, the round
    trip, and when data was last confirmed. Also shows how many messages
    the broker holds and whether it had to drop any. Exit code 1 when the
    container is not running or a bridge is down (with --watch: at the
    last report); a heartbeat without answer is a warning.
    """
    import time

    from bridge_gen import engine
    from bridge_gen import heartbeat as heartbeats
    from bridge_gen.errors import UsageError

    if times is not None and watch is None:
        raise UsageError("--times counts the reports of --watch; give --watch too")

    prepared = _quiet(spec_file, gateway)
    client = engine.engine()
    count = 0
    while True:
        report, problem = heartbeats.record(
            engine.status(client, prepared.plan, heartbeat_timeout=heartbeat_timeout)
        )
        if problem:
            output.warn(problem)
        healthy = report.state == "running" and all(b.connected for b in report.bridges)
        warnings = heartbeats.warnings(report, heartbeat_timeout)
        if report.stale:
            warnings.insert(
                0,
                f"the container was made from an earlier version of {spec_file};"
                " run `bridge-gen up` to apply the spec as it is now",
            )
        if as_json:
            # Watching, each report is one line, so a script can read them
            # as they come.
            output.emit_json(
                {**dataclasses.asdict(report), "ok": healthy, "warnings": warnings},
                lines=watch is not None,
            )
        else:
            _print_status(report, heartbeat_timeout)
            for found in warnings:
                output.warn(found)
        count += 1
        if watch is None or (times is not None and count >= times):
            break
        time.sleep(watch)
        # On a terminal the report is redrawn in place; in a file or a
        # pipe, reports follow one another.
        if not as_json and not output.fresh_screen():
            output.say("")
    if not healthy:
        raise typer.Exit(1)


def _print_status(report: Any, heartbeat_timeout: float) -> None:
    health = f" ({report.health})" if report.health else ""
    output.say(
        f"gateway {report.gateway}: container {report.container} {report.state}{health}"
    )
    if report.started_at and report.state == "running":
        output.say(f"  started {report.started_at}, image {report.image}")
    if report.bridges:
        output.table(*_bridge_rows(report.bridges, heartbeat_timeout))
    if report.stored_messages is not None:
        output.say(
            f"buffer: {report.stored_messages} message(s) queued (as of the"
            f" broker's last count, every 10 s); up to {report.buffer_limit}"
            " per bridge while its remote is down"
        )
    if report.dropped_warnings:
        output.warn(
            f"DROPPED: the broker logged {report.dropped_warnings} time(s) that"
            f" the buffer was full, last at {report.last_drop}; raise"
            " buffer.messages"
        )


_STATES = {True: "connected", False: "disconnected", None: "unknown"}


def _bridge_rows(
    bridges: Any, heartbeat_timeout: float
) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The bridge table; heartbeat columns only when a bridge has one."""
    from bridge_gen import heartbeat as heartbeats

    first = ("bridge", "state", "since", "attempts")
    if not any(b.heartbeat for b in bridges):
        rows = [(*_connection(b), b.reason or "") for b in bridges]
        return (*first, "reason"), rows
    headers = (*first, "delivered", "round trip", "heartbeat", "reason")
    rows = []
    for b in bridges:
        beat = b.heartbeat
        delivered = heartbeats.ago(beat.last_confirmed_ago_s) if beat else ""
        trip = (
            f"{beat.round_trip_ms:g} ms"
            if beat and beat.round_trip_ms is not None
            else ""
        )
        result = heartbeats.describe(beat, heartbeat_timeout) if beat else ""
        rows.append((*_connection(b), delivered, trip, result, b.reason or ""))
    return headers, rows


def _connection(bridge: Any) -> tuple[str, str, str, str]:
    since = bridge.since.replace("T", " ") if bridge.since else ""
    return bridge.name, _STATES[bridge.connected], since, str(bridge.attempts)


@app.command()
@boundary
def logs(
    spec_file: SpecArg,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    tail: Annotated[int, typer.Option(help="Lines from the end; 0 for all.")] = 100,
    every: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Also the lines of bridge-gen's own visits (status, health"
            " checks, heartbeats).",
        ),
    ] = False,
    gateway: GatewayOpt = None,
) -> None:
    """Print the bridge container's log (the broker's, with timestamps).

    Each `status` call, health check and heartbeat connects to the broker
    over its local socket and logs it; those lines are left out unless
    --all is given. --tail counts lines before they are left out.
    """
    from bridge_gen import brokerlog, engine

    prepared = _quiet(spec_file, gateway)
    client = engine.engine()
    socket = prepared.plan.layout.socket
    for line in engine.follow_logs(
        client, prepared.plan, tail=tail or "all", follow=follow
    ):
        if every or not brokerlog.own_line(line, socket):
            output.say(line)


@app.command()
@boundary
def down(
    spec_file: SpecArg,
    volumes: Annotated[
        bool,
        typer.Option(
            "--volumes",
            help="Also delete the data volume and the messages queued in it.",
        ),
    ] = False,
    images: Annotated[
        bool,
        typer.Option("--images", help="Also delete the gateway's images."),
    ] = False,
    gateway: GatewayOpt = None,
) -> None:
    """Stop and remove the bridge container; the data volume stays by default.

    The files `up` wrote for the gateway on this host (its password file
    among them) are removed too.
    """
    from bridge_gen import engine, state

    prepared = _quiet(spec_file, gateway)
    done = engine.down(engine.engine(), prepared.plan, volumes=volumes, images=images)
    forgotten = state.forget(prepared.plan.gateway)
    if forgotten is not None:
        done.append(f"removed {forgotten}")
    for line in done or [f"gateway {prepared.plan.gateway} was not running"]:
        output.say(line)


@app.command()
@boundary
def demo(
    docker: WhereOpt = None,
    keep: Annotated[
        Path | None,
        typer.Option(help="Work in this folder and keep it (certificates, spec)."),
    ] = None,
) -> None:
    """Run a whole gateway here against a local stand-in for Kaa.

    Makes throwaway certificates, starts a TLS broker on 127.0.0.1 that
    demands client certificates, brings up a bridge from an embedded spec,
    publishes telemetry as a device would and shows it arriving on its kp1
    topics, carries a reply back, and tears everything down. Needs the
    mosquitto binary; no account and no network beyond this machine.
    """
    from bridge_gen import demo as demos

    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    demos.run(output.say, use_docker=docker, keep=keep)


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Entry point of the `bridge-gen` command."""
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so what verify,
    # demo and up started is stopped and removed on the way out.
    signal.signal(signal.SIGTERM, _stop)
    try:
        app()
    except SystemExit as exc:
        # None is success; a message instead of a code is a usage mistake.
        if exc.code is None or isinstance(exc.code, int):
            raise
        sys.exit(EXIT_USAGE)
