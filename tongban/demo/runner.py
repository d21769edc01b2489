"""The demo exchange on the embedded default, run through Airflow: nothing but SQLite and this machine.

``tongban demo --workdir DIR`` keeps everything under DIR: it generates nine counties' local systems
(with planted defects), writes ``DIR/exchange.yaml``, creates every node's library, key and the signed
trust list, then runs the exchange's DAGs through Airflow (``AIRFLOW_HOME=DIR/airflow``, metadata in
SQLite): local systems -> counties -> provinces -> national. It then checks itself: every planted defect
must be a failed transfer at its county with its code, no clean row may be rejected, and every DAG run
must succeed; otherwise it exits non-zero.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any, TextIO

from schemas.errors import TongbanError

__all__ = ["run_demo", "table_line"]

#: What a demo leaves in its working folder (removed before a new demo starts).
PRODUCTS = ("systems", "libraries", "spool", "keys", "airflow", "exchange.yaml", "manifest.json")


def _cell(value: object, width: int, right: bool) -> str:
    """Pad to a display width, counting CJK characters as two columns."""
    text = str(value)
    shown = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    pad = " " * max(width - shown, 0)
    return pad + text if right else text + pad


def table_line(values: list[object], columns: tuple[tuple[str, int, bool], ...] | list[Any]) -> str:
    """One row of a text table; ``columns`` gives each column's (title, width, right-aligned)."""
    return "".join(_cell(v, w, r) for v, (_, w, r) in zip(values, columns, strict=True)).rstrip()


def _clean(workdir: Path) -> None:
    for name in PRODUCTS:
        path = workdir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


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


def check_planted(ex: Any, manifest: dict[str, Any]) -> dict[str, int]:
    """Compare the failed rows at each county with the defects the generator planted.

    Rows of a drop file are matched by their data row in the file; rows of a database by key, since an
    incremental read takes them in cursor order, not in the table's stored order.
    """
    from tongban.core import engine

    totals = {"planted": 0, "found": 0, "missed": 0, "unexpected": 0}
    found: dict[tuple[str, str], dict[object, set[str]]] = {}
    libs = engine.Libraries(ex)
    for code, node in ex.nodes.items():
        if node.level != "county":
            continue
        for row in libs.get(code).failures(kind="row", state=None):
            edge = ex.edge(row["edge"])
            if edge.source_kind != "system" or not row["where"]:
                continue
            origin, _, number = row["where"].rpartition(":")
            system = ex.systems[edge.source]
            if system.kind == "files":
                slot, ident = Path(origin).name, int(number)
            else:
                slot, ident = "", row["row_key"]
            found.setdefault((edge.source, slot), {})[ident] = set(row["codes"].split(","))
    matched: set[tuple[str, str]] = set()
    for system in manifest["systems"]:
        name = next(
            s.name
            for s in ex.systems.values()
            if s.node == system["county"] and s.dataset == system["dataset"]
        )
        if system["kind"] == "sqlite":
            slot, planted = "", {d["key"]: set(d["codes"]) for d in system["defects"]}
        else:
            slot, planted = Path(system["path"]).name, {d["row"]: set(d["codes"]) for d in system["defects"]}
        matched.add((name, slot))
        got = found.get((name, slot), {})
        totals["planted"] += len(planted)
        totals["found"] += sum(1 for r in got if r in planted)
        totals["missed"] += sum(1 for r, codes in planted.items() if not codes <= got.get(r, set()))
        totals["unexpected"] += sum(1 for r in got if r not in planted)
    totals["unexpected"] += sum(len(v) for k, v in found.items() if k not in matched)
    return totals


def run_demo(workdir: Path, *, seed: int = 2026, out: TextIO, as_json: bool = False) -> int:
    """Generate, configure, initialize and run the demo through Airflow; 0 when it all checks out."""
    from tongban.core import engine
    from tongban.cli.exchange import initialize
    from tongban.core.config import load_exchange
    from tongban.demo.exchange_yaml import demo_exchange_yaml
    from tongban.demo.generate import DEMO_COUNTIES, generate_demo

    workdir.mkdir(parents=True, exist_ok=True)
    _clean(workdir)
    say = (lambda text: None) if as_json else (lambda text: (out.write(text), out.flush()))
    say(f"通办演示 Tongban demo → {workdir}\n1. 生成本地系统 generating the counties' local systems …\n")
    manifest = generate_demo(workdir, seed=seed)
    exchange = workdir / "exchange.yaml"
    exchange.write_text(demo_exchange_yaml(workdir, manifest["systems"], DEMO_COUNTIES), encoding="utf-8")
    ex = load_exchange(exchange)
    report = initialize(ex)
    say(
        f"2. 初始化 initialized {report['nodes']} 个节点 nodes (库 libraries, 密钥 keys, 信任列表 trust list), "
        f"{report['edges']} 条同步边 edges → {exchange}\n"
        f"3. 通过 Airflow 运行 running the DAGs through Airflow (AIRFLOW_HOME={workdir / 'airflow'}) …\n"
    )
    runs = run_airflow(workdir, exchange, out, quiet=as_json)
    rows = engine.status(ex)
    planted = check_planted(ex, manifest)
    dags_ok = bool(runs) and all(r["state"] == "success" for r in runs)
    ok = dags_ok and planted["missed"] == 0 and planted["unexpected"] == 0
    national = [
        r for r in rows if r["target"] == next(c for c, n in ex.nodes.items() if n.level == "national")
    ]
    if as_json:
        for r in rows:
            out.write(json.dumps(r, ensure_ascii=False) + "\n")
        out.write(json.dumps({"summary": {"dags": runs, **planted, "ok": ok}}, ensure_ascii=False) + "\n")
        return 0 if ok else 1
    loaded = sum(r["rows_loaded"] for r in national)
    say(
        f"4. 结果 result: 国家库载入 national library loaded {loaded} 行 rows; "
        f"预期缺陷 planted {planted['planted']}, 已作为失败传输 kept as failed transfers {planted['found']}, "
        f"漏检 missed {planted['missed']}, 误拒 unexpected {planted['unexpected']}\n"
        f"{'演示成功 demo OK' if ok else '演示结果与预期不符 demo results differ'}\n\n"
        f"下一步 next:\n"
        f"  tongban status --workdir {workdir}\n"
        f"  tongban failed list --workdir {workdir} --limit 10\n"
        f"  tongban sync --workdir {workdir}      # 增量重跑 incremental rerun: nothing changes\n"
        f"  Airflow 日志 log: {workdir / 'airflow' / 'demo-run.log'}\n"
    )
    return 0 if ok else 1
