"""Column mappings: from a local system's names and codes to a dataset's.

A mapping is a small YAML file kept next to the local system (or inline in the
exchange config)::

    dataset: population
    columns:                 # local column -> canonical field
      sfzh: id_number
      ryzt: status
    values:                  # canonical field -> {local code: canonical value}
      status: {"10": normal, "21": moved_out, "30": deceased}
    timezone: Asia/Shanghai  # zone of times written without a UTC offset
    table: czrk              # for database systems
    encoding: utf-8          # for text files (e.g. gb18030)
    uscc_allowlist: []       # early USCCs accepted although they fail the check

Errors name the file, the line and the field. A file is refused past :data:`MAPPING_MAX_BYTES`,
:data:`MAPPING_MAX_NODES` nodes (aliases counted as expanded) or :data:`MAPPING_MAX_DEPTH` levels of
nesting (``MAPPING_TOO_LARGE``, ``MAPPING_TOO_DEEP``; see :mod:`connectors.yaml_bounds`).
"""

from __future__ import annotations

import codecs
import difflib
from collections.abc import Mapping as Lookup
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from connectors.errors import ExtractError
from connectors.yaml_bounds import (
    LOADER,
    FileTooLarge,
    check_bounds,
    decode,
    error_line,
    error_problem,
    read_bounded,
)
from schemas.coerce import check_zone
from schemas.standards.arrays import CAST_ERRORS

if TYPE_CHECKING:
    from schemas.contract import Dataset

__all__ = [
    "MAPPING_MAX_BYTES",
    "MAPPING_MAX_DEPTH",
    "MAPPING_MAX_NODES",
    "Mapping",
    "load_mapping",
    "read_mapping",
]

#: Bounds on a mapping file. Real ones are a few hundred nodes and three levels deep (values: field:
#: codes); a code table of thousands of entries fits many times over.
MAPPING_MAX_BYTES = 1 << 20  # 1 MiB, checked before reading
MAPPING_MAX_NODES = 200_000  # nodes, aliases counted as expanded
MAPPING_MAX_DEPTH = 32  # levels of nesting, aliases counted as expanded
_STR = "tag:yaml.org,2002:str"
_KEYS = {"dataset", "columns", "values", "timezone", "table", "encoding", "uscc_allowlist", "query"}


@dataclass(frozen=True)
class Mapping:
    """How one local system's extract maps onto a dataset."""

    dataset: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    timezone: str | None = None
    table: str | None = None
    query: str | None = None
    encoding: str = "utf-8"
    uscc_allowlist: tuple[str, ...] = ()
    source: str = ""  # the file it came from
    #: Lines of what the mapping names: ``columns.x``, ``values.f`` and ``values.f.code``.
    lines: dict[str, int] = field(default_factory=dict, compare=False)

    def check_dataset(self, dataset: Dataset) -> None:
        """The mapping fits ``dataset``: :meth:`check_fields` on its fields, :meth:`check_values` on their
        code lists; ExtractError naming the line otherwise."""
        self.check_fields(dataset.names)
        self.check_values({f.name: f.codes for f in dataset.fields if f.codes})

    def check_fields(self, fields: Sequence[str]) -> None:
        """Every canonical name the mapping uses must be one of ``fields``; ExtractError naming the line."""
        known = ", ".join(fields)
        used = [(f"columns.{local}", target) for local, target in self.columns.items()]
        used += [(f"values.{name}", name) for name in self.values]
        targets = list(self.columns.values())
        for local, target in self.columns.items():
            if targets.count(target) > 1:
                where = f"columns.{local}"
                raise ExtractError(
                    "MAPPING_FIELD",
                    f"多个本地列映射到同一字段 {target}",
                    f"more than one local column maps to {target}",
                    f"{self.source}:{self.lines[where]}" if where in self.lines else self.source,
                )
        for where, target in used:
            if target not in fields:
                loc = f"{self.source}:{self.lines[where]}" if where in self.lines else self.source
                raise ExtractError(
                    "MAPPING_FIELD",
                    f"{where} 指向未知字段 {target}（可用：{known}）",
                    f"{where} names unknown field {target} (known: {known})",
                    loc,
                )

    def check_values(self, codes: Lookup[str, Sequence[str]]) -> None:
        """Every value a code table maps to is one of its field's codes (``codes``: field -> its closed
        list of codes; a field without one is not checked); ExtractError ``MAPPING_VALUE`` naming the
        line, the field and the value, with the closest code.

        A typo there would reject every row carrying that local code, so it is refused when the mapping
        is read. An empty value (the local code means "no value") is left to the row checks.

        >>> m = Mapping(values={"status": {"10": "norml"}}, source="m.yaml", lines={"values.status.10": 4})
        >>> try:
        ...     m.check_values({"status": ("normal", "moved_out", "deceased")})
        ... except ExtractError as exc:
        ...     print(exc.code, exc.where, exc.message_en)
        MAPPING_VALUE m.yaml:4 values.status: local code '10' maps to 'norml', which is not a code of status
        — did you mean 'normal'? (codes: normal, moved_out, deceased)
        """
        for name, table in self.values.items():
            allowed = codes.get(name)
            if not allowed:
                continue
            for local, value in table.items():
                if not value.strip() or value.strip() in allowed:
                    continue
                guess = _closest(value.strip(), allowed)
                zh = f"，是否应为 '{guess}'？" if guess else ""
                en = f" — did you mean '{guess}'?" if guess else ""
                shown = ", ".join(allowed[:12]) + (", ..." if len(allowed) > 12 else "")
                where = next(
                    (self.lines[k] for k in (f"values.{name}.{local}", f"values.{name}") if k in self.lines),
                    None,
                )
                raise ExtractError(
                    "MAPPING_VALUE",
                    f"values.{name}：本地代码 {local!r} 映射到 {value!r}，不是字段 {name} 的代码{zh}（可用：{shown}）",
                    f"values.{name}: local code {local!r} maps to {value!r}, which is not a code of {name}{en} "
                    f"(codes: {shown})",
                    f"{self.source}:{where}" if where else self.source,
                )

    def apply(self, table: pa.Table) -> pa.Table:
        """Rename local columns and translate local codes; unknown codes pass through unchanged."""
        names = [self.columns.get(name, name) for name in table.column_names]
        table = table.rename_columns(names)
        for name, codes in self.values.items():
            if name not in table.column_names or not codes:
                continue
            col = table.column(name)
            if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
                try:
                    col = pc.cast(col, pa.string())
                except CAST_ERRORS:
                    continue
            local = pa.array(list(codes), type=col.type)
            canonical = pa.array(list(codes.values()), type=col.type)
            index = pc.index_in(pc.utf8_trim_whitespace(col), value_set=local)
            mapped = pc.coalesce(pc.take(canonical, index), col)
            table = table.set_column(table.column_names.index(name), name, mapped)
        return table


def _closest(value: str, codes: Sequence[str]) -> str | None:
    """The code ``value`` was most likely meant to be: the same but for case, the same number with its
    leading zeros (an unquoted ``01`` reads as ``1``), or a close spelling (of a value of 3 or more
    characters: short codes all look alike). None if none is close.

    >>> _closest("Normal", ["normal"]), _closest("1", ["01", "02", "10"]), _closest("norml", ["normal"])
    ('normal', '01', 'normal')
    >>> _closest("7", ["01", "02"]) is None
    True
    """
    for code in codes:
        if code.casefold() == value.casefold():
            return code
    if value.isdigit():
        for code in codes:
            if code.isdigit() and len(code) > len(value) and code == value.zfill(len(code)):
                return code
    if len(value) < 3:
        return None
    matches = difflib.get_close_matches(value, list(codes), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _located(node: yaml.Node, where: str) -> Any:
    """Plain Python data from a YAML node, keeping (value, line) pairs for mapping keys.

    Nesting is bounded before composing; a node reached again through an alias is converted once. A
    key that is not text, or a value that cannot be read (``2001-13-45``, an unknown tag), is
    ExtractError ``MAPPING_INVALID`` naming its line.
    """
    constructor = yaml.constructor.SafeConstructor()
    done: dict[int, Any] = {}

    def invalid(node: yaml.Node, zh: str, en: str) -> ExtractError:
        return ExtractError("MAPPING_INVALID", zh, en, f"{where}:{node.start_mark.line + 1}")

    def convert(node: yaml.Node) -> Any:
        if id(node) in done:
            return done[id(node)]
        value: Any
        if isinstance(node, yaml.MappingNode):
            value = {}
            for k, v in node.value:
                if not isinstance(k, yaml.ScalarNode):
                    raise invalid(
                        k, "键应为文本，不能是列表或键值对", "a key must be text, not a list or mapping"
                    )
                value[k.value] = (convert(v), k.start_mark.line + 1)
        elif isinstance(node, yaml.SequenceNode):
            value = [convert(v) for v in node.value]
        elif node.tag == _STR:
            value = node.value
        else:
            try:
                value = constructor.construct_object(node)
            except Exception as exc:  # PyYAML's constructors fail on odd values in many ways
                shown = node.value if len(node.value) <= 40 else node.value[:40] + "..."
                problem = str(getattr(exc, "problem", None) or exc).split(";")[0]
                raise invalid(
                    node, f"无法读取值 {shown!r}", f"cannot read value {shown!r}: {problem}"
                ) from None
        done[id(node)] = value
        return value

    return convert(node)


def _plain(located: Any) -> Any:
    if isinstance(located, dict):
        return {k: _plain(v) for k, (v, _) in located.items()}
    if isinstance(located, list):
        return [_plain(v) for v in located]
    return located


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file; ExtractError naming file, line and field otherwise."""
    path = Path(path)
    where = str(path)
    try:
        text = decode(read_bounded(path, MAPPING_MAX_BYTES), "utf-8")
    except FileNotFoundError:
        raise ExtractError("MAPPING_NOT_FOUND", "找不到映射文件", "mapping file not found", where) from None
    except FileTooLarge as exc:
        zh, en = exc.describe()
        raise ExtractError("MAPPING_TOO_LARGE", f"映射文件{zh}", f"the mapping file {en}", where) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExtractError(
            "MAPPING_UNREADABLE", "无法读取映射文件", f"cannot read mapping file: {exc}", where
        ) from None
    return _read(text, where)


def read_mapping(text: str, where: str) -> Mapping:
    """Check a mapping given as text (one written inline in ``exchange.yaml``) exactly as
    :func:`load_mapping` checks a file holding it: the same bounds (its size as UTF-8 included), the
    same errors, ``where`` naming it and its lines counted from the first line of ``text``."""
    size = len(text.encode("utf-8"))
    if size > MAPPING_MAX_BYTES:
        zh, en = FileTooLarge(size, MAPPING_MAX_BYTES).describe()
        raise ExtractError("MAPPING_TOO_LARGE", f"映射文件{zh}", f"the mapping file {en}", where)
    return _read(text, where)


def _read(text: str, where: str) -> Mapping:
    try:
        return _parse(text, where)
    except RecursionError:  # only if the depth bound were set beyond what Python's stack holds
        raise ExtractError(
            "MAPPING_TOO_DEEP", "映射文件嵌套过深", "mapping refused: nested too deeply", where
        ) from None


def _parse(text: str, where: str) -> Mapping:
    """The mapping in ``text`` (read from ``where``), checked."""
    try:
        excess = check_bounds(text, max_nodes=MAPPING_MAX_NODES, max_depth=MAPPING_MAX_DEPTH)
        node = None if excess else yaml.compose(text, Loader=LOADER)
    except yaml.YAMLError as exc:
        line = error_line(text, exc)
        loc = f"{where}:{line}" if line is not None else where
        problem = error_problem(exc)
        raise ExtractError(
            "MAPPING_SYNTAX", "映射文件不是有效的 YAML", f"mapping is not valid YAML: {problem}", loc
        ) from None
    if excess:
        raise ExtractError(
            f"MAPPING_TOO_{excess.kind}",
            f"映射文件被拒绝：{excess.message_zh}",
            f"mapping refused: {excess.message_en}",
            f"{where}:{excess.line}",
        )
    if node is None:
        return Mapping()
    if not isinstance(node, yaml.MappingNode):
        raise ExtractError(
            "MAPPING_INVALID", "映射文件应为键值对", "mapping must be a YAML mapping", f"{where}:1"
        )
    doc = _located(node, where)

    def fail(key: str, zh: str, en: str) -> ExtractError:
        line = doc[key][1] if key in doc else 1
        return ExtractError(
            "MAPPING_INVALID", f"{zh}（字段 {key}）", f"{en} (field {key})", f"{where}:{line}"
        )

    for key, (_, line) in doc.items():
        if key not in _KEYS:
            known = ", ".join(sorted(_KEYS))
            raise ExtractError(
                "MAPPING_INVALID",
                f"未知字段 {key}（可用：{known}）",
                f"unknown field {key} (known: {known})",
                f"{where}:{line}",
            )
    data = _plain(doc)
    columns = data.get("columns") or {}
    if not isinstance(columns, dict) or not all(isinstance(v, str) for v in columns.values()):
        raise fail(
            "columns", "columns 应为 本地列名: 标准字段名", "columns must map local names to field names"
        )
    values = data.get("values") or {}
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        raise fail(
            "values", "values 应为 字段: {本地代码: 标准值}", "values must map fields to {local code: value}"
        )
    timezone = data.get("timezone")
    if timezone is not None:
        try:
            check_zone(str(timezone))
        except ValueError:
            raise fail("timezone", f"未知时区 {timezone}", f"unknown time zone {timezone}") from None
    encoding = str(data.get("encoding") or "utf-8")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise fail("encoding", f"未知编码 {encoding}", f"unknown encoding {encoding}") from None
    allow = data.get("uscc_allowlist") or []
    if not isinstance(allow, list):
        raise fail("uscc_allowlist", "uscc_allowlist 应为列表", "uscc_allowlist must be a list")
    lines = {
        f"{section}.{key}": line
        for section in ("columns", "values")
        if section in doc and isinstance(doc[section][0], dict)
        for key, (_, line) in doc[section][0].items()
    }
    if "values" in doc and isinstance(doc["values"][0], dict):
        for name, (table, _) in doc["values"][0].items():
            lines.update((f"values.{name}.{code}", line) for code, (_, line) in table.items())
    return Mapping(
        source=where,
        lines=lines,
        dataset=str(data["dataset"]) if data.get("dataset") else None,
        columns={str(k): str(v) for k, v in columns.items()},
        values={str(f): {str(k): str(v) for k, v in m.items()} for f, m in values.items()},
        timezone=str(timezone) if timezone else None,
        table=str(data["table"]) if data.get("table") else None,
        query=str(data["query"]) if data.get("query") else None,
        encoding=encoding,
        uscc_allowlist=tuple(str(x) for x in allow),
    )
