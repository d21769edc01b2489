"""``tongban validate`` (one extract against its dataset's contract) and ``tongban schema`` (the
canonical fields a mapping maps onto). Neither needs an exchange config."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from schemas.errors import TongbanError
from tongban.cli.common import ExitCode, add_command, progress, report_error

__all__ = ["cmd_schema", "cmd_validate", "register"]

#: Whatever goes wrong with an extract, a mapping or a dataset name, the input is unusable: exit 2
#: (a SQLite file without the table is SQL_NO_TABLE, which ends a sync run with 4).
UNUSABLE = ExitCode.UNUSABLE


def cmd_validate(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """tongban validate DATASET FILE: one line per rejected or flagged row, then a summary."""
    from tongban.core.masking import mask_text
    from tongban.core.validation import open_extract, validate_extract

    as_json = args.format == "json"
    try:
        extract = open_extract(
            args.dataset, args.file, mapping=args.mapping, table=args.table, allowlist=args.uscc_allowlist
        )
        bar = progress(not args.quiet)
        task = None
        if bar:
            bar.start()
            task = bar.add_task(f"校验 validating {extract.path.name}", total=None)
        try:
            validator, results = validate_extract(
                extract,
                batch_size=args.batch_size,
                on_batch=(lambda n: bar.advance(task, n)) if bar and task is not None else None,
            )
            for result in results:
                if args.quiet and not as_json:
                    continue  # the summary alone: no need to build the row reports
                for report in result.reports():
                    # The key is a person's identity number or a license's: masked unless asked for.
                    key = report.key if args.reveal else mask_text(str(report.key)) if report.key else None
                    if as_json:
                        line = {**report.as_dict(), "key": key}
                        out.write(json.dumps(line, ensure_ascii=False) + "\n")
                    else:
                        where = ",".join(dict.fromkeys(f for _, f in report.findings))
                        out.write(
                            f"第 {report.row} 行 row {report.row}\t{key or '-'}\t{report.severity.upper()}\t"
                            f"{' '.join(report.codes)}\t[{where}]\t{report.message_zh} / {report.message_en}\n"
                        )
        finally:
            if bar:
                bar.stop()
    except TongbanError as exc:
        return report_error(exc, as_json=as_json, out=out, exit_code=UNUSABLE)
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
    return ExitCode.REJECTED if validator.summary.rejected else ExitCode.OK


def cmd_schema(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """tongban schema DATASET: the canonical fields a mapping maps onto."""
    from tongban.core.validation import dataset_named

    if args.markdown:
        from schemas.reference import render, render_dataset

        try:
            out.write(render_dataset(dataset_named(args.dataset)) if args.dataset else render())
        except TongbanError as exc:
            return report_error(exc, as_json=False, out=out, exit_code=UNUSABLE)
        return ExitCode.OK
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
        return report_error(exc, as_json=args.json, out=out, exit_code=UNUSABLE)
    rows: list[dict[str, Any]] = [
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
        return ExitCode.OK
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
    return ExitCode.OK


def _batch_size(text: str) -> int:
    """argparse type: rows per batch, at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"应为正整数 must be a whole number ≥ 1: {text}")
    return value


def register(sub: Any) -> None:
    """Add ``validate`` and ``schema`` to the ``tongban`` parser."""
    v = add_command(
        sub,
        "validate",
        summary="校验一份数据 validate an extract against a dataset contract",
        description="校验一份本地系统数据（CSV、Parquet、JSONL 或 SQLite 库），逐行列出被拒绝或标记的行，最后给出汇总。\n"
        "Validate one extract of a local system (CSV, Parquet, JSONL or a SQLite database): one line per\n"
        "rejected or flagged row, then a summary. Needs no exchange config.\n\n"
        "退出码 exit: 0 无拒绝 nothing rejected, 1 有拒绝 rows rejected, 2 输入不可用 unusable input.",
        examples=(
            "tongban validate population gongan.sqlite --mapping gongan.mapping.yaml",
            "tongban validate business extract.csv --mapping scjg.mapping.yaml --format json",
            "tongban validate license drop.parquet -q",
        ),
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
    v.add_argument(
        "--batch-size", type=_batch_size, default=262_144, metavar="N", help="每批行数 rows per batch"
    )
    v.add_argument("-q", "--quiet", action="store_true", help="只输出汇总 summary only (text format)")
    v.add_argument(
        "--reveal",
        action="store_true",
        help="显示完整主键（身份证号等）show keys (identity numbers…) unmasked, for the data's own steward",
    )
    v.set_defaults(func=cmd_validate)

    sc = add_command(
        sub,
        "schema",
        summary="查看数据集字段 show a dataset's canonical fields",
        description="列出数据集的标准字段、类型与敏感级别（映射文件映射到这些字段）。\n"
        "List a dataset's canonical fields, kinds and sensitivity: what a mapping maps onto.\n"
        "--markdown 不指定数据集时输出 docs/datasets.md 全文 without a dataset prints the whole reference page.",
        examples=(
            "tongban schema population",
            "tongban schema license --json",
            "tongban schema --markdown > docs/datasets.md",
        ),
    )
    sc.add_argument("dataset", metavar="DATASET", nargs="?", help="population | business | license")
    sc.add_argument("--json", action="store_true", help="JSON 输出 JSON output")
    sc.add_argument(
        "--markdown",
        action="store_true",
        help="Markdown 参考文档（不指定数据集时含全部与规则）reference page",
    )
    sc.set_defaults(func=cmd_schema)
