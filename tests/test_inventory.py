"""Endpoints from a CSV inventory, and the KP1 lint rules they go through."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bridge_gen import inventory, pipeline, yamlfile
from bridge_gen.cli import app

SPEC = """\
version: 1
gateway: plant
local: {bind: 127.0.0.1}
bridges:
  - name: kaa
    address: mqtt.example.com:8883
    tls: {ca: ca.crt}
    app_version: app-v1
    defaults:
      request_id: 3
    endpoints:
      - local: devices/gate
        token: gate-tok
    inventory: lists/devices.csv
"""


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def write(tmp_path: Path, csv: bytes | str, spec: str = SPEC) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(spec)
    (tmp_path / "ca.crt").write_text("not read here")
    (tmp_path / "lists").mkdir(exist_ok=True)
    raw = csv.encode() if isinstance(csv, str) else csv
    (tmp_path / "lists" / "devices.csv").write_bytes(raw)
    return path


def topics(out: Path) -> list[str]:
    conf = (out / "mosquitto.conf").read_text()
    return [line for line in conf.splitlines() if line.startswith("topic ")]


def test_rows_follow_the_yaml_endpoints_with_the_bridge_defaults(
    tmp_path: Path,
) -> None:
    spec = write(
        tmp_path,
        "token,local,app_version,request_id\nt1,devices/t1,,\nt2,devices/t2,app-v2,9\n",
    )
    out = tmp_path / "out"

    result = run("render", str(spec), "--out", str(out))

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    sent = [line for line in topics(out) if " out " in line]
    assert sent == [
        'topic "" out 1 devices/gate kp1/app-v1/dcx/gate-tok/json/3',
        'topic "" out 1 devices/t1 kp1/app-v1/dcx/t1/json/3',
        'topic "" out 1 devices/t2 kp1/app-v2/dcx/t2/json/9',
    ]
    assert result.stdout.endswith(
        "gateway plant: 1 bridge(s), 3 endpoint(s), 9 topic line(s)\n"
    )


def test_bom_crlf_blank_lines_and_quoted_values(tmp_path: Path) -> None:
    plain = write(tmp_path, "token,local\nt1,devices/t1\nt2,devices/t2\n")
    want = pipeline.prepare(plain, files_required=False).plan

    messy = (
        b"\xef\xbb\xbf token , local\r\n\r\n"
        b'"t1","devices/t1"\r\n , \r\n,,\r\nt2,devices/t2'
    )
    write(tmp_path, messy)
    assert pipeline.prepare(plain, files_required=False).plan == want


def test_a_row_is_named_by_the_line_it_starts_on(tmp_path: Path) -> None:
    # A quoted value may hold a line break; the row after it still counts
    # lines as an editor shows them.
    spec = write(tmp_path, 'token,local\n\n"t\n1",devices/t1\n\nt/2,devices/t2\n')
    result = run("validate", str(spec))

    csv = Path(tmp_path.name, "lists", "devices.csv")
    assert result.exit_code == 2
    assert result.stderr.replace(str(tmp_path.parent) + "/", "") == (
        f"error: {csv}:3: token: may not contain a line break ('\\n'): it would"
        " start a new line in the rendered files\n"
        f"error: {csv}:6: token: may not contain '/'\n"
    )


def test_the_inventory_is_read_beside_the_spec_and_named_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "token,local\nt.1,devices/t1\n")
    monkeypatch.chdir(tmp_path.parent)

    result = run("validate", f"{tmp_path.name}/spec.yaml")

    assert result.stderr == (
        f"error: {tmp_path.name}/lists/devices.csv:2: token: may not contain '.'\n"
    )


def test_missing_inventory_is_an_error_where_the_spec_names_it(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "out"

    result = run("render", str(spec), "--out", str(out))

    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {spec}:14:16: bridges[0].inventory: lists/devices.csv does not"
        f" exist ({tmp_path / 'lists' / 'devices.csv'})\n"
    )
    assert not out.exists()


def test_missing_inventory_is_reported_with_the_other_problems(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("gate-tok", "gate/tok"))

    result = run("validate", str(spec))

    assert [line.split(": ")[2] for line in result.stderr.splitlines()] == [
        "bridges[0].endpoints[0].token",
        "bridges[0].inventory",
    ]


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "the file is empty; an inventory starts with a header row: token,local"),
        (
            b"\n \n",
            "the file is empty; an inventory starts with a header row: token,local",
        ),
        (b"token,local\nt\xff,x\n", "2: is not UTF-8 text (byte 0xff)"),
        (b'token,local\nt,"x"y\n', "2: is not valid CSV: ',' expected after '\"'"),
        (b"token,local,token\n", "1: the column `token` is named twice"),
        (b"token,local\nt,x,\n", "2: has 3 values; the header names 2 columns"),
    ],
    ids=["empty", "blank", "not-utf8", "bad-quote", "twice", "wide-row"],
)
def test_what_is_wrong_with_the_file_itself(
    raw: bytes, message: str, tmp_path: Path
) -> None:
    spec = write(tmp_path, raw)
    csv = tmp_path / "lists" / "devices.csv"

    result = run("validate", str(spec))

    assert result.exit_code == 2
    where = f"{csv}:" if message[0].isdigit() else f"{csv}: "
    assert result.stderr == f"error: {where}{message}\n"


def test_oversize_inventory_is_refused_without_reading_it(tmp_path: Path) -> None:
    size = yamlfile.MAX_BYTES + 1
    spec = write(tmp_path, b"token,local\n" + b"#" * (size - 12))

    result = run("validate", str(spec))

    assert result.stderr == (
        f"error: {spec}:14:16: bridges[0].inventory: lists/devices.csv is {size}"
        f" bytes; the limit for an inventory is {yamlfile.MAX_BYTES} bytes\n"
    )


def test_too_many_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inventory, "MAX_ROWS", 2)
    spec = write(tmp_path, "token,local\na,l/a\nb,l/b\nc,l/c\nd,l/d\n")

    result = run("validate", str(spec))

    assert result.stderr == (
        f"error: {tmp_path / 'lists' / 'devices.csv'}:4: more than 2 rows;"
        " refusing to load them\n"
    )


def test_every_bad_row_at_once_and_nothing_written(tmp_path: Path) -> None:
    rows = "".join(f"bad/{i},devices/{i}\n" for i in range(30))
    spec = write(tmp_path, "token,local\n" + rows)
    out = tmp_path / "out"

    result = run("render", str(spec), "--out", str(out))

    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 30
    assert not out.exists()


# The KP1 lint rules, on YAML and CSV endpoints alike.

REQUESTS = """\
version: 1
gateway: plant
local: {bind: 127.0.0.1}
bridges:
  - name: kaa
    address: mqtt.example.com:8883
    tls: {ca: ca.crt}
    app_version: app-v1
    defaults:
      metadata: true
    endpoints:
      - {local: devices/a, token: a, config: true}
      - {local: devices/b, token: b, request_id: 5}
    inventory: devices.csv
"""


def test_requests_without_an_id_warn_once_per_cause(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(REQUESTS)
    (tmp_path / "ca.crt").write_text("x")
    (tmp_path / "devices.csv").write_text("token,local\nc,devices/c\nd,devices/d\n")

    result = run("validate", str(spec))

    assert result.exit_code == 0, result.output
    answer = (
        "without `request_id`: Kaa sends no success answer to a request"
        " without an id, so the device's `get` requests would never be"
        " answered; set `request_id`"
    )
    assert result.stderr.splitlines() == [
        f"warning: {spec}:9:5: bridges[0].defaults: `metadata` {answer}"
        " (for 2 endpoint(s) that inherit it)",
        f"warning: {spec}:12:9: bridges[0].endpoints[0]: `metadata` and `config`"
        f" {answer}",
    ]


def test_a_csv_row_may_be_the_endpoint_that_needs_an_id(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        REQUESTS.replace("      metadata: true\n", "      telemetry: true\n")
    )
    (tmp_path / "ca.crt").write_text("x")
    (tmp_path / "devices.csv").write_text("token,local\nc,devices/c\n")

    assert run("validate", str(spec)).stderr == (
        f"warning: {spec}:12:9: bridges[0].endpoints[0]: `config` without"
        " `request_id`: Kaa sends no success answer to a request without an id,"
        " so the device's `get` requests would never be answered; set"
        " `request_id`\n"
    )


def test_one_token_under_two_extension_instances_is_two_endpoints(
    tmp_path: Path,
) -> None:
    spec = write(tmp_path, "token,local\ngate-tok,devices/other\n")
    spec.write_text(
        SPEC.replace(
            "        token: gate-tok\n",
            "        token: gate-tok\n        extensions: {dcx: dcx-2}\n",
        )
    )

    result = run("validate", str(spec))

    assert result.exit_code == 0, result.output


def test_one_token_twice_in_the_inventory(tmp_path: Path) -> None:
    spec = write(tmp_path, "token,local\nt,devices/a\nt,devices/b\n")

    result = run("validate", str(spec))

    csv = tmp_path / "lists" / "devices.csv"
    assert result.stderr == (
        f"error: {csv}:3: token: token 't' with app_version 'app-v1' is already"
        f" used by {csv}:2: both would publish to the same topics"
        " (kp1/app-v1/…/t/…); give each device its own token\n"
    )


def test_a_row_names_the_local_user_that_owns_its_topics(tmp_path: Path) -> None:
    with_users = SPEC.replace(
        "local: {bind: 127.0.0.1}",
        "local:\n  bind: 127.0.0.1\n  users:\n    - {name: press-1, password_env: PW1}",
    )
    spec = write(
        tmp_path, "token,local,user\nt1,devices/t1,press-1\nt2,devices/t2,ghost\n"
    )
    spec.write_text(with_users)

    result = run("validate", str(spec))
    csv = Path(tmp_path, "lists", "devices.csv")
    assert result.exit_code == 2
    assert f"error: {csv}:3: user: no user 'ghost' in local.users (known:" in (
        result.stderr
    )

    (tmp_path / "lists" / "devices.csv").write_text(
        "token,local,user\nt1,devices/t1,press-1\nt2,devices/t2,\n"
    )
    out = tmp_path / "out"
    rendered = CliRunner(env={"PW1": "press-1-secret"}).invoke(
        app, ["render", str(spec), "--out", str(out)]
    )
    assert rendered.exit_code == 0, rendered.output
    acl = (out / "acl").read_text()
    assert (
        "user press-1\ntopic readwrite devices/t1\ntopic readwrite devices/t1/#\n"
        in acl
    )
    assert "devices/t2" not in acl
