"""``tongban sync``: run edges through the engine in this process, sources before their targets.

Text output names only the edges where something happened (rows inserted, updated, stale, conflicting
or rejected, files quarantined or left, the run failed), then one summary line; ``--verbose`` names every
edge. ``--json`` prints one object per edge run, whatever happened.

Exit: 0 ok; 1 rows rejected or conflicting, or files quarantined (kept as failed transfers); 2 unusable
config or arguments; 4 a run failed (a system or library down, a batch refused, an edge busy);
130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

from schemas.errors import TongbanError
from tongban.cli.common import (
    ExitCode,
    add_command,
    add_config_args,
    argument_error,
    check_dataset,
    did_you_mean,
    json_line,
    load_config,
    report_error,
)

__all__ = ["changed", "cmd_sync", "register", "select_edges"]

#: Counters of a run that mean something happened to the target (``unchanged`` is not one of them).
CHANGES = ("inserted", "updated", "stale", "conflicts", "rejected")


def select_edges(ex: Any, args: argparse.Namespace) -> list[Any]:
    """The edges the arguments name, in the exchange's order (sources before targets).

    Unknown edges, datasets and nodes are coded errors with a did-you-mean; so is a selection that
    matches no edge at all (rather than a sync that silently does nothing).
    """
    edges = list(ex.edges)
    if args.edges:
        wanted = [ex.edge(e) for e in args.edges]  # unknown ids: EDGE_UNKNOWN
        edges = [e for e in edges if e in wanted]
    if args.dataset:
        check_dataset(args.dataset)
        edges = [e for e in edges if e.dataset == args.dataset]
    if args.node:
        if args.node not in ex.nodes and args.node not in ex.systems:
            zh, en = did_you_mean(args.node, [*ex.nodes, *ex.systems])
            raise TongbanError(
                "NODE_UNKNOWN", f"未知节点 {args.node}{zh}", f"unknown node {args.node}{en}", "--node"
            )
        edges = [e for e in edges if args.node in (e.target, e.source)]
    if not edges and (args.edges or args.dataset or args.node):
        asked = " ".join(
            f"{flag} {value}" for flag, value in (("--dataset", args.dataset), ("--node", args.node)) if value
        )
        raise argument_error(
            "sync",
            " ".join([*args.edges, asked]).strip(),
            "没有同步边符合这些条件（tongban status 列出全部边）",
            "no edge matches these arguments (tongban status lists every edge)",
        )
    return edges


def changed(summary: dict[str, Any]) -> bool:
    """Whether a run did anything worth a line: rows changed or refused, files quarantined or left."""
    return any(summary[k] for k in CHANGES) or bool(summary["quarantined"]) or bool(summary["left"])


@contextlib.contextmanager
def _one_sync_at_a_time(ex: Any, wait: float) -> Iterator[None]:
    """One ``tongban sync`` per exchange at a time: a second one waits ``wait`` seconds, then SYNC_BUSY
    (before it touches any edge, so it cannot make the first fail on the edges it reaches first)."""
    from tongban.core.engine import spool

    try:
        with spool.edge_lock(ex.spool, "_tongban_sync", wait=wait):
            yield
    except TongbanError as exc:
        if exc.code != "EDGE_BUSY" or exc.where != "_tongban_sync":
            raise
        raise TongbanError(
            "SYNC_BUSY",
            "另一个 tongban sync 正在运行本交换的同步：等它结束，或用 --wait 秒数 排队",
            "another `tongban sync` is running this exchange: let it finish, or queue with --wait SECONDS",
            str(ex.spool),
        ) from None


def _seconds(text: str) -> float:
    """argparse type: a number of seconds, zero or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0:  # (NaN too)
        raise argparse.ArgumentTypeError(f"must be zero or more seconds: {text!r}")
    return value


@contextlib.contextmanager
def _delivered(held: Any) -> Iterator[None]:
    """Raise the Ctrl-C held while the command started (now the run's signal handlers are in place)."""
    if held is not None:
        held.deliver()
    yield


def cmd_sync(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """tongban sync: run edges through the engine in this process (sources before their targets).

    Ctrl-C (or SIGTERM) stops after the current batch: what committed stays, exit 130; a second
    Ctrl-C stops at once (the open transaction rolls back). An edge another sync holds is refused
    (EDGE_BUSY, exit 4) unless ``--wait`` gives it time.
    """
    from tongban.core import engine
    from tongban.core.engine.interrupt import CancelToken, Interrupted, signals_cancel

    # Ctrl-C is held (noted, not raised) from start-up until the run has taken the signals over: a
    # KeyboardInterrupt inside an import could leave the import lock held and the run's threads hung.
    held = getattr(args, "interrupt", None)

    try:
        ex = load_config(args)
        edges = select_edges(ex, args)
    except TongbanError as exc:
        return report_error(exc, as_json=args.json, out=out)
    token = CancelToken()
    bar = _progress_bar(enabled=not args.json)
    overall = bar.add_task("同步 syncing", total=len(edges), rows=0) if bar else None
    code = ExitCode.OK
    totals = {"edges": 0, "changed": 0, "failed": 0, "rows": 0, "unchanged": 0, "quarantined": 0}
    totals.update(dict.fromkeys(CHANGES, 0))
    done = 0
    started = time.monotonic()
    libs = engine.Libraries(ex)
    try:
        with signals_cancel(token), _delivered(held), _one_sync_at_a_time(ex, args.wait):
            for edge in edges:
                token.check()
                rows_seen = 0

                def seen(n: int, label: str = f"同步 syncing {edge.id}") -> None:
                    nonlocal rows_seen
                    rows_seen += n
                    if bar is not None and overall is not None:
                        bar.update(overall, description=label, rows=rows_seen)

                totals["edges"] += 1
                try:
                    summary = engine.sync_edge(
                        ex,
                        edge.id,
                        full=args.full,
                        on_rows=seen,
                        cancel=token,
                        lock_wait=args.wait,
                        libs=libs,
                    )
                except TongbanError as exc:
                    # A run that failed is exit 4, whatever its code: the edge did not sync.
                    code = ExitCode.RUN_FAILED
                    totals["failed"] += 1
                    if args.json:
                        json_line(out, {"edge": edge.id, "ok": False, "error": exc.as_dict()})
                    else:
                        where = f" [{exc.where}]" if exc.where else ""
                        out.write(
                            f"{edge.id}: 失败 failed {exc.code}: {exc.message_zh} / {exc.message_en}{where}\n"
                        )
                    continue
                finally:
                    if bar is not None and overall is not None:
                        bar.advance(overall)
                for k in ("rows", "unchanged", *CHANGES):
                    totals[k] += summary[k]
                done += 1
                totals["quarantined"] += len(summary["quarantined"])
                totals["changed"] += changed(summary)
                refused = summary["rejected"] + summary["conflicts"] + len(summary["quarantined"])
                if refused and code == ExitCode.OK:
                    code = ExitCode.REJECTED
                if args.json:
                    json_line(out, {"edge": edge.id, "ok": True, **_brief(summary)})
                elif args.verbose or changed(summary):
                    _print_edge(out, edge.id, summary)
            token.check()
    except TongbanError as exc:  # SYNC_BUSY: another sync runs this exchange
        return report_error(exc, as_json=args.json, out=out)
    except (Interrupted, KeyboardInterrupt):
        if bar is not None:
            bar.stop()
            bar = None
        message = (
            f"已中断：{done} 条边已完成，已提交的批次完整保留，重新运行即从游标继续 / "
            f"interrupted: {done} edges done; committed batches are whole, a rerun resumes from the cursor"
        )
        if args.json:
            json_line(out, {"interrupted": True, "edges_done": done})
        print(message, file=sys.stderr)
        return ExitCode.INTERRUPTED
    finally:
        if bar is not None:
            bar.stop()
        libs.dispose()
    if not args.json:
        _print_totals(out, totals, time.monotonic() - started)
    return code


def _progress_bar(*, enabled: bool) -> Any:
    """A bar of edges done and rows read on stderr, when it is a terminal."""
    if not enabled or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rows]:,} 行 rows"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    bar.start()
    return bar


def _print_edge(out: TextIO, edge_id: str, summary: dict[str, Any]) -> None:
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


def _print_totals(out: TextIO, t: dict[str, int], seconds: float) -> None:
    quiet = t["edges"] - t["changed"] - t["failed"]
    extra = f", 冲突 conflicts {t['conflicts']}" if t["conflicts"] else ""
    extra += f", 隔离文件 quarantined files {t['quarantined']}" if t["quarantined"] else ""
    out.write(
        f"同步 synced {t['edges']} 条边 edges（{t['changed']} 有变化 changed, {quiet} 无变化 nothing new, "
        f"{t['failed']} 失败 failed）: 读取 read {t['rows']} 行 rows, 新增 inserted {t['inserted']}, "
        f"更新 updated {t['updated']}, 未变 unchanged {t['unchanged']}, 拒绝 rejected {t['rejected']}"
        f"{extra}, 失败的边 failed edges {t['failed']}, 用时 time {seconds:.1f}s\n"
    )


def _brief(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("batches", "rows", "inserted", "updated", "unchanged", "stale", "conflicts", "rejected")
    return {**{k: summary[k] for k in keys}, "quarantined": summary["quarantined"], "left": summary["left"]}


def register(sub: Any) -> None:
    """Add ``sync`` to the ``tongban`` parser."""
    p = add_command(
        sub,
        "sync",
        summary="运行同步 run sync edges in this process",
        description="在本进程中按顺序运行同步边（抽取、校验、签封、载入），来源先于目标。\n"
        "只列出有变化的边（新增、更新、拒绝、隔离的文件、失败……），最后一行汇总；--verbose 列出每条边。\n"
        "Run sync edges in this process (extract, validate, seal, load), sources before their targets.\n"
        "Only edges where something happened get a line (inserted, updated, rejected, quarantined files,\n"
        "failed, ...), then one summary line; --verbose lists every edge, --json prints one object per edge.\n\n"
        "退出码 exit: 0 ok, 1 有拒绝或隔离 rows rejected or files quarantined, 2 配置或参数不可用 unusable\n"
        "config or arguments, 4 有运行失败 a run failed, 130 已中断 interrupted (Ctrl-C; rerun resumes).",
        examples=(
            "tongban sync --workdir demo",
            "tongban sync --dataset population --node 630104",
            "tongban sync population.630104-gongan.630104 --full",
            "tongban sync --json --wait 60",
        ),
    )
    p.add_argument(
        "edges", nargs="*", metavar="EDGE", help="边编号 edge ids, e.g. population.630104-gongan.630104"
    )
    p.add_argument("--dataset", help="只同步该数据集 only this dataset: population | business | license")
    p.add_argument(
        "--node", help="只同步进出该节点（或本地系统）的边 only edges into or out of this node (or system)"
    )
    p.add_argument(
        "--full", action="store_true", help="全量刷新（忽略游标）full refresh, ignoring the cursor"
    )
    p.add_argument(
        "--wait",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="边被另一个同步占用时最多等待的秒数，0 为立即拒绝 wait this long for an edge another sync "
        "holds; 0 refuses at once",
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="每条边一行，含无变化的边 a line for every edge"
    )
    add_config_args(p)
    p.set_defaults(func=cmd_sync, holds_interrupt=True)
