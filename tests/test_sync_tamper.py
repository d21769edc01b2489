"""tongban.core.engine.load: a tampered, forged, replayed, out-of-chain or revoked-key batch never loads.

Each test seals a run (extract, validate, seal), interferes with the spool files or the trust list
the way an attacker or a broken transfer would, then loads: the batch is rejected whole, recorded as
a failed transfer of kind "batch" with its code, and the next honest run recovers.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from tongban.core import engine
from tongban.core.engine import SyncError
from tongban.core.trust import KeyStore, b64url, revoke, rotate
from tongban.core.trust.manifest import Manifest

P = "population"


@pytest.fixture
def world(make_world: Any, h: Any) -> Any:
    """One county, ten residents, batches of four (three batches per full run)."""
    w = make_world({h.A: h.QINGHAI}, batch_size=4)
    w.registers[h.A].put(h.people(h.A, 10))
    w.edge_id = w.system_edge(h.A)
    return w


def sealed(w: Any) -> tuple[str, Path]:
    uri = engine.extract(w.ex, w.edge_id)
    engine.validate(w.ex, uri)
    engine.seal(w.ex, uri)
    return uri, engine.path_of(uri)


def manifests(run: Path) -> list[dict[str, Any]]:
    return json.loads((run / "sealed.json").read_text())["manifests"]


def set_manifest(run: Path, index: int, manifest: Manifest) -> None:
    data = json.loads((run / "sealed.json").read_text())
    data["manifests"][index]["manifest"] = json.loads(manifest.to_json())
    (run / "sealed.json").write_text(json.dumps(data))


def manifest(run: Path, index: int) -> Manifest:
    return Manifest.from_json(json.dumps(manifests(run)[index]["manifest"]))


def ledger_ids(lib: Any) -> list[str]:
    t = lib.tables["batches"]
    with lib.connect() as c:
        return [r[0] for r in c.execute(sa.select(t.c.batch_id).order_by(t.c.loaded_at))]


def rejected_with(lib: Any, code: str, batch_id: str) -> dict[str, Any]:
    [failure] = lib.failures(kind="batch")
    assert failure["codes"] == code and failure["batch_id"] == batch_id and failure["state"] == "open"
    assert failure["message_zh"] and failure["message_en"]
    assert json.loads(failure["payload"])["manifest"]["batch_id"] == batch_id
    return failure


def recovers(w: Any, h: Any) -> None:
    """An honest run after the rejection loads everything, as the register holds it."""
    summary = w.sync(w.edge_id)
    assert summary["conflicts"] == summary["rejected"] == 0
    lib = w.lib(h.A)
    rows = w.registers[h.A].rows()
    assert lib.count(P) == len(rows)
    for row in rows:
        assert lib.record(P, row["sfzh"])["name"] == row["xm"]
    # The refused batch resolved itself once the edge succeeded (its history says so).
    refused = lib.failures(kind="batch", state=None)
    assert refused and {(f["state"], f["closed_by"]) for f in refused} == {("resolved", "sync")}


def test_altered_row_in_the_sealed_arrow_file_is_batch_root(world: Any, h: Any) -> None:
    uri, run = sealed(world)
    path = run / "valid-0001.arrow"
    reader = pa.ipc.open_file(pa.BufferReader(path.read_bytes()))  # in memory: the file is rewritten
    schema = reader.schema
    batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
    assert [b.num_rows for b in batches] == [4, 4, 2]
    table = pa.Table.from_batches([batches[1]])
    names = table.column("name").to_pylist()
    names[2] = "篡改的名字"
    i = table.column_names.index("name")
    batches[1] = table.set_column(i, table.schema.field(i), pa.array(names, pa.string())).to_batches()[0]
    with pa.ipc.new_file(str(path), schema) as writer:
        for b in batches:
            writer.write_batch(b)
    second = manifest(run, 1)
    with pytest.raises(SyncError) as err:
        engine.load(world.ex, uri)
    assert err.value.code == "BATCH_ROOT" and err.value.permanent
    lib = world.lib(h.A)
    first_keys = set(pa.Table.from_batches([batches[0]]).column("id_number").to_pylist())
    with lib.connect() as c:
        t = lib.tables[P]
        assert {r[0] for r in c.execute(sa.select(t.c.id_number))} == first_keys  # batch 1 only
        assert c.execute(sa.select(t).where(t.c.name == "篡改的名字")).first() is None
    assert ledger_ids(lib) == [manifest(run, 0).batch_id]
    rejected_with(lib, "BATCH_ROOT", second.batch_id)
    recovers(world, h)


@pytest.mark.parametrize("field", ["signature", "merkle_root", "rows"])
def test_altered_manifest_is_batch_signature(world: Any, h: Any, field: str) -> None:
    uri, run = sealed(world)
    original = manifest(run, 0)
    forged = {
        "signature": dataclasses.replace(original, signature=b64url(bytes(64))),
        "merkle_root": dataclasses.replace(original, merkle_root="0" * 64),
        "rows": dataclasses.replace(original, rows=original.rows + 1),
    }[field]
    set_manifest(run, 0, forged)
    with pytest.raises(SyncError) as err:
        engine.load(world.ex, uri)
    assert err.value.code == "BATCH_SIGNATURE"
    lib = world.lib(h.A)
    assert lib.count(P) == 0 and ledger_ids(lib) == [] and lib.state(world.edge_id) is None
    rejected_with(lib, "BATCH_SIGNATURE", original.batch_id)
    recovers(world, h)


def test_replayed_batches_are_duplicates(world: Any, h: Any) -> None:
    uri, _ = sealed(world)
    first = engine.load(world.ex, uri, keep_files=True)
    assert (first["batches"], first["inserted"], first["duplicates"]) == (3, 10, 0)
    lib = world.lib(h.A)
    ids = ledger_ids(lib)
    replay = engine.load(world.ex, uri, keep_files=True)
    assert (replay["batches"], replay["inserted"], replay["updated"], replay["duplicates"]) == (0, 0, 0, 3)
    assert lib.count(P) == 10 and ledger_ids(lib) == ids and lib.state(world.edge_id)["rows_loaded"] == 10
    # Still a no-op after the chain moved on.
    world.registers[h.A].update(
        next(iter(world.registers[h.A].key_set())), xm="新名字", gxsj="2025-03-01 11:00:00"
    )
    assert world.sync(world.edge_id)["updated"] == 1
    again = engine.load(world.ex, uri)
    assert again["duplicates"] == 3 and again["batches"] == 0
    assert lib.count(P) == 10 and lib.failures(kind="batch") == []


def test_batch_signed_by_a_revoked_key(world: Any, h: Any) -> None:
    uri, run = sealed(world)
    keys = KeyStore(world.ex.keys_dir)
    kid = keys.current(h.A)
    assert manifest(run, 0).key_id == kid
    revoke(keys, world.ex.trust_list, kid, "笔记本电脑丢失 laptop lost")
    with pytest.raises(SyncError) as err:
        engine.load(world.ex, uri)
    assert err.value.code == "BATCH_KEY_REVOKED" and err.value.permanent
    lib = world.lib(h.A)
    assert lib.count(P) == 0 and ledger_ids(lib) == []
    rejected_with(lib, "BATCH_KEY_REVOKED", manifest(run, 0).batch_id)
    with pytest.raises(SyncError) as err:  # still the revoked key: every new batch is refused
        world.sync(world.edge_id)
    assert err.value.code == "BATCH_KEY_REVOKED"
    rotate(keys, world.ex.trust_list, h.A)
    recovers(world, h)


def test_batch_signed_by_an_unknown_key(world: Any, h: Any) -> None:
    KeyStore(world.ex.keys_dir).generate(h.A)  # a new key the trust list never heard of
    uri, run = sealed(world)
    with pytest.raises(SyncError) as err:
        engine.load(world.ex, uri)
    assert err.value.code == "BATCH_KEY_UNKNOWN"
    assert world.lib(h.A).count(P) == 0
    rejected_with(world.lib(h.A), "BATCH_KEY_UNKNOWN", manifest(run, 0).batch_id)


def test_forged_prev_hash_is_batch_chain(world: Any, h: Any) -> None:
    uri, run = sealed(world)
    original = manifest(run, 0)
    _, private = KeyStore(world.ex.keys_dir).signer(h.A)
    unsigned = dataclasses.replace(original, prev_hash="ab" * 32, signature="")
    forged = dataclasses.replace(unsigned, signature=b64url(private.sign(unsigned.canonical_bytes())))
    set_manifest(run, 0, forged)  # properly signed, but not chained to the edge's last batch
    with pytest.raises(SyncError) as err:
        engine.load(world.ex, uri)
    assert err.value.code == "BATCH_CHAIN"
    assert world.lib(h.A).count(P) == 0
    rejected_with(world.lib(h.A), "BATCH_CHAIN", original.batch_id)
    recovers(world, h)


def test_run_sealed_against_an_old_chain_is_batch_chain(world: Any, h: Any) -> None:
    uri1, _ = sealed(world)
    reg = world.registers[h.A]
    key = reg.rows()[0]["sfzh"]  # in run 1's first batch: run 2's first batch differs from it
    reg.update(key, xm="第二次", gxsj="2025-03-01 11:00:00")
    uri2, run2 = sealed(world)  # sealed before run 1 loaded: chained to the same (empty) past
    assert engine.load(world.ex, uri1)["inserted"] == 10
    with pytest.raises(SyncError) as err:
        engine.load(world.ex, uri2)
    assert err.value.code == "BATCH_CHAIN"
    lib = world.lib(h.A)
    assert lib.record(P, key)["name"] != "第二次"
    rejected_with(lib, "BATCH_CHAIN", manifest(run2, 0).batch_id)
    recovers(world, h)
    assert lib.record(P, key)["name"] == "第二次"
