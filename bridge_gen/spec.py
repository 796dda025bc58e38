"""The spec: pydantic models, their JSON Schema, and loading a file into them.

The models hold only what the user wrote, checked field by field. Rules
that span fields (a certificate needs a CA, one local topic mapped twice)
live in `lint.py`, and turning the spec into bridge rules in `plan.py`.

The loader hands every scalar over as the text that was written, so the
typing here is YAML 1.2's, not PyYAML's 1.1: `on` and `no` stay text in a
string field, and a number or boolean field takes only what means the same
in both (`1883`, `true`), never `0x50`, `0123` or `yes`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    WithJsonSchema,
)

from bridge_gen import inventory, names
from bridge_gen.errors import Problem, SpecError
from bridge_gen.names import shown
from bridge_gen.yamlfile import Located, Path_, dotted

_DECIMAL = re.compile(r"-?(0|[1-9][0-9]{0,17})")
_TRUE = ("true", "True", "TRUE")
_FALSE = ("false", "False", "FALSE")


def _whole_number(value: Any) -> Any:
    # The loader keeps scalars as text; refuse what int() or YAML 1.1 would
    # reinterpret (`0x2A`, `042` as octal, `1_000`), so no number renders
    # other than as written.
    if not isinstance(value, str) or _DECIMAL.fullmatch(value):
        return value
    if re.fullmatch(r"-?0[0-9]+", value):
        raise ValueError(
            f"must be written without leading zeros, got {shown(value)} (YAML 1.1"
            " would read it as an octal number)"
        )
    if re.fullmatch(r"-?[0-9]{19,}", value):
        raise ValueError(f"is far too large, got {shown(value)}")
    raise ValueError(f"must be a whole number written in decimal, got {shown(value)}")


def _yaml_bool(value: Any) -> Any:
    # YAML 1.2 booleans only: `yes`, `on` or `1` are text in YAML 1.2 and a
    # boolean in YAML 1.1, so a reader of the spec could take either.
    if not isinstance(value, str):
        return value
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"must be true or false, got {shown(value)}")


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def checked_text(check: Any, pattern: str | None = None, **schema: Any) -> Any:
    """A string field checked by `check`; `pattern` is for editors only."""
    extra = {"pattern": f"^{pattern}$", **schema} if pattern else schema
    json_schema = WithJsonSchema({"type": "string", **extra})
    return Annotated[str, AfterValidator(check), json_schema]


def _number(**limits: int) -> Any:
    # Limits before the validator, so they reach the integer schema (and
    # the JSON Schema as minimum/maximum) instead of wrapping it.
    return Annotated[int, Field(**limits), BeforeValidator(_whole_number)]


Port = _number(ge=1, le=65535)
Qos = _number(ge=0, le=2)
RequestId = _number(ge=1)
Keepalive = _number(ge=5, le=65535)
Version = _number(ge=1, le=1)
Bool = Annotated[bool, BeforeValidator(_yaml_bool)]
FilePath = checked_text(names.file_path, minLength=1)
AppVersion = checked_text(names.app_version, names.APP_VERSION)
HostPort = checked_text(names.host_port)
Ipv4 = checked_text(names.ipv4)
TopicName = checked_text(names.topic_name)
TopicFilter = checked_text(names.topic_filter)
TopicPrefix = checked_text(names.topic_prefix)
Token = checked_text(names.kaa_token, r"[^+#/.\s]+")
BridgeName = checked_text(names.bridge_name, names.BRIDGE)
ClientId = checked_text(names.client_id, names.CLIENT_ID)
Image = checked_text(names.image_ref)
Gateway = checked_text(names.gateway_name, names.GATEWAY, maxLength=names.GATEWAY_MAX)
Direction = Literal["in", "out", "both"]
MetricName = checked_text(names.topic_level, r"[^/+#\s]+")
CommandType = checked_text(names.command_type, names.COMMAND_TYPE)
Instance = checked_text(names.instance_name, names.INSTANCE)
SubTopic = checked_text(names.sub_topic)
Memory = checked_text(names.memory, names.MEMORY)
Cpus = checked_text(names.cpus, names.CPUS)
UserName = checked_text(names.user_name, names.USER)
AccessFilter = checked_text(names.access_filter, minLength=1)
EnvName = checked_text(names.env_name, names.ENV_NAME)


def _password(value: Any) -> Any:
    return names.password(value) if isinstance(value, str) else value


# SecretStr keeps the text out of reprs and dumps; the schema tells editors
# that it is a string to write, never to show.
Password = Annotated[
    SecretStr,
    BeforeValidator(_password),
    WithJsonSchema({"type": "string", "minLength": 1, "writeOnly": True}),
]

_ADDRESS_SCHEMA = {
    "anyOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
    ]
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class LocalUser(_Model):
    """Someone allowed on the local broker: a device, a tool or an admin."""

    name: UserName
    password_env: EnvName | None = Field(
        None, description="Environment variable that holds the password"
    )
    password_file: FilePath | None = Field(
        None,
        description="File whose first line is the password, relative to the spec file",
    )
    password: Password | None = Field(
        None,
        description="The password itself; prefer password_env or password_file"
        " so the spec can live in version control",
    )
    admin: Bool = Field(
        False, description="May publish and subscribe on every topic, $SYS too"
    )
    topics: list[AccessFilter] = Field(
        [],
        description="Topic filters this user may publish and subscribe on, besides"
        " the topics of endpoints whose `user` it is",
    )

    @property
    def password_sources(self) -> tuple[str, ...]:
        """The password fields given; one is right, none means certificate only."""
        fields = ("password_env", "password_file", "password")
        return tuple(name for name in fields if getattr(self, name) is not None)


class LocalTls(_Model):
    """A TLS listener for devices; paths are relative to the spec file."""

    port: Port = 8883
    cert: FilePath = Field(description="The gateway's server certificate (PEM)")
    key: FilePath = Field(description="Its private key (PEM)")
    ca: FilePath | None = Field(
        None,
        description="CA of client certificates: when set, every client must"
        " present one, and its common name is its user name",
    )


class Local(_Model):
    """The listeners devices connect to, and who may use them."""

    port: Port = 1883
    plain: Bool = Field(
        True, description="Serve plain MQTT on `port`; false for TLS only"
    )
    bind: Ipv4 = Field(
        "0.0.0.0", description="IPv4 address the listeners are published on"
    )
    allow_anonymous: Bool | None = Field(
        None,
        description="Let clients in without a user name; default true without"
        " `users`, false with them",
    )
    users: list[LocalUser] = []
    tls: LocalTls | None = None

    @property
    def anonymous(self) -> bool:
        if self.allow_anonymous is None:
            return not self.users
        return self.allow_anonymous


class Tls(_Model):
    """Files for TLS to the remote; paths are relative to the spec file."""

    ca: FilePath | None = Field(None, description="CA certificate(s) of the remote")
    cert: FilePath | None = Field(None, description="Client certificate (PEM)")
    key: FilePath | None = Field(None, description="Client private key (PEM)")


class Extensions(_Model):
    """Kaa extension instance names, where they differ from Kaa Cloud's."""

    dcx: Instance | None = Field(None, description="Data collection; dcx")
    epmx: Instance | None = Field(None, description="Metadata; epmx")
    cex: Instance | None = Field(None, description="Commands; cex")
    cmx: Instance | None = Field(None, description="Configuration; cmx")
    cmx_ota: Instance | None = Field(None, description="Software updates; cmx_ota")


class LocalLayout(_Model):
    """Where each kind of mapping lives locally, below an endpoint's topic."""

    metrics: SubTopic | None = Field(None, description="Plain metrics; metrics")
    metadata: SubTopic | None = Field(None, description="Metadata; metadata")
    commands: SubTopic | None = Field(None, description="Commands; commands")
    config: SubTopic | None = Field(None, description="Configuration; config")
    ota: SubTopic | None = Field(None, description="Software updates; ota")


class Kinds(_Model):
    """Which KP1 mappings an endpoint has; unset means inherit."""

    request_id: RequestId | None = Field(
        None,
        description="Added to every request, so Kaa answers on .../<id>/status",
    )
    telemetry: Bool | None = Field(
        None, description="<local> up to dcx json; default true"
    )
    metrics: list[MetricName] | None = Field(
        None, description="<local>/metrics/<name> up to dcx plain/<name>"
    )
    metadata: Bool | None = Field(
        None, description="<local>/metadata/<request> to and from epmx"
    )
    commands: list[CommandType] | None = Field(
        None, description="Command types pushed down to <local>/commands/<type>"
    )
    config: Bool | None = Field(
        None, description="Configuration (cmx) on <local>/config"
    )
    ota: Bool | None = Field(
        None, description="Software updates (cmx_ota) on <local>/ota"
    )


class Endpoint(Kinds):
    """One Kaa endpoint: a device's local topic and its KP1 mappings."""

    local: TopicName = Field(
        description="The exact local topic the device publishes telemetry on;"
        " the base of its other topics"
    )
    token: Token = Field(description="Kaa endpoint token")
    app_version: AppVersion | None = Field(
        None, description="Kaa application version; defaults to the bridge's"
    )
    user: UserName | None = Field(
        None,
        description="The local user (of local.users) allowed on this endpoint's topics",
    )
    extensions: Extensions | None = None
    layout: LocalLayout | None = None


class TopicRule(_Model):
    """A raw mosquitto topic rule, for any MQTT broker."""

    pattern: TopicFilter
    direction: Direction = "out"
    qos: Qos = Field(1, description="MQTT QoS, 0 to 2")
    local_prefix: TopicPrefix = ""
    remote_prefix: TopicPrefix = ""


class Heartbeat(_Model):
    """A probe `status` sends through the bridge to see that data arrives.

    Kaa: `token` of one of the bridge's endpoints, best one kept for
    heartbeats (each probe is one telemetry sample). Any broker: `topic`,
    which the bridge carries out, and `reply`, where its echo comes back.
    """

    token: Token | None = Field(
        None, description="Kaa: an endpoint of this bridge, with a request_id"
    )
    topic: TopicName | None = Field(
        None, description="Any broker: a local topic this bridge carries out"
    )
    reply: TopicName | None = Field(
        None, description="Any broker: the local topic the echo comes back on"
    )


class Bridge(_Model):
    """One connection from the gateway to a remote broker."""

    name: BridgeName
    address: Annotated[
        list[HostPort],
        BeforeValidator(_one_or_many),
        Field(min_length=1),
        WithJsonSchema(_ADDRESS_SCHEMA),
    ] = Field(description="host:port, or a list of them tried in turn")
    tls: Tls | None = None
    app_version: AppVersion | None = Field(
        None, description="Default Kaa application version of its endpoints"
    )
    qos: Qos = Field(1, description="QoS of the endpoint mappings")
    clientid: ClientId | None = Field(
        None, description="Client id at the remote; <gateway>-<name> by default"
    )
    keepalive: Keepalive = Field(60, description="Seconds between pings")
    defaults: Kinds = Field(
        Kinds(), description="Mappings every endpoint of this bridge has"
    )
    extensions: Extensions = Extensions()
    layout: LocalLayout = LocalLayout()
    endpoints: list[Endpoint] = []
    inventory: FilePath | None = Field(
        None,
        description="A CSV file of more endpoints (columns token, local,"
        " app_version, request_id, user), relative to this file",
    )
    topics: list[TopicRule] = []
    heartbeat: Heartbeat | None = Field(
        None, description="What `status` sends to confirm delivery end to end"
    )


class Container(_Model):
    """How the bridge runs in Docker."""

    image: Image = Field("eclipse-mosquitto:2.0", description="Base image")
    network: Literal["bridge", "host"] = "bridge"
    restart: Literal["no", "always", "unless-stopped", "on-failure"] = "unless-stopped"
    memory: Memory | None = Field(
        None,
        description="Memory limit, e.g. 256m or 1g; a full buffer of large"
        " messages needs room",
    )
    cpus: Cpus | None = Field(None, description="CPU limit, e.g. 0.5 or 2")
    pids: _number(ge=16, le=65536) = Field(
        64, description="Most processes and threads the container may run"
    )
    health_interval: _number(ge=1, le=3600) = Field(
        30, description="Seconds between health checks of the local broker"
    )


class Buffer(_Model):
    """What the gateway holds for a remote while the link is down."""

    messages: _number(ge=1000, le=100_000_000) = Field(
        100_000,
        description="Messages queued per bridge while its remote is"
        " unreachable; beyond that the newest are dropped and logged",
    )
    qos0: Literal["queue", "drop"] = Field(
        "queue", description="Queue QoS 0 messages too while the link is down"
    )


class Spec(_Model):
    """A gateway: one local broker bridged to one or more remotes."""

    version: Version = Field(description="Spec format version; 1")
    gateway: Gateway
    local: Local = Local()
    container: Container = Container()
    buffer: Buffer = Buffer()
    bridges: list[Bridge] = Field(min_length=1)


def json_schema() -> dict[str, Any]:
    """The JSON Schema editors use to complete and check specs."""
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "bridge-gen spec"
    return schema


@dataclass
class Composed(Located):
    """A spec put together from parts written in several places.

    A fleet's gateway takes values from the defaults and from its own
    entry, and a bridge's endpoints come from YAML and from a CSV file.
    `origins` maps a path in the composed data to where that part was
    written (the longest prefix wins), so every problem names the place to
    fix; `name` is how a message points at another part.
    """

    origins: dict[Path_, tuple[Located, Path_]] = field(default_factory=dict)

    @classmethod
    def whole(cls, located: Located) -> Composed:
        """A spec written in one file, as it stands."""
        return cls(located.file, located.data, origins={(): (located, ())})

    def source(self, path: Path_) -> tuple[Located, Path_]:
        for n in range(len(path), -1, -1):
            found = self.origins.get(path[:n])
            if found is not None:
                written, base = found
                return written, (*base, *path[n:])
        raise KeyError(path)

    def where(self, path: Path_, *, key: bool = False) -> tuple[int, int] | None:
        written, at = self.source(path)
        return written.where(at, key=key)

    def problem(self, path: Path_, message: str, *, key: bool = False) -> Problem:
        written, at = self.source(path)
        return written.problem(at, message, key=key)

    def name(self, path: Path_) -> str:
        written, at = self.source(path)
        if isinstance(written, inventory.Rows):
            return written.name(at)
        return dotted(at)

    def null_word(self, path: Path_) -> str:
        written, at = self.source(path)
        return written.nulls.get(at, "")

    def is_voided(self, path: Path_) -> bool:
        written, at = self.source(path)
        return at in written.voided


def check(composed: Composed, problems: list[Problem]) -> tuple[Spec, Composed]:
    """Check a spec's data, with its inventories; raises SpecError.

    Every problem is reported at once: those given (what the loader found,
    such as a duplicate key), every field that fails its check, and the
    cross-field errors of `lint` for the bridges whose fields are all valid.
    """
    problems = [*problems, *_add_inventories(composed)]
    model: Spec | None = None
    try:
        model = Spec.model_validate(composed.data)
    except ValidationError as exc:
        # Where the loader put None for a value it refused, it said why.
        problems += [
            field_problem(composed, err)
            for err in exc.errors()
            if not composed.is_voided(tuple(err["loc"]))
        ]
    if problems:
        raise SpecError(problems + _cross_field_errors(model, composed))
    assert model is not None
    return model, composed


def _add_inventories(composed: Composed) -> list[Problem]:
    """Append each bridge's CSV rows to its endpoints, in a copy of the data."""
    data = composed.data
    problems: list[Problem] = []
    for i, bridge in _items(data, "bridges"):
        written = bridge.get("inventory") if isinstance(bridge, dict) else None
        endpoints = bridge.get("endpoints", []) if written is not None else None
        if not isinstance(written, str) or not isinstance(endpoints, list):
            continue  # the models report what is wrong with it
        try:
            names.file_path(written)
        except ValueError:
            continue
        here: Path_ = ("bridges", i)
        try:
            rows, found = inventory.read(
                Path(composed.file).resolve().parent / written,
                str(Path(composed.file).parent / written),
            )
        except inventory.Unreadable as exc:
            problems.append(composed.problem((*here, "inventory"), f"{written} {exc}"))
            continue
        problems += found
        for k in range(len(rows.data)):
            composed.origins[(*here, "endpoints", len(endpoints) + k)] = (rows, (k,))
        # Copies: an anchored bridge may be shared by aliases.
        bridges = list(data["bridges"])
        bridges[i] = {**bridge, "endpoints": [*endpoints, *rows.data]}
        data = {**data, "bridges": bridges}
    composed.data = data
    return problems


def _cross_field_errors(model: Spec | None, located: Composed) -> list[Problem]:
    # Imported here: lint builds on these models, so it imports this module.
    from bridge_gen import lint

    if model is not None:
        return lint.lint(model, located, files_required=False).errors
    data = located.data if isinstance(located.data, dict) else {}
    bridges = []
    problems = []
    for i, item in _items(data, "bridges"):
        try:
            bridges.append((i, Bridge.model_validate(item)))
        except ValidationError:
            # Its rules can still be checked one by one.
            problems += _rule_errors(lint, item, ("bridges", i), located)
    gateway = data.get("gateway")
    try:
        gateway = names.gateway_name(gateway) if isinstance(gateway, str) else None
    except ValueError:
        gateway = None
    return problems + lint.bridge_errors(bridges, gateway, located)


def _items(data: Any, key: str) -> list[tuple[int, Any]]:
    items = data.get(key) if isinstance(data, dict) else None
    return list(enumerate(items)) if isinstance(items, list) else []


def _rule_errors(lint: Any, bridge: Any, here: Path_, located: Located) -> list:
    problems = []
    for j, item in _items(bridge, "topics"):
        try:
            rule = TopicRule.model_validate(item)
        except ValidationError:
            continue
        problems += lint.rule_errors(rule, (*here, "topics", j), located)
    return problems


def field_problem(located: Composed, err: Any, model: Any = None) -> Problem:
    loc: Path_ = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        return located.problem(loc, _unknown_key(loc, model or Spec), key=True)
    if kind == "missing":
        # Placed where the mapping that lacks it is.
        return located.problem(loc, "is required")
    if _is_scalar_address(located, loc):
        # One address written as a scalar: report it where the user wrote it.
        loc = loc[:-1]
    return located.problem(loc, _message(located, loc, err))


def _is_scalar_address(located: Located, loc: Path_) -> bool:
    if len(loc) != 4 or loc[0] != "bridges" or loc[2] != "address":
        return False
    bridges = located.data.get("bridges") if isinstance(located.data, dict) else None
    try:
        return isinstance(bridges[loc[1]]["address"], str)  # type: ignore[index]
    except (TypeError, KeyError, IndexError):
        return False


# Messages for pydantic's error types; {given} is the value as written.
_MESSAGES = {
    "int_parsing": "must be a whole number, got {given}",
    "int_type": "must be a whole number, got {given}",
    "int_from_float": "must be a whole number, got {given}",
    "bool_parsing": "must be true or false, got {given}",
    "bool_type": "must be true or false, got {given}",
    "greater_than_equal": "must be at least {ge}, got {given}",
    "less_than_equal": "must be at most {le}, got {given}",
    "literal_error": "must be {expected}, got {given}",
    "too_short": "must not be empty",
    "model_type": "must be a mapping of keys to values",
    "dict_type": "must be a mapping of keys to values",
    "model_attributes_type": "must be a mapping of keys to values",
    "list_type": "must be a list",
    "string_type": "must be a single value, not a list or mapping",
}


def _message(located: Composed, loc: Path_, err: Any) -> str:
    text = _said(located, loc, err)
    given = err.get("input")
    # Whatever is written near a password may be one, put there by
    # mistake: messages about a user's fields (but its name and topics)
    # never repeat what was written.
    near = tuple(loc[:2]) == ("local", "users") and loc[3:4] not in (
        ("name",),
        ("topics",),
    )
    if near and isinstance(given, str) and given:
        text = text.replace(shown(given), "a value not shown here")
    return text


def _said(located: Composed, loc: Path_, err: Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx", {})
    given = err.get("input")
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if given is None and kind.endswith(("_type", "_parsing")):
        return _no_value(located.null_word(loc))
    if kind in _MESSAGES:
        return _MESSAGES[kind].format(given=_shown_input(given), **ctx)
    return err["msg"].replace("Input should be", "must be")


def _no_value(written: str) -> str:
    if written:
        # `token: null` or `token: ~`: YAML's word for "no value".
        return (
            f'has no value (YAML reads a plain {written} as "no value"; write'
            f' "{written}" in quotes to mean the text)'
        )
    return "has no value"


def _shown_input(given: Any) -> str:
    return shown(given) if isinstance(given, str) else f"a {type(given).__name__}"


def _unknown_key(loc: Path_, model: Any) -> str:
    key = str(loc[-1])
    known = sorted(_fields_at(loc[:-1], model))
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean `{close[0]}`?" if close else ""
    listed = ", ".join(known)
    named = f"`{key}`" if dotted((key,)) == key else shown(key)
    return f"unknown key {named}{hint} (known here: {listed})"


def _fields_at(loc: Path_, model: Any) -> set[str]:
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation
        model = _model_in(annotation)
        if model is None:
            return set()
    return set(model.model_fields)


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None or get_args(annotation):
        for arg in get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
