"""The demo's working folder: a rerun keeps a user's changes (or starts over when there are none)."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.errors import TongbanError
from tongban.cli import main
from tongban.demo import workdir


def fake_demo(root: Path) -> Path:
    """A folder laid out as the demo leaves it, recorded: config, ground truth, a database, drops, run state."""
    (root / "systems" / "630104" / "drop" / "license").mkdir(parents=True)
    (root / "exchange.yaml").write_text("version: 1\n", encoding="utf-8")
    (root / "manifest.json").write_text("{}\n", encoding="utf-8")
    (root / "systems" / "630104" / "gongan.sqlite").write_bytes(b"SQLite format 3\x00")
    (root / "systems" / "630104" / "gongan.mapping.yaml").write_text(
        "dataset: population\n", encoding="utf-8"
    )
    for n in (1, 2, 3):
        (root / "systems" / "630104" / "drop" / "license" / f"license-000{n}.csv").write_text(
            f"license_id\n{n}\n", encoding="utf-8"
        )
    workdir.record(root)
    (root / "libraries").mkdir()
    (root / "libraries" / "000000.sqlite").write_bytes(b"run state")
    return root


def test_an_untouched_demo_has_no_changes_even_after_syncs_moved_its_drops(tmp_path: Path) -> None:
    root = fake_demo(tmp_path / "demo")
    drop = root / "systems" / "630104" / "drop" / "license"
    (drop / "archive" / "20261101").mkdir(parents=True)
    (drop / "license-0001.csv").rename(drop / "archive" / "20261101" / "license-0001.csv")
    (drop / "license-0002.csv").rename(drop / "archive" / "20261101" / "license-0002-1.csv")  # a clash
    (drop / "failed").mkdir()
    (drop / "license-0003.csv").rename(drop / "failed" / "license-0003.csv")
    (drop / "failed" / "license-0003.csv.reason.json").write_text('{"code": "FILE_TRUNCATED"}\n')
    (root / "libraries" / "000000.sqlite").write_bytes(b"synced again")  # run state is not tracked
    assert workdir.changes(root) == []
    assert "unchanged" in workdir.prepare(root)
    assert not (root / "systems").exists() and not (root / "libraries").exists()


def test_changes_are_named(tmp_path: Path) -> None:
    root = fake_demo(tmp_path / "demo")
    drop = root / "systems" / "630104" / "drop" / "license"
    (root / "exchange.yaml").write_text("version: 1\n# mine\n", encoding="utf-8")
    (drop / "mine.csv").write_text("license_id\nX\n", encoding="utf-8")
    (drop / "license-0002.csv").unlink()
    (drop / "archive" / "20261101").mkdir(parents=True)
    (drop / "license-0003.csv").write_text("license_id\nedited\n", encoding="utf-8")
    (drop / "license-0003.csv").rename(drop / "archive" / "20261101" / "license-0003.csv")
    base = "systems/630104/drop/license"
    assert workdir.changes(root) == [
        ("exchange.yaml", "已修改 changed"),
        (f"{base}/archive/20261101/license-0003.csv", "新增 added"),
        (f"{base}/license-0002.csv", "已删除 removed"),
        (f"{base}/license-0003.csv", "已删除 removed"),
        (f"{base}/mine.csv", "新增 added"),
    ]
    with pytest.raises(TongbanError) as info:
        workdir.prepare(root)
    assert info.value.code == "WORKDIR_EXISTS" and info.value.exit_code == 2
    assert str(root / "exchange.yaml") in info.value.where and "mine.csv" in info.value.where
    assert (root / "exchange.yaml").read_text(encoding="utf-8").endswith("# mine\n")
    assert (root / "libraries" / "000000.sqlite").exists()  # nothing was removed
    workdir.prepare(root, fresh=True)
    assert not (root / "exchange.yaml").exists() and not (drop / "mine.csv").exists()


def test_demo_refuses_a_folder_it_did_not_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`tongban demo --workdir .` in a repository must not replace its exchange.yaml."""
    mine = tmp_path / "exchange.yaml"
    mine.write_text("version: 1\nnodes: []  # mine\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("mine too\n", encoding="utf-8")
    assert main(["demo", "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "WORKDIR_EXISTS" in err and "did not write" in err and str(mine) in err
    assert mine.read_text(encoding="utf-8").endswith("# mine\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exchange.yaml", "notes.txt"]


def test_other_files_in_the_folder_are_never_touched(tmp_path: Path) -> None:
    root = fake_demo(tmp_path / "demo")
    (root / "notes.txt").write_text("mine\n", encoding="utf-8")
    assert workdir.changes(root) == []
    workdir.prepare(root, fresh=True)
    assert [p.name for p in root.iterdir()] == ["notes.txt"]


def test_the_runs_state_alone_is_no_reason_to_refuse(tmp_path: Path) -> None:
    """Libraries, keys and spool (e.g. made by `tongban status` run in the repository's root) are the
    run's state, rebuilt by every demo: a folder holding only those is started over, not refused."""
    for name in ("libraries", "spool", "keys"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x").write_text("x", encoding="utf-8")
    assert workdir.changes(tmp_path) == []
    workdir.prepare(tmp_path)
    assert not (tmp_path / "libraries").exists()
