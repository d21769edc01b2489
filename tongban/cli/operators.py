"""``tongban operators add|list|disable``: the review page's operator accounts, in a node's library.

A password is read from the terminal (asked twice) or, with ``--password-stdin``, from the first line
of standard input; it is stored as a scrypt hash only. ``--reveal`` grants the right to see unmasked
values (a separate, audited action in the page).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any, TextIO

from schemas.errors import ExitCode, TongbanError
from tongban.cli.common import (
    add_command,
    add_config_args,
    argument_error,
    json_line,
    load_config,
    report_error,
)

__all__ = ["cmd_operators", "register"]


def _library(args: argparse.Namespace) -> tuple[Any, Any]:
    from tongban.core import engine

    ex = load_config(args)
    node = args.node or ex.trust_root
    ex.node(node)  # unknown: NODE_UNKNOWN with a did-you-mean
    lib = engine.Libraries(ex).get(node)
    lib.migrate()
    return node, lib


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("密码 password: ")
    if getpass.getpass("再输一次 again: ") != first:
        raise argument_error("password", "", "两次输入的密码不同", "the two passwords differ")
    return first


def cmd_operators(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from tongban.core.review import operators

    try:
        node, lib = _library(args)
        if args.action == "add":
            op = operators.add(
                lib, args.username, args.name or args.username, _password(args), reveal=args.reveal, by="cli"
            )
            rows = [op]
        elif args.action == "disable":
            rows = [operators.disable(lib, args.username)]
        else:
            rows = operators.list_all(lib)
    except TongbanError as exc:
        return report_error(exc, as_json=args.json, out=out)
    for op in rows:
        entry = {
            "node": node,
            "username": op.username,
            "name": op.name,
            "reveal": op.may_reveal,
            "disabled": op.disabled,
        }
        if args.json:
            json_line(out, entry)
        else:
            flags = ("可查看原值 may reveal" if op.may_reveal else "仅脱敏 masked only") + (
                "，已停用 disabled" if op.disabled else ""
            )
            out.write(f"{node}\t{op.username}\t{op.name}\t{flags}\n")
    return ExitCode.OK


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "operators",
        summary="复核页面的操作员账号 operator accounts of the review page",
        description="复核页面（tongban serve）的操作员账号，保存在节点的库中；密码只保存 scrypt 哈希。\n"
        "Operator accounts of the review page (tongban serve), kept in the node's library; passwords are\n"
        "stored as scrypt hashes only.",
        examples=(
            "tongban operators add wang --name 王工 --reveal --workdir demo",
            "printf '%s\\n' \"$PASSWORD\" | tongban operators add li --password-stdin --workdir demo",
            "tongban operators list --workdir demo",
            "tongban operators disable li --workdir demo",
        ),
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ap = add_command(
        actions,
        "add",
        summary="新增操作员 add an operator",
        description="新增操作员；密码至少 12 个字符。\nAdd an operator; a password has at least 12 characters.",
        examples=("tongban operators add wang --name 王工 --reveal",),
    )
    ap.add_argument("username", help="用户名 username (2-64: letters, digits, . - _)")
    ap.add_argument("--name", help="显示名 display name")
    ap.add_argument("--reveal", action="store_true", help="可查看未脱敏的值 may reveal unmasked values")
    ap.add_argument(
        "--password-stdin", action="store_true", help="从标准输入读密码 read the password from stdin"
    )
    lp = add_command(
        actions,
        "list",
        summary="列出操作员 list operators",
        description="列出操作员：用户名、显示名、能否查看原值、是否停用。\n"
        "List operators: username, display name, whether they may reveal, whether disabled.",
        examples=("tongban operators list --workdir demo --json",),
    )
    dp = add_command(
        actions,
        "disable",
        summary="停用操作员 disable an operator",
        description="停用操作员：其密码不再能登录，已登录的会话在下次请求时结束。\n"
        "Disable an operator: the password no longer logs in; open sessions end at their next request.",
        examples=("tongban operators disable li",),
    )
    dp.add_argument("username", help="用户名 username")
    for q in (ap, lp, dp):
        q.add_argument(
            "--node", metavar="CODE", help="节点代码 the node whose library keeps them (默认 default: root)"
        )
        add_config_args(q)
        q.set_defaults(func=cmd_operators)
