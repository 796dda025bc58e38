"""The one exception tree of bridge-gen, and the exit codes it maps to.

The CLI layer is the only place that turns these into messages and exit
codes; every other module raises them and never prints.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec, located as precisely as we can."""

    file: str
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class BridgeGenError(Exception):
    """Base of every error bridge-gen reports to the user."""

    exit_code = EXIT_FAILED

    def lines(self) -> list[str]:
        return str(self).splitlines() or [type(self).__name__]


class SpecError(BridgeGenError):
    """The spec is wrong; carries every problem found, not just the first."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(
            problems, key=lambda p: (p.file, p.line or 0, p.column or 0, p.field)
        )
        super().__init__("\n".join(str(p) for p in self.problems))

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


class UsageError(BridgeGenError):
    """The command line asks for something that cannot be done as asked."""

    exit_code = EXIT_USAGE


class DockerUnavailable(BridgeGenError):
    """No Docker engine answered where we looked."""


class DockerFailed(BridgeGenError):
    """The engine answered but refused or failed the work."""


class BridgeNotConnected(BridgeGenError):
    """The container runs but a bridge did not reach its remote."""


class NotDeployed(BridgeGenError):
    """The gateway has no container that bridge-gen made."""
