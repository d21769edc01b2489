"""Findings of the hostile review of the integrity change (branch i7-review).

Every test here fails on the reviewed code: each one is a promise of the README ("Sync semantics",
"Configuration", "After a key compromise", "Personal data", "Stopping and overlapping") that a
concurrent operator, a careless file writer, an attacker holding one node's key, or a new user can
break. The docstring of each test says what is wrong and why it matters. No product code is changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from tongban.cli import main
from tongban.core import engine, repair
from tongban.core.engine import SyncError, runs
from tongban.core.trust import KeyStore, b64url, revoke, rotate
from tongban.core.trust.manifest import Manifest

P = "population"


# -- helpers ------------------------------------------------------------------------------------------


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _prepared(w: Any, edge: str) -> tuple[str, Path]:
    """An extracted and validated run of ``edge`` (not sealed yet)."""
    uri = engine.extract(w.ex, edge)
    engine.validate(w.ex, uri)
    return uri, engine.path_of(uri)


def _rewrite_valid(run: Path, change: Any) -> None:
    """Apply ``change(rows) -> rows`` to the run's validated rows (a county writes its own spool)."""
    path = run / "valid-0001.arrow"
    reader = pa.ipc.open_file(pa.BufferReader(path.read_bytes()))
    schema = reader.schema
    rows = change(reader.read_all().to_pylist())
    with pa.ipc.new_file(str(path), schema) as writer:
        writer.write_table(pa.Table.from_pylist(rows, schema=schema))


def _resign(run: Path, node: str, keys: KeyStore, kid: str | None = None, **changes: Any) -> None:
    """Re-sign every manifest of the run with a key of ``node`` (its current one unless ``kid``)."""
    if kid is None:
        kid, private = keys.signer(node)
    else:
        private = keys.private(node, kid)
    data = json.loads((run / "sealed.json").read_text())
    for entry in data["manifests"]:
        m = Manifest.from_json(json.dumps(entry["manifest"]))
        unsigned = dataclasses.replace(m, key_id=kid, signature="", **changes)
        signed = dataclasses.replace(unsigned, signature=b64url(private.sign(unsigned.canonical_bytes())))
        entry["manifest"] = json.loads(signed.to_json())
    (run / "sealed.json").write_text(json.dumps(data))


def _add_edges(w: Any, extra: list[tuple[str, str]]) -> None:
    """Write the derived edges explicitly, plus ``extra`` (source, target) population edges."""
    cfg = w.root / "exchange.yaml"
    lines = [f'  - {{dataset: population, source: "{e.source}", target: "{e.target}"}}' for e in w.ex.edges]
    lines += [f'  - {{dataset: population, source: "{s}", target: "{t}"}}' for s, t in extra]
    cfg.write_text(cfg.read_text(encoding="utf-8") + "edges:\n" + "\n".join(lines) + "\n", encoding="utf-8")
    w.reload()


def _sync_all_tolerant(w: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for e in w.ex.edges:
        try:
            out[e.id] = w.sync(e.id)
        except SyncError as exc:
            out[e.id] = exc.code
    return out


def _compromise_and_repair(w: Any, node: str) -> dict[str, Any]:
    """The README's procedure after a key compromise: rotate, revoke, repair (the key of ``node``)."""
    keys = KeyStore(w.ex.keys_dir)
    stolen = keys.current(node)
    assert stolen is not None
    rotate(keys, w.ex.trust_list, node)
    revoke(keys, w.ex.trust_list, stolen, "密钥泄露 key compromised")
    return repair.repair_key(w.ex, stolen, w.libs.get)


# -- 1. key-compromise repair -------------------------------------------------------------------------


def test_repair_of_a_county_key_loses_its_drop_folder_records_for_good(make_world: Any, h: Any) -> None:
    """`keys repair` moves every record the county's key ever signed into history, at the county,
    the province and the nation, and promises that the next sync "re-pulls every edge into those
    libraries from the owners". A county's own libraries are loaded from its local systems, and a drop
    folder's files are archived after loading: the re-pull reads an empty folder. The county's drop-folder
    records are gone from every library for good (only history keeps them, as `revoked`), and nothing
    tells the operator. A key compromise at any county with a file-drop system (every demo county has
    license drops) permanently deletes that county's licenses from the exchange.

    Fix: do not revoke what the county loaded from its own systems (those batches were never sent to
    anyone), or restore from history when the owner cannot be re-read; at least re-read archive/.
    """
    w = make_world({h.A: h.QINGHAI, h.B: h.QINGHAI}, drop=(h.A,))
    w.registers[h.A].put(h.people(h.A, 3))
    w.registers[h.B].put(h.people(h.B, 3))
    dropped = h.people(h.A, 4, start=200)
    (w.drops[h.A] / "drop.csv").write_text(h.csv_text(dropped), encoding="utf-8")
    w.sync_all()
    assert w.lib(h.NATIONAL).count(P) == 10

    _compromise_and_repair(w, h.A)
    w.sync_all()  # "re-pulls every edge into those libraries from the owners"
    w.sync_all()

    for node in (h.A, h.QINGHAI, h.NATIONAL):
        missing = [r["sfzh"][:6] for r in dropped if w.lib(node).record(P, r["sfzh"]) is None]
        assert not missing, f"{len(missing)} drop-folder records of {h.A} lost at {node} after repair"


def test_repair_of_a_province_key_rewrites_county_libraries_that_never_saw_it(
    make_world: Any, h: Any
) -> None:
    """A province's key signs only province -> national batches. Its repair collects the (key, leaf hash)
    of every record those batches wrote at the nation -- i.e. every record of every county of the province
    -- and then moves the matching records into history in *every* library of the exchange, including
    the counties' own libraries, which never loaded a single batch signed by that key. All of a
    province's county libraries are emptied (and their system edges reset) for a compromise that could
    not have touched them; records of drop-folder systems cannot come back (see the finding above).

    Fix: only quarantine in the libraries where the key's batches were loaded and in the libraries
    *above* them that the copies were forwarded to, never below.
    """
    w = make_world({h.A: h.QINGHAI, h.B: h.QINGHAI})
    w.registers[h.A].put(h.people(h.A, 5))
    w.registers[h.B].put(h.people(h.B, 5))
    w.sync_all()
    county = w.lib(h.A)
    before = county.count(P)

    report = _compromise_and_repair(w, h.QINGHAI)

    touched = {lib["node"]: lib["records"] for lib in report["libraries"]}
    assert touched[h.A] == 0, f"repair of {h.QINGHAI}'s key moved {touched[h.A]} records of county {h.A}"
    assert county.count(P) == before


# -- 2. topology and ownership ------------------------------------------------------------------------


def test_a_national_to_province_edge_blocks_the_province_upward_edge_for_good(
    make_world: Any, h: Any
) -> None:
    """The config accepts a national -> province edge (README: "edges flowing back down will carry
    others' records as read-only foreign records, never forwarded up again"). Nothing keeps them from
    being forwarded up: the province -> national extract reads the province library by `_seq` whole,
    foreign records included, and the nation refuses the whole batch with BATCH_OWNER (they are owned
    by another province's county). Every later run reads the same rows again and is refused again: the
    province's own counties' new records never reach the nation, and every run fails with exit 4.

    Fix: the node -> parent extract must skip records the source does not own below itself (e.g.
    `WHERE _owner IN below(source)` or by `_source`), so read-only foreign records never travel up.
    """
    w = make_world({h.A: h.QINGHAI, h.C: h.GANSU})
    w.registers[h.A].put(h.people(h.A, 3))
    w.registers[h.C].put(h.people(h.C, 3))
    _add_edges(w, [(h.NATIONAL, h.QINGHAI)])  # accepted: "national to a province"
    first = _sync_all_tolerant(w)
    assert all(isinstance(v, dict) for v in first.values()), first
    newcomer = h.person(h.A, 50, ts="2025-03-01 12:00:00")
    w.registers[h.A].put([newcomer])
    second = _sync_all_tolerant(w)
    up = w.edge(h.QINGHAI, h.NATIONAL)
    assert isinstance(second[up], dict), f"{up} failed with {second[up]}"
    assert w.lib(h.NATIONAL).record(P, newcomer["sfzh"]) is not None


def test_after_a_county_leaves_the_config_a_full_province_sync_is_refused_for_good(
    make_world: Any, h: Any
) -> None:
    """Division codes change (撤县设区, a county merged or renumbered -- the README's own 632822/632823);
    the retired county's node goes from exchange.yaml, its records stay in the province library with
    their old `_owner`. BATCH_OWNER checks forwarded rows against the *current* topology, so the first
    province -> national read that includes one of those records -- `tongban sync --full`, the cursor
    reset that `keys repair` does, or any update that re-stamps such a record -- is refused whole, and
    so is every later run: the province's edge to the nation is stuck.

    Fix: forwarding checks should accept owners the province library already holds legitimately (e.g.
    records it loaded from its own child edges), or the config must keep retired nodes (``retired:
    true``) in `below()`; at the least the extract must not ship what the check will refuse.
    """
    w = make_world({h.A: h.QINGHAI, h.B: h.QINGHAI})
    w.registers[h.A].put(h.people(h.A, 3))
    w.registers[h.B].put(h.people(h.B, 3))
    w.sync_all()
    cfg = w.root / "exchange.yaml"
    kept = [line for line in cfg.read_text(encoding="utf-8").splitlines() if h.B not in line]
    cfg.write_text("\n".join(kept) + "\n", encoding="utf-8")  # B merged away: its node and system go
    w.reload()
    up = w.edge(h.QINGHAI, h.NATIONAL)
    try:
        summary = engine.sync_edge(w.ex, up, full=True)
    except SyncError as exc:
        pytest.fail(f"{up} --full refused: {exc.code}")
    assert summary["rows"] >= 3


def test_a_drop_file_with_an_owner_column_blocks_the_whole_folder_for_good(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """validate takes a column named `_owner` from the *local* extract as the rows' owner (it is meant
    for library edges only). A drop file that happens to carry one -- e.g. a CSV exported from a province
    library and dropped back, or a careless writer's own column -- gives every row that owner; the whole
    batch is then refused with BATCH_OWNER at load. The file is neither loaded nor quarantined, so every
    run reads it first again (oldest first) and stops there: every other good file of the folder waits
    for ever and the edge fails with exit 4 each hour. README: "a file that cannot be read ... goes to
    failed/ ... and the other files go on".

    Fix: for system edges drop any `_owner` (and other `_`-meta) column of the extract before validate,
    and stamp the plan's owner; or quarantine the file whose batch is refused.
    """
    w = make_world({h.A: h.QINGHAI, h.B: h.QINGHAI}, registers=(), drop=(h.A,))
    folder = w.drops[h.A]
    lines = h.csv_text(h.people(h.A, 3)).splitlines()
    exported = [lines[0] + ",_owner"] + [line + f",{h.B}" for line in lines[1:]]
    (folder / "export.csv").write_text("\n".join(exported) + "\n", encoding="utf-8")
    past = time.time() - 120
    os.utime(folder / "export.csv", (past, past))  # the older file: read first
    good = h.people(h.A, 4, start=50)
    (folder / "good.csv").write_text(h.csv_text(good), encoding="utf-8")
    config = str(w.root / "exchange.yaml")
    for _ in range(2):
        _cli(capsys, "sync", "--config", config)
    loaded = [r for r in good if w.lib(h.A).record(P, r["sfzh"]) is not None]
    assert len(loaded) == len(good), "the good file never loads"


# -- 3. personal data ---------------------------------------------------------------------------------


def test_failed_show_prints_unmapped_personal_columns_unmasked(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rejected row's payload is the whole local row, columns the mapping does not map included (a SQL
    system is read with `select *`; a drop file keeps every column). Real registers carry many such
    columns: former name (曾用名), guardian, phone, current address. `failed show` masks only the
    contract's personal fields and identity-number shapes, so the unmapped name and phone number are
    printed in clear without --reveal. README: "Everything a person reads is masked unless --reveal".

    Fix: keep only the dataset's fields in a rejected row's payload (or mask every non-contract value,
    e.g. mask_value on any column the contract does not declare public).
    """
    w = make_world({h.A: h.QINGHAI})
    db = sqlite3.connect(w.registers[h.A].path)
    db.execute("alter table czrk add column cym text")  # 曾用名, former name
    db.execute("alter table czrk add column lxdh text")  # 联系电话, phone
    db.commit()
    db.close()
    row = h.person(h.A, 1)
    last = "0" if row["sfzh"][-1] != "0" else "1"
    w.registers[h.A].put([{**row, "sfzh": row["sfzh"][:-1] + last}])  # a wrong check character
    db = sqlite3.connect(w.registers[h.A].path)
    db.execute("update czrk set cym = '王秀英', lxdh = '13912345678'")
    db.commit()
    db.close()
    config = str(w.root / "exchange.yaml")
    assert _cli(capsys, "sync", "--config", config)[0] == 1
    [failure] = w.lib(h.A).failures(kind="row")
    code, text = _cli(capsys, "failed", "show", f"{h.A}:{failure['id']}", "--config", config)
    assert code == 0
    assert "王秀英" not in text and "13912345678" not in text, text


def test_failed_show_prints_a_person_holders_name_when_the_holder_code_type_is_invalid(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A license's holder name, code and printed fields (surface) are masked only when the row's
    `holder_code_type` is exactly "111". Rejected rows are exactly the rows whose codes are wrong: a
    local system using its own code for "person" ("1", "01", "身份证"...) that the mapping misses makes
    every person's license a HOLDER_CODE_TYPE_INVALID failed transfer -- and `failed show`, without
    --reveal, prints the person's name and the surface JSON (with the name again) in clear. Here: a
    child's birth certificate (出生医学证明).

    Fix: treat a holder as a person unless the code type is a known non-person type ("001"), i.e. mask
    when in doubt; or decide by the holder_code's shape (an identity number).
    """
    from tongban.demo.generate import license_table

    lic = {
        "name": f"lic-{h.A}",
        "node": h.A,
        "dataset": "license",
        "kind": "files",
        "folder": f"systems/{h.A}/lic",
        "pattern": "*.csv",
        "settle": "0s",
        "mapping": {"dataset": "license", "columns": {}},
    }
    w = make_world({h.A: h.QINGHAI}, registers=(), systems=[lic])
    table = license_table(20, divisions=[h.A])
    rows = table.to_pylist()
    person = next(r for r in rows if r["holder_code_type"] == "111")
    local = {**person, "holder_code_type": "1"}  # the local system's code for 公民身份号码
    folder = w.root / "systems" / h.A / "lic"
    folder.mkdir(parents=True)
    pacsv.write_csv(pa.Table.from_pylist([local], schema=table.schema), folder / "licenses.csv")
    config = str(w.root / "exchange.yaml")
    assert _cli(capsys, "sync", "--config", config)[0] == 1
    [failure] = w.lib(h.A).failures(kind="row")
    assert failure["codes"] == "HOLDER_CODE_TYPE_INVALID"
    code, text = _cli(capsys, "failed", "show", f"{h.A}:{failure['id']}", "--config", config)
    assert code == 0
    assert person["holder_name"] not in text, text


def test_failed_runs_leave_whole_rows_in_the_spool_for_ever(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run that fails after extract (a refused batch, a missing key, a library down for good) keeps
    its folder -- extract and valid Arrow files, rejects, the cursor with an identity number -- until a
    later run of the same edge *commits*. An edge that keeps failing never commits: each hourly run
    adds one more full copy of the extract in plain files, without bound. README: "a run that never
    committed is removed once a later run of the edge commits (at once when interrupted)" -- for a
    stuck edge that is never, and personal data piles up outside any library.

    Fix: a new run of an edge removes the edge's older unfinished runs when it starts its extract (it
    reads again from the committed cursor anyway), and a permanently failed run removes its own folder.
    """
    w = make_world({h.A: h.QINGHAI})
    rows = h.people(h.A, 5)
    w.registers[h.A].put(rows)
    (Path(w.ex.keys_dir) / h.A / "current").unlink()  # the county's key is gone: seal fails each run
    config = str(w.root / "exchange.yaml")
    for _ in range(3):
        code, text = _cli(capsys, "sync", w.system_edge(h.A), "--config", config)
        assert code == 4 and "KEY_MISSING" in text
    kept = [p for p in (w.root / "spool").rglob("*") if p.is_file() and p.suffix in (".arrow", ".jsonl")]
    holding = [p for p in kept if any(r["sfzh"].encode() in p.read_bytes() for r in rows)]
    runs = {p.parent.name for p in holding}
    assert len(runs) <= 1, f"{len(runs)} failed runs keep whole rows in the spool: {sorted(runs)}"


# -- 4. hostile and careless files --------------------------------------------------------------------


def test_a_csv_with_a_wide_header_is_read_or_refused_in_bounded_time(tmp_path: Path) -> None:
    """The CSV reader checks the header for repeated names with `header.count(h)` for every column:
    quadratic. The header may be up to 64 MiB and there is no column limit (JSONL has one, 10,000), so
    a 1.4 MB file with 150,000 columns keeps a sync busy for minutes (about 2.5 minutes here; a few MB
    takes hours), holding the edge's lock, while Arrow itself reads it in about a second. README:
    "Hostile input is refused in bounded time and memory with a coded error".

    Fix: count with a Counter (linear) and refuse more than N columns (FILE_TOO_MANY_COLUMNS), as JSONL.
    """
    path = tmp_path / "wide.csv"
    n = 150_000
    path.write_text(",".join(f"c{i}" for i in range(n)) + "\n" + ",".join("x" for _ in range(n)) + "\n")
    script = (
        "import sys\n"
        "from connectors.files import read_file\n"
        "from connectors.errors import ExtractError\n"
        "try:\n"
        "    for _ in read_file(sys.argv[1]): pass\n"
        "except ExtractError as exc:\n"
        "    print(exc.code)\n"
    )
    root = Path(__file__).resolve().parent.parent
    started = time.monotonic()
    try:
        subprocess.run(
            [sys.executable, "-c", script, str(path)], cwd=root, timeout=20, check=True, capture_output=True
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"reading a {path.stat().st_size:,}-byte CSV with {n:,} columns took more than 20 s")
    assert time.monotonic() - started < 20


def test_a_drop_file_rewritten_in_place_with_its_size_and_mtime_is_archived_unread(
    make_world: Any, h: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: "never archive a file that changed since it was read". The check before archiving compares only
    (size, mtime_ns, inode, device). A writer that rewrites the file in place with new content of the
    same length and keeps its modification time (`cp -p` onto the existing name, `touch -r`, `rsync
    --inplace -t`, an exporter stamping the business day) passes the check: the new content is archived
    without ever being read, and no later run reads it -- those rows are lost to the exchange. The
    file's SHA-256 is already computed for quarantined files; it is not used here.

    Fix: hash the content while reading it (the reader streams it anyway) and archive only if the digest
    still matches (after the move too).
    """
    w = make_world({h.A: h.QINGHAI}, registers=(), drop=(h.A,))
    path = w.drops[h.A] / "daily.csv"
    first, second = h.people(h.A, 5, start=10), h.people(h.A, 5, start=20)
    text_1, text_2 = h.csv_text(first), h.csv_text(second)
    assert len(text_1.encode()) == len(text_2.encode())
    path.write_text(text_1, encoding="utf-8")
    listed = os.stat(path)
    original = runs.seal

    def rewritten_between_read_and_archive(ex: Any, run_uri: str, **kw: Any) -> str:
        with path.open("r+", encoding="utf-8") as fh:  # same inode, same size
            fh.write(text_2)
        os.utime(path, ns=(listed.st_atime_ns, listed.st_mtime_ns))  # and the same mtime
        return original(ex, run_uri, **kw)

    monkeypatch.setattr(runs, "seal", rewritten_between_read_and_archive)
    edge = w.edge(f"drop-{h.A}", h.A)
    w.sync(edge)
    monkeypatch.setattr(runs, "seal", original)
    w.sync(edge)
    lost = [r["sfzh"][:6] for r in second if w.lib(h.A).record(P, r["sfzh"]) is None]
    assert not lost, f"{len(lost)} rows of the rewritten file were archived without being loaded"


def test_done_marker_mode_is_forgotten_once_the_last_marker_is_archived(make_world: Any, h: Any) -> None:
    """A folder "uses .done markers" only while a `*.done` file is present in it. Archiving moves each
    marker along with its file, so after a run has loaded every marked file the folder has no marker
    left and counts as a folder without markers: the next upload is read as soon as it has settled,
    marker or not. A writer relying on markers (its upload stalls for more than the settle time, or it
    checks its file before writing the marker) gets a half file read: here it is cut mid-row and
    quarantined to failed/ (where the writer's open handle keeps writing), or, cut at a line end, loaded
    half and archived.

    Fix: make marker mode an explicit per-system setting (e.g. `done_markers: true`), or remember it
    (markers in archive/ mean the folder uses them).
    """
    w = make_world({h.A: h.QINGHAI}, registers=(), drop=(h.A,), settle=None)  # the default settle, 60 s
    folder = w.drops[h.A]
    past = time.time() - 300
    (folder / "a.csv").write_text(h.csv_text(h.people(h.A, 3)), encoding="utf-8")
    (folder / "a.csv.done").write_text("", encoding="utf-8")  # this folder uses markers
    for name in ("a.csv", "a.csv.done"):
        os.utime(folder / name, (past, past))
    edge = w.edge(f"drop-{h.A}", h.A)
    assert w.sync(edge)["inserted"] == 3
    text = h.csv_text(h.people(h.A, 6, start=10))
    (folder / "b.csv").write_text(text[: len(text) // 2], encoding="utf-8")  # a stalled upload, no marker
    os.utime(folder / "b.csv", (past, past))
    summary = w.sync(edge)
    assert (summary["rows"], summary["quarantined"]) == (0, []), summary
    assert (folder / "b.csv").exists(), "an unmarked file was taken from a folder that uses markers"


# -- 5. keys, trust list, manifests -------------------------------------------------------------------


def test_a_rotated_out_key_signs_for_ever_by_backdating_created_at(make_world: Any, h: Any) -> None:
    """A key's validity is checked at the manifest's `created_at`, a field the signer chooses. After
    `keys rotate` (with no revoke: routine rotation) the old key's `valid_until` passes, but rotate
    leaves the old private key on disk (keys/<node>/<old>.pem), and anyone holding it signs new batches
    dated inside its old validity: they load, for ever. README: "unknown, revoked -- at once -- or
    expired keys are refused". Here the honest expiry check works (first load is refused with
    BATCH_KEY_EXPIRED) and the same batch backdated by a few seconds loads.

    Fix: refuse a key past its `valid_until` at load time too (a grace for batches in flight at most),
    and refuse a `created_at` earlier than the edge's last loaded manifest or later than now + skew.
    """
    w = make_world({h.A: h.QINGHAI})
    w.registers[h.A].put(h.people(h.A, 3))
    w.sync_all()
    province = w.lib(h.QINGHAI)
    row = w.registers[h.A].rows()[0]
    w.registers[h.A].update(row["sfzh"], xm="新名字", gxsj="2025-03-01 11:00:00")
    w.sync(w.system_edge(h.A))
    keys = KeyStore(w.ex.keys_dir)
    old = keys.current(h.A)
    rotated_at = dt.datetime.now(dt.UTC)
    rotate(keys, w.ex.trust_list, h.A, overlap_seconds=1)  # the old key is valid one more second
    time.sleep(2)
    uri, run = _prepared(w, w.edge(h.A, h.QINGHAI))
    engine.seal(w.ex, uri)
    _resign(run, h.A, keys, kid=old)  # signed now with the expired key
    with pytest.raises(SyncError) as err:
        engine.load(w.ex, uri)
    assert err.value.code == "BATCH_KEY_EXPIRED"
    backdated = rotated_at.isoformat().replace("+00:00", "Z")
    _resign(run, h.A, keys, kid=old, created_at=backdated)  # the same key, the date moved back
    with pytest.raises(SyncError) as err:
        engine.load(w.ex, uri)
    assert err.value.code == "BATCH_KEY_EXPIRED"
    assert province.record(P, row["sfzh"])["name"] == row["xm"]


def test_a_trust_list_signed_by_a_root_key_nobody_pinned_is_accepted(make_world: Any, h: Any) -> None:
    """The trust list is verified against the root key listed *inside the list* (engine and repair call
    `TrustList.load` without a pinned key, and the config has no place for one). Whoever can replace
    keys/trust.json -- e.g. in transit when the national node distributes it, or on a shared Airflow
    volume -- writes a list with a fresh "000000" key and any key for any county, signs it with that
    fresh key, and batches signed with the attacker's county key load everywhere. The national node's
    signature on the list therefore protects nothing.

    Fix: pin the root's public key (or its key id) in exchange.yaml / the libraries at `init`, and
    pass it to every `TrustList.load`; a root rotation is then signed by the pinned key.
    """
    from tongban.core.trust import init_trust

    w = make_world({h.A: h.QINGHAI})
    w.registers[h.A].put(h.people(h.A, 3))
    w.sync_all()
    row = w.registers[h.A].rows()[0]
    w.registers[h.A].update(row["sfzh"], xm="伪造", gxsj="2025-03-01 11:00:00")
    w.sync(w.system_edge(h.A))
    mine = KeyStore(w.root / "attacker-keys")  # a fresh key for the root and for county A
    init_trust(mine, [h.A], root=h.NATIONAL, path=w.ex.trust_list)  # re-signed by the fresh root key
    uri, run = _prepared(w, w.edge(h.A, h.QINGHAI))
    engine.seal(w.ex, uri)
    _resign(run, h.A, mine)
    with pytest.raises(SyncError):
        engine.load(w.ex, uri)
    assert w.lib(h.QINGHAI).record(P, row["sfzh"])["name"] == row["xm"]


def test_a_batch_can_take_another_edges_batch_id_and_silently_block_that_edge(
    make_world: Any, h: Any
) -> None:
    """`batch_id` is a manifest field that verify never recomputes (it should be
    `batch_id_for(edge, prev_hash, merkle_root, cursor_to)`), and load skips a batch whose id the
    library's ledger already holds *before* verifying anything, across all edges. County A, which can
    see county B's sealed run (the spool is shared between an Airflow deployment's tasks, and seal and
    load are separate tasks), loads its own honest-looking batch under B's batch id first. B's load
    then counts its batch as a "duplicate" and succeeds with nothing loaded; every rerun seals the same
    rows at the same place in B's chain, gets the same id, and is skipped again: B's records never reach
    the province, and no run ever fails.

    Fix: verify `batch_id == batch_id_for(...)` with the other bindings, and treat as a replay only a
    ledger entry of the same edge (and the same manifest hash).
    """
    w = make_world({h.A: h.QINGHAI, h.B: h.QINGHAI})
    w.registers[h.A].put(h.people(h.A, 3))
    w.registers[h.B].put(h.people(h.B, 3))
    w.sync_all()
    province = w.lib(h.QINGHAI)
    b_new = h.person(h.B, 40, ts="2025-03-01 12:00:00")
    w.registers[h.B].put([b_new])
    w.sync(w.system_edge(h.B))
    uri_b, run_b = _prepared(w, w.edge(h.B, h.QINGHAI))
    engine.seal(w.ex, uri_b)
    b_id = json.loads((run_b / "sealed.json").read_text())["manifests"][0]["manifest"]["batch_id"]
    a_row = w.registers[h.A].rows()[0]
    w.registers[h.A].update(a_row["sfzh"], xm="A改名", gxsj="2025-03-01 11:00:00")
    w.sync(w.system_edge(h.A))
    uri_a, run_a = _prepared(w, w.edge(h.A, h.QINGHAI))
    engine.seal(w.ex, uri_a)
    _resign(run_a, h.A, KeyStore(w.ex.keys_dir), batch_id=b_id)  # A's own rows, on A's own edge
    with pytest.raises(SyncError) as err:  # the id is not the one A's edge, chain and root give
        engine.load(w.ex, uri_a)
    assert err.value.code == "BATCH_ID"
    engine.load(w.ex, uri_b)
    w.sync(w.edge(h.B, h.QINGHAI))
    w.sync(w.edge(h.B, h.QINGHAI))
    assert province.record(P, b_new["sfzh"]) is not None, "B's new record never arrives, and no run fails"


# -- 6. robustness of the steps -----------------------------------------------------------------------


def test_a_spool_file_swapped_for_another_of_the_wrong_shape_is_a_coded_error(
    make_world: Any, h: Any
) -> None:
    """Between two steps (two Airflow tasks) a step file replaced by another, well-formed Arrow file of
    the wrong shape (here the extract part in place of the validated one) makes seal and load raise a
    bare KeyError -- INTERNAL in the CLI, and a *retryable* task failure in Airflow -- where a truncated
    one is SPOOL_CORRUPT (permanent). README: "Errors are one line with a stable code".

    Fix: check each step file's schema against the one the step expects (SPOOL_CORRUPT).
    """
    w = make_world({h.A: h.QINGHAI})
    w.registers[h.A].put(h.people(h.A, 5))
    uri, run = _prepared(w, w.system_edge(h.A))
    shutil.copy(run / "extract-0001.arrow", run / "valid-0001.arrow")
    with pytest.raises(SyncError) as err:
        engine.seal(w.ex, uri)
    assert err.value.code == "SPOOL_CORRUPT" and err.value.permanent


def test_sync_output_prints_identity_numbers_in_drop_file_names(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Per-person drop files are commonly named by the person's identity number (one application, one
    file). `tongban sync` prints the names of quarantined and left files as they are, in text and
    --json, and load.json keeps them in the spool: the number is shown in clear. README: "Everything a
    person reads is masked unless --reveal ...: any identity number inside any other text". (`failed
    show` masks the same name; the sync summary does not.)

    Fix: pass file names in summaries and output through mask_text.
    """
    w = make_world({h.A: h.QINGHAI}, registers=(), drop=(h.A,))
    person = h.person(h.A, 7)
    text = h.csv_text([person])
    (w.drops[h.A] / f"{person['sfzh']}.csv").write_text(text[:-10], encoding="utf-8")  # cut short
    config = str(w.root / "exchange.yaml")
    outputs = [_cli(capsys, "sync", "--config", config)[1]]
    assert "quarantined" in outputs[0]
    (w.drops[h.A] / "failed" / f"{person['sfzh']}.csv").replace(w.drops[h.A] / f"{person['sfzh']}.csv")
    outputs.append(_cli(capsys, "sync", "--config", config, "--json")[1])
    spooled = [p.read_text(encoding="utf-8") for p in (w.root / "spool").rglob("load.json")]
    leaks = [t for t in outputs + spooled if person["sfzh"] in t]
    assert not leaks, leaks[0]
