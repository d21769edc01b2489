"""The loaded exchange: nodes, local systems, sync edges and offices, and the questions asked of them."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import schemas
from connectors.mapping import Mapping
from tongban.core.config.errors import ConfigError, _hint
from tongban.core.config.resolve import resolve_url

__all__ = ["KINDS", "LEVELS", "NATIONAL", "Edge", "Exchange", "Node", "System"]

LEVELS = ("national", "province", "county")
KINDS = ("sql", "files")
NATIONAL = "000000"


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
    owner: str | None = None  # who answers for the node's runs (Airflow's DAG owner), e.g. a team


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
    label: str | None = None  # what a person calls it (e.g. 公安), shown in Airflow's task names


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
    #: Systems whose mapping could not be used (a lenient load): the error each of their edges fails with.
    broken: dict[str, ConfigError] = field(default_factory=dict)

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
        return resolve_url(
            self.path,
            self.base,
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
        return resolve_url(
            self.path,
            self.base,
            system.url,
            system.url_env,
            system.conn_id,
            resolve_conn,
            who=(f"本地系统 {system.name}", f"system {system.name}"),
            env_key="url_env",
            line=system.line,
        )
