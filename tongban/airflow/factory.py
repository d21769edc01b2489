"""Build the exchange's DAGs from ``exchange.yaml``.

Layout: one DAG per province and dataset (``tongban_<dataset>_<province>``) whose mapped task groups
sync each county's local systems into the county library and then each county up to the province,
and one DAG per dataset at the national node (``tongban_<dataset>_national``), triggered by any of its
provinces' Assets, whose mapped task groups sync each province up. Every edge is the same four tasks,
extract -> validate -> seal -> load, passing the run folder's ``file://`` URI through XCom, never rows.

A national topology (about 2,850 counties in 34 provinces) is then 3 x 35 = 105 DAGs with up to a few
hundred mapped task instances each, instead of some 17,000 one-edge DAGs: the scheduler parses one
file and few DAGs, adding a county adds mapped instances, not DAGs, and each province runs on its own.

What a person sees in Airflow's UI:

- a mapped instance is named by its county and system (``630121 大通县 · 公安``), not ``0``-``4``;
- a run whose edge failed ends **failed** (``all_edges_ok`` is upstream-failed), while ``publish``
  still runs on what landed, so the national DAG gets it;
- each task logs what it did (edge, run, cursor range, rows read, rejected by code, loaded, batch
  ids, Merkle roots) as fields of Airflow's JSON log lines, and ``publish``'s Asset event carries the
  counts in its ``extra``;
- each DAG's ``doc_md`` names its counties and systems and how to debug a failure; owners come from
  the config (a node's ``owner``, else its name), display names start with the dataset and tags carry
  the province's and dataset's names.

The exchange is read once per process while its file is unchanged (:func:`exchange`): a task's own
overhead is the DAG file's import, not a re-parse of the config.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, TriggerRule, get_current_context, task, task_group

import schemas
from tongban.airflow.hooks import resolve_conn
from tongban.airflow.logs import to_task_log
from tongban.airflow.retry import fail_or_retry
from tongban.core import engine, logs
from tongban.core.config import Edge, Exchange, load_exchange

__all__ = ["DATASET_NAMES", "asset_for", "build_dags", "dag_ids", "edge_label", "exchange"]

START = _dt.datetime(2026, 1, 1, tzinfo=_dt.UTC)

#: What a person calls each dataset (tags, display names).
DATASET_NAMES = {"population": "人口", "business": "市场主体", "license": "证照"}

#: How a mapped instance is named in the UI: the task sets ``tongban_label`` as it starts; before that
#: (Airflow renders the name early, while the task runs) it is looked up by the group and map index.
MAP_INDEX_TEMPLATE = (
    "{{ tongban_label if tongban_label is defined "
    "else tongban_labels.get(task.task_id.split('.')[0], {}).get(ti.map_index, '') }}"
)

_log = logs.get("tongban.airflow")
_CACHE: dict[Path, tuple[tuple[int, int], Exchange, list[tuple[Path, tuple[int, int] | None]]]] = {}


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


#: The code that decides what a loaded exchange is: a change to it makes a cached exchange stale.
_CODE = [
    Path(__file__).resolve().parents[1] / "core" / "config" / name
    for name in ("model.py", "load.py", "reader.py", "topology.py", "resolve.py")
] + [Path(__file__).resolve().parents[2] / "connectors" / "mapping.py"]


def _cache_dir() -> Path:
    """A folder only this account can write (a pickle is code: never load one another account wrote)."""
    base = os.environ.get("TONGBAN_CACHE_DIR") or os.path.join(
        os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/.cache"), "tongban-cache"
    )
    folder = Path(base)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def _trusted(path: Path) -> bool:
    try:
        st = path.stat()
        folder = path.parent.stat()
    except OSError:
        return False
    mine = os.getuid()
    return st.st_uid == mine and folder.st_uid == mine and not (st.st_mode | folder.st_mode) & 0o022


def _files_of(ex: Exchange) -> list[Path]:
    """The files a loaded exchange was read from: the config, its mapping files and the loading code."""
    mappings = {Path(s.mapping.source) for s in ex.systems.values() if s.mapping.source}
    return [ex.path, *sorted(m for m in mappings if m != ex.path and m.is_file()), *_CODE]


def exchange(path: str | Path) -> Exchange:
    """The exchange at ``path``, loaded once while its files are unchanged.

    In this process it is kept in memory; across processes (the DAG processor's loops, each task's
    parse of the DAG file) in a private on-disk cache keyed by the file, every mapping file it names
    and the loading code (size and modification time of each): a national topology loads in 0.05 s
    instead of 3 s. Any change to one of them loads the file again, with its checks.
    """
    resolved = Path(path).resolve()
    stamp = _stamp(resolved)
    if stamp is None:
        return load_exchange(resolved, lenient=True)  # CONFIG_NOT_FOUND, with its message
    hit = _CACHE.get(resolved)
    if hit is not None and hit[0] == stamp and all(_stamp(f) == s for f, s in hit[2]):
        return hit[1]
    ex = _from_disk(resolved)
    if ex is None:
        # Leniently: one system's broken mapping fails that system's tasks (with its code), not the
        # whole DAG file. Such an exchange is not cached, so the fixed mapping is read next time.
        ex = load_exchange(resolved, lenient=True)
        if ex.broken:
            return ex
        _to_disk(resolved, ex)
    _CACHE[resolved] = (stamp, ex, [(f, _stamp(f)) for f in _files_of(ex)])
    return ex


def _cache_file(resolved: Path) -> Path:
    import hashlib

    return _cache_dir() / (hashlib.sha256(str(resolved).encode()).hexdigest()[:32] + ".pickle")


def _from_disk(resolved: Path) -> Exchange | None:
    import pickle

    try:
        file = _cache_file(resolved)
        if not file.is_file() or not _trusted(file):
            return None
        with file.open("rb") as fh:
            stamps, ex = pickle.load(fh)
    except Exception:  # a torn or foreign cache file is just a miss
        return None
    if not isinstance(ex, Exchange) or any(_stamp(Path(f)) != tuple(s) if s else True for f, s in stamps):
        return None
    return ex


def _to_disk(resolved: Path, ex: Exchange) -> None:
    import pickle
    import tempfile

    try:
        file = _cache_file(resolved)
        stamps = [(str(f), _stamp(f)) for f in _files_of(ex)]
        fd, tmp = tempfile.mkstemp(dir=file.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump((stamps, ex), fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, file)
    except Exception:  # a cache that cannot be written only costs time
        pass


_INDEX: dict[int, tuple[Exchange, dict[str, Edge]]] = {}


def _EDGES(ex: Exchange) -> dict[str, Edge]:
    """The exchange's edges by id (``Exchange.edge`` scans the list: too slow for 17,000 edges)."""
    hit = _INDEX.get(id(ex))
    if hit is None or hit[0] is not ex:
        hit = _INDEX[id(ex)] = (ex, {e.id: e for e in ex.edges})
    return hit[1]


def asset_for(node: str, dataset: str) -> Asset:
    """The Asset a node's library publishes for a dataset once a sync into it has finished."""
    return Asset(f"tongban://{node}/{dataset}", group="tongban")


def edge_label(ex: Exchange, edge: Edge) -> str:
    """How a person names an edge: ``630121 大通县 · 公安`` (a local system), ``630121 大通县`` (a node)."""
    if edge.source_kind == "system":
        system = ex.systems[edge.source]
        node = ex.nodes[system.node]
        return f"{node.code} {node.name} · {system.label or system.name}"
    node = ex.nodes[edge.source]
    return f"{node.code} {node.name}"


def _run_id() -> str:
    ctx = get_current_context()
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(ctx["run_id"]))


def _begin(ex: Exchange, edge_id: str, step: str) -> None:
    """Name the mapped instance, route Tongban's logs into the task log and say what starts."""
    to_task_log()
    ctx: Any = get_current_context()
    ctx["tongban_label"] = edge_label(ex, _EDGES(ex)[edge_id])
    logs.event(_log, f"{step}.start", f"{step} {edge_id}", step=step, edge=edge_id, run_id=_run_id())


def _fail(ex: Exchange, edge_id: str, exc: BaseException) -> None:
    """Record the failed run in the target library, then fail fast or let Airflow retry."""
    ctx = get_current_context()
    ti: Any = ctx.get("ti")
    log_url = getattr(ti, "log_url", "") or ""
    code = getattr(exc, "code", "RUN_FAILED")
    logs.event(
        _log,
        "failed",
        f"{edge_id}: {code}",
        level=40,
        edge=edge_id,
        run_id=_run_id(),
        code=code,
        log_url=log_url,
        try_number=getattr(ti, "try_number", None),
    )
    engine.record_run_failure(ex, edge_id, exc, log_url=log_url, resolve_conn=resolve_conn)
    fail_or_retry(exc)


def _guarded(ex: Exchange, edge_id: str, step: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one engine step; on failure record it, then fail fast or let Airflow retry (see _fail)."""
    try:
        return step(ex, *args, **kwargs)
    except Exception as exc:
        _fail(ex, edge_id, exc)
        raise


_LOAD_KEYS = ("edge", "rows", "inserted", "updated", "unchanged", "stale", "rejected", "conflicts", "batches")


def _edge_group(ex: Exchange, group_id: str, *, after_failures: bool) -> Any:
    """A task group syncing one edge (its id is the mapped argument)."""

    @task(
        trigger_rule=TriggerRule.ALL_DONE if after_failures else TriggerRule.ALL_SUCCESS,
        map_index_template=MAP_INDEX_TEMPLATE,
    )
    def extract(edge_id: str) -> str:
        _begin(ex, edge_id, "extract")
        return _guarded(ex, edge_id, engine.extract, edge_id, run_id=_run_id(), resolve_conn=resolve_conn)

    @task(map_index_template=MAP_INDEX_TEMPLATE)
    def validate(edge_id: str, run_uri: str) -> str:
        _begin(ex, edge_id, "validate")
        return _guarded(ex, edge_id, engine.validate, run_uri)

    @task(map_index_template=MAP_INDEX_TEMPLATE)
    def seal(edge_id: str, run_uri: str) -> str:
        _begin(ex, edge_id, "seal")
        return _guarded(ex, edge_id, engine.seal, run_uri, resolve_conn=resolve_conn)

    @task(map_index_template=MAP_INDEX_TEMPLATE)
    def load(edge_id: str, run_uri: str) -> dict[str, Any]:
        _begin(ex, edge_id, "load")
        summary = _guarded(ex, edge_id, engine.load, run_uri, resolve_conn=resolve_conn)
        return {k: summary.get(k) for k in _LOAD_KEYS}

    @task_group(group_id=group_id)
    def sync(edge_id: str) -> None:
        # Returning nothing makes the call return the task group itself, so `group >> next` orders
        # every task of the next group after every task of this one.
        run = extract(edge_id)
        load(edge_id, seal(edge_id, validate(edge_id, run)))

    return sync


def _doc(ex: Exchange, node: str, dataset: str, stages: list[tuple[str, list[str]]]) -> str:
    """The DAG's page: what it moves, from which counties and systems, and how to debug it."""
    n = ex.nodes[node]
    lines = [
        f"# {DATASET_NAMES.get(dataset, dataset)} {dataset} → {n.name} {n.code}",
        "",
        f"Syncs **{dataset}** ({DATASET_NAMES.get(dataset, dataset)}) into the library of "
        f"{n.name} ({n.code}), then publishes `tongban://{node}/{dataset}`"
        + (" so the national DAG picks it up." if n.level == "province" else "."),
        "",
        "| stage | edge | source |",
        "|---|---|---|",
    ]
    for group, edges in stages:
        for edge_id in edges:
            edge = _EDGES(ex)[edge_id]
            lines.append(f"| `{group}` | `{edge_id}` | {edge_label(ex, edge)} |")
    lines += [
        "",
        "Each edge is four tasks: **extract** (reads since the edge's cursor) → **validate** (the data "
        "contract) → **seal** (Merkle root, Ed25519 signature) → **load** (verify, one transaction). "
        "Mapped instances are named by county and system. `publish` runs even when an edge failed, so "
        "what landed still goes up; the run then ends failed (`all_edges_ok`).",
        "",
        "## When a run fails",
        "",
        "1. Open the red task's log: its last lines carry `code`, `edge` and `run_id` "
        "(`tongban errors CODE` explains the code and whether a retry helps).",
        f"2. `tongban status --dataset {dataset}` shows every edge's last success, lag and last error; "
        f"`tongban failed list --node {node} --dataset {dataset} --since 24h` the failed rows, batches "
        "and runs (each failed run keeps this task's log link).",
        "3. A system or library that was down: fix it and clear the failed task (Airflow retries "
        "transient errors with backoff by itself); the next run resumes from the committed cursor.",
        "4. Bad input (a mapping, a missing table, a bad signature) fails at once: fix the config or "
        "the source, then clear the task.",
        "",
        f"Built from `{ex.path.name}`; do not edit by hand.",
    ]
    return "\n".join(lines)


def _dag(
    ex: Exchange, dag_id: str, node: str, dataset: str, schedule: Any, stages: list[tuple[str, list[str]]]
) -> DAG:
    n = ex.nodes[node]
    zh = DATASET_NAMES.get(dataset, dataset)
    # Each group's labels by map index (the order of the mapped list), for names while a task runs.
    labels = {g: {i: edge_label(ex, _EDGES(ex)[e]) for i, e in enumerate(edges)} for g, edges in stages}
    with DAG(
        dag_id,
        dag_display_name=f"{dataset} {zh} · {n.name} {n.code}",
        description=f"{n.name} {zh}同步 — {dataset} into {n.code}",
        schedule=schedule,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        # Every edge of a stage may run at once (a province of 200 counties is 200 extracts); the
        # pool and the workers bound it, not Airflow's default of 16 a DAG.
        max_active_tasks=max(16, *(len(edges) for _, edges in stages)),
        tags=sorted({"tongban", dataset, zh, n.name, n.code}),
        user_defined_macros={"tongban_labels": labels},
        default_args={
            "owner": n.owner or n.name,
            "retries": ex.retries,
            "retry_delay": _dt.timedelta(seconds=float(os.environ.get("TONGBAN_RETRY_DELAY") or 30)),
            "retry_exponential_backoff": True,
            "max_retry_delay": _dt.timedelta(minutes=30),
        },
        doc_md=_doc(ex, node, dataset, stages),
    ) as dag:
        previous = None
        groups = []
        for i, (group_id, edges) in enumerate(stages):
            group = _edge_group(ex, group_id, after_failures=i > 0).expand(edge_id=edges)
            groups.append(group)
            if previous is not None:
                previous >> group
            previous = group
        asset = asset_for(node, dataset)
        load_ids = [f"{group_id}.load" for group_id, _ in stages]

        @task(outlets=[asset], trigger_rule=TriggerRule.ALL_DONE)
        def publish() -> dict[str, Any]:
            """Tell the parent's DAG that this library has new data; the event's extra has the counts."""
            to_task_log()
            ctx: Any = get_current_context()
            pulled = ctx["ti"].xcom_pull(task_ids=load_ids) or []
            loads = [x for x in pulled if isinstance(x, dict)]
            counts: dict[str, Any] = {"edges": sum(len(e) for _, e in stages), "edges_loaded": len(loads)}
            for key in _LOAD_KEYS[1:]:
                counts[key] = sum(int(x.get(key) or 0) for x in loads)
            ctx["outlet_events"][asset].extra = {"node": node, "dataset": dataset, **counts}
            logs.event(
                _log,
                "publish",
                f"publish tongban://{node}/{dataset}: {counts['edges_loaded']}/{counts['edges']} edges loaded",
                node=node,
                dataset=dataset,
                run_id=_run_id(),
                **{k: v for k, v in counts.items() if k in logs.FIELDS},
            )
            return counts

        @task(trigger_rule=TriggerRule.ALL_SUCCESS)
        def all_edges_ok() -> None:
            """Fails the run (upstream failed) when any edge failed; publish has run regardless."""

        published = publish()
        if previous is not None:
            previous >> published
        done = all_edges_ok()
        for group in groups:
            group >> done
        published >> done
    return dag


def build_dags(ex: Exchange) -> dict[str, DAG]:
    """Every sync DAG of the exchange, by id (one pass over the edges: a national topology has 17,000)."""
    dags: dict[str, DAG] = {}
    national = next(code for code, n in ex.nodes.items() if n.level == "national")
    parent = {code: n.parent for code, n in ex.nodes.items()}
    # (dataset, province) -> local edges of its counties, and county edges into it; national edges.
    local: dict[tuple[str, str], list[str]] = {}
    up: dict[tuple[str, str], list[str]] = {}
    for e in ex.edges:
        if e.source_kind == "system":
            province = parent.get(e.target)
            if province is not None and ex.nodes[province].level == "province":
                local.setdefault((e.dataset, province), []).append(e.id)
        else:
            up.setdefault((e.dataset, e.target), []).append(e.id)
    for dataset in schemas.DATASETS:
        for province in (n.code for n in ex.provinces()):
            stages = [
                (g, edges)
                for g, edges in (
                    ("local_to_county", local.get((dataset, province), [])),
                    ("county_to_province", up.get((dataset, province), [])),
                )
                if edges
            ]
            if stages:
                dag_id = f"tongban_{dataset}_{province}"
                dags[dag_id] = _dag(ex, dag_id, province, dataset, ex.schedule, stages)
        into_national = up.get((dataset, national), [])
        if into_national:
            sources = sorted({_EDGES(ex)[e].source for e in into_national})
            trigger: Any = asset_for(sources[0], dataset)
            for code in sources[1:]:
                trigger = trigger | asset_for(code, dataset)
            dag_id = f"tongban_{dataset}_national"
            dags[dag_id] = _dag(
                ex, dag_id, national, dataset, trigger, [("province_to_national", into_national)]
            )
    return dags


def dag_ids(ex: Exchange) -> list[str]:
    """Sync DAG ids in the order a full pass runs them: provinces first, then the national DAGs."""
    ids = list(build_dags(ex))
    return sorted(ids, key=lambda d: (d.endswith("_national"), d))
