"""connectors/dropfolder.py: files still being written are left alone; a file that changed is never archived."""

from __future__ import annotations

import json
import os
import stat
import time
from datetime import datetime
from pathlib import Path

import pytest

from connectors import dropfolder
from connectors.dropfolder import DEFAULT_SETTLE_SECONDS, DropFile, archive, pending_files, quarantine
from connectors.errors import ExtractError

WHEN = datetime(2026, 3, 5, 12, 0)


def _write(path: Path, content: bytes = b"a\n1\n", age: float | None = None) -> Path:
    """Write ``path``; ``age`` seconds old if given (else just now)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    if age is not None:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _only(folder: Path) -> DropFile:
    (drop,) = pending_files(folder)
    return drop


def test_default_settle_time_leaves_fresh_files_alone(tmp_path: Path) -> None:
    assert DEFAULT_SETTLE_SECONDS == 60.0
    fresh = _write(tmp_path / "fresh.csv")
    _write(tmp_path / "old.csv", age=DEFAULT_SETTLE_SECONDS + 5)
    assert [f.path.name for f in pending_files(tmp_path)] == ["old.csv"]
    # A minute later it has settled...
    later = time.time() + DEFAULT_SETTLE_SECONDS + 1
    assert [f.path.name for f in pending_files(tmp_path, now=later)] == ["old.csv", "fresh.csv"]
    # ... and so has a file whose last change is older than the settle time.
    then = time.time() - DEFAULT_SETTLE_SECONDS - 1
    os.utime(fresh, (then, then))
    assert {f.path.name for f in pending_files(tmp_path)} == {"old.csv", "fresh.csv"}
    assert [f.path.name for f in pending_files(tmp_path, settle_seconds=0)] == ["old.csv", "fresh.csv"]


def test_drop_file_carries_its_stat_fingerprint(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.csv", b"k\n1\n", age=120)
    drop = _only(tmp_path)
    info = path.stat()
    assert (drop.size, drop.mtime_ns, drop.inode, drop.device) == (
        info.st_size,
        info.st_mtime_ns,
        info.st_ino,
        info.st_dev,
    )
    assert isinstance(drop.mtime_ns, int) and drop.mtime == info.st_mtime
    assert drop.unchanged()
    assert DropFile.from_dict(drop.path, drop.as_dict()) == drop
    assert json.loads(json.dumps(drop.as_dict())) == drop.as_dict()
    # Appended to (even with its time put back), touched, replaced by another file, or gone: changed.
    with path.open("ab") as fh:
        fh.write(b"2\n")
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert not drop.unchanged()
    _write(path, b"k\n1\n", age=120)
    assert not DropFile.from_dict(path, drop.as_dict()).unchanged()  # same size, another time
    replaced = _write(tmp_path / "b.csv", b"k\n1\n")
    os.utime(replaced, ns=(info.st_atime_ns, info.st_mtime_ns))
    os.replace(replaced, path)
    assert path.stat().st_mtime_ns == drop.mtime_ns and path.stat().st_size == drop.size
    assert not drop.unchanged()  # another inode
    path.unlink()
    assert not drop.unchanged()


def test_archive_refuses_a_file_changed_since_it_was_listed(tmp_path: Path) -> None:
    path = _write(tmp_path / "czrk.csv", b"k\n1\n", age=120)
    drop = _only(tmp_path)
    with path.open("ab") as fh:  # the writer was not done after all
        fh.write(b"2\n")
    assert archive(path, tmp_path, expect=drop, when=WHEN) is None
    assert path.read_bytes() == b"k\n1\n2\n"
    assert not (tmp_path / "archive" / "20260305" / "czrk.csv").exists()
    # Listed again once settled, unchanged: it moves, and the new path is returned.
    os.utime(path, (time.time() - 120, time.time() - 120))
    again = _only(tmp_path)
    moved = archive(path, tmp_path, expect=again, when=WHEN)
    assert moved == tmp_path / "archive" / "20260305" / "czrk.csv"
    assert moved.read_bytes() == b"k\n1\n2\n" and not path.exists()


def test_archive_of_a_file_gone_since_listing_is_a_coded_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "gone.csv", age=120)
    drop = _only(tmp_path)
    path.unlink()
    with pytest.raises(ExtractError) as info:
        archive(path, tmp_path, expect=drop)
    assert info.value.code == "DROP_NOT_FOUND"


@pytest.mark.parametrize("taken", [False, True])
def test_archive_moves_back_a_file_written_to_during_the_move(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, taken: bool
) -> None:
    path = _write(tmp_path / "czrk.csv", b"k\n1\n", age=120)
    drop = _only(tmp_path)
    _write(tmp_path / "czrk.csv.done", b"", age=120)
    writer = path.open("ab")  # a writer still holding the file open
    real_place = dropfolder._place

    def place_then_append(file: Path, target: Path, *args, **kwargs) -> Path:
        dest = real_place(file, target, *args, **kwargs)
        if file == path:
            writer.write(b"2\n")
            writer.flush()
            if taken:  # and meanwhile a new file of the same name was dropped
                _write(path, b"new\n")
        return dest

    monkeypatch.setattr(dropfolder, "_place", place_then_append)
    try:
        assert archive(path, tmp_path, expect=drop, when=WHEN) is None
    finally:
        writer.close()
    back = tmp_path / ("czrk-1.csv" if taken else "czrk.csv")
    assert back.read_bytes() == b"k\n1\n2\n"  # nothing lost, nothing overwritten
    if taken:
        assert path.read_bytes() == b"new\n"
    assert list((tmp_path / "archive").rglob("*.csv")) == []
    assert (tmp_path / "czrk.csv.done").exists()  # the marker stays with the folder's file


def test_archived_and_quarantined_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        a = _write(tmp_path / "a.csv", age=120)
        b = _write(tmp_path / "b.csv", age=120)
        drop = next(f for f in pending_files(tmp_path) if f.path == a)
        moved = archive(a, tmp_path, expect=drop, when=WHEN)
        assert moved is not None
        assert _mode(moved) == 0o600
        assert _mode(tmp_path / "archive") == 0o700 and _mode(tmp_path / "archive" / "20260305") == 0o700
        bad = quarantine(b, tmp_path, "FILE_MALFORMED")
        assert bad is not None
        assert _mode(bad) == 0o600 and _mode(tmp_path / "failed") == 0o700
        assert _mode(bad.with_name("b.csv.reason.json")) == 0o600
        # Folders made earlier with looser modes are tightened too.
        (tmp_path / "archive" / "20260306").mkdir(mode=0o755)
        os.chmod(tmp_path / "archive", 0o755)
        c = archive(_write(tmp_path / "c.csv"), tmp_path, when=datetime(2026, 3, 6))
        assert _mode(c) == 0o600 and _mode(c.parent) == 0o700 and _mode(tmp_path / "archive") == 0o700
    finally:
        os.umask(old)


def test_quarantine_never_overwrites_a_reason_or_a_marker(tmp_path: Path) -> None:
    failed = tmp_path / "failed"
    _write(failed / "bad.csv.reason.json", b'{"code": "OLDER"}\n')  # left behind by an operator
    moved = quarantine(_write(tmp_path / "bad.csv", b"one"), tmp_path, "FILE_MALFORMED")
    assert moved == failed / "bad-1.csv"
    assert (failed / "bad.csv.reason.json").read_bytes() == b'{"code": "OLDER"}\n'
    assert json.loads((failed / "bad-1.csv.reason.json").read_text())["code"] == "FILE_MALFORMED"
    # A stray marker in the archive: the file and its marker both go to fresh names.
    day = tmp_path / "archive" / "20260305"
    _write(day / "lic.csv.done", b"stray")
    _write(tmp_path / "lic.csv", b"x")
    _write(tmp_path / "lic.csv.done", b"")
    dest = archive(tmp_path / "lic.csv", tmp_path, when=WHEN)
    assert dest == day / "lic-1.csv" and (day / "lic-1.csv.done").read_bytes() == b""
    assert (day / "lic.csv.done").read_bytes() == b"stray"
    assert not (tmp_path / "lic.csv.done").exists()


def test_quarantine_refuses_a_file_changed_since_it_was_listed(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.csv", b"a,b\n1", age=120)
    drop = _only(tmp_path)
    with path.open("ab") as fh:
        fh.write(b",2\n")
    assert quarantine(path, tmp_path, "FILE_MALFORMED", expect=drop) is None
    assert path.read_bytes() == b"a,b\n1,2\n" and not (tmp_path / "failed").exists()


def test_symlinks_are_not_pending(tmp_path: Path) -> None:
    outside = _write(tmp_path / "elsewhere" / "secret.csv", b"k\n1\n", age=120)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "link.csv").symlink_to(outside)
    _write(drop / "real.csv", age=120)
    assert [f.path.name for f in pending_files(drop)] == ["real.csv"]


def test_a_move_that_fails_is_a_coded_error_and_keeps_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.csv", b"one", age=120)
    (tmp_path / "failed").write_bytes(b"not a folder")
    with pytest.raises(ExtractError) as info:
        quarantine(path, tmp_path, "FILE_MALFORMED")
    assert info.value.code == "DROP_MOVE_FAILED" and info.value.where == str(path)
    assert path.read_bytes() == b"one"
