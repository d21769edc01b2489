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

Errors name the file, the line and the field.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from connectors.errors import ExtractError
from schemas.coerce import check_zone
from schemas.standards.arrays import CAST_ERRORS

__all__ = ["Mapping", "load_mapping"]

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
    lines: dict[str, int] = field(default_factory=dict, compare=False)  # "columns.x" / "values.f": line

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


def _located(node: yaml.Node) -> Any:
    """Plain Python data from a YAML node, keeping (value, line) pairs for mapping keys."""
    if isinstance(node, yaml.MappingNode):
        return {k.value: (_located(v), k.start_mark.line + 1) for k, v in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [_located(v) for v in node.value]
    return yaml.safe_load(yaml.serialize(node)) if node.tag != "tag:yaml.org,2002:str" else node.value


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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExtractError("MAPPING_NOT_FOUND", "找不到映射文件", "mapping file not found", where) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExtractError(
            "MAPPING_UNREADABLE", "无法读取映射文件", f"cannot read mapping file: {exc}", where
        ) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        loc = f"{where}:{line + 1}" if line is not None else where
        problem = getattr(exc, "problem", None) or str(exc)
        raise ExtractError(
            "MAPPING_SYNTAX", "映射文件不是有效的 YAML", f"mapping is not valid YAML: {problem}", loc
        ) from None
    if node is None:
        return Mapping()
    if not isinstance(node, yaml.MappingNode):
        raise ExtractError(
            "MAPPING_INVALID", "映射文件应为键值对", "mapping must be a YAML mapping", f"{where}:1"
        )
    doc = _located(node)

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
