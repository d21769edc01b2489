"""Maintenance: reconcile a child's library with its parent's (anti-entropy), expire licenses through the
load path, prune the spool and archives — each with drift planted in a library."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tongban.core.maintenance import DigestTree, expire_licenses, prune, reconcile, reconcile_pairs
from tongban.core.maintenance.records import content_hashes, to_table
from tongban.core.store import Library


def _plant(lib: Library, dataset: str, sql: str, **params: Any) -> None:
    with lib.engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def test_reconcile_finds_a_deleted_an_altered_and_an_extra_row(make_world: Any, h: Any) -> None:
    world = make_world({h.A: h.QINGHAI, h.B: h.QINGHAI})
    for county in (h.A, h.B):
        world.registers[county].put(h.people(county, 300))
    world.sync_all()
    province = world.lib(h.QINGHAI)
    clean = reconcile(world.ex, h.A, h.QINGHAI, "population", libs=world.libs)
    assert clean.clean and clean.rows_child == clean.rows_parent == 300 and clean.differing == 0
    assert clean.compared == 1  # equal roots: one digest compared, nothing read key by key

    keys = sorted(r["sfzh"] for r in world.registers[h.A].rows())
    deleted, altered = keys[10], keys[20]
    _plant(province, "population", "delete from population where id_number = :k", k=deleted)
    # Altered in place, its stored hash left as it was: only the content shows it.
    _plant(province, "population", "update population set name = '改名' where id_number = :k", k=altered)
    # An extra row for A that A never sent: a copy of a B record relabelled as A's.
    other = sorted(r["sfzh"] for r in world.registers[h.B].rows())[0]
    _plant(province, "population", "update population set _owner = :a where id_number = :k", a=h.A, k=other)

    drift = reconcile(world.ex, h.A, h.QINGHAI, "population", libs=world.libs)
    assert drift.missing == [deleted]
    assert drift.different == [altered]
    assert drift.extra == [other]
    assert drift.recorded == 3
    # Found without reading whole tables: only the differing buckets were read key by key.
    assert drift.differing <= 3 and drift.keys_read < 2 * 300 / 4
    failures = {f["row_key"]: f["codes"] for f in province.failures(edge=f"population.{h.A}.{h.QINGHAI}")}
    assert failures == {
        deleted: "RECONCILE_MISSING",
        altered: "RECONCILE_DIFFERENT",
        other: "RECONCILE_EXTRA",
    }
    # The planted name is plain where a sealed value belongs: the record does not open, and shows as different.
    planted = next(
        f for f in province.failures(edge=f"population.{h.A}.{h.QINGHAI}") if f["row_key"] == altered
    )
    assert json.loads(planted["payload"])["parent_hash"] == "unopened:DATA_TAMPERED"
    # A rerun finds the same drift and records nothing new.
    again = reconcile(world.ex, h.A, h.QINGHAI, "population", libs=world.libs)
    assert again.recorded == 0 and len(again.missing) == 1

    # Records the child loaded after the parent's cursor are in flight, not drift.
    world.registers[h.B].put(h.people(h.B, 5, start=1000, ts="2025-03-02 10:00:00"))
    world.sync(world.system_edge(h.B))
    pending = reconcile(world.ex, h.B, h.QINGHAI, "population", libs=world.libs)
    assert pending.pending == 5 and not pending.missing
    # B's record relabelled as A's is missing for B (the parent holds it under another owner, A,
    # which is not a migration B released it by, but a drift of A's).
    assert all(
        d.edge.endswith(h.QINGHAI)
        for d in reconcile_pairs(world.ex, h.QINGHAI, "population", libs=world.libs)
    )


def test_digest_tree_walks_only_into_differing_buckets() -> None:
    a, b = DigestTree(3), DigestTree(3)
    for i in range(5000):
        a.add(f"k{i}", f"h{i}")
        b.add(f"k{i}", f"h{i}" if i != 77 else "changed")
    diff, compared = a.differing(b)
    assert len(diff) == 1
    assert compared == 1 + 16 * 3  # the root, then 16 children at each of three levels


def test_expire_licenses_goes_through_the_load_path(tmp_path: Path) -> None:
    from tongban.core.config import load_exchange
    from tongban.core.engine import Libraries, sync_edge
    from tongban.core.initialize import initialize
    from tongban.demo.exchange_yaml import demo_exchange_yaml
    from tongban.demo.generate import DEMO_COUNTIES, generate_demo

    manifest = generate_demo(tmp_path, population_per_county=5, business_per_county=5, license_per_county=40)
    (tmp_path / "exchange.yaml").write_text(
        demo_exchange_yaml(tmp_path, manifest["systems"], DEMO_COUNTIES), encoding="utf-8"
    )
    ex = load_exchange(tmp_path / "exchange.yaml")
    initialize(ex)
    county = "630104"
    with Libraries(ex) as libs:
        for edge in ex.edges_into(county, "license"):
            sync_edge(ex, edge.id, libs=libs)
        sync_edge(ex, f"license.{county}.630000", libs=libs)
        lib = libs.get(county)
        today = dt.date(2030, 1, 1)
        with lib.connect() as conn:
            due = {
                k
                for (k,) in conn.execute(
                    sa.text("select license_id from license where status = '01' and valid_until < :d"),
                    {"d": today.isoformat()},
                )
            }
        assert due, "the demo has licenses that end before 2030"
        before = {k: lib.record("license", k) for k in due}
        seq_before = max(r["_seq"] for r in before.values())
        done = expire_licenses(ex, county, today=today, libs=libs)
        assert done["expired"] == len(due) and done["skipped"] == 0
        for key in due:
            now = lib.record("license", key)
            assert now["status"] == "05" and now["_seq"] > seq_before
            assert now["_hash"] != before[key]["_hash"]
            # Its stored hash is its content's (the load path hashed it), and the owner's history shows
            # the version it replaced, still 01.
            assert content_hashes("license", to_table("license", [now])) == [now["_hash"]]
            history = lib.history("license", key)
            assert history[-1]["status"] == "01" and history[-1]["_reason"] == "replaced"
        assert lib.loaded(now["_batch"])  # a batch in the ledger, signed by the county
        # Nothing left to expire; the change travels up with the next sync.
        assert expire_licenses(ex, county, today=today, libs=libs)["expired"] == 0
        up = sync_edge(ex, f"license.{county}.630000", libs=libs)
        assert up["updated"] == len(due)
        assert libs.get("630000").record("license", next(iter(due)))["status"] == "05"


def test_prune_removes_old_runs_and_archives_only(make_world: Any, h: Any) -> None:
    world = make_world({h.A: h.QINGHAI}, drop=(h.A,))
    world.registers[h.A].put(h.people(h.A, 3))
    (world.drops[h.A] / "a.csv").write_text(h.csv_text(h.people(h.A, 2, start=50)), encoding="utf-8")
    world.sync_all()
    archive = world.drops[h.A] / "archive"
    days = sorted(p.name for p in archive.iterdir())
    assert days
    old_day = archive / "20200101"
    old_day.mkdir()
    (old_day / "old.csv").write_text("x", encoding="utf-8")
    runs = [p for p in world.ex.spool.glob("*/*") if p.is_dir()]
    assert runs
    old = time.time() - 40 * 86_400
    os.utime(runs[0] / "load.json", (old, old))
    done = prune(world.ex, spool_days=30, archive_days=90)
    assert done["runs"] == 1 and done["archives"] == 1
    assert not runs[0].exists() and all(r.exists() for r in runs[1:])
    assert not old_day.exists() and sorted(p.name for p in archive.iterdir()) == days
    assert prune(world.ex, spool_days=30, archive_days=90)["runs"] == 0


@pytest.mark.parametrize("n", [0, 1])
def test_digest_tree_of_nothing_and_one(n: int) -> None:
    a, b = DigestTree(1), DigestTree(1)
    for _ in range(n):
        a.add("k", "h")
        b.add("k", "h")
    assert a.differing(b) == ([], 1)
