"""Endpoints listed in a CSV file beside the spec (`inventory: devices.csv`).

A plant's device list usually lives in a spreadsheet; exporting it as CSV
beats copying hundreds of endpoints into YAML by hand. Each row becomes an
endpoint of the bridge, after the ones written in YAML, and then goes
through exactly the checks a YAML endpoint does. Values are kept as written
(the same rule as the YAML loader): the models do the typing.

A problem in a row is reported as `devices.csv:14: token: message`: the
file, the line the row starts on, and the column as the field.
"""

from __future__ import annotations

import csv
import difflib
import io
from dataclasses import dataclass, field
from pathlib import Path

from bridge_gen.errors import Problem
from bridge_gen.names import shown
from bridge_gen.yamlfile import MAX_BYTES, Located, Path_

COLUMNS = ("token", "local", "app_version", "request_id", "user")
REQUIRED = ("token", "local")
# The YAML loader's bound for a whole spec holds for a list of endpoints too.
MAX_ROWS = 20_000


class Unreadable(Exception):
    """The file cannot be read at all; reported where the spec names it."""


@dataclass
class Rows(Located):
    """The rows of one inventory as endpoint mappings, and their lines.

    A path into it is `(row, column)`; problems name the row's first line
    and the column, and `name` says `devices.csv:14` in messages that point
    at another endpoint.
    """

    lines: list[int] = field(default_factory=list)

    def problem(self, path: Path_, message: str, *, key: bool = False) -> Problem:
        row = path[0] if path and isinstance(path[0], int) else None
        line = self.lines[row] if row is not None else None
        column = str(path[1]) if len(path) > 1 else ""
        return Problem(self.file, line, None, column, message)

    def name(self, path: Path_) -> str:
        row = path[0] if path and isinstance(path[0], int) else None
        return f"{self.file}:{self.lines[row]}" if row is not None else self.file


def read(path: Path, display: str) -> tuple[Rows, list[Problem]]:
    """The rows of an inventory and what is wrong with the file itself.

    Raises Unreadable when there is no file to read; problems inside the
    file (encoding, header, a row of the wrong width) are returned.
    """
    raw = _read_bytes(path)
    rows = Rows(display, [])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = f"is not UTF-8 text (byte 0x{raw[exc.start]:02x})"
        return rows, [Problem(display, line, None, "", message)]
    return rows, _parse(text, rows)


def _read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise Unreadable(_too_large(size))
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise Unreadable(f"does not exist ({path})") from None
    except IsADirectoryError:
        raise Unreadable(f"is a directory, not a CSV file ({path})") from None
    except OSError as exc:
        raise Unreadable(f"cannot be read: {exc.strerror} ({path})") from None
    if len(raw) > MAX_BYTES:
        raise Unreadable(_too_large(None))
    return raw


def _too_large(size: int | None) -> str:
    if size is None:
        return f"is larger than {MAX_BYTES} bytes, the limit for an inventory"
    return f"is {size} bytes; the limit for an inventory is {MAX_BYTES} bytes"


def _parse(text: str, rows: Rows) -> list[Problem]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    problems: list[Problem] = []
    start = 1
    try:
        for cells in reader:
            # A quoted value may span lines: a row starts after the last one.
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header = [cell.strip() for cell in cells]
                problems += _header(header, rows.file, line)
                if problems:
                    return problems
                continue
            if len(rows.data) == MAX_ROWS:
                message = f"more than {MAX_ROWS} rows; refusing to load them"
                return [*problems, Problem(rows.file, line, None, "", message)]
            problems += _row(header, cells, rows, line)
    except csv.Error as exc:
        message = f"is not valid CSV: {exc}"
        problems.append(Problem(rows.file, reader.line_num, None, "", message))
    if header is None:
        message = f"the file is empty; an inventory starts with a header row: {_HEAD}"
        problems.append(Problem(rows.file, None, None, "", message))
    return problems


_HEAD = ",".join(REQUIRED)


def _header(header: list[str], file: str, line: int) -> list[Problem]:
    problems = []
    for i, name in enumerate(header):
        if name not in COLUMNS:
            problems.append(Problem(file, line, None, "", _unknown(name)))
        elif name in header[:i]:
            message = f"the column `{name}` is named twice"
            problems.append(Problem(file, line, None, "", message))
    for name in REQUIRED:
        if name not in header:
            message = f"the header has no `{name}` column (it needs {_HEAD})"
            problems.append(Problem(file, line, None, "", message))
    return problems


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name, COLUMNS, n=1, cutoff=0.6)
    hint = f"; did you mean `{close[0]}`?" if close else ""
    known = ", ".join(sorted(COLUMNS))
    named = f"`{name}`" if name.isidentifier() else shown(name)
    return f"unknown column {named}{hint} (known: {known})"


def _row(header: list[str], cells: list[str], rows: Rows, line: int) -> list[Problem]:
    if len(cells) != len(header):
        message = f"has {len(cells)} values; the header names {len(header)} columns"
        return [Problem(rows.file, line, None, "", message)]
    # An empty optional cell means "not set here": the bridge's value holds.
    endpoint = {
        name: cell
        for name, cell in zip(header, cells, strict=True)
        if cell or name in REQUIRED
    }
    rows.data.append(endpoint)
    rows.lines.append(line)
    return []
