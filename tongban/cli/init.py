"""``tongban init``: every node's library (schema migrated), missing signing keys, the signed trust list."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from schemas.errors import TongbanError
from tongban.cli.common import ExitCode, add_command, add_config_args, json_line, load_config, report_error

__all__ = ["cmd_init", "register"]


def cmd_init(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """tongban init: libraries, keys and trust list for every node of the config (idempotent)."""
    from tongban.core.initialize import initialize

    try:
        report = initialize(load_config(args))
    except TongbanError as exc:
        return report_error(exc, as_json=args.json, out=out)
    if args.json:
        json_line(out, report)
    else:
        out.write(
            f"已初始化 initialized {report['nodes']} 个节点 nodes, {report['libraries']} 个库 libraries, "
            f"新建密钥 new keys {report['keys_created']}, 新建主密钥 new master keys {report['master_keys_created']}, "
            f"信任列表 trust list {report['trust_list']}, "
            f"{report['edges']} 条同步边 edges\n"
        )
    return ExitCode.OK


def register(sub: Any) -> None:
    """Add ``init`` to the ``tongban`` parser."""
    p = add_command(
        sub,
        "init",
        summary="初始化库、密钥与信任列表 create libraries, keys and the trust list",
        description="为配置中的每个节点建库（迁移到当前结构）、生成缺少的签名密钥，并由根节点签发信任列表。\n"
        "可重复运行：已有的库与密钥保持不变。新增县（节点与本地系统）后先运行它，再同步。\n"
        "Create every node's library (schema migrated) and missing signing keys, and sign the trust list\n"
        "with the root's key. Safe to rerun: existing libraries and keys stay. After adding a county (its\n"
        "node and systems) to exchange.yaml, run it before the next sync.",
        examples=("tongban init", "tongban init --workdir demo --json"),
    )
    add_config_args(p)
    p.set_defaults(func=cmd_init)
