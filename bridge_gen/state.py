"""Where bridge-gen keeps what it knows about a gateway on this host.

`up` writes each gateway's files here, the hashed password file among them,
and the container mounts that file from here; `status` keeps the time of
the last confirmed delivery. The folders are the user's alone (0700), so
no other user can even list the gateways; `down` removes a gateway's.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

from bridge_gen.errors import BridgeGenError


def root() -> Path:
    """BRIDGE_GEN_STATE_DIR, else bridge-gen's folder in the XDG state home."""
    chosen = os.environ.get("BRIDGE_GEN_STATE_DIR")
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_STATE_HOME", "")
    # The XDG rules say to ignore a relative path.
    home = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "state"
    return home / "bridge-gen"


def folder_of(gateway: str) -> Path:
    """The gateway's folder, whether it exists or not."""
    return root() / gateway


def private_folder(gateway: str) -> Path:
    """The gateway's folder, made if need be, 0700 like bridge-gen's own.

    Raises OSError; callers decide whether that stops them.
    """
    folder = folder_of(gateway)
    folder.parent.parent.mkdir(parents=True, exist_ok=True)
    for private in (folder.parent, folder):
        private.mkdir(mode=0o700, exist_ok=True)
        # A link, or a folder someone else made, would let them swap the
        # password file the container mounts.
        info = private.lstat()
        if stat.S_ISLNK(info.st_mode) or info.st_uid != os.geteuid():
            raise PermissionError(
                errno.EPERM, "it is a link or belongs to another user", str(private)
            )
        # mkdir's mode gives way to the umask and skips folders that exist.
        private.chmod(0o700)
    return folder


def gateway_dir(gateway: str) -> Path:
    """The gateway's private folder, or a BridgeGenError saying why not."""
    try:
        return private_folder(gateway)
    except OSError as exc:
        raise BridgeGenError(
            f"cannot use {exc.filename or folder_of(gateway)}: {exc.strerror};"
            " set BRIDGE_GEN_STATE_DIR to a folder of your own"
        ) from None


def forget(gateway: str) -> Path | None:
    """Remove the gateway's folder; the folder removed, if there was one."""
    folder = folder_of(gateway)
    if folder.is_symlink():
        folder.unlink()  # the link only, never what it points at
        return folder
    if not folder.exists():
        return None
    try:
        shutil.rmtree(folder)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise BridgeGenError(f"cannot remove {folder}: {why}") from None
    return folder
