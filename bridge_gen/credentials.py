"""Local users' passwords: read where the spec says, written only hashed.

This is the one module that reads a password. It hands the rest of
bridge-gen either a problem ("PLANT_PW is not set") or the text of
mosquitto's password file, never the password itself.

Salts are random. A line of the file written before is kept while it
still accepts the user's password, so the same spec gives the same file:
`render` reports it unchanged and `up` does not replace a container for
nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from bridge_gen import names, passwords
from bridge_gen.spec import LocalUser, Spec

_MAX_FILE_BYTES = 64 * 1024


class Unreadable(Exception):
    """A password source that does not give a password; says which and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check(user: LocalUser, spec_dir: Path, environ: Mapping[str, str]) -> None:
    """Raise Unreadable if the user's password cannot be read as written."""
    _password(user, spec_dir, environ)


def password_file(
    spec: Spec,
    spec_dir: Path,
    previous: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The text of mosquitto's password file for the spec's local users.

    `previous` is the file as written last time, if any.
    """
    environ = os.environ if environ is None else environ
    kept = _lines_of(previous)
    lines = []
    for user in spec.local.users:
        secret = _password(user, spec_dir, environ)
        if secret is None:
            continue
        old = kept.get(user.name)
        if old is not None and passwords.verify(old, user.name, secret):
            lines.append(old)
        else:
            lines.append(passwords.hash_line(user.name, secret))
    return "".join(f"{line}\n" for line in lines)


def _lines_of(previous: Path | None) -> dict[str, str]:
    if previous is None:
        return {}
    try:
        text = previous.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}  # written anew, with fresh salts
    return {line.partition(":")[0]: line for line in text.splitlines()}


def _password(
    user: LocalUser, spec_dir: Path, environ: Mapping[str, str]
) -> str | None:
    if user.password_env is not None:
        value = environ.get(user.password_env)
        if value is None:
            raise Unreadable("password_env", f"{user.password_env} is not set")
        return _checked("password_env", f"{user.password_env}", value)
    if user.password_file is not None:
        return _from_file(spec_dir / user.password_file, user.password_file)
    if user.password is not None:
        return user.password.get_secret_value()
    return None


def _from_file(path: Path, written: str) -> str:
    """The first line of the file; `written` names it as the spec does."""
    # Not a pipe or a device: reading one could wait forever.
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise Unreadable("password_file", f"{written} {what}")
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise Unreadable(
            "password_file", f"cannot read {written}: {exc.strerror}"
        ) from None
    if len(data) > _MAX_FILE_BYTES:
        raise Unreadable("password_file", f"{written} is too large for a password")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Unreadable("password_file", f"{written} is not UTF-8 text") from None
    # Editors and `echo` end the file with a line break. Only a line feed
    # (after a carriage return or not) ends the line: any other break is
    # part of the value, and refused there, not silently cut at.
    first = text.split("\n", 1)[0].removesuffix("\r")
    return _checked("password_file", written, first)


def _checked(field: str, where: str, value: str) -> str:
    try:
        return names.password(value)
    except ValueError as exc:
        # names.password's messages never repeat the value.
        raise Unreadable(field, f"the password in {where} {exc}") from None
