"""Every way a spec can be wrong, what bridge-gen says, and what it leaves.

tests/spec_corpus/ holds one bad spec per file, NNN-name.yaml, and beside it
NNN-name.expect: first the line `exit N`, then exactly the lines expected on
stderr. The hundreds digit is the kind of mistake (see the README there).
To add a case, write the spec and run this module: the test fails and shows
what bridge-gen printed; check every line, then save it as the .expect.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bridge_gen import names, pipeline, plan, yamlfile
from bridge_gen.cli import app
from bridge_gen.errors import SpecError

CORPUS = Path(__file__).parent / "spec_corpus"
CASES = sorted(CORPUS.glob("*.yaml"))
SAMPLES = Path(__file__).parent.parent / "sample-configs"
SAMPLE_SPECS = sorted(SAMPLES.glob("*.yaml"))
KINDS = {
    "1": "YAML itself",
    "2": "YAML 1.1 surprises",
    "3": "types and ranges",
    "4": "names",
    "5": "injection into rendered files",
    "6": "raw topic rules",
    "7": "meaning across fields",
    "8": "inventories and fleets",
    "9": "local users and access",
}


@dataclass(frozen=True)
class Expected:
    exit_code: int
    stderr: list[str]


def run(*args: str):
    # click 8.2+ keeps stderr apart from stdout in every result.
    return CliRunner().invoke(app, list(args))


def expected(case: Path) -> Expected:
    sidecar = case.with_suffix(".expect")
    if not sidecar.exists():
        pytest.fail(f"{sidecar.name} is missing; see this module's docstring")
    first, *lines = sidecar.read_text(encoding="utf-8").splitlines()
    return Expected(int(first.removeprefix("exit ")), lines)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]] | None:
    """Every file under `folder` with its bytes, mode and mtime; None if absent."""
    if not folder.exists():
        return None
    return {
        str(path.relative_to(folder)): (
            path.read_bytes() if path.is_file() else b"",
            path.stat().st_mode,
            path.stat().st_mtime_ns,
        )
        for path in sorted(folder.rglob("*"))
    }


def fill(folder: Path) -> None:
    """An output folder from an earlier render, plus a file of the user's."""
    folder.mkdir()
    (folder / "mosquitto.conf").write_text("listener 1883\n")
    (folder / "Dockerfile").write_text("FROM eclipse-mosquitto:2.0\n")
    (folder / ".dockerignore").write_text("*\n")
    (folder / "notes.txt").write_bytes(b"mine\x00\xff")


# The corpus.


def test_corpus_covers_every_kind() -> None:
    stems = {case.stem for case in CASES}
    sidecars = {path.stem for path in CORPUS.glob("*.expect")}
    assert stems == sidecars
    assert len(CASES) >= 50
    for digit in KINDS:
        assert any(case.name.startswith(digit) for case in CASES), KINDS[digit]


@pytest.mark.parametrize("existing", [False, True], ids=["new-out", "old-out"])
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.stem)
def test_bad_spec_is_refused(
    case: Path, existing: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = expected(case)
    out = tmp_path / "out"
    if existing:
        fill(out)
    before = snapshot(out)
    monkeypatch.chdir(CORPUS)
    # The one password variable corpus specs may read; other names are unset.
    monkeypatch.setenv("BG_CORPUS_PW", "corpus-password")

    result = run("render", case.name, "--out", str(out))

    assert result.exit_code == want.exit_code, result.output
    assert result.stderr.splitlines() == want.stderr
    assert result.stdout == ""
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert snapshot(out) == before


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.stem)
def test_validate_refuses_what_render_refuses(
    case: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = expected(case)
    monkeypatch.chdir(CORPUS)
    monkeypatch.setenv("BG_CORPUS_PW", "corpus-password")

    result = run("validate", case.name)

    if case.stem in NEEDED_BY_RENDER_ONLY:
        # validate runs where the secrets are not (CI, an editor): what
        # render must read is a warning there.
        assert result.exit_code == 0
        warned = [line.replace("error:", "warning:", 1) for line in want.stderr]
        assert set(warned) <= set(result.stderr.splitlines())
        return
    assert (result.exit_code, result.stderr.splitlines()) == (
        want.exit_code,
        want.stderr,
    )
    assert result.stdout == ""


# Passwords: render writes their hashes, validate only looks at the spec.
NEEDED_BY_RENDER_ONLY = {"907-password-env-unset", "908-password-file-missing"}


# Files that cannot be read, or are too big to try.


def test_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("render", "nope.yaml", "--out", "out")
    assert result.exit_code == 2
    assert result.stderr == "error: nope.yaml: no such file\n"
    assert not (tmp_path / "out").exists()


def test_directory_instead_of_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").mkdir()
    result = run("validate", "spec.yaml")
    assert result.exit_code == 2
    assert result.stderr == "error: spec.yaml: is a directory, not a spec file\n"


def test_oversize_file_is_refused_without_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    size = 40 * 1024 * 1024
    Path("big.yaml").write_bytes(b"version: 1\n" + b"#" * (size - 11))

    started = time.perf_counter()
    result = run("render", "big.yaml", "--out", "out")
    elapsed = time.perf_counter() - started

    assert result.exit_code == 2
    assert result.stderr == (
        f"error: big.yaml: the file is {size} bytes; the limit for a spec is"
        f" {yamlfile.MAX_BYTES} bytes\n"
    )
    assert elapsed < 0.5
    assert not Path("out").exists()


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_endless_input_is_read_only_to_the_limit() -> None:
    # stat() says 0 bytes; only a bounded read stops this one.
    result = run("validate", "/dev/zero")
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: /dev/zero: the file is larger than {yamlfile.MAX_BYTES} bytes,"
        " the limit for a spec\n"
    )


def bomb(levels: int, fan: int) -> bytes:
    lines = ["a0: &a0 [lol]"]
    for i in range(1, levels + 1):
        aliases = ", ".join([f"*a{i - 1}"] * fan)
        lines.append(f"a{i}: &a{i} [{aliases}]")
    return ("\n".join(lines) + "\n").encode()


def test_alias_bomb_is_refused_fast_in_little_memory() -> None:
    # 20 levels of 20 aliases stand for 20**20 values in 1.8 kB of YAML.
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(SpecError) as caught:
        yamlfile.load_bytes(bomb(20, 20), "bomb.yaml")
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    # a0..a3 stand for 2, 41, 821 and 16,421 values: 17,286 with a4's list.
    # Each *a3 adds 16,421, so the 12th one (a4[11], column 9 + 11 * 5 + 1)
    # is the first past the limit.
    assert [str(p) for p in caught.value.problems] == [
        "bomb.yaml:5:65: a4[11]: aliases here expand the document to more than"
        f" {yamlfile.MAX_NODES} values; refusing to load it"
    ]
    assert elapsed < 0.1
    assert peak < 5 * 1024 * 1024


def test_many_values_without_aliases_are_refused() -> None:
    flood = b"a: [" + b"x," * (yamlfile.MAX_NODES + 1) + b"]\n"
    started = time.perf_counter()
    with pytest.raises(SpecError) as caught:
        yamlfile.load_bytes(flood, "flood.yaml")
    assert time.perf_counter() - started < 2
    assert caught.value.problems[0].message == (
        f"the document holds more than {yamlfile.MAX_NODES} values; refusing to load it"
    )


def test_deep_nesting_is_refused_before_the_parser_recurses() -> None:
    # libyaml's composer recursed in C on this and crashed the process.
    deep = b"a: " + b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(SpecError) as caught:
        yamlfile.load_bytes(deep, "deep.yaml")
    assert caught.value.problems[0].message == (
        f"nesting deeper than {yamlfile.MAX_DEPTH} levels; refusing to load it"
    )


# Good specs: the samples, other encodings, YAML 1.1 words kept as written.


@pytest.mark.parametrize("sample", SAMPLE_SPECS, ids=lambda p: p.stem)
def test_sample_is_valid(sample: Path) -> None:
    result = run("validate", str(sample))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    # One line per gateway: a fleet file holds several.
    gateways = pipeline.prepare_all(sample, files_required=False).gateways
    assert len(lines) == len(gateways)
    for line, prepared in zip(lines, gateways, strict=True):
        assert line.startswith(f"{sample}: valid; gateway {prepared.plan.gateway}:")


@pytest.mark.parametrize("sample", SAMPLE_SPECS, ids=lambda p: p.stem)
def test_crlf_and_bom_render_the_same_bytes(sample: Path, tmp_path: Path) -> None:
    lf = tmp_path / "lf" / "spec.yaml"
    crlf = tmp_path / "crlf" / "spec.yaml"
    for path in (lf, crlf):
        path.parent.mkdir()
    # Inventories beside it too, with the same endings and BOM.
    for source in [sample, *SAMPLES.glob("*.csv")]:
        name = "spec.yaml" if source == sample else source.name
        text = source.read_bytes().replace(b"\r\n", b"\n")
        (lf.parent / name).write_bytes(text)
        (crlf.parent / name).write_bytes(b"\xef\xbb\xbf" + text.replace(b"\n", b"\r\n"))

    for spec in (lf, crlf):
        result = run(
            "render", str(spec), "--out", str(tmp_path / "out" / spec.parent.name)
        )
        assert result.exit_code == 0, result.output

    # The password file's salts are random; tests/test_golden.py checks it.
    written = sorted(
        p.relative_to(tmp_path / "out" / "lf")
        for p in (tmp_path / "out" / "lf").rglob("*")
        if p.is_file() and p.name != "passwd"
    )
    assert written
    for name in written:
        left = (tmp_path / "out" / "lf" / name).read_bytes()
        right = (tmp_path / "out" / "crlf" / name).read_bytes()
        # The compose file names the spec's folder; the folders differ.
        assert left.replace(b"/lf/", b"/x/") == right.replace(b"/crlf/", b"/x/")


KAA_SPEC = """\
version: 1
gateway: plant
local: {{bind: 127.0.0.1}}
container: {{restart: no}}
bridges:
  - name: kaa
    address: mqtt.example.com:8883
    app_version: app-v1
    tls: {{ca: ca.crt}}
    endpoints:
      - local: devices/t1
        token: {token}
"""


@pytest.mark.parametrize(
    "written, token",
    [("on", "on"), ("no", "no"), ("0123", "0123"), ("1e3", "1e3"), ("12:30", "12:30")]
    + [('"null"', "null"), ("'~'", "~"), ("TRUE", "TRUE")],
)
def test_yaml_1_1_words_render_as_written(
    written: str, token: str, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(KAA_SPEC.format(token=written))

    result = run("render", str(spec), "--out", str(tmp_path / "out"))

    assert result.exit_code == 0, result.output
    conf = (tmp_path / "out" / "mosquitto.conf").read_text()
    assert f'topic "" out 1 devices/t1 kp1/app-v1/dcx/{token}/json\n' in conf
    compose = yaml.safe_load((tmp_path / "out" / "docker-compose.yml").read_text())
    assert compose["services"]["bridge"]["restart"] == "no"


def test_quoted_numbers_and_yaml_1_2_booleans_are_taken(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    text = KAA_SPEC.format(token="t").replace(
        "local: {bind: 127.0.0.1}",
        "local: {bind: 127.0.0.1, port: '1884', allow_anonymous: FALSE}",
    )
    spec.write_text(text)

    result = run("render", str(spec), "--out", str(tmp_path / "out"))

    assert result.exit_code == 0, result.output
    conf = (tmp_path / "out" / "mosquitto.conf").read_text()
    assert "\nlistener 1884 0.0.0.0\nallow_anonymous false\n" in conf


def test_anchors_and_aliases_work(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: 1\ngateway: plant\nbridges:\n"
        "  - name: a\n    address: &addr h.example.com:1883\n"
        "    topics: &rules [{pattern: 'x/#', local_prefix: l/, remote_prefix: r/}]\n"
        "  - name: b\n    address: *addr\n    topics: *rules\n"
    )
    prepared = pipeline.prepare(spec, files_required=False)
    assert [b.addresses for b in prepared.plan.bridges] == [("h.example.com:1883",)] * 2
    assert [len(b.lines) for b in prepared.plan.bridges] == [1, 1]


def test_paths_with_spaces_and_hash_render_safely(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    text = KAA_SPEC.format(token="t").replace(
        "tls: {ca: ca.crt}",
        "tls: {ca: 'my certs/#1 ca.crt', cert: 'c#.crt', key: \"k 'x'.key\"}",
    )
    spec.write_text(text)

    result = run("render", str(spec), "--out", str(tmp_path / "out"))

    assert result.exit_code == 0, result.output
    compose = yaml.safe_load((tmp_path / "out" / "docker-compose.yml").read_text())
    sources = [v["source"] for v in compose["services"]["bridge"]["volumes"][1:]]
    assert sources == ["../my certs/#1 ca.crt", "../c#.crt", "../k 'x'.key"]


# Warnings and certificate files: errors only for commands that start it.


def test_missing_certificates_warn_on_render_and_fail_for_up(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(KAA_SPEC.format(token="t"))

    result = run("render", str(spec), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0
    ca = tmp_path / "ca.crt"
    missing = f"bridges[0].tls.ca: ca.crt does not exist ({ca})"
    assert result.stderr == f"warning: {spec}:9:15: {missing}\n"

    with pytest.raises(SpecError) as caught:
        pipeline.prepare(spec, files_required=True)
    assert [str(p) for p in caught.value.problems] == [f"{spec}:9:15: {missing}"]

    ca.write_text("not checked here")
    assert pipeline.prepare(spec, files_required=True).warnings == ()


RULES_SPEC = """\
version: 1
gateway: plant
local: {bind: 127.0.0.1}
bridges:
  - name: central
    address: broker.example.com:1883
    topics:
"""


def rules_spec(tmp_path: Path, *rules: str) -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text(RULES_SPEC + "".join(f"      - {r}\n" for r in rules))
    return spec


def topic_lines(tmp_path: Path) -> list[str]:
    conf = (tmp_path / "out" / "mosquitto.conf").read_text()
    return [line for line in conf.splitlines() if line.startswith("topic ")]


def test_specific_rules_are_rendered_before_broad_ones(tmp_path: Path) -> None:
    spec = rules_spec(
        tmp_path,
        "{pattern: '#', local_prefix: site/, remote_prefix: plant/}",
        "{pattern: '#', direction: in, local_prefix: cmd/, remote_prefix: c/}",
        "{pattern: 'alarm/#', local_prefix: site/, remote_prefix: alarms/}",
        "{pattern: '', local_prefix: site/alarm/fire, remote_prefix: fire}",
    )

    result = run("render", str(spec), "--out", str(tmp_path / "out"))

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert topic_lines(tmp_path) == [
        "topic # in 1 cmd/ c/",
        'topic "" out 1 site/alarm/fire fire',
        "topic alarm/# out 1 site/ alarms/",
        "topic # out 1 site/ plant/",
    ]


def test_rule_order_is_kept_when_nothing_is_shadowed(tmp_path: Path) -> None:
    rules = [
        "{pattern: 'b/#', local_prefix: l/, remote_prefix: r/}",
        "{pattern: 'a/#', local_prefix: l/, remote_prefix: r/}",
        "{pattern: '#', direction: in, local_prefix: l/, remote_prefix: r/}",
    ]
    spec = rules_spec(tmp_path, *rules)
    assert run("render", str(spec), "--out", str(tmp_path / "out")).exit_code == 0
    assert topic_lines(tmp_path) == [
        "topic b/# out 1 l/ r/",
        "topic a/# out 1 l/ r/",
        "topic # in 1 l/ r/",
    ]


def test_overlaps_and_both_are_warnings(tmp_path: Path) -> None:
    spec = rules_spec(
        tmp_path,
        "{pattern: 'a/+/c', local_prefix: l/, remote_prefix: r/}",
        "{pattern: 'a/b/+', local_prefix: l/, remote_prefix: s/}",
        "{pattern: 'q/#', direction: both, local_prefix: l/, remote_prefix: r/}",
    )

    result = run("render", str(spec), "--out", str(tmp_path / "out"))

    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"warning: {spec}:9:9: bridges[0].topics[1]: overlaps"
        " bridges[0].topics[0] ('l/a/+/c') out: a message on a topic both match"
        " is renamed by the first of them in mosquitto.conf only",
        f"warning: {spec}:10:37: bridges[0].topics[2].direction: `both`: the"
        " remote sends each message this bridge publishes back to it, so local"
        " subscribers get it twice; an `in` and an `out` rule with disjoint"
        " prefixes do not",
    ]


def test_topic_too_long_once_prefixed(tmp_path: Path) -> None:
    prefix = "p" * 40_000 + "/"
    spec = rules_spec(
        tmp_path,
        f"{{pattern: '{'a' * 30_000}', local_prefix: {prefix}, remote_prefix: r/}}",
    )
    with pytest.raises(SpecError) as caught:
        pipeline.prepare(spec, files_required=False)
    assert [str(p) for p in caught.value.problems] == [
        f"{spec}:8:9: bridges[0].topics[0]: the local topic would be 70001 bytes"
        " long; MQTT allows 65535"
    ]


# The JSON Schema the samples point editors to.


def test_schema_file_is_what_the_schema_command_prints() -> None:
    result = run("schema")
    assert result.exit_code == 0
    stored = (SAMPLES / "bridge-gen.schema.json").read_text(encoding="utf-8")
    # Regenerate with: bridge-gen schema > sample-configs/bridge-gen.schema.json
    assert result.stdout == stored


def test_fleet_schema_file_is_what_the_schema_command_prints() -> None:
    result = run("schema", "--fleet")
    assert result.exit_code == 0
    stored = (SAMPLES / "bridge-gen.fleet.schema.json").read_text(encoding="utf-8")
    # Regenerate with:
    # bridge-gen schema --fleet > sample-configs/bridge-gen.fleet.schema.json
    assert result.stdout == stored


@pytest.mark.parametrize("sample", SAMPLE_SPECS, ids=lambda p: p.stem)
def test_samples_point_to_the_schema_and_pass_it(sample: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    first = sample.read_text(encoding="utf-8").splitlines()[0]
    kind = "fleet." if sample.stem == "fleet" else ""
    name = f"bridge-gen.{kind}schema.json"
    assert first == f"# yaml-language-server: $schema=./{name}"
    schema = json.loads((SAMPLES / name).read_text())
    # What an editor sees: YAML 1.1 typed, as yaml-language-server reads it.
    jsonschema.validate(yaml.safe_load(sample.read_text()), schema)


# Pieces the messages are made of.


def test_field_paths_stay_on_one_line() -> None:
    assert yamlfile.dotted(("bridges", 0, "endpoints", 3, "token")) == (
        "bridges[0].endpoints[3].token"
    )
    assert yamlfile.dotted(("bridges", 0, "to\nken")) == "bridges[0]['to\\nken']"


def test_host_port_returns_the_value_as_written() -> None:
    assert names.host_port("mqtt.example.com:8883") == "mqtt.example.com:8883"
    assert names.host_port("10.0.0.7:1") == "10.0.0.7:1"


@pytest.mark.parametrize(
    "name", ["plant", "plant-a", "plant--a", "plant_a", "plant__a", "p1", "7"]
)
def test_gateway_names_docker_accepts(name: str) -> None:
    assert names.gateway_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "Plant", "plant-", "_plant", "plant___a", "plant-_a", "a.b", "a/b"]
)
def test_gateway_names_docker_refuses(name: str) -> None:
    with pytest.raises(ValueError):
        names.gateway_name(name)


def test_covers_follows_mqtt_matching() -> None:
    assert plan.covers("a/#", "a")
    assert plan.covers("+/#", "a/b/c")
    assert not plan.covers("#", "$SYS/x")
    assert not plan.covers("a/+", "a/#")
    assert plan.overlaps("a/+/c", "a/b/+")
    assert not plan.overlaps("+/x", "$SYS/x")


def test_values_print_as_written_in_messages(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(KAA_SPEC.format(token="t").replace("app-v1", "'a:cat:b'"))
    result = run("validate", str(spec))
    assert "'a:cat:b'" in result.stderr
