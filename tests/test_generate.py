"""Tests of the demo-data generator: identifiers, local systems, ground truth, determinism, bulk tables."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from stdnum.cn import ric, uscc
from stdnum.iso7064 import mod_37_36

from schemas.standards import gb11714
from tongban.demo import generate
from tongban.demo.generate import (
    BUSINESS_SCHEMA,
    DEFECT_CODES,
    DEMO_COUNTIES,
    LICENSE_SCHEMA,
    POPULATION_SCHEMA,
    business_table,
    generate_demo,
    license_table,
    population_table,
)

ETHNICITIES = {f"{i:02d}" for i in range(1, 57)} | {"97", "98"}
LICENSE_STATUS = {"01", "02", "03", "04", "05", "06", "07", "99"}
NAIVE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
OFFSET_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$")
SIZES = {"population_per_county": 150, "business_per_county": 60, "license_per_county": 120}
RATE = 0.25

# Local column -> canonical field, as the generator promises them.
# fmt: off
GONGAN = {
    "sfzh": "id_number", "xm": "name", "xb": "gender", "mz": "ethnicity", "csrq": "birth_date",
    "hjdq": "household_division", "hjdz": "household_address", "ryzt": "status", "qwdq": "moved_to",
    "gxsj": "updated_at",
}
SCJG = {
    "tyshxydm": "uscc", "qymc": "name", "qylx": "entity_type", "fddbr": "legal_representative",
    "fddbrsfzh": "legal_rep_id_number", "zczb": "registered_capital", "clrq": "established_date",
    "djjg": "registration_authority", "xzqh": "division", "zs": "address", "jyfw": "business_scope",
    "djzt": "status", "qwdq": "moved_to", "gxsj": "updated_at",
}
BUSINESS_CSV = {
    "统一社会信用代码": "uscc", "企业名称": "name", "企业类型": "entity_type",
    "法定代表人": "legal_representative", "法定代表人身份证号": "legal_rep_id_number",
    "注册资本(万元)": "registered_capital", "成立日期": "established_date",
    "登记机关": "registration_authority", "行政区划": "division", "住所": "address",
    "经营范围": "business_scope", "登记状态": "status", "迁往地区": "moved_to", "更新时间": "updated_at",
}
# fmt: on


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("demo")
    manifest = generate_demo(root, seed=7, defect_rate=RATE, legacy_rate=0.05, max_rows_per_file=50, **SIZES)
    return root, manifest


def read_system(root: Path, system: dict[str, Any]) -> tuple[list[str], list[dict[str, str | None]]]:
    """Column names and rows (local names, raw text) of one data file."""
    path = root / system["path"]
    if system["kind"] == "sqlite":
        con = sqlite3.connect(path)
        try:
            cursor = con.execute(f"SELECT * FROM {system['table']} ORDER BY rowid")
            names = [d[0] for d in cursor.description]
            return names, [dict(zip(names, row, strict=True)) for row in cursor]
        finally:
            con.close()
    if system["kind"] == "csv":
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            rows = [{k: (v if v != "" else None) for k, v in row.items()} for row in reader]
            return list(reader.fieldnames or []), rows
    table = pq.read_table(path)
    return table.column_names, table.to_pylist()


def canonical_rows(root: Path, system: dict[str, Any]) -> list[dict[str, str | None]]:
    """Rows of one data file turned into canonical field names and values with its mapping YAML."""
    mapping = yaml.safe_load((root / system["mapping"]).read_text(encoding="utf-8"))
    _, rows = read_system(root, system)
    columns = mapping.get("columns") or {}
    values = mapping.get("values") or {}
    out = []
    for row in rows:
        record = {columns.get(k, k): v for k, v in row.items()}
        for name, codes in values.items():
            record[name] = codes.get(record[name], record[name])
        out.append(record)
    return out


def parse_date(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


def id_problems(number: str) -> set[str]:
    if len(number) == 15:
        full = number[:6] + "19" + number[6:]
        full += ric.calc_check_digit(full + "0")
        return {"ID_LEGACY_15"} if ric.is_valid(full) else {"ID_INVALID"}
    if len(number) == 18 and number[:17].isdigit() and ric.calc_check_digit(number) != number[17]:
        return {"ID_CHECKSUM"} | id_problems(number[:17] + ric.calc_check_digit(number))  # only the check
    return set() if ric.is_valid(number) else {"ID_INVALID"}


def uscc_problems(code: str) -> set[str]:
    if len(code) == 18 and uscc.calc_check_digit(code) != code[17]:
        return {"USCC_CHECKSUM"} | uscc_problems(code[:17] + uscc.calc_check_digit(code))
    ok = uscc.is_valid(code) and gb11714.is_valid(code[8:17])
    return set() if ok else {"USCC_INVALID"}


def population_problems(row: dict[str, Any]) -> set[str]:
    number = row["id_number"]
    found = id_problems(number)
    full = number if len(number) == 18 else number[:6] + "19" + number[6:]
    born = parse_date(row["birth_date"])
    if born is None:
        found.add("DATE_INVALID")
    elif born != ric.get_birth_date(full[:17] + "0"):
        found.add("ID_BIRTH_MISMATCH")
    if row["gender"] != ("1" if int(full[16]) % 2 else "2"):
        found.add("ID_GENDER_MISMATCH")
    if row["ethnicity"] not in ETHNICITIES:
        found.add("ETHNICITY_INVALID")
    if row["status"] not in {"normal", "moved_out", "deceased"} or (row["status"] == "moved_out") != bool(
        row["moved_to"]
    ):
        found.add("STATUS_INVALID")
    return found


def business_problems(row: dict[str, Any]) -> set[str]:
    found = uscc_problems(row["uscc"])
    if parse_date(row["established_date"]) is None:
        found.add("DATE_INVALID")
    if not ric.is_valid(row["legal_rep_id_number"]):
        found.add("REP_ID_INVALID")
    category = {"个体工商户": "2", "农民专业合作社": "3"}.get(row["entity_type"], "1")
    if row["uscc"][1] != category or row["uscc"][0] != "9":
        found.add("ENTITY_TYPE_MISMATCH")
    if row["status"] not in {"active", "revoked", "deregistered", "moved_out"} or (
        row["status"] == "moved_out"
    ) != bool(row["moved_to"]):
        found.add("STATUS_INVALID")
    return found


def license_problems(row: dict[str, Any]) -> set[str]:
    found = set()
    parts = row["license_id"].split(".")
    head, type_code, issuer, serial, version, check = ".".join(parts[:5]), *parts[5:]
    if head != "1.2.156.3005.2" or type_code != row["license_type_code"] or issuer != row["issuer_code"]:
        found.add("LICENSE_ID_FORMAT")
    if not (re.fullmatch(r"[0-9A-Z]{8,12}", serial) and re.fullmatch(r"\d{3}", version)):
        found.add("LICENSE_ID_FORMAT")
    if not mod_37_36.is_valid(type_code + issuer + serial + version + check):
        found.add("LICENSE_ID_CHECKSUM")
    if uscc_problems(type_code[:18]) or not type_code[18:].isdigit() or type_code[:2] != "11":
        found.add("TYPE_CODE_INVALID")
    if uscc_problems(issuer) or issuer[:2] != "11":
        found.add("ISSUER_INVALID")
    holder = (
        id_problems(row["holder_code"])
        if row["holder_code_type"] == "111"
        else uscc_problems(row["holder_code"])
    )
    if holder or row["holder_code_type"] not in {"111", "001"}:
        found.add("HOLDER_INVALID")
    dates = [row["issue_date"], row["valid_from"], row["valid_until"]]
    parsed = [parse_date(d) for d in dates]
    if any(p is None and d for p, d in zip(parsed, dates, strict=True)) or not dates[0] or not dates[1]:
        found.add("DATE_INVALID")
    elif parsed[2] is not None and parsed[2] < parsed[1]:
        found.add("VALIDITY_ORDER")
    if row["status"] not in LICENSE_STATUS:
        found.add("STATUS_INVALID")
    json.loads(row["surface"])
    return found


PROBLEMS = {"population": population_problems, "business": business_problems, "license": license_problems}
KEYS = {"population": "id_number", "business": "uscc", "license": "license_id"}


def test_layout_of_local_systems(demo: tuple[Path, dict[str, Any]]) -> None:
    root, manifest = demo
    systems = manifest["systems"]
    by_county = {code: [s for s in systems if s["county"] == code] for code, *_ in DEMO_COUNTIES}
    for index, (code, *_rest) in enumerate(DEMO_COUNTIES):
        kinds = {(s["dataset"], s["kind"]) for s in by_county[code]}
        assert ("population", "sqlite") in kinds
        assert ("business", "sqlite" if index % 2 == 0 else "csv") in kinds
        assert ("license", "csv") in kinds or ("license", "parquet") in kinds
        pop = next(s for s in by_county[code] if s["dataset"] == "population")
        assert pop["path"] == f"systems/{code}/gongan.sqlite" and pop["table"] == "czrk"
        assert pop["mapping"] == f"systems/{code}/gongan.mapping.yaml"
    assert sum(s["kind"] == "parquet" for s in systems) == 1
    # drop folders split at 50 rows per file, SQLite tables hold everything
    for dataset, per_county in (("business", 60), ("license", 120)):
        for code, *_ in DEMO_COUNTIES:
            files = [s for s in by_county[code] if s["dataset"] == dataset]
            assert sum(s["rows"] for s in files) == per_county
            if files[0]["kind"] == "csv":
                assert all(s["rows"] <= 50 for s in files) and len(files) > 1
                assert all(s["path"].startswith(f"systems/{code}/drop/{dataset}/") for s in files)
    assert json.loads((root / "manifest.json").read_text(encoding="utf-8")) == manifest


def test_local_columns_and_codes(demo: tuple[Path, dict[str, Any]]) -> None:
    root, manifest = demo
    for system in manifest["systems"]:
        names, rows = read_system(root, system)
        mapping = yaml.safe_load((root / system["mapping"]).read_text(encoding="utf-8"))
        assert mapping["dataset"] == system["dataset"]
        assert len(rows) == system["rows"]
        if system["dataset"] == "population":
            assert names == list(GONGAN) and mapping["columns"] == GONGAN and mapping["table"] == "czrk"
            assert mapping["values"] == {"status": {"10": "normal", "21": "moved_out", "30": "deceased"}}
            assert mapping["timezone"] == "Asia/Shanghai"
            assert {r["ryzt"] for r in rows} <= {"10", "21", "30"}
            assert {r["xb"] for r in rows} <= {"1", "2"}
            assert all(NAIVE_TIME.match(r["gxsj"]) for r in rows)
            con = sqlite3.connect(root / system["path"])
            types = {row[1]: row[2] for row in con.execute("PRAGMA table_info(czrk)")}
            con.close()
            assert set(types.values()) == {"TEXT"}
        elif system["dataset"] == "business":
            expected = SCJG if system["kind"] == "sqlite" else BUSINESS_CSV
            assert names == list(expected) and mapping["columns"] == expected
            status = "djzt" if system["kind"] == "sqlite" else "登记状态"
            updated = "gxsj" if system["kind"] == "sqlite" else "更新时间"
            assert {r[status] for r in rows} <= {"存续", "吊销", "注销", "迁出"}
            assert all(
                (NAIVE_TIME if system["kind"] == "sqlite" else OFFSET_TIME).match(r[updated]) for r in rows
            )
            assert (mapping.get("table"), mapping.get("timezone")) == (
                ("qydj", "Asia/Shanghai") if system["kind"] == "sqlite" else (None, None)
            )
        else:
            assert names == LICENSE_SCHEMA.names and not mapping["columns"]
            assert all(OFFSET_TIME.match(r["updated_at"]) for r in rows)
            assert {r["status"] for r in rows} <= LICENSE_STATUS
            if system["kind"] == "parquet":
                schema = pq.read_schema(root / system["path"])
                assert all(field.type == pa.string() for field in schema)


def test_every_row_matches_the_ground_truth(demo: tuple[Path, dict[str, Any]]) -> None:
    """Each row shows exactly the codes the manifest lists for it (none for clean rows)."""
    root, manifest = demo
    for system in manifest["systems"]:
        dataset = system["dataset"]
        expected: dict[int, set[str]] = {}
        for entry in system["defects"] + system["warnings"]:
            expected.setdefault(entry["row"], set()).update(entry["codes"])
        defects = {d["row"]: d for d in system["defects"]}
        assert len(defects) == len(system["defects"])  # one defect kind per row
        seen: dict[str, dict[str, Any]] = {}
        for number, row in enumerate(canonical_rows(root, system), start=1):
            key = row[KEYS[dataset]]
            found = PROBLEMS[dataset](row)
            if key in seen:
                found.add("KEY_DUPLICATE")
                assert row != seen[key]  # a duplicate repeats the key, not the content
            seen.setdefault(key, row)
            assert found == expected.get(number, set()), (system["path"], number, row)
            if number in defects:
                assert defects[number]["key"] == key
                assert defects[number]["codes"] == [DEFECT_CODES[dataset][defects[number]["defect"]]]


def test_defect_kinds_and_share(demo: tuple[Path, dict[str, Any]]) -> None:
    _, manifest = demo
    for dataset, codes in DEFECT_CODES.items():
        systems = [s for s in manifest["systems"] if s["dataset"] == dataset]
        kinds = Counter(d["defect"] for s in systems for d in s["defects"])
        assert set(kinds) == set(codes), dataset
        rows = sum(s["rows"] for s in systems)
        share = sum(kinds.values()) / rows
        assert abs(share - RATE) < 5 * (RATE * (1 - RATE) / rows) ** 0.5, (dataset, share)
    warnings = [w for s in manifest["systems"] for w in s["warnings"]]
    assert warnings and all(w["codes"] == ["ID_LEGACY_15"] and len(w["key"]) == 15 for w in warnings)


def test_clean_demo_has_no_defects(tmp_path: Path) -> None:
    manifest = generate_demo(
        tmp_path,
        seed=3,
        population_per_county=40,
        business_per_county=10,
        license_per_county=20,
        defect_rate=0.0,
        legacy_rate=0.0,
    )
    assert all(not s["defects"] and not s["warnings"] for s in manifest["systems"])
    for system in manifest["systems"]:
        for row in canonical_rows(tmp_path, system):
            assert not PROBLEMS[system["dataset"]](row)


def test_determinism(tmp_path: Path) -> None:
    small = {"population_per_county": 30, "business_per_county": 12, "license_per_county": 25}
    first = generate_demo(tmp_path / "a", seed=11, max_rows_per_file=10, defect_rate=0.2, **small)
    second = generate_demo(tmp_path / "b", seed=11, max_rows_per_file=10, defect_rate=0.2, **small)
    other = generate_demo(tmp_path / "c", seed=12, max_rows_per_file=10, defect_rate=0.2, **small)
    assert first == second and first != other
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    for path in files:
        assert (tmp_path / "a" / path).read_bytes() == (tmp_path / "b" / path).read_bytes(), path
    assert (tmp_path / "a" / files[0]).read_bytes() != (tmp_path / "c" / files[0]).read_bytes()


def test_retired_area_codes_follow_birth_year() -> None:
    table = population_table(3000, seed=5, divisions=["320614"])
    ids = table.column("id_number").to_pylist()
    years = [d.year for d in table.column("birth_date").to_pylist()]
    areas = Counter((i[:6], y < 2020) for i, y in zip(ids, years, strict=True))
    assert areas[("320684", True)] > 100  # 海门市, retired in 2020
    assert areas[("320614", False)] > 10 and not areas[("320614", True)]  # 海门区 only for those born since
    assert all(ric.is_valid(i) for i in ids)


@pytest.mark.parametrize(
    ("make", "schema"),
    [
        (population_table, POPULATION_SCHEMA),
        (business_table, BUSINESS_SCHEMA),
        (license_table, LICENSE_SCHEMA),
    ],
)
def test_bulk_tables(make: Any, schema: pa.Schema) -> None:
    table = make(400, seed=9)
    assert table.schema == schema and table.num_rows == 400
    assert table.equals(make(400, seed=9)) and not table.equals(make(400, seed=10))
    dataset = {POPULATION_SCHEMA: "population", BUSINESS_SCHEMA: "business", LICENSE_SCHEMA: "license"}[
        schema
    ]
    rows = table.to_pylist()
    keys = [r[KEYS[dataset]] for r in rows]
    assert len(set(keys)) == len(keys)
    for row in rows:
        text = {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in row.items()}
        if dataset == "business":
            text["registered_capital"] = str(row["registered_capital"])
        assert not PROBLEMS[dataset](text), row
    assert make(0).schema == schema and make(0).num_rows == 0


def test_bulk_defects() -> None:
    table = population_table(4000, seed=4, defect_rate=0.1, legacy_rate=0.05)
    ids = table.column("id_number").to_pylist()
    checksum = sum(len(i) == 18 and ric.calc_check_digit(i) != i[17] for i in ids)
    assert 60 < checksum < 160  # a quarter of the defects (birth dates cannot be impossible in a typed table)
    assert len(ids) - len(set(ids)) > 50
    assert sum(len(i) == 15 for i in ids) > 50
    licenses = license_table(2000, seed=4, defect_rate=0.2)
    order = pa.compute.less(licenses.column("valid_until"), licenses.column("valid_from"))
    assert 80 < pa.compute.sum(order).as_py() < 200  # a third of the defects


def test_bulk_speed_shape() -> None:
    """Large tables come out of the vectorized path (no per-row Python); a smoke test, not a benchmark."""
    table = population_table(200_000, seed=1, defect_rate=0.02)
    assert table.num_rows == 200_000
    sample = table.column("id_number").take(pa.array(np.arange(0, 200_000, 997))).to_pylist()
    assert sum(ric.is_valid(i) for i in sample) >= len(sample) - 5


def test_unknown_division_is_refused() -> None:
    with pytest.raises(ValueError, match="999999"):
        population_table(1, divisions=["999999"])
    with pytest.raises(ValueError, match="320684"):
        population_table(1, divisions=["320684"])  # retired


def test_reference_time_is_fixed() -> None:
    table = license_table(300, seed=2)
    latest = pa.compute.max(table.column("updated_at")).as_py()
    assert latest < generate.REFERENCE_TIME
    assert pa.compute.max(table.column("issue_date")).as_py() < generate.REFERENCE_TIME.date()


def test_rerun_replaces_earlier_files(tmp_path: Path) -> None:
    small = {"population_per_county": 10, "business_per_county": 12, "license_per_county": 12}
    generate_demo(tmp_path, seed=1, max_rows_per_file=4, **small)
    manifest = generate_demo(tmp_path, seed=1, **small)
    listed = {s["path"] for s in manifest["systems"]}
    on_disk = {
        p.relative_to(tmp_path).as_posix()
        for p in (tmp_path / "systems").rglob("*")
        if p.suffix in {".csv", ".parquet", ".sqlite"}
    }
    assert on_disk == listed
