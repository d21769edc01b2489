"""Personal data stays out of plain files and unmasked output; runs stop cleanly and never overlap.

- the spool keeps only a finished run's counts; its folders and files, and the libraries, are private;
- no identity number the test generated appears in any file the spool keeps, in the CLI's output
  (sync, status, failed list and show, with and without --json), unless revealing is asked for;
- a license holder who is a person is masked like a person;
- a second sync of a busy edge is refused (or waits with --wait);
- Ctrl-C at random points of a sync, 20 times: exit 130 each time, and a rerun ends with exact counts;
- a damaged spool file between steps is a coded, permanent error.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tongban.cli import main
from tongban.core import engine
from tongban.core.engine import SyncError, pipeline, runs, spool

P = "population"


def _bad_check(id_number: str) -> str:
    """The same number with a wrong check character (a rejected row that is still a person's)."""
    last = "0" if id_number[-1] != "0" else "1"
    return id_number[:-1] + last


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_no_personal_data_in_spool_files_or_cli_output(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    w = make_world({h.A: h.QINGHAI}, drop=(h.A,))
    rows = h.people(h.A, 20)
    bad = [{**r, "sfzh": _bad_check(r["sfzh"])} for r in h.people(h.A, 4, start=100)]
    w.registers[h.A].put(rows + bad)
    dropped = h.people(h.A, 6, start=200)
    dropped_bad = [{**r, "sfzh": _bad_check(r["sfzh"])} for r in h.people(h.A, 2, start=300)]
    (w.drops[h.A] / "drop.csv").write_text(h.csv_text(dropped + dropped_bad), encoding="utf-8")
    everyone = rows + bad + dropped + dropped_bad
    generated = {r["sfzh"] for r in everyone}
    config = str(w.root / "exchange.yaml")

    outputs = []
    code, text = _cli(capsys, "sync", "--config", config)
    assert code == 1, text  # rows were rejected
    outputs.append(text)
    for extra in ([], ["--json"]):
        outputs.append(_cli(capsys, "status", "--config", config, *extra)[1])
        code, text = _cli(capsys, "failed", "list", "--config", config, *extra)
        assert code == 0
        outputs.append(text)
    ids = [json.loads(line)["id"] for line in outputs[-1].splitlines()]
    assert len(ids) == 6
    for ident in ids:
        for extra in ([], ["--json"]):
            code, text = _cli(capsys, "failed", "show", ident, "--config", config, *extra)
            assert code == 0
            outputs.append(text)
    # Asked for, revealing shows the values (an operator's explicit action) — and only then.
    revealed = _cli(capsys, "failed", "show", ids[0], "--config", config, "--reveal")[1]
    assert any(value in revealed for value in generated)

    spooled = [p for p in (w.root / "spool").rglob("*") if p.is_file()]
    assert spooled and all(p.name in ("load.json", ".lock") for p in spooled)
    for p in spooled:
        text = p.read_text(encoding="utf-8", errors="replace")
        assert not [v for v in generated if v in text], p
    for text in outputs:
        assert not [v for v in generated if v in text], text


def test_spool_and_libraries_are_private(make_world: Any, h: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    w = make_world({h.A: h.QINGHAI})
    w.registers[h.A].put(h.people(h.A, 5))
    seen: list[tuple[Path, int]] = []
    original = pipeline.apply_batch

    def spy(*args: Any, **kw: Any) -> None:  # look at the run folder while it holds rows (steps overlap)
        for run in (p for p in (w.root / "spool").glob("*/*") if p.is_dir()):
            seen.extend((p, stat.S_IMODE(p.stat().st_mode)) for p in [run, *run.iterdir()])
        return original(*args, **kw)

    monkeypatch.setattr(pipeline, "apply_batch", spy)
    w.sync(w.system_edge(h.A))
    assert any(p.suffix == ".arrow" for p, _ in seen) and any(p.suffix == ".jsonl" for p, _ in seen)
    for path, mode in seen:
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    for lib in (w.root / "libraries").iterdir():
        assert stat.S_IMODE(lib.stat().st_mode) == 0o600, lib


def test_a_person_holding_a_license_is_masked_like_a_person(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    w = make_world({h.A: h.QINGHAI})
    person_id = h.make_id(h.A, dt.date(1980, 5, 6), 3)
    payload = {
        "license_id": "1.2.156.3005.2.X.Y.1.001.Z",
        "holder_name": "蒋秀珍",
        "holder_code": person_id,
        "holder_code_type": "111",
        "surface": json.dumps({"姓名": "蒋秀珍", "身份证号": person_id}, ensure_ascii=False),
    }
    ident = w.lib(h.A).record_failure(
        kind="row",
        edge=w.system_edge(h.A),
        dataset="license",
        source="x",
        codes=["DATE_INVALID"],
        message_zh="日期无效",
        message_en="bad date",
        payload=payload,
    )
    code, text = _cli(capsys, "failed", "show", f"{h.A}:{ident}", "--config", str(w.root / "exchange.yaml"))
    assert code == 0
    assert "蒋秀珍" not in text and person_id not in text
    assert "蒋*珍" in text


def test_a_second_sync_of_a_busy_edge_is_refused_or_waits(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    w = make_world({h.A: h.QINGHAI})
    w.registers[h.A].put(h.people(h.A, 5))
    edge = w.system_edge(h.A)
    config = str(w.root / "exchange.yaml")
    held, release = threading.Event(), threading.Event()

    def other_run() -> None:  # another sync holding the edge, in another thread
        with spool.edge_lock(w.ex.spool, edge):
            held.set()
            release.wait(30)

    t = threading.Thread(target=other_run)
    t.start()
    try:
        assert held.wait(10)
        code, text = _cli(capsys, "sync", edge, "--config", config)
        assert code == 4 and "EDGE_BUSY" in text and "--wait" in text
        assert w.lib(h.A).count(P) == 0
        assert w.lib(h.A).failures(kind="run") == []  # not a failure of the edge: the other run works
        threading.Timer(0.5, release.set).start()
        code, text = _cli(capsys, "sync", edge, "--config", config, "--wait", "20")
        assert code == 0, text
    finally:
        release.set()
        t.join()
    assert w.lib(h.A).count(P) == 5


def test_a_damaged_spool_file_is_a_coded_permanent_error(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI})
    w.registers[h.A].put(h.people(h.A, 5))
    edge = w.system_edge(h.A)
    uri = engine.extract(w.ex, edge)
    run = engine.path_of(uri)
    part = run / "extract-0001.arrow"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])  # truncated between two tasks
    with pytest.raises(SyncError) as err:
        engine.validate(w.ex, uri)
    assert err.value.code == "SPOOL_CORRUPT" and err.value.permanent
    (run / "extract.json").unlink()
    with pytest.raises(SyncError) as err:
        engine.validate(w.ex, uri)
    assert err.value.code == "SPOOL_MISSING" and err.value.permanent
    assert w.sync(edge)["inserted"] == 5  # a new run starts over
    assert not run.exists()  # the abandoned run is gone once a later one committed


def test_library_edges_are_exact_reruns_ship_nothing(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI}, lookback="10m")
    w.registers[h.A].put(h.people(h.A, 30))
    w.sync_all()
    province = w.lib(h.QINGHAI)
    up = w.edge(h.A, h.QINGHAI)
    batches = province.state(up)["batches"]
    again = w.sync_all()
    assert again[up]["rows"] == 0 and again[w.edge(h.QINGHAI, h.NATIONAL)]["rows"] == 0
    assert province.state(up)["batches"] == batches  # nothing re-shipped inside the lookback window
    key = w.registers[h.A].rows()[3]["sfzh"]
    w.registers[h.A].update(key, xm="改名", gxsj="2025-03-01 10:30:00")
    after = w.sync_all()
    assert after[up]["rows"] == 1 and after[w.edge(h.QINGHAI, h.NATIONAL)]["rows"] == 1
    assert w.lib(h.NATIONAL).record(P, key)["name"] == "改名"


def _ledger_inserted(lib: Any, edge: str) -> int:
    t = lib.tables["batches"]
    with lib.connect() as c:
        return int(c.execute(sa.select(sa.func.sum(t.c.inserted)).where(t.c.edge == edge)).scalar() or 0)


@pytest.mark.slow
def test_ctrl_c_at_random_points_stops_cleanly_and_a_rerun_is_exact(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI}, batch_size=500)
    reg = w.registers[h.A]
    config = str(w.root / "exchange.yaml")
    command = [str(Path(sys.executable).with_name("tongban")), "sync", "--config", config]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    total = 3000
    reg.put(h.people(h.A, total))
    started = time.monotonic()
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    took = time.monotonic() - started
    assert first.returncode == 0, first.stderr
    rng = random.Random(7)
    interrupted = attempts = 0
    # Fifteen runs interrupted at random points; a run that beats the signal (a fast moment of a busy
    # machine) counts for nothing and another run is tried.
    while interrupted < 15 and attempts < 60:
        i, attempts = attempts, attempts + 1
        reg.put(h.people(h.A, 300, start=total))
        total += 300
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        time.sleep(rng.uniform(0.3, max(0.4, took * 0.8)))
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=120)
            assert proc.returncode in (130, 0), (i, proc.returncode, err)
            assert "Traceback" not in err and "INTERNAL" not in err, err
            interrupted += proc.returncode == 130
        else:
            proc.communicate()
            assert proc.returncode == 0
    assert interrupted >= 15
    final = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert final.returncode == 0, final.stderr
    assert len(reg.key_set()) == total
    for node, edge in ((h.A, w.system_edge(h.A)), (h.QINGHAI, w.edge(h.A, h.QINGHAI))):
        lib = w.lib(node)
        assert lib.count(P) == total
        assert _ledger_inserted(lib, edge) == total  # nothing loaded twice
        assert lib.state(edge)["rows_loaded"] == total
    assert w.lib(h.NATIONAL).count(P) == total
    assert list((w.root / "spool").rglob("*.arrow")) == []


def test_a_writer_appending_to_a_drop_file_across_syncs_loses_nothing(
    make_world: Any, h: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = make_world({h.A: h.QINGHAI}, registers=(), drop=(h.A,))
    folder = w.drops[h.A]
    first, more = h.people(h.A, 100), h.people(h.A, 1000, start=100)
    path = folder / "czrk.csv"
    path.write_text(h.csv_text(first), encoding="utf-8")
    edge = w.edge(f"drop-{h.A}", h.A)
    original = runs.seal

    def writer_appends(ex: Any, run_uri: str, **kw: Any) -> str:  # between the read and the commit
        with path.open("a", encoding="utf-8") as fh:
            fh.write(h.csv_text(more).split("\n", 1)[1])
        return original(ex, run_uri, **kw)

    monkeypatch.setattr(runs, "seal", writer_appends)
    summary = w.sync(edge)
    monkeypatch.setattr(runs, "seal", original)
    assert summary["inserted"] == 100 and summary["archived"] == 0
    assert summary["left"] == [{"file": "czrk.csv", "why": "changed since it was read"}]
    assert path.exists()  # not archived mid-write
    again = w.sync(edge)  # the whole file again: the first 100 rows are no-ops
    assert (again["inserted"], again["unchanged"], again["archived"]) == (1000, 100, 1)
    assert w.lib(h.A).count(P) == 1100
    assert [p.name for p in (folder / "archive").rglob("*.csv")] == ["czrk.csv"]


def test_bad_files_are_quarantined_and_everything_else_loads(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    drops = {
        "name": f"jsonl-{h.A}",
        "node": h.A,
        "dataset": "population",
        "kind": "files",
        "folder": f"systems/{h.A}/jsonl",
        "pattern": "*",
        "settle": "0s",
    }
    w = make_world({h.A: h.QINGHAI, h.B: h.QINGHAI}, drop=(h.A,), systems=[drops])
    w.registers[h.A].put(h.people(h.A, 5))
    w.registers[h.B].put(h.people(h.B, 5))
    jsonl = w.root / "systems" / h.A / "jsonl"
    jsonl.mkdir(parents=True)
    good = h.people(h.A, 3, start=50)
    (jsonl / "good.jsonl").write_text(
        "".join(json.dumps(h.canonical(r), ensure_ascii=False) + "\n" for r in good), encoding="utf-8"
    )
    (jsonl / "deep.jsonl").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}\n", encoding="utf-8")
    csv_folder = w.drops[h.A]
    (csv_folder / "good.csv").write_text(h.csv_text(h.people(h.A, 4, start=60)), encoding="utf-8")
    no_names = h.csv_text(h.people(h.A, 2, start=70)).replace("name,", "xingming,", 1)
    (csv_folder / "columns.csv").write_text(no_names, encoding="utf-8")  # a required column missing
    code, text = _cli(capsys, "sync", "--config", str(w.root / "exchange.yaml"))
    assert code == 1, text
    assert "deep.jsonl" in text and "columns.csv" in text and "quarantined" in text
    assert "INTERNAL" not in text and "Traceback" not in text
    lib = w.lib(h.A)
    assert lib.count(P) == 5 + 3 + 4
    files = {json.loads(f["payload"])["name"]: f["codes"] for f in lib.failures(kind="file")}
    assert files == {"deep.jsonl": "FILE_TOO_DEEP", "columns.csv": "COLUMN_MISSING"}
    assert (jsonl / "failed" / "deep.jsonl").exists() and (csv_folder / "failed" / "columns.csv").exists()
    assert w.lib(h.NATIONAL).count(P) == 5 + 3 + 4 + 5  # the other edges went on
    code, text = _cli(capsys, "sync", "--config", str(w.root / "exchange.yaml"))
    assert code == 0, text  # the bad files no longer block anything


def test_a_second_tongban_sync_is_refused_before_it_touches_any_edge(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two syncs of a whole exchange at once: the second is refused up front (SYNC_BUSY), so it cannot
    take an edge the first has not reached yet and make the first fail on it."""
    w = make_world({h.A: h.QINGHAI})
    w.registers[h.A].put(h.people(h.A, 5))
    held, release = threading.Event(), threading.Event()

    def first_sync() -> None:
        with spool.edge_lock(w.ex.spool, "_tongban_sync"):
            held.set()
            release.wait(30)

    t = threading.Thread(target=first_sync)
    t.start()
    try:
        assert held.wait(10)
        code, text = _cli(capsys, "sync", "--config", str(w.root / "exchange.yaml"))
        assert code == 4 and "SYNC_BUSY" in text and "--wait" in text
        assert w.lib(h.A).count(P) == 0 and w.lib(h.A).failures(kind="run") == []
    finally:
        release.set()
        t.join()
    assert _cli(capsys, "sync", "--config", str(w.root / "exchange.yaml"))[0] == 0


def test_a_load_retried_after_its_commit_answers_the_same_summary(make_world: Any, h: Any) -> None:
    """A worker killed just after the load committed: Airflow runs the task again on a folder that
    keeps only the summary. The retry answers that summary and loads nothing twice."""
    from tongban.core import engine

    world = make_world({h.A: h.QINGHAI})
    world.registers[h.A].put(h.people(h.A, 5))
    uri = engine.extract(world.ex, world.system_edge(h.A))
    engine.validate(world.ex, uri)
    engine.seal(world.ex, uri)
    first = engine.load(world.ex, uri)
    again = engine.load(world.ex, uri)
    assert again == first and first["inserted"] == 5
    assert world.lib(h.A).count("population") == 5


def _seconds(command: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return time.monotonic() - started


def _ours_ran(stderr: str) -> bool:
    """Whether a traceback shows a frame of the project's own modules (past the console script)."""
    return any(
        ("/tongban/" in line or "/schemas/" in line) for line in stderr.splitlines() if "File " in line
    )


@pytest.mark.slow
def test_ctrl_c_while_the_command_starts_up_exits_130_and_never_hangs(make_world: Any, h: Any) -> None:
    """A Ctrl-C inside the start-up imports (before the run takes over the signals) ends with 130.

    Python raises KeyboardInterrupt between any two bytecodes, importlib's own included: one raised there
    can leave the import lock held, and the run's threads then wait on it forever. The command holds the
    signal until its modules are loaded and delivers it after.
    """
    w = make_world({h.A: h.QINGHAI}, batch_size=500)
    w.registers[h.A].put(h.people(h.A, 200))
    command = [
        str(Path(sys.executable).with_name("tongban")),
        "sync",
        "--config",
        str(w.root / "exchange.yaml"),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    took = time.monotonic() - started
    assert first.returncode == 0, first.stderr
    # Before the command's own code runs, Ctrl-C is the interpreter's (a traceback, exit by SIGINT):
    # the interrupts aim after the interpreter's start-up, and one that still lands inside it is recorded.
    boot = min(_seconds([sys.executable, "-c", "import tongban.cli"]) for _ in range(3))
    rng = random.Random(11)
    codes = []
    for i in range(16):
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        time.sleep(rng.uniform(2 * boot, max(3 * boot, took * 0.7)))
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"run {i} hung after Ctrl-C: {err[-2000:]}")
        if proc.returncode == -signal.SIGINT and not _ours_ran(err):
            codes.append("interpreter")  # the signal beat the interpreter's own start-up
            continue
        assert proc.returncode in (130, 0), (i, proc.returncode, err)
        assert "Traceback" not in err and "Exception ignored" not in err, err
        codes.append(proc.returncode)
    assert codes.count(130) >= 12, codes
