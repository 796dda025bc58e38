"""All that bridge-gen prints goes through here; only the CLI calls it."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape

out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def say(text: str) -> None:
    out.print(escape(text))


def fresh_screen() -> bool:
    """Clear a terminal for the next report; False where output is a file."""
    if not out.is_terminal:
        return False
    out.clear()
    return True


def warn(text: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {escape(text)}")


def error(text: str) -> None:
    err.print(f"[red]error:[/red] {escape(text)}")


def table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    from rich.table import Table

    grid = Table(box=None, pad_edge=False, highlight=False)
    for header in headers:
        grid.add_column(header, overflow="fold")
    for row in rows:
        grid.add_row(*(escape(cell) for cell in row))
    # Piped output is read by grep and people alike: never cut a topic.
    wide = Console(highlight=False, width=100_000, file=sys.stdout, emoji=False)
    (out if out.is_terminal else wide).print(grid)


def emit_json(data: Any, *, lines: bool = False) -> None:
    """JSON on stdout; `lines` writes one compact line (JSON Lines)."""
    # Plain write, not rich: scripts parse this, no wrapping or markup.
    indent = None if lines else 2
    sys.stdout.write(json.dumps(data, indent=indent, sort_keys=True) + "\n")
    sys.stdout.flush()


@contextmanager
def progress(title: str) -> Iterator[Any]:
    """A spinner with the latest step on a terminal, plain lines elsewhere."""
    if err.is_terminal:
        with err.status(escape(title)) as status:

            def update(text: str) -> None:
                status.update(f"{escape(title)}: {escape(text)}")
                if text.startswith("Step "):
                    err.print(f"  {escape(text)}")

            yield update
    else:
        err.print(escape(title))
        yield lambda text: err.print(f"  {escape(text)}")


def note(text: str) -> None:
    """Progress for a person, on stderr: stdout may be JSON for a script."""
    err.print(escape(text))
