"""The spool: where an edge's run hands its files from step to step, kept private and short-lived.

Layout: ``<spool>/<edge>/<run>/``. While a run is in flight its files hold whole rows (personal data),
so every folder is 0700 and every file 0600. Once the run has committed, only its summary stays
(``load.json``: counts and times, no values) and the newest :data:`KEEP_RUNS` summaries of an edge are
kept. A run that never finished (killed, interrupted, failed for good) is *abandoned* once a later run
of the edge commits: its folder is removed then (an interrupted run removes its own at once).

Each edge has a lock (``<spool>/<edge>/.lock``, an exclusive ``flock``): the steps of one edge never
run side by side, whether two ``tongban sync`` processes or an Airflow task and a person race. The lock
is re-entrant within a thread, so a whole sync can hold it across its four steps.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tongban.core.errors import SyncError

__all__ = [
    "KEEP_RUNS",
    "SpoolError",
    "abandon_older",
    "discard",
    "edge_lock",
    "finish",
    "open_private",
    "private_dir",
    "read_json",
    "write_json",
]

#: Finished runs whose summaries (``load.json``) stay in an edge's spool folder.
KEEP_RUNS = 20
SUMMARY = "load.json"
#: An unfinished run older than this (seconds) is abandoned when the edge's next run starts.
STALE_AFTER = 86_400.0


class SpoolError(SyncError):
    """A spool file that is missing or damaged, or an edge another run holds."""


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) readable by the owner only; returns it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    return path


def open_private(path: Path, mode: str = "w", encoding: str | None = "utf-8") -> IO[Any]:
    """Open ``path`` for writing, created 0600 (truncated if it exists)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o600)
    return os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None)


def write_json(path: Path, data: Any, dumps: Any = None) -> None:
    """Write JSON atomically (a 0600 temporary file renamed into place)."""
    text = dumps(data) if dumps else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    tmp = path.with_name(f".{path.name}.tmp")
    with open_private(tmp) as fh:
        fh.write(text)
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    """A step's JSON file; SpoolError SPOOL_MISSING or SPOOL_CORRUPT instead of a bare exception."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpoolError(
            "SPOOL_MISSING",
            "运行目录中缺少上一步的文件（运行已被放弃或清理）：请重新运行同步",
            "a file of the previous step is missing from the run folder (abandoned or cleaned up): "
            "run the sync again",
            str(path),
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise corrupt(path, exc) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise corrupt(path, exc) from None
    if not isinstance(data, dict):
        raise corrupt(path, ValueError("not a JSON object"))
    return data


def corrupt(path: Path, exc: BaseException) -> SpoolError:
    """SPOOL_CORRUPT for a step file that cannot be read (truncated, altered, not what it should be)."""
    detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return SpoolError(
        "SPOOL_CORRUPT",
        f"运行目录中的文件已损坏或被截断：{detail}；请重新运行同步（从抽取开始）",
        f"a file in the run folder is damaged or truncated: {detail}; run the sync again (from extract)",
        str(path),
    )


def finish(run: Path) -> None:
    """A committed run keeps only its summary; the edge keeps the newest :data:`KEEP_RUNS` of them."""
    for item in run.iterdir():
        if item.name == SUMMARY:
            continue
        if item.is_dir():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)
    done = sorted(
        (p for p in run.parent.iterdir() if p.is_dir() and (p / SUMMARY).is_file()),
        key=lambda p: p.stat().st_mtime,
    )
    for old in done[:-KEEP_RUNS]:
        shutil.rmtree(old, ignore_errors=True)


def discard(run: Path) -> None:
    """Remove a run folder that will never load (interrupted or abandoned)."""
    shutil.rmtree(run, ignore_errors=True)


def abandon_older(edge_folder: Path, keep: str, started: float) -> list[str]:
    """Remove the edge's unfinished runs that started before ``started`` (epoch seconds), but ``keep``.

    Called once a run of the edge has committed: a run that started earlier and never finished
    (killed, interrupted, failed for good) can no longer load, since the edge's chain moved past it,
    and the next run reads again from the committed cursor. Returns the names removed.
    """
    if not edge_folder.is_dir():
        return []
    gone = []
    for p in edge_folder.iterdir():
        if not p.is_dir() or p.name == keep or (p / SUMMARY).is_file():
            continue
        try:
            began = float(read_json(p / "run.json").get("started_epoch") or 0) or p.stat().st_mtime
        except (SpoolError, OSError, ValueError, TypeError):
            began = p.stat().st_mtime if p.exists() else 0.0
        if began < started:
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p.name)
    return gone


# -- the edge lock ---------------------------------------------------------------------------------

_HELD: dict[str, tuple[int, int]] = {}  # lock path -> (owning thread, depth), in this process
_HELD_GUARD = threading.Lock()


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 200).decode("utf-8", "replace").strip()
    except OSError:
        return ""


@contextlib.contextmanager
def edge_lock(spool: Path, edge: str, *, wait: float = 0.0) -> Iterator[None]:
    """Hold the edge's lock; waits up to ``wait`` seconds, then SpoolError EDGE_BUSY.

    Re-entrant in the thread that holds it (a sync holds it across its steps).
    """
    path = spool / edge / ".lock"
    key = str(path)
    me = threading.get_ident()
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held and held[0] == me:
            _HELD[key] = (me, held[1] + 1)
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _HELD_GUARD:
                owner, depth = _HELD[key]
                _HELD[key] = (owner, depth - 1)
        return
    private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + max(wait, 0.0)
    try:
        while True:
            with _HELD_GUARD:
                other_thread = key in _HELD
            if not other_thread:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise
            if time.monotonic() >= deadline:
                who = _holder(fd) or "another run"
                raise SpoolError(
                    "EDGE_BUSY",
                    f"另一个同步正在运行这条边（{who}）：请稍后再试，或用 --wait 秒数 排队等待",
                    f"another sync is running this edge ({who}): try again later, or queue with --wait SECONDS",
                    edge,
                )
            time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
        with _HELD_GUARD:
            _HELD[key] = (me, 1)
        try:
            yield
        finally:
            with _HELD_GUARD:
                _HELD.pop(key, None)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
