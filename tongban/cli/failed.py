"""``tongban failed list|show``: the failed transfers kept in the libraries, masked unless ``--reveal``.

The actions (retry, resubmit, discard, resolve, apply) are in :mod:`tongban.cli.failed_act`."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
import sys
from typing import Any, TextIO

import schemas
from schemas.errors import CATALOGUE, TongbanError
from schemas.rules import RULES
from tongban.cli.common import (
    ExitCode,
    add_command,
    add_config_args,
    argument_error,
    check_choice,
    check_dataset,
    did_you_mean,
    json_line,
    load_config,
    report_error,
)

__all__ = ["KINDS", "STATES", "cmd_failed", "parse_since", "register"]

KINDS = ("row", "batch", "run", "file")
STATES = ("open", "queued", "resolved", "discarded", "all")
_RELATIVE = re.compile(r"(?:[0-9]+[smhd])+")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
SINCE_FORMS_ZH = (
    "可用形式：2026-11-28、2026-11-28T08:00（无时区按 UTC）、2026-11-28T08:00+08:00，或相对时间 30m、24h、7d"
)
SINCE_FORMS_EN = (
    "give 2026-11-28, 2026-11-28T08:00 (UTC when no offset), 2026-11-28T08:00+08:00, "
    "or a time ago: 30m, 24h, 7d"
)


def parse_since(text: str, now: _dt.datetime | None = None) -> _dt.datetime:
    """The moment ``--since`` names, in UTC: an ISO date or time (UTC unless it has an offset), or a
    time ago (``30m``, ``24h``, ``7d``, ``1d12h``).

    >>> parse_since("2026-11-28T08:00+08:00").isoformat()
    '2026-11-28T00:00:00+00:00'
    >>> parse_since("2026-11-28").isoformat()
    '2026-11-28T00:00:00+00:00'
    >>> now = _dt.datetime(2026, 11, 28, 12, tzinfo=_dt.UTC)
    >>> parse_since("36h", now).isoformat()
    '2026-11-27T00:00:00+00:00'
    >>> parse_since("yesterday")
    Traceback (most recent call last):
    ...
    schemas.errors.TongbanError: ARGUMENT_INVALID: --since 'yesterday': not a date or time; give 2026-11-28, 2026-11-28T08:00 (UTC when no offset), 2026-11-28T08:00+08:00, or a time ago: 30m, 24h, 7d (--since)
    """
    value = text.strip()
    if _RELATIVE.fullmatch(value):
        seconds = sum(int(n) * _UNITS[u] for n, u in re.findall(r"([0-9]+)([smhd])", value))
        return (now or _dt.datetime.now(_dt.UTC)) - _dt.timedelta(seconds=seconds)
    try:
        moment = _dt.datetime.fromisoformat(value)
    except ValueError:
        raise argument_error(
            "--since",
            repr(text),
            f"不是日期或时间；{SINCE_FORMS_ZH}",
            f"not a date or time; {SINCE_FORMS_EN}",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)
    return moment.astimezone(_dt.UTC)


def _check_code(code: str) -> str:
    """A rule or error code (or a part of one: the filter matches codes containing it), upper-cased."""
    value = code.strip().upper()
    known = [*RULES, *CATALOGUE]
    if value and any(value in k for k in known):
        return value
    zh, en = did_you_mean(value, known)
    raise argument_error(
        "--code", repr(code), f"没有这个规则或错误代码{zh}", f"no rule or error code is like it{en}"
    )


def _schema_key(dataset: str) -> str:
    return schemas.get(dataset).key if dataset in schemas.DATASETS else "key"


def _failure_libraries(ex: Any, node: str | None) -> list[tuple[str, Any]]:
    from tongban.core import engine

    codes = [node] if node else list(ex.nodes)
    libs = engine.Libraries(ex)  # (the command's process ends right after)
    out = []
    for code in codes:
        ex.node(code)  # unknown: NODE_UNKNOWN with a did-you-mean
        lib = libs.get(code)
        lib.migrate()
        out.append((code, lib))
    return out


def _file_name(payload: str | None) -> str | None:
    """The name of a quarantined drop file, from a file failure's payload."""
    try:
        data = json.loads(payload) if payload else None
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    name = data.get("name") or data.get("file")
    return str(name).rsplit("/", 1)[-1] if name else None


def cmd_failed(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """tongban failed list|show: failed transfers kept in the libraries."""
    try:
        if args.action == "show":
            return _show(args, out)
        return _list(args, out)
    except TongbanError as exc:
        return report_error(exc, as_json=args.json, out=out)


def _show(args: argparse.Namespace, out: TextIO) -> int:
    from tongban.core.masking import mask_any, mask_row

    node, _, ident = (args.id or "").partition(":")
    if not ident.isdigit():
        raise TongbanError(
            "FAILED_ID",
            "编号应为 节点:编号，如 630104:12",
            "the id is NODE:NUMBER, e.g. 630104:12",
            args.id or "",
        )
    ex = load_config(args)
    ((_, lib),) = _failure_libraries(ex, node)
    row = lib.failure(int(ident))
    if row is None:
        raise TongbanError("FAILED_NOT_FOUND", "没有这条失败记录", "no such failed transfer", args.id)
    if args.reveal:  # unmasked values shown: recorded in the audit log of the library that keeps it
        from tongban.cli.failed_act import cli_actor
        from tongban.core.audit import AuditLog

        AuditLog(lib.engine).append(cli_actor(None), "failed.reveal", subject=f"{node}:{ident}", result="ok")
    payload = json.loads(row["payload"]) if row["payload"] else None
    key = row["row_key"]
    if row["kind"] == "row" and isinstance(payload, dict):
        payload = mask_row(row["dataset"], payload, reveal=args.reveal)
    elif not args.reveal:
        payload = mask_any(payload)
    if key:
        field = _schema_key(row["dataset"])
        key = mask_row(row["dataset"], {field: key}, reveal=args.reveal)[field]
    row = {**row, "payload": payload, "row_key": key, "id": f"{node}:{row['id']}"}
    if not args.reveal:
        row = {k: mask_any(v) if k in ("message_zh", "message_en", "where") else v for k, v in row.items()}
    row.pop("digest", None)
    row["pending"] = _pending(row["dataset"], row.get("pending"), reveal=args.reveal)
    row = {**row, **_detail(ex, node, int(ident), row, payload if args.reveal else None)}
    if args.json:
        json_line(out, row)
    else:
        for k, v in row.items():
            if k == "payload" and isinstance(v, dict):
                out.write("payload:\n")
                for pk, pv in v.items():
                    out.write(f"  {pk}: {pv}\n")
            elif k == "findings":
                out.write("findings 规则 / 字段:\n")
                for f in v:
                    out.write(f"  {f['code']} [{f['field']}] {f['zh']} / {f['en']}\n")
            elif k == "history":
                out.write("history 历史:\n")
                for h in v:
                    why = f" — {h['reason']}" if h["reason"] else ""
                    out.write(f"  {h['at']} {h['actor']} {h['action']} -> {h['state']}{why}\n")
            else:
                out.write(f"{k}: {v}\n")
    return ExitCode.OK


def _pending(dataset: str, text: str | None, *, reveal: bool) -> Any:
    """The queued action: a resubmission's edited row masked like the payload (unless ``reveal``)."""
    from tongban.core.masking import mask_any, mask_row

    try:
        data = json.loads(text) if text else None
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("row"), dict):
        data["row"] = mask_row(dataset, data["row"], reveal=reveal)
    return data if reveal else mask_any(data)


def _detail(ex: Any, node: str, ident: int, row: dict[str, Any], raw: Any) -> dict[str, Any]:
    """The failure's history, and for a row the field each of its codes concerns."""
    from tongban.core import engine, review

    extra: dict[str, Any] = {}
    libs = engine.Libraries(ex)
    ref = review.Ref(node, ident)
    extra["history"] = [
        {
            "at": h["at"].isoformat() if h["at"] else None,
            "actor": h["actor"],
            "action": h["action"],
            "state": h["state_to"],
            "reason": h["reason"],
        }
        for h in review.history(libs, ref)
    ]
    full = review.get(ex, libs, ref)
    payload = review.payload_of(full)
    if full["kind"] == "row" and isinstance(payload, dict):
        try:
            found, _ = review.findings(ex, full["edge"], full["dataset"], payload)
            extra["findings"] = [f.as_dict() for f in found]
        except TongbanError:
            pass  # an edge no longer in the exchange: the codes above still say what failed
    return extra


def _list(args: argparse.Namespace, out: TextIO) -> int:
    from tongban.core.masking import mask_any, mask_row

    state = check_choice("--state", args.state, STATES)
    if args.limit < 0:
        raise argument_error(
            "--limit", args.limit, "应为 0（不限）或正整数", "must be 0 (no limit) or a positive number"
        )
    if args.dataset:
        check_dataset(args.dataset)
    code_filter = _check_code(args.code) if args.code else None
    since = parse_since(args.since) if args.since else None
    ex = load_config(args)
    shown = 0
    for node, lib in _failure_libraries(ex, args.node):
        rows = lib.failures(
            dataset=args.dataset,
            code=code_filter,
            kind=args.kind,
            state=None if state == "all" else state,
            since=since,
            limit=args.limit - shown if args.limit else None,
        )
        for r in rows:
            shown += 1
            brief = {
                "id": f"{node}:{r['id']}",
                "kind": r["kind"],
                "state": r["state"],
                "edge": r["edge"],
                "dataset": r["dataset"],
                "row_number": r["row_number"],
                "key": r["row_key"],
                "file": _file_name(r["payload"]) if r["kind"] == "file" else None,
                "codes": r["codes"].split(","),
                "message_zh": r["message_zh"],
                "message_en": r["message_en"],
                "attempts": r["attempts"],
                "created_at": r["created_at"].isoformat() if r["created_at"] else None,
            }
            if brief["key"]:
                field = _schema_key(r["dataset"])
                brief["key"] = mask_row(r["dataset"], {field: brief["key"]}, reveal=args.reveal)[field]
            if not args.reveal:
                brief["message_zh"] = mask_any(brief["message_zh"])
                brief["message_en"] = mask_any(brief["message_en"])
                brief["file"] = mask_any(brief["file"])
            if args.json:
                json_line(out, brief)
            else:
                row_no = (
                    f" 第{brief['row_number']}行 row {brief['row_number']}" if brief["row_number"] else ""
                )
                what = brief["key"] or brief["file"] or "-"
                out.write(
                    f"{brief['id']}\t{brief['kind']}\t{brief['state']}\t{brief['edge']}{row_no}\t"
                    f"{what}\t{','.join(brief['codes'])}\t{brief['message_zh']} / {brief['message_en']}\n"
                )
        if args.limit and shown >= args.limit:
            break
    if not args.json:
        out.write(f"共 {shown} 条 failed transfers shown\n")
    return ExitCode.OK


def register(sub: Any) -> None:
    """Add ``failed list`` and ``failed show`` to the ``tongban`` parser."""
    p = add_command(
        sub,
        "failed",
        summary="失败传输：查看与处理 list, show, retry, resubmit, discard, resolve failed transfers",
        description="失败传输：被拒绝的行、被拒的批次、失败的运行、被隔离的文件，保存在目标节点的库中，敏感字段已脱敏。\n"
        "Failed transfers: rejected rows, refused batches, failed runs and quarantined files, kept in the\n"
        "target node's library; personal fields masked unless --reveal.",
        examples=(
            "tongban failed list --workdir demo --node 630104 --limit 5",
            "tongban failed show 630104:12 --workdir demo",
        ),
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    lp = add_command(
        actions,
        "list",
        summary="列出失败传输 list failed transfers, newest first",
        description="列出失败传输，最新的在前：编号、类型、状态、边、行号、主键（文件则为文件名）、代码与说明。\n"
        "List failed transfers, newest first: id, kind, state, edge, row number, key (the file name for a\n"
        "quarantined file), codes and message. Every filter value is checked: a typo is an error, not an\n"
        "empty list.",
        examples=(
            "tongban failed list --node 630104 --code ID_CHECKSUM --limit 20",
            "tongban failed list --kind file --since 24h",
            "tongban failed list --state all --since 2026-11-28T08:00+08:00 --json",
        ),
    )
    lp.add_argument("--node", help="节点代码 node code, e.g. 630104 (默认全部 default: every node)")
    lp.add_argument("--dataset", help="数据集 dataset: population | business | license")
    lp.add_argument(
        "--code", help="规则或错误代码（或其一部分）rule or error code, or part of one, e.g. ID_CHECKSUM"
    )
    lp.add_argument("--kind", choices=KINDS, help="类型 kind")
    lp.add_argument("--state", default="open", help=f"状态 state: {' | '.join(STATES)}")
    lp.add_argument(
        "--since",
        metavar="WHEN",
        help="起始时间 since: 2026-11-28, 2026-11-28T08:00 (UTC), 2026-11-28T08:00+08:00, 或 or 24h, 7d",
    )
    lp.add_argument(
        "--limit", type=int, default=0, metavar="N", help="最多条数，0 为不限 at most N; 0: no limit"
    )
    lp.add_argument("--reveal", action="store_true", help="不脱敏 show unmasked values (operators)")
    add_config_args(lp)
    lp.set_defaults(func=cmd_failed, id=None)

    sp = add_command(
        actions,
        "show",
        summary="查看一条失败传输 show one failed transfer with its payload",
        description="查看一条失败传输及其内容（原始值），敏感字段已脱敏，除非 --reveal。\n"
        "Show one failed transfer with its payload (the raw values), masked unless --reveal.",
        examples=("tongban failed show 630104:12", "tongban failed show 630104:12 --reveal --json"),
    )
    sp.add_argument(
        "id", nargs="?", metavar="NODE:ID", help="失败传输编号 the id failed list shows, e.g. 630104:12"
    )
    sp.add_argument("--reveal", action="store_true", help="不脱敏 show unmasked values (operators)")
    add_config_args(sp)
    sp.set_defaults(func=cmd_failed)

    from tongban.cli.failed_act import register_actions

    register_actions(actions)
