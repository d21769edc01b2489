"""Reading ``exchange.yaml``: bounded, composed into YAML nodes that keep their line numbers, and read
through typed getters that fail with the field's path (``nodes[2].parent``) and ``file:line``.

A file past :data:`CONFIG_MAX_BYTES`, :data:`CONFIG_MAX_NODES` nodes (aliases counted as expanded) or
:data:`CONFIG_MAX_DEPTH` levels of nesting is refused before it is composed (``CONFIG_TOO_LARGE``,
``CONFIG_TOO_DEEP``; see :mod:`connectors.yaml_bounds`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

import schemas
from connectors.mapping import Mapping
from connectors.yaml_bounds import (
    LOADER,
    FileTooLarge,
    check_bounds,
    decode,
    error_line,
    error_problem,
    read_bounded,
)
from tongban.core.config.errors import ConfigError, _hint
from tongban.core.config.resolve import _absolute_sqlite, connection_url

__all__ = ["CONFIG_MAX_BYTES", "CONFIG_MAX_DEPTH", "CONFIG_MAX_NODES", "SCHEDULE_PRESETS", "parse_duration"]

#: Bounds on ``exchange.yaml``. The whole country (34 provinces, ~2,850 counties, 3 systems each with
#: an inline mapping of ~30 nodes) is about 5 MB and 470,000 nodes, seven levels deep.
CONFIG_MAX_BYTES = 16 << 20  # 16 MiB, checked before reading
CONFIG_MAX_NODES = 4_000_000  # nodes, aliases counted as expanded
CONFIG_MAX_DEPTH = 64  # levels of nesting, aliases counted as expanded
#: Airflow's schedule presets (``airflow.utils.dates.cron_presets`` plus the two special ones).
SCHEDULE_PRESETS = (
    "@once",
    "@continuous",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@quarterly",
    "@yearly",
)

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_NULL = "tag:yaml.org,2002:null"
_CODE = re.compile(r"[0-9]{6}")
_NAMES = {
    "env": (re.compile(r"[A-Za-z_][A-Za-z0-9_]*"), "环境变量名", "environment variable name"),
    "conn": (re.compile(r"[A-Za-z0-9_.-]+"), "连接 ID", "connection id"),
    "system": (
        re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*"),
        "本地系统名（字母、数字、- 和 _）",
        "system name (letters, digits, - and _)",
    ),
}
_DURATION = re.compile(r"(?:[0-9]+[smhd])+")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | int) -> int:
    """Seconds in a duration: an int of seconds, or ``30s``, ``10m``, ``2h``, ``1d`` (also ``1h30m``).

    >>> parse_duration("10m"), parse_duration("1h30m"), parse_duration(45), parse_duration("90")
    (600, 5400, 45, 90)
    >>> parse_duration("ten minutes")
    Traceback (most recent call last):
    ...
    ValueError: 'ten minutes' is not a duration: give seconds or a number with s, m, h or d (e.g. 10m)
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"{text!r} is not a duration: it must not be negative")
        return text
    value = text.strip() if isinstance(text, str) else ""
    if value.isascii() and value.isdigit():
        return int(value)
    if not _DURATION.fullmatch(value):
        raise ValueError(f"{text!r} is not a duration: give seconds or a number with s, m, h or d (e.g. 10m)")
    return sum(int(n) * _UNITS[unit] for n, unit in re.findall(r"([0-9]+)([smhd])", value))


def _check_schedule(text: str) -> str | None:
    """None if ``text`` is an Airflow preset or a five-field cron expression, else what is wrong."""
    if text.startswith("@"):
        return None if text in SCHEDULE_PRESETS else f"unknown preset (known: {', '.join(SCHEDULE_PRESETS)})"
    if len(text.split()) != 5:
        return "a cron expression has five fields (minute hour day month weekday)"
    try:
        from croniter import croniter
    except ImportError:  # pragma: no cover - croniter comes with Airflow
        return None
    return None if croniter.is_valid(text) else "not a valid cron expression"


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _value(node: yaml.Node) -> Any:
    """The Python value of a node (safe types only); an exception (ValueError, YAMLError...) if it has none."""
    return yaml.safe_load(yaml.serialize(node))


def _is_null(node: yaml.Node | None) -> bool:
    return node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL)


class _File:
    """The config being read: its path for ``where``, its text and its folder."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text
        self.base = path.resolve().parent
        self.mappings: dict[Path | str, Mapping] = {}  # mapping files and inline texts read so far
        self.lenient = False  # keep a system's mapping error (in ``broken``) instead of raising it
        self.broken: dict[str, ConfigError] = {}

    def error(self, code: str, zh: str, en: str, line: int | None) -> ConfigError:
        return ConfigError(code, zh, en, f"{self.path}:{line}" if line else str(self.path))

    def resolve(self, text: str) -> Path:
        return Path(os.path.normpath(self.base / Path(text).expanduser()))


class _Section:
    """A YAML mapping at a field path (``nodes[2]``): typed getters failing with the path and line."""

    def __init__(
        self, file: _File, node: yaml.Node | None, field: str, known: tuple[str, ...], line: int = 1
    ) -> None:
        self.file, self.field, self.line = file, field, line if node is None else _line(node)
        self.values: dict[str, yaml.Node] = {}
        self.lines: dict[str, int] = {}
        if node is None:  # an optional section left out: every getter gives its default
            return
        if not isinstance(node, yaml.MappingNode):
            raise file.error(
                "CONFIG_INVALID",
                f"{field or '配置文件'} 应为键值对（key: value）",
                f"{field or 'the config file'} must be a mapping (key: value)",
                self.line,
            )
        for key_node, value in node.value:
            line = _line(key_node)
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.tag)
            if key in self.values:
                raise file.error(
                    "CONFIG_INVALID",
                    f"{self.path(key)} 重复出现（首次在第 {self.lines[key]} 行）",
                    f"{self.path(key)} is given twice (first on line {self.lines[key]})",
                    line,
                )
            if key not in known:
                zh, en = _hint(key, known)
                where_zh = field or "顶层"
                where_en = field or "the top level"
                raise file.error(
                    "CONFIG_INVALID",
                    f"{where_zh} 中有未知字段 '{key}'{zh}",
                    f"unknown field '{key}' in {where_en}{en}",
                    line,
                )
            self.values[key] = value
            self.lines[key] = line

    def path(self, key: str) -> str:
        return f"{self.field}.{key}" if self.field else key

    def has(self, key: str) -> bool:
        return not _is_null(self.values.get(key))

    def node(self, key: str) -> yaml.Node | None:
        value = self.values.get(key)
        return None if _is_null(value) else value

    def fail(self, key: str | None, zh: str, en: str, code: str = "CONFIG_INVALID") -> ConfigError:
        line = self.lines.get(key, self.line) if key else self.line
        return self.file.error(code, zh, en, line)

    def missing(self, key: str) -> ConfigError:
        return self.fail(None, f"缺少必填字段 {self.path(key)}", f"{self.path(key)} is required")

    def text(self, key: str, *, required: bool = False, default: str | None = None) -> str | None:
        """A text value; an unquoted number counts as its text as written (``000000`` stays ``000000``)."""
        node = self.node(key)
        if node is None:
            if required:
                raise self.missing(key)
            return default
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (_STR, _INT):
            raise self.fail(key, f"{self.path(key)} 应为文本", f"{self.path(key)} must be text")
        if required and not node.value.strip():
            raise self.missing(key)
        return node.value

    def code(self, key: str, *, required: bool = False) -> str | None:
        value = self.text(key, required=required)
        if value is not None and not _CODE.fullmatch(value):
            raise self.fail(
                key,
                f'{self.path(key)} 应为 6 位行政区划代码（GB/T 2260），如 "630104"，而不是 {value!r}',
                f'{self.path(key)} must be a 6-digit division code (GB/T 2260) such as "630104", not {value!r}',
            )
        return value

    def choice(self, key: str, options: Iterable[str], *, required: bool = False) -> str | None:
        value = self.text(key, required=required)
        options = list(options)
        if value is not None and value not in options:
            zh, en = _hint(value, options, show_known=False)
            raise self.fail(
                key,
                f"{self.path(key)} 不能为 {value!r}（可选：{', '.join(options)}）{zh}",
                f"{self.path(key)} cannot be {value!r} (one of: {', '.join(options)}){en}",
            )
        return value

    def dataset(self, key: str) -> str:
        value = self.text(key, required=True)
        assert value is not None
        if value not in schemas.DATASETS:
            zh, en = _hint(value, schemas.DATASETS, show_known=False)
            known = ", ".join(schemas.DATASETS)
            raise self.fail(
                key,
                f"{self.path(key)}：未知数据集 {value!r}（可用：{known}）{zh}",
                f"{self.path(key)}: unknown dataset {value!r} (known: {known}){en}",
                "CONFIG_DATASET",
            )
        return value

    def integer(self, key: str, default: int, minimum: int) -> int:
        node = self.node(key)
        if node is None:
            return default
        try:
            value = _value(node) if node.tag == _INT else None
        except Exception:  # !!int x, more digits than Python converts...
            value = None
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.fail(
                key,
                f"{self.path(key)} 应为不小于 {minimum} 的整数",
                f"{self.path(key)} must be a whole number of at least {minimum}",
            )
        return value

    def duration(self, key: str, default: str) -> int:
        node = self.node(key)
        raw: str | int = default
        if node is not None:
            if not isinstance(node, yaml.ScalarNode) or node.tag not in (_STR, _INT):
                raise self.fail(key, f"{self.path(key)} 应为时长", f"{self.path(key)} must be a duration")
            raw = int(node.value) if node.tag == _INT and node.value.isdigit() else node.value
        try:
            return parse_duration(raw)
        except ValueError as exc:
            raise self.fail(
                key, f"{self.path(key)} 不是有效时长（如 30s、10m、2h、1d）", f"{self.path(key)}: {exc}"
            ) from None

    def schedule(self, key: str, default: str | None) -> str | None:
        """A schedule: absent -> ``default``; ``null`` -> None; else a preset or cron expression."""
        if key not in self.values:
            return default
        value = self.text(key)
        if value is None:
            return None
        problem = _check_schedule(value.strip())
        if problem:
            raise self.fail(
                key,
                f"{self.path(key)} 不是有效的调度 {value!r}（cron 表达式或 @hourly 等预设）",
                f"{self.path(key)}: {value!r} is not a schedule: {problem}",
            )
        return value.strip()

    def section(self, key: str, known: tuple[str, ...]) -> _Section:
        """The mapping at ``key``; an empty section (all defaults) when it is left out."""
        return _Section(self.file, self.node(key), self.path(key), known, self.lines.get(key, self.line))

    def items(self, key: str) -> list[yaml.Node]:
        node = self.node(key)
        if node is None:
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(key, f"{self.path(key)} 应为列表", f"{self.path(key)} must be a list")
        return list(node.value)

    def one_of(self, keys: tuple[str, ...]) -> tuple[str, str]:
        """The one of ``keys`` that is given, and its text; ConfigError if none or several."""
        given = [k for k in keys if self.has(k)]
        names = ", ".join(keys)
        if not given:
            raise self.fail(
                None, f"{self.field} 需要且只能有 {names} 之一", f"{self.field} needs exactly one of {names}"
            )
        if len(given) > 1:
            raise self.fail(
                given[1],
                f"{self.field} 同时给出了 {given[0]} 和 {given[1]}，只能有 {names} 之一",
                f"{self.field} gives both {given[0]} and {given[1]}: give exactly one of {names}",
            )
        value = self.text(given[0], required=True)
        assert value is not None
        return given[0], value.strip()

    def url(self, key: str, value: str) -> str:
        """A URL written in the file: parseable, without a password, relative SQLite made absolute."""
        try:
            parsed = sa.make_url(connection_url(value))
        except (ValueError, sa.exc.ArgumentError):
            raise self.fail(
                key, f"{self.path(key)} 不是有效的数据库地址", f"{self.path(key)} is not a database URL"
            ) from None
        if parsed.password:
            raise self.fail(
                key,
                f"{self.path(key)} 含有密码：凭据不能写在配置文件中，请用 conn_id 或环境变量",
                f"{self.path(key)} holds a password: credentials never live in the file "
                "(use conn_id or an environment variable)",
            )
        return _absolute_sqlite(connection_url(value), self.file.base)

    def name(self, key: str, value: str, kind: str) -> str:
        """``value`` if it is a valid ``kind`` name ("env", "conn" or "system"), else ConfigError."""
        pattern, zh, en = _NAMES[kind]
        if not pattern.fullmatch(value):
            raise self.fail(
                key,
                f"{self.path(key)}：{value!r} 不是有效的{zh}",
                f"{self.path(key)}: {value!r} is not a valid {en}",
            )
        return value


def _read(path: Path) -> _File:
    try:
        text = decode(read_bounded(path, CONFIG_MAX_BYTES), "utf-8-sig")
    except FileNotFoundError:
        raise ConfigError("CONFIG_NOT_FOUND", "找不到配置文件", "config file not found", str(path)) from None
    except FileTooLarge as exc:
        zh, en = exc.describe()
        raise ConfigError("CONFIG_TOO_LARGE", f"配置文件{zh}", f"the config file {en}", str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            "CONFIG_UNREADABLE",
            f"无法读取配置文件：{detail}",
            f"cannot read the config file: {detail}",
            str(path),
        ) from None
    return _File(path, text)


def _compose(file: _File) -> yaml.Node:
    """The file's node tree, once its size after aliases and its depth are known to be within bounds."""
    try:
        excess = check_bounds(file.text, max_nodes=CONFIG_MAX_NODES, max_depth=CONFIG_MAX_DEPTH)
        root = None if excess else yaml.compose(file.text, Loader=LOADER)
    except yaml.YAMLError as exc:
        problem = error_problem(exc)
        raise file.error(
            "CONFIG_SYNTAX",
            f"配置文件不是有效的 YAML：{problem}",
            f"the config file is not valid YAML: {problem}",
            error_line(file.text, exc),
        ) from None
    if excess:
        raise file.error(
            f"CONFIG_TOO_{excess.kind}",
            f"配置文件被拒绝：{excess.message_zh}",
            f"config file refused: {excess.message_en}",
            excess.line,
        )
    if root is None:
        raise file.error("CONFIG_INVALID", "配置文件为空", "the config file is empty", 1)
    return root
