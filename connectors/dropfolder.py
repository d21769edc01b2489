"""Drop folders: a local system writes extract files into a folder, we load the completed ones.

Only completed files are read. A file in ``folder`` (matching ``pattern``) is pending unless:

- its name (or a folder on its way) starts with ``.`` (hidden, e.g. rsync's ``.name.XXXX``);
- its name ends in ``.part``, ``.tmp``, ``.partial``, ``.crdownload`` or ``.filepart`` (still copying);
- a sibling ``<name>.lock`` exists (the writer still holds it);
- it changed less than ``settle_seconds`` ago (mtime newer than ``now - settle_seconds``; by default
  :data:`DEFAULT_SETTLE_SECONDS`, a minute, so that a file still being written is not read);
- the folder uses ``.done`` markers (any ``*.done`` next to it, or seen there before: a hidden
  ``.uses-done-markers`` remembers it once the markers were archived) and its ``<name>.done`` is missing;
- its suffix is not a format :mod:`connectors.files` reads (markers and locks never are);
- it is not a regular file (a symbolic link, even to a file, is never read nor moved);
- it lies under ``archive/`` or ``failed/``, where loaded and rejected files go.

Older drops load first: pending files are sorted by (mtime, name). Each :class:`DropFile` keeps the
fingerprint it was listed with (size, mtime in ns, inode, device); :meth:`DropFile.unchanged` tells
whether the file is still that file.

A loaded file is moved to ``archive/YYYYMMDD/``, a rejected one to ``failed/`` with a
``<name>.reason.json``. Nothing written to a drop folder is ever lost:

- neither move ever overwrites a file (a clash becomes ``name-1.csv``, ``name-2.csv``..., chosen so that
  its ``.done`` marker or ``.reason.json`` is free too), and a ``.done`` marker moves along with its file;
- given ``expect`` (the :class:`DropFile` as listed and read), a file that changed since is not moved
  (the call returns ``None``; it is pending again once it settles). A writer that still holds the file
  open may append between that check and the move, so the moved file is checked again, and if it
  changed it goes back to where it was (next to it, under a fresh name, if that name was taken meanwhile)
  and the call returns ``None``.

Archived and quarantined files hold personal data: they (and their ``.reason.json``) are made readable
by their owner only (mode 0600), and ``archive/``, its day folders and ``failed/`` mode 0700. A mode that
cannot be changed (a file or folder owned by another account) is left as it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import stat
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from connectors.errors import ExtractError
from connectors.files import FORMATS

__all__ = [
    "ARCHIVE",
    "DEFAULT_SETTLE_SECONDS",
    "FAILED",
    "DropFile",
    "archive",
    "pending_files",
    "quarantine",
    "release",
]

ARCHIVE = "archive"
FAILED = "failed"
PARTIAL_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", ".filepart")
HASH_CHUNK = 1 << 20
#: A file changed less than this many seconds ago may still be being written: it is not pending yet.
DEFAULT_SETTLE_SECONDS = 60.0
#: Modes of what ``archive/`` and ``failed/`` hold (personal data): owner only.
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
MARKER = ".done"
REASON = ".reason.json"


@dataclass(frozen=True)
class DropFile:
    """A completed file in a drop folder, as it was when listed (its stat fingerprint)."""

    path: Path
    size: int
    mtime: float
    mtime_ns: int
    inode: int
    device: int
    #: SHA-256 of the content as read, when known: a file rewritten in place that kept its size and mtime
    #: (``cp -p``, ``touch -r``, ``rsync --inplace -t``) is then still told apart before it is archived.
    digest: str | None = None

    @classmethod
    def from_stat(cls, path: Path, info: os.stat_result) -> DropFile:
        return cls(path, info.st_size, info.st_mtime, info.st_mtime_ns, info.st_ino, info.st_dev)

    def matches(self, info: os.stat_result) -> bool:
        """Whether ``info`` (a stat of some path) is this file as listed: same size, mtime, inode, device."""
        return (info.st_size, info.st_mtime_ns, info.st_ino, info.st_dev) == (
            self.size,
            self.mtime_ns,
            self.inode,
            self.device,
        )

    def unchanged(self) -> bool:
        """Whether ``path`` is still this file, unchanged since listed; False if it is gone."""
        try:
            info = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return False
        return stat.S_ISREG(info.st_mode) and self.matches(info)

    def as_dict(self) -> dict[str, Any]:
        """The fingerprint, JSON-ready (e.g. to check the file again in a later task)."""
        return {
            "size": self.size,
            "mtime": self.mtime,
            "mtime_ns": self.mtime_ns,
            "inode": self.inode,
            "device": self.device,
            "digest": self.digest,
        }

    @classmethod
    def from_dict(cls, path: str | Path, fingerprint: dict[str, Any]) -> DropFile:
        f = fingerprint
        mtime = f.get("mtime", f["mtime_ns"] / 1e9)
        digest = f.get("digest")
        return cls(
            Path(path),
            int(f["size"]),
            float(mtime),
            int(f["mtime_ns"]),
            int(f["inode"]),
            int(f["device"]),
            str(digest) if digest else None,
        )

    def with_digest(self) -> DropFile:
        """This fingerprint with the content's SHA-256 (read now: call it right after reading the file)."""
        return replace(self, digest=self.sha256)

    @cached_property
    def sha256(self) -> str:
        """Hex SHA-256 of the content, computed on first use (files can be hundreds of MB)."""
        return _sha256(self.path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


#: Left in a folder once it has been seen to use ``.done`` markers: archiving moves the markers away,
#: and the folder must not then be taken for one without (a stalled upload would be read half).
USES_MARKERS = ".uses-done-markers"


def _uses_markers(here: Path) -> bool:
    """Whether ``here`` uses ``.done`` markers: one is there now, or one was seen there before."""
    memo = here / USES_MARKERS
    if memo.exists():
        return True
    if any(here.glob(f"*{MARKER}")):
        with contextlib.suppress(OSError):  # a read-only folder: the marker itself still says so now
            memo.touch()
        return True
    return False


def _not_found(folder: Path) -> ExtractError:
    return ExtractError("DROP_NOT_FOUND", "找不到投放目录", "drop folder not found", str(folder))


def pending_files(
    folder: Path,
    *,
    pattern: str = "*",
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    now: float | None = None,
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
            info = path.lstat()
        except FileNotFoundError:  # gone since the listing
            continue
        if not stat.S_ISREG(info.st_mode) or info.st_mtime > cutoff:
            continue
        here = path.parent
        if (here / f"{name}.lock").exists():
            continue
        if here not in uses_done:
            uses_done[here] = _uses_markers(here)
        if uses_done[here] and not (here / f"{name}{MARKER}").exists():
            continue
        found.append(DropFile.from_stat(path, info))
    found.sort(key=lambda f: (f.mtime, str(f.path)))
    return found


def _chmod(path: Path, mode: int) -> None:
    """Set ``path``'s permission bits to ``mode`` if we may (a file of another account keeps its own)."""
    try:
        if stat.S_IMODE(os.stat(path, follow_symlinks=False).st_mode) != mode:
            os.chmod(path, mode)
    except OSError:
        pass


def _private_dir(path: Path) -> None:
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    _chmod(path, PRIVATE_DIR_MODE)


def _place(file: Path, target: Path, name: str | None = None, companions: tuple[str, ...] = ()) -> Path:
    """Move ``file`` into the folder ``target`` as ``name`` (default its own), never overwriting; the new path.

    A taken name becomes ``stem-1.suffix``, ``stem-2.suffix``...; a name is only taken if ``name + c`` is
    free too for each suffix ``c`` in ``companions`` (its marker, its reason).
    """
    name = name or file.name
    stem, suffix = os.path.splitext(name)
    for n in itertools.count():
        dest = target / (name if n == 0 else f"{stem}-{n}{suffix}")
        if any(os.path.lexists(f"{dest}{c}") for c in companions):
            continue
        try:
            os.link(file, dest, follow_symlinks=False)  # atomic "create if absent": nothing is overwritten
        except FileExistsError:
            continue
        except OSError:  # no hard links here (another file system): check, then move
            if os.path.lexists(dest):
                continue
            shutil.move(file, dest)
        else:
            file.unlink()
        return dest
    raise AssertionError("unreachable")  # pragma: no cover


def _same_file(info: os.stat_result, expect: DropFile) -> bool:
    """Whether a moved file is still ``expect``: size and mtime; inode too unless copied to another device."""
    if (info.st_size, info.st_mtime_ns) != (expect.size, expect.mtime_ns):
        return False
    return info.st_dev != expect.device or info.st_ino == expect.inode


def _move(
    file: Path, target: Path, expect: DropFile | None, companion: str | None = None, top: Path | None = None
) -> Path | None:
    """Move ``file`` into ``target`` (rules: module docstring); the new path, or None if it changed.

    ``target`` and ``top`` (a folder above it, if given) are made private.
    """
    file = Path(file)
    try:
        info = os.stat(file, follow_symlinks=False)
    except OSError:
        info = None
    if info is None or not stat.S_ISREG(info.st_mode):
        raise ExtractError(
            "DROP_NOT_FOUND",
            "找不到要移动的文件（或不是普通文件）",
            "file to move not found (or not a regular file)",
            str(file),
        )
    if expect is not None and not expect.matches(info):
        return None
    if expect is not None and expect.digest is not None and _sha256(file) != expect.digest:
        return None  # rewritten in place with the same size and time: not the file that was read
    marker = file.with_name(f"{file.name}{MARKER}")
    companions = tuple(c for c in (companion, MARKER if marker.is_file() else None) if c)
    try:
        for folder in (top, target):
            if folder is not None:
                _private_dir(folder)
        dest = _place(file, target, companions=companions)
        if expect is not None:
            try:
                moved = os.stat(dest, follow_symlinks=False)
            except FileNotFoundError:
                moved = None
            if moved is None or not _same_file(moved, expect):
                # Written to between the check and the move (a writer held it open): it goes back.
                if moved is not None:
                    _place(dest, file.parent, name=file.name)
                return None
        _chmod(dest, PRIVATE_FILE_MODE)
        if marker.is_file():
            _chmod(_place(marker, target, name=f"{dest.name}{MARKER}"), PRIVATE_FILE_MODE)
    except OSError as exc:
        raise ExtractError(
            "DROP_MOVE_FAILED",
            f"无法移动文件到 {target}：{exc.strerror or exc}",
            f"cannot move the file to {target}: {exc.strerror or exc}",
            str(file),
        ) from None
    return dest


def archive(
    file: Path, folder: Path, *, expect: DropFile | None = None, when: datetime | None = None
) -> Path | None:
    """Move a loaded ``file`` to ``folder/archive/YYYYMMDD/`` (``when``, default today); the new path.

    With ``expect`` (the file as listed and read), a file that changed since is left in place (or put
    back) and the result is None. DROP_NOT_FOUND if ``file`` is gone.
    """
    day = (when or datetime.now()).strftime("%Y%m%d")
    top = Path(folder) / ARCHIVE
    return _move(file, top / day, expect, top=top)


def quarantine(file: Path, folder: Path, reason_code: str, *, expect: DropFile | None = None) -> Path | None:
    """Move a rejected ``file`` to ``folder/failed/`` with ``<name>.reason.json`` ({code, at}); the new path.

    With ``expect``, a file that changed since it was listed is left in place and the result is None
    (it was likely still being written: it is read again once it settles).
    """
    dest = _move(file, Path(folder) / FAILED, expect, companion=REASON)
    if dest is None:
        return None
    reason = {"code": reason_code, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    data = (json.dumps(reason) + "\n").encode("utf-8")
    for n in itertools.count():
        path = dest.with_name(f"{dest.name}{REASON}" if n == 0 else f"{dest.name}.reason-{n}.json")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        except FileExistsError:  # (only if another process took the name since the move)
            continue
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        _chmod(path, PRIVATE_FILE_MODE)  # (the umask may have taken bits off)
        break
    return dest


def release(file: Path, folder: Path, name: str) -> Path | None:
    """Put a quarantined ``file`` (under ``folder/failed/``) back into ``folder`` as ``name``, for a retry:
    the next run reads it again. None when it is gone, or when a file of that name is waiting there
    already (a replacement: that one is read, and the quarantined file stays where it is).
    Its ``.done`` marker comes back too when the folder uses markers; its ``.reason.json`` stays.
    """
    file, folder = Path(file), Path(folder)
    failed = (folder / FAILED).resolve()
    try:
        if file.resolve().parent != failed or not file.is_file() or file.is_symlink():
            return None
    except OSError:
        return None
    if os.path.lexists(folder / name):
        return None
    try:
        dest = _place(file, folder, name=name, companions=(MARKER,))
        if _uses_markers(folder):
            (folder / f"{dest.name}{MARKER}").touch()
    except OSError as exc:
        raise ExtractError(
            "DROP_MOVE_FAILED",
            f"无法把隔离的文件放回 {folder}：{exc.strerror or exc}",
            f"cannot put the quarantined file back into {folder}: {exc.strerror or exc}",
            str(file),
        ) from None
    return dest
