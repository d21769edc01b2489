"""The ``tongban_review`` maintenance DAG, run by Airflow (``dag.test()``): an operator's queued
resubmission takes effect with no command run, up to the national library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tongban.core import review
from tongban.core.review import Ref

ROOT = Path(__file__).resolve().parent.parent
P = "population"

SCRIPT = r"""
import json, runpy, sys
from airflow.utils.db import initdb
from tongban.airflow.runner import run_once

initdb()
dags = runpy.run_path(sys.argv[1])  # the project's DAG file, on the world's exchange (TONGBAN_EXCHANGE)
dag = next(v for v in dags.values() if getattr(v, "dag_id", None) == "tongban_review")
print(json.dumps(run_once(dag, 240)))
"""


class _Audit:
    def append(self, actor: str, action: str, **fields: Any) -> None:
        pass


def test_the_review_dag_applies_a_queued_resubmission(make_world: Any, h: Any, tmp_path: Path) -> None:
    w = make_world({h.A: h.QINGHAI})
    row = h.person(h.A, 7)
    good = row["sfzh"]
    row["sfzh"] = good[:-1] + ("0" if good[-1] != "0" else "1")
    w.registers[h.A].put([*h.people(h.A, 2), row])
    w.sync_all()
    [failure] = w.lib(h.A).failures()
    ref = Ref(h.A, failure["id"])
    review.act(w.ex, w.libs, ref, "resubmit", actor="ops", audit=_Audit(), edit={"id_number": good})
    w.libs.dispose()
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "TONGBAN_EXCHANGE": str(w.root / "exchange.yaml"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db",
            "PYTHONPATH": str(ROOT),
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT / "dags" / "tongban_exchange.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["state"] == "success", (result, done.stderr[-3000:])
    for node in (h.A, h.QINGHAI, h.NATIONAL):
        assert w.lib(node).record(P, good)["_owner"] == h.A, node
    assert review.get(w.ex, w.libs, ref)["state"] == "resolved"
