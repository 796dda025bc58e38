"""The spec: pydantic models, their JSON Schema, and loading a file into them.

The models hold only what the user wrote, checked field by field. Rules
that span fields (a certificate needs a CA, one local topic mapped twice)
live in `lint.py`, and turning the spec into bridge rules in `plan.py`.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from bridge_gen import names
from bridge_gen.errors import Problem, SpecError
from bridge_gen.yamlfile import Located, load_file

_DECIMAL = re.compile(r"^(0|[1-9][0-9]*)$")


def _whole_number(value: Any) -> Any:
    # The loader keeps scalars as text; refuse what int() would reinterpret
    # (`0x2A`, `042`, `1_000`) so no number renders other than as written.
    if isinstance(value, str) and not _DECIMAL.match(value):
        raise ValueError(f"must be a whole number written in decimal, got {value!r}")
    return value


def _host_port(value: str) -> str:
    names.host_port(value)
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Number = Annotated[int, BeforeValidator(_whole_number)]
Port = Annotated[Number, Field(ge=1, le=65535)]
Qos = Annotated[Number, Field(ge=0, le=2, description="MQTT QoS, 0 to 2")]
Text = Annotated[str, AfterValidator(names.single_line)]
HostPort = Annotated[str, AfterValidator(_host_port)]
Direction = Literal["in", "out", "both"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class Local(_Model):
    """The listener devices connect to."""

    port: Port = 1883
    bind: Annotated[str, AfterValidator(names.host)] = Field(
        "0.0.0.0", description="Interface address the listener binds to"
    )
    allow_anonymous: bool = True


class Tls(_Model):
    """Files for TLS to the remote; paths are relative to the spec file."""

    ca: Text | None = Field(None, description="CA certificate(s) of the remote")
    cert: Text | None = Field(None, description="Client certificate (PEM)")
    key: Text | None = Field(None, description="Client private key (PEM)")


class Endpoint(_Model):
    """One Kaa endpoint: a local topic carried to its KP1 telemetry topic."""

    local: Annotated[str, AfterValidator(names.topic_name)] = Field(
        description="The exact local topic the device publishes on"
    )
    token: Annotated[str, AfterValidator(names.kaa_token)]
    app_version: Annotated[str, AfterValidator(names.app_version)] | None = Field(
        None, description="Kaa application version; defaults to the bridge's"
    )
    request_id: Annotated[Number, Field(ge=1)] | None = Field(
        None, description="Adds /<id> so Kaa answers on .../status or .../error"
    )


class TopicRule(_Model):
    """A raw mosquitto topic rule, for any MQTT broker."""

    pattern: Annotated[str, AfterValidator(names.topic_filter)]
    direction: Direction = "out"
    qos: Qos = 1
    local_prefix: Annotated[str, AfterValidator(names.topic_prefix)] = ""
    remote_prefix: Annotated[str, AfterValidator(names.topic_prefix)] = ""


class Bridge(_Model):
    """One connection from the gateway to a remote broker."""

    name: Annotated[str, AfterValidator(names.bridge_name)]
    address: Annotated[
        list[HostPort], BeforeValidator(_one_or_many), Field(min_length=1)
    ] = Field(description="host:port, or a list of them tried in turn")
    tls: Tls | None = None
    app_version: Annotated[str, AfterValidator(names.app_version)] | None = Field(
        None, description="Default Kaa application version of its endpoints"
    )
    qos: Qos = Field(1, description="QoS of the endpoint mappings")
    clientid: Annotated[str, AfterValidator(names.bridge_name)] | None = Field(
        None, description="Client id at the remote; <gateway>-<name> by default"
    )
    keepalive: Annotated[Number, Field(ge=5, le=65535)] = 60
    endpoints: list[Endpoint] = []
    topics: list[TopicRule] = []


class Container(_Model):
    """How the bridge runs in Docker."""

    image: Text = Field("eclipse-mosquitto:2.0", description="Base image")
    network: Literal["bridge", "host"] = "bridge"
    restart: Literal["no", "always", "unless-stopped", "on-failure"] = "unless-stopped"


class Spec(_Model):
    """A gateway: one local broker bridged to one or more remotes."""

    version: Annotated[Number, Field(ge=1, le=1)] = Field(
        description="Spec format version; 1"
    )
    gateway: Annotated[str, AfterValidator(names.gateway_name)]
    local: Local = Local()
    container: Container = Container()
    bridges: list[Bridge] = Field(min_length=1)


def json_schema() -> dict[str, Any]:
    """The JSON Schema editors use to complete and check specs."""
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "bridge-gen spec"
    return schema


def load(path: Path) -> tuple[Spec, Located]:
    """Read a spec file and check every field; raises SpecError."""
    located = load_file(path)
    try:
        spec = Spec.model_validate(located.data)
    except ValidationError as exc:
        raise SpecError([_problem(located, err) for err in exc.errors()]) from None
    return spec, located


def _problem(located: Located, err: Any) -> Problem:
    loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        return located.problem(loc, _unknown_key(loc), key=True)
    if kind == "missing":
        return located.problem(loc[:-1], f"`{loc[-1]}` is required", key=True)
    return located.problem(loc, _message(err))


def _message(err: Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx", {})
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"must be a whole number, got {err['input']!r}"
    if kind == "bool_parsing":
        return f"must be true or false, got {err['input']!r}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}, got {err['input']!r}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}, got {err['input']!r}"
    if kind == "too_short":
        return "must not be empty"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "must be a mapping of keys to values"
    if kind == "list_type":
        return "must be a list"
    if kind == "string_type":
        return "must be a single value, not a list or mapping"
    return err["msg"].replace("Input should be", "must be")


def _unknown_key(loc: tuple[Any, ...]) -> str:
    key = str(loc[-1])
    known = sorted(_fields_at(loc[:-1]))
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean `{close[0]}`?" if close else ""
    listed = ", ".join(known)
    return f"unknown key `{key}`{hint} (known here: {listed})"


def _fields_at(loc: tuple[Any, ...]) -> set[str]:
    model: Any = Spec
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
