"""Where bridge-gen keeps what a gateway it started needs on this host.

`up` writes each gateway's files here, the hashed password file among them,
and the container mounts that file from here. The folder is the user's
alone (0700); `down` removes it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bridge_gen.errors import BridgeGenError


def root() -> Path:
    """BRIDGE_GEN_STATE_DIR, else the XDG state folder's bridge-gen."""
    chosen = os.environ.get("BRIDGE_GEN_STATE_DIR")
    if chosen:
        return Path(chosen)
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "bridge-gen"


def gateway_dir(gateway: str) -> Path:
    """The gateway's folder, made and kept private to this user."""
    folder = root() / gateway
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkdir's mode gives way to the umask and skips folders that exist.
        folder.chmod(0o700)
    except OSError as exc:
        raise BridgeGenError(
            f"cannot make {folder}: {exc.strerror}; set BRIDGE_GEN_STATE_DIR"
            " to a folder you can write"
        ) from None
    return folder


def forget(gateway: str) -> Path | None:
    """Remove the gateway's folder; the folder removed, if there was one."""
    folder = root() / gateway
    if not folder.exists():
        return None
    try:
        shutil.rmtree(folder)
    except OSError as exc:
        raise BridgeGenError(f"cannot remove {folder}: {exc.strerror}") from None
    return folder
