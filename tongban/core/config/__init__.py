"""The exchange config (``exchange.yaml``): nodes, local systems, sync edges and offices.

One YAML file describes the whole exchange (SPEC section 3)::

    version: 1
    spool: spool                # where sync tasks hand files to each other (relative to this file)
    trust: {root: "000000", list: keys/trust.json, keys: keys}
    defaults: {batch_size: 262144, lookback: 10m, schedule: "@hourly", retries: 2}
    nodes:
      - {code: "000000", name: 国家库, level: national, library: "sqlite:///libraries/000000.sqlite"}
      - {code: "630000", name: 青海省, level: province, parent: "000000", library_env: TONGBAN_LIB_630000}
      - {code: "630104", name: 城西区, level: county, parent: "630000", conn_id: lib_630104}
    systems:
      - {name: 630104-gongan, node: "630104", dataset: population, kind: sql, conn_id: gongan_630104,
         table: czrk, cursor: gxsj, mapping: systems/630104/gongan.mapping.yaml}
      - {name: 630104-license, node: "630104", dataset: license, kind: files,
         folder: systems/630104/drop/license, pattern: "*.csv", mapping: {dataset: license}}
    edges:                      # optional: derived when absent
      - {dataset: population, source: 630104-gongan, target: "630104", schedule: "@daily"}
    offices: []

Credentials never live in the file: a URL with a password is refused; use ``conn_id`` (an Airflow
connection, or ``AIRFLOW_CONN_<ID>``) or ``url_env``/``library_env`` (an environment variable), both
read when the URL is asked for, not when the file is loaded. Relative SQLite paths are taken against
the file's folder.

Without ``edges`` every system feeds its node (on the default schedule) and every node passes each
dataset it receives to its parent (no schedule: it runs when its children's assets update). An edge
written without ``schedule`` gets the same; ``schedule: null`` means "only when triggered".

Every problem is a :class:`ConfigError` with a stable ``CONFIG_*`` code (mapping problems keep their
``MAPPING_*`` code), a message in both languages naming the field (``nodes[2].parent``) and ``where``
= ``file:line``. A file past :data:`CONFIG_MAX_BYTES`, :data:`CONFIG_MAX_NODES` nodes (aliases counted
as expanded) or :data:`CONFIG_MAX_DEPTH` levels of nesting is refused before it is composed
(``CONFIG_TOO_LARGE``, ``CONFIG_TOO_DEEP``; see :mod:`connectors.yaml_bounds`).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import sqlalchemy as sa
import yaml

import schemas
from connectors.mapping import Mapping, load_mapping
from connectors.yaml_bounds import (
    LOADER,
    FileTooLarge,
    check_bounds,
    decode,
    error_line,
    error_problem,
    read_bounded,
)
from schemas.errors import TongbanError

__all__ = [
    "CONFIG_MAX_BYTES",
    "CONFIG_MAX_DEPTH",
    "CONFIG_MAX_NODES",
    "KINDS",
    "LEVELS",
    "ConfigError",
    "Edge",
    "Exchange",
    "Node",
    "System",
    "connection_url",
    "demo_exchange_yaml",
    "load_exchange",
    "parse_duration",
]

#: Bounds on ``exchange.yaml``. The whole country (34 provinces, ~2,850 counties, 3 systems each with
#: an inline mapping of ~30 nodes) is about 5 MB and 470,000 nodes, seven levels deep.
CONFIG_MAX_BYTES = 16 << 20  # 16 MiB, checked before reading
CONFIG_MAX_NODES = 4_000_000  # nodes, aliases counted as expanded
CONFIG_MAX_DEPTH = 64  # levels of nesting, aliases counted as expanded

LEVELS = ("national", "province", "county")
KINDS = ("sql", "files")
NATIONAL = "000000"
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

_PARENT_LEVEL = {"province": "national", "county": "province"}
_LEVEL_ZH = {"national": "国家", "province": "省级", "county": "县级"}
_TOP_KEYS = ("version", "spool", "trust", "defaults", "nodes", "systems", "edges", "offices")
_TRUST_KEYS = ("root", "list", "keys")
_DEFAULT_KEYS = ("batch_size", "lookback", "schedule", "retries", "settle")
_NODE_KEYS = ("code", "name", "level", "parent", "library", "library_env", "conn_id")
_SYSTEM_KEYS = (
    *("name", "node", "dataset", "kind", "url", "url_env", "conn_id"),
    *("table", "query", "cursor", "folder", "pattern", "settle", "mapping"),
)
_SQL_ONLY = ("url", "url_env", "conn_id", "table", "query", "cursor")
_FILES_ONLY = ("folder", "pattern", "settle")
#: How long a drop file must have been left unchanged before it is read (a writer may still be at it).
DEFAULT_SETTLE = "60s"
_EDGE_KEYS = ("dataset", "source", "target", "schedule")

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
_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
_SQLITE_URL = re.compile(r"(sqlite(?:\+\w+)?:///)(file:)?([^?]*)(\?.*)?", re.DOTALL)


class ConfigError(TongbanError):
    """The exchange config cannot be used: a stable code, both languages, ``where`` = ``file:line``."""


# --------------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------------


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


def connection_url(uri: str) -> str:
    """The SQLAlchemy URL for an Airflow connection URI (PostgreSQL via psycopg 3, MySQL via PyMySQL).

    Airflow's ``__extra__`` query parameter is dropped; other parameters (``sslmode``...) stay.

    >>> connection_url("postgres://etl:s3cret@db.example:5432/library")
    'postgresql+psycopg://etl:s3cret@db.example:5432/library'
    >>> connection_url("mysql://reader@10.0.0.5/gongan?charset=utf8mb4")
    'mysql+pymysql://reader@10.0.0.5/gongan?charset=utf8mb4'
    >>> connection_url("sqlite:////srv/tongban/630104.sqlite")
    'sqlite:////srv/tongban/630104.sqlite'
    >>> connection_url("postgresql+psycopg2://u@h/db")  # already a SQLAlchemy URL: kept
    'postgresql+psycopg2://u@h/db'
    """
    scheme, sep, rest = uri.strip().partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+._-]*", scheme):
        # Never echo the URI: it may hold a password.
        raise ValueError("not a connection URI (expected scheme://user@host:port/database)")
    driver = _DRIVERS.get(scheme.lower(), scheme)
    head, question, query = rest.partition("?")
    if question and "__extra__" in query:
        query = urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "__extra__"])
    return f"{driver}://{head}" + (f"?{query}" if query else "")


def _json_connection(text: str) -> str:
    """The URI of an Airflow connection given as JSON (``{"conn_type": "postgres", "host": ...}``)."""
    data = json.loads(text)
    if not isinstance(data, dict) or not data.get("conn_type"):
        raise ValueError("a JSON connection needs conn_type")
    conn_type = str(data["conn_type"])
    if conn_type == "sqlite":
        return f"sqlite:///{data.get('host') or ''}"
    url = sa.URL.create(
        conn_type,
        username=data.get("login") or None,
        password=data.get("password") or None,
        host=data.get("host") or None,
        port=int(data["port"]) if data.get("port") else None,
        database=data.get("schema") or None,
    )
    return url.render_as_string(hide_password=False)


def _absolute_sqlite(url: str, base: Path) -> str:
    """``url`` with a relative SQLite file path taken against ``base``; any other URL unchanged."""
    match = _SQLITE_URL.fullmatch(url)
    if not match:
        return url
    prefix, file_uri, database, query = match.groups()
    if not database or database == ":memory:" or Path(database).is_absolute():
        return url
    return f"{prefix}{file_uri or ''}{Path(os.path.normpath(base / database))}{query or ''}"


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


def _guess(word: str, known: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _hint(word: str, known: Iterable[str], *, show_known: bool = True) -> tuple[str, str]:
    """(zh, en) suffixes suggesting the closest known word, else (if ``show_known``) naming a few."""
    known = list(known)
    guess = _guess(word, known)
    if guess:
        return f"，是否应为 '{guess}'？", f" — did you mean '{guess}'?"
    if not show_known or not known:
        return "", ""
    shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
    return f"（可用：{shown}）", f" (known: {shown})"


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One participant, named by its GB/T 2260 division code."""

    code: str
    name: str
    level: str  # "national" | "province" | "county"
    parent: str | None
    library: str | None = None  # SQLAlchemy URL given in the file (relative SQLite made absolute)
    library_env: str | None = None  # or: environment variable holding the URL
    conn_id: str | None = None  # or: Airflow connection id
    line: int = 0


@dataclass(frozen=True)
class System:
    """A local system a node reads: a SQL database or a folder of file drops, and its mapping."""

    name: str
    node: str
    dataset: str
    kind: str  # "sql" | "files"
    url: str | None = None  # sql: SQLAlchemy URL given in the file, or
    url_env: str | None = None  # environment variable holding it, or
    conn_id: str | None = None  # Airflow connection id
    table: str | None = None  # sql: table or query (taken from the mapping when not given)
    query: str | None = None
    cursor: str | None = None  # sql: local column of the incremental cursor
    folder: Path | None = None  # files: absolute drop folder
    pattern: str = "*"  # files: glob inside the folder
    settle_seconds: int = 60  # files: a file changed more recently than this is left for a later run
    mapping: Mapping = field(default_factory=Mapping)
    line: int = 0


@dataclass(frozen=True)
class Edge:
    """A sync job moving one dataset from a system or node to a node."""

    dataset: str
    source: str
    target: str
    schedule: str | None
    source_kind: Literal["system", "node"]
    line: int | None = None  # None when derived

    @property
    def id(self) -> str:
        return f"{self.dataset}.{self.source}.{self.target}"


@dataclass(frozen=True)
class Exchange:
    """The loaded exchange: absolute paths, defaults, nodes, systems, edges (ordered) and offices."""

    path: Path
    base: Path
    spool: Path
    trust_root: str
    trust_list: Path
    keys_dir: Path
    batch_size: int
    lookback_seconds: int
    schedule: str | None
    retries: int
    nodes: dict[str, Node]
    systems: dict[str, System]
    edges: list[Edge]
    offices: list[dict[str, Any]]

    def _unknown(self, code: str, what_zh: str, what_en: str, name: str, known: Iterable[str]) -> ConfigError:
        zh, en = _hint(name, known)
        return ConfigError(code, f"未知{what_zh} {name}{zh}", f"unknown {what_en} {name}{en}", str(self.path))

    def node(self, code: str) -> Node:
        """The node ``code``; ConfigError ``NODE_UNKNOWN`` otherwise."""
        try:
            return self.nodes[code]
        except KeyError:
            raise self._unknown("NODE_UNKNOWN", "节点", "node", code, self.nodes) from None

    def system(self, name: str) -> System:
        """The local system ``name``; ConfigError ``SYSTEM_UNKNOWN`` otherwise."""
        try:
            return self.systems[name]
        except KeyError:
            raise self._unknown("SYSTEM_UNKNOWN", "本地系统", "system", name, self.systems) from None

    def edge(self, edge_id: str) -> Edge:
        """The edge ``dataset.source.target``; ConfigError ``EDGE_UNKNOWN`` with the closest ids otherwise."""
        for edge in self.edges:
            if edge.id == edge_id:
                return edge
        close = difflib.get_close_matches(edge_id, [e.id for e in self.edges], n=3, cutoff=0.6)
        zh = f"，相近的有：{', '.join(close)}" if close else ""
        en = f"; close: {', '.join(close)}" if close else ""
        raise ConfigError(
            "EDGE_UNKNOWN",
            f"未知同步边 {edge_id}（共 {len(self.edges)} 条）{zh}",
            f"unknown edge {edge_id} ({len(self.edges)} edges){en}",
            str(self.path),
        )

    def edges_into(self, node_code: str, dataset: str | None = None) -> list[Edge]:
        """Edges whose target is ``node_code`` (of ``dataset`` only, if given)."""
        return [e for e in self.edges if e.target == node_code and dataset in (None, e.dataset)]

    def below(self, code: str) -> set[str]:
        """``code`` and every node under it in the topology (a county: itself; a province: its counties)."""
        out = {code}
        frontier = [code]
        while frontier:
            parent = frontier.pop()
            for n in self.nodes.values():
                if n.parent == parent and n.code not in out:
                    out.add(n.code)
                    frontier.append(n.code)
        return out

    def children(self, code: str) -> list[Node]:
        """Nodes whose parent is ``code``, by code."""
        return sorted((n for n in self.nodes.values() if n.parent == code), key=lambda n: n.code)

    def provinces(self) -> list[Node]:
        """Province nodes, by code."""
        return sorted((n for n in self.nodes.values() if n.level == "province"), key=lambda n: n.code)

    def counties(self, province: str | None = None) -> list[Node]:
        """County nodes (of ``province`` only, if given), by code."""
        return sorted(
            (n for n in self.nodes.values() if n.level == "county" and province in (None, n.parent)),
            key=lambda n: n.code,
        )

    def datasets_of(self, node_code: str) -> list[str]:
        """Datasets the node's library holds (those of the edges into or out of it), in canonical order."""
        held = {e.dataset for e in self.edges if node_code in (e.target, e.source)}
        return [name for name in schemas.DATASETS if name in held]

    def library_url(self, node_code: str, resolve_conn: Callable[[str], str | None] | None = None) -> str:
        """The SQLAlchemy URL of the node's library, reading the environment or connection now."""
        node = self.node(node_code)
        return self._resolve(
            node.library,
            node.library_env,
            node.conn_id,
            resolve_conn,
            who=(f"节点 {node.code}", f"node {node.code}"),
            env_key="library_env",
            line=node.line,
        )

    def system_url(self, system_name: str, resolve_conn: Callable[[str], str | None] | None = None) -> str:
        """The SQLAlchemy URL of a sql system, reading the environment or connection now."""
        system = self.system(system_name)
        if system.kind != "sql":
            raise ConfigError(
                "CONFIG_INVALID",
                f"本地系统 {system.name} 是文件目录，没有数据库地址",
                f"system {system.name} is a files system: it has no database URL",
                f"{self.path}:{system.line}",
            )
        return self._resolve(
            system.url,
            system.url_env,
            system.conn_id,
            resolve_conn,
            who=(f"本地系统 {system.name}", f"system {system.name}"),
            env_key="url_env",
            line=system.line,
        )

    def _resolve(
        self,
        url: str | None,
        env: str | None,
        conn_id: str | None,
        resolve_conn: Callable[[str], str | None] | None,
        *,
        who: tuple[str, str],
        env_key: str,
        line: int,
    ) -> str:
        """The URL given in the file, or read now from the environment variable or connection."""
        who_zh, who_en = who
        where = f"{self.path}:{line}"
        if url is not None:
            return url
        if env is not None:
            value = os.environ.get(env, "").strip()
            if not value:
                raise ConfigError(
                    "CONFIG_ENV_MISSING",
                    f"{who_zh} 的 {env_key} 所需环境变量 {env} 未设置",
                    f"{who_en}: {env_key} names environment variable {env}, which is not set",
                    where,
                )
            return self._normalize(
                value, "CONFIG_ENV_INVALID", (f"环境变量 {env}", f"environment variable {env}"), where
            )
        assert conn_id is not None
        uri: str | None = None
        if resolve_conn is not None:
            try:
                uri = resolve_conn(conn_id)
            except Exception as exc:
                detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                raise ConfigError(
                    "CONFIG_CONN_MISSING",
                    f"{who_zh} 的连接 {conn_id} 无法读取：{detail}",
                    f"{who_en}: connection {conn_id} cannot be read: {detail}",
                    where,
                ) from None
        env_name = f"AIRFLOW_CONN_{conn_id.upper()}"
        uri = (uri or os.environ.get(env_name, "")).strip()
        if not uri:
            raise ConfigError(
                "CONFIG_CONN_MISSING",
                f"{who_zh} 的连接 {conn_id} 不存在（Airflow 连接或环境变量 {env_name}）",
                f"{who_en}: connection {conn_id} not found (neither an Airflow connection nor {env_name})",
                where,
            )
        return self._normalize(
            uri, "CONFIG_CONN_INVALID", (f"连接 {conn_id}", f"connection {conn_id}"), where
        )

    def _normalize(self, uri: str, code: str, what: tuple[str, str], where: str) -> str:
        """A URI read at run time (Airflow URI or JSON) as a SQLAlchemy URL; never echoes the value."""
        try:
            url = connection_url(_json_connection(uri) if uri.startswith("{") else uri)
        except ValueError as exc:
            raise ConfigError(
                code, f"{what[0]} 不是有效的连接地址", f"{what[1]} is not a connection URI: {exc}", where
            ) from None
        return _absolute_sqlite(url, self.base)


# --------------------------------------------------------------------------------------------------
# Reading the YAML
# --------------------------------------------------------------------------------------------------


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
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    def scratch(self) -> Path:
        """A file to hand inline mappings to :func:`load_mapping` (removed by :meth:`close`)."""
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="tongban-config-")
        return Path(self._scratch.name) / "inline.mapping.yaml"

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

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


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


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


def _reraised(exc: TongbanError, field: str, where: str) -> ConfigError:
    return ConfigError(exc.code, f"{field}：{exc.message_zh}", f"{field}: {exc.message_en}", where)


def _inline_mapping(file: _File, node: yaml.MappingNode, field: str) -> Mapping:
    """A mapping written inline in the config, checked by :func:`load_mapping`, lines those of the config."""
    start, end = node.start_mark, node.end_mark
    # The mapping's own text at its own column; its line numbers are then shifted back into the config.
    body = " " * start.column + file.text[start.index : end.index]
    mapping = file.mappings.get(body)
    if mapping is None:
        scratch = file.scratch()
        scratch.write_text(body, encoding="utf-8")
        try:
            mapping = file.mappings[body] = load_mapping(scratch)
        except TongbanError as exc:
            _, _, line = exc.where.rpartition(":")
            where = f"{file.path}:{int(line) + start.line if line.isdigit() else start.line + 1}"
            raise _reraised(exc, field, where) from None
    lines = {key: line + start.line for key, line in mapping.lines.items()}
    return dataclasses.replace(mapping, source=str(file.path), lines=lines)


def _system_mapping(sec: _Section, dataset: str) -> Mapping:
    """The system's mapping (a file, read once per load, or inline), checked against its dataset."""
    node = sec.node("mapping")
    if node is None:
        return Mapping()
    field = sec.path("mapping")
    here = f"{sec.file.path}:{sec.lines['mapping']}"
    if isinstance(node, yaml.MappingNode):
        mapping = _inline_mapping(sec.file, node, field)
    else:
        rel = sec.text("mapping")
        assert rel is not None
        path = sec.file.resolve(rel)
        try:
            if path not in sec.file.mappings:
                sec.file.mappings[path] = load_mapping(path)
            mapping = sec.file.mappings[path]
        except TongbanError as exc:
            if exc.code in ("MAPPING_NOT_FOUND", "MAPPING_UNREADABLE"):  # point at the reference
                raise ConfigError(
                    exc.code, f"{field}：{exc.message_zh}：{path}", f"{field}: {exc.message_en}: {path}", here
                ) from None
            raise _reraised(exc, field, exc.where) from None
    if mapping.dataset and mapping.dataset != dataset:
        raise sec.fail(
            "mapping",
            f"{field} 用于数据集 {mapping.dataset}，而本地系统的数据集是 {dataset}",
            f"{field} is for dataset {mapping.dataset}, but the system's dataset is {dataset}",
            "CONFIG_DATASET",
        )
    try:
        mapping.check_fields(schemas.DATASETS[dataset].names)
    except TongbanError as exc:
        raise _reraised(exc, field, exc.where) from None
    return mapping


def _read_nodes(top: _Section) -> dict[str, Node]:
    items = top.items("nodes")
    if not items:
        raise top.fail(
            "nodes" if "nodes" in top.lines else None,
            "nodes 至少需要国家节点",
            "nodes must list at least the national node",
        )
    nodes: dict[str, Node] = {}
    sections: dict[str, _Section] = {}
    for i, item in enumerate(items):
        sec = _Section(top.file, item, f"nodes[{i}]", _NODE_KEYS)
        code = sec.code("code", required=True)
        name = sec.text("name", required=True)
        level = sec.choice("level", LEVELS, required=True)
        parent = sec.code("parent")
        key, value = sec.one_of(("library", "library_env", "conn_id"))
        assert code is not None and name is not None and level is not None
        if code in nodes:
            raise sec.fail(
                "code",
                f"{sec.path('code')}：节点 {code} 重复（首次在第 {nodes[code].line} 行）",
                f"{sec.path('code')}: node {code} is defined twice (first on line {nodes[code].line})",
                "CONFIG_DUPLICATE",
            )
        refs: dict[str, str | None] = {
            "library": sec.url(key, value) if key == "library" else None,
            "library_env": sec.name(key, value, "env") if key == "library_env" else None,
            "conn_id": sec.name(key, value, "conn") if key == "conn_id" else None,
        }
        nodes[code] = Node(code, name.strip(), level, parent, line=sec.line, **refs)
        sections[code] = sec
    _check_topology(top, nodes, sections)
    return nodes


def _check_topology(top: _Section, nodes: dict[str, Node], sections: dict[str, _Section]) -> None:
    nationals = [n for n in nodes.values() if n.level == "national"]
    if not nationals:
        raise top.fail(
            "nodes",
            "nodes 中没有国家节点（level: national）",
            "nodes has no national node (level: national)",
            "CONFIG_TOPOLOGY",
        )
    if len(nationals) > 1:
        sec = sections[nationals[1].code]
        raise sec.fail(
            "level",
            f"{sec.path('level')}：只能有一个国家节点（已有 {nationals[0].code}）",
            f"{sec.path('level')}: there must be exactly one national node (already {nationals[0].code})",
            "CONFIG_TOPOLOGY",
        )
    for node in nodes.values():
        sec = sections[node.code]
        if node.level == "national":
            if node.parent is not None:
                raise sec.fail(
                    "parent",
                    f"{sec.path('parent')}：国家节点没有上级",
                    f"{sec.path('parent')}: the national node has no parent",
                    "CONFIG_TOPOLOGY",
                )
            if node.code != NATIONAL:
                raise sec.fail(
                    "code",
                    f"{sec.path('code')}：国家节点的代码是 {NATIONAL}",
                    f"{sec.path('code')}: the national node's code is {NATIONAL}",
                    "CONFIG_TOPOLOGY",
                )
            continue
        if node.parent is None:
            raise sec.missing("parent")
        parent = nodes.get(node.parent)
        if parent is None:
            zh, en = _hint(node.parent, nodes)
            raise sec.fail(
                "parent",
                f"{sec.path('parent')}：没有代码为 {node.parent} 的节点{zh}",
                f"{sec.path('parent')}: no node has code {node.parent}{en}",
                "CONFIG_REFERENCE",
            )
        want = _PARENT_LEVEL[node.level]
        if parent.level != want:
            raise sec.fail(
                "parent",
                f"{sec.path('parent')}：{_LEVEL_ZH[node.level]}节点的上级应为{_LEVEL_ZH[want]}节点，"
                f"而 {parent.code} 是{_LEVEL_ZH[parent.level]}节点",
                f"{sec.path('parent')}: a {node.level} node's parent must be a {want} node, "
                f"but {parent.code} is a {parent.level} node",
                "CONFIG_TOPOLOGY",
            )
        if node.level == "province" and not node.code.endswith("0000"):
            raise sec.fail(
                "code",
                f"{sec.path('code')}：省级代码以 0000 结尾，{node.code} 不是省级代码",
                f"{sec.path('code')}: {node.code} is not a province code (those end in 0000)",
                "CONFIG_TOPOLOGY",
            )
        if node.level == "county" and (node.code.endswith("0000") or node.code[:2] != parent.code[:2]):
            raise sec.fail(
                "code",
                f"{sec.path('code')}：{node.code} 不是 {parent.code} 下的县级代码（前两位应相同）",
                f"{sec.path('code')}: {node.code} is not a county code within province {parent.code} "
                "(the first two digits must match)",
                "CONFIG_TOPOLOGY",
            )


def _read_systems(top: _Section, nodes: dict[str, Node], settle: int) -> dict[str, System]:
    systems: dict[str, System] = {}
    for i, item in enumerate(top.items("systems")):
        sec = _Section(top.file, item, f"systems[{i}]", _SYSTEM_KEYS)
        name = sec.text("name", required=True)
        assert name is not None
        sec.name("name", name, "system")
        if name in systems or name in nodes:
            first = f"首次在第 {systems[name].line} 行" if name in systems else "与节点代码相同"
            first_en = f"first on line {systems[name].line}" if name in systems else "it is a node code"
            raise sec.fail(
                "name",
                f"{sec.path('name')}：本地系统名 {name} 重复（{first}）",
                f"{sec.path('name')}: system name {name} is taken ({first_en})",
                "CONFIG_DUPLICATE",
            )
        node = sec.code("node", required=True)
        assert node is not None
        if node not in nodes:
            zh, en = _hint(node, nodes)
            raise sec.fail(
                "node",
                f"{sec.path('node')}：没有代码为 {node} 的节点{zh}",
                f"{sec.path('node')}: no node has code {node}{en}",
                "CONFIG_REFERENCE",
            )
        dataset = sec.dataset("dataset")
        kind = sec.choice("kind", KINDS, required=True)
        wrong = _FILES_ONLY if kind == "sql" else _SQL_ONLY
        for key in wrong:
            if key in sec.values:
                other = "files" if kind == "sql" else "sql"
                raise sec.fail(
                    key,
                    f"{sec.path(key)} 只用于 kind: {other} 的本地系统",
                    f"{sec.path(key)} only applies to kind: {other} systems",
                )
        mapping = _system_mapping(sec, dataset)
        if kind == "sql":
            key, value = sec.one_of(("url", "url_env", "conn_id"))
            if sec.has("table") and sec.has("query"):
                raise sec.fail(
                    "query",
                    f"{sec.field} 同时给出了 table 和 query",
                    f"{sec.field} gives both table and query",
                )
            table, query = sec.text("table"), sec.text("query")
            if not table and not query:
                table, query = (None, mapping.query) if mapping.query else (mapping.table, None)
            if not table and not query:
                raise sec.fail(
                    None,
                    f"{sec.field} 需要 table 或 query（在此或在映射中）",
                    f"{sec.field} needs a table or query (here or in its mapping)",
                )
            cursor = sec.text("cursor", required=True)
            system = System(
                name,
                node,
                dataset,
                "sql",
                url=sec.url(key, value) if key == "url" else None,
                url_env=sec.name(key, value, "env") if key == "url_env" else None,
                conn_id=sec.name(key, value, "conn") if key == "conn_id" else None,
                table=table,
                query=query,
                cursor=cursor,
                mapping=mapping,
                line=sec.line,
            )
        else:
            folder = sec.text("folder", required=True)
            pattern = sec.text("pattern", default="*")
            assert folder is not None and pattern is not None
            if not pattern.strip():
                raise sec.missing("pattern")
            system = System(
                name,
                node,
                dataset,
                "files",
                folder=sec.file.resolve(folder),
                pattern=pattern.strip(),
                settle_seconds=sec.duration("settle", str(settle)),
                mapping=mapping,
                line=sec.line,
            )
        systems[name] = system
    return systems


def _edge_problem(
    edge: Edge, nodes: dict[str, Node], systems: dict[str, System]
) -> tuple[str, str, str] | None:
    """(code, zh, en) of what is wrong with an edge whose source and target exist, or None."""
    if edge.source_kind == "system":
        system = systems[edge.source]
        if edge.target != system.node:
            return (
                "CONFIG_TOPOLOGY",
                f"本地系统 {system.name} 只能同步到它所属的节点 {system.node}，不能到 {edge.target}",
                f"system {system.name} can only feed its own node {system.node}, not {edge.target}",
            )
        if edge.dataset != system.dataset:
            return (
                "CONFIG_DATASET",
                f"本地系统 {system.name} 提供 {system.dataset}，不是 {edge.dataset}",
                f"system {system.name} holds {system.dataset}, not {edge.dataset}",
            )
        return None
    source, target = nodes[edge.source], nodes[edge.target]
    if target.code == source.parent or (source.level == "national" and target.level == "province"):
        return None
    return (
        "CONFIG_TOPOLOGY",
        f"节点之间只能同步到上级，或由国家节点下发到省级节点；{source.code} -> {target.code} 不行",
        f"a node syncs only to its parent, or national to a province; not {source.code} -> {target.code}",
    )


def _edge_order(nodes: dict[str, Node]) -> Callable[[Edge], tuple[int, int, str, str]]:
    datasets = list(schemas.DATASETS)
    tier = {"county": 1, "province": 2, "national": 3}

    def key(edge: Edge) -> tuple[int, int, str, str]:
        level = 0 if edge.source_kind == "system" else tier[nodes[edge.source].level]
        return datasets.index(edge.dataset), level, edge.source, edge.target

    return key


def _read_edges(
    top: _Section, nodes: dict[str, Node], systems: dict[str, System], schedule: str | None
) -> list[Edge]:
    edges: dict[str, Edge] = {}
    for i, item in enumerate(top.items("edges")):
        sec = _Section(top.file, item, f"edges[{i}]", _EDGE_KEYS)
        dataset = sec.dataset("dataset")
        source = sec.text("source", required=True)
        target = sec.code("target", required=True)
        assert source is not None and target is not None
        source = source.strip()
        if source in systems:
            kind: Literal["system", "node"] = "system"
        elif source in nodes:
            kind = "node"
        else:
            zh, en = _hint(source, [*systems, *nodes])
            raise sec.fail(
                "source",
                f"{sec.path('source')}：没有名为 {source} 的本地系统或节点{zh}",
                f"{sec.path('source')}: no system or node is called {source}{en}",
                "CONFIG_REFERENCE",
            )
        if target not in nodes:
            zh, en = _hint(target, nodes)
            raise sec.fail(
                "target",
                f"{sec.path('target')}：没有代码为 {target} 的节点{zh}",
                f"{sec.path('target')}: no node has code {target}{en}",
                "CONFIG_REFERENCE",
            )
        edge = Edge(
            dataset,
            source,
            target,
            sec.schedule("schedule", schedule if kind == "system" else None),
            kind,
            line=sec.line,
        )
        problem = _edge_problem(edge, nodes, systems)
        if problem:
            code, zh, en = problem
            raise sec.fail(None, f"{sec.field}：{zh}", f"{sec.field}: {en}", code)
        if edge.id in edges:
            raise sec.fail(
                None,
                f"{sec.field}：同步边 {edge.id} 重复（首次在第 {edges[edge.id].line} 行）",
                f"{sec.field}: edge {edge.id} is given twice (first on line {edges[edge.id].line})",
                "CONFIG_DUPLICATE",
            )
        edges[edge.id] = edge
    return sorted(edges.values(), key=_edge_order(nodes))


def _derive_edges(
    file: _File, nodes: dict[str, Node], systems: dict[str, System], schedule: str | None
) -> list[Edge]:
    """Every system feeds its node; every node passes each dataset it receives to its parent."""
    edges = [Edge(s.dataset, s.name, s.node, schedule, "system") for s in systems.values()]
    reached = {(s.node, s.dataset) for s in systems.values()}
    frontier = sorted(reached)
    while frontier:
        code, dataset = frontier.pop()
        parent = nodes[code].parent
        if parent is None:
            continue
        edges.append(Edge(dataset, code, parent, None, "node"))
        if (parent, dataset) not in reached:
            reached.add((parent, dataset))
            frontier.append((parent, dataset))
    for edge in edges:
        problem = _edge_problem(edge, nodes, systems)
        if problem:  # pragma: no cover - derived edges are valid by construction
            raise file.error(problem[0], problem[1], problem[2], None)
    return sorted(edges, key=_edge_order(nodes))


def _read_offices(top: _Section) -> list[dict[str, Any]]:
    offices: list[dict[str, Any]] = []
    for i, item in enumerate(top.items("offices")):
        if not isinstance(item, yaml.MappingNode):
            raise top.file.error(
                "CONFIG_INVALID", f"offices[{i}] 应为键值对", f"offices[{i}] must be a mapping", _line(item)
            )
        office: dict[str, Any] = {}
        for key, value in item.value:
            if not isinstance(key, yaml.ScalarNode) or key.value in office:
                raise top.file.error(
                    "CONFIG_INVALID",
                    f"offices[{i}] 的键应为不重复的文本",
                    f"offices[{i}] keys must be distinct text",
                    _line(key),
                )
            # Codes keep their text as written (an unquoted 000000 stays "000000").
            raw = isinstance(value, yaml.ScalarNode) and value.tag == _INT and key.value in ("code", "node")
            try:
                office[key.value] = value.value if raw else _value(value)
            except Exception as exc:  # PyYAML's constructors fail on odd values in many ways
                problem = str(getattr(exc, "problem", None) or exc).split(";")[0]
                raise top.file.error(
                    "CONFIG_INVALID",
                    f"offices[{i}].{key.value} 的值无法读取",
                    f"offices[{i}].{key.value}: the value cannot be read: {problem}",
                    _line(value),
                ) from None
        offices.append(office)
    return offices


def load_exchange(path: str | Path) -> Exchange:
    """Read and check ``exchange.yaml``; :class:`ConfigError` naming the file, line and field otherwise."""
    file = _read(Path(path))
    try:
        return _load(file)
    except RecursionError:  # only if the depth bound were set beyond what Python's stack holds
        raise file.error(
            "CONFIG_TOO_DEEP", "配置文件嵌套过深", "config file refused: nested too deeply", None
        ) from None
    finally:
        file.close()


def _load(file: _File) -> Exchange:
    top = _Section(file, _compose(file), "", _TOP_KEYS)
    if top.integer("version", default=1, minimum=1) != 1:
        raise top.fail("version", "不支持的配置版本（应为 1）", "unsupported config version (must be 1)")
    defaults = top.section("defaults", _DEFAULT_KEYS)
    schedule = defaults.schedule("schedule", "@hourly")
    nodes = _read_nodes(top)
    trust = top.section("trust", _TRUST_KEYS)
    trust_root = trust.code("root") or NATIONAL
    if trust_root not in nodes:
        raise trust.fail(
            "root",
            f"trust.root：没有代码为 {trust_root} 的节点",
            f"trust.root: no node has code {trust_root}",
            "CONFIG_REFERENCE",
        )
    if nodes[trust_root].level != "national":
        raise trust.fail(
            "root", "trust.root 应为国家节点", "trust.root must be the national node", "CONFIG_TOPOLOGY"
        )
    systems = _read_systems(top, nodes, defaults.duration("settle", DEFAULT_SETTLE))
    if top.has("edges"):
        edges = _read_edges(top, nodes, systems, schedule)
    else:
        edges = _derive_edges(file, nodes, systems, schedule)
    return Exchange(
        path=file.path.resolve(),
        base=file.base,
        spool=file.resolve(top.text("spool", default="spool") or "spool"),
        trust_root=trust_root,
        trust_list=file.resolve(trust.text("list") or "keys/trust.json"),
        keys_dir=file.resolve(trust.text("keys") or "keys"),
        batch_size=defaults.integer("batch_size", default=262_144, minimum=1),
        lookback_seconds=defaults.duration("lookback", "10m"),
        schedule=schedule,
        retries=defaults.integer("retries", default=2, minimum=0),
        nodes=nodes,
        systems=systems,
        edges=edges,
        offices=_read_offices(top),
    )


# --------------------------------------------------------------------------------------------------
# The demo topology
# --------------------------------------------------------------------------------------------------


def _scalar(text: str) -> str:
    """``text`` as a YAML scalar: plain when it reads back as the same string, else double-quoted."""
    if re.fullmatch(r"[\w][\w./-]*", text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _flow(**values: str | None) -> str:
    return "{" + ", ".join(f"{k}: {_scalar(v)}" for k, v in values.items() if v is not None) + "}"


def demo_exchange_yaml(
    base: Path,
    systems: list[dict[str, Any]],
    counties: list[tuple[str, str, str, str]],
    *,
    prefix: str = "",
    inline_mappings: bool = False,
) -> str:
    """The ``exchange.yaml`` text of the demo topology under ``base`` (the demo folder).

    ``systems`` are the ``systems`` entries of the manifest :func:`tongban.demo.generate.generate_demo`
    returns; ``counties`` is :data:`tongban.demo.generate.DEMO_COUNTIES`. One local system per county and
    dataset (the files of one drop folder are one system); the edges are left to derivation.
    ``prefix`` goes before every relative path (the repository's ``exchange.yaml`` uses ``demo/``), and
    ``inline_mappings`` writes each mapping into the file instead of naming its file.
    """
    base = Path(base)
    order = list(schemas.DATASETS)
    chosen: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in systems:
        chosen.setdefault((str(entry["county"]), str(entry["dataset"])), entry)
    county_order = [code for code, *_ in counties]
    lines = [
        "# 通办 Tongban exchange: the demo topology (generated by `tongban demo`)."
        if not prefix
        else "# 通办 Tongban exchange: the demo topology, read by the DAGs and `tongban` by default. `tongban demo`\n"
        "# writes the same under demo/ with mapping files; tests/test_cli_demo.py keeps the two equal.",
        "# 国家库 -> 省 provinces -> 县 counties; each county reads its local systems (SQLite and CSV/Parquet",
        "# drops). Without an `edges:` list every system feeds its county and every node its parent.",
        "version: 1",
        f"spool: {prefix}spool                 # 同步任务交接文件的目录 folder where sync tasks hand files over",
        "trust:",
        '  root: "000000"             # 签发信任列表的节点 node whose key signs the trust list',
        f"  list: {prefix}keys/trust.json      # 已签名的信任列表 the signed trust list",
        f"  keys: {prefix}keys                 # 节点私钥目录 folder of node private keys",
        "defaults:",
        "  batch_size: 262144",
        "  lookback: 10m",
        '  schedule: "@hourly"',
        "  retries: 2",
        "nodes:",
        "  - "
        + _flow(
            code=NATIONAL,
            name="国家库",
            level="national",
            library=f"sqlite:///{prefix}libraries/{NATIONAL}.sqlite",
        ),
    ]
    provinces: dict[str, str] = {}
    for _, _, province, province_name in counties:
        provinces.setdefault(province, province_name)
    for province, province_name in provinces.items():
        lines.append(f"  # {province_name}")
        lines.append(
            "  - "
            + _flow(
                code=province,
                name=province_name,
                level="province",
                parent=NATIONAL,
                library=f"sqlite:///{prefix}libraries/{province}.sqlite",
            )
        )
        for code, name, parent, _ in counties:
            if parent == province:
                lines.append(
                    "  - "
                    + _flow(
                        code=code,
                        name=name,
                        level="county",
                        parent=province,
                        library=f"sqlite:///{prefix}libraries/{code}.sqlite",
                    )
                )
    lines.append("systems:")
    names = {code: name for code, name, *_ in counties}
    ranked = sorted(
        chosen.items(),
        key=lambda item: (
            county_order.index(item[0][0]) if item[0][0] in county_order else len(county_order),
            item[0][0],
            order.index(item[0][1]) if item[0][1] in order else len(order),
        ),
    )
    current = None
    for (county, dataset), entry in ranked:
        if county != current:
            current = county
            lines.append(f"  # {names.get(county, county)} {county}")
        path = Path(str(entry["path"]))
        if entry["kind"] == "sqlite":
            mapping = load_mapping(base / str(entry["mapping"]))
            cursor = next(
                (local for local, target in mapping.columns.items() if target == "updated_at"), None
            )
            body = {
                "name": f"{county}-{path.stem}",
                "node": county,
                "dataset": dataset,
                "kind": "sql",
                "url": f"sqlite:///{prefix}{path.as_posix()}",
                "table": entry.get("table") or mapping.table,
                "cursor": cursor or "updated_at",
            }
        else:
            body = {
                "name": f"{county}-{path.parent.name}",
                "node": county,
                "dataset": dataset,
                "kind": "files",
                "folder": prefix + path.parent.as_posix(),
                "pattern": f"*{path.suffix}",
            }
        if not inline_mappings:
            body["mapping"] = prefix + str(entry["mapping"])
        first = True
        for key, value in body.items():
            if value is not None:
                lines.append(f"  {'- ' if first else '  '}{key}: {_scalar(str(value))}")
                first = False
        if inline_mappings:
            text = (base / str(entry["mapping"])).read_text(encoding="utf-8")
            lines.append("    mapping:")
            lines += [
                f"      {line}" for line in text.splitlines() if line.strip() and not line.startswith("#")
            ]
    lines.append("offices: []                   # {code, node, scopes: [...]}")
    return "\n".join(lines) + "\n"
