"""What every command of ``tongban`` shares: the help layout, the config arguments, one way to report
a coded error, JSON lines, text tables, progress on a terminal, and checks of argument values.

Exit codes are :class:`schemas.errors.ExitCode` (re-exported here); an error exits with the code the
catalogue gives it (``exc.exit_code``).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import schemas
from schemas.errors import ExitCode, TongbanError
from tongban.core.display import table_line

__all__ = [
    "ExitCode",
    "HelpFormatter",
    "add_command",
    "add_config_args",
    "argument_error",
    "check_choice",
    "check_dataset",
    "closest",
    "config_path",
    "did_you_mean",
    "json_line",
    "load_config",
    "progress",
    "report_error",
    "spinner",
    "table_line",
]


# -- help -------------------------------------------------------------------------------------------


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples kept as written; every option that has a default shows it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or default == []
            or not (action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE))
        ):
            return text
        return f"{text} (默认 default: %(default)s)"


def add_command(
    sub: Any, name: str, *, summary: str, description: str, examples: Iterable[str]
) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` describes itself, shows its defaults and ends with examples."""
    lines = "\n".join(f"  {e}" for e in examples)
    return sub.add_parser(  # type: ignore[no-any-return]
        name,
        help=summary,
        description=description,
        epilog=f"示例 examples:\n{lines}",
        formatter_class=HelpFormatter,
    )


# -- the exchange config ----------------------------------------------------------------------------


def add_config_args(p: argparse.ArgumentParser) -> None:
    """``--config FILE`` / ``--workdir DIR`` and ``--json``: what every exchange command takes."""
    p.add_argument(
        "--config",
        metavar="FILE",
        help="交换配置 exchange config (默认 default: ./exchange.yaml)",
    )
    p.add_argument("--workdir", metavar="DIR", help="使用 DIR/exchange.yaml use DIR/exchange.yaml")
    p.add_argument("--json", action="store_true", help="JSON 输出，每行一个对象 one JSON object per line")


def config_path(args: argparse.Namespace) -> Path:
    """``--config``, else ``--workdir``/exchange.yaml, else ./exchange.yaml (both: ARGUMENT_INVALID)."""
    if getattr(args, "config", None) and getattr(args, "workdir", None):
        raise TongbanError(
            "ARGUMENT_INVALID",
            "--config 与 --workdir 只能给一个（--workdir DIR 即 --config DIR/exchange.yaml）",
            "give --config or --workdir, not both (--workdir DIR means --config DIR/exchange.yaml)",
            "--config/--workdir",
        )
    if getattr(args, "config", None):
        return Path(args.config)
    if getattr(args, "workdir", None):
        return Path(args.workdir) / "exchange.yaml"
    return Path("exchange.yaml")


def load_config(args: argparse.Namespace) -> Any:
    """The exchange named by the arguments (a ConfigError when it cannot be used).

    Loaded leniently: a system whose mapping cannot be used is named on stderr, and only its own edges
    fail (when they run); every other edge and every read-only command go on.
    """
    from tongban.core.config import load_exchange

    ex = load_exchange(config_path(args), lenient=True)
    for name, exc in ex.broken.items():
        where = f"  [{exc.where}]" if exc.where else ""
        print(
            f"警告 warning {exc.code}: 本地系统 {name} 的映射不可用，其同步边将失败 / the mapping of system {name} "
            f"cannot be used; its edges will fail: {exc.message_en}{where}",
            file=sys.stderr,
        )
    return ex


@contextlib.contextmanager
def node_library(args: argparse.Namespace) -> Iterator[tuple[Any, str, Any]]:
    """The exchange, the node (``--node``, else the root) and its library brought to the current schema,
    for the commands that act on one node's library; the library is closed afterwards."""
    from tongban.core import engine

    ex = load_config(args)
    node = args.node or ex.trust_root
    ex.node(node)
    with engine.Libraries(ex) as libs:
        lib = libs.get(node)
        lib.migrate()
        yield ex, node, lib


# -- output -----------------------------------------------------------------------------------------


def report_error(
    exc: TongbanError, *, as_json: bool, out: TextIO, exit_code: ExitCode | None = None
) -> ExitCode:
    """One coded bilingual line on stderr (and a JSON object on ``out`` with ``--json``).

    Returns the exit code the catalogue gives the error's code (2 for unusable input, 4 for a system or
    library that cannot be reached, ...), unless the command says what its errors mean (``exit_code``).
    """
    if as_json:
        print(json.dumps({"error": exc.as_dict()}, ensure_ascii=False), file=out)
    where = f"  [{exc.where}]" if exc.where else ""
    print(f"错误 error {exc.code}: {exc.message_zh} / {exc.message_en}{where}", file=sys.stderr)
    return exc.exit_code if exit_code is None else exit_code


def json_line(out: TextIO, obj: object) -> None:
    """One JSON object on one line (dates and times as ISO text)."""
    from tongban.core.store import dumps

    out.write(dumps(obj) + "\n")


def progress(enabled: bool) -> Any:
    """A rich progress bar counting rows on stderr when it is a terminal; None otherwise."""
    if not enabled or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,} 行 rows"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def spinner(message: str) -> contextlib.AbstractContextManager[object]:
    """A spinner on stderr while long work runs, when stderr is a terminal."""
    if not sys.stderr.isatty():
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(message)


# -- argument values --------------------------------------------------------------------------------


def closest(word: str, known: Iterable[str]) -> str | None:
    """The known word most like ``word``, if one is close enough."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, known: Iterable[str]) -> tuple[str, str]:
    """(zh, en) suffixes naming the closest known word, else a few known words.

    >>> did_you_mean("populaton", ["population", "business", "license"])[1]
    " — did you mean 'population'?"
    >>> did_you_mean("x", ["open", "all"])[1]
    ' (known: open, all)'
    """
    known = list(known)
    close = closest(word, known)
    if close:
        return f"，是否应为 '{close}'？", f" — did you mean '{close}'?"
    if not known:
        return "", ""
    shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
    return f"（可用：{shown}）", f" (known: {shown})"


def argument_error(option: str, value: object, zh: str, en: str) -> TongbanError:
    """ARGUMENT_INVALID for ``option``'s ``value``: why, in both languages (exit 2)."""
    return TongbanError("ARGUMENT_INVALID", f"{option} {value}：{zh}", f"{option} {value}: {en}", option)


def check_choice(option: str, value: str, known: Iterable[str]) -> str:
    """``value`` if it is one of ``known``; ARGUMENT_INVALID with a did-you-mean otherwise."""
    known = list(known)
    if value in known:
        return value
    zh, en = did_you_mean(value, known)
    raise argument_error(option, repr(value), f"未知取值{zh}", f"unknown value{en}")


def check_dataset(name: str) -> str:
    """``name`` if it is a dataset; DATASET_UNKNOWN (as ``tongban validate`` says it) otherwise."""
    if name in schemas.DATASETS:
        return name
    close = closest(name, schemas.DATASETS)
    zh, en = (f"，是否应为 '{close}'？", f" — did you mean '{close}'?") if close else ("", "")
    known = ", ".join(schemas.DATASETS)
    raise TongbanError(
        "DATASET_UNKNOWN",
        f"未知数据集 {name}（可用：{known}）{zh}",
        f"unknown dataset {name} (known: {known}){en}",
        "--dataset",
    )
