"""dags/: the DAG factory builds the exchange's DAGs with no import errors, in the documented layout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Airflow reads its configuration when first imported, so the DagBag is filled in a child process
# whose AIRFLOW_HOME is a temporary folder.
SCRIPT = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(sys.argv[1])
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "tasks": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},
        "mapped": sorted(t.task_id for t in dag.tasks if type(t.task_group).__name__ == "MappedTaskGroup"),
        "schedule": type(dag.timetable).__name__,
        "outlets": sorted(str(o.uri) for t in dag.tasks for o in getattr(t, "outlets", [])),
        "retries": max(t.retries for t in dag.tasks),
        "display": dag.dag_display_name,
        "tags": sorted(dag.tags),
        "owners": sorted({t.owner for t in dag.tasks}),
        "doc": dag.doc_md or "",
        "templates": sorted({t.map_index_template or "" for t in dag.tasks}),
        "rules": {t.task_id: str(t.trigger_rule) for t in dag.tasks},
        "paused_at_creation": dag.is_paused_upon_creation,
    }
print(json.dumps(out))
"""


def _dagbag(tmp_path: Path, exchange: Path) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "TONGBAN_EXCHANGE": str(exchange),
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT / "dags")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _dagbag(tmp_path_factory.mktemp("bag"), ROOT / "exchange.yaml")


def test_dagbag_imports_without_errors(bag: dict) -> None:
    assert bag["errors"] == {}
    # One DAG per province and dataset, and one national DAG per dataset.
    provinces = ["150000", "320000", "430000", "620000", "630000"]
    expected = {f"tongban_{d}_{p}" for d in ("population", "business", "license") for p in provinces}
    expected |= {f"tongban_{d}_national" for d in ("population", "business", "license")}
    expected |= {"tongban_reconcile", "tongban_expire_licenses", "tongban_prune", "tongban_review"}
    assert set(bag["dags"]) == expected


def test_each_edge_is_extract_validate_seal_load(bag: dict) -> None:
    dag = bag["dags"]["tongban_population_630000"]
    tasks = dag["tasks"]
    for group in ("local_to_county", "county_to_province"):
        assert tasks[f"{group}.validate"] == [f"{group}.extract"]
        assert tasks[f"{group}.seal"] == [f"{group}.validate"]
        assert tasks[f"{group}.load"] == [f"{group}.seal"]
    # The counties go up only after their local systems are in.
    assert "local_to_county.load" in tasks["county_to_province.extract"]
    assert tasks["publish"] == ["county_to_province.load"]
    # publish runs on what landed; the run fails when any edge failed (all_edges_ok is its leaf).
    assert dag["rules"]["publish"].lower().endswith("all_done")
    assert dag["rules"]["all_edges_ok"].lower().endswith("all_success")
    assert set(tasks["all_edges_ok"]) == {"publish", "local_to_county.load", "county_to_province.load"}
    assert "tongban://630000/population" in dag["outlets"]
    assert dag["retries"] == 2
    assert "local_to_county.extract" in dag["mapped"]


def test_national_dags_run_on_province_assets(bag: dict) -> None:
    national = bag["dags"]["tongban_license_national"]
    assert national["schedule"] == "AssetTriggeredTimetable"
    assert set(national["tasks"]) == {
        "province_to_national.extract",
        "province_to_national.validate",
        "province_to_national.seal",
        "province_to_national.load",
        "publish",
        "all_edges_ok",
    }


def test_what_a_person_sees_in_the_ui(bag: dict) -> None:
    dag = bag["dags"]["tongban_population_630000"]
    assert dag["display"].startswith("population")  # the UI's prefix search finds it
    assert {"青海省", "人口", "population", "630000"} <= set(dag["tags"])
    assert dag["owners"] == ["青海省"]  # the node's owner, else its name; never "airflow"
    assert "630121 大通回族土族自治县 · 公安" in dag["doc"] and "tongban failed list" in dag["doc"]
    assert any("tongban_label" in t for t in dag["templates"])
    assert bag["dags"]["tongban_license_national"]["owners"] == ["国家库"]


def test_maintenance_dags_are_built_from_the_same_file(bag: dict) -> None:
    reconcile = bag["dags"]["tongban_reconcile"]
    assert reconcile["mapped"] == [] and "reconcile" in reconcile["tasks"]
    assert set(bag["dags"]["tongban_expire_licenses"]["tasks"]) == {"expire"}
    assert set(bag["dags"]["tongban_prune"]["tasks"]) == {"prune"}
    assert set(bag["dags"]["tongban_review"]["tasks"]) == {"apply_queued"}
    assert bag["dags"]["tongban_review"]["paused_at_creation"] is False  # operators' actions need no one


def test_config_typo_is_an_import_error_naming_file_line_and_field(tmp_path: Path) -> None:
    text = (ROOT / "exchange.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "exchange.yaml"
    broken.write_text(text.replace("    cursor: gxsj", "    cursr: gxsj", 1), encoding="utf-8")
    line = next(
        i for i, row in enumerate(broken.read_text(encoding="utf-8").splitlines(), 1) if "cursr" in row
    )
    result = _dagbag(tmp_path, broken)
    assert result["dags"] == {}
    (message,) = result["errors"].values()
    assert f"{broken}:{line}" in message and "cursr" in message
