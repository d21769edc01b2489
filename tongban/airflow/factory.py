"""Build the exchange's DAGs from ``exchange.yaml``.

Layout: one DAG per province and dataset (``tongban_<dataset>_<province>``) whose mapped task groups
sync each county's local systems into the county library and then each county up to the province,
and one DAG per dataset at the national node (``tongban_<dataset>_national``), triggered by any of its
provinces' Assets, whose mapped task groups sync each province up. Every edge is the same four tasks,
extract -> validate -> seal -> load, passing the run folder's ``file://`` URI through XCom, never rows.

A national topology (about 2,850 counties in 34 provinces) is then 3 x 35 = 105 DAGs with up to a few
hundred mapped task instances each, instead of some 17,000 one-edge DAGs: the scheduler parses one
file and few DAGs, adding a county adds mapped instances, not DAGs, and each province runs on its own.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

from airflow.sdk import DAG, Asset, BaseHook, TriggerRule, get_current_context, task, task_group

import schemas
from tongban.airflow.retry import fail_or_retry
from tongban.core import engine
from tongban.core.config import Exchange, connection_url

__all__ = ["asset_for", "build_dags", "dag_ids"]

START = _dt.datetime(2026, 1, 1, tzinfo=_dt.UTC)


def asset_for(node: str, dataset: str) -> Asset:
    """The Asset a node's library publishes for a dataset once a sync into it has finished."""
    return Asset(f"tongban://{node}/{dataset}", group="tongban")


def _conn_uri(conn_id: str) -> str:
    """An Airflow Connection's URI, as the engine's connection resolver."""
    return connection_url(BaseHook.get_connection(conn_id).get_uri())


def _run_id() -> str:
    ctx = get_current_context()
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(ctx["run_id"]))


def _fail(ex: Exchange, edge_id: str, exc: BaseException) -> None:
    """Record the failed run in the target library, then fail fast or let Airflow retry."""
    ctx = get_current_context()
    ti: Any = ctx.get("ti")
    engine.record_run_failure(
        ex, edge_id, exc, log_url=getattr(ti, "log_url", "") or "", resolve_conn=_conn_uri
    )
    fail_or_retry(exc)


def _guarded(ex: Exchange, edge_id: str, step: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one engine step; on failure record it, then fail fast or let Airflow retry (see _fail)."""
    try:
        return step(ex, *args, **kwargs)
    except Exception as exc:
        _fail(ex, edge_id, exc)
        raise


def _edge_group(ex: Exchange, group_id: str, *, after_failures: bool) -> Any:
    """A task group syncing one edge (its id is the mapped argument)."""

    @task(trigger_rule=TriggerRule.ALL_DONE if after_failures else TriggerRule.ALL_SUCCESS)
    def extract(edge_id: str) -> str:
        return _guarded(ex, edge_id, engine.extract, edge_id, run_id=_run_id(), resolve_conn=_conn_uri)

    @task
    def validate(edge_id: str, run_uri: str) -> str:
        return _guarded(ex, edge_id, engine.validate, run_uri)

    @task
    def seal(edge_id: str, run_uri: str) -> str:
        return _guarded(ex, edge_id, engine.seal, run_uri, resolve_conn=_conn_uri)

    @task
    def load(edge_id: str, run_uri: str) -> dict[str, Any]:
        summary = _guarded(ex, edge_id, engine.load, run_uri, resolve_conn=_conn_uri)
        keys = ("edge", "rows", "inserted", "updated", "unchanged", "rejected", "conflicts")
        return {k: summary[k] for k in keys}

    @task_group(group_id=group_id)
    def sync(edge_id: str) -> None:
        # Returning nothing makes the call return the task group itself, so `group >> next` orders
        # every task of the next group after every task of this one.
        run = extract(edge_id)
        load(edge_id, seal(edge_id, validate(edge_id, run)))

    return sync


def _dag(
    ex: Exchange, dag_id: str, node: str, dataset: str, schedule: Any, stages: list[tuple[str, list[str]]]
) -> DAG:
    name = ex.nodes[node].name
    with DAG(
        dag_id,
        description=f"{name} {dataset} 同步 sync",
        schedule=schedule,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=["tongban", dataset, node],
        default_args={
            "retries": ex.retries,
            "retry_delay": _dt.timedelta(seconds=30),
            "retry_exponential_backoff": True,
            "max_retry_delay": _dt.timedelta(minutes=30),
        },
        doc_md=f"Sync **{dataset}** into {name} ({node}). Built from `{ex.path.name}`; do not edit by hand.",
    ) as dag:
        previous = None
        for i, (group_id, edges) in enumerate(stages):
            group = _edge_group(ex, group_id, after_failures=i > 0).expand(edge_id=edges)
            if previous is not None:
                previous >> group
            previous = group

        @task(outlets=[asset_for(node, dataset)], trigger_rule=TriggerRule.ALL_DONE)
        def publish() -> str:
            """Tell the parent's DAG that this library has new data."""
            return f"tongban://{node}/{dataset}"

        if previous is not None:
            previous >> publish()
    return dag


def build_dags(ex: Exchange) -> dict[str, DAG]:
    """Every DAG of the exchange, by id."""
    dags: dict[str, DAG] = {}
    national = next(code for code, n in ex.nodes.items() if n.level == "national")
    for dataset in schemas.DATASETS:
        for province in (n.code for n in ex.provinces()):
            counties = {c.code for c in ex.children(province)}
            local = [
                e.id
                for e in ex.edges
                if e.dataset == dataset and e.source_kind == "system" and e.target in counties
            ]
            up = [
                e.id
                for e in ex.edges
                if e.dataset == dataset and e.source_kind == "node" and e.target == province
            ]
            stages = [
                (g, edges) for g, edges in (("local_to_county", local), ("county_to_province", up)) if edges
            ]
            if stages:
                dag_id = f"tongban_{dataset}_{province}"
                dags[dag_id] = _dag(ex, dag_id, province, dataset, ex.schedule, stages)
        up = [
            e.id
            for e in ex.edges
            if e.dataset == dataset and e.source_kind == "node" and e.target == national
        ]
        if up:
            sources = sorted({ex.edge(e).source for e in up})
            trigger: Any = asset_for(sources[0], dataset)
            for code in sources[1:]:
                trigger = trigger | asset_for(code, dataset)
            dag_id = f"tongban_{dataset}_national"
            dags[dag_id] = _dag(ex, dag_id, national, dataset, trigger, [("province_to_national", up)])
    return dags


def dag_ids(ex: Exchange) -> list[str]:
    """DAG ids in the order a full pass runs them: provinces first, then the national DAGs."""
    ids = list(build_dags(ex))
    return sorted(ids, key=lambda d: (d.endswith("_national"), d))
