"""The maintenance DAGs, built by the same DAG file as the sync DAGs; each task only calls Core
(:mod:`tongban.core.maintenance`).

- ``tongban_reconcile`` (daily): one mapped instance per parent node and dataset, reconciling each
  child's library with the parent's by digest trees; drift is kept as failed transfers of the edge in
  the parent's library (``RECONCILE_MISSING``, ``RECONCILE_EXTRA``, ``RECONCILE_DIFFERENT``), and an
  instance that found drift fails, so the run shows red;
- ``tongban_expire_licenses`` (daily): one mapped instance per province, expiring its counties' licenses
  whose ``valid_until`` has passed (``05`` 失效, through each library's load path);
- ``tongban_prune`` (daily): spool run folders and drop-folder archives older than the DAG's params;
- ``tongban_review`` (every 5 minutes, unpaused when created): applies operators' queued retries and
  resubmissions by running
  the edges with queued work and the edges above them (:func:`tongban.core.review.apply_queued`), so
  an action taken in the review page takes effect without anyone running a command.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from airflow.sdk import DAG, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from tongban.airflow.hooks import resolve_conn
from tongban.airflow.logs import to_task_log
from tongban.core import engine, maintenance, review
from tongban.core.config import Exchange

__all__ = ["build_maintenance_dags"]

START = _dt.datetime(2026, 1, 1, tzinfo=_dt.UTC)
_TEMPLATE = "{{ tongban_label if tongban_label is defined else '' }}"


def _owner(ex: Exchange) -> str:
    national = next(n for n in ex.nodes.values() if n.level == "national")
    return national.owner or national.name


def _args(ex: Exchange) -> dict[str, Any]:
    return {
        "owner": _owner(ex),
        "retries": ex.retries,
        "retry_delay": _dt.timedelta(minutes=5),
    }


def _units(ex: Exchange) -> list[str]:
    """``parent:dataset`` for every node some child syncs a dataset into."""
    found = {f"{e.target}:{e.dataset}" for e in ex.edges if e.source_kind == "node"}
    return sorted(found)


def build_maintenance_dags(ex: Exchange) -> dict[str, DAG]:
    """The maintenance DAGs of the exchange, by id."""
    dags: dict[str, DAG] = {}
    tags = ["tongban", "maintenance", "维护"]

    with DAG(
        "tongban_reconcile",
        dag_display_name="reconcile 对账 · libraries",
        description="Reconcile each child's library with its parent's (digest trees, anti-entropy)",
        schedule="@daily",
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=[*tags, "reconcile", "对账"],
        default_args=_args(ex),
        doc_md=(
            "# 对账 Reconcile\n\nFor every parent and dataset, compares each child's records with the "
            "parent's copies by **digest trees** over buckets of keys (as Cassandra's repair does): only "
            "buckets whose digests differ are read key by key. Drift becomes failed transfers of the edge "
            "in the parent's library — `RECONCILE_MISSING`, `RECONCILE_EXTRA`, `RECONCILE_DIFFERENT` — "
            "listed by `tongban failed list --node PARENT --code RECONCILE`. Records loaded after the "
            "parent's cursor are in flight, not drift. An instance that found drift fails."
        ),
    ) as dag:

        @task(map_index_template=_TEMPLATE)
        def reconcile(unit: str) -> dict[str, Any]:
            to_task_log()
            parent, dataset = unit.split(":")
            ctx: Any = get_current_context()
            ctx["tongban_label"] = f"{parent} {ex.nodes[parent].name} · {dataset}"
            with engine.Libraries(ex, resolve_conn) as libs:
                found = maintenance.reconcile_pairs(ex, parent, dataset, libs=libs)
            drift = [d for d in found if not d.clean]
            if drift:
                raise AirflowFailException(
                    "; ".join(
                        f"{d.edge}: {len(d.missing)} RECONCILE_MISSING, {len(d.extra)} RECONCILE_EXTRA, "
                        f"{len(d.different)} RECONCILE_DIFFERENT"
                        for d in drift
                    )
                )
            return {"pairs": len(found), "rows": sum(d.rows_child for d in found)}

        reconcile.expand(unit=_units(ex))
    dags[dag.dag_id] = dag

    provinces = [n.code for n in ex.provinces()]
    with DAG(
        "tongban_expire_licenses",
        dag_display_name="license 证照 · expire 失效",
        description="Expire licenses whose valid_until has passed (05 失效) in their owners' libraries",
        schedule="@daily",
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=[*tags, "license", "证照"],
        default_args=_args(ex),
        doc_md=(
            "# 证照失效 Expire licenses\n\nIn each county's library, valid licenses (`01`) whose "
            "`valid_until` has passed become `05` 失效 through the library's load path: a batch signed "
            "by the county, so the record's history keeps the `01` version and the next sync ships the "
            "change up."
        ),
    ) as dag:

        @task(map_index_template=_TEMPLATE)
        def expire(province: str) -> dict[str, int]:
            to_task_log()
            ctx: Any = get_current_context()
            ctx["tongban_label"] = f"{province} {ex.nodes[province].name}"
            total = {"counties": 0, "expired": 0}
            with engine.Libraries(ex, resolve_conn) as libs:
                for county in ex.counties(province):
                    if "license" in ex.datasets_of(county.code):
                        done = maintenance.expire_licenses(ex, county.code, libs=libs)
                        total["counties"] += 1
                        total["expired"] += done["expired"]
            return total

        expire.expand(province=provinces)
    dags[dag.dag_id] = dag

    with DAG(
        "tongban_prune",
        dag_display_name="prune 清理 · spool and archives",
        description="Remove old spool run folders and drop-folder archives",
        schedule="@daily",
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=[*tags, "prune", "清理"],
        default_args=_args(ex),
        params={"spool_days": 30, "archive_days": 90},
        doc_md=(
            "# 清理 Prune\n\nRemoves committed runs' summaries and abandoned run folders in the spool "
            "older than `spool_days`, and drop-folder `archive/YYYYMMDD/` folders older than "
            "`archive_days` (trigger with other params to change them). Quarantined files stay."
        ),
    ) as dag:

        @task
        def prune() -> dict[str, Any]:
            to_task_log()
            params = get_current_context()["params"]
            return maintenance.prune(
                ex, spool_days=float(params["spool_days"]), archive_days=float(params["archive_days"])
            )

        prune()
    dags[dag.dag_id] = dag

    with DAG(
        "tongban_review",
        dag_display_name="review 复核 · apply queued retries and resubmissions",
        description="Apply operators' queued retries and resubmissions: run the edges with queued work",
        schedule=_dt.timedelta(minutes=5),
        start_date=START,
        catchup=False,
        max_active_runs=1,
        # Unpaused from the start: what operators queue in the page takes effect with nobody at Airflow.
        is_paused_upon_creation=False,
        tags=[*tags, "review", "复核"],
        default_args=_args(ex),
        doc_md=(
            "# 复核 Review\n\nOperators retry and resubmit failed transfers in the review page or with "
            "`tongban failed retry|resubmit`; those are **queued**. Every 5 minutes this DAG runs each edge "
            "with queued work once (a resubmitted row is sealed by the county that owns it, chained, "
            "verified and loaded), then the edges above it, so the row reaches the province and national "
            "libraries. The exchange DAGs' own next runs pick the same queued work up. An edge that fails "
            "is kept as a failed run, as any run's; the task fails so the run shows red."
        ),
    ) as dag:

        @task
        def apply_queued() -> dict[str, Any]:
            to_task_log()
            with engine.Libraries(ex, resolve_conn) as libs:
                done = review.apply_queued(ex, libs)
            failed = [d for d in done if not d["ok"]]
            if failed:
                raise AirflowFailException("; ".join(f"{d['edge']}: {d['code']}" for d in failed))
            return {"edges": len(done), "rows": sum(int(d.get("rows") or 0) for d in done)}

        apply_queued()
    dags[dag.dag_id] = dag
    return dags
