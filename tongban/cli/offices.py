"""``tongban offices add|list|revoke|rotate``: the remote offices that verify against a node, their
tokens (shown once, stored hashed), scopes and rate limits."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from schemas.errors import TongbanError
from tongban.cli.common import ExitCode, add_command, add_config_args, json_line, node_library, report_error

__all__ = ["cmd_offices", "register"]


def cmd_offices(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """tongban offices add|list|revoke|rotate."""
    try:
        with node_library(args) as (_, _, lib):
            {"add": _add, "list": _list, "revoke": _revoke, "rotate": _rotate}[args.action](lib, args, out)
    except TongbanError as exc:
        return report_error(exc, as_json=args.json, out=out)
    return ExitCode.OK


def _split(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def _add(lib: Any, args: argparse.Namespace, out: TextIO) -> None:
    from tongban.core.verification import offices
    from tongban.core.verification.scope import Scope

    scope = Scope.from_dict(
        {
            "datasets": _split(args.datasets),
            "divisions": _split(args.divisions),
            "search": bool(args.search),
            "reveal": _split(args.reveal),
        }
    )
    office, token = offices.add(lib, args.code, args.name or args.code, scope, args.rate)
    if args.json:
        json_line(out, {**office.to_dict(), "token": token})
        return
    out.write(
        f"窗口 office {office.code} 已添加 added (节点 node {lib.node})\n"
        f"令牌 token（只显示这一次，请妥善保存 shown once, keep it safe）:\n{token}\n"
    )


def _list(lib: Any, args: argparse.Namespace, out: TextIO) -> None:
    from tongban.core.verification import offices

    for office in offices.list_offices(lib):
        d = office.to_dict()
        if args.json:
            json_line(out, d)
            continue
        s = d["scopes"]
        state = f"已吊销 revoked {d['revoked_at']}" if d["revoked_at"] else "有效 active"
        out.write(
            f"{d['code']}\t{d['name']}\t{state}\t数据集 datasets={','.join(s['datasets'])}\t"
            f"区划 divisions={','.join(s['divisions']) or '全部 all'}\t检索 search={'是 yes' if s['search'] else '否 no'}"
            f"\t{d['rate_limit']}/min\n"
        )


def _revoke(lib: Any, args: argparse.Namespace, out: TextIO) -> None:
    from tongban.core.verification import offices

    if not (args.reason or "").strip():
        raise TongbanError(
            "ARGUMENT_INVALID",
            '吊销须说明原因：--reason "…"',
            'revoking needs a reason: --reason "…"',
            "--reason",
        )
    office = offices.revoke(lib, args.code, args.reason)
    if args.json:
        json_line(out, office.to_dict())
    else:
        out.write(f"已吊销 revoked {office.code}\n")


def _rotate(lib: Any, args: argparse.Namespace, out: TextIO) -> None:
    from tongban.core.verification import offices

    token = offices.rotate(lib, args.code)
    if args.json:
        json_line(out, {"code": args.code, "token": token})
    else:
        out.write(
            f"窗口 office {args.code} 的新令牌 new token（旧令牌已失效 the old one no longer works; 只显示这一次 shown once）:\n"
            f"{token}\n"
        )


def register(sub: Any) -> None:
    """Add ``offices add|list|revoke|rotate`` to the ``tongban`` parser."""
    p = add_command(
        sub,
        "offices",
        summary="远程核验窗口 remote offices (tokens, scopes, rate limits)",
        description="管理向本节点核验的远程窗口：令牌只显示一次、只存其哈希；授权范围（数据集、行政区划、检索）与速率限制。\n"
        "Manage the remote offices that verify against a node: a token shown once and stored hashed,\n"
        "a scope (datasets, divisions, search) and a rate limit.",
        examples=(
            "tongban offices add QH-XN-01 --name 西宁市政务服务中心 --datasets license,business --divisions 630000",
            "tongban offices list --json",
            "tongban offices rotate QH-XN-01",
            "tongban offices revoke QH-XN-01 --reason 'token leaked'",
        ),
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def common(a: argparse.ArgumentParser) -> None:
        a.add_argument(
            "--node",
            metavar="CODE",
            help="窗口所核验的节点（默认根节点）the node it verifies against (default: the root)",
        )
        add_config_args(a)

    a = add_command(
        actions,
        "add",
        summary="添加窗口并发放令牌 add an office and issue its token",
        description="添加窗口并发放令牌（只显示一次）。Add an office and issue its token (shown once).",
        examples=("tongban offices add QH-XN-01 --datasets license --divisions 630000 --search",),
    )
    a.add_argument("code", metavar="CODE", help="窗口代码 office code (letters, digits, -)")
    a.add_argument("--name", help="窗口名称 office name")
    a.add_argument("--datasets", default="license", help="授权数据集，逗号分隔 datasets, comma-separated")
    a.add_argument(
        "--divisions",
        default="",
        help="授权行政区划（前缀），逗号分隔；空为全部 divisions (prefixes); empty: all",
    )
    a.add_argument("--search", action="store_true", help="允许按持证主体检索 allow search by holder")
    a.add_argument("--reveal", default="", help="不打码显示的字段，逗号分隔 fields shown unmasked")
    a.add_argument("--rate", type=int, default=600, help="每分钟请求上限 requests per minute")
    common(a)

    a = add_command(
        actions,
        "list",
        summary="列出窗口 list the offices",
        description="列出窗口及其授权范围。List the offices and their scopes.",
        examples=("tongban offices list", "tongban offices list --json"),
    )
    common(a)

    a = add_command(
        actions,
        "revoke",
        summary="吊销窗口令牌 revoke an office's token",
        description="吊销后该窗口的令牌立即被拒绝。After revoking, the office's token is refused at once.",
        examples=("tongban offices revoke QH-XN-01 --reason 'token leaked'",),
    )
    a.add_argument("code", metavar="CODE")
    a.add_argument("--reason", help="原因（必填）reason (required)")
    common(a)

    a = add_command(
        actions,
        "rotate",
        summary="轮换窗口令牌 rotate an office's token",
        description="发放新令牌，旧令牌立即失效。Issue a new token; the old one stops at once.",
        examples=("tongban offices rotate QH-XN-01",),
    )
    a.add_argument("code", metavar="CODE")
    common(a)
    p.set_defaults(func=cmd_offices, node=None, reason=None)
