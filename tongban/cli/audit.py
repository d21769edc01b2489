"""``tongban audit verify|checkpoint``: check a node's hash-chained audit log against its signed
checkpoints, naming the first altered, inserted or removed entry; sign a checkpoint now."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from schemas.errors import TongbanError
from tongban.cli.common import ExitCode, add_command, add_config_args, json_line, node_library, report_error

__all__ = ["cmd_audit", "register"]


def cmd_audit(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from tongban.core.audit import AuditLog, verify_log, write_checkpoint
    from tongban.core.trust import KeyStore, TrustList

    try:
        with node_library(args) as (ex, node, lib):
            log = AuditLog(lib.engine)
            if args.action == "checkpoint":
                point = write_checkpoint(log, KeyStore(ex.keys_dir), node)
                obj: dict[str, Any] = {"node": node, "checkpoint": point.body() if point else None}
                text = (
                    f"检查点已签名 checkpoint signed at entry {point.seq} (key {point.key_id})"
                    if point
                    else "无需新检查点 nothing new to checkpoint"
                )
                json_line(out, obj) if args.json else out.write(text + "\n")
                return ExitCode.OK
            problem = verify_log(log, TrustList.load(ex.trust_list))
            head = log.head()
            if problem is not None:
                raise TongbanError(
                    "AUDIT_CHECKPOINT" if problem.kind == "checkpoint" else "AUDIT_BROKEN",
                    f"审计日志第 {problem.seq} 条有问题（{problem.kind}）：{problem.message_zh}",
                    f"audit log entry {problem.seq} is bad ({problem.kind}): {problem.message_en}",
                    f"{node} audit_log seq {problem.seq}",
                )
            entries = head.seq if head else 0
            if args.json:
                json_line(out, {"node": node, "ok": True, "entries": entries})
            else:
                out.write(f"审计日志完好 audit log intact: 节点 node {node}, {entries} 条 entries\n")
    except TongbanError as exc:
        return report_error(exc, as_json=args.json, out=out)
    return ExitCode.OK


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "audit",
        summary="审计日志核查 check the audit log",
        description="核查节点的哈希链审计日志与其签名检查点：指出第一条被改动、插入或删除的条目；或立即签一个检查点。\n"
        "Check a node's hash-chained audit log and its signed checkpoints, naming the first altered,\n"
        "inserted or removed entry; or sign a checkpoint now.",
        examples=(
            "tongban audit verify --workdir demo",
            "tongban audit checkpoint --workdir demo --node 000000",
        ),
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, summary in (
        ("verify", "核查审计日志 check the log"),
        ("checkpoint", "立即签名检查点 sign a checkpoint now"),
    ):
        a = add_command(
            actions, name, summary=summary, description=summary, examples=(f"tongban audit {name}",)
        )
        a.add_argument("--node", metavar="CODE", help="节点（默认根节点）node (default: the root)")
        add_config_args(a)
    p.set_defaults(func=cmd_audit, node=None)
