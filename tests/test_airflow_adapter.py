"""The Airflow adapter's parts that need no scheduler: the provider entry point and the connection type's
hook (declared fields, Test button), the log bridge, the cached exchange, and the demo runner's bound."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(tmp_path: Path, script: str, *args: str, env: dict[str, str] | None = None) -> dict:
    """Run ``script`` with Airflow configured under ``tmp_path``; its last stdout line as JSON."""
    full = dict(os.environ)
    full.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_provider_entry_point_declares_the_connection_type() -> None:
    from tongban.airflow.provider import get_provider_info

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    entry = project["entry-points"]["apache_airflow_provider"]["provider_info"]
    assert entry == "tongban.airflow.provider:get_provider_info"
    info = get_provider_info()
    assert info["package-name"] == project["name"]  # Airflow refuses a provider whose names differ
    (conn,) = info["connection-types"]
    assert conn["connection-type"] == "tongban"
    assert conn["conn-fields"]["kind"]["schema"]["enum"] == ["sqlite", "postgresql", "mysql"]
    assert {"host", "port", "schema", "login", "password"}.isdisjoint(
        conn["ui-field-behaviour"]["hidden-fields"]
    )


HOOK = r"""
import json, sys
from airflow.providers_manager import ProvidersManager
from airflow._shared.providers_discovery import providers_discovery  # noqa: F401
from tongban.airflow.hooks import TongbanHook, resolve_conn
from tongban.airflow.provider import get_provider_info
import jsonschema, importlib.resources
schema = json.loads(importlib.resources.files("airflow").joinpath("provider_info.schema.json").read_text())
jsonschema.validate(get_provider_info(), schema)
hook = TongbanHook("county_db")
ok = hook.test_connection()
bad = TongbanHook("county_missing").test_connection()
wrong = TongbanHook("county_kind").test_connection()
print(json.dumps({"url": resolve_conn("county_db"), "ok": ok, "bad": bad, "wrong": wrong,
                  "attrs": [TongbanHook.conn_type, TongbanHook.hook_name]}))
"""


def test_the_hook_resolves_and_tests_a_county_database(tmp_path: Path) -> None:
    db = tmp_path / "gongan.sqlite"
    sqlite3.connect(db).close()
    conn = {"conn_type": "tongban", "host": str(db), "extra": {"kind": "sqlite"}}
    missing = {
        "conn_type": "tongban",
        "host": str(tmp_path / "nope" / "x.sqlite"),
        "extra": {"kind": "sqlite"},
    }
    kind = {"conn_type": "tongban", "host": "db", "extra": {"kind": "oracle"}}
    out = _run(
        tmp_path,
        HOOK,
        env={
            "AIRFLOW_CONN_COUNTY_DB": json.dumps(conn),
            "AIRFLOW_CONN_COUNTY_MISSING": json.dumps(missing),
            "AIRFLOW_CONN_COUNTY_KIND": json.dumps(kind),
        },
    )
    assert out["url"] == f"sqlite:///{db}"
    assert out["ok"][0] is True
    assert out["bad"][0] is False and out["bad"][1].startswith("SQL_UNREACHABLE")
    assert out["wrong"][0] is False and "unknown kind 'oracle'" in out["wrong"][1]
    assert out["attrs"] == ["tongban", "Tongban database"]
    from tongban.airflow.provider import get_provider_info

    assert get_provider_info()["connection-types"][0]["hook-name"] == out["attrs"][1]


def test_a_tongban_connection_uri_resolves_outside_airflow_too(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tongban.core.config import connection_url

    assert (
        connection_url("tongban://etl:s3cret@db.example:5432/gongan?kind=postgresql")
        == "postgresql+psycopg://etl:s3cret@db.example:5432/gongan"
    )
    assert connection_url("tongban://reader@10.0.0.5:3306/gongan?kind=mysql") == (
        "mysql+pymysql://reader@10.0.0.5:3306/gongan"
    )


BRIDGE = r"""
import json, logging, io
import structlog
out = io.StringIO()
structlog.configure(processors=[structlog.processors.JSONRenderer()], logger_factory=structlog.PrintLoggerFactory(out))
from tongban.airflow.logs import to_task_log
from tongban.core import logs
to_task_log()
logs.event(logs.get("tongban.engine"), "load", "load e", edge="population.a.b", target="630000", rows=3,
           batch_id=["b1"], level=logging.INFO)
print(json.dumps(json.loads(out.getvalue().splitlines()[-1])))
"""


def test_task_log_lines_carry_the_fields_without_airflow_reserved_keys(tmp_path: Path) -> None:
    line = _run(tmp_path, BRIDGE)
    assert line["tongban_event"] == "load" and line["edge"] == "population.a.b" and line["rows"] == 3
    assert "target" not in line and line["target_node"] == "630000"  # `target` kills Airflow's forwarding


CACHE = r"""
import json, sys, time
from pathlib import Path
from tongban.airflow import factory
path = Path(sys.argv[1])
first = factory.exchange(path)
factory._CACHE.clear()                  # a new process: only the disk cache is left
second = factory.exchange(path)
mapping = Path(sys.argv[2])
mapping.write_text(mapping.read_text() + "\n")   # a mapping file changed: loaded again
factory._CACHE.clear()
third = factory.exchange(path)
print(json.dumps({"same": second is not first and second.edges == first.edges,
                  "reloaded": third is not second, "files": len(list(Path(sys.argv[3]).iterdir()))}))
"""


def test_the_exchange_is_cached_across_processes_until_a_file_changes(tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "x"
    shutil.copytree(ROOT / "deploy", folder)
    cache = tmp_path / "cache"
    env = {
        f"TONGBAN_LIB_{c}": "postgresql+psycopg://u@h/db" for c in ("000000", "630000", "630104", "630121")
    }
    out = _run(
        tmp_path,
        CACHE,
        str(folder / "exchange.production.yaml"),
        str(folder / "mappings" / "gongan.mapping.yaml"),
        str(cache),
        env={**env, "TONGBAN_CACHE_DIR": str(cache)},
    )
    assert out == {"same": True, "reloaded": True, "files": 1}
    assert oct(cache.stat().st_mode & 0o777) == "0o700"


RUNNER = r"""
import datetime as dt
import json
import sys
import time

from airflow.sdk import DAG, task
from airflow.utils.db import initdb

from tongban.airflow.runner import run_once

with DAG("stuck", schedule=None, start_date=dt.datetime(2026, 1, 1)) as stuck:

    @task(retries=3, retry_delay=dt.timedelta(hours=1))
    def fail():
        raise RuntimeError("no")

    fail()

with DAG("slow", schedule=None, start_date=dt.datetime(2026, 1, 1)) as slow:

    @task
    def sleep():
        time.sleep(60)

    sleep()

if __name__ == "__main__":
    initdb()
    started = time.monotonic()
    a = run_once(stuck, 120)
    b = run_once(slow, 5)
    print(json.dumps({"failed": a, "slow": b, "seconds": time.monotonic() - started}))
"""


def test_the_demo_runner_ends_a_failed_or_stuck_dag_with_a_code(tmp_path: Path) -> None:
    folder = tmp_path / "dags"  # dag.test() syncs the DAGs of the DAG folder first
    folder.mkdir()
    module = folder / "runner_dags.py"
    module.write_text(RUNNER, encoding="utf-8")
    out = _run(
        tmp_path,
        "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')",
        str(module),
        env={
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/a.db",
            "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
        },
    )
    # A task that fails with retries left no longer makes dag.test() wait out its backoff.
    assert out["failed"]["state"] == "failed" and out["failed"]["code"] == "DAG_RUN_FAILED"
    assert out["slow"]["state"] == "failed" and out["slow"]["code"] == "DAG_RUN_TIMEOUT"
    assert out["seconds"] < 100
