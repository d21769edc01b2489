"""``tongban demo`` (the demo exchange through Airflow) and ``tongban generate`` (demo local systems).

The only commands that import :mod:`tongban.demo`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from schemas.errors import TongbanError
from tongban.cli.common import ExitCode, add_command, report_error, spinner

__all__ = ["cmd_demo", "cmd_generate", "register"]


def cmd_generate(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """tongban generate: write demo local systems."""
    from tongban.demo import workdir as folder
    from tongban.demo.generate import generate_demo

    try:
        # The same protection as the demo's: a folder with the user's changes is refused, not overwritten.
        note = folder.prepare(Path(args.workdir), fresh=args.fresh)
        if note and not args.json:
            print(note, file=sys.stderr)
        with spinner("生成演示数据 generating demo data"):
            manifest = generate_demo(
                Path(args.workdir),
                seed=args.seed,
                population_per_county=args.population,
                business_per_county=args.business,
                license_per_county=args.licenses,
                defect_rate=args.defect_rate,
            )
        folder.record(Path(args.workdir))
    except TongbanError as exc:
        return report_error(exc, as_json=args.json, out=out)
    except OSError as exc:
        return report_error(_workdir_error(args.workdir, exc), as_json=args.json, out=out)
    systems = manifest["systems"]
    rows = sum(s["rows"] for s in systems)
    defects = sum(len(s["defects"]) for s in systems)
    if args.json:
        out.write(
            json.dumps(
                {"workdir": str(args.workdir), "systems": len(systems), "rows": rows, "defects": defects},
                ensure_ascii=False,
            )
            + "\n"
        )
    else:
        out.write(
            f"已生成 generated {len(systems)} 个本地系统文件 local-system files, {rows} 行 rows "
            f"({defects} 行含缺陷 with defects) → {args.workdir}\n"
        )
    return ExitCode.OK


def cmd_demo(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """tongban demo: generate the demo exchange and run it through Airflow on the embedded default."""
    from tongban.demo.runner import run_demo

    try:
        return run_demo(Path(args.workdir), seed=args.seed, out=out, as_json=args.json, fresh=args.fresh)
    except TongbanError as exc:
        return report_error(exc, as_json=args.json, out=out)
    except OSError as exc:
        return report_error(_workdir_error(args.workdir, exc), as_json=args.json, out=out)


def _workdir_error(workdir: str, exc: OSError) -> TongbanError:
    detail = exc.strerror or str(exc)
    return TongbanError(
        "WORKDIR_UNWRITABLE",
        f"无法写入工作目录：{detail}",
        f"cannot write the working folder: {detail}",
        workdir,
    )


def _count(text: str) -> int:
    """argparse type: a whole number of rows, zero or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"应为非负整数 must be a whole number ≥ 0: {text}")
    return value


def _share(text: str) -> float:
    """argparse type: a share between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"应在 0 到 1 之间 must be between 0 and 1: {text}")
    return value


def register(sub: Any) -> None:
    """Add ``generate`` and ``demo`` to the ``tongban`` parser."""
    g = add_command(
        sub,
        "generate",
        summary="生成演示数据 generate demo local systems",
        description="为九个演示县生成本地系统数据（SQLite 库与 CSV、Parquet 投放目录），约 2% 的行带真实缺陷，\n"
        "另写 manifest.json 记录每个缺陷。不需要交换配置。目录中已有被改动的演示数据时拒绝（WORKDIR_EXISTS），"
        "--fresh 丢弃后重新生成。\n"
        "Generate the nine demo counties' local systems (SQLite databases, CSV and Parquet drop folders),\n"
        "about 2% of rows with realistic defects, and manifest.json naming each defect. Needs no exchange\n"
        "config. A folder whose demo data was changed is refused (WORKDIR_EXISTS) unless --fresh.",
        examples=(
            "tongban generate --workdir demo",
            "tongban generate --workdir /tmp/g --population 50 --defect-rate 0.1 --json",
        ),
    )
    g.add_argument("--workdir", default="demo", help="输出目录 output folder")
    g.add_argument("--seed", type=int, default=2026, help="随机种子 seed")
    g.add_argument("--population", type=_count, default=2000, metavar="N", help="每县人口记录数 per county")
    g.add_argument("--business", type=_count, default=500, metavar="N", help="每县市场主体数 per county")
    g.add_argument("--licenses", type=_count, default=800, metavar="N", help="每县证照数 per county")
    g.add_argument(
        "--defect-rate", type=_share, default=0.02, metavar="F", help="缺陷比例 share of defective rows"
    )
    g.add_argument(
        "--fresh", action="store_true", help="丢弃目录中已有的演示数据 discard the folder's demo data"
    )
    g.add_argument("--json", action="store_true", help="JSON 输出 JSON output")
    g.set_defaults(func=cmd_generate)

    d = add_command(
        sub,
        "demo",
        summary="运行演示 run the demo exchange",
        description="生成演示数据，写 DIR/exchange.yaml，建库、密钥与信任列表，并通过 Airflow 运行全部同步，最后自检。\n"
        "Generate the demo exchange, write DIR/exchange.yaml, create libraries, keys and the trust list,\n"
        "run every sync through Airflow, then check the result. Everything stays under DIR.\n"
        "再次运行：若演示写入的文件（exchange.yaml、manifest.json、systems/ 下的一切）均未改动则重新开始；"
        "若有改动或新增则拒绝（WORKDIR_EXISTS，退出码 2）并列出改动，文件保持原样；--fresh 丢弃改动重新开始。\n"
        "Run again: if nothing the demo wrote (exchange.yaml, manifest.json, everything under systems/) was\n"
        "changed or added to, it starts over; otherwise it refuses (WORKDIR_EXISTS, exit 2), naming the\n"
        "changes and leaving them as they are; --fresh discards them and starts over. Libraries, keys,\n"
        "spool and Airflow's database are always built anew; other files in the folder are never touched.",
        examples=(
            "tongban demo --workdir demo",
            "tongban demo --workdir /tmp/demo --json",
            "tongban demo --workdir demo --fresh",
        ),
    )
    d.add_argument("--workdir", default="demo", help="工作目录 working folder")
    d.add_argument("--seed", type=int, default=2026, help="随机种子 seed")
    d.add_argument(
        "--fresh",
        action="store_true",
        help="丢弃上次的演示（含改动）重新开始 start over, discarding the previous demo and any changes to it",
    )
    d.add_argument("--json", action="store_true", help="每条边一行 JSON one JSON object per edge")
    d.set_defaults(func=cmd_demo)
