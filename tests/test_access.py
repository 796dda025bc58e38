"""Local users and access as users meet them in `validate` and `render`.

The broker's side of it (logins refused, topics kept apart, the TLS
listener) is proven in a real container by tests/test_e2e_access.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bridge_gen import state
from bridge_gen.cli import app
from bridge_gen.errors import BridgeGenError

SPEC = """\
version: 1
gateway: press-shop
local:
  bind: 127.0.0.1
  users:
{users}
bridges:
  - name: kaa
    address: mqtt.example.com:8883
    app_version: app-v1
    endpoints:
{endpoints}
"""

USERS = """\
    - {name: press-1, password_env: T_PRESS_1}
    - {name: press-2, password_file: press-2.txt}"""

ENDPOINTS = """\
      - {local: plant/press-1, token: t1, user: press-1}
      - {local: plant/press-2, token: t2, user: press-2}"""

PASSWORDS = {"T_PRESS_1": "first-secret-1"}


def write(folder: Path, users: str = USERS, endpoints: str = ENDPOINTS) -> Path:
    spec = folder / "spec.yaml"
    spec.write_text(SPEC.format(users=users, endpoints=endpoints))
    (folder / "press-2.txt").write_text("second-secret-2\n")
    return spec


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner(env={**PASSWORDS, **(env or {})}).invoke(app, list(args))


def actions(stdout: str) -> dict[str, str]:
    """`name: action` from render's report lines."""
    found = {}
    for line in stdout.splitlines():
        action, _, path = line.strip().partition("  ")
        if path:
            found[Path(path.strip()).name] = action
    return found


def test_render_again_keeps_the_password_file_until_a_password_changes(
    tmp_path: Path,
) -> None:
    spec, out = write(tmp_path), tmp_path / "out"
    first = run("render", str(spec), "--out", str(out))
    assert first.exit_code == 0, first.output
    assert actions(first.stdout)["passwd"] == "created"
    assert (out / "passwd").stat().st_mode & 0o777 == 0o600
    before = (out / "passwd").read_text()

    again = run("render", str(spec), "--out", str(out))
    assert actions(again.stdout)["passwd"] == "unchanged"

    changed = run("render", str(spec), "--out", str(out), env={"T_PRESS_1": "new"})
    assert actions(changed.stdout)["passwd"] == "updated"
    after = (out / "passwd").read_text().splitlines()
    # Only press-1's line is new.
    assert after[1] == before.splitlines()[1]
    assert after[0] != before.splitlines()[0]


def test_files_the_spec_no_longer_needs_are_removed(tmp_path: Path) -> None:
    spec, out = write(tmp_path), tmp_path / "out"
    assert run("render", str(spec), "--out", str(out)).exit_code == 0

    # The same gateway without users: nothing to hash, no one to list.
    spec.write_text(
        SPEC.format(users="", endpoints="      - {local: d/1, token: t1}").replace(
            "  users:\n\n", ""
        )
    )
    result = run("render", str(spec), "--out", str(out))
    assert result.exit_code == 0, result.output
    done = actions(result.stdout)
    assert (done["acl"], done["passwd"]) == ("removed", "removed")
    assert not (out / "passwd").exists() and not (out / "acl").exists()


def test_one_user_cannot_own_a_topic_below_another_users(tmp_path: Path) -> None:
    endpoints = ENDPOINTS.replace("plant/press-2", "plant/press-1/tool")
    result = run("validate", str(write(tmp_path, endpoints=endpoints)))
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {tmp_path}/spec.yaml:14:17: bridges[0].endpoints[1].local:"
        " 'plant/press-1/tool' lies below 'plant/press-1', the topic of"
        " bridges[0].endpoints[0] (user 'press-1'), who could then read and"
        " publish as 'press-2'; give them topics side by side\n"
    )


def test_a_users_topics_reaching_another_users_endpoint_warns(
    tmp_path: Path,
) -> None:
    users = (
        USERS + "\n    - {name: dashboard, password_env: T_PRESS_1, topics: [plant/+]}"
    )
    result = run("validate", str(write(tmp_path, users=users)))
    assert result.exit_code == 0, result.output
    assert (
        "local.users[2].topics[0]: reaches 'plant/press-1', the topic of"
        " bridges[0].endpoints[0]: 'dashboard' may read and publish as 'press-1'"
        " there"
    ) in result.stderr


@pytest.mark.parametrize("name", ["local.press-shop-kaa", "bridge-gen-health"])
def test_user_names_the_gateway_uses_as_client_ids_are_refused(
    tmp_path: Path, name: str
) -> None:
    users = USERS.replace("press-2, password_file", f"{name}, password_file")
    result = run("validate", str(write(tmp_path, users=users)))
    assert result.exit_code == 2
    assert "is a client id the gateway uses itself" in result.stderr


def test_messages_never_repeat_what_may_be_a_password(tmp_path: Path) -> None:
    users = (
        "    - {name: press-1, password_env: 'Hunter2 pw', admin: Hunter2Pw}\n"
        "    - {name: press-2, password_file: press-2.txt}"
    )
    result = run("validate", str(write(tmp_path, users=users)))
    assert result.exit_code == 2
    assert "Hunter2" not in result.output
    assert "give the variable's name, not the password" in result.stderr
    assert "admin: must be true or false, got a value not shown here" in result.stderr


@pytest.mark.parametrize(
    "content, message",
    [
        ("ab\x0bcd\n", "may not contain a line break"),
        ("   \n", "may not be empty or only spaces"),
        ("", "may not be empty or only spaces"),
    ],
)
def test_a_password_file_with_no_usable_first_line_is_refused(
    tmp_path: Path, content: str, message: str
) -> None:
    spec = write(tmp_path)
    (tmp_path / "press-2.txt").write_text(content)
    result = run("render", str(spec), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert f"local.users[1].password_file: the password in press-2.txt {message}" in (
        result.stderr
    )
    assert not (tmp_path / "out").exists()


def test_a_pipe_is_no_password_file(tmp_path: Path) -> None:
    spec = write(tmp_path)
    (tmp_path / "press-2.txt").unlink()
    os.mkfifo(tmp_path / "press-2.txt")
    result = run("render", str(spec), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "local.users[1].password_file: press-2.txt is not a file" in result.stderr


def test_an_unset_variable_stops_render_but_only_warns_in_validate(
    tmp_path: Path,
) -> None:
    spec = write(tmp_path)
    env = {"T_PRESS_1": None}
    checked = CliRunner(env=env).invoke(app, ["validate", str(spec)])
    assert checked.exit_code == 0
    assert "warning:" in checked.stderr and "T_PRESS_1 is not set" in checked.stderr

    rendered = CliRunner(env=env).invoke(
        app, ["render", str(spec), "--out", str(tmp_path / "out")]
    )
    assert rendered.exit_code == 2
    assert "error:" in rendered.stderr and "T_PRESS_1 is not set" in rendered.stderr


def test_certificate_only_users_and_a_plain_listener_warn(tmp_path: Path) -> None:
    users = "    - {name: press-1, topics: [plant/press-1]}"
    spec = write(tmp_path, users=users, endpoints="      - {local: d/1, token: t1}")
    text = spec.read_text().replace(
        "  bind: 127.0.0.1\n",
        "  bind: 127.0.0.1\n  tls: {cert: s.crt, key: s.key, ca: ca.crt}\n",
    )
    spec.write_text(text)
    result = run("validate", str(spec))
    assert result.exit_code == 0, result.output
    assert "local.plain: no user has a password, so the plain listener" in (
        result.stderr
    )


def test_the_state_folder_must_be_the_users_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE_GEN_STATE_DIR", str(tmp_path / "state"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "press-shop").symlink_to(elsewhere)

    with pytest.raises(BridgeGenError, match="it is a link or belongs to another"):
        state.gateway_dir("press-shop")
    assert state.forget("press-shop") == tmp_path / "state" / "press-shop"
    assert elsewhere.is_dir()
