"""Fixtures shared by several test modules."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge_gen.pki import Pki, make_throwaway_pki
from bridge_gen.standin import StandInBroker, find_mosquitto

# The passwords sample-configs/kaa-secure.yaml reads from the environment;
# tests/test_golden.py checks the password file by them.
SAMPLE_PASSWORDS = {
    "PLANT_ADMIN_PASSWORD": "sample-admin-password",
    "PRESS_1_PASSWORD": "sample-press-1-password",
    "PRESS_2_PASSWORD": "sample-press-2-password",
}


@pytest.fixture(autouse=True, scope="session")
def _environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The whole run: `up` writes into a folder of its own, not the user's,
    and the samples' passwords are set."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BRIDGE_GEN_STATE_DIR", str(tmp_path_factory.mktemp("state")))
        for name, value in SAMPLE_PASSWORDS.items():
            patch.setenv(name, value)
        yield


@pytest.fixture
def state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> Path:
    """A state home of this test's own: bridge-gen's folder is `bridge-gen`."""
    folder = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("BRIDGE_GEN_STATE_DIR", str(folder / "bridge-gen"))
    return folder


@pytest.fixture
def mosquitto_bin() -> str:
    """Path of the mosquitto binary; skips without it, fails in CI."""
    found = find_mosquitto()
    if found is None:
        # CI must run the real-broker tier; a silent skip there would let
        # the TLS and bridge tests rot unnoticed.
        if os.environ.get("CI") == "true":
            pytest.fail("mosquitto is not installed, and CI=true")
        pytest.skip("mosquitto is not installed")
    return found


@pytest.fixture
def throwaway_pki(tmp_path: Path) -> Pki:
    """A fresh CA, server and client certificate under tmp_path/pki."""
    return make_throwaway_pki(tmp_path / "pki")


@pytest.fixture
def standin_broker(
    tmp_path: Path, throwaway_pki: Pki, mosquitto_bin: str
) -> Iterator[StandInBroker]:
    """A running TLS stand-in for the cloud that demands client certs."""
    with StandInBroker(
        tmp_path / "standin", throwaway_pki, mosquitto=mosquitto_bin
    ) as broker:
        yield broker


@pytest.fixture(scope="session")
def docker_client():
    """A client of the running Docker engine with the base image present.

    Skips without an engine, but fails when CI=true: CI must run the tier
    that proves the bridge really works.
    """
    import docker

    def unavailable(why: str):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}, and CI=true (scripts/test starts one)")
        pytest.skip(why)

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException:
        unavailable("no Docker engine answers")
    try:
        client.images.get("eclipse-mosquitto:2.0")
    except docker.errors.ImageNotFound:
        unavailable("eclipse-mosquitto:2.0 is not here (scripts/build-base-image)")
    return client


@pytest.fixture
def gateway(docker_client) -> Iterator[str]:
    """A unique gateway name; whatever Docker holds for it is removed after."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    yield name
    label = f"io.bridge-gen.gateway={name}"
    for container in docker_client.containers.list(all=True, filters={"label": label}):
        container.remove(force=True, v=True)
    for volume in docker_client.volumes.list(filters={"label": label}):
        volume.remove(force=True)
    for image in docker_client.images.list(filters={"label": label}):
        docker_client.images.remove(image.id, force=True)
