"""Writing a rendered bundle: all files or none, and what happened to each.

Every file is first written beside its destination under a temporary name,
then all are renamed into place. A failure before the renames leaves the
folder as it was.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bridge_gen.errors import BridgeGenError
from bridge_gen.render import RenderedFile


@dataclass(frozen=True)
class Written:
    name: str
    path: Path
    action: str  # created, updated, unchanged or removed


def write_bundle(
    files: tuple[RenderedFile, ...], out_dir: Path, owned: tuple[str, ...] = ()
) -> list[Written]:
    """Write `files`; those of `owned` the bundle no longer has are removed.

    A password file or access list left behind after the users went from
    the spec would still be mounted by the compose file.
    """
    try:
        return _write(files, out_dir, owned)
    except OSError as exc:
        where = exc.filename or out_dir
        raise BridgeGenError(f"cannot write {where}: {exc.strerror}") from None


def _write(
    files: tuple[RenderedFile, ...], out_dir: Path, owned: tuple[str, ...]
) -> list[Written]:
    out_dir.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[str, Path]] = []
    report: list[Written] = []
    try:
        for item in files:
            target = out_dir / item.name
            data = item.text.encode("utf-8")
            action = _action(target, data, item.mode)
            report.append(Written(item.name, target, action))
            if action != "unchanged":
                staged.append((_stage(out_dir, data, item.mode), target))
    except BaseException:
        for temp, _ in staged:
            Path(temp).unlink(missing_ok=True)
        raise

    for temp, target in staged:
        os.replace(temp, target)
    kept = {item.name for item in files}
    for name in owned:
        target = out_dir / name
        if name not in kept and target.is_file():
            target.unlink()
            report.append(Written(name, target, "removed"))
    return report


def _action(target: Path, data: bytes, mode: int) -> str:
    try:
        same = target.read_bytes() == data
        mode_ok = (target.stat().st_mode & 0o777) == mode
    except FileNotFoundError:
        return "created"
    return "unchanged" if same and mode_ok else "updated"


def _stage(out_dir: Path, data: bytes, mode: int) -> str:
    fd, temp = tempfile.mkstemp(dir=out_dir, prefix=".bridge-gen-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return temp
