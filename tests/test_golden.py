"""The samples render to the committed golden files, byte for byte.

After an intended change to the output, regenerate them with
`BRIDGE_GEN_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py` and
read the diff before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge_gen import passwords, pipeline
from tests.conftest import SAMPLE_PASSWORDS

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "sample-configs").glob("*.yaml"))
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("BRIDGE_GEN_UPDATE_GOLDEN") == "1"


def rendered(sample: Path, network: str | None = None) -> dict[str, str]:
    (files,) = bundles(sample, network).values()
    return files


def bundles(sample: Path, network: str | None = None) -> dict[str, dict[str, str]]:
    """The files of each gateway, by golden folder: `kaa-single`, `fleet/plant-a`."""
    found = pipeline.prepare_all(sample, files_required=False, network=network)
    out = {}
    for prepared in found.gateways:
        name = prepared.plan.gateway
        # Beside the sample, so relative certificate paths do not depend on
        # where the repository is checked out.
        out_dir = sample.parent / "out" / name
        folder = sample.stem if found.fleet is None else f"{sample.stem}/{name}"
        files = pipeline.bundle(prepared, out_dir)[1]
        # Salts are random: the password file is checked by what it accepts.
        out[folder] = {f.name: f.text for f in files if f.name != "passwd"}
    return out


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_sample_matches_golden(sample: Path) -> None:
    found = bundles(sample)
    for name, files in found.items():
        folder = GOLDEN / name
        if UPDATE:
            folder.mkdir(parents=True, exist_ok=True)
            for file, text in files.items():
                (folder / file).write_text(text, encoding="utf-8")

        expected = {p.name: p.read_text(encoding="utf-8") for p in folder.iterdir()}
        assert sorted(files) == sorted(expected)
        for file, text in files.items():
            assert text == expected[file], f"{name}/{file} differs"
    fleet = GOLDEN / sample.stem
    if len(found) > 1 or sample.stem not in found:
        # A fleet's folder holds exactly one folder per gateway.
        assert sorted(p.name for p in fleet.iterdir()) == sorted(
            name.split("/")[1] for name in found
        )


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_render_is_deterministic(sample: Path) -> None:
    assert bundles(sample) == bundles(sample)


def test_tutorial_sample_renders_the_tutorial_bridge() -> None:
    conf = rendered(ROOT / "sample-configs" / "kaa-single.yaml")["mosquitto.conf"]
    lines = conf.splitlines()

    # What Kaa's hand-written bridge has: listener, remote, TLS files, and
    # devices/data carried to the endpoint's telemetry topic with id 42.
    for wanted in (
        "listener 1883 0.0.0.0",
        "allow_anonymous true",
        "connection kaaiot",
        "address mqtt.next.kaaiot.com:8883",
        "bridge_cafile /mosquitto/certs/kaaiot/ca.crt",
        "bridge_certfile /mosquitto/certs/kaaiot/client.crt",
        "bridge_keyfile /mosquitto/certs/kaaiot/client.key",
        "try_private false",
        'topic "" out 1 devices/data kp1/my-app-v1/dcx/my-endpoint-token/json/42',
    ):
        assert wanted in lines

    # And what it misses: the answers to request 42 come back.
    assert (
        'topic "" in 1 devices/data/status'
        " kp1/my-app-v1/dcx/my-endpoint-token/json/42/status"
    ) in lines


def test_host_network_binds_the_spec_address() -> None:
    sample = ROOT / "sample-configs" / "generic-broker.yaml"
    bridged = rendered(sample)
    host = rendered(sample, network="host")

    assert "listener 1883 0.0.0.0" in bridged["mosquitto.conf"]
    assert '"127.0.0.1:1883:1883"' in bridged["docker-compose.yml"]
    assert "listener 1883 127.0.0.1" in host["mosquitto.conf"]
    assert "network_mode: host" in host["docker-compose.yml"]


def test_no_key_material_in_the_image_or_its_context() -> None:
    files = rendered(ROOT / "sample-configs" / "kaa-single.yaml")
    dockerfile = files["Dockerfile"]
    copies = [line for line in dockerfile.splitlines() if line.startswith("COPY")]

    assert all(
        not any(word in line for word in ("key", "crt", "passwd")) for line in copies
    )
    assert files[".dockerignore"].splitlines()[2:] == [
        "*",
        "!Dockerfile",
        "!mosquitto.conf",
        "!acl",
        "!bridge-entrypoint.sh",
    ]


def test_the_password_file_accepts_each_users_password_only() -> None:
    sample = ROOT / "sample-configs" / "kaa-secure.yaml"
    prepared = pipeline.prepare(sample, files_required=False)
    _, files = pipeline.bundle(prepared, sample.parent / "out" / "plant-secure")
    (passwd,) = [f for f in files if f.name == "passwd"]

    assert passwd.mode == 0o600
    lines = passwd.text.splitlines()
    users = {"admin": "PLANT_ADMIN_PASSWORD", "press-1": "PRESS_1_PASSWORD"}
    users["press-2"] = "PRESS_2_PASSWORD"
    assert [line.split(":")[0] for line in lines] == list(users)
    for line, (user, variable) in zip(lines, users.items(), strict=True):
        assert passwords.verify(line, user, SAMPLE_PASSWORDS[variable])
        assert not passwords.verify(line, user, "wrong")
