"""The production path, proven: Airflow 3's api-server, scheduler, dag-processor, triggerer and a Celery
worker as separate processes, metadata in a fresh PostgreSQL database, Redis as the broker, the demo
exchange's libraries in PostgreSQL (one schema per node), driven through the REST API.

1. every province DAG is triggered through the API (JWT from ``/auth/token``); the national DAGs follow
   on the provinces' Assets; the national library then holds exactly the clean rows, and ``tongban
   status`` shows every edge current;
2. a worker is killed (SIGKILL to its process group) while a task is in the middle of its work (the test
   holds the edge's lock, so the extract is waiting on it); a new worker is started and the run
   finishes, the killed task retried: each changed record arrives once, nothing lost or doubled;
3. a county whose local table is gone (``SQL_NO_TABLE``) fails its task, named by county and system,
   and the province run ends failed, while what did land still reaches the national library.

A smaller demo (three counties in two provinces, a few dozen rows each) keeps it to a few minutes on
two cores. Every component's log is kept under the test's folder (``airflow/logs``), printed on failure.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tongban.core.engine import spool
from tongban.demo.stack import COMPONENTS, Stack, StackError

PG, REDIS = "TONGBAN_TEST_POSTGRES_URL", "TONGBAN_TEST_REDIS_URL"
ROOT = Path(__file__).resolve().parent.parent
#: Three demo counties in two provinces (code, name, province, province name).
COUNTIES = ("630104", "630121", "430981")
NATIONAL = "000000"

pytestmark = pytest.mark.skipif(
    not (os.environ.get(PG) and os.environ.get(REDIS)),
    reason=f"set {PG} and {REDIS} to run Airflow with Celery against PostgreSQL and Redis",
)


def _settings(libraries: dict[str, str]) -> dict[str, str]:
    """The stack's settings for a test: fast detection of a dead worker, short retries."""
    return {
        **libraries,
        "TONGBAN_WORKERS": "4",
        # A task whose worker died is noticed within seconds, then retried (the exchange's retries).
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "60",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "10",
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "30",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
        "TONGBAN_RETRY_DELAY": "3",
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from tongban.core.config import load_exchange
    from tongban.core.initialize import initialize
    from tongban.demo.exchange_yaml import demo_exchange_yaml
    from tongban.demo.generate import DEMO_COUNTIES, generate_demo

    root = tmp_path_factory.mktemp("airflow-stack")
    manifest = generate_demo(root, population_per_county=40, business_per_county=15, license_per_county=20)
    counties = [c for c in DEMO_COUNTIES if c[0] in COUNTIES]
    systems = [s for s in manifest["systems"] if s["county"] in COUNTIES]
    text = demo_exchange_yaml(root, systems, counties, library_env="TONGBAN_LIB_")
    # Runs only when triggered (the test triggers them); a failed task retries twice.
    text = text.replace('schedule: "@hourly"', "schedule: null")
    (root / "exchange.yaml").write_text(text, encoding="utf-8")

    base = sa.make_url(os.environ[PG])
    tag = uuid.uuid4().hex[:10]
    meta_db, lib_db = f"tb_airflow_{tag}", f"tb_libs_{tag}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f"create database {meta_db}"))
        conn.execute(sa.text(f"create database {lib_db}"))
    libraries: dict[str, str] = {}
    lib_url = base.set(database=lib_db)
    lib_admin = sa.create_engine(lib_url, poolclass=sa.pool.NullPool)
    codes = [NATIONAL, *sorted({c[2] for c in counties}), *COUNTIES]
    with lib_admin.begin() as conn:
        for code in codes:
            conn.execute(sa.text(f"create schema n{code}"))
            url = lib_url.update_query_dict({"options": f"-csearch_path=n{code}"})
            libraries[f"TONGBAN_LIB_{code}"] = url.render_as_string(hide_password=False)
    lib_admin.dispose()
    saved = {k: os.environ.get(k) for k in libraries}
    os.environ.update(libraries)
    ex = load_exchange(root / "exchange.yaml")
    initialize(ex)
    stack = Stack(
        root / "airflow",
        base.set(database=meta_db).render_as_string(hide_password=False),
        os.environ[REDIS],
        root / "exchange.yaml",
        settings=_settings(libraries),
    )
    out = {"root": root, "ex": ex, "stack": stack, "manifest": manifest, "systems": systems}
    try:
        stack.migrate()
        stack.start_all()
        yield out
    finally:
        stack.stop_all()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        with admin.connect() as conn:
            for db in (meta_db, lib_db):
                conn.execute(sa.text(f"drop database if exists {db} with (force)"))
        admin.dispose()
        _forget_queue(os.environ[REDIS], stack.queue)


def _forget_queue(url: str, queue: str) -> None:
    """Remove this test's Celery queue from the broker (other keys are not ours)."""
    try:
        import redis

        redis.Redis.from_url(url).delete(
            queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"
        )
    except Exception:
        pass


def _explain(stack: Stack, exc: BaseException) -> str:
    """Where the logs are, with the last lines of each component's."""
    parts = [f"{type(exc).__name__}: {exc}", f"component logs kept in {stack.logs}"]
    for name in (*COMPONENTS, "airflow-worker-2", "cli"):
        path = stack.logs / f"{name}.log"
        if path.exists():
            tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
            parts.append(f"--- {path} (last lines)\n" + "\n".join(tail))
    return "\n".join(parts)


def _libs(ex: Any) -> Any:
    from tongban.core.engine import Libraries

    return Libraries(ex)


def _clean_rows(systems: list[dict[str, Any]]) -> dict[str, int]:
    """Rows the national library must hold per dataset: every generated row but the defective ones."""
    out: dict[str, int] = {}
    for s in systems:
        out[s["dataset"]] = out.get(s["dataset"], 0) + s["rows"] - len({d["row"] for d in s["defects"]})
    return out


def _finished(stack: Stack, dag_id: str, run_id: str) -> str | None:
    run = stack.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
    return run["state"] if run["state"] in ("success", "failed") else None


def _quiet(stack: Stack, dag_ids: list[str]) -> bool:
    """No run of these DAGs is queued or running."""
    for dag_id in dag_ids:
        active = stack.api("GET", f"/dags/{dag_id}/dagRuns", params={"state": ["queued", "running"]})
        if active["total_entries"]:
            return False
    return True


def _national_counts(ex: Any) -> dict[str, int]:
    with _libs(ex) as libs:
        lib = libs.get(NATIONAL)
        return {d: lib.count(d) for d in ("population", "business", "license")}


def test_real_scheduler_runs_the_exchange_and_survives_a_killed_worker(world: dict[str, Any]) -> None:
    stack: Stack = world["stack"]
    try:
        _run(world)
    except (AssertionError, StackError) as exc:
        raise AssertionError(_explain(stack, exc)) from None


def _run(world: dict[str, Any]) -> None:
    stack: Stack = world["stack"]
    ex = world["ex"]
    started = time.monotonic()
    stack.wait_until("a healthy stack", stack.healthy, 180)
    sync_dags = sorted(
        {
            f"tongban_{d}_{p}"
            for d in ("population", "business", "license")
            for p in ("630000", "430000", "national")
        }
    )
    stack.wait_until("the DAGs parsed", lambda: set(sync_dags) <= set(stack.dag_ids()), 180)
    assert stack.import_errors() == []
    for dag_id in sync_dags:
        stack.unpause(dag_id)

    # 1. Trigger every province DAG through the REST API; the national DAGs follow on the Assets.
    provinces = [d for d in sync_dags if not d.endswith("_national")]
    runs = {d: stack.trigger(d) for d in provinces}
    states = stack.wait_until(
        "the province runs",
        lambda: (
            all(_finished(stack, d, r) for d, r in runs.items())
            and {d: _finished(stack, d, r) for d, r in runs.items()}
        ),
        600,
        every=3,
    )
    assert set(states.values()) == {"success"}, states
    expected = _clean_rows(world["systems"])
    stack.wait_until(
        "the national library",
        lambda: _national_counts(ex) == expected and _quiet(stack, sync_dags),
        600,
        every=3,
    )
    for dag_id in (d for d in sync_dags if d.endswith("_national")):
        assert {r["state"] for r in stack.runs(dag_id)} == {"success"}
    first_pass = time.monotonic() - started

    # tongban status (the CLI, in its own process) sees every edge current, nothing failed.
    env = {**stack.env(), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tongban.cli",
            "status",
            "--config",
            str(world["root"] / "exchange.yaml"),
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    status = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert len(status) == len(ex.edges)
    assert all(s["last_success"] and not s["last_error"] for s in status), status
    national = {s["dataset"]: s for s in status if s["target"] == NATIONAL and s["source"] == "630000"}
    assert national["population"]["rows_loaded"] > 0

    # The task log carries the steps' fields as keys, and mapped instances are named.
    logs = list((stack.logs / "tasks").rglob("*.log"))
    load_logs = [p for p in logs if "task_id=local_to_county.load" in str(p)]
    assert load_logs
    text = load_logs[0].read_text(encoding="utf-8")
    line = next(json.loads(x) for x in text.splitlines() if '"tongban_event":"load"' in x)
    assert line["edge"].startswith(("population.", "business.", "license.")) and "inserted" in line
    tis = stack.task_instances("tongban_population_630000", runs["tongban_population_630000"])
    names = {t["rendered_map_index"] for t in tis if t["task_id"] == "local_to_county.extract"}
    assert any(n and n.startswith("630121 ") and n.endswith("· 公安") for n in names), names

    # 2. Change 25 residents at 630104, kill the worker while the run is in flight, start a new one.
    register = world["root"] / "systems" / "630104" / "gongan.sqlite"
    defective = {
        d["key"] for s in world["systems"] if s["path"].endswith("630104/gongan.sqlite") for d in s["defects"]
    }
    db = sqlite3.connect(register)
    keys = [k for (k,) in db.execute("select sfzh from czrk order by sfzh") if k not in defective][:25]
    with db:
        db.executemany(
            "update czrk set hjdz = hjdz || '（新）', gxsj = '2026-11-01 08:00:00' where sfzh = ?",
            [(k,) for k in keys],
        )
    db.close()
    with _libs(ex) as libs:
        before = {n: libs.get(n).count("population") for n in ("630104", "630000", NATIONAL)}
        history_before = _history_rows(libs.get(NATIONAL), keys)
    dag_id = "tongban_population_630000"
    edge = "population.630104-gongan.630104"
    # The test holds the edge's lock, so the edge's extract is certainly in the middle of its work
    # (waiting for the lock) when the worker is killed.
    with spool.edge_lock(ex.spool, edge, wait=0):
        run_id = stack.trigger(dag_id)

        def blocked() -> dict[str, Any] | None:
            # Named while it runs (the name is rendered early from the group's labels).
            tis = stack.task_instances(dag_id, run_id)
            return next(
                (
                    t
                    for t in tis
                    if t["task_id"] == "local_to_county.extract"
                    and t["state"] == "running"
                    and (t["rendered_map_index"] or "").startswith("630104 ")
                ),
                None,
            )

        victim = stack.wait_until("the extract running", blocked, 180, every=0.5)
        time.sleep(2)
        stack.kill("airflow-worker")
        stack.start("airflow-worker", log_name="airflow-worker-2")
    assert stack.wait_until(
        "the run after the kill", lambda: _finished(stack, dag_id, run_id), 600, every=3
    ) == ("success")
    stack.wait_until("the national run", lambda: _quiet(stack, sync_dags), 600, every=3)
    after = next(
        t
        for t in stack.task_instances(dag_id, run_id)
        if t["task_id"] == "local_to_county.extract" and t["map_index"] == victim["map_index"]
    )
    assert after["state"] == "success" and after["try_number"] > victim["try_number"], after
    with _libs(ex) as libs:
        for node in ("630104", "630000", NATIONAL):
            lib = libs.get(node)
            assert lib.count("population") == before[node]  # nothing lost, nothing doubled
            for key in keys:
                assert lib.record("population", key)["household_address"].endswith("（新）")
        # Each changed record replaced its version once at the national library.
        assert _history_rows(libs.get(NATIONAL), keys) == history_before + len(keys)

    # 3. A county's local table is gone: its extract fails (named by county and system), the province
    #    run ends failed, and what the other county loaded still reaches the national library.
    gone = world["root"] / "systems" / "630121" / "gongan.sqlite"
    db = sqlite3.connect(gone)
    with db:
        db.execute("alter table czrk rename to czrk_old")
    db.close()
    db = sqlite3.connect(register)
    with db:
        db.execute(
            "update czrk set hjdz = hjdz || '2', gxsj = '2026-11-02 08:00:00' where sfzh = ?", (keys[0],)
        )
    db.close()
    national_runs = len(stack.runs("tongban_population_national"))
    run_id = stack.trigger(dag_id)
    assert (
        stack.wait_until("the failing run", lambda: _finished(stack, dag_id, run_id), 300, every=3)
        == "failed"
    )
    tis = {(t["task_id"], t["rendered_map_index"]): t["state"] for t in stack.task_instances(dag_id, run_id)}
    failed = [k for k, v in tis.items() if v == "failed"]
    assert failed == [("local_to_county.extract", "630121 大通回族土族自治县 · 公安")], tis
    assert any(k[0] == "publish" and v == "success" for k, v in tis.items()), tis
    stack.wait_until(
        "the national run after the failure",
        lambda: len(stack.runs("tongban_population_national")) > national_runs and _quiet(stack, sync_dags),
        300,
        every=3,
    )
    with _libs(ex) as libs:
        assert libs.get(NATIONAL).record("population", keys[0])["household_address"].endswith("（新）2")
        failures = libs.get("630121").failures(kind="run")
        assert failures and failures[0]["codes"] == "SQL_NO_TABLE"
        assert "log_url" in (failures[0]["payload"] or "")
    print(f"first pass {first_pass:.0f}s, whole test {time.monotonic() - started:.0f}s")


def _history_rows(lib: Any, keys: list[str]) -> int:
    t = lib.tables["population_history"]
    with lib.connect() as conn:
        stmt = sa.select(sa.func.count()).select_from(t).where(t.c.id_number.in_(keys))
        return int(conn.execute(stmt).scalar_one())
