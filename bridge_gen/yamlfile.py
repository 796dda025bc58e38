"""The one YAML loader: plain data plus where every value stood in the file.

PyYAML's own constructors apply YAML 1.1 typing (`on` becomes True, `0123`
becomes 83, `1.10` becomes 1.1) and keep the last of two duplicate keys.
Both silently change what the user wrote, so this module builds the data
from the composed node tree itself: every scalar stays the text that was
written (only a plain `null`, `~` or empty value becomes None), duplicate
keys are errors, and the pydantic models do the typing with the original
text in hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bridge_gen.errors import Problem, SpecError

try:  # The C parser is many times faster on large inventories.
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_BYTES = 32 * 1024 * 1024
MAX_NODES = 2_000_000
MAX_DEPTH = 64

_NULL_TAG = "tag:yaml.org,2002:null"
_STD_TAGS = "tag:yaml.org,2002:"

Path_ = tuple[str | int, ...]


@dataclass
class Located:
    """Plain data from a YAML file and the line/column of each path in it."""

    file: str
    data: Any
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: Path_, *, key: bool = False) -> tuple[int, int] | None:
        """The 1-based line and column of a path, or of its nearest parent."""
        table = self.keys if key else self.values
        probe = tuple(path)
        while probe:
            if probe in table:
                return table[probe]
            if not key and probe in self.keys:
                return self.keys[probe]
            probe = probe[:-1]
        return self.values.get((), None)

    def problem(self, path: Path_, message: str, *, key: bool = False) -> Problem:
        spot = self.where(path, key=key)
        line, column = spot if spot else (None, None)
        return Problem(self.file, line, column, dotted(path), message)


def dotted(path: Path_) -> str:
    """`bridges[0].endpoints[3].token` from a path tuple."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def load_file(path: Path, display: str | None = None) -> Located:
    """Read and parse one spec file; every failure is a SpecError."""
    name = display or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise _fail(name, f"the file is {size} bytes; the limit is {MAX_BYTES}")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _fail(name, "no such file") from None
    except IsADirectoryError:
        raise _fail(name, "is a directory, not a spec file") from None
    except OSError as exc:
        raise _fail(name, f"cannot read: {exc.strerror}") from None
    return load_bytes(raw, name)


def load_bytes(raw: bytes, name: str) -> Located:
    """Parse spec text given as bytes (UTF-8, with or without a BOM)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(name, f"is not UTF-8 text (byte {exc.start})") from None

    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        raise SpecError([_yaml_problem(name, text, exc)]) from None
    except yaml.YAMLError as exc:
        raise _fail(name, f"is not valid YAML: {exc}") from None

    if root is None:
        raise _fail(name, "the file is empty; a spec starts with `version: 1`")
    if not isinstance(root, yaml.MappingNode):
        raise SpecError([_at(name, root, (), "the top level must be a mapping")])

    located = Located(name, None)
    builder = _Builder(located)
    located.data = builder.build(root, (), 0)
    if builder.problems:
        raise SpecError(builder.problems)
    return located


class _Builder:
    """Turns composed nodes into dicts, lists and strings, recording marks."""

    def __init__(self, located: Located):
        self.located = located
        self.problems: list[Problem] = []
        self.count = 0

    def build(self, node: yaml.Node, path: Path_, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise SpecError([_at(self.located.file, node, path, _TOO_BIG)])
        if depth > MAX_DEPTH:
            raise SpecError([_at(self.located.file, node, path, _TOO_DEEP)])
        mark = node.start_mark
        self.located.values.setdefault(path, (mark.line + 1, mark.column + 1))

        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [
                self.build(item, (*path, i), depth + 1)
                for i, item in enumerate(node.value)
            ]
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: Path_, depth: int) -> Any:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self._report(key_node, path, "a key must be a plain string")
                continue
            key = str(key_node.value)
            child = (*path, key)
            if key in out:
                first = self.located.keys[child][0]
                self._report(
                    key_node, child, f"duplicate key (first given on line {first})"
                )
                continue
            mark = key_node.start_mark
            self.located.keys[child] = (mark.line + 1, mark.column + 1)
            out[key] = self.build(value_node, child, depth + 1)
        return out

    def _scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        tag = node.tag or ""
        if not tag.startswith(_STD_TAGS):
            self._report(node, path, f"the tag {tag} is not supported")
            return None
        if tag == _NULL_TAG and not node.style:
            return None
        return node.value

    def _report(self, node: yaml.Node, path: Path_, message: str) -> None:
        self.problems.append(_at(self.located.file, node, path, message))


_TOO_BIG = (
    f"the document expands to more than {MAX_NODES} values "
    "(aliases that multiply?); refusing to load it"
)
_TOO_DEEP = f"nesting deeper than {MAX_DEPTH} levels; refusing to load it"


def _at(name: str, node: yaml.Node, path: Path_, message: str) -> Problem:
    mark = node.start_mark
    return Problem(name, mark.line + 1, mark.column + 1, dotted(path), message)


def _yaml_problem(name: str, text: str, exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    what = exc.problem or "is not valid YAML"
    if exc.context:
        what = f"{exc.context}, {what}"
    if mark is None:
        return Problem(name, None, None, "", f"YAML syntax: {what}")

    lines = text.splitlines()
    line = lines[mark.line] if mark.line < len(lines) else ""
    if "\t" in line[: mark.column + 1]:
        what = "a tab character; indent with spaces (YAML does not allow tabs)"
    return Problem(name, mark.line + 1, mark.column + 1, "", f"YAML syntax: {what}")


def _fail(name: str, message: str) -> SpecError:
    return SpecError([Problem(name, None, None, "", message)])
