"""The demo exchange on the embedded default, run through Airflow: nothing but SQLite and this machine.

``tongban demo --workdir DIR`` keeps everything under DIR: it generates nine counties' local systems
(with planted defects), writes ``DIR/exchange.yaml``, creates every node's library, key and the signed
trust list, then runs the exchange's DAGs through Airflow (``AIRFLOW_HOME=DIR/airflow``, metadata in
SQLite): local systems -> counties -> provinces -> national. It then checks itself: every planted defect
must be a failed transfer at its county with its code, no clean row may be rejected, and every DAG run
must succeed; otherwise it exits non-zero.

Run again, it starts over only if nobody changed what it wrote (see :mod:`tongban.demo.workdir`);
``fresh`` starts over regardless.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import TextIO

from tongban.core.display import table_line
from tongban.demo.airflow_process import run_airflow

__all__ = ["run_demo", "table_line"]


def run_demo(
    workdir: Path, *, seed: int = 2026, out: TextIO, as_json: bool = False, fresh: bool = False
) -> int:
    """Generate, configure, initialize and run the demo through Airflow; 0 when it all checks out.

    Raises ``WORKDIR_EXISTS`` when ``workdir`` holds a demo changed since it was written, unless ``fresh``.
    """
    from tongban.core import engine
    from tongban.core.config import load_exchange
    from tongban.core.initialize import initialize
    from tongban.demo import workdir as folder
    from tongban.demo.check import check_planted
    from tongban.demo.exchange_yaml import demo_exchange_yaml
    from tongban.demo.generate import DEMO_COUNTIES, generate_demo

    note = folder.prepare(workdir, fresh=fresh)
    say = (lambda text: None) if as_json else (lambda text: (out.write(text), out.flush()))
    say(f"通办演示 Tongban demo → {workdir}\n" + (f"   {note}\n" if note else ""))
    say("1. 生成本地系统 generating the counties' local systems …\n")
    manifest = generate_demo(workdir, seed=seed)
    exchange = workdir / "exchange.yaml"
    exchange.write_text(demo_exchange_yaml(workdir, manifest["systems"], DEMO_COUNTIES), encoding="utf-8")
    folder.record(workdir)
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
    prog = _program()
    say(
        f"4. 结果 result: 国家库载入 national library loaded {loaded} 行 rows; "
        f"预期缺陷 planted {planted['planted']}, 已作为失败传输 kept as failed transfers {planted['found']}, "
        f"漏检 missed {planted['missed']}, 误拒 unexpected {planted['unexpected']}\n"
        f"{'演示成功 demo OK' if ok else '演示结果与预期不符 demo results differ'}\n\n"
        "下一步 next:\n"
        f"  {prog} status --workdir {workdir}\n"
        f"  {prog} failed list --workdir {workdir} --limit 10\n"
        f"  {prog} operators add ops --reveal --workdir {workdir}   # 复核页面账号 a review page account\n"
        f"  {prog} serve --workdir {workdir}   # 然后打开 then open http://127.0.0.1:8000/review\n"
        f"  {prog} sync --workdir {workdir}      # 增量重跑 incremental rerun: nothing changes\n"
        f"  Airflow 日志 log: {workdir / 'airflow' / 'demo-run.log'}\n"
        f"再次运行 run again: 未改动则重新生成，有改动则拒绝（保留改动），--fresh 重新开始\n"
        f"  unchanged, it starts over; changed, it refuses and keeps your changes; --fresh starts over\n"
    )
    return 0 if ok else 1


def _program() -> str:
    """How the reader runs ``tongban``: the bare name when it is on PATH, else the script's own path."""
    script = Path(sys.argv[0])
    if script.name == "tongban" and shutil.which("tongban") != str(script.resolve()):
        try:
            return str(script.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(script)
    return "tongban"
