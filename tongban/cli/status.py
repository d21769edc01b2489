"""``tongban status``: every edge's rows loaded and failed, open failures, last success and lag."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from schemas.errors import TongbanError
from tongban.cli.common import (
    ExitCode,
    add_command,
    add_config_args,
    check_dataset,
    json_line,
    load_config,
    report_error,
    table_line,
)

__all__ = ["ago", "cmd_status", "register"]

COLUMNS = (
    ("边 edge", 40, False),
    ("已载入 loaded", 14, True),
    ("失败 failed", 12, True),
    ("待处理 open", 12, True),
    ("延迟 lag", 12, True),
    ("  最近成功 last success", 0, False),
)


def ago(seconds: float | None) -> str:
    """A lag, short: seconds, minutes, hours or days.

    >>> ago(None), ago(42), ago(600), ago(9000), ago(400000)
    ('从未 never', '42s', '10m', '2.5h', '4.6d')
    """
    if seconds is None:
        return "从未 never"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def cmd_status(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """tongban status: every edge's rows, failures, last success and lag."""
    from tongban.core import engine

    try:
        if args.dataset:
            check_dataset(args.dataset)
        ex = load_config(args)
        rows = engine.status(ex)
    except TongbanError as exc:
        return report_error(exc, as_json=args.json, out=out)
    if args.dataset:
        rows = [r for r in rows if r["dataset"] == args.dataset]
    # A library that cannot be read is a failed run's worth of trouble: say it, and exit 4.
    code = ExitCode.RUN_FAILED if any(r["library_error"] for r in rows) else ExitCode.OK
    if args.json:
        for r in rows:
            json_line(out, r)
        return code
    out.write(table_line([c[0] for c in COLUMNS], COLUMNS) + "\n")
    for r in rows:
        last = r["last_success"][:19].replace("T", " ") if r["last_success"] else "-"
        values = [
            r["edge"],
            r["rows_loaded"],
            r["rows_failed"],
            r["open_failures"],
            ago(r["lag_seconds"]),
            f"  {last}",
        ]
        out.write(table_line(values, COLUMNS) + "\n")
        if r["library_error"]:
            out.write(f"    无法读取目标库 library unreadable: {r['library_error']}\n")
        elif r["last_error"]:
            out.write(f"    最近错误 last error: {r['last_error']}\n")
    return code


def register(sub: Any) -> None:
    """Add ``status`` to the ``tongban`` parser."""
    p = add_command(
        sub,
        "status",
        summary="查看同步状态 show every edge's rows, failures and lag",
        description="每条边一行：已载入行数、失败行数、待处理的失败传输、延迟（距最近一次成功载入）与最近成功时间。\n"
        "One line per edge: rows loaded, rows failed, open failed transfers, lag (time since the last\n"
        "successful load) and last success; the last error under an edge whose last run failed.\n"
        "--json: edge, dataset, source, target, rows_loaded, rows_failed, batches, open_failures,\n"
        "last_success, lag_seconds, last_error.",
        examples=("tongban status --workdir demo", "tongban status --dataset license --json"),
    )
    p.add_argument("--dataset", help="只看该数据集 only this dataset: population | business | license")
    add_config_args(p)
    p.set_defaults(func=cmd_status)
