"""tongban.core.store: one transaction per batch, history instead of overwrites, ownership, chain and ledger.

Every test runs against SQLite and, when TONGBAN_TEST_POSTGRES_URL is set, against PostgreSQL in a
schema of its own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

import schemas
from tongban.core.store import SCHEMA_VERSION, FailedRow, Library, LoadResult, StoreError, Vault, migrate
from tongban.core.store.tables import LOOKUP_INDEXES
from tongban.core.store.vault import INDEXED, index_column
from tongban.core.trust.merkle import row_hashes

PROVINCE, A, B, C = "630000", "630102", "630103", "620102"
EDGE = f"population.{A}.{PROVINCE}"
UTC = dt.UTC
T1 = dt.datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
T2 = dt.datetime(2025, 3, 2, 2, 0, tzinfo=UTC)
T3 = dt.datetime(2025, 3, 3, 2, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def lib(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Library]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'library.sqlite'}"
    else:
        url = request.getfixturevalue("pg_url")
    library = Library(url, PROVINCE, Vault(PROVINCE, tmp_path / "keys"))
    library.vault.create()
    library.migrate()
    yield library
    library.dispose()


def resident(key: int, **over: Any) -> dict[str, Any]:
    """A population record in canonical types (the store does not validate: any values do)."""
    return {
        "id_number": f"63010219800101{key:04d}",
        "name": f"居民{key}",
        "gender": "1",
        "ethnicity": "01",
        "birth_date": dt.date(1980, 1, 1),
        "household_division": A,
        "household_address": f"和平路{key}号",
        "status": "normal",
        "moved_to": None,
        "updated_at": T1,
        **over,
    }


def firm(key: int, **over: Any) -> dict[str, Any]:
    return {
        "uscc": f"91630102MA{key:07d}X",
        "name": f"青海某某有限公司{key}",
        "entity_type": "有限责任公司",
        "legal_representative": "张三",
        "legal_rep_id_number": None,
        "registered_capital": Decimal("100.5000"),
        "established_date": dt.date(2015, 6, 1),
        "registration_authority": "城东区市场监督管理局",
        "division": A,
        "address": "和平路1号",
        "business_scope": None,
        "status": "active",
        "moved_to": None,
        "updated_at": T1,
        **over,
    }


def batch(dataset: str, records: list[dict[str, Any]], owner: str | list[str], batch_id: str) -> pa.Table:
    """``records`` with the meta columns the engine adds (leaf hash over the fields and the owner)."""
    spec = schemas.get(dataset)
    schema = pa.schema([f.with_nullable(True) for f in spec.schema])
    table = pa.Table.from_pylist(records, schema=schema)
    n = table.num_rows
    owners = owner if isinstance(owner, list) else [owner] * n
    table = table.append_column("_owner", pa.array(owners, pa.string()))
    leaves = row_hashes(table, [*spec.names, "_owner"])
    meta = {
        "_hash": pa.array([bytes(x).hex() for x in leaves], pa.string()),
        "_batch": pa.array([batch_id] * n, pa.string()),
        "_leaf": pa.array(range(n), pa.int32()),
        "_source": pa.array([owners[0]] * n, pa.string()),
        "_flags": pa.array([None] * n, pa.string()),
        "_synced_at": pa.array([dt.datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC")),
    }
    for name, col in meta.items():
        table = table.append_column(name, col)
    return table


class Edge:
    """Loads batches on one edge, keeping its chain the way the engine does."""

    def __init__(self, lib: Library, edge: str = EDGE, dataset: str = "population") -> None:
        self.lib, self.edge, self.dataset = lib, edge, dataset
        self.prev = ""
        self.n = 0

    def load(
        self,
        records: list[dict[str, Any]],
        owner: str | list[str] = A,
        *,
        rejected: list[FailedRow] | None = None,
        cursor: dict[str, Any] | None = None,
        batch_id: str | None = None,
        prev: str | None = None,
    ) -> LoadResult:
        self.n += 1
        batch_id = batch_id or f"{self.edge}-{self.n:04d}"
        digest = hashlib.sha256(batch_id.encode()).hexdigest()
        result = self.lib.load_batch(
            edge=self.edge,
            dataset=self.dataset,
            source=A,
            manifest_json='{"test": true}',
            manifest_hash=digest,
            batch_id=batch_id,
            prev_hash=self.prev if prev is None else prev,
            rows=batch(self.dataset, records, owner, batch_id),
            rejected=rejected or [],
            cursor=cursor,
        )
        if not result.duplicate:
            self.prev = digest
        return result


def key(i: int) -> str:
    return resident(i)["id_number"]


def ledger(lib: Library) -> list[dict[str, Any]]:
    t = lib.tables["batches"]
    with lib.connect() as c:
        return [dict(r) for r in c.execute(sa.select(t).order_by(t.c.loaded_at, t.c.batch_id)).mappings()]


def snapshot(lib: Library) -> dict[str, Any]:
    """Everything a load can touch, to compare before and after."""
    out: dict[str, Any] = {}
    with lib.connect() as c:
        for name in ("population", "population_history", "batches", "failed_transfers", "sync_state"):
            t = lib.tables[name]
            out[name] = sorted(str(sorted(dict(r).items())) for r in c.execute(sa.select(t)).mappings())
    return out


# -- schema -----------------------------------------------------------------------------------------


def test_migrate_is_idempotent_and_records_the_version(lib: Library) -> None:
    assert lib.migrate() == SCHEMA_VERSION
    assert migrate(lib.engine) == SCHEMA_VERSION
    meta = lib.tables["tongban_meta"]
    with lib.connect() as c:
        rows = c.execute(sa.select(meta.c.name, meta.c.value)).all()
    assert [tuple(r) for r in rows] == [("schema_version", str(SCHEMA_VERSION))]
    names = set(sa.inspect(lib.engine).get_table_names())
    assert {"population", "population_history", "batches", "failed_transfers", "sync_state"} <= names
    with lib.engine.begin() as c:
        c.execute(meta.update().values(value=str(SCHEMA_VERSION + 1)))
    with pytest.raises(StoreError) as err:
        lib.migrate()
    assert err.value.code == "LIBRARY_TOO_NEW"


def _as_version_1(lib: Library) -> None:
    """Take a library back to schema version 1 (no load sequence numbers, no key ids in the ledger)."""
    with lib.engine.begin() as c:
        for name, dataset in schemas.DATASETS.items():
            c.exec_driver_sql(f"DROP INDEX ix_{name}_seq")
            for table in (name, f"{name}_history"):
                c.exec_driver_sql(f'ALTER TABLE "{table}" DROP COLUMN "_seq"')
            c.exec_driver_sql(f'CREATE INDEX ix_{name}_synced ON "{name}" (_synced_at, "{dataset.key}")')
        c.exec_driver_sql("DROP INDEX ix_batches_key_id")
        c.exec_driver_sql("ALTER TABLE batches DROP COLUMN seq")
        c.exec_driver_sql("ALTER TABLE batches DROP COLUMN key_id")
        c.exec_driver_sql("DROP TABLE load_seq")
        c.exec_driver_sql("UPDATE tongban_meta SET value = '1' WHERE name = 'schema_version'")


def test_version_1_library_migrates_to_load_sequence_numbers(lib: Library) -> None:
    edge = Edge(lib)
    edge.load([resident(1), resident(2)])
    edge.load([resident(3), resident(1, name="改名", updated_at=T2)])
    _as_version_1(lib)
    assert lib.migrate() == SCHEMA_VERSION
    seqs = {key(i): lib.record("population", key(i))["_seq"] for i in (1, 2, 3)}
    assert seqs == {key(1): 2, key(2): 1, key(3): 2}
    assert [b["seq"] for b in ledger(lib)] == [1, 2]
    indexes = {ix["name"] for ix in sa.inspect(lib.engine).get_indexes("population")}
    assert "ix_population_seq" in indexes and "ix_population_synced" not in indexes
    edge.load([resident(4)])
    assert lib.record("population", key(4))["_seq"] == 3


def test_version_2_library_drops_the_owner_index(lib: Library) -> None:
    """Step 4: the records tables keep only the primary key, ``_seq`` alone and the keyed-hash index of a
    looked-up sealed field (step 6); the rest stays."""
    edge = Edge(lib)
    edge.load([resident(1), resident(2)])
    with lib.engine.begin() as c:
        for name in schemas.DATASETS:
            c.exec_driver_sql(f'CREATE INDEX ix_{name}_owner ON "{name}" (_owner)')
        c.exec_driver_sql("UPDATE tongban_meta SET value = '2' WHERE name = 'schema_version'")
    assert lib.migrate() == SCHEMA_VERSION >= 4
    for name in schemas.DATASETS:
        indexes = {ix["name"]: ix["column_names"] for ix in sa.inspect(lib.engine).get_indexes(name)}
        # ... the plain fields verification looks up, and the keyed hash of each sealed one it looks up.
        lookups = {index: [column] for index, column in LOOKUP_INDEXES.get(name, {}).items()}
        looked_up = {f"ix_{name}{index_column(f)}": [index_column(f)] for f in INDEXED.get(name, ())}
        assert indexes == {f"ix_{name}_seq": ["_seq"], **lookups, **looked_up}, (name, indexes)
    assert lib.count("population") == 2
    edge.load([resident(3)])
    assert lib.record("population", key(3))["_seq"] == 2


def test_load_sequence_numbers_follow_commit_order(lib: Library) -> None:
    edge, other = Edge(lib), Edge(lib, edge=f"population.{B}.{PROVINCE}")
    edge.load([resident(1)])
    other.load([resident(2)], owner=B)
    edge.load([resident(3), resident(1, name="改名", updated_at=T2)])
    assert [lib.record("population", key(i))["_seq"] for i in (1, 2, 3)] == [3, 2, 3]
    assert [b["seq"] for b in ledger(lib)] == [1, 2, 3]


# -- upserts, history -------------------------------------------------------------------------------


def test_insert_then_same_hash_is_unchanged(lib: Library) -> None:
    edge = Edge(lib)
    first = edge.load([resident(1), resident(2), resident(3)])
    assert (first.inserted, first.updated, first.unchanged, first.duplicate) == (3, 0, 0, False)
    assert lib.count("population") == 3
    stored = lib.record("population", key(2))
    assert stored is not None
    assert stored["name"] == "居民2" and stored["_owner"] == A and stored["_batch"] == f"{EDGE}-0001"
    assert stored["updated_at"] == T1 and str(stored["birth_date"]) == "1980-01-01"
    again = edge.load([resident(1), resident(2), resident(3)])
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    assert lib.count("population") == 3
    assert lib.history("population", key(2)) == []
    assert lib.record("population", key(2))["_batch"] == f"{EDGE}-0001"  # the no-op touched nothing
    state = lib.state(EDGE)
    assert state is not None and state["rows_loaded"] == 3 and state["batches"] == 2


def test_update_keeps_the_old_version_as_replaced(lib: Library) -> None:
    edge = Edge(lib)
    edge.load([resident(1), resident(2)])
    result = edge.load([resident(1, name="李四", updated_at=T2), resident(2)])
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 1)
    assert lib.record("population", key(1))["name"] == "李四"
    history = lib.history("population", key(1))
    assert [(h["name"], h["_reason"], h["updated_at"]) for h in history] == [("居民1", "replaced", T1)]
    assert history[0]["_batch"] == f"{EDGE}-0001"  # provenance of the old version is kept
    assert lib.history("population", key(2)) == []


def test_older_row_goes_to_history_as_stale(lib: Library) -> None:
    edge = Edge(lib)
    edge.load([resident(1, name="新名字", updated_at=T3)])
    result = edge.load([resident(1, name="旧名字", updated_at=T2), resident(2)])
    assert (result.stale, result.updated, result.inserted) == (1, 0, 1)
    stored = lib.record("population", key(1))
    assert stored["name"] == "新名字" and stored["updated_at"] == T3
    assert [(h["name"], h["_reason"]) for h in lib.history("population", key(1))] == [("旧名字", "stale")]
    assert lib.count("population") == 2


def test_duplicate_batch_id_is_a_no_op(lib: Library) -> None:
    edge = Edge(lib)
    edge.load([resident(1)], batch_id="b-1", cursor={"value": "x", "key": "1"})
    before = snapshot(lib)
    again = edge.load([resident(1, name="改动"), resident(2)], batch_id="b-1", prev="")
    assert again.duplicate and again.inserted == again.updated == 0
    assert snapshot(lib) == before


def test_broken_chain_changes_nothing(lib: Library) -> None:
    edge = Edge(lib)
    edge.load([resident(1)], cursor={"value": "a", "key": "1"})
    before = snapshot(lib)
    reject = FailedRow(3, key(9), ["ID_CHECKSUM"], "校验码错误", "bad check", {"id_number": key(9)})
    for prev in ("", "0" * 64):
        with pytest.raises(StoreError) as err:
            edge.load([resident(1, name="x", updated_at=T2), resident(2)], rejected=[reject], prev=prev)
        assert err.value.code == "BATCH_CHAIN" and err.value.message_zh and err.value.where == EDGE
    assert snapshot(lib) == before
    assert lib.state(EDGE)["cursor"] == {"value": "a", "key": "1"}


# -- ownership and migration ------------------------------------------------------------------------


def test_row_owned_by_another_node_is_an_owner_conflict(lib: Library) -> None:
    Edge(lib).load([resident(1), resident(2)], owner=A)
    other = Edge(lib, f"population.{B}.{PROVINCE}")
    result = other.load([resident(1, name="冒名", updated_at=T2, household_division=B), resident(3)], owner=B)
    assert (result.conflicts, result.inserted, result.updated) == (1, 1, 0)
    assert result.conflict_keys == [key(1)]
    stored = lib.record("population", key(1))
    assert stored["name"] == "居民1" and stored["_owner"] == A
    assert lib.history("population", key(1)) == []
    [failure] = lib.failures(code="OWNER_CONFLICT")
    assert failure["kind"] == "row" and failure["row_key"] == key(1) and failure["state"] == "open"
    assert failure["edge"] == other.edge and failure["batch_id"] == f"{other.edge}-0001"
    assert A in failure["message_en"] and B in failure["message_en"] and "冒名" in failure["payload"]
    assert lib.state(other.edge)["rows_failed"] == 1
    # The same row again (a lookback re-read) is still refused, and kept once.
    again = other.load([resident(1, name="冒名", updated_at=T2, household_division=B)], owner=B)
    assert (again.conflicts, again.updated, again.conflict_keys) == (0, 0, [key(1)])
    assert len(lib.failures(code="OWNER_CONFLICT")) == 1 and lib.record("population", key(1))["_owner"] == A
    changed = other.load([resident(1, name="又冒名", updated_at=T3, household_division=B)], owner=B)
    assert changed.conflicts == 1 and len(lib.failures(code="OWNER_CONFLICT")) == 2


def test_migration_moves_ownership_and_keeps_both_histories(lib: Library) -> None:
    a, b = Edge(lib), Edge(lib, f"population.{B}.{PROVINCE}")
    a.load([resident(1), resident(2)])
    a.load([resident(1, status="moved_out", moved_to=B, updated_at=T2), resident(2, moved_to=C)])
    # Released to B only: C may not take record 1, and nobody may take record 2 (not moved out).
    refused = Edge(lib, f"population.{C}.620000").load([resident(1, updated_at=T3)], owner=C)
    assert refused.conflicts == 1
    result = b.load(
        [resident(1, household_division=B, updated_at=T3), resident(2, updated_at=T3, household_division=B)],
        owner=B,
    )
    assert (result.updated, result.conflicts) == (1, 1) and result.conflict_keys == [key(2)]
    stored = lib.record("population", key(1))
    assert stored["_owner"] == B and stored["status"] == "normal" and stored["household_division"] == B
    history = lib.history("population", key(1))
    assert [(h["_owner"], h["status"], h["_reason"]) for h in history] == [
        (A, "normal", "replaced"),
        (A, "moved_out", "migrated"),
    ]
    assert lib.record("population", key(2))["_owner"] == A
    # A re-reads its moved_out version (lookback): a version the library keeps, so no conflict.
    replay = a.load([resident(1, status="moved_out", moved_to=B, updated_at=T2)])
    assert (replay.unchanged, replay.conflicts, replay.updated, replay.stale) == (1, 0, 0, 0)
    assert len(lib.history("population", key(1))) == 2 and lib.record("population", key(1))["_owner"] == B
    assert [f["row_key"] for f in lib.failures(code="OWNER_CONFLICT")] == [key(2), key(1)]


def test_tombstones_are_updates_never_deletes(lib: Library) -> None:
    edge = Edge(lib)
    edge.load([resident(1), resident(2)])
    result = edge.load([resident(1, status="deceased", updated_at=T2)])
    assert (result.updated, result.inserted) == (1, 0)
    assert lib.count("population") == 2
    assert lib.record("population", key(1))["status"] == "deceased"
    assert [h["status"] for h in lib.history("population", key(1))] == ["normal"]

    firms = Edge(lib, f"business.{A}.{PROVINCE}", "business")
    firms.load([firm(1), firm(2)])
    result = firms.load([firm(1, status="revoked", updated_at=T2)])
    assert result.updated == 1 and lib.count("business") == 2
    revoked = lib.record("business", firm(1)["uscc"])
    assert revoked["status"] == "revoked" and Decimal(str(revoked["registered_capital"])) == Decimal("100.5")
    assert [h["status"] for h in lib.history("business", firm(1)["uscc"])] == ["active"]


# -- failed rows, atomicity, cursor -----------------------------------------------------------------


def test_rejected_rows_are_failed_transfers_of_the_batch(lib: Library) -> None:
    edge = Edge(lib)
    rejects = [
        FailedRow(
            2, key(7), ["ID_CHECKSUM"], "校验码错误", "check character", {"id_number": key(7)}, "czrk:2"
        ),
        FailedRow(5, None, ["REQUIRED", "DATE_INVALID"], "必填", "required", {"name": "无名"}, "czrk:5"),
    ]
    result = edge.load([resident(1)], rejected=rejects)
    assert (result.rejected, result.inserted) == (2, 1)
    failures = sorted(lib.failures(kind="row"), key=lambda f: f["row_number"])
    assert [(f["row_number"], f["row_key"], f["codes"]) for f in failures] == [
        (2, key(7), "ID_CHECKSUM"),
        (5, None, "REQUIRED,DATE_INVALID"),
    ]
    assert {f["batch_id"] for f in failures} == {f"{EDGE}-0001"}
    assert failures[0]["where"] == "czrk:2" and "无名" in failures[1]["payload"]
    assert lib.state(EDGE)["rows_failed"] == 2
    assert ledger(lib)[0]["rejected"] == 2


def test_a_failing_load_leaves_nothing_behind(lib: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    edge = Edge(lib)
    edge.load([resident(1)], cursor={"value": "a", "key": "1"})
    before = snapshot(lib)

    def crash(*_: Any) -> None:  # the last step inside the transaction
        raise RuntimeError("power cut")

    monkeypatch.setattr(lib, "resolve_runs", crash)
    reject = FailedRow(1, key(9), ["ID_CHECKSUM"], "错", "bad", {})
    with pytest.raises(RuntimeError):
        edge.load(
            [resident(1, name="x", updated_at=T2), resident(2)], rejected=[reject], cursor={"value": "b"}
        )
    assert snapshot(lib) == before


def test_cursor_and_counters_are_stored_with_the_batch(lib: Library) -> None:
    edge = Edge(lib)
    assert lib.state(EDGE) is None
    cursor = {"value": {"$datetime": "2025-03-01T10:00:00"}, "key": key(2)}
    edge.load([resident(1), resident(2)], cursor=cursor)
    state = lib.state(EDGE)
    assert state["cursor"] == cursor and state["last_batch_id"] == f"{EDGE}-0001"
    assert state["last_manifest_hash"] == edge.prev and state["target"] == PROVINCE
    assert state["last_success"] is not None and state["last_error"] is None
    edge.load([resident(3)], cursor=None)  # a batch without a cursor keeps the edge's cursor
    state = lib.state(EDGE)
    assert state["cursor"] == cursor and state["batches"] == 2 and state["rows_loaded"] == 3
    [entry] = [e for e in ledger(lib) if e["batch_id"] == f"{EDGE}-0002"]
    assert entry["inserted"] == 1 and entry["manifest_hash"] == edge.prev and entry["target"] == PROVINCE


def test_record_failure_counts_run_attempts(lib: Library) -> None:
    kw = {
        "kind": "run",
        "edge": EDGE,
        "dataset": "population",
        "source": A,
        "message_zh": "z",
        "message_en": "e",
    }
    first = lib.record_failure(codes=["SQL_UNREACHABLE"], **kw)
    again = lib.record_failure(codes=["SQL_UNREACHABLE"], **kw)
    assert first == again and lib.failure(first)["attempts"] == 2
    Edge(lib).load([resident(1)])  # a successful load resolves the edge's failed runs
    assert lib.failure(first)["state"] == "resolved"
    assert lib.failures(kind="run") == []


def test_rows_sealed_beforehand_are_used_only_under_the_active_key(lib: Library) -> None:
    """An overlapped run seals a batch on its checker thread: the load takes those envelopes when the
    key that sealed them is still active in its transaction, and seals the rows again when it is not."""
    from tongban.core.store.sealed import seal_table

    ring = lib.keyring()
    rows = batch("population", [resident(1), resident(2)], A, "pre-1")
    # Sealed from other names: which envelopes were stored shows which path the load took.
    decoy = batch("population", [resident(1, name="预封一"), resident(2, name="预封二")], A, "pre-1")
    sealed_decoy = seal_table(ring, "population", decoy)

    def load(batch_id: str, prev: str, presealed: tuple[str, pa.Table]) -> None:
        lib.load_batch(
            edge=EDGE,
            dataset="population",
            source=A,
            manifest_json='{"test": true}',
            manifest_hash=batch_id * 4,
            batch_id=batch_id,
            prev_hash=prev,
            rows=rows,
            rejected=[],
            cursor=None,
            presealed=presealed,
        )

    load("pre-1", "", ("not-the-active-key", sealed_decoy))
    assert lib.record("population", key(1))["name"] == resident(1)["name"]  # sealed again, from rows
    with lib.engine.begin() as c:
        c.exec_driver_sql("DELETE FROM population")
    load("pre-2", "pre-1" * 4, (ring.active, sealed_decoy))
    assert lib.record("population", key(1))["name"] == "预封一"  # the envelopes sealed beforehand
