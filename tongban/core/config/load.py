"""Loading ``exchange.yaml``: its sections read in order (defaults, nodes, trust, systems and their
mappings, edges, offices), each checked as it is read, into an :class:`~tongban.core.config.Exchange`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import yaml

import schemas
from connectors.mapping import Mapping, load_mapping, read_mapping
from schemas.errors import TongbanError
from tongban.core.config.errors import ConfigError, _hint
from tongban.core.config.model import KINDS, LEVELS, NATIONAL, Edge, Exchange, Node, System
from tongban.core.config.reader import _INT, _compose, _File, _line, _read, _Section, _value
from tongban.core.config.topology import _check_topology, _derive_edges, _edge_order, _edge_problem

__all__ = ["DEFAULT_SETTLE", "load_exchange"]

_TOP_KEYS = ("version", "spool", "trust", "defaults", "nodes", "systems", "edges", "offices")
_TRUST_KEYS = ("root", "list", "keys")
_DEFAULT_KEYS = ("batch_size", "lookback", "schedule", "retries", "settle")
_NODE_KEYS = ("code", "name", "level", "parent", "library", "library_env", "conn_id", "owner")
_SYSTEM_KEYS = (
    *("name", "node", "dataset", "kind", "url", "url_env", "conn_id"),
    *("table", "query", "cursor", "folder", "pattern", "settle", "mapping", "label"),
)
_SQL_ONLY = ("url", "url_env", "conn_id", "table", "query", "cursor")
_FILES_ONLY = ("folder", "pattern", "settle")
#: How long a drop file must have been left unchanged before it is read (a writer may still be at it).
DEFAULT_SETTLE = "60s"
_EDGE_KEYS = ("dataset", "source", "target", "schedule")


def _reraised(exc: TongbanError, field: str, where: str) -> ConfigError:
    return ConfigError(exc.code, f"{field}：{exc.message_zh}", f"{field}: {exc.message_en}", where)


def _inline_mapping(file: _File, node: yaml.MappingNode, field: str) -> Mapping:
    """A mapping written inline in the config, checked by :func:`read_mapping`, lines those of the config."""
    start, end = node.start_mark, node.end_mark
    # The mapping's own text at its own column; its line numbers are then shifted back into the config.
    body = " " * start.column + file.text[start.index : end.index]
    mapping = file.mappings.get(body)
    if mapping is None:
        try:
            mapping = file.mappings[body] = read_mapping(body, "<inline>")
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
        mapping.check_dataset(schemas.DATASETS[dataset])
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
        owner = sec.text("owner")
        owner = owner.strip() if owner and owner.strip() else None
        nodes[code] = Node(code, name.strip(), level, parent, line=sec.line, owner=owner, **refs)
        sections[code] = sec
    _check_topology(top, nodes, sections)
    return nodes


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
        label = (sec.text("label") or "").strip() or None
        wrong = _FILES_ONLY if kind == "sql" else _SQL_ONLY
        for key in wrong:
            if key in sec.values:
                other = "files" if kind == "sql" else "sql"
                raise sec.fail(
                    key,
                    f"{sec.path(key)} 只用于 kind: {other} 的本地系统",
                    f"{sec.path(key)} only applies to kind: {other} systems",
                )
        try:
            mapping = _system_mapping(sec, dataset)
        except ConfigError as exc:
            if not sec.file.lenient:
                raise
            # One system's broken mapping is that system's problem: its edges fail with this error
            # when they run, and the rest of the exchange (and every read-only command) goes on.
            sec.file.broken[name] = exc
            mapping = Mapping()
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
            if not table and not query and name not in sec.file.broken:
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
                label=label,
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
                label=label,
            )
        systems[name] = system
    return systems


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


def load_exchange(path: str | Path, *, lenient: bool = False) -> Exchange:
    """Read and check ``exchange.yaml``; :class:`ConfigError` naming the file, line and field otherwise.

    ``lenient``: a local system whose mapping cannot be used does not stop the load; the error is kept
    in :attr:`Exchange.broken` and raised when one of its edges runs (the commands and the DAG file load
    leniently, so one county's broken mapping stops only that county's system).
    """
    file = _read(Path(path))
    file.lenient = lenient
    try:
        return _load(file)
    except RecursionError:  # only if the depth bound were set beyond what Python's stack holds
        raise file.error(
            "CONFIG_TOO_DEEP", "配置文件嵌套过深", "config file refused: nested too deeply", None
        ) from None


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
        batch_size=defaults.integer("batch_size", default=65_536, minimum=1),
        lookback_seconds=defaults.duration("lookback", "10m"),
        schedule=schedule,
        retries=defaults.integer("retries", default=2, minimum=0),
        nodes=nodes,
        systems=systems,
        edges=edges,
        offices=_read_offices(top),
        broken=dict(file.broken),
    )
