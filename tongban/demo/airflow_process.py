"""Airflow as a child process: its home, DAGs and SQLite database under the demo folder, every DAG run
once by :mod:`tongban.airflow.runner`, progress read back one JSON line per DAG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, TextIO

from schemas.errors import TongbanError

__all__ = ["airflow_env", "run_airflow"]


def airflow_env(workdir: Path, exchange: Path) -> dict[str, str]:
    """The environment of an Airflow child process whose home, DAGs and database live under ``workdir``."""
    home = (workdir / "airflow").resolve()
    dags = Path(__file__).resolve().parents[2] / "dags"
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "TONGBAN_EXCHANGE": str(exchange.resolve()),
        }
    )
    return env


def run_airflow(workdir: Path, exchange: Path, out: TextIO, *, quiet: bool = False) -> list[dict[str, Any]]:
    """Migrate Airflow's SQLite database under ``workdir`` and run every DAG once; one result per DAG."""
    env = airflow_env(workdir, exchange)
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "demo-run.log"
    with log_path.open("w", encoding="utf-8") as log:
        done = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], env=env, stdout=log, stderr=log, check=False
        )
        if done.returncode:
            raise TongbanError(
                "AIRFLOW_DB",
                "无法初始化 Airflow 数据库",
                "cannot set up Airflow's database",
                str(log_path),
            )
        read, write = os.pipe()
        env["TONGBAN_PROGRESS_FD"] = str(write)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tongban.airflow.runner", "--exchange", str(exchange.resolve())],
            env=env,
            stdout=log,
            stderr=log,
            pass_fds=(write,),
        )
        os.close(write)
        results = []
        with os.fdopen(read, encoding="utf-8") as progress:
            for line in progress:
                result = json.loads(line)
                results.append(result)
                if not quiet:
                    mark = "✓" if result["state"] == "success" else "✗"
                    out.write(
                        f"  {mark} {result['dag']:<34} {result['state']:<8} {result['seconds']:>6.1f}s\n"
                    )
                    out.flush()
        proc.wait()
    if proc.returncode and not results:
        raise TongbanError(
            "AIRFLOW_RUN", "Airflow 运行失败，见日志", "the Airflow run failed; see the log", str(log_path)
        )
    return results
