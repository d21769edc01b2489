"""``tongban keys list|rotate|revoke|repair|rotate-data``: node signing keys, the trust list, the repair
of the libraries after a key compromise, and the rotation of a library's data key (encryption at rest)."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Any, TextIO

from schemas.errors import TongbanError
from tongban.cli.common import ExitCode, add_command, add_config_args, json_line, load_config, report_error

__all__ = ["cmd_keys", "register"]


def cmd_keys(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """tongban keys list|rotate|revoke|repair: node signing keys and the trust list."""
    try:
        ex = load_config(args)
        actions = {
            "list": _list,
            "rotate": _rotate,
            "revoke": _revoke,
            "repair": _repair,
            "rotate-data": _rotate_data,
            "trust-list": _trust_list,
        }
        actions[args.action](ex, args, out)
    except TongbanError as exc:
        return report_error(exc, as_json=args.json, out=out)
    return ExitCode.OK


def _needs_target(args: argparse.Namespace, zh: str, en: str) -> str:
    if not args.target:
        raise TongbanError("KEYS_ARGUMENT", zh, en, f"keys {args.action}")
    return str(args.target)


def _say(out: TextIO, as_json: bool, obj: dict[str, Any], text: str) -> None:
    if as_json:
        json_line(out, obj)
    else:
        out.write(text + "\n")


def _list(ex: Any, args: argparse.Namespace, out: TextIO) -> None:
    from tongban.core import trust

    for e in trust.TrustList.load(ex.trust_list).entries:
        entry = e.to_dict()
        if args.json:
            json_line(out, entry)
        else:
            state = "吊销 revoked" if entry.get("revoked_at") else "有效 valid"
            out.write(
                f"{entry['node']}\t{entry['key_id']}\t{state}\t{entry.get('valid_from')} → "
                f"{entry.get('valid_until') or '长期 open'}\n"
            )


def _rotate(ex: Any, args: argparse.Namespace, out: TextIO) -> None:
    from tongban.core import trust

    node = _needs_target(args, "请指定节点代码", "name the node to rotate")
    ex.node(node)
    keys = trust.KeyStore(ex.keys_dir)
    new = trust.rotate(keys, ex.trust_list, node, overlap_seconds=args.overlap)
    repinned = 0
    if node == ex.trust_root:  # the libraries trust lists from the new root key from now on
        from tongban.core import engine
        from tongban.core.initialize import root_public_key

        root_key = root_public_key(keys, trust.TrustList.load(ex.trust_list))
        with engine.Libraries(ex) as libs:
            repinned = sum(libs.get(code).pin_root(root_key, replace=True) for code in ex.nodes)
    _say(
        out,
        args.json,
        {"node": node, "key_id": new, "libraries_repinned": repinned},
        f"{node} 新密钥 new key {new}"
        + (f"（{repinned} 个库已重新固定根公钥 libraries re-pinned）" if repinned else ""),
    )


def _revoke(ex: Any, args: argparse.Namespace, out: TextIO) -> None:
    from tongban.core import trust

    key_id = _needs_target(args, "请指定密钥编号", "name the key id to revoke")
    if not (args.reason or "").strip():
        raise TongbanError(
            "KEYS_ARGUMENT",
            '吊销密钥须说明原因：--reason "…"',
            'revoking a key needs a reason: --reason "…"',
            "keys revoke",
        )
    keys = trust.KeyStore(ex.keys_dir)
    listed = trust.TrustList.load(ex.trust_list).entry(key_id)
    if listed is not None and keys.current(listed.node) == key_id and not args.force:
        # The node's only key in use: revoking it stops every batch of the node until a new key exists.
        raise TongbanError(
            "KEY_CURRENT",
            f"{key_id} 是节点 {listed.node} 当前使用的密钥：先轮换（tongban keys rotate {listed.node}），"
            "再吊销；密钥已泄露须立即吊销时加 --force",
            f"{key_id} is the key node {listed.node} signs with now: rotate first "
            f"(tongban keys rotate {listed.node}), then revoke; add --force to revoke it at once after a compromise",
            key_id,
        )
    trust.revoke(keys, ex.trust_list, key_id, args.reason.strip())
    _say(out, args.json, {"revoked": key_id}, f"已吊销 revoked {key_id}")


def _repair(ex: Any, args: argparse.Namespace, out: TextIO) -> None:
    from tongban.core import engine
    from tongban.core.repair import repair_key

    key_id = _needs_target(args, "请指定已吊销的密钥编号", "name the revoked key id to repair")
    with engine.Libraries(ex) as libs:
        report = repair_key(ex, key_id, libs.get, dry_run=args.dry_run)
    if args.json:
        json_line(out, report)
        return
    verb = "将移除 would remove" if args.dry_run else "已移除 removed"
    for lib in report["libraries"]:
        if lib["batches"] or lib["records"]:
            out.write(
                f"{lib['node']}: 该密钥签名的批次 batches signed {lib['batches']}, "
                f"{verb} {lib['records']} 条记录 records → 历史 history (revoked); "
                f"重置游标 cursors reset: {', '.join(lib['edges_reset']) or '-'}\n"
            )
    out.write(
        "下一次同步将从所有者重新拉取 the next sync re-pulls from the owners: tongban sync\n"
        if not args.dry_run
        else "（演练，未作改动 dry run, nothing changed）\n"
    )


def _rotate_data(ex: Any, args: argparse.Namespace, out: TextIO) -> None:
    from tongban.core import engine
    from tongban.core.store import rekey

    node = _needs_target(args, "请指定节点代码", "name the node whose library's data key to rotate")
    ex.node(node)
    with engine.Libraries(ex) as libs:
        lib = libs.get(node)
        lib.migrate()
        resumed = rekey.status(lib)["cursor"] is not None
        new = None if (args.resume or resumed) else rekey.rotate(lib)
        done = rekey.rekey(lib, chunk=args.chunk)
        state = rekey.status(lib)
    report = {"node": node, "key_id": new or lib.keyring().active, "resumed": new is None, **done}
    report["keys"] = len(state["keys"])
    _say(
        out,
        args.json,
        report,
        f"{node} 数据密钥 data key {report['key_id']}"
        + ("（续做上次中断的轮换 resumed an interrupted rotation）" if new is None else "")
        + f"：重新加密 re-sealed {done['resealed']} 行 rows，删除旧密钥 old keys deleted {done['keys_deleted']}"
        + (
            ""
            if done["settled"]
            else "；仍有写入使用旧密钥，请再次运行 writes still used the old key: run again"
        ),
    )


def _trust_list(ex: Any, args: argparse.Namespace, out: TextIO) -> None:
    """Publish the signed trust list: checked against the root key the root's library pinned, then
    written as signed (offices and offline checkers take it from here)."""
    from tongban.core import engine, trust
    from tongban.core.trust.canonical import write_atomic

    with engine.Libraries(ex) as libs:
        pinned = libs.get(ex.trust_root).pinned_root()
    listed = trust.TrustList.load(ex.trust_list, trust.from_b64url(pinned) if pinned else None)
    text = listed.to_json()
    now = trust.iso(datetime.datetime.now(datetime.UTC))
    counts = {
        "keys": len(listed.entries),
        "revoked": sum(1 for e in listed.entries if e.revoked_at is not None),
        "issued_at": trust.iso(listed.issued_at),
        "root_key_id": listed.key_id,
        "checked_at": now,
    }
    if args.out:
        write_atomic(Path(args.out), text.encode("utf-8"), mode=0o644)  # public: keys, no secrets
        _say(
            out,
            args.json,
            {"out": str(args.out), **counts},
            f"信任列表已发布 trust list published: {args.out}（{counts['keys']} 个密钥 keys，"
            f"{counts['revoked']} 个已吊销 revoked，根密钥 root key {listed.key_id}）",
        )
    else:
        out.write(text)


def _duration(text: str) -> int:
    """argparse type: seconds, or a duration such as 12h or 7d."""
    from tongban.core.config import parse_duration

    try:
        return parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"应为秒数或时长，如 12h、7d must be seconds or a duration such as 12h or 7d: {text}"
        ) from None


def register(sub: Any) -> None:
    """Add ``keys list|rotate|revoke|repair`` to the ``tongban`` parser."""
    p = add_command(
        sub,
        "keys",
        summary="节点密钥与信任列表 node keys and the trust list",
        description="列出、轮换或吊销节点签名密钥（信任列表由根节点重新签发）；密钥泄露后修复各库（repair）。\n"
        "List, rotate or revoke node signing keys (the root re-signs the trust list); repair the libraries\n"
        "after a key compromise.",
        examples=(
            "tongban keys list",
            "tongban keys rotate 630104 --overlap 1d",
            "tongban keys revoke KEY_ID --reason 'key leaked'",
            "tongban keys repair KEY_ID --dry-run",
            "tongban keys rotate-data 630104",
            "tongban keys trust-list --out trust-list.json",
        ),
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    a = add_command(
        actions,
        "list",
        summary="列出信任列表中的密钥 list the trust list's keys",
        description="列出信任列表中的每个密钥：节点、密钥编号、有效或已吊销、有效期。\n"
        "List every key of the trust list: node, key id, valid or revoked, validity.",
        examples=("tongban keys list", "tongban keys list --workdir demo --json"),
    )
    add_config_args(a)

    a = add_command(
        actions,
        "rotate",
        summary="为节点生成新密钥 give a node a new signing key",
        description="为节点生成新签名密钥并列入信任列表；旧密钥在重叠期内仍可验证，之后失效。\n"
        "Give a node a new signing key and list it; the old key still verifies during the overlap, then\n"
        "expires.",
        examples=("tongban keys rotate 630104", "tongban keys rotate 630104 --overlap 12h --json"),
    )
    a.add_argument("target", nargs="?", metavar="NODE", help="节点代码 node code")
    a.add_argument(
        "--overlap",
        type=_duration,
        default="7d",
        metavar="DURATION",
        help="旧密钥仍有效的时长（秒或 30m、12h、7d）how long the old key stays valid (seconds, or 30m, 12h, 7d)",
    )
    add_config_args(a)

    a = add_command(
        actions,
        "revoke",
        summary="吊销密钥 revoke a key",
        description="吊销一个密钥：此后用它签名的批次一律被拒绝。根节点的当前密钥须先轮换。\n"
        "Revoke a key: batches signed with it are refused from now on. Rotate the root's current key first.",
        examples=("tongban keys revoke KEY_ID --reason 'key leaked'",),
    )
    a.add_argument("target", nargs="?", metavar="KEY_ID", help="密钥编号 key id (tongban keys list)")
    a.add_argument("--reason", help="吊销原因（必填）reason for revoking (required)")
    a.add_argument(
        "--force",
        action="store_true",
        help="吊销节点当前使用的密钥（泄露时）revoke the key a node signs with now (after a compromise)",
    )
    add_config_args(a)

    a = add_command(
        actions,
        "repair",
        summary="密钥泄露后修复各库 repair the libraries after a key compromise",
        description="把已吊销密钥签名的批次所载入的记录移入历史，并重置相关游标，下一次同步从所有者重新拉取。\n"
        "Move the records loaded from batches the revoked key signed into history and reset the cursors,\n"
        "so the next sync re-pulls them from their owners.",
        examples=("tongban keys repair KEY_ID --dry-run", "tongban keys repair KEY_ID && tongban sync"),
    )
    a.add_argument("target", nargs="?", metavar="KEY_ID", help="已吊销的密钥编号 the revoked key id")
    a.add_argument(
        "--dry-run", action="store_true", help="只报告不改动 report what would change, change nothing"
    )
    add_config_args(a)

    a = add_command(
        actions,
        "rotate-data",
        summary="轮换节点库的数据密钥 rotate a library's data key",
        description="为节点的库生成新数据密钥（由主密钥加密保存），分批用新密钥重新加密所有加密字段与失败传输的内容；\n"
        "中断后再次运行即从中断处继续，完成前旧密钥仍可解密，完成后删除。\n"
        "Make a new data key for the node's library (wrapped by its master key) and re-seal every sealed\n"
        "field and failed-transfer payload under it in chunks; run again after an interruption to resume where\n"
        "it stopped. The old key still opens everything until the end, then it is deleted.",
        examples=("tongban keys rotate-data 630104", "tongban keys rotate-data 630104 --resume --json"),
    )
    a.add_argument("target", nargs="?", metavar="NODE", help="节点代码 node code")
    a.add_argument(
        "--resume",
        action="store_true",
        help="只续做未完成的重新加密，不再新建密钥 only finish an interrupted re-sealing, make no new key",
    )
    a.add_argument(
        "--chunk", type=int, default=1000, metavar="ROWS", help="每批行数 rows per transaction (1000)"
    )
    add_config_args(a)

    a = add_command(
        actions,
        "trust-list",
        summary="发布已签名的信任列表 publish the signed trust list",
        description="核对信任列表的签名（对照根节点库固定的根公钥）后原样输出或写入文件，供各办事窗口与离线核验使用。\n"
        "Check the trust list's signature (against the root key the root's library pinned) and print it as\n"
        "signed, or write it to a file, for offices and offline checkers.",
        examples=("tongban keys trust-list --out trust-list.json", "tongban keys trust-list > trust.json"),
    )
    a.add_argument(
        "--out", metavar="FILE", help="写入文件（默认输出到标准输出）write to FILE (default: stdout)"
    )
    add_config_args(a)

    p.set_defaults(
        out=None,
        func=cmd_keys,
        target=None,
        reason=None,
        dry_run=False,
        overlap=7 * 86400,
        resume=False,
        chunk=1000,
    )
