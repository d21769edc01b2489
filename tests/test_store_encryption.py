"""Encryption at rest, attacked: what a library file shows when read raw, tampered ciphertexts, wrong or
missing master keys, a data key rotation interrupted half-way, an older library sealed by its migration,
and finding a record by the keyed hash of its identifier."""

from __future__ import annotations

import base64
import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import QINGHAI, people
from test_store import PROVINCE, Edge, firm, resident

from tongban.cli import main
from tongban.core.store import SCHEMA_VERSION, FailedRow, Library, Vault, VaultError
from tongban.core.store import rekey as rekeying
from tongban.core.store.lookup import find
from tongban.core.store.tables import StoreError

A = "630102"
UTC = dt.UTC


def licence(i: int, holder: str, **over: Any) -> dict[str, Any]:
    return {
        "license_id": f"1.2.156.3005.2.11100000000013338W001.11100000000013338W.{i:05d}.001.X",
        "license_type_code": "11100000000013338W001",
        "license_type_name": "户籍证明",
        "license_number": f"QH-{i:06d}",
        "holder_name": f"持证人{i}号",
        "holder_code": holder,
        "holder_code_type": "111",
        "issuer_name": "西宁市公安局",
        "issuer_code": "11100000000013338W",
        "issue_date": dt.date(2024, 1, 1),
        "valid_from": dt.date(2024, 1, 1),
        "valid_until": None,
        "division": A,
        "status": "01",
        "surface": json.dumps({"地址": f"和平路{i}号"}, ensure_ascii=False),
        "updated_at": dt.datetime(2025, 3, 1, 2, tzinfo=UTC),
        **over,
    }


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    return tmp_path / "keys"


def open_lib(tmp_path: Path, keys: Path, node: str = PROVINCE) -> Library:
    lib = Library(f"sqlite:///{tmp_path / 'library.sqlite'}", node, Vault(node, keys))
    lib.vault.create()
    lib.migrate()
    return lib


def raw_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    for extra in (Path(f"{path}-wal"), Path(f"{path}-journal")):
        if extra.exists():
            data += extra.read_bytes()
    return data


def test_sealed_fields_never_sit_in_plain(tmp_path: Path, keys: Path) -> None:
    lib = open_lib(tmp_path, keys)
    people_ = [
        resident(i, name=f"欧阳秀珍{i}", household_address=f"青海省西宁市城西区匡路{i}号") for i in range(20)
    ]
    Edge(lib).load(people_)
    rep_id = "11010519491231002X"
    Edge(lib, f"business.{A}.{PROVINCE}", "business").load(
        [firm(1, legal_representative="司马相如", legal_rep_id_number=rep_id)]
    )
    Edge(lib, f"license.{A}.{PROVINCE}", "license").load([licence(1, "360426199101010071")])
    rejected = FailedRow(
        7,
        "630102198001019999",
        ["ID_CHECKSUM"],
        "校验位错",
        "bad check",
        {"name": "上官婉儿", "household_address": "城中区南大街88号"},
    )
    Edge(lib, f"population.{A}.{PROVINCE}.b").load([resident(100)], rejected=[rejected])
    lib.dispose()
    data = raw_bytes(tmp_path / "library.sqlite")
    for value in [
        "欧阳秀珍3",
        "青海省西宁市城西区匡路7号",
        "司马相如",
        rep_id,
        "360426199101010071",
        "持证人1号",
        "和平路1号",
        "上官婉儿",
        "城中区南大街88号",
    ]:
        assert value.encode() not in data, value
    assert b"tb1." in data  # sealed envelopes are there instead
    # Read through the library, everything is whole again.
    assert lib.record("population", resident(3)["id_number"])["name"] == "欧阳秀珍3"
    assert lib.record("business", firm(1)["uscc"])["legal_rep_id_number"] == rep_id
    (failure,) = lib.failures()
    assert json.loads(failure["payload"])["name"] == "上官婉儿"
    # The same value sealed twice is two different ciphertexts (random nonces).
    with sqlite3.connect(tmp_path / "library.sqlite") as db:
        names = [r[0] for r in db.execute("SELECT name FROM population")]
    assert len(set(names)) == len(names) and all(n.startswith("tb1.") for n in names)


def test_tampered_or_moved_ciphertext_is_refused_with_a_code(tmp_path: Path, keys: Path) -> None:
    lib = open_lib(tmp_path, keys)
    Edge(lib).load([resident(1), resident(2)])
    k1, k2 = resident(1)["id_number"], resident(2)["id_number"]
    with sqlite3.connect(tmp_path / "library.sqlite") as db:
        (sealed,) = db.execute("SELECT name FROM population WHERE id_number = ?", (k1,)).fetchone()
        kid, body = sealed[4:].split(".", 1)
        blob = bytearray(base64.b64decode(body))
        blob[-1] ^= 1  # one bit of the tag
        db.execute(
            "UPDATE population SET name = ? WHERE id_number = ?",
            (f"tb1.{kid}.{base64.b64encode(bytes(blob)).decode()}", k1),
        )
        # A valid ciphertext moved to another record: bound to its key, it does not open there.
        db.execute(
            "UPDATE population SET household_address = (SELECT household_address FROM population WHERE id_number = ?) WHERE id_number = ?",
            (k1, k2),
        )
    for key in (k1, k2):
        with pytest.raises(VaultError) as err:
            lib.record("population", key)
        assert err.value.code == "DATA_TAMPERED" and "population" in err.value.where
    with sqlite3.connect(tmp_path / "library.sqlite") as db:
        db.execute("UPDATE population SET name = '张三' WHERE id_number = ?", (k2,))  # plain text planted
        db.execute("UPDATE population SET name = 'tb1.ffffffffffff.AAAA' WHERE id_number = ?", (k1,))
    with pytest.raises(VaultError) as err:
        lib.record("population", k2)
    assert err.value.code == "DATA_TAMPERED"
    with pytest.raises(VaultError) as err:
        lib.record("population", k1)
    assert err.value.code == "DATA_KEY_UNKNOWN"


def test_tampered_child_library_fails_the_sync_with_a_code_not_a_trace(
    make_world: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    w = make_world({A: QINGHAI}, registers=(A,))
    w.registers[A].put(people(A, 5))
    w.sync(w.system_edge(A))
    w.libs.dispose()
    with sqlite3.connect(w.root / "libraries" / f"{A}.sqlite") as db:
        db.execute("UPDATE population SET name = substr(name, 1, length(name) - 4) || 'AAAA'")
    code = main(["sync", w.edge(A, QINGHAI), "--config", str(w.root / "exchange.yaml"), "--json"])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code == 4 and "DATA_TAMPERED" in text and "Traceback" not in text, text
    assert w.lib(QINGHAI).count("population") == 0  # nothing of the refused read was loaded


def test_wrong_or_missing_master_key(tmp_path: Path, keys: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = open_lib(tmp_path, keys)
    Edge(lib).load([resident(1)])
    key_file = keys / PROVINCE / "master.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    good = key_file.read_text()
    url = lib.url
    lib.dispose()

    def fresh() -> Library:
        return Library(url, PROVINCE, Vault(PROVINCE, keys))

    key_file.write_text(base64.b64encode(b"\x01" * 32).decode())
    with pytest.raises(VaultError) as err:
        fresh().record("population", resident(1)["id_number"])
    assert err.value.code == "MASTER_KEY_WRONG"
    key_file.write_text("not a key")
    with pytest.raises(VaultError) as err:
        fresh().migrate()
    assert err.value.code == "MASTER_KEY_INVALID"
    key_file.unlink()
    with pytest.raises(VaultError) as err:
        fresh().migrate()
    assert err.value.code == "MASTER_KEY_MISSING" and f"TONGBAN_MASTER_KEY_{PROVINCE}" in err.value.message_en
    # Production: the key from the environment, no file at all.
    monkeypatch.setenv(f"TONGBAN_MASTER_KEY_{PROVINCE}", good.strip())
    assert fresh().record("population", resident(1)["id_number"])["name"] == resident(1)["name"]
    # A master key file others can read is refused.
    monkeypatch.delenv(f"TONGBAN_MASTER_KEY_{PROVINCE}")
    key_file.write_text(good)
    key_file.chmod(0o644)
    with pytest.raises(VaultError) as err:
        fresh().migrate()
    assert err.value.code == "MASTER_KEY_INVALID"


def test_rotation_interrupted_half_way_resumes_and_everything_opens(tmp_path: Path, keys: Path) -> None:
    lib = open_lib(tmp_path, keys)
    edge = Edge(lib)
    edge.load([resident(i) for i in range(50)])
    edge.load(
        [resident(i, name=f"改名{i}", updated_at=dt.datetime(2025, 4, 1, tzinfo=UTC)) for i in range(10)]
    )  # history
    old = lib.keyring().active
    new = rekeying.rotate(lib)
    assert new != old

    class Stop(Exception):
        pass

    seen = []

    def interrupt(table: str, rows: int) -> None:
        seen.append(table)
        if len(seen) == 3:
            raise Stop

    with pytest.raises(Stop):
        rekeying.rekey(lib, chunk=7, on_chunk=interrupt)
    with sqlite3.connect(tmp_path / "library.sqlite") as db:
        kids = {r[0][4:16] for r in db.execute("SELECT name FROM population")}
    assert kids == {old, new}  # half-way: both keys in use, and both open
    reopened = Library(lib.url, PROVINCE, Vault(PROVINCE, keys))
    assert [reopened.record("population", resident(i)["id_number"])["name"] for i in (0, 49)] == [
        "改名0",
        "居民49",
    ]
    assert rekeying.status(reopened)["cursor"] is not None
    # A load meanwhile seals under the new key.
    Edge(reopened, f"population.{A}.{PROVINCE}.x").load([resident(99)])
    # Resume from the CLI-equivalent call: finishes, deletes the old key, everything still opens.
    done = rekeying.rekey(reopened, chunk=7)
    assert done["settled"] and done["keys_deleted"] == 1
    data = raw_bytes(tmp_path / "library.sqlite")
    assert f"tb1.{old}.".encode() not in data
    assert [r["key_id"] for r in rekeying.status(reopened)["keys"] if r["purpose"] == "data"] == [new]
    for i in [*range(50), 99]:
        assert reopened.record("population", resident(i)["id_number"]) is not None
    assert [h["name"] for h in reopened.history("population", resident(3)["id_number"])] == ["居民3"]


def test_rotate_data_command(make_world: Any, capsys: pytest.CaptureFixture[str]) -> None:
    w = make_world({A: QINGHAI}, registers=(A,))
    w.registers[A].put(people(A, 30))
    w.sync(w.system_edge(A))
    before = w.lib(A).keyring().active
    w.libs.dispose()
    argv = ["keys", "rotate-data", A, "--config", str(w.root / "exchange.yaml"), "--chunk", "8", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["key_id"] != before and report["settled"] and report["resealed"] >= 30
    w.reload()
    assert w.sync(w.edge(A, QINGHAI))["rows"] == 30  # the parent reads the re-sealed child whole


def test_older_library_is_sealed_by_its_migration(tmp_path: Path, keys: Path) -> None:
    """A version 2 library (plain rows, no data keys) is sealed when opened with its master key."""
    lib = open_lib(tmp_path, keys)
    Edge(lib).load([resident(i, name=f"皇甫{i}号") for i in range(25)])
    Edge(lib, f"license.{A}.{PROVINCE}", "license").load([licence(1, "360426199101010071")])
    lib.record_failure(
        kind="run",
        edge="e",
        dataset="population",
        source=A,
        codes=["SQL_UNREACHABLE"],
        message_zh="无",
        message_en="none",
        payload={"note": "孙悟空"},
    )
    plain = {
        r["id_number"]: r for r in (lib.record("population", resident(i)["id_number"]) for i in range(25))
    }
    lic = lib.record("license", licence(1, "")["license_id"])
    lib.dispose()
    # Back to what version 2 wrote: every value in plain, no keys, no index column.
    with sqlite3.connect(tmp_path / "library.sqlite") as db:
        for key, row in plain.items():
            db.execute(
                "UPDATE population SET name = ?, birth_date = ?, household_address = ? WHERE id_number = ?",
                (row["name"], row["birth_date"], row["household_address"], key),
            )
        db.execute(
            "UPDATE license SET holder_name = ?, holder_code = ?, surface = ?",
            (lic["holder_name"], lic["holder_code"], lic["surface"]),
        )
        db.execute(
            "UPDATE failed_transfers SET payload = ?", (json.dumps({"note": "孙悟空"}, ensure_ascii=False),)
        )
        db.execute('DROP INDEX "ix_license_ix_holder_code"')
        for t in ("license", "license_history"):
            db.execute(f'ALTER TABLE "{t}" DROP COLUMN "_ix_holder_code"')
        db.execute("DELETE FROM data_keys")
        db.execute("UPDATE tongban_meta SET value = '2' WHERE name = 'schema_version'")
    assert "皇甫3号".encode() in raw_bytes(tmp_path / "library.sqlite")
    migrated = Library(lib.url, PROVINCE, Vault(PROVINCE, keys))
    assert migrated.migrate() == SCHEMA_VERSION
    with sqlite3.connect(tmp_path / "library.sqlite") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert all(r[0].startswith("tb1.") for r in db.execute("SELECT name FROM population"))
        assert all(r[0].startswith("tb1.") for r in db.execute("SELECT payload FROM failed_transfers"))
    data = raw_bytes(tmp_path / "library.sqlite")
    assert "皇甫3号".encode() not in data and "孙悟空".encode() not in data
    assert migrated.record("population", resident(3)["id_number"])["name"] == "皇甫3号"
    assert [r["license_number"] for r in find(migrated, "license", "holder_code", "360426199101010071")] == [
        "QH-000001"
    ]
    assert rekeying.status(migrated)["plain_pending"] is False
    # Once sealed, a plain value planted later is tampering, not a leftover.
    with sqlite3.connect(tmp_path / "library.sqlite") as db:
        db.execute("UPDATE population SET name = '猪八戒' WHERE id_number = ?", (resident(4)["id_number"],))
    with pytest.raises(VaultError) as err:
        migrated.record("population", resident(4)["id_number"])
    assert err.value.code == "DATA_TAMPERED"


def test_lookup_by_keyed_hash(tmp_path: Path, keys: Path) -> None:
    lib = open_lib(tmp_path, keys)
    holder = "11010519491231002X"
    Edge(lib, f"license.{A}.{PROVINCE}", "license").load(
        [licence(1, holder), licence(2, holder), licence(3, "360426199101010071")]
    )
    Edge(lib).load([resident(1)])
    found = find(lib, "license", "holder_code", "11010519491231002x ")  # case and spaces do not matter
    assert [r["license_number"] for r in found] == ["QH-000001", "QH-000002"]
    assert found[0]["holder_code"] == holder and "_ix_holder_code" not in found[0]
    assert find(lib, "license", "holder_code", "110105194912310038") == []
    assert [r["license_number"] for r in find(lib, "license", "license_number", "QH-000003")] == ["QH-000003"]
    assert find(lib, "population", "id_number", resident(1)["id_number"])[0]["name"] == resident(1)["name"]
    assert len(find(lib, "license", "holder_code", holder, limit=1)) == 1
    with lib.engine.connect() as conn:  # through the caller's connection
        assert len(find(lib, "license", "holder_code", holder, conn=conn)) == 2
    page2 = find(lib, "license", "holder_code", holder, after=found[0]["license_id"])
    assert [r["license_number"] for r in page2] == ["QH-000002"]
    with pytest.raises(StoreError) as err:
        find(lib, "license", "holder_name", "持证人1号")  # sealed, not indexed: no plaintext scan
    assert err.value.code == "LOOKUP_FIELD"
    # The index column is a keyed hash: not the plain SHA-256 anyone could compute.
    import hashlib

    with sqlite3.connect(tmp_path / "library.sqlite") as db:
        stored = {r[0] for r in db.execute("SELECT _ix_holder_code FROM license")}
    assert hashlib.sha256(holder.encode()).hexdigest() not in stored and len(stored) == 2


# -- PostgreSQL: the same promises where the types, the locks and the migration differ ---------------------


def _pg_lib(pg_url: str, keys: Path) -> Library:
    lib = Library(pg_url, PROVINCE, Vault(PROVINCE, keys))
    lib.vault.create()
    lib.migrate()
    return lib


def test_postgres_rotation_and_lookup(pg_url: str, keys: Path) -> None:
    lib = _pg_lib(pg_url, keys)
    try:
        edge = Edge(lib)
        edge.load([resident(i) for i in range(30)])
        Edge(lib, f"license.{A}.{PROVINCE}", "license").load([licence(1, "11010519491231002X")])
        old = lib.keyring().active
        new = rekeying.rotate(lib)
        stops = []

        def interrupt(table: str, rows: int) -> None:
            stops.append(table)
            if len(stops) == 2:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            rekeying.rekey(lib, chunk=8, on_chunk=interrupt)
        edge.load(
            [resident(i, name=f"新{i}", updated_at=dt.datetime(2025, 5, 1, tzinfo=UTC)) for i in range(3)]
        )
        done = rekeying.rekey(lib, chunk=8)
        assert done["settled"] and done["keys_deleted"] == 1 and lib.keyring().active == new != old
        with lib.connect() as c:
            names = [r[0] for r in c.exec_driver_sql("SELECT name FROM population")]
            births = [r[0] for r in c.exec_driver_sql("SELECT birth_date FROM population")]
        assert all(v.startswith(f"tb1.{new}.") for v in names + births)
        assert lib.record("population", resident(1)["id_number"])["name"] == "新1"
        assert lib.record("population", resident(1)["id_number"])["birth_date"] == "1980-01-01"
        assert [h["name"] for h in lib.history("population", resident(1)["id_number"])] == ["居民1"]
        assert find(lib, "license", "holder_code", "11010519491231002x")[0]["license_number"] == "QH-000001"
    finally:
        lib.dispose()


def test_postgres_version_2_library_is_sealed_by_its_migration(pg_url: str, keys: Path) -> None:
    lib = _pg_lib(pg_url, keys)
    Edge(lib).load([resident(i, name=f"皇甫{i}号") for i in range(12)])
    plain = {resident(i)["id_number"]: lib.record("population", resident(i)["id_number"]) for i in range(12)}
    lib.dispose()
    # What version 2 had: typed columns holding plain values, no index column, no data keys.
    with lib.engine.begin() as c:
        for key, row in plain.items():
            c.exec_driver_sql(
                "UPDATE population SET name = %(n)s, birth_date = %(b)s, household_address = %(a)s "
                "WHERE id_number = %(k)s",
                {"n": row["name"], "b": row["birth_date"], "a": row["household_address"], "k": key},
            )
        for t in ("population", "population_history"):
            c.exec_driver_sql(f"ALTER TABLE {t} ALTER COLUMN birth_date TYPE DATE USING birth_date::date")
            c.exec_driver_sql(f"ALTER TABLE {t} ALTER COLUMN name TYPE VARCHAR(256)")
        c.exec_driver_sql('DROP INDEX "ix_license_ix_holder_code"')
        for t in ("license", "license_history"):
            c.exec_driver_sql(f'ALTER TABLE {t} DROP COLUMN "_ix_holder_code"')
        c.exec_driver_sql("DELETE FROM data_keys")
        c.exec_driver_sql("UPDATE tongban_meta SET value = '2' WHERE name = 'schema_version'")
    lib.dispose()
    migrated = Library(pg_url, PROVINCE, Vault(PROVINCE, keys))
    try:
        assert migrated.migrate() == SCHEMA_VERSION
        with migrated.connect() as c:
            kinds = dict(
                c.exec_driver_sql(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = 'population' "
                    "AND column_name IN ('name', 'birth_date')"
                ).all()
            )
            values = [r[0] for r in c.exec_driver_sql("SELECT birth_date FROM population")]
        assert kinds == {"name": "text", "birth_date": "text"}
        assert values and all(v.startswith("tb1.") for v in values)
        assert migrated.record("population", resident(3)["id_number"])["name"] == "皇甫3号"
        assert migrated.record("population", resident(3)["id_number"])["birth_date"] == "1980-01-01"
    finally:
        migrated.dispose()


def test_sealing_an_older_library_interrupted_resumes(tmp_path: Path, keys: Path) -> None:
    """The migration's sealing stopped half-way: plain and sealed rows side by side all read, a plain
    value is accepted only while sealing is pending, and the next open finishes it."""
    from tongban.core.store.migrations import migrate as migrate_schema

    lib = open_lib(tmp_path, keys)
    Edge(lib).load([resident(i, name=f"司徒{i}号") for i in range(40)])
    plain = {resident(i)["id_number"]: lib.record("population", resident(i)["id_number"]) for i in range(40)}
    lib.dispose()
    with sqlite3.connect(tmp_path / "library.sqlite") as db:
        for key, row in plain.items():
            db.execute(
                "UPDATE population SET name = ?, birth_date = ?, household_address = ? WHERE id_number = ?",
                (row["name"], row["birth_date"], row["household_address"], key),
            )
        db.execute("DELETE FROM data_keys")
        db.execute("UPDATE tongban_meta SET value = '2' WHERE name = 'schema_version'")
    half = Library(lib.url, PROVINCE, Vault(PROVINCE, keys))
    migrate_schema(half.engine)  # the schema step, then the sealing, interrupted after two chunks
    calls = []

    def interrupt(table: str, rows: int) -> None:
        calls.append(table)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rekeying.rekey(half, chunk=15, on_chunk=interrupt)
    with sqlite3.connect(tmp_path / "library.sqlite") as db:
        names = [r[0] for r in db.execute("SELECT name FROM population ORDER BY id_number")]
    assert sum(n.startswith("tb1.") for n in names) == 30 and len(names) == 40  # two chunks of 15 sealed
    assert rekeying.status(half)["plain_pending"] is True
    for i in (0, 39):  # sealed and still plain alike read while pending
        assert half.record("population", resident(i)["id_number"])["name"] == f"司徒{i}号"
    half.dispose()
    again = Library(lib.url, PROVINCE, Vault(PROVINCE, keys))
    assert again.migrate() == SCHEMA_VERSION  # opening it finishes the sealing
    with sqlite3.connect(tmp_path / "library.sqlite") as db:
        assert all(r[0].startswith("tb1.") for r in db.execute("SELECT name FROM population"))
    assert rekeying.status(again)["plain_pending"] is False
    assert [again.record("population", k)["name"] for k in plain] == [p["name"] for p in plain.values()]
    assert "司徒7号".encode() not in raw_bytes(tmp_path / "library.sqlite")
