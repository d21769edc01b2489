"""The ``tongban`` command line: one module per command group.

- :mod:`~tongban.cli.common` the help layout, config arguments, coded errors, JSON lines, tables, progress
- :mod:`~tongban.cli.init`, :mod:`~tongban.cli.sync`, :mod:`~tongban.cli.status`,
  :mod:`~tongban.cli.failed`, :mod:`~tongban.cli.keys` the exchange's commands (``--config``/``--workdir``)
- :mod:`~tongban.cli.errors` the error catalogue; :mod:`~tongban.cli.validate` validate and schema
- :mod:`~tongban.cli.demo` demo and generate (the only modules importing :mod:`tongban.demo`)

Exit codes are :class:`schemas.errors.ExitCode`: 0 ok, 1 rows rejected or files quarantined, 2 unusable
input (config, arguments, mapping, file), 3 internal error, 4 a run failed (a system or library down, a
batch refused, an edge busy), 130 interrupted. An error exits with the code its catalogue entry gives
(``tongban errors CODE``). Errors are one bilingual line with a stable code and where the problem was
found, never a stack trace (``TONGBAN_DEBUG=1`` shows it).

Importing this package is cheap on purpose: the command modules (and through them the contracts and
pyarrow) load inside :func:`main`, under :class:`HeldInterrupt`, so a Ctrl-C however early ends with 130,
not a stack trace or a hang.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

TYPE_CHECKING = False  # (not typing's: nothing but the interpreter's own modules loads before the hold)
if TYPE_CHECKING:
    import argparse

__all__ = ["HeldInterrupt", "build_parser", "main", "run"]

#: The command groups (modules of this package), in the order ``tongban --help`` lists them.
COMMANDS = (
    "init",
    "sync",
    "status",
    "failed",
    "operators",
    "keys",
    "serve",
    "offices",
    "verify_offline",
    "audit",
    "errors",
    "validate",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    import argparse
    from importlib import import_module

    from tongban import __version__
    from tongban.cli.common import HelpFormatter

    parser = argparse.ArgumentParser(
        prog="tongban",
        description="通办 Tongban: 跨区域数据共享交换 cross-region data-sharing exchange hub.\n"
        "每个命令的说明与示例 each command's help and examples: tongban COMMAND --help",
        epilog="退出码 exit codes: 0 成功 ok, 1 有被拒绝的行或被隔离的文件 rows rejected or files quarantined,\n"
        "2 输入不可用 unusable input, 3 内部错误 internal error, 4 运行失败 a run failed, 130 已中断 interrupted.\n"
        "查询错误代码 look up an error code: tongban errors CODE",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tongban {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        import_module(f"tongban.cli.{name}").register(sub)
    return parser


class HeldInterrupt:
    """Holds Ctrl-C (SIGINT) while modules load: noted, not raised, until :meth:`release` or :meth:`deliver`.

    Python raises KeyboardInterrupt between any two bytecodes, importlib's own included; one raised inside
    importlib's bookkeeping can leave the import lock held, and a thread that imports later (a sync's
    reader and checker do) then waits on it forever. So the command's start-up runs held, and a Ctrl-C
    that came meanwhile is raised at a safe point. Outside the main thread it holds nothing.
    """

    def __init__(self) -> None:
        self.noted = False
        self._previous: object = None
        self._held = False
        try:
            self._previous = signal.signal(signal.SIGINT, self._note)
            self._held = True
        except ValueError:  # not the main thread: signals go elsewhere
            pass

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.noted = True

    def deliver(self) -> None:
        """Raise the Ctrl-C that came while held (KeyboardInterrupt), if one did."""
        if self.noted:
            self.noted = False
            raise KeyboardInterrupt

    def restore(self) -> None:
        """Put back the handler found on entry (Ctrl-C raises again)."""
        if self._held:
            self._held = False
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]

    def release(self) -> None:
        """:meth:`restore`, then :meth:`deliver`."""
        self.restore()
        self.deliver()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tongban`` command: its exit code (:class:`schemas.errors.ExitCode`).

    A command whose parser sets ``holds_interrupt=True`` gets the :class:`HeldInterrupt` as
    ``args.interrupt`` and delivers it once it has taken the signals over (``tongban sync``); for every
    other command the hold ends just before it runs.
    """
    held = HeldInterrupt()
    try:
        args = build_parser().parse_args(argv)
        if os.environ.get("TONGBAN_LOG"):
            # The engine's structured log lines on stderr: TONGBAN_LOG=json (one JSON object a line)
            # or text; unset, the command prints only its own output.
            from tongban.core import logs

            logs.configure(sys.stderr)
        if getattr(args, "holds_interrupt", False):
            args.interrupt = held
        else:
            held.release()
        return int(args.func(args, sys.stdout))
    except KeyboardInterrupt:
        print("已中断 interrupted", file=sys.stderr)
        return _exit_code("INTERRUPTED")
    except BrokenPipeError:
        return _exit_code("OK")
    except Exception as exc:  # last resort: one line, no stack trace (TONGBAN_DEBUG=1 shows it)
        if os.environ.get("TONGBAN_DEBUG"):
            raise
        print(f"错误 error INTERNAL: 内部错误 internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return _exit_code("INTERNAL")
    finally:
        held.restore()


def _exit_code(name: str) -> int:
    from schemas.errors import ExitCode  # here: a Ctrl-C may have stopped its first import

    return int(ExitCode[name])


def run() -> None:
    """The ``tongban`` command: :func:`main`, then exit with its code.

    Once the exit code is decided a late Ctrl-C must not change it: SIGINT and SIGTERM are ignored
    while the interpreter shuts down (it would otherwise die of the signal, not exit 130 or 0).
    """
    code = main()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    sys.exit(code)
