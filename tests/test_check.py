"""`bridge-gen check` as users see it, with real certificates and brokers."""

from __future__ import annotations

import datetime as dt
import json
import ssl
from pathlib import Path

from typer.testing import CliRunner

from bridge_gen import pki
from bridge_gen.cli import app
from bridge_gen.standin import StandInBroker, free_port

SPEC = """\
version: 1
gateway: checked
container: {{network: host}}
local: {{port: {port}, bind: 127.0.0.1}}
bridges:
  - name: kaa
    address: 127.0.0.1:{remote}
    tls: {{ca: {ca}, cert: {cert}, key: {key}}}
    app_version: app-v1
    endpoints: [{{local: d/1, token: t1}}]
"""


def spec_for(tmp: Path, remote: int, ca: Path, cert: Path, key: Path) -> Path:
    path = tmp / "spec.yaml"
    text = SPEC.format(port=free_port(), remote=remote, ca=ca, cert=cert, key=key)
    path.write_text(text)
    return path


def run(*args: str):
    return CliRunner().invoke(app, ["check", *args, "--no-docker", "--json"])


def test_good_files_and_a_live_remote(
    tmp_path: Path, throwaway_pki, standin_broker: StandInBroker
) -> None:
    p = throwaway_pki
    spec = spec_for(
        tmp_path, standin_broker.port, p.ca_cert, p.client_cert, p.client_key
    )
    result = run(str(spec), "--connect")

    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert {f["severity"] for f in found} == {"ok"}
    address = f"127.0.0.1:{standin_broker.port}"
    connected = [f["message"] for f in found if f["field"] == "bridges[0].address"]
    assert connected[-2] == f"{address} accepted the bridge's connection over TLSv1.3"
    assert connected[-1].startswith(
        f"{address} presented CN=bridge-gen stand-in server, issued by"
        " CN=bridge-gen throwaway CA, valid until "
    )
    if not hasattr(ssl.SSLSocket, "get_unverified_chain"):
        assert connected[-1].endswith(
            "; only the server's own certificate is readable here"
        )


def test_expired_certificate_and_rejected_connection(
    tmp_path: Path, throwaway_pki, standin_broker: StandInBroker
) -> None:
    ca = pki.load_cert_key(throwaway_pki.ca_cert, throwaway_pki.ca_key)
    old = pki.issue_cert(
        ca,
        "old",
        usage="client",
        not_after=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1),
    )
    cert = pki.write_cert(tmp_path / "old.crt", old.cert)
    key = pki.write_key(tmp_path / "old.key", old.key)
    spec = spec_for(tmp_path, standin_broker.port, throwaway_pki.ca_cert, cert, key)

    result = run(str(spec), "--connect")

    assert result.exit_code == 1
    errors = [f for f in json.loads(result.stdout) if f["severity"] == "error"]
    assert errors[0]["field"] == "bridges[0].tls.cert"
    assert errors[0]["message"].startswith("expired on ")
    assert errors[1]["field"] == "bridges[0].address"
    assert errors[1]["message"].startswith(
        f"127.0.0.1:{standin_broker.port}: certificate rejected by the server: "
    )
    assert "rejected the client certificate" in errors[1]["message"]


def test_a_remote_signed_by_another_ca(
    tmp_path: Path, throwaway_pki, standin_broker: StandInBroker
) -> None:
    other = pki.write_cert(tmp_path / "other-ca.crt", pki.new_ca("other CA").cert)
    p = throwaway_pki
    spec = spec_for(tmp_path, standin_broker.port, other, p.client_cert, p.client_key)

    result = CliRunner().invoke(
        app, ["check", str(spec), "--connect", "--no-docker", "--offline"]
    )

    assert result.exit_code == 1
    assert (
        f"127.0.0.1:{standin_broker.port}: unknown CA: its certificate is not"
        " signed by a CA in `tls.ca`; the server presented CN=bridge-gen stand-in"
        " server, issued by CN=bridge-gen throwaway CA, valid until "
    ) in result.stdout


def test_nothing_listening_is_an_error(tmp_path: Path, throwaway_pki) -> None:
    p = throwaway_pki
    remote = free_port()
    spec = spec_for(tmp_path, remote, p.ca_cert, p.client_cert, p.client_key)

    result = run(str(spec), "--connect", "--offline")

    assert result.exit_code == 1
    assert {
        "severity": "error",
        "field": "bridges[0].address",
        "message": f"127.0.0.1:{remote}: connection refused: nothing accepts"
        f" connections at 127.0.0.1:{remote}",
    } in json.loads(result.stdout)


def test_the_devices_tls_listener_is_checked_too(tmp_path: Path, throwaway_pki) -> None:
    p = throwaway_pki
    # The gateway's server key is not the one of its certificate.
    other = pki.make_throwaway_pki(tmp_path / "other")
    spec = spec_for(tmp_path, free_port(), p.ca_cert, p.client_cert, p.client_key)
    spec.write_text(
        spec.read_text().replace(
            "local: {",
            f"local: {{tls: {{port: {free_port()}, cert: {p.server_cert},"
            f" key: {other.server_key}, ca: {other.ca_cert}}}, ",
        )
    )
    result = run(str(spec), "--offline")

    assert result.exit_code == 1, result.output
    found = [(f["severity"], f["field"]) for f in json.loads(result.stdout)]
    assert ("error", "local.tls.key") in found
    assert ("ok", "local.tls.ca") in found
    assert not any(
        field.startswith("local.tls") and s == "error"
        for s, field in found
        if field != "local.tls.key"
    )
