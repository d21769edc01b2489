"""Reading YAML that people write, within bounds: file size, nesting depth and size after aliases.

``yaml.compose`` keeps an alias as a second reference to its anchor's node, so a few hundred bytes can
describe a document of billions of nodes (the "billion laughs"); whatever later walks the nodes, or the
data built from them, pays for the expansion. The composers also recurse once per nesting level
(PyYAML's overflows Python's stack, libyaml's the C stack). :func:`check_bounds` reads the event stream
instead (``yaml.parse`` is iterative) in one linear pass, and stops at the first node past the bounds,
before anything is composed. Anchors and aliases within the bounds are fine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

__all__ = [
    "LOADER",
    "Excess",
    "FileTooLarge",
    "check_bounds",
    "decode",
    "error_line",
    "error_problem",
    "read_bounded",
]

#: libyaml's parser when PyYAML has it (same events, nodes and marks as PyYAML's, several times faster).
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MIB = 1 << 20


class FileTooLarge(Exception):
    """A file over its size limit; ``size`` is None when it has no size to stat (a pipe or device)."""

    def __init__(self, size: int | None, limit: int) -> None:
        super().__init__(f"{size} bytes > {limit}")
        self.size, self.limit = size, limit

    def describe(self) -> tuple[str, str]:
        """(zh, en) to follow "the file": ``is 16,777,217 bytes, more than the 16 MiB limit``."""
        limit = f"{self.limit / _MIB:g} MiB"
        if self.size is None:
            return f"超过 {limit} 的上限", f"is more than the {limit} limit"
        return (
            f"有 {self.size:,} 字节，超过 {limit} 的上限",
            f"is {self.size:,} bytes, more than the {limit} limit",
        )


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of ``path``, or :class:`FileTooLarge` when it has more than ``limit``.

    The size is checked on the open file before anything is read; a file without one (a pipe, a
    device) is read no further than ``limit`` + 1 bytes. ``OSError`` as :func:`open` raises it.
    """
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise FileTooLarge(size, limit)
        # The whole file and a byte more, to notice one still growing; a file still growing, a pipe or
        # a device is then read on in pieces, to a byte past the limit.
        chunks = [f.read(size + 1)] if size else []
        total = sum(map(len, chunks))
        read_on = not size or total > size
        while read_on and total <= limit:
            chunk = f.read(min(limit + 1 - total, _MIB))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    if total > limit:
        raise FileTooLarge(None, limit)
    return b"".join(chunks)


def decode(data: bytes, encoding: str) -> str:
    """``data`` as text with ``\\r\\n`` and ``\\r`` line ends made ``\\n``, as ``Path.read_text`` gives it."""
    text = data.decode(encoding)
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


@dataclass(frozen=True)
class Excess:
    """Why a YAML text is refused: ``kind`` is ``LARGE`` or ``DEEP``; ``line`` counts from 1."""

    kind: Literal["LARGE", "DEEP"]
    line: int
    message_zh: str
    message_en: str


@dataclass
class _Open:
    """A sequence or mapping whose end has not come yet."""

    anchor: str | None
    before: int  # nodes counted before it
    level: int  # its own nesting level (the document's top node is level 1)
    deepest: int  # the deepest level reached inside it so far


def check_bounds(text: str, *, max_nodes: int, max_depth: int) -> Excess | None:
    """None if ``text`` stays within ``max_nodes`` nodes (aliases counted as expanded) and ``max_depth``
    levels of nesting (an alias counting the depth of its anchor's node), else the first node past them.

    One pass over the events, keeping the expanded size and height of each anchor's node when it ends.
    A YAML syntax error raises ``yaml.YAMLError`` as composing would.

    >>> check_bounds("a: &x [1, 2]\\nb: *x\\n", max_nodes=100, max_depth=5) is None
    True
    >>> bomb = "a: &a [x, x, x]\\nb: &b [*a, *a, *a]\\nc: &c [*b, *b, *b]\\n"
    >>> excess = check_bounds(bomb, max_nodes=30, max_depth=5)
    >>> excess.kind, excess.line, excess.message_en
    ('LARGE', 3, 'alias *b takes the document past 30 nodes (aliases counted as expanded)')
    >>> check_bounds("a: [[[[1]]]]", max_nodes=100, max_depth=4).message_en
    'nesting deeper than 4 levels (aliases counted as expanded)'
    >>> check_bounds("a: &a [1, *a]", max_nodes=100, max_depth=100).kind
    'DEEP'
    """
    total = 0
    stack: list[_Open] = []
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (expanded nodes, height) of its node
    open_anchors: set[str] = set()
    for event in yaml.parse(text, Loader=LOADER):
        alias = None
        if isinstance(event, yaml.AliasEvent):
            alias = event.anchor
            if alias in open_anchors:
                return Excess(
                    "DEEP",
                    event.start_mark.line + 1,
                    f"别名 *{alias} 位于它所指的节点之内，嵌套没有尽头",
                    f"alias *{alias} is inside the node it names: it nests without end",
                )
            nodes, height = anchors.get(alias, (1, 1))  # an unknown alias: composing reports it
        elif isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
            nodes, height = 1, 1
        elif isinstance(event, yaml.CollectionEndEvent):
            done = stack.pop()
            if done.anchor is not None:
                open_anchors.discard(done.anchor)
                anchors[done.anchor] = (total - done.before, done.deepest - done.level + 1)
            if stack and done.deepest > stack[-1].deepest:
                stack[-1].deepest = done.deepest
            continue
        else:  # stream and document start and end
            if isinstance(event, yaml.DocumentStartEvent):
                anchors.clear()
            continue
        level = len(stack) + 1
        reached = level + height - 1
        total += nodes
        line = event.start_mark.line + 1
        if reached > max_depth:
            return Excess(
                "DEEP",
                line,
                f"嵌套超过 {max_depth} 层（别名按展开计）",
                f"nesting deeper than {max_depth} levels (aliases counted as expanded)",
            )
        if total > max_nodes:
            if alias is None:
                zh, en = f"节点超过 {max_nodes:,} 个", f"more than {max_nodes:,} nodes"
            else:
                zh = f"别名 *{alias} 使节点总数超过 {max_nodes:,} 个（别名按展开计）"
                en = f"alias *{alias} takes the document past {max_nodes:,} nodes (aliases counted as expanded)"
            return Excess("LARGE", line, zh, en)
        if stack and reached > stack[-1].deepest:
            stack[-1].deepest = reached
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append(_Open(event.anchor, total - 1, level, level))
            if event.anchor is not None:
                open_anchors.add(event.anchor)
        elif isinstance(event, yaml.ScalarEvent) and event.anchor is not None:
            anchors[event.anchor] = (1, 1)
    return None


def error_line(text: str, exc: yaml.YAMLError) -> int | None:
    """The line (from 1) a YAML error points at, for errors with a mark and for reader errors (a
    character YAML forbids), which have only a position: a byte offset in UTF-8 for libyaml, a
    character offset for PyYAML's reader."""
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return int(mark.line) + 1
    if isinstance(exc, yaml.reader.ReaderError):
        if LOADER is yaml.SafeLoader:
            return text[: exc.position].count("\n") + 1
        return text.encode("utf-8", "surrogatepass")[: exc.position].count(b"\n") + 1
    return None


def error_problem(exc: yaml.YAMLError) -> str:
    """What a YAML error says is wrong, without PyYAML's "in <unicode string>, position ..." part."""
    if isinstance(exc, yaml.reader.ReaderError):
        char = exc.character if isinstance(exc.character, int) else ord(exc.character or "?")
        return f"unacceptable character #x{char:04x}: {exc.reason}"
    return str(getattr(exc, "problem", None) or exc)
