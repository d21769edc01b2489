"""The ``tongban`` command line.

Exit codes: 0 success (nothing rejected), 1 rows were rejected, 2 unusable
input (missing file, unknown dataset, unreadable file, bad mapping or config, missing
column), 3 internal error, 4 a sync run failed (system down, batch rejected), 130 interrupted. Errors are one bilingual line with a stable code and
where the problem was found, never a stack trace.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from schemas.errors import TongbanError
from tongban import __version__

__all__ = ["main"]

EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def report_error(exc: TongbanError, *, as_json: bool, out: TextIO) -> int:
    """One coded bilingual line on stderr (and a JSON object on ``out`` with ``--json``); exit code 2."""
    if as_json:
        print(json.dumps({"error": exc.as_dict()}, ensure_ascii=False), file=out)
    where = f"  [{exc.where}]" if exc.where else ""
    print(f"错误 error {exc.code}: {exc.message_zh} / {exc.message_en}{where}", file=sys.stderr)
    return EXIT_UNUSABLE


def _progress(enabled: bool):  # type: ignore[no-untyped-def]
    """A rich progress bar on stderr when it is a terminal; a no-op otherwise."""
    if not enabled or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,} 行 rows"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def _status(message: str) -> contextlib.AbstractContextManager[object]:
    """A spinner on stderr while long work runs, when stderr is a terminal."""
    if not sys.stderr.isatty():
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(message)


def cmd_validate(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """tongban validate DATASET FILE."""
    from tongban.core.validation import open_extract, validate_extract

    as_json = args.format == "json"
    try:
        extract = open_extract(
            args.dataset, args.file, mapping=args.mapping, table=args.table, allowlist=args.uscc_allowlist
        )
        progress = _progress(not args.quiet)
        task = None
        if progress:
            progress.start()
            task = progress.add_task(f"校验 validating {extract.path.name}", total=None)
        try:
            validator, results = validate_extract(
                extract,
                batch_size=args.batch_size,
                on_batch=(lambda n: progress.advance(task, n)) if progress and task is not None else None,
            )
            for result in results:
                if args.quiet and not as_json:
                    continue  # the summary alone: no need to build the row reports
                for report in result.reports():
                    if as_json:
                        out.write(json.dumps(report.as_dict(), ensure_ascii=False) + "\n")
                    else:
                        where = ",".join(dict.fromkeys(f for _, f in report.findings))
                        out.write(
                            f"第 {report.row} 行 row {report.row}\t{report.key or '-'}\t{report.severity.upper()}\t"
                            f"{' '.join(report.codes)}\t[{where}]\t{report.message_zh} / {report.message_en}\n"
                        )
        finally:
            if progress:
                progress.stop()
    except TongbanError as exc:
        return report_error(exc, as_json=as_json, out=out)
    summary = validator.summary.as_dict()
    summary["file"] = str(extract.path)
    if as_json:
        out.write(json.dumps({"summary": summary}, ensure_ascii=False) + "\n")
    else:
        codes = ", ".join(f"{c}×{n}" for c, n in summary["codes"].items()) or "-"  # type: ignore[attr-defined]
        out.write(
            f"\n{extract.path}: {summary['rows']} 行 rows, {summary['accepted']} 通过 accepted "
            f"({summary['flagged']} 警告 flagged), {summary['rejected']} 拒绝 rejected\n"
            f"规则 codes: {codes}\n"
        )
        if summary["ignored_columns"]:
            out.write(f"未使用的列 ignored columns: {', '.join(summary['ignored_columns'])}\n")  # type: ignore[arg-type]
    return EXIT_REJECTED if validator.summary.rejected else EXIT_OK


def cmd_schema(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """tongban schema DATASET: the canonical fields a mapping maps onto."""
    from tongban.core.validation import dataset_named

    if args.markdown:
        from schemas.reference import render, render_dataset

        try:
            out.write(render_dataset(dataset_named(args.dataset)) if args.dataset else render())
        except TongbanError as exc:
            return report_error(exc, as_json=False, out=out)
        return EXIT_OK
    if not args.dataset:
        return report_error(
            TongbanError(
                "DATASET_MISSING", "请指定数据集", "name a dataset (or use --markdown for all)", "schema"
            ),
            as_json=args.json,
            out=out,
        )
    try:
        dataset = dataset_named(args.dataset)
    except TongbanError as exc:
        return report_error(exc, as_json=args.json, out=out)
    rows = [
        {
            "name": f.name,
            "label_zh": f.label,
            "kind": str(f.kind),
            "type": str(f.type),
            "required": f.required,
            "sensitivity": str(f.sensitivity),
            "max_length": f.max_length,
            "codes": list(f.codes),
            "description": f.description,
            "key": f.name == dataset.key,
            "owner": f.name == dataset.owner_field,
        }
        for f in dataset.fields
    ]
    if args.json:
        out.write(
            json.dumps(
                {
                    "dataset": dataset.name,
                    "label_zh": dataset.label,
                    "key": dataset.key,
                    "owner": dataset.owner_field,
                    "fields": rows,
                },
                ensure_ascii=False,
            )
            + "\n"
        )
        return EXIT_OK
    out.write(f"{dataset.name}（{dataset.label}）: {dataset.description}\n")
    for r in rows:
        marks = " ".join(
            m for m, on in (("key", r["key"]), ("owner", r["owner"]), ("required", r["required"])) if on
        )
        codes = f" codes: {','.join(r['codes'])}" if r["codes"] and len(r["codes"]) <= 12 else ""
        out.write(
            f"  {r['name']:<24}{r['label_zh']}\t{r['kind']:<10} {r['sensitivity']:<10} {marks}\n"
            f"  {'':<24}{r['description']}{codes}\n"
        )
    return EXIT_OK


def cmd_generate(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """tongban generate: write demo local systems."""
    from tongban.demo.generate import generate_demo

    status = _status("生成演示数据 generating demo data")
    try:
        with status:
            manifest = generate_demo(
                Path(args.workdir),
                seed=args.seed,
                population_per_county=args.population,
                business_per_county=args.business,
                license_per_county=args.licenses,
                defect_rate=args.defect_rate,
            )
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
    return EXIT_OK


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tongban",
        description="通办 Tongban: 跨区域数据共享交换 cross-region data-sharing exchange hub.",
        epilog="退出码 exit codes: 0 成功 ok, 1 有被拒绝的行 rows rejected, 2 输入不可用 unusable input, "
        "3 内部错误 internal error, 4 同步运行失败 a sync run failed.",
    )
    parser.add_argument("--version", action="version", version=f"tongban {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser(
        "validate",
        help="校验一份数据 validate an extract against a dataset contract",
        description="校验一份本地系统数据，列出被拒绝或标记的行。Validate an extract and list rejected or flagged rows.",
    )
    v.add_argument("dataset", metavar="DATASET", help="population | business | license")
    v.add_argument("file", metavar="FILE", help="CSV, Parquet, JSONL, or a SQLite database (.sqlite/.db)")
    v.add_argument("--format", choices=("text", "json"), default="text", help="输出格式 output format")
    v.add_argument("--mapping", metavar="FILE", help="列名与代码映射 YAML column/code mapping")
    v.add_argument("--table", metavar="NAME", help="数据库表名 table, for a database file")
    v.add_argument(
        "--uscc-allowlist",
        metavar="FILE",
        help="早期统一社会信用代码白名单（每行一个）early USCCs to accept although they fail the check",
    )
    v.add_argument("--batch-size", type=int, default=262_144, metavar="N", help="每批行数 rows per batch")
    v.add_argument("-q", "--quiet", action="store_true", help="只输出汇总 summary only (text format)")
    v.set_defaults(func=cmd_validate)

    sc = sub.add_parser(
        "schema",
        help="查看数据集字段 show a dataset's canonical fields",
        description="列出数据集的标准字段、类型与敏感级别。List a dataset's canonical fields, kinds and sensitivity.",
    )
    sc.add_argument("dataset", metavar="DATASET", nargs="?", help="population | business | license")
    sc.add_argument("--json", action="store_true", help="JSON 输出 JSON output")
    sc.add_argument(
        "--markdown",
        action="store_true",
        help="Markdown 参考文档（不指定数据集时含全部与规则）reference page",
    )
    sc.set_defaults(func=cmd_schema)

    g = sub.add_parser(
        "generate",
        help="生成演示数据 generate demo local systems",
        description="生成带缺陷的演示本地系统数据。Generate demo local systems with realistic defects.",
    )
    g.add_argument("--workdir", default="demo", help="输出目录 output folder (default ./demo)")
    g.add_argument("--seed", type=int, default=2026, help="随机种子 seed")
    g.add_argument("--population", type=_count, default=2000, metavar="N", help="每县人口记录数 per county")
    g.add_argument("--business", type=_count, default=500, metavar="N", help="每县市场主体数 per county")
    g.add_argument("--licenses", type=_count, default=800, metavar="N", help="每县证照数 per county")
    g.add_argument(
        "--defect-rate", type=_share, default=0.02, metavar="F", help="缺陷比例 share of defective rows"
    )
    g.add_argument("--json", action="store_true", help="JSON 输出 JSON output")
    g.set_defaults(func=cmd_generate)

    d = sub.add_parser(
        "demo",
        help="运行演示 run the demo exchange",
        description="生成演示数据，建库、密钥与信任列表，并通过 Airflow 运行全部同步。"
        "Generate the demo exchange, create libraries, keys and trust list, and run every sync through Airflow.",
        epilog="再次运行：若演示写入的文件（exchange.yaml、manifest.json、systems/ 下的一切）均未改动，则重新开始；"
        "若有改动或新增，则拒绝（WORKDIR_EXISTS，退出码 2）并列出改动，文件保持原样；--fresh 丢弃改动重新开始。"
        "Run again: if nothing the demo wrote (exchange.yaml, manifest.json, everything under systems/) was "
        "changed or added to, it starts over; otherwise it refuses (WORKDIR_EXISTS, exit 2), naming the "
        "changes and leaving them as they are; --fresh discards them and starts over. Libraries, keys, spool "
        "and Airflow's database are always built anew; other files in the folder are never touched.",
    )
    d.add_argument("--workdir", default="demo", help="工作目录 working folder (default ./demo)")
    d.add_argument("--seed", type=int, default=2026, help="随机种子 seed")
    d.add_argument(
        "--fresh",
        action="store_true",
        help="丢弃上次的演示（含改动）重新开始 start over, discarding the previous demo and any changes to it",
    )
    d.add_argument("--json", action="store_true", help="每条边一行 JSON one JSON object per edge")
    d.set_defaults(func=cmd_demo)

    from tongban.cli.exchange import register

    register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tongban`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "batch_size", 1) < 1:
        parser.error("--batch-size must be at least 1")
    try:
        return int(args.func(args, sys.stdout))
    except KeyboardInterrupt:
        print("已中断 interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # last resort: one line, no stack trace (TONGBAN_DEBUG=1 shows it)
        if os.environ.get("TONGBAN_DEBUG"):
            raise
        print(f"错误 error INTERNAL: 内部错误 internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL


def run() -> None:
    """The ``tongban`` command: :func:`main`, then exit with its code.

    Once the exit code is decided a late Ctrl-C must not change it: SIGINT and SIGTERM are ignored
    while the interpreter shuts down (it would otherwise die of the signal, not exit 130 or 0).
    """
    code = main()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    run()
