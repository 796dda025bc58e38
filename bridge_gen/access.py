"""Rules for the local side: listeners, users, and who may use which topic.

Part of linting, kept apart from the bridge rules in `lint.py`: these
decide who gets into the gateway, those where data goes once it is in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bridge_gen import credentials
from bridge_gen.brokerlog import OWN_CLIENT_PREFIXES
from bridge_gen.names import shown
from bridge_gen.plan import overlaps
from bridge_gen.spec import Composed, LocalUser, Spec

if TYPE_CHECKING:
    from bridge_gen.lint import Findings


def check(
    spec: Spec,
    located: Composed,
    *,
    files_required: bool,
    passwords_required: bool,
    out: Findings,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Add the local side's errors and warnings to `out`.

    `passwords_required` for commands that write the password file: a
    password that cannot be read is an error there, a warning elsewhere.
    """
    spec_dir = Path(located.file).resolve().parent
    environ = os.environ if environ is None else environ
    _listeners(spec, located, spec_dir, files_required, out)
    _anonymous(spec, located, out)
    _plain_without_passwords(spec, located, out)
    names = _users(spec, located, out)
    for i, user in enumerate(spec.local.users):
        _password(i, user, spec, located, spec_dir, environ, passwords_required, out)
    used = _endpoint_users(spec, located, names, out)
    _idle_users(spec, located, used, out)
    owners = _owned_topics(spec, located, out)
    _nested_endpoints(owners, located, out)
    _reaching_filters(spec, owners, located, out)


def _listeners(
    spec: Spec, located: Composed, spec_dir: Path, files_required: bool, out
) -> None:
    local = spec.local
    if not local.plain and local.tls is None:
        out.errors.append(
            located.problem(
                ("local", "plain"),
                "with the plain listener off, devices have no way in: add"
                " `local.tls`, or set `plain: true`",
            )
        )
    tls = local.tls
    if tls is None:
        return
    if local.plain and tls.port == local.port:
        out.errors.append(
            located.problem(
                ("local", "tls", "port"),
                f"{tls.port} is the plain listener's port (`local.port`) too",
            )
        )
    for role in ("ca", "cert", "key"):
        value = getattr(tls, role)
        if value is None:
            continue
        problem = missing_file(spec_dir / value)
        if problem is not None:
            found = located.problem(("local", "tls", role), f"{value} {problem}")
            (out.errors if files_required else out.warnings).append(found)


def missing_file(path: Path) -> str | None:
    """What is wrong with a file the spec names, or None."""
    try:
        if path.is_file():
            return None
        what = "does not exist" if not path.exists() else "is not a file"
    except OSError as exc:
        what = f"cannot be read: {exc.strerror}"
    return f"{what} ({path})"


def _anonymous(spec: Spec, located: Composed, out) -> None:
    local = spec.local
    if not local.anonymous:
        return
    if local.users:
        out.warnings.append(
            located.problem(
                ("local", "allow_anonymous"),
                "anonymous clients may connect, but may use no topic: only the"
                " users listed get topics",
            )
        )
        return
    if local.bind.startswith("127."):
        return
    ports = [local.port] if local.plain else []
    ports += [local.tls.port] if local.tls else []
    where = f"{local.bind}:" + " and :".join(str(port) for port in ports)
    out.warnings.append(
        located.problem(
            ("local", "allow_anonymous"),
            f"anyone who reaches {where} may publish and subscribe without a"
            " password; add `local.users`, or bind to 127.0.0.1",
        )
    )


def _plain_without_passwords(spec: Spec, located: Composed, out) -> None:
    local = spec.local
    if not (local.plain and local.users) or local.anonymous:
        return
    if any(user.password_sources for user in local.users):
        return
    out.warnings.append(
        located.problem(
            ("local", "plain"),
            "no user has a password, so the plain listener lets no one in; set"
            " `plain: false` to serve TLS only",
        )
    )


def _users(spec: Spec, located: Composed, out) -> set[str]:
    # Client ids are user names on the devices' listeners; these belong to
    # the bridges' local side and to bridge-gen's own clients.
    taken = {f"local.{b.clientid or f'{spec.gateway}-{b.name}'}" for b in spec.bridges}
    seen: dict[str, int] = {}
    for i, user in enumerate(spec.local.users):
        if user.name in taken or user.name.startswith(OWN_CLIENT_PREFIXES):
            out.errors.append(
                located.problem(
                    ("local", "users", i, "name"),
                    f"{shown(user.name)} is a client id the gateway uses itself"
                    " (a user's client id is its name); choose another name",
                )
            )
        if user.name in seen:
            out.errors.append(
                located.problem(
                    ("local", "users", i, "name"),
                    f"{shown(user.name)} is already"
                    f" {located.name(('local', 'users', seen[user.name]))}",
                )
            )
        seen.setdefault(user.name, i)
    return set(seen)


def _password(
    i: int,
    user: LocalUser,
    spec: Spec,
    located: Composed,
    spec_dir: Path,
    environ: Mapping[str, str],
    required: bool,
    out,
) -> None:
    here = ("local", "users", i)
    given = user.password_sources
    if len(given) > 1:
        out.errors.append(
            located.problem(
                (*here, given[1]),
                "give one of password_env, password_file, password;"
                f" `{given[0]}` is set too",
            )
        )
        return
    if not given:
        if spec.local.tls is None or spec.local.tls.ca is None:
            out.errors.append(
                located.problem(
                    (*here, "name"),
                    f"user {shown(user.name)} has no password: set password_env,"
                    " password_file or password (or `local.tls.ca`, to log in"
                    " with a client certificate instead)",
                )
            )
        return
    if given == ("password",):
        out.warnings.append(
            located.problem(
                (*here, "password"),
                "a password written in the spec goes wherever the spec goes;"
                " use password_env or password_file",
            )
        )
    try:
        credentials.check(user, spec_dir, environ)
    except credentials.Unreadable as exc:
        found = located.problem((*here, exc.field), str(exc))
        (out.errors if required else out.warnings).append(found)


def _endpoint_users(spec: Spec, located: Composed, names: set[str], out) -> set[str]:
    used: set[str] = set()
    known = ", ".join(sorted(names)) or "none"
    for i, bridge in enumerate(spec.bridges):
        for j, endpoint in enumerate(bridge.endpoints):
            if endpoint.user is None:
                continue
            if endpoint.user in names:
                used.add(endpoint.user)
                continue
            out.errors.append(
                located.problem(
                    ("bridges", i, "endpoints", j, "user"),
                    f"no user {shown(endpoint.user)} in local.users (known: {known})",
                )
            )
    return used


def _idle_users(spec: Spec, located: Composed, used: set[str], out) -> None:
    for i, user in enumerate(spec.local.users):
        if user.admin or user.topics or user.name in used:
            continue
        out.warnings.append(
            located.problem(
                ("local", "users", i, "name"),
                f"{shown(user.name)} may log in but use no topic: give it `topics`"
                " or `admin: true`, or name it as an endpoint's `user`",
            )
        )


# A user's endpoint topics are its own: no other user may reach them.

_Owner = tuple[str, tuple]  # the user, and the spec path of the endpoint


def _owned_topics(spec: Spec, located: Composed, out) -> dict[str, _Owner]:
    """Each endpoint topic that has a user, with that user; first one wins.

    One topic given to two users (two bridges may carry it) is an error.
    """
    owners: dict[str, _Owner] = {}
    for i, bridge in enumerate(spec.bridges):
        for j, endpoint in enumerate(bridge.endpoints):
            if endpoint.user is None:
                continue
            here = ("bridges", i, "endpoints", j)
            first = owners.setdefault(endpoint.local, (endpoint.user, here))
            if first[0] != endpoint.user:
                out.errors.append(
                    located.problem(
                        (*here, "user"),
                        f"{shown(endpoint.local)} is the topic of"
                        f" {located.name(first[1])} too, whose user is"
                        f" {shown(first[0])}: one topic, one user",
                    )
                )
    return owners


def _nested_endpoints(owners: dict[str, _Owner], located: Composed, out) -> None:
    """An endpoint below another user's: that user's `<local>/#` covers it.

    Looked up level by level, so thousands of endpoints cost no more than
    their topics' depth each.
    """
    for topic, (user, here) in owners.items():
        levels = topic.split("/")
        for depth in range(1, len(levels)):
            above = owners.get("/".join(levels[:depth]))
            if above is None or above[0] == user:
                continue
            out.errors.append(
                located.problem(
                    (*here, "local"),
                    f"{shown(topic)} lies below {shown('/'.join(levels[:depth]))},"
                    f" the topic of {located.name(above[1])} (user"
                    f" {shown(above[0])}), who could then read and publish as"
                    f" {shown(user)}; give them topics side by side",
                )
            )
            break


def _reaching_filters(
    spec: Spec, owners: dict[str, _Owner], located: Composed, out
) -> None:
    """A user's own `topics` that reach another user's endpoint topics."""
    for i, user in enumerate(spec.local.users):
        for k, wanted in enumerate(user.topics):
            for topic, (owner, here) in owners.items():
                if owner == user.name:
                    continue
                if overlaps(wanted, topic) or overlaps(wanted, f"{topic}/#"):
                    out.warnings.append(
                        located.problem(
                            ("local", "users", i, "topics", k),
                            f"reaches {shown(topic)}, the topic of"
                            f" {located.name(here)}: {shown(user.name)} may read"
                            f" and publish as {shown(owner)} there",
                        )
                    )
                    break
