"""The password file bridge-gen writes is the one mosquitto reads."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from bridge_gen.passwords import hash_line, verify
from bridge_gen.standin import free_port


def test_hash_line_verifies_only_its_own_password() -> None:
    line = hash_line("dev1", "s3cr et#x")

    assert line.startswith("dev1:$7$101$")
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
    broker = subprocess.Popen(
        [mosquitto_bin, "-c", str(conf)], stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(0.5)

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
    finally:
        broker.terminate()
        broker.wait(5)
