"""The exchange's subcommands of ``tongban``: init, sync, status, failed, keys.

Each takes the exchange config with ``--config FILE`` (default ``exchange.yaml``) or ``--workdir DIR``
(``DIR/exchange.yaml``). Exit codes: 0 ok; 1 rows were rejected or conflicted (kept as failed
transfers); 2 unusable input (config, arguments); 4 a run failed (a system or library down, a batch
rejected); 130 interrupted.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from schemas.errors import TongbanError
from tongban.cli import report_error

__all__ = ["register"]

EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE, EXIT_RUN_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 4, 130


def _config_path(args: argparse.Namespace) -> Path:
    if getattr(args, "config", None):
        return Path(args.config)
    if getattr(args, "workdir", None):
        return Path(args.workdir) / "exchange.yaml"
    return Path("exchange.yaml")


def _exchange(args: argparse.Namespace) -> Any:
    from tongban.core.config import load_exchange

    return load_exchange(_config_path(args))


def _json_line(out: TextIO, obj: object) -> None:
    from tongban.core.store import dumps

    out.write(dumps(obj) + "\n")


# -- init ---------------------------------------------------------------------------------------------


def initialize(ex: Any) -> dict[str, Any]:
    """Create the spool, every node's library (schema migrated) and keys, and the signed trust list."""
    from tongban.core import engine
    from tongban.core.trust import KeyStore, init_trust

    ex.spool.mkdir(parents=True, exist_ok=True)
    keys = KeyStore(ex.keys_dir)
    before = set(keys.nodes())
    libraries = []
    with engine.Libraries(ex) as libs:
        for code in ex.nodes:
            libs.get(code).migrate()
            libraries.append(code)
    init_trust(keys, list(ex.nodes), ex.trust_root, ex.trust_list)
    return {
        "config": str(ex.path),
        "nodes": len(ex.nodes),
        "libraries": len(libraries),
        "keys_created": len(set(keys.nodes()) - before),
        "trust_list": str(ex.trust_list),
        "edges": len(ex.edges),
    }


def cmd_init(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """tongban init: libraries, keys and trust list for every node of the config."""
    try:
        report = initialize(_exchange(args))
    except TongbanError as exc:
        report_error(exc, as_json=args.json, out=out)
        return EXIT_UNUSABLE
    if args.json:
        _json_line(out, report)
    else:
        out.write(
            f"已初始化 initialized {report['nodes']} 个节点 nodes, {report['libraries']} 个库 libraries, "
            f"新建密钥 new keys {report['keys_created']}, 信任列表 trust list {report['trust_list']}, "
            f"{report['edges']} 条同步边 edges\n"
        )
    return EXIT_OK


# -- sync ---------------------------------------------------------------------------------------------


def _select_edges(ex: Any, args: argparse.Namespace) -> list[Any]:
    edges = list(ex.edges)
    if args.edges:
        wanted = [ex.edge(e) for e in args.edges]  # unknown ids raise a ConfigError
        edges = [e for e in edges if e in wanted]
    if args.dataset:
        edges = [e for e in edges if e.dataset == args.dataset]
    if args.node:
        edges = [e for e in edges if e.target == args.node or e.source == args.node]
    return edges


def cmd_sync(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """tongban sync: run edges through the engine in this process (sources before their targets).

    Ctrl-C (or SIGTERM) stops after the current batch: what committed stays, exit 130; a second
    Ctrl-C stops at once (the open transaction rolls back). An edge another sync holds is refused
    (EDGE_BUSY, exit 4) unless ``--wait`` gives it time.
    """
    from tongban.core import engine
    from tongban.core.engine.interrupt import CancelToken, Interrupted, signals_cancel

    try:
        ex = _exchange(args)
        edges = _select_edges(ex, args)
    except TongbanError as exc:
        report_error(exc, as_json=args.json, out=out)
        return EXIT_UNUSABLE
    token = CancelToken()
    progress = None
    if not args.json and sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rows]:,} 行 rows"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        progress.start()
    overall = progress.add_task("同步 syncing", total=len(edges), rows=0) if progress else None
    code = EXIT_OK
    done = 0
    try:
        with signals_cancel(token):
            for edge in edges:
                token.check()
                rows_seen = 0

                def seen(n: int, label: str = f"同步 syncing {edge.id}") -> None:
                    nonlocal rows_seen
                    rows_seen += n
                    if progress is not None and overall is not None:
                        progress.update(overall, description=label, rows=rows_seen)

                try:
                    summary = engine.sync_edge(
                        ex, edge.id, full=args.full, on_rows=seen, cancel=token, lock_wait=args.wait
                    )
                except TongbanError as exc:
                    code = EXIT_RUN_FAILED
                    if args.json:
                        _json_line(out, {"edge": edge.id, "ok": False, "error": exc.as_dict()})
                    else:
                        where = f" [{exc.where}]" if exc.where else ""
                        out.write(
                            f"{edge.id}: 失败 failed {exc.code}: {exc.message_zh} / {exc.message_en}{where}\n"
                        )
                    continue
                finally:
                    if progress is not None and overall is not None:
                        progress.advance(overall)
                done += 1
                failed = summary["rejected"] + summary["conflicts"] + len(summary["quarantined"])
                if failed and code == EXIT_OK:
                    code = EXIT_REJECTED
                if args.json:
                    _json_line(out, {"edge": edge.id, "ok": True, **_brief(summary)})
                else:
                    _print_summary(out, edge.id, summary)
            token.check()
    except (Interrupted, KeyboardInterrupt):
        if progress is not None:
            progress.stop()
            progress = None
        message = (
            f"已中断：{done} 条边已完成，已提交的批次完整保留，重新运行即从游标继续 / "
            f"interrupted: {done} edges done; committed batches are whole, a rerun resumes from the cursor"
        )
        if args.json:
            _json_line(out, {"interrupted": True, "edges_done": done})
        print(message, file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if progress is not None:
            progress.stop()
    return code


def _print_summary(out: TextIO, edge_id: str, summary: dict[str, Any]) -> None:
    out.write(
        f"{edge_id}: {summary['rows']} 行 rows → 新增 inserted {summary['inserted']}, "
        f"更新 updated {summary['updated']}, 未变 unchanged {summary['unchanged']}, "
        f"旧版本 stale {summary['stale']}, 冲突 conflicts {summary['conflicts']}, "
        f"拒绝 rejected {summary['rejected']}\n"
    )
    for q in summary["quarantined"]:
        out.write(
            f"  隔离文件 quarantined file {q['file']} ({q['code']})：已移入 failed/ 并记为失败传输 "
            f"moved to failed/ and kept as a failed transfer\n"
        )
    for f in summary["left"]:
        out.write(f"  留待下次 left for the next run: {f['file']}（读取后被改动 {f['why']}）\n")


def _brief(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("batches", "rows", "inserted", "updated", "unchanged", "stale", "conflicts", "rejected")
    return {**{k: summary[k] for k in keys}, "quarantined": summary["quarantined"], "left": summary["left"]}


# -- status -------------------------------------------------------------------------------------------


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "从未 never"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def cmd_status(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """tongban status: every edge's rows, failures, last success and lag."""
    from tongban.core import engine

    try:
        ex = _exchange(args)
        rows = engine.status(ex)
    except TongbanError as exc:
        report_error(exc, as_json=args.json, out=out)
        return EXIT_UNUSABLE
    if args.dataset:
        rows = [r for r in rows if r["dataset"] == args.dataset]
    if args.json:
        for r in rows:
            _json_line(out, r)
        return EXIT_OK
    from tongban.demo.runner import table_line

    widths = (
        ("边 edge", 40, False),
        ("已载入 loaded", 14, True),
        ("失败 failed", 12, True),
        ("待处理 open", 12, True),
        ("延迟 lag", 10, True),
        ("  最近成功 last success", 0, False),
    )
    out.write(table_line([w[0] for w in widths], widths) + "\n")
    for r in rows:
        last = r["last_success"][:19].replace("T", " ") if r["last_success"] else "-"
        values = [
            r["edge"],
            r["rows_loaded"],
            r["rows_failed"],
            r["open_failures"],
            _ago(r["lag_seconds"]),
            f"  {last}",
        ]
        out.write(table_line(values, widths) + "\n")
        if r["last_error"]:
            out.write(f"    最近错误 last error: {r['last_error']}\n")
    return EXIT_OK


# -- failed -------------------------------------------------------------------------------------------


def _failure_libraries(ex: Any, node: str | None) -> list[tuple[str, Any]]:
    from tongban.core import engine

    codes = [node] if node else list(ex.nodes)
    libs = engine.Libraries(ex)
    out = []
    for code in codes:
        ex.node(code)
        lib = libs.get(code)
        lib.migrate()
        out.append((code, lib))
    return out


def cmd_failed(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """tongban failed list|show: failed transfers kept in the libraries."""
    from tongban.core.masking import mask_any, mask_row

    try:
        ex = _exchange(args)
        if args.action == "show":
            node, _, ident = (args.id or "").partition(":")
            if not ident.isdigit():
                raise TongbanError(
                    "FAILED_ID",
                    "编号应为 节点:编号，如 630104:12",
                    "the id is NODE:NUMBER, e.g. 630104:12",
                    args.id or "",
                )
            ((_, lib),) = _failure_libraries(ex, node)
            row = lib.failure(int(ident))
            if row is None:
                raise TongbanError("FAILED_NOT_FOUND", "没有这条失败记录", "no such failed transfer", args.id)
            payload = json.loads(row["payload"]) if row["payload"] else None
            key = row["row_key"]
            if row["kind"] == "row" and isinstance(payload, dict):
                payload = mask_row(row["dataset"], payload, reveal=args.reveal)
            elif not args.reveal:
                payload = mask_any(payload)
            if key:
                field = schema_key(row["dataset"])
                key = mask_row(row["dataset"], {field: key}, reveal=args.reveal)[field]
            row = {**row, "payload": payload, "row_key": key, "id": f"{node}:{row['id']}"}
            if not args.reveal:
                row = {
                    k: mask_any(v) if k in ("message_zh", "message_en", "where") else v
                    for k, v in row.items()
                }
            row.pop("digest", None)
            if args.json:
                _json_line(out, row)
            else:
                for k, v in row.items():
                    if k == "payload" and isinstance(v, dict):
                        out.write("payload:\n")
                        for pk, pv in v.items():
                            out.write(f"  {pk}: {pv}\n")
                    else:
                        out.write(f"{k}: {v}\n")
            return EXIT_OK
        since = _dt.datetime.fromisoformat(args.since).replace(tzinfo=_dt.UTC) if args.since else None
        shown = 0
        for code, lib in _failure_libraries(ex, args.node):
            rows = lib.failures(
                dataset=args.dataset,
                code=args.code,
                kind=args.kind,
                state=None if args.state == "all" else args.state,
                since=since,
                limit=args.limit - shown if args.limit else None,
            )
            for r in rows:
                shown += 1
                brief = {
                    "id": f"{code}:{r['id']}",
                    "kind": r["kind"],
                    "state": r["state"],
                    "edge": r["edge"],
                    "dataset": r["dataset"],
                    "row_number": r["row_number"],
                    "key": r["row_key"],
                    "codes": r["codes"].split(","),
                    "message_zh": r["message_zh"],
                    "message_en": r["message_en"],
                    "attempts": r["attempts"],
                    "created_at": r["created_at"].isoformat() if r["created_at"] else None,
                }
                if brief["key"]:
                    brief["key"] = mask_row(
                        r["dataset"], {schema_key(r["dataset"]): brief["key"]}, reveal=args.reveal
                    )[schema_key(r["dataset"])]
                if not args.reveal:
                    brief["message_zh"] = mask_any(brief["message_zh"])
                    brief["message_en"] = mask_any(brief["message_en"])
                if args.json:
                    _json_line(out, brief)
                else:
                    row_no = (
                        f" 第{brief['row_number']}行 row {brief['row_number']}" if brief["row_number"] else ""
                    )
                    out.write(
                        f"{brief['id']}\t{brief['kind']}\t{brief['state']}\t{brief['edge']}{row_no}\t"
                        f"{brief['key'] or '-'}\t{','.join(brief['codes'])}\t{brief['message_zh']} / {brief['message_en']}\n"
                    )
            if args.limit and shown >= args.limit:
                break
        if not args.json:
            out.write(f"共 {shown} 条 failed transfers shown\n")
    except TongbanError as exc:
        report_error(exc, as_json=args.json, out=out)
        return EXIT_UNUSABLE
    return EXIT_OK


def schema_key(dataset: str) -> str:
    import schemas

    return schemas.get(dataset).key if dataset in schemas.DATASETS else "key"


# -- keys ---------------------------------------------------------------------------------------------


def cmd_keys(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """tongban keys list|rotate|revoke: node signing keys and the trust list."""
    from tongban.core import trust

    try:
        ex = _exchange(args)
        store = trust.KeyStore(ex.keys_dir)
        if args.action == "rotate":
            if not args.target:
                raise TongbanError(
                    "KEYS_ARGUMENT", "请指定节点代码", "name the node to rotate", "keys rotate"
                )
            ex.node(args.target)
            new = trust.rotate(store, ex.trust_list, args.target, overlap_seconds=args.overlap)
            _say(out, args.json, {"node": args.target, "key_id": new}, f"{args.target} 新密钥 new key {new}")
        elif args.action == "revoke":
            if not args.target:
                raise TongbanError(
                    "KEYS_ARGUMENT", "请指定密钥编号", "name the key id to revoke", "keys revoke"
                )
            trust.revoke(store, ex.trust_list, args.target, args.reason or "")
            _say(out, args.json, {"revoked": args.target}, f"已吊销 revoked {args.target}")
        elif args.action == "repair":
            if not args.target:
                raise TongbanError(
                    "KEYS_ARGUMENT",
                    "请指定已吊销的密钥编号",
                    "name the revoked key id to repair",
                    "keys repair",
                )
            from tongban.core import engine
            from tongban.core.repair import repair_key

            report = repair_key(ex, args.target, engine.Libraries(ex).get, dry_run=args.dry_run)
            if args.json:
                _json_line(out, report)
            else:
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
        else:
            tl = trust.TrustList.load(ex.trust_list)
            for e in tl.entries:
                entry = e.to_dict()
                if args.json:
                    _json_line(out, entry)
                else:
                    state = "吊销 revoked" if entry.get("revoked_at") else "有效 valid"
                    out.write(
                        f"{entry['node']}\t{entry['key_id']}\t{state}\t{entry.get('valid_from')} → "
                        f"{entry.get('valid_until') or '长期 open'}\n"
                    )
    except TongbanError as exc:
        report_error(exc, as_json=args.json, out=out)
        return EXIT_UNUSABLE
    return EXIT_OK


def _say(out: TextIO, as_json: bool, obj: dict[str, Any], text: str) -> None:
    if as_json:
        _json_line(out, obj)
    else:
        out.write(text + "\n")


# -- parser -------------------------------------------------------------------------------------------


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="交换配置 exchange config (default exchange.yaml)")
    p.add_argument("--workdir", metavar="DIR", help="使用 DIR/exchange.yaml use DIR/exchange.yaml")
    p.add_argument("--json", action="store_true", help="JSON 输出，每行一个对象 one JSON object per line")


def register(sub: Any) -> None:
    """Add init, sync, status, failed and keys to the ``tongban`` parser."""
    p = sub.add_parser(
        "init",
        help="初始化库、密钥与信任列表 create libraries, keys and the trust list",
        description="为配置中的每个节点建库、生成签名密钥并签发信任列表。"
        "Create every node's library and signing key and sign the trust list.",
    )
    _config_args(p)
    p.set_defaults(func=cmd_init)

    p = sub.add_parser(
        "sync",
        help="运行同步 run sync edges in this process",
        description="按顺序运行同步边（抽取、校验、签封、载入）。Run sync edges: extract, validate, seal, load.",
    )
    p.add_argument("edges", nargs="*", metavar="EDGE", help="边编号 edge ids, e.g. population.630104.630000")
    p.add_argument("--dataset", help="只同步该数据集 only this dataset")
    p.add_argument("--node", help="只同步进出该节点的边 only edges into or out of this node")
    p.add_argument(
        "--full", action="store_true", help="全量刷新（忽略游标）full refresh, ignoring the cursor"
    )
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="边被另一个同步占用时最多等待的秒数 wait this long for an edge another sync holds "
        "(default 0: refuse at once)",
    )
    _config_args(p)
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser(
        "status",
        help="查看同步状态 show every edge's rows, failures and lag",
        description="每条边的已载入行数、失败数、最近成功时间与延迟。Rows, failures, last success and lag per edge.",
    )
    p.add_argument("--dataset", help="只看该数据集 only this dataset")
    _config_args(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "failed",
        help="查看失败传输 list or show failed transfers",
        description="列出或查看失败传输（敏感字段已脱敏）。List or show failed transfers (masked).",
    )
    p.add_argument("action", choices=("list", "show"))
    p.add_argument("id", nargs="?", metavar="NODE:ID", help="show 的编号 id for show, e.g. 630104:12")
    p.add_argument("--node", help="节点 node")
    p.add_argument("--dataset", help="数据集 dataset")
    p.add_argument("--code", help="规则代码 rule code, e.g. ID_CHECKSUM")
    p.add_argument("--kind", choices=("row", "batch", "run", "file"), help="类型 kind")
    p.add_argument("--state", default="open", help="状态 state: open | resolved | discarded | all")
    p.add_argument("--since", metavar="DATE", help="起始时间 since (ISO date/time, UTC)")
    p.add_argument("--limit", type=int, default=0, help="最多条数 at most N")
    p.add_argument("--reveal", action="store_true", help="不脱敏 show unmasked values (operators)")
    _config_args(p)
    p.set_defaults(func=cmd_failed)

    p = sub.add_parser(
        "keys",
        help="节点密钥与信任列表 node keys and the trust list",
        description="列出、轮换或吊销节点签名密钥；密钥泄露后修复各库（repair）。"
        "List, rotate or revoke node signing keys; repair the libraries after a key compromise.",
    )
    p.add_argument("action", choices=("list", "rotate", "revoke", "repair"))
    p.add_argument(
        "target",
        nargs="?",
        metavar="NODE|KEY_ID",
        help="rotate: 节点 node; revoke, repair: 密钥编号 key id",
    )
    p.add_argument("--reason", help="吊销原因 reason for revoking")
    p.add_argument(
        "--dry-run", action="store_true", help="repair: 只报告不改动 report what would change, change nothing"
    )
    p.add_argument(
        "--overlap", type=int, default=7 * 86400, metavar="SECONDS", help="旧密钥重叠期 old key overlap"
    )
    _config_args(p)
    p.set_defaults(func=cmd_keys)
