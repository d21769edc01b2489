"""``tongban errors [CODE]``: look a code up in the error catalogue (:mod:`schemas.errors`): what it means
in Chinese and English, whether Airflow retries it, the exit code. Row rule codes (:mod:`schemas.rules`)
are found too. ``--markdown`` prints ``docs/errors.md``."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from schemas.errors import CATALOGUE, ErrorCode, TongbanError
from schemas.rules import RULES, Rule
from tongban.cli.common import (
    ExitCode,
    add_command,
    argument_error,
    did_you_mean,
    json_line,
    report_error,
    table_line,
)

__all__ = ["cmd_errors", "describe", "register"]

COLUMNS = (
    ("代码 code", 24, False),
    ("退出 exit", 10, False),
    ("重试 retried", 14, False),
    ("含义 meaning", 0, False),
)


def describe(entry: ErrorCode | Rule) -> dict[str, Any]:
    """One code as a JSON object: an operational error, or a row rule.

    >>> describe(CATALOGUE["EDGE_BUSY"])["retryable"], describe(RULES["ID_CHECKSUM"])["kind"]
    (True, 'rule')
    """
    if isinstance(entry, Rule):
        return {
            "code": entry.code,
            "kind": "rule",
            "severity": str(entry.severity),
            "zh": entry.zh,
            "en": entry.en,
        }
    return {
        "code": entry.code,
        "kind": "error",
        "area": entry.area,
        "zh": entry.zh,
        "en": entry.en,
        "retryable": entry.retryable,
        "exit": int(entry.exit),
    }


def _find(code: str) -> ErrorCode | Rule:
    value = code.strip().upper()
    if value in CATALOGUE:
        return CATALOGUE[value]
    if value in RULES:
        return RULES[value]
    zh, en = did_you_mean(value, [*CATALOGUE, *RULES])
    raise argument_error("errors", repr(code), f"没有这个代码{zh}", f"no such code{en}")


def _text(out: TextIO, entry: ErrorCode | Rule) -> None:
    if isinstance(entry, Rule):
        effect = (
            "拒绝该行，记为失败传输 the row is rejected and kept as a failed transfer"
            if str(entry.severity) == "error"
            else "该行载入并标记 the row loads, flagged"
        )
        out.write(
            f"{entry.code}  行规则 row rule ({entry.severity})\n"
            f"  含义 meaning: {entry.zh} / {entry.en}\n"
            f"  结果 effect: {effect}\n"
            f"  参考 see: tongban schema --markdown (docs/datasets.md)\n"
        )
        return
    retried = (
        "是：Airflow 以退避重试 yes: Airflow retries the task with backoff"
        if entry.retryable
        else "否：重试无济于事，立即失败 no: retrying cannot help, it fails at once"
    )
    out.write(
        f"{entry.code}  ({entry.area})\n"
        f"  含义 meaning: {entry.zh} / {entry.en}\n"
        f"  重试 retried: {retried}\n"
        f"  退出码 exit: {int(entry.exit)} ({entry.exit.name.lower().replace('_', ' ')})\n"
    )


def cmd_errors(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """tongban errors [CODE] [--markdown] [--json]."""
    if args.markdown:
        from schemas.reference import render_errors

        out.write(render_errors())
        return ExitCode.OK
    try:
        entries: list[ErrorCode | Rule] = [_find(args.code)] if args.code else list(CATALOGUE.values())
    except TongbanError as exc:
        return report_error(exc, as_json=args.json, out=out)
    if args.json:
        for entry in entries:
            json_line(out, describe(entry))
    elif args.code:
        _text(out, entries[0])
    else:
        out.write(table_line([c[0] for c in COLUMNS], COLUMNS) + "\n")
        for e in entries:
            assert isinstance(e, ErrorCode)
            retried = "是 yes" if e.retryable else "否 no"
            out.write(table_line([e.code, int(e.exit), retried, f"{e.zh} / {e.en}"], COLUMNS) + "\n")
        out.write("详见 details: tongban errors CODE\n")
    return ExitCode.OK


def register(sub: Any) -> None:
    """Add ``errors`` to the ``tongban`` parser."""
    p = add_command(
        sub,
        "errors",
        summary="查询错误代码 look up an error code",
        description="查询错误代码：中英文含义、Airflow 是否重试、tongban 的退出码。不给代码则列出全部；\n"
        "行规则代码（如 ID_CHECKSUM）也能查到。--markdown 输出 docs/errors.md。\n"
        "Look up an error code: its meaning in Chinese and English, whether Airflow retries it, and the\n"
        "exit code of tongban. Without a code, list them all; row rule codes (e.g. ID_CHECKSUM) are found\n"
        "too. --markdown prints docs/errors.md.",
        examples=(
            "tongban errors EDGE_BUSY",
            "tongban errors --json",
            "tongban errors --markdown > docs/errors.md",
        ),
    )
    p.add_argument(
        "code", nargs="?", metavar="CODE", help="错误或规则代码 error or rule code, e.g. KEY_MISSING"
    )
    p.add_argument("--markdown", action="store_true", help="输出全部代码的参考页 print the reference page")
    p.add_argument("--json", action="store_true", help="JSON 输出，每行一个对象 one JSON object per line")
    p.set_defaults(func=cmd_errors)
