"""The one YAML loader: plain data plus where every value stood in the file.

PyYAML's own constructors apply YAML 1.1 typing (`on` becomes True, `0123`
becomes 83, `1.10` becomes 1.1) and keep the last of two duplicate keys.
Both silently change what the user wrote, so this module builds the data
from the parser's event stream itself: every scalar stays the text that
was written (only a plain `null`, `~` or empty value becomes None),
duplicate keys are errors, and the pydantic models do the typing with the
original text in hand.

Events rather than PyYAML's composed node tree, because the limits must
hold while parsing, not after: libyaml's composer recurses in C (deep
nesting crashes the process) and aliases would be expanded node by node
(a few hundred bytes of "billion laughs" take seconds and gigabytes). Here
an alias reuses the anchored value and adds its size to the count, and the
nesting depth is checked as each collection opens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bridge_gen.errors import Problem, SpecError

try:  # The C parser is many times faster on large inventories.
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

# A spec of 20,000 endpoints is about 2 MB and 200,000 values; larger input
# is a mistake or an attack, and is refused before it costs time or memory.
MAX_BYTES = 2 * 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64

# YAML's core tags. Others (`!!python/object`, `!!binary`, `!!set`, custom
# `!tags`) mean nothing in a spec; the non-specific `!` is a plain string.
_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = {"!", *(_CORE + t for t in ("str", "int", "float", "bool", "null"))}
_COLLECTION_TAGS = {"!", _CORE + "map", _CORE + "seq"}
_NULL_TAG = _CORE + "null"
_NULLS = ("", "~", "null", "Null", "NULL")
_MERGE = "<<"
# What YAML allows in a stream; anything else is named with its position
# here rather than left to the parser's byte offsets.
_NOT_YAML = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")

Path_ = tuple[str | int, ...]


@dataclass
class Located:
    """Plain data from a YAML file and the line/column of each path in it.

    `problems` holds what is wrong but did not stop the loading (a duplicate
    key, an unsupported tag), so they can be reported with the rest;
    `voided` the paths whose value was refused and left as None.
    """

    file: str
    data: Any
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    nulls: dict[Path_, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    voided: set[Path_] = field(default_factory=set)

    def where(self, path: Path_, *, key: bool = False) -> tuple[int, int] | None:
        """The 1-based line and column of a path, or of its nearest parent.

        `key` prefers the position of the key over that of its value (an
        unknown or duplicate key); list items have only a value position.
        """
        tables = (self.keys, self.values) if key else (self.values, self.keys)
        probe = tuple(path)
        while True:
            for table in tables:
                if probe in table:
                    return table[probe]
            if not probe:
                return None
            probe = probe[:-1]

    def problem(self, path: Path_, message: str, *, key: bool = False) -> Problem:
        spot = self.where(path, key=key)
        line, column = spot if spot else (None, None)
        return Problem(self.file, line, column, dotted(path), message)


def dotted(path: Path_) -> str:
    """`bridges[0].endpoints[3].token` from a path tuple.

    A key that is not a plain name (an unknown key with a space or a line
    break in it) is shown quoted, so a field path is always one line.
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(part):
            out += f"[{part!r}]"
        else:
            out += f".{part}" if out else part
    return out


def load_file(
    path: Path, display: str | None = None, *, lenient: bool = False
) -> Located:
    """Read and parse one spec file; every failure is a SpecError.

    With `lenient`, problems that leave the data usable are returned in
    `Located.problems` instead of raised, for the caller to report along
    with its own.
    """
    name = display or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise _fail(name, _too_large(size))
        # Bounded even when stat lies (a pipe, a device, a growing file).
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise _fail(name, "no such file") from None
    except IsADirectoryError:
        raise _fail(name, "is a directory, not a spec file") from None
    except OSError as exc:
        raise _fail(name, f"cannot read: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise _fail(name, _too_large(None))
    return load_bytes(raw, name, lenient=lenient)


def load_bytes(raw: bytes, name: str, *, lenient: bool = False) -> Located:
    """Parse spec text given as bytes (UTF-8, with or without a BOM)."""
    if len(raw) > MAX_BYTES:
        raise _fail(name, _too_large(len(raw)))
    text = _decode(raw, name)

    bad = _NOT_YAML.search(text)
    if bad:
        line, column = _position(text, bad.start())
        raise SpecError(
            [
                Problem(
                    name,
                    line,
                    column,
                    "",
                    f"the file holds the control character {bad.group()!r},"
                    " which YAML does not allow",
                )
            ]
        )

    builder = _Builder(name)
    try:
        builder.run(text)
    except yaml.MarkedYAMLError as exc:
        raise SpecError([_yaml_problem(name, text, exc)]) from None
    except yaml.YAMLError as exc:
        raise _fail(name, f"is not valid YAML: {_one_line(str(exc))}") from None

    located = builder.located
    if located.problems and not lenient:
        raise SpecError(located.problems)
    return located


def _decode(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before) - (before.rfind(b"\n") + 1) + 1
        byte = raw[exc.start]
        raise SpecError(
            [Problem(name, line, column, "", f"is not UTF-8 text (byte 0x{byte:02x})")]
        ) from None


@dataclass
class _Open:
    """A mapping or sequence whose end event has not come yet."""

    path: Path_
    value: Any
    anchor: str | None
    first_count: int
    key: str | None = None  # mappings: the key whose value comes next
    state: str = "key"  # mappings: "key", "complex key" or "value"
    drop_value: bool = False  # the next value belongs to a refused key


class _Builder:
    """Turns parser events into dicts, lists and strings, recording marks."""

    def __init__(self, name: str):
        self.located = Located(name, None)
        self.count = 0
        self.stack: list[_Open] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open_anchors: set[str] = set()
        self.documents = 0
        self.done = False

    def run(self, text: str) -> None:
        loader = _Loader(text)
        try:
            while loader.check_event():
                self.feed(loader.get_event())
        finally:
            loader.dispose()
        located = self.located
        if self.documents == 0 or located.nulls.get(()) == "":
            raise _fail(located.file, _EMPTY)
        if not isinstance(located.data, dict):
            line, column = located.values[()]
            raise SpecError([Problem(located.file, line, column, "", _NOT_A_MAPPING)])

    def feed(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise self._fatal(event, (), _SECOND_DOCUMENT)
        elif isinstance(event, yaml.ScalarEvent):
            self._scalar(event)
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            self._start(event)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            self._end()
        elif isinstance(event, yaml.AliasEvent):
            self._alias(event)

    # Where the next value goes, and whether it is a mapping key.

    def _next_path(self) -> Path_:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.value, list):
            return (*top.path, len(top.value))
        return (*top.path, top.key if top.key is not None else "?")

    def _is_key(self) -> bool:
        if not self.stack or isinstance(self.stack[-1].value, list):
            return False
        return self.stack[-1].state == "key"

    def _grow(self, event: yaml.Event, path: Path_, size: int) -> None:
        self.count += size
        if self.count > MAX_NODES:
            why = _ALIASES if isinstance(event, yaml.AliasEvent) else _TOO_BIG
            raise self._fatal(event, path, why)

    def _scalar(self, event: yaml.ScalarEvent) -> None:
        if self._is_key():
            self._key(event, event.value)
            return
        path = self._next_path()
        self._grow(event, path, 1)
        self._mark(event, path)
        value = self._scalar_value(event, path)
        self._finish(value, event.anchor, 1)

    def _scalar_value(self, event: yaml.ScalarEvent, path: Path_) -> Any:
        tag = event.tag
        plain = not event.style
        if tag == _NULL_TAG or (tag is None and plain and event.value in _NULLS):
            self.located.nulls[path] = event.value
            return None
        if tag is not None and tag not in _SCALAR_TAGS:
            self._report(event, path, f"the tag {_short(tag)} is not supported")
            self.located.voided.add(path)
            return None
        return event.value

    def _start(self, event: yaml.CollectionStartEvent) -> None:
        if self._is_key():
            # Parse the key's content, then refuse it and the value after it.
            self._report(event, self.stack[-1].path, "a key must be a plain string")
            self.stack[-1].state = "complex key"
            self.stack[-1].drop_value = True
        path = self._next_path()
        if len(self.stack) >= MAX_DEPTH:
            # No field path: at this depth it would fill the screen.
            raise self._fatal(event, (), _TOO_DEEP)
        self._grow(event, path, 1)
        self._mark(event, path)
        tag = event.tag
        if tag is not None and tag not in _COLLECTION_TAGS:
            self._report(event, path, f"the tag {_short(tag)} is not supported")
        empty: Any = {} if isinstance(event, yaml.MappingStartEvent) else []
        self.stack.append(_Open(path, empty, event.anchor, self.count - 1))
        if event.anchor:
            self.open_anchors.add(event.anchor)

    def _end(self) -> None:
        done = self.stack.pop()
        if done.anchor:
            self.open_anchors.discard(done.anchor)
        self._finish(done.value, done.anchor, self.count - done.first_count)

    def _alias(self, event: yaml.AliasEvent) -> None:
        path = self._next_path()
        if self._is_key():
            self._report(event, path, "a key must be a plain string, not an alias")
            self.stack[-1].state = "value"
            self.stack[-1].drop_value = True
            return
        self._mark(event, path)
        name = event.anchor
        if name in self.open_anchors:
            self._report(event, path, f"the alias *{name} refers to itself")
            self.located.voided.add(path)
            self._finish(None, None, 1)
        elif name not in self.anchors:
            self._report(event, path, f"the alias *{name} has no anchor &{name} above")
            self.located.voided.add(path)
            self._finish(None, None, 1)
        else:
            # The anchored value is shared, not copied: memory stays bounded
            # while the count still grows by everything the alias stands for.
            value, size = self.anchors[name]
            self._grow(event, path, size)
            self._finish(value, None, 0)

    def _key(self, event: yaml.ScalarEvent, key: str) -> None:
        top = self.stack[-1]
        child = (*top.path, key)
        top.state = "value"
        top.key = key
        if key == _MERGE and not event.style:
            self._report(event, child, _NO_MERGE)
            top.drop_value = True
        elif key in top.value:
            first = self.located.keys[child][0]
            self._report(event, child, f"duplicate key (first given on line {first})")
            top.drop_value = True
        else:
            mark = event.start_mark
            self.located.keys[child] = (mark.line + 1, mark.column + 1)

    def _finish(self, value: Any, anchor: str | None, size: int) -> None:
        if anchor:
            self.anchors[anchor] = (value, size)
        if not self.stack:
            self.located.data = value
            return
        top = self.stack[-1]
        if isinstance(top.value, list):
            top.value.append(value)
            return
        if top.state == "complex key":
            top.state = "value"
            return
        if not top.drop_value:
            top.value[top.key] = value
        top.key = None
        top.drop_value = False
        top.state = "key"

    def _mark(self, event: yaml.Event, path: Path_) -> None:
        mark = event.start_mark
        self.located.values.setdefault(path, (mark.line + 1, mark.column + 1))

    def _report(self, event: yaml.Event, path: Path_, message: str) -> None:
        self.located.problems.append(_at(self.located.file, event, path, message))

    def _fatal(self, event: yaml.Event, path: Path_, message: str) -> SpecError:
        return SpecError([_at(self.located.file, event, path, message)])


_EMPTY = "the file is empty; a spec starts with `version: 1`"
_NOT_A_MAPPING = "the top level must be a mapping of keys to values"
_SECOND_DOCUMENT = "a spec is one YAML document; a second one starts here"
_NO_MERGE = "merge keys (`<<`) are not supported; write the keys out"
_TOO_BIG = f"the document holds more than {MAX_NODES} values; refusing to load it"
_ALIASES = (
    f"aliases here expand the document to more than {MAX_NODES} values;"
    " refusing to load it"
)
_TOO_DEEP = f"nesting deeper than {MAX_DEPTH} levels; refusing to load it"


def _short(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


def _too_large(size: int | None) -> str:
    if size is None:
        return f"the file is larger than {MAX_BYTES} bytes, the limit for a spec"
    return f"the file is {size} bytes; the limit for a spec is {MAX_BYTES} bytes"


def _at(name: str, event: yaml.Event, path: Path_, message: str) -> Problem:
    mark = event.start_mark
    return Problem(name, mark.line + 1, mark.column + 1, dotted(path), message)


def _position(text: str, index: int) -> tuple[int, int]:
    before = text[:index]
    line = before.count("\n") + 1
    return line, index - (before.rfind("\n") + 1) + 1


def _yaml_problem(name: str, text: str, exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    what = exc.problem or "is not valid YAML"
    if "maximum nesting depth" in what:
        # Newer libyaml (PyYAML 6.0.4) stops deep nesting itself, before
        # our own depth check sees it; say the same thing either way.
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        return Problem(name, line, column, "", _TOO_DEEP)
    start = exc.context_mark
    if exc.context and start is not None:
        # The problem shows where parsing gave up, often the end of the
        # file; the context says where the unclosed thing began.
        what = f"{what} ({exc.context} that starts on line {start.line + 1})"
    elif exc.context:
        what = f"{what} ({exc.context})"
    what = _one_line(what)
    if mark is None:
        return Problem(name, None, None, "", f"YAML syntax: {what}")

    lines = text.splitlines()
    line = lines[mark.line] if mark.line < len(lines) else ""
    if "\t" in line[: mark.column + 1]:
        what = "a tab character; indent with spaces (YAML does not allow tabs)"
    return Problem(name, mark.line + 1, mark.column + 1, "", f"YAML syntax: {what}")


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _fail(name: str, message: str) -> SpecError:
    return SpecError([Problem(name, None, None, "", message)])
