"""``tongban failed retry|resubmit|discard|resolve|apply``: operators' actions on failed transfers.

One failure by its id (``NODE:ID``, as ``failed list`` shows it), several ids, or every failure a
filter selects (``--node``, ``--dataset``, ``--code``, ``--kind``, ``--since``, ``--until``; at least one,
or ``--all``). Each action is audited in the library of the node keeping the failure, as the operator
``--operator`` (default: ``cli:<login name>``). Discard and resolve take effect at once; retry and
resubmit are queued for the edge's next run (``tongban sync``, the exchange DAG, the ``tongban_review``
maintenance DAG, or ``tongban failed apply`` now).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from schemas.errors import ExitCode, TongbanError, lookup
from tongban.cli.common import (
    add_command,
    add_config_args,
    argument_error,
    check_dataset,
    json_line,
    load_config,
    report_error,
)

__all__ = ["cli_actor", "cmd_act", "cmd_apply", "register_actions"]

_MAX_EDIT_FILE = 1 << 20


class _Audits:
    """Appends each entry to the audit log of the library keeping the failure it names."""

    def __init__(self, libs: Any) -> None:
        self.libs = libs
        self._logs: dict[str, Any] = {}

    def append(self, actor: str, action: str, **fields: Any) -> Any:
        from tongban.core.audit import AuditLog

        node = str(fields.get("subject") or "").partition(":")[0]
        log = self._logs.get(node)
        if log is None:
            log = self._logs[node] = AuditLog(self.libs.get(node).engine)
        return log.append(actor, action, **fields)


def _actor(args: argparse.Namespace) -> str:
    return cli_actor(args.operator)


def cli_actor(operator: str | None) -> str:
    """Who acts from the command line: ``--operator``, else ``cli:<login name>``."""
    if operator:
        return str(operator)[:100]
    try:
        return f"cli:{getpass.getuser()}"[:100]
    except (OSError, KeyError):
        return "cli:unknown"


def _edit(args: argparse.Namespace) -> dict[str, Any]:
    from tongban.core.review import parse_assignments

    if args.file and args.set:
        raise argument_error(
            "--file", args.file, "--file 与 --set 只能给一个", "give --file or --set, not both"
        )
    if args.set:
        return parse_assignments(args.set)
    if not args.file:
        raise argument_error(
            "--set",
            "",
            "给出要修改的字段：--set 字段=值 或 --file 行.json",
            "give the edit: --set field=value or --file row.json",
        )
    path = Path(args.file)
    try:
        if path.stat().st_size > _MAX_EDIT_FILE:
            raise argument_error("--file", args.file, "文件超过 1 MiB", "the file is larger than 1 MiB")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise argument_error(
            "--file",
            args.file,
            f"无法读取为 JSON 对象：{type(exc).__name__}",
            f"cannot read it as a JSON object: {type(exc).__name__}",
        ) from None
    if not isinstance(data, dict):
        raise argument_error(
            "--file", args.file, "应为 JSON 对象（字段: 值）", "must be a JSON object (field: value)"
        )
    return data


def _filter(args: argparse.Namespace) -> Any:
    from tongban.cli.failed import _check_code, parse_since
    from tongban.core.review import Filter

    if args.dataset:
        check_dataset(args.dataset)
    return Filter(
        node=args.node,
        dataset=args.dataset,
        code=_check_code(args.code) if args.code else None,
        kind=args.kind,
        state=args.state,
        since=parse_since(args.since) if args.since else None,
        until=parse_since(args.until) if args.until else None,
    )


def cmd_act(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Apply the action to the ids or the filter's failures; print one line per failure."""
    from tongban.core import engine, review

    try:
        action = args.action
        ex = load_config(args)
        libs = engine.Libraries(ex)
        audit = _Audits(libs)
        actor = _actor(args)
        reason = getattr(args, "reason", None)
        filtered = any(getattr(args, k, None) for k in ("node", "dataset", "code", "kind", "since", "until"))
        if args.ids and (filtered or args.all):
            raise argument_error(
                "ID", " ".join(args.ids), "给出编号或筛选条件，不要同时给", "give ids or filters, not both"
            )
        if action == "resubmit":
            if len(args.ids) != 1:
                raise argument_error(
                    "ID",
                    " ".join(args.ids),
                    "重新提交一次一行：给出一个编号",
                    "resubmit one row: give one id",
                )
            ref = review.Ref.parse(args.ids[0])
            outcomes = [
                review.act(
                    ex,
                    libs,
                    ref,
                    action,
                    actor=actor,
                    audit=audit,
                    reason=reason,
                    edit=_edit(args),
                    expect_version=args.expect_version,
                )
            ]
        elif args.ids:
            refs = [(review.Ref.parse(i), args.expect_version) for i in args.ids]
            for ref, _ in refs:
                ex.node(ref.node)
            outcomes = review.act_many(ex, libs, action, actor=actor, audit=audit, refs=refs, reason=reason)
        else:
            where = _filter(args)
            if where.node:
                ex.node(where.node)
            outcomes = review.act_many(
                ex, libs, action, actor=actor, audit=audit, where=where, reason=reason, everything=args.all
            )
    except TongbanError as exc:
        return report_error(exc, as_json=args.json, out=out)
    code = ExitCode.OK
    for o in outcomes:
        if args.json:
            json_line(out, o.as_dict())
        elif o.ok:
            out.write(f"{o.ref}\t{o.state}\t{_done_text(o.state)}\n")
        else:
            out.write(f"{o.ref}\t{o.code}\t{o.message_zh} / {o.message_en}\n")
        if not o.ok and code == ExitCode.OK:
            code = lookup(o.code or "INTERNAL").exit
    if not args.json:
        applied = sum(o.ok for o in outcomes)
        out.write(
            f"共 {applied}/{len(outcomes)} 条已{_ZH[action]} {applied} of {len(outcomes)} {_EN[action]}\n"
        )
        if applied and action in ("retry", "resubmit"):
            out.write(
                "已排队：下次同步生效（tongban sync、交换 DAG、tongban_review 维护 DAG，或现在运行 tongban failed apply）\n"
                "queued: takes effect in the edge's next run (tongban sync, the exchange DAG, the tongban_review "
                "maintenance DAG, or tongban failed apply now)\n"
            )
    return code


_ZH = {"retry": "排队重试", "resubmit": "排队重新提交", "discard": "丢弃", "resolve": "标记为已解决"}
_EN = {
    "retry": "queued for a retry",
    "resubmit": "queued for resubmission",
    "discard": "discarded",
    "resolve": "resolved",
}


def _done_text(state: str | None) -> str:
    return {
        "queued": "已排队，下次同步生效 queued for the edge's next run",
        "discarded": "已丢弃 discarded",
        "resolved": "已解决 resolved",
    }.get(state or "", state or "")


def cmd_apply(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run the edges with queued retries and resubmissions now, and the edges above them."""
    from tongban.core import engine, review

    try:
        ex = load_config(args)
        with engine.Libraries(ex) as libs:
            done = review.apply_queued(ex, libs)
    except TongbanError as exc:
        return report_error(exc, as_json=args.json, out=out)
    code = ExitCode.OK
    for entry in done:
        if args.json:
            json_line(out, entry)
        elif entry["ok"]:
            out.write(
                f"{entry['edge']}\t{entry['rows']} 行 rows\t{entry['inserted']} 新 inserted\t"
                f"{entry['updated']} 更新 updated\t{entry['rejected']} 拒绝 rejected\n"
            )
        else:
            out.write(f"{entry['edge']}\t{entry['code']}\t{entry['message_en']}\n")
            code = ExitCode.RUN_FAILED
    if not args.json:
        out.write(f"共运行 {len(done)} 条边 {len(done)} edges run\n")
    return code


def _selection_args(p: argparse.ArgumentParser, *, many: bool = True) -> None:
    from tongban.cli.failed import KINDS

    p.add_argument("ids", nargs="*", metavar="NODE:ID", help="失败传输编号 ids as failed list shows them")
    if many:
        g = p.add_argument_group("按条件批量 many by filter (instead of ids)")
        g.add_argument("--node", help="节点代码 node code")
        g.add_argument("--dataset", help="数据集 dataset")
        g.add_argument("--code", help="规则或错误代码（或其一部分）rule or error code, or part of one")
        g.add_argument("--kind", choices=KINDS, help="类型 kind")
        g.add_argument("--since", metavar="WHEN", help="创建不早于 created since: 2026-11-28, 24h, 7d")
        g.add_argument("--until", metavar="WHEN", help="创建早于 created before")
        g.add_argument(
            "--state", choices=("open", "queued"), default="open", help="状态 state of the failures to act on"
        )
        g.add_argument("--all", action="store_true", help="无筛选时作用于全部 act on every open failure")
    p.add_argument(
        "--expect-version",
        type=int,
        metavar="N",
        help="仅当版本仍为 N 时操作 act only if the version is still N",
    )
    p.add_argument(
        "--operator", metavar="NAME", help="操作员（审计）who acts, for the audit log (default cli:<login>)"
    )
    add_config_args(p)


def register_actions(actions: Any) -> None:
    """Add retry, resubmit, discard, resolve and apply under ``tongban failed``."""
    rp = add_command(
        actions,
        "retry",
        summary="重试 re-read from the source in the edge's next run",
        description="源已改正后重试：SQL 系统的行按主键重读，被隔离的文件放回投放目录，失败的运行或被拒的批次重新运行；\n"
        "在下次同步时生效。\nRetry after the source was fixed: a SQL system's row is re-read by its key, a "
        "quarantined file goes back\ninto its drop folder, a failed run or refused batch runs again — in the edge's next run.",
        examples=(
            "tongban failed retry 630104:12",
            "tongban failed retry --node 630104 --kind run",
            "tongban failed retry --code SQL_UNREACHABLE --since 24h",
        ),
    )
    _selection_args(rp)
    rp.set_defaults(func=cmd_act, action="retry")

    sp = add_command(
        actions,
        "resubmit",
        summary="修改后重新提交 edit a rejected row and send it again",
        description="修改一条被拒的行并重新提交：先按同样的规则重新校验（仍不通过、改变主键或所有者则拒绝），\n"
        "然后在所属县的下次同步中签名、成链、校验、入库，再逐级上报。\n"
        "Edit a rejected row and send it again: validated again first (refused if it still fails, or changes the\n"
        "record's key or owner), then sealed by the county that owns it in its edge's next run, chained,\n"
        "verified, loaded, and carried up.",
        examples=(
            "tongban failed resubmit 630104:12 --set id_number=63010419800101001X",
            "tongban failed resubmit 630104:12 --set birth_date=1980-02-28 --set moved_to=",
            "tongban failed resubmit 630104:12 --file edited-row.json",
        ),
    )
    _selection_args(sp, many=False)
    sp.add_argument(
        "--set", action="append", metavar="FIELD=VALUE", help="修改字段（可多次；空值清空）set a field"
    )
    sp.add_argument("--file", metavar="JSON", help="含修改字段的 JSON 对象 a JSON object of fields to set")
    sp.add_argument("--reason", help="说明 why (optional)")
    sp.set_defaults(func=cmd_act, action="resubmit", all=False, state="open")

    dp = add_command(
        actions,
        "discard",
        summary="丢弃（需原因）discard, with a reason",
        description="丢弃失败传输（必须给出原因），立即生效；同一行以后被重读也不会再次列出。\n"
        "Discard failed transfers (a reason is required), at once; the same row re-read later is not listed again.",
        examples=(
            "tongban failed discard 630104:12 --reason '测试数据 test data'",
            "tongban failed discard --node 630104 --code DATE_INVALID --reason 'source retired'",
        ),
    )
    _selection_args(dp)
    dp.add_argument("--reason", required=True, help="原因（必填）why (required)")
    dp.set_defaults(func=cmd_act, action="discard")

    sv = add_command(
        actions,
        "resolve",
        summary="标记为已解决 mark as resolved",
        description="把失败传输标记为已解决（例如已在别处处理），立即生效。\n"
        "Mark failed transfers as resolved (e.g. handled elsewhere), at once.",
        examples=("tongban failed resolve 630104:12 --reason '已人工补录 entered by hand'",),
    )
    _selection_args(sv)
    sv.add_argument("--reason", help="说明 why (optional)")
    sv.set_defaults(func=cmd_act, action="resolve")

    ap = add_command(
        actions,
        "apply",
        summary="立即执行已排队的重试与重新提交 run the queued retries and resubmissions now",
        description="运行有排队工作的同步边及其上级边（与 tongban_review 维护 DAG 相同）。\n"
        "Run the edges with queued retries and resubmissions, and the edges above them (as the tongban_review\n"
        "maintenance DAG does).",
        examples=("tongban failed apply --workdir demo",),
    )
    add_config_args(ap)
    ap.set_defaults(func=cmd_apply)
