"""The demo's working folder, and what protects a user's changes in it when the demo runs again.

Once it has generated the local systems and written ``exchange.yaml``, ``tongban demo`` records the
SHA-256 of every file a user might edit (:data:`TRACKED`: ``exchange.yaml``, ``manifest.json`` and
everything under ``systems/`` — databases, drop files, mappings) in :data:`RECORD`. Run again, it starts
over only when none of them changed, none is missing and none was added; a drop file the exchange moved
to its folder's ``archive/`` or ``failed/`` unchanged is not a change. Otherwise it refuses with
``WORKDIR_EXISTS`` (exit 2), naming what changed, unless ``--fresh``. A folder holding demo products but
no record (written by someone else, or by an older ``tongban``) is refused the same way. Libraries, keys,
spool and Airflow's database are the run's state: a new run always builds them anew.

Other files in the folder are never touched.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from connectors.dropfolder import ARCHIVE, FAILED, REASON
from schemas.errors import TongbanError

__all__ = ["PRODUCTS", "RECORD", "TRACKED", "changes", "prepare", "record"]

#: The record of the files the demo wrote (relative path -> SHA-256).
RECORD = ".tongban-demo.json"
#: What the demo makes in its working folder: all of it is removed before a new demo starts.
PRODUCTS = ("systems", "libraries", "spool", "keys", "airflow", "exchange.yaml", "manifest.json", RECORD)
#: What a user may edit, and the demo protects: the config, the ground truth, the local systems.
TRACKED = ("exchange.yaml", "manifest.json", "systems")
#: At most this many changes are named in the refusal.
SHOWN = 8
_CHUNK = 1 << 20
_CHANGED, _ADDED, _REMOVED = "已修改 changed", "新增 added", "已删除 removed"
_FOREIGN, _UNREADABLE = "不是演示写的 not written by tongban demo", "无法读取 unreadable"


def _files(workdir: Path) -> Iterator[Path]:
    for name in TRACKED:
        path = workdir / name
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from (p for p in sorted(path.rglob("*")) if p.is_file() and not p.is_symlink())


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def _snapshot(workdir: Path) -> dict[str, str]:
    return {p.relative_to(workdir).as_posix(): _digest(p) for p in _files(workdir)}


def record(workdir: Path) -> None:
    """Record the files the demo has written so far (call once they are all written)."""
    doc = {"written_by": "tongban demo", "files": _snapshot(workdir)}
    (workdir / RECORD).write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _moved_from(path: str) -> str | None:
    """The drop folder of a file under its ``archive/`` or ``failed/`` folder, where the exchange moves it."""
    parts = PurePosixPath(path).parts
    for i in range(len(parts) - 2, 0, -1):
        if parts[i] in (ARCHIVE, FAILED):
            return PurePosixPath(*parts[:i]).as_posix()
    return None


def changes(workdir: Path) -> list[tuple[str, str]]:
    """What changed in the folder since the demo recorded it: (path relative to it, what), sorted.

    Empty when the folder holds no demo, or one nobody changed.
    """
    # Only what a user may edit can be theirs: libraries, keys, spool and Airflow's state are rebuilt by
    # every run (a `tongban status` run from the repository's root makes empty libraries there, say).
    present = [name for name in TRACKED if (workdir / name).exists()]
    try:
        recorded: dict[str, str] = json.loads((workdir / RECORD).read_text(encoding="utf-8"))["files"]
    except FileNotFoundError:
        return [(name, _FOREIGN) for name in present]
    except (OSError, ValueError, KeyError, TypeError):
        return [(RECORD, _UNREADABLE)]
    current = _snapshot(workdir)
    found: list[tuple[str, str]] = []
    gone: dict[str, dict[str, list[str]]] = {}  # folder -> digest -> recorded paths no longer there
    for path, digest in recorded.items():
        if path not in current:
            gone.setdefault(PurePosixPath(path).parent.as_posix(), {}).setdefault(digest, []).append(path)
        elif current[path] != digest:
            found.append((path, _CHANGED))
    for path, digest in current.items():
        if path in recorded:
            continue
        folder = _moved_from(path)
        if folder is not None and gone.get(folder, {}).get(digest):
            gone[folder][digest].pop()  # archived or quarantined by a sync, unchanged
        elif folder is not None and path.endswith(REASON) and FAILED in PurePosixPath(path).parts:
            continue  # the exchange's note beside a quarantined file
        else:
            found.append((path, _ADDED))
    found += [(p, _REMOVED) for moved in gone.values() for paths in moved.values() for p in paths]
    return sorted(found)


def _clean(workdir: Path) -> None:
    for name in PRODUCTS:
        path = workdir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def prepare(workdir: Path, *, fresh: bool = False) -> str:
    """Make ``workdir`` ready for a new demo, removing the previous one's products; what was done.

    Raises ``WORKDIR_EXISTS`` when the previous demo was changed since it was written (or was not
    written by the demo), unless ``fresh``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    existed = any((workdir / name).exists() for name in PRODUCTS)
    found = [] if fresh else changes(workdir)
    if found:
        shown = "; ".join(f"{workdir / path} ({what})" for path, what in found[:SHOWN])
        shown += f"; … +{len(found) - SHOWN}" if len(found) > SHOWN else ""
        if all(what == _FOREIGN for _, what in found):
            zh = f"{workdir} 中已有不是 tongban demo 写入（或未留记录）的文件（均未动）"
            en = f"{workdir} holds files tongban demo did not write, or wrote without a record (left as they are)"
        else:
            zh = f"{workdir} 已有演示数据，且自演示写入后有改动（均未动）"
            en = f"{workdir} already holds a demo, changed since the demo wrote it (left as it is)"
        raise TongbanError(
            "WORKDIR_EXISTS",
            f"{zh}；重新开始请加 --fresh（make demo DEMO_ARGS=--fresh；将丢弃这些文件与改动），或换一个 --workdir",
            f"{en}; add --fresh to start over (make demo DEMO_ARGS=--fresh; discarding them), or use another "
            "--workdir",
            shown,
        )
    _clean(workdir)
    if not existed:
        return ""
    if fresh:
        return "--fresh: 重新开始 starting over"
    return "上次的演示未被改动，重新生成 the previous demo was unchanged: starting over"
