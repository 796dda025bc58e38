"""Properties: whatever a string field holds, it is refused or carried intact.

Each string field of the spec gets arbitrary text (control characters,
spaces, `#`, quotes, any Unicode). Either the spec is refused with a
SpecError that names that field, or mosquitto.conf read back the way
mosquitto reads it holds exactly the directives of the same spec with a
plain value there, and the text as the value. The reader below follows
MOSQUITTO.md, not bridge-gen's templates.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, get_args, get_origin

import pydantic
import pytest
import yaml
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from bridge_gen import names, passwords, pipeline, plan, render, spec, yamlfile
from bridge_gen.errors import SpecError

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


# Writing any text into YAML, and reading mosquitto.conf back.


def yaml_quote(value: str) -> str:
    """A YAML double-quoted scalar for any text, escaping what YAML refuses."""
    out = []
    for char in value:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif _printable(code):
            out.append(char)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}")
    return '"' + "".join(out) + '"'


def _printable(code: int) -> bool:
    # YAML's printable set, less the line breaks it would fold and the BOM.
    return (
        0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or (0xE000 <= code <= 0xFFFD and code != 0xFEFF)
        or code >= 0x10000
    )


# Directives whose arguments are space-separated tokens; the rest take the
# remainder of the line as one string, trimmed.
TOKENIZED = {"topic", "listener"}

Directive = tuple[str, "str | tuple[str, ...]"]


def parse_conf(text: str) -> list[Directive]:
    """mosquitto.conf as mosquitto 2.0 reads it (see MOSQUITTO.md)."""
    directives: list[Directive] = []
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(" ")
        if name in TOKENIZED:
            tokens = tuple("" if t == '""' else t for t in rest.split(" "))
            directives.append((name, tokens))
        else:
            directives.append((name, rest.strip()))
    return directives


def swap(directive: Directive, plain: str, value: str) -> Directive:
    name, args = directive
    if isinstance(args, tuple):
        return name, tuple(a.replace(plain, value) for a in args)
    return name, args.replace(plain, value)


@given(st.text(st.characters(exclude_categories=())))
def test_yaml_quote_round_trips_through_the_loader(value: str) -> None:
    text = f"k: {yaml_quote(value)}\n".encode("utf-8", "surrogatepass")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        # libyaml refuses a lone surrogate, even as an escape.
        with pytest.raises(SpecError):
            yamlfile.load_bytes(text, "k.yaml")
        return
    assert yamlfile.load_bytes(text, "k.yaml").data == {"k": value}


def test_the_reader_follows_mosquitto_rules() -> None:
    text = (
        "# comment\n\nlistener 1883 0.0.0.0\n"
        "bridge_cafile  /a b/#c  \n"
        'topic "" out 1 a/b c/\n'
        " # not a comment: a space comes first\n"
    )
    assert parse_conf(text) == [
        ("listener", ("1883", "0.0.0.0")),
        ("bridge_cafile", "/a b/#c"),
        ("topic", ("", "out", "1", "a/b", "c/")),
        ("", "# not a comment: a space comes first"),
    ]


# Every string field of the spec.

TEMPLATE = """\
version: 1
gateway: {gateway}
local:
  bind: {bind}
  users:
    - name: {user}
      password: {password}
      topics: [{user_topic}]
    - name: zq-u2
      password_file: {password_file}
    - name: zq-u3
      password_env: {password_env}
      admin: true
  tls:
    cert: {tls_cert}
    key: {tls_key}
    ca: {tls_ca}
container:
  image: {image}
  network: host
  memory: {memory}
  cpus: {cpus}
bridges:
  - name: {name}
    address: {address}
    clientid: {clientid}
    app_version: {app_version}
    tls:
      ca: {ca}
      cert: {cert}
      key: {key}
    defaults:
      metrics: [{defaults_metric}]
      commands: [{defaults_command}]
      metadata: true
      config: true
      ota: true
    extensions:
      dcx: {ext_dcx}
      epmx: {ext_epmx}
      cex: {ext_cex}
      cmx: {ext_cmx}
      cmx_ota: {ext_cmx_ota}
    layout:
      metrics: {lay_metrics}
      metadata: {lay_metadata}
      commands: {lay_commands}
      config: {lay_config}
      ota: {lay_ota}
    endpoints:
      - local: {local}
        token: {token}
        user: {endpoint_user}
        request_id: 7
        metrics: [{metric}]
        commands: [{command}]
        extensions:
          dcx: {ep_dcx}
          epmx: {ep_epmx}
          cex: {ep_cex}
          cmx: {ep_cmx}
          cmx_ota: {ep_cmx_ota}
        layout:
          metrics: {ep_metrics}
          metadata: {ep_metadata}
          commands: {ep_commands}
          config: {ep_config}
          ota: {ep_ota}
      - local: dev/zqc
        token: tok-zqd
        app_version: {endpoint_app_version}
        request_id: 3
    heartbeat:
      token: {hb_token}
    topics:
      - pattern: {pattern}
        local_prefix: {local_prefix}
        remote_prefix: {remote_prefix}
  - name: br-zqh
    address: zqh.example.com:8883
    heartbeat:
      topic: {hb_topic}
      reply: {hb_reply}
    topics:
      - pattern: "#"
        local_prefix: hbz/
        remote_prefix: gwz/
      - pattern: "#"
        direction: in
        local_prefix: hbq/
        remote_prefix: gwz/
"""

# Plain values, each unique in the rendered files so it can be swapped.
PLAIN = {
    "gateway": "gw-zq1",
    "bind": "127.0.0.11",
    "image": "zqimg:2.0",
    "name": "br-zq2",
    "address": "zq3.example.com:8883",
    "clientid": "cid-zq4",
    "app_version": "app-zq5",
    "ca": "certs/zq-ca.crt",
    "cert": "certs/zq-client.crt",
    "key": "certs/zq-client.key",
    "local": "dev/zq6",
    "token": "tok-zq7",
    "endpoint_app_version": "app-zqb",
    "pattern": "pat-zq8/#",
    "local_prefix": "lp-zq9/",
    "remote_prefix": "rp-zqa/",
    "defaults_metric": "xkda",
    "defaults_command": "xkdb",
    "ext_dcx": "xkea",
    "ext_epmx": "xkeb",
    "ext_cex": "xkec",
    "ext_cmx": "xked",
    "ext_cmx_ota": "xkee",
    "lay_metrics": "xkla",
    "lay_metadata": "xklb",
    "lay_commands": "xklc",
    "lay_config": "xkld",
    "lay_ota": "xkle",
    "metric": "xkma",
    "command": "xkmb",
    "ep_dcx": "xkpa",
    "ep_epmx": "xkpb",
    "ep_cex": "xkpc",
    "ep_cmx": "xkpd",
    "ep_cmx_ota": "xkpe",
    "ep_metrics": "xkqa",
    "ep_metadata": "xkqb",
    "ep_commands": "xkqc",
    "ep_config": "xkqd",
    "ep_ota": "xkqe",
    "user": "zq-u1",
    "password": "zq-pw-literal",
    "user_topic": "zq-ut/#",
    "password_file": "zq-pw.txt",
    "password_env": "ZQ_PW_ENV",
    "tls_cert": "certs/zq-server.crt",
    "tls_key": "certs/zq-server.key",
    "tls_ca": "certs/zq-devices.crt",
    "memory": "333m",
    "cpus": "1.25",
    "endpoint_user": "zq-u2",
    # Read by `status` only: a token of an endpoint, topics the rules carry.
    "hb_token": "tok-zqd",
    "hb_topic": "hbz/ping",
    "hb_reply": "hbq/pong",
}
# Fields that never reach a rendered file: the files stay as they are.
STATUS_ONLY = {"hb_token", "hb_topic", "hb_reply"}

FIELD_PATHS = {
    "gateway": "gateway",
    "bind": "local.bind",
    "image": "container.image",
    "name": "bridges[0].name",
    "address": "bridges[0].address",
    "clientid": "bridges[0].clientid",
    "app_version": "bridges[0].app_version",
    "ca": "bridges[0].tls.ca",
    "cert": "bridges[0].tls.cert",
    "key": "bridges[0].tls.key",
    "local": "bridges[0].endpoints[0].local",
    "token": "bridges[0].endpoints[0].token",
    "endpoint_app_version": "bridges[0].endpoints[1].app_version",
    "pattern": "bridges[0].topics[0].pattern",
    "local_prefix": "bridges[0].topics[0].local_prefix",
    "remote_prefix": "bridges[0].topics[0].remote_prefix",
    "defaults_metric": "bridges[0].defaults.metrics[0]",
    "defaults_command": "bridges[0].defaults.commands[0]",
    "ext_dcx": "bridges[0].extensions.dcx",
    "ext_epmx": "bridges[0].extensions.epmx",
    "ext_cex": "bridges[0].extensions.cex",
    "ext_cmx": "bridges[0].extensions.cmx",
    "ext_cmx_ota": "bridges[0].extensions.cmx_ota",
    "lay_metrics": "bridges[0].layout.metrics",
    "lay_metadata": "bridges[0].layout.metadata",
    "lay_commands": "bridges[0].layout.commands",
    "lay_config": "bridges[0].layout.config",
    "lay_ota": "bridges[0].layout.ota",
    "metric": "bridges[0].endpoints[0].metrics[0]",
    "command": "bridges[0].endpoints[0].commands[0]",
    "ep_dcx": "bridges[0].endpoints[0].extensions.dcx",
    "ep_epmx": "bridges[0].endpoints[0].extensions.epmx",
    "ep_cex": "bridges[0].endpoints[0].extensions.cex",
    "ep_cmx": "bridges[0].endpoints[0].extensions.cmx",
    "ep_cmx_ota": "bridges[0].endpoints[0].extensions.cmx_ota",
    "ep_metrics": "bridges[0].endpoints[0].layout.metrics",
    "ep_metadata": "bridges[0].endpoints[0].layout.metadata",
    "ep_commands": "bridges[0].endpoints[0].layout.commands",
    "ep_config": "bridges[0].endpoints[0].layout.config",
    "ep_ota": "bridges[0].endpoints[0].layout.ota",
    "user": "local.users[0].name",
    "password": "local.users[0].password",
    "user_topic": "local.users[0].topics[0]",
    "password_file": "local.users[1].password_file",
    "password_env": "local.users[2].password_env",
    "tls_cert": "local.tls.cert",
    "tls_key": "local.tls.key",
    "tls_ca": "local.tls.ca",
    "memory": "container.memory",
    "cpus": "container.cpus",
    "endpoint_user": "bridges[0].endpoints[0].user",
    "hb_token": "bridges[0].heartbeat.token",
    "hb_topic": "bridges[1].heartbeat.topic",
    "hb_reply": "bridges[1].heartbeat.reply",
}
assert set(FIELD_PATHS) == set(PLAIN)


def line_of(key: str) -> int:
    return next(
        n for n, line in enumerate(TEMPLATE.splitlines(), 1) if f"{{{key}}}" in line
    )


def leaves(annotation: object) -> set[object]:
    """The plain types inside `X | None`, `list[X]` and `Annotated[X, ...]`."""
    if get_origin(annotation) is Annotated:
        return leaves(get_args(annotation)[0])
    if get_origin(annotation) is Literal:
        return {Literal}
    if get_args(annotation):
        return set().union(*(leaves(arg) for arg in get_args(annotation)))
    return {annotation}


def test_every_string_field_of_the_model_is_fuzzed() -> None:
    # A new string field must join PLAIN, or this suite would skip it.
    def strings(model: type, prefix: str) -> set[str]:
        found = set()
        for name, info in model.model_fields.items():
            types = leaves(info.annotation)
            models = [
                t for t in types if isinstance(t, type) and issubclass(t, BaseModel)
            ]
            for inner in models:
                found |= strings(inner, f"{prefix}{name}.")
            if str in types or pydantic.SecretStr in types:
                found.add(prefix + name)
        return found

    fuzzed = {re.sub(r"\[\d\]", "", path) for path in FIELD_PATHS.values()}
    # The loader reads the inventory file; its name never reaches a rendered
    # file, and tests/test_inventory.py covers what it may hold.
    assert strings(spec.Spec, "") - {"bridges.inventory"} == fuzzed


TRICKY = [
    "", " ", "#", "#a", "a#b", "a #b", "on", "no", "null", "~", "0123", "1.10",
    '""', "''", "a b", " a", "a ", "$a", "a$b", "${HOME}", "a\nlistener 9001",
    "a\rb", "a\tb", "\x00", "\x1b[2J", "\u2028", "\x85", "\ufeffa", "a\ufffe",
    "é/ü", "a\u00a0b", "a/+/b", "a/#", "+", "/", "//", "a/", "../x", ":", "a:b",
    "h:1", "h:65536", "[::1]:1", "\\", "'", '"', "a\"b'c", "!x", "&a", "*a",
    "{a: b}", "[a]", "- a", "a: b",
]  # fmt: skip
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
CHARS = "ab/-_.:#+$ \"'\\é\u00a0\u2028\x85\t\n\r\x00\x1b{}[]&*!|>%@`,?~=0"
NEAR = st.text(st.sampled_from(CHARS), max_size=12)
LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
TOPIC_CHARS = st.sampled_from("ab-_/'\"é\u00a0$:.!")

VALID = {
    "gateway": st.from_regex(names.GATEWAY, fullmatch=True).filter(
        lambda s: len(s) <= names.GATEWAY_MAX
    ),
    "bind": st.ip_addresses(v=4).map(str),
    "image": st.sampled_from(
        ["eclipse-mosquitto:2.0", "registry.local:5000/a/b:1.2", "x@sha256:" + "a" * 64]
    ),
    "name": st.from_regex(names.BRIDGE, fullmatch=True),
    "address": st.builds(
        lambda labels, port: ".".join(labels) + f":{port}",
        st.lists(LABEL, min_size=1, max_size=3),
        st.integers(1, 65535),
    ),
    "clientid": st.from_regex(names.CLIENT_ID, fullmatch=True),
    "app_version": st.from_regex(names.APP_VERSION, fullmatch=True),
    "ca": st.text(TOPIC_CHARS | st.just(" ") | st.just("#"), min_size=1),
    "local": st.text(TOPIC_CHARS, min_size=1),
    "token": st.text(st.sampled_from("ab-_'\"é:$!"), min_size=1),
    "pattern": st.lists(st.sampled_from(["a", "+", "é", "'"]), max_size=3).map(
        lambda levels: "/".join([*levels, "#"])
    ),
    "local_prefix": st.text(TOPIC_CHARS).map(lambda s: s + "/"),
}
VALID["cert"] = VALID["key"] = VALID["ca"]
for _key in ("tls_cert", "tls_key", "tls_ca"):
    VALID[_key] = VALID["ca"]
VALID["user"] = VALID["endpoint_user"] = st.from_regex(names.USER, fullmatch=True)
VALID["password"] = st.text(min_size=1)
VALID["user_topic"] = VALID["pattern"]
VALID["password_file"] = st.sampled_from(["zq-pw.txt", "./zq-pw.txt", "missing.txt"])
VALID["password_env"] = st.sampled_from(["ZQ_PW_ENV", "ZQ_UNSET_ENV"])
VALID["memory"] = st.from_regex(names.MEMORY, fullmatch=True)
VALID["cpus"] = st.from_regex(names.CPUS, fullmatch=True)
VALID["remote_prefix"] = VALID["local_prefix"]
VALID["endpoint_app_version"] = VALID["app_version"]
VALID["hb_token"] = st.sampled_from(["tok-zq7", "tok-zqd"])
VALID["hb_topic"] = st.text(TOPIC_CHARS, min_size=1).map(lambda s: "hbz/" + s)
VALID["hb_reply"] = st.text(TOPIC_CHARS, min_size=1).map(lambda s: "hbq/" + s)


def kp1_names() -> set[str]:
    return {"dcx", "epmx", "cex", "cmx", "cmx_ota"}


LEVEL = st.text(st.sampled_from("ab-_'\"é:$!."), min_size=1)
COMMAND = st.from_regex(names.COMMAND_TYPE, fullmatch=True)
INSTANCE = st.from_regex(names.INSTANCE, fullmatch=True)
SUB_TOPIC = st.lists(LEVEL, min_size=1, max_size=3).map("/".join)
for _key in ("defaults_metric", "metric"):
    VALID[_key] = LEVEL
for _key in ("defaults_command", "command"):
    VALID[_key] = COMMAND
for _key in PLAIN:
    if _key.startswith(("ext_", "ep_")) and _key.split("_", 1)[1] in kp1_names():
        VALID[_key] = INSTANCE
    elif _key.startswith(("lay_", "ep_")):
        VALID[_key] = SUB_TOPIC


def values(key: str) -> st.SearchStrategy[str]:
    return st.one_of(ANY_TEXT, NEAR, st.sampled_from(TRICKY), VALID[key])


@dataclass
class Rendered:
    spec_path: Path
    prepared: pipeline.Prepared
    files: dict[str, str]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("fuzz")
    for name in ("plain", "fuzz"):
        (folder / name).mkdir()
        (folder / name / PLAIN["password_file"]).write_text("zq-pw-from-file\n")
    # Rendering writes the password file, so the passwords must be readable.
    os.environ[PLAIN["password_env"]] = "zq-pw-from-env"
    yield folder
    os.environ.pop(PLAIN["password_env"], None)


def write_spec(folder: Path, key: str, value: str) -> Path:
    quoted = {k: yaml_quote(v) for k, v in PLAIN.items()}
    quoted[key] = yaml_quote(value)
    path = folder / "spec.yaml"
    path.write_bytes(TEMPLATE.format(**quoted).encode("utf-8", "surrogatepass"))
    return path


def render_spec(folder: Path, key: str, value: str) -> Rendered:
    path = write_spec(folder, key, value)
    prepared = pipeline.prepare(path, files_required=False, passwords_required=True)
    _, files = pipeline.bundle(prepared, folder / "out")
    return Rendered(path, prepared, {f.name: f.text for f in files})


def assert_names_field(error: SpecError, key: str) -> None:
    field = FIELD_PATHS[key]
    assert error.exit_code == 2
    assert error.problems
    for problem in error.problems:
        assert "\n" not in str(problem)
        if problem.field == "":
            # The YAML layer refused the text itself: it points at the line.
            assert problem.line == line_of(key), str(problem)
        else:
            ancestor = field.startswith((f"{problem.field}.", f"{problem.field}["))
            assert problem.field == field or ancestor, str(problem)


@pytest.fixture(scope="module")
def plain(workdir: Path) -> Rendered:
    return render_spec(workdir / "plain", "gateway", PLAIN["gateway"])


@pytest.mark.parametrize("key", sorted(PLAIN))
@SETTINGS
@given(data=st.data())
def test_string_field_is_refused_or_rendered_intact(
    key: str, data: st.DataObject, workdir: Path, plain: Rendered
) -> None:
    value = data.draw(values(key), label=key)
    try:
        got = render_spec(workdir / "fuzz", key, value)
    except SpecError as error:
        assert_names_field(error, key)
        event("refused")
        return

    event("rendered")
    conf, plain_conf = got.files["mosquitto.conf"], plain.files["mosquitto.conf"]
    assert conf.count("\n") == plain_conf.count("\n")
    want = [
        d if key in STATUS_ONLY else swap(d, PLAIN[key], value)
        for d in parse_conf(plain_conf)
    ]
    assert parse_conf(conf) == want
    CHECKS.get(key, lambda *_: None)(got, plain, value)


def check_gateway(got: Rendered, plain: Rendered, value: str) -> None:
    compose = yaml.safe_load(got.files["docker-compose.yml"])
    assert compose["name"] == f"bridge-gen-{value}"


def check_image(got: Rendered, plain: Rendered, value: str) -> None:
    lines = got.files["Dockerfile"].split("\n")
    assert len(lines) == len(plain.files["Dockerfile"].split("\n"))
    assert f"FROM {value}" in lines


def check_path(role: str) -> Callable[[Rendered, Rendered, str], None]:
    def check(got: Rendered, plain: Rendered, value: str) -> None:
        spec_dir = got.spec_path.parent
        host_path = (spec_dir / value).resolve()

        # docker compose mounts it; YAML must give the path back unchanged.
        compose = yaml.safe_load(got.files["docker-compose.yml"])
        volumes = compose["services"]["bridge"]["volumes"]
        index = ("ca", "cert", "key").index(role) + 1
        out_dir = (spec_dir / "out").resolve()
        assert volumes[index]["source"] == os.path.relpath(host_path, out_dir)

        # Run on the host, mosquitto reads the path itself from the config.
        layout = plan.host_layout(spec_dir / "run")
        local = plan.plan(got.prepared.spec, spec_dir, layout=layout)
        directives = dict(
            d for d in parse_conf(render.render_conf(local)) if d[0] != "topic"
        )
        assert directives[f"bridge_{role}file"] == str(host_path)

    return check


def check_listener_path(role: str) -> Callable[[Rendered, Rendered, str], None]:
    def check(got: Rendered, plain: Rendered, value: str) -> None:
        spec_dir = got.spec_path.parent
        host_path = (spec_dir / value).resolve()
        compose = yaml.safe_load(got.files["docker-compose.yml"])
        mounted = {
            v["target"]: v["source"] for v in compose["services"]["bridge"]["volumes"]
        }
        name = {"ca": "clients-ca.crt", "cert": "server.crt", "key": "server.key"}
        out_dir = (spec_dir / "out").resolve()
        target = f"/run/bridge-gen/_local/{name[role]}"
        assert mounted[target] == os.path.relpath(host_path, out_dir)

        layout = plan.host_layout(spec_dir / "run")
        local = plan.plan(got.prepared.spec, spec_dir, layout=layout)
        directives = dict(
            d for d in parse_conf(render.render_conf(local)) if d[0] != "topic"
        )
        assert directives[f"{role}file"] == str(host_path)

    return check


def check_user(got: Rendered, plain: Rendered, value: str) -> None:
    assert f"\nuser {value}\n" in got.files["acl"]
    first = got.files["passwd"].splitlines()[0]
    assert passwords.verify(first, value, PLAIN["password"])


def check_password(got: Rendered, plain: Rendered, value: str) -> None:
    first = got.files["passwd"].splitlines()[0]
    assert passwords.verify(first, PLAIN["user"], value)
    # Hashed only: the text adds no occurrence to any file (it may be in
    # one by chance, as any word of the plain render is).
    for name, text in got.files.items():
        if name != "passwd":
            assert text.count(value) == plain.files[name].count(value), name


def check_user_topic(got: Rendered, plain: Rendered, value: str) -> None:
    assert f"\ntopic readwrite {value}\n" in got.files["acl"]


def check_limit(key: str) -> Callable[[Rendered, Rendered, str], None]:
    def check(got: Rendered, plain: Rendered, value: str) -> None:
        compose = yaml.safe_load(got.files["docker-compose.yml"])
        assert compose["services"]["bridge"][key] == value

    return check


def check_heartbeat(
    bridge: int, side: str
) -> Callable[[Rendered, Rendered, str], None]:
    def check(got: Rendered, plain: Rendered, value: str) -> None:
        beat = got.prepared.plan.bridges[bridge].heartbeat
        assert beat is not None
        if side == "token":
            token = {"tok-zq7": "dev/zq6", "tok-zqd": "dev/zqc"}
            assert beat.send == token[value]
        else:
            assert getattr(beat, side) == value

    return check


CHECKS: dict[str, Callable[[Rendered, Rendered, str], None]] = {
    "gateway": check_gateway,
    "image": check_image,
    "ca": check_path("ca"),
    "cert": check_path("cert"),
    "key": check_path("key"),
    "tls_ca": check_listener_path("ca"),
    "tls_cert": check_listener_path("cert"),
    "tls_key": check_listener_path("key"),
    "user": check_user,
    "password": check_password,
    "user_topic": check_user_topic,
    "memory": check_limit("mem_limit"),
    "cpus": check_limit("cpus"),
    "hb_token": check_heartbeat(0, "token"),
    "hb_topic": check_heartbeat(1, "send"),
    "hb_reply": check_heartbeat(1, "accepted"),
}


# Numbers and booleans: refused, or meaning exactly the text written.

# Each model with the least it needs besides the number.
NUMBER_FIELDS = [
    (
        spec.Spec,
        "version",
        {"gateway": "gw", "bridges": [{"name": "b", "address": "h:1"}]},
    ),
    (spec.Local, "port", {}),
    (spec.TopicRule, "qos", {"pattern": "a"}),
    (spec.Bridge, "keepalive", {"name": "b", "address": "h:1"}),
    (spec.Endpoint, "request_id", {"local": "x", "token": "t"}),
    (spec.Container, "pids", {}),
    (spec.Container, "health_interval", {}),
    (spec.LocalTls, "port", {"cert": "c", "key": "k"}),
]
NUMBERISH = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.text(st.sampled_from("0123456789-+_.xXoeE: "), max_size=8),
    ANY_TEXT,
)


@pytest.mark.parametrize(
    "model, name, rest", NUMBER_FIELDS, ids=[f[1] for f in NUMBER_FIELDS]
)
@given(text=NUMBERISH)
def test_numbers_are_refused_or_kept_as_written(
    model: type, name: str, rest: dict, text: str
) -> None:
    try:
        value = getattr(model.model_validate({**rest, name: text}), name)
    except pydantic.ValidationError as error:
        assert [e["loc"] for e in error.errors()] == [(name,)]
        return
    assert str(value) == text


YAML_12_BOOLEANS = {"true": True, "True": True, "TRUE": True}
YAML_12_BOOLEANS |= {"false": False, "False": False, "FALSE": False}


@given(text=st.one_of(NUMBERISH, st.sampled_from(["yes", "No", "on", "1", "tRue"])))
def test_booleans_are_yaml_1_2_words_only(text: str) -> None:
    try:
        value = spec.Local.model_validate({"allow_anonymous": text}).allow_anonymous
    except pydantic.ValidationError:
        assert text not in YAML_12_BOOLEANS
        return
    assert YAML_12_BOOLEANS[text] is value


# Topic filters: plan's algebra against brute force over a finite world.

FIRST = ["a", "b", "z", "$s"]
LEVELS = ["a", "b", "z"]
WORLD = [
    "/".join(levels)
    for n in range(1, 5)
    for levels in itertools.product(FIRST, *[LEVELS] * (n - 1))
]


def matches(filter_: str, topic: str) -> bool:
    """MQTT matching of one topic, written out level by level."""
    if topic.startswith("$") and filter_[:1] in ("+", "#"):
        return False
    wanted, levels = filter_.split("/"), topic.split("/")
    for i, level in enumerate(wanted):
        if level == "#":
            return True
        if i >= len(levels) or level not in ("+", levels[i]):
            return False
    return len(wanted) == len(levels)


def matched(filter_: str) -> frozenset[str]:
    return frozenset(t for t in WORLD if matches(filter_, t))


FILTERS = st.builds(
    lambda first, rest, hash_: "/".join([first, *rest] + (["#"] if hash_ else [])),
    st.sampled_from(["a", "b", "+", "$s"]),
    st.lists(st.sampled_from(["a", "b", "+"]), max_size=2),
    st.booleans(),
) | st.just("#")


@settings(max_examples=500)
@given(FILTERS, FILTERS)
def test_covers_and_overlaps_agree_with_brute_force(wide: str, narrow: str) -> None:
    assert plan.covers(wide, narrow) == (matched(narrow) <= matched(wide))
    assert plan.overlaps(wide, narrow) == bool(matched(wide) & matched(narrow))


RULE = st.fixed_dictionaries(
    {
        "pattern": st.lists(st.sampled_from(["a", "b", "+"]), max_size=2).flatmap(
            lambda levels: st.sampled_from(
                ["/".join(levels + ["#"])] + (["/".join(levels)] if levels else [])
            )
        ),
        "direction": st.sampled_from(["in", "out", "both"]),
        # Pairs that can cover each other across directions, and cycles.
        "prefixes": st.sampled_from(
            [("a/", "b/"), ("b/", "a/"), ("a/", "z/"), ("a/b/", ""), ("", "b/")]
        ),
    }
)


def rule_filters(direction: str, local: str, remote: str) -> dict[str, str]:
    sides = {"out": local, "in": remote}
    return {d: sides[d] for d in plan.directions(direction)}


def shadows(before: dict[str, str], after: dict[str, str]) -> bool:
    """`before` catches all of `after`'s messages and more, in some direction."""
    return any(
        matched(before[d]) > matched(after[d]) for d in before.keys() & after.keys()
    )


@SETTINGS
@given(rules=st.lists(RULE, min_size=1, max_size=6))
def test_no_rendered_rule_is_shadowed_by_an_earlier_one(
    rules: list[dict], workdir: Path
) -> None:
    entries = "".join(
        f"      - {{pattern: '{r['pattern']}', direction: {r['direction']},"
        f" local_prefix: {r['prefixes'][0]}, remote_prefix: {r['prefixes'][1]}}}\n"
        for r in rules
    )
    path = workdir / "rules.yaml"
    path.write_text(
        "version: 1\ngateway: gw\nbridges:\n  - name: b\n    address: h:1\n"
        "    topics:\n" + entries
    )
    try:
        prepared = pipeline.prepare(path, files_required=False)
    except SpecError:
        assume(False)  # equal filters twice: refused, as they should be
        return

    lines = [d[1] for d in parse_conf(render.render_conf(prepared.plan))]
    lines = [args for args in lines if isinstance(args, tuple) and len(args) == 5]
    rendered = [
        rule_filters(direction, local + pattern, remote + pattern)
        for pattern, direction, _, local, remote in lines
    ]
    wanted = [(r["pattern"], r["direction"], "1", *r["prefixes"]) for r in rules]

    assert sorted(lines) == sorted(wanted)
    for i, j in itertools.combinations(range(len(rendered)), 2):
        assert not shadows(rendered[i], rendered[j]), (lines[i], lines[j])
    in_spec_order = [rule_filters(w[1], w[3] + w[0], w[4] + w[0]) for w in wanted]
    already_safe = not any(
        shadows(in_spec_order[i], in_spec_order[j])
        for i, j in itertools.combinations(range(len(wanted)), 2)
    )
    if already_safe:
        assert lines == wanted
    event("kept in spec order" if lines == wanted else "reordered")


# The loader never fails any other way than with a SpecError.

YAMLISH = st.text(st.sampled_from("ab:-[]{}&*!|>'\"#%@` \n\t,?~0\ufeff\r"), max_size=80)


@SETTINGS
@given(st.binary(max_size=200) | YAMLISH.map(lambda s: s.encode()))
def test_loader_refuses_cleanly_or_loads(raw: bytes) -> None:
    try:
        located = yamlfile.load_bytes(raw, "x.yaml")
    except SpecError as error:
        assert all("\n" not in str(p) for p in error.problems)
        return
    assert isinstance(located.data, dict)


SAMPLE = (
    Path(__file__).parent.parent / "sample-configs" / "kaa-multi.yaml"
).read_text()


@SETTINGS
@given(start=st.integers(0, len(SAMPLE)), length=st.integers(0, 40), insert=YAMLISH)
def test_mangled_spec_is_refused_cleanly_or_renders(
    start: int, length: int, insert: str, workdir: Path
) -> None:
    path = workdir / "mangled.yaml"
    path.write_text(SAMPLE[:start] + insert + SAMPLE[start + length :])
    try:
        prepared = pipeline.prepare(path, files_required=False)
    except SpecError as error:
        assert error.exit_code == 2
        assert all("\n" not in str(p) for p in error.problems)
        return
    pipeline.bundle(prepared, workdir / "out")
