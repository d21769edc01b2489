"""Drop folders: a local system writes extract files into a folder, we load the completed ones.

Only completed files are read. A file in ``folder`` (matching ``pattern``) is pending unless:

- its name (or a folder on its way) starts with ``.`` (hidden, e.g. rsync's ``.name.XXXX``);
- its name ends in ``.part``, ``.tmp``, ``.partial``, ``.crdownload`` or ``.filepart`` (still copying);
- a sibling ``<name>.lock`` exists (the writer still holds it);
- it changed less than ``settle_seconds`` ago (mtime newer than ``now - settle_seconds``);
- the folder uses ``.done`` markers (any ``*.done`` next to it) and its ``<name>.done`` is missing;
- its suffix is not a format :mod:`connectors.files` reads (markers and locks never are);
- it lies under ``archive/`` or ``failed/``, where loaded and rejected files go.

Older drops load first: pending files are sorted by (mtime, name). A loaded file is moved to
``archive/YYYYMMDD/``, a rejected one to ``failed/`` with a ``<name>.reason.json``; neither move ever
overwrites a file (a clash becomes ``name-1.csv``, ``name-2.csv``...) and a ``.done`` marker moves
along with its file.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import stat
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from connectors.errors import ExtractError
from connectors.files import FORMATS

__all__ = ["ARCHIVE", "FAILED", "DropFile", "archive", "pending_files", "quarantine"]

ARCHIVE = "archive"
FAILED = "failed"
PARTIAL_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", ".filepart")
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class DropFile:
    """A completed file in a drop folder, as it was when listed."""

    path: Path
    size: int
    mtime: float

    @cached_property
    def sha256(self) -> str:
        """Hex SHA-256 of the content, computed on first use (files can be hundreds of MB)."""
        digest = hashlib.sha256()
        with self.path.open("rb") as fh:
            while chunk := fh.read(HASH_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()


def _not_found(folder: Path) -> ExtractError:
    return ExtractError("DROP_NOT_FOUND", "找不到投放目录", "drop folder not found", str(folder))


def pending_files(
    folder: Path, *, pattern: str = "*", settle_seconds: float = 0.0, now: float | None = None
) -> list[DropFile]:
    """The completed files of ``folder`` waiting to be loaded, oldest first (rules: module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise _not_found(folder)
    cutoff = (time.time() if now is None else now) - settle_seconds
    uses_done: dict[Path, bool] = {}
    found: list[DropFile] = []
    for path in folder.glob(pattern):
        parts = path.relative_to(folder).parts
        name = path.name
        if parts[0] in (ARCHIVE, FAILED) or any(p.startswith(".") for p in parts):
            continue
        if path.suffix.lower() not in FORMATS or name.lower().endswith(PARTIAL_SUFFIXES):
            continue
        try:
            info = path.stat()
        except FileNotFoundError:  # gone since the listing
            continue
        if not stat.S_ISREG(info.st_mode) or info.st_mtime > cutoff:
            continue
        here = path.parent
        if (here / f"{name}.lock").exists():
            continue
        if here not in uses_done:
            uses_done[here] = any(here.glob("*.done"))
        if uses_done[here] and not (here / f"{name}.done").exists():
            continue
        found.append(DropFile(path, info.st_size, info.st_mtime))
    found.sort(key=lambda f: (f.mtime, str(f.path)))
    return found


def _move(file: Path, target: Path) -> Path:
    """Move ``file`` into the directory ``target`` without ever overwriting; the new path."""
    file = Path(file)
    if not file.is_file():
        raise ExtractError("DROP_NOT_FOUND", "找不到要移动的文件", "file to move not found", str(file))
    target.mkdir(parents=True, exist_ok=True)
    for n in itertools.count():
        dest = target / (file.name if n == 0 else f"{file.stem}-{n}{file.suffix}")
        try:
            os.link(file, dest)  # atomic "create if absent": a racing mover cannot be overwritten
        except FileExistsError:
            continue
        except OSError:  # no hard links here (another file system): check, then move
            if dest.exists():
                continue
            shutil.move(file, dest)
        else:
            file.unlink()
        break
    marker = file.with_name(f"{file.name}.done")
    if marker.exists():
        shutil.move(marker, dest.with_name(f"{dest.name}.done"))
    return dest


def archive(file: Path, folder: Path, *, when: datetime | None = None) -> Path:
    """Move a loaded ``file`` to ``folder/archive/YYYYMMDD/`` (``when``, default today); the new path."""
    day = (when or datetime.now()).strftime("%Y%m%d")
    return _move(file, Path(folder) / ARCHIVE / day)


def quarantine(file: Path, folder: Path, reason_code: str) -> Path:
    """Move a rejected ``file`` to ``folder/failed/`` with ``<name>.reason.json`` ({code, at}); the new path."""
    dest = _move(file, Path(folder) / FAILED)
    reason = {"code": reason_code, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    dest.with_name(f"{dest.name}.reason.json").write_text(json.dumps(reason) + "\n", encoding="utf-8")
    return dest
