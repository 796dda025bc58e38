"""The password file bridge-gen writes is the one mosquitto reads."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from bridge_gen import credentials, pipeline
from bridge_gen.passwords import hash_line, verify
from bridge_gen.standin import free_port
from tests.mqtt_probe import mosquitto_with


def test_hash_line_verifies_only_its_own_password() -> None:
    line = hash_line("dev1", "s3cr et#x")

    assert line.startswith("dev1:$7$1000$")
    assert verify(line, "dev1", "s3cr et#x")
    assert not verify(line, "dev1", "s3cr et#y")
    assert not verify(line, "dev2", "s3cr et#x")
    assert "s3cr" not in line


def test_the_real_broker_accepts_and_refuses(
    tmp_path: Path, mosquitto_bin: str
) -> None:
    passwords = tmp_path / "passwd"
    passwords.write_text(hash_line("dev1", "s3cr et#x") + "\n")
    passwords.chmod(0o644)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\n"
        f"password_file {passwords}\n" + ("user root\n" if os.geteuid() == 0 else "")
        # As root, stay root: pytest's folders are closed to `mosquitto`.
    )
    with mosquitto_with(mosquitto_bin, conf, port):

        def login(password: str) -> int:
            return subprocess.run(
                [
                    "mosquitto_pub",
                    "-p",
                    str(port),
                    "-u",
                    "dev1",
                    "-P",
                    password,
                    "-t",
                    "t",
                    "-m",
                    "m",
                ],
                capture_output=True,
                timeout=10,
                check=False,
            ).returncode

        assert login("s3cr et#x") == 0
        assert login("wrong") != 0


def test_lines_mosquitto_passwd_writes_verify(tmp_path: Path, mosquitto_bin) -> None:
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    passwd = tmp_path / "passwd"
    subprocess.run([tool, "-c", "-b", str(passwd), "dev1", "pw 1"], check=True)
    line = passwd.read_text().strip()
    assert verify(line, "dev1", "pw 1")
    assert not verify(line, "dev1", "pw 2")


def test_a_line_is_kept_while_it_accepts_the_password(tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(
        "version: 1\ngateway: gw\nlocal:\n  users:\n"
        "    - {name: a, password_env: PW_A, admin: true}\n"
        "    - {name: b, password_env: PW_B, admin: true}\n"
        "bridges: [{name: k, address: 'h:1'}]\n"
    )
    prepared = pipeline.prepare(spec_file, files_required=False)
    previous = tmp_path / "passwd"
    env = {"PW_A": "alpha", "PW_B": "beta"}

    first = credentials.password_file(prepared.spec, tmp_path, previous, env)
    previous.write_text(first)
    assert credentials.password_file(prepared.spec, tmp_path, previous, env) == first

    # A new password for b: a's line stays, b's is new and takes only it.
    env["PW_B"] = "gamma"
    second = credentials.password_file(prepared.spec, tmp_path, previous, env)
    a1, b1 = first.splitlines()
    a2, b2 = second.splitlines()
    assert a2 == a1
    assert b2 != b1
    assert verify(b2, "b", "gamma") and not verify(b2, "b", "beta")

    # Salts are random: without the old file, new lines.
    assert credentials.password_file(prepared.spec, tmp_path, None, env) != second
