"""The shape of the exchange: one national node, provinces under it, counties under their province;
sync edges up that tree (derived when the file gives none) and the order they run in."""

from __future__ import annotations

from collections.abc import Callable

import schemas
from tongban.core.config.errors import _hint
from tongban.core.config.model import NATIONAL, Edge, Node, System
from tongban.core.config.reader import _File, _Section

_PARENT_LEVEL = {"province": "national", "county": "province"}
_LEVEL_ZH = {"national": "国家", "province": "省级", "county": "县级"}


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
