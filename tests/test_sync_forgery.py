"""A valid signature proves only who signed: a county cannot load records it does not own, on an edge
that is not its own, into a library or dataset the batch was not sealed for.

Each test plays a county that holds its own key and writes its own spool (it can sign anything), then
loads into the province: the batch is refused whole with its own code, kept as a failed transfer, the
province's library is untouched, and the next honest sync still loads everything.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from tongban.core import engine
from tongban.core.engine import SyncError
from tongban.core.trust import KeyStore, b64url
from tongban.core.trust.manifest import Manifest

P = "population"


@pytest.fixture
def world(make_world: Any, h: Any) -> Any:
    """Counties A and B of one province, each with five residents, synced up to the nation."""
    w = make_world({h.A: h.QINGHAI, h.B: h.QINGHAI})
    w.registers[h.A].put(h.people(h.A, 5))
    w.registers[h.B].put(h.people(h.B, 5))
    w.sync_all()
    return w


def snapshot(lib: Any) -> dict[str, Any]:
    """Everything a load could touch: records, history, ledger, state (and nothing else)."""
    out = {}
    with lib.connect() as c:
        for name in (P, f"{P}_history", "batches", "sync_state"):
            t = lib.tables[name]
            out[name] = sorted(tuple(map(str, r)) for r in c.execute(sa.select(t)))
    return out


def prepared(w: Any, edge: str) -> tuple[str, Path]:
    """An extracted and validated run of ``edge`` (not sealed yet)."""
    uri = engine.extract(w.ex, edge)
    engine.validate(w.ex, uri)
    return uri, engine.path_of(uri)


def rewrite_valid(run: Path, change: Any) -> None:
    """Apply ``change(list of row dicts) -> list of row dicts`` to the run's validated rows."""
    path = run / "valid-0001.arrow"
    reader = pa.ipc.open_file(pa.BufferReader(path.read_bytes()))
    schema = reader.schema
    rows = change(reader.read_all().to_pylist())
    with pa.ipc.new_file(str(path), schema) as writer:
        writer.write_table(pa.Table.from_pylist(rows, schema=schema))


def resign(run: Path, node: str, keys: KeyStore, **changes: Any) -> None:
    """Re-sign every manifest of the run with ``node``'s own key, after ``changes``."""
    kid, private = keys.signer(node)
    data = json.loads((run / "sealed.json").read_text())
    for entry in data["manifests"]:
        m = Manifest.from_json(json.dumps(entry["manifest"]))
        unsigned = dataclasses.replace(m, key_id=kid, signature="", **changes)
        signed = dataclasses.replace(unsigned, signature=b64url(private.sign(unsigned.canonical_bytes())))
        entry["manifest"] = json.loads(signed.to_json())
    (run / "sealed.json").write_text(json.dumps(data))


def refused(w: Any, uri: str, code: str, province: Any) -> None:
    before = snapshot(province)
    with pytest.raises(SyncError) as err:
        engine.load(w.ex, uri)
    assert err.value.code == code and err.value.permanent
    assert snapshot(province) == before  # untouched
    [failure] = [f for f in province.failures(kind="batch") if f["codes"] == code]
    assert failure["state"] == "open" and failure["message_zh"] and failure["message_en"]


def test_county_sealing_another_countys_record_on_its_own_edge(world: Any, h: Any) -> None:
    w = world
    province, national = w.lib(h.QINGHAI), w.lib(h.NATIONAL)
    victim = w.registers[h.B].rows()[0]
    stored = province.record(P, victim["sfzh"])
    assert stored["_owner"] == h.B
    a_row = w.registers[h.A].rows()[0]
    w.registers[h.A].update(a_row["sfzh"], xm="新名字", gxsj="2025-03-01 11:00:00")
    w.sync(w.system_edge(h.A))
    edge = w.edge(h.A, h.QINGHAI)
    uri, run = prepared(w, edge)

    def forge(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # A's one changed row becomes B's resident, owned by B, renamed: a forgery sealed by A.
        return [{**r, "id_number": victim["sfzh"], "name": "伪造", "_owner": h.B} for r in rows]

    rewrite_valid(run, forge)
    engine.seal(w.ex, uri)  # A's own, valid signature over the forged rows
    refused(w, uri, "BATCH_OWNER", province)
    assert province.record(P, victim["sfzh"])["name"] == victim["xm"]
    w.sync_all()  # nothing of the forgery travels on; the honest change does
    assert national.record(P, victim["sfzh"])["name"] == victim["xm"]
    assert national.record(P, victim["sfzh"])["_owner"] == h.B
    assert national.record(P, a_row["sfzh"])["name"] == "新名字"


def test_county_claiming_another_countys_record_as_its_own_is_a_conflict(world: Any, h: Any) -> None:
    """Owned by the signer but the key is B's record: the row is an owner conflict, B's record stays."""
    w = world
    province = w.lib(h.QINGHAI)
    victim = w.registers[h.B].rows()[0]
    a_row = w.registers[h.A].rows()[0]
    w.registers[h.A].update(a_row["sfzh"], xm="新名字", gxsj="2025-03-01 11:00:00")
    w.sync(w.system_edge(h.A))
    uri, run = prepared(w, w.edge(h.A, h.QINGHAI))
    rewrite_valid(run, lambda rows: [{**r, "id_number": victim["sfzh"], "name": "伪造"} for r in rows])
    engine.seal(w.ex, uri)
    summary = engine.load(w.ex, uri)
    assert summary["conflicts"] == 1 and summary["inserted"] == summary["updated"] == 0
    assert province.record(P, victim["sfzh"])["name"] == victim["xm"]
    assert province.record(P, victim["sfzh"])["_owner"] == h.B


def test_county_signing_for_another_countys_edge(world: Any, h: Any) -> None:
    w = world
    province = w.lib(h.QINGHAI)
    b_row = w.registers[h.B].rows()[0]
    w.registers[h.B].update(b_row["sfzh"], xm="B改名", gxsj="2025-03-01 11:00:00")
    w.sync(w.system_edge(h.B))
    edge = w.edge(h.B, h.QINGHAI)
    uri, run = prepared(w, edge)
    rewrite_valid(run, lambda rows: [{**r, "name": "伪造"} for r in rows])
    engine.seal(w.ex, uri)
    # A signs with its own key, names itself the source, keeps B's edge and B's current previous hash.
    resign(run, h.A, KeyStore(w.ex.keys_dir), source=h.A)
    refused(w, uri, "BATCH_SIGNER", province)
    assert province.record(P, b_row["sfzh"])["name"] == b_row["xm"]
    honest = w.sync(edge)
    assert honest["updated"] == 1 and province.record(P, b_row["sfzh"])["name"] == "B改名"


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("target", "620000", "BATCH_TARGET"),
        ("edge", "population.630103.620000", "BATCH_EDGE"),
        ("dataset", "business", "BATCH_DATASET"),
    ],
)
def test_manifest_for_another_target_edge_or_dataset(
    world: Any, h: Any, field: str, value: str, code: str
) -> None:
    w = world
    province = w.lib(h.QINGHAI)
    b_row = w.registers[h.B].rows()[0]
    w.registers[h.B].update(b_row["sfzh"], xm="B改名", gxsj="2025-03-01 11:00:00")
    w.sync(w.system_edge(h.B))
    edge = w.edge(h.B, h.QINGHAI)
    uri, run = prepared(w, edge)
    engine.seal(w.ex, uri)
    resign(run, h.B, KeyStore(w.ex.keys_dir), **{field: value})  # re-signed by its own sender
    refused(w, uri, code, province)
    honest = w.sync(edge)
    assert honest["updated"] == 1 and province.record(P, b_row["sfzh"])["name"] == "B改名"


def test_province_forwards_its_counties_records_but_not_another_provinces(make_world: Any, h: Any) -> None:
    w = make_world({h.A: h.QINGHAI, h.C: h.GANSU})
    w.registers[h.A].put(h.people(h.A, 3))
    w.registers[h.C].put(h.people(h.C, 3))
    for e in w.ex.edges:
        if e.target != h.NATIONAL:
            w.sync(e.id)
    national = w.lib(h.NATIONAL)
    uri, run = prepared(w, w.edge(h.QINGHAI, h.NATIONAL))
    rewrite_valid(run, lambda rows: [{**r, "_owner": h.C} if i == 0 else r for i, r in enumerate(rows)])
    engine.seal(w.ex, uri)
    refused(w, uri, "BATCH_OWNER", national)
    assert w.sync(w.edge(h.QINGHAI, h.NATIONAL))["inserted"] == 3  # A's records, forwarded by 630000
    assert w.sync(w.edge(h.GANSU, h.NATIONAL))["inserted"] == 3
    assert {national.record(P, r["sfzh"])["_owner"] for r in w.registers[h.C].rows()} == {h.C}


def test_repair_after_a_key_compromise(world: Any, h: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """A stolen key got forged rows in; after rotate, revoke and repair, the honest rows all arrive."""
    from tongban.cli import main
    from tongban.core.trust import revoke, rotate

    w = world
    province, national = w.lib(h.QINGHAI), w.lib(h.NATIONAL)
    own = w.registers[h.A].rows()[0]
    newcomer = h.person(h.B, 100, ts="2025-03-01 12:00:00")  # B's resident, not yet synced anywhere
    w.registers[h.A].update(own["sfzh"], gxsj="2025-03-01 11:00:00")
    w.sync(w.system_edge(h.A))
    uri, run = prepared(w, w.edge(h.A, h.QINGHAI))

    def forge(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        [row] = rows
        birth = dt.date.fromisoformat(newcomer["csrq"])
        squat = {**row, "id_number": newcomer["sfzh"], "birth_date": birth, "name": "抢注"}
        return [{**row, "name": "篡改"}, squat]

    rewrite_valid(run, forge)
    engine.seal(w.ex, uri)  # signed with A's (stolen) key: it loads
    assert engine.load(w.ex, uri)["inserted"] == 1
    w.sync_all()
    assert national.record(P, own["sfzh"])["name"] == "篡改"
    assert national.record(P, newcomer["sfzh"])["_owner"] == h.A
    # B's honest row for the squatted key is blocked as an owner conflict.
    w.registers[h.B].put([newcomer])
    w.sync_all()
    assert province.record(P, newcomer["sfzh"])["_owner"] == h.A
    assert [f["row_key"] for f in province.failures(code="OWNER_CONFLICT")] == [newcomer["sfzh"]]

    keys = KeyStore(w.ex.keys_dir)
    stolen = keys.current(h.A)
    rotate(keys, w.ex.trust_list, h.A)
    revoke(keys, w.ex.trust_list, stolen, "密钥泄露 key compromised")
    config = str(w.root / "exchange.yaml")
    assert main(["keys", "repair", stolen, "--config", config, "--dry-run"]) == 0
    assert national.record(P, newcomer["sfzh"])["_owner"] == h.A  # a dry run changes nothing
    assert main(["keys", "repair", stolen, "--config", config]) == 0
    out = capsys.readouterr().out
    assert "630000" in out and "000000" in out
    assert province.record(P, newcomer["sfzh"]) is None and national.record(P, newcomer["sfzh"]) is None
    assert [r["_reason"] for r in national.history(P, newcomer["sfzh"])] == ["revoked"]
    w.sync_all()  # re-pulls from the owners
    for lib in (province, national):
        assert lib.record(P, newcomer["sfzh"])["_owner"] == h.B
        assert lib.record(P, newcomer["sfzh"])["name"] == newcomer["xm"]
        assert lib.record(P, own["sfzh"])["name"] == own["xm"]
    kinds = {(f["codes"], f["kind"]) for f in province.failures()}
    assert ("BATCH_KEY_REVOKED", "batch") in kinds
    assert main(["keys", "repair", "0" * 16, "--config", config]) == 2  # unknown key: a coded refusal
    assert main(["keys", "repair", keys.current(h.B), "--config", config]) == 2  # not revoked


def test_rotating_the_root_key_repins_the_libraries(
    world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """After `keys rotate 000000` the list is signed by the new root key and every library trusts it."""
    from tongban.cli import main

    w = world
    config = str(w.root / "exchange.yaml")
    before = w.lib(h.QINGHAI).pinned_root()
    assert main(["keys", "rotate", h.NATIONAL, "--config", config]) == 0
    assert w.lib(h.QINGHAI).pinned_root() != before
    row = w.registers[h.A].rows()[0]
    w.registers[h.A].update(row["sfzh"], xm="新名字", gxsj="2025-03-01 11:00:00")
    w.sync_all()
    assert w.lib(h.NATIONAL).record(P, row["sfzh"])["name"] == "新名字"
