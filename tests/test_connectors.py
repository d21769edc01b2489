"""connectors/: files, SQL and mappings read what they should and fail clearly on what they can't."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.errors import ExtractError
from connectors.files import read_file
from connectors.mapping import Mapping, load_mapping
from connectors.sql import read_sql, sqlite_url


def _rows(batches) -> list[dict]:
    return [row for b in batches for row in b.to_pylist()]


def test_csv_streams_in_batches_of_raw_text(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    lines = ["code,amount,note"] + [f'{i:03d},{i}.50,"x, {i}"' for i in range(25)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    batches = list(read_file(path, batch_size=10))
    assert [b.num_rows for b in batches] == [10, 10, 5]
    rows = _rows(batches)
    # Values stay as the bytes of the file: leading zeros, quotes and commas survive.
    assert rows[7] == {"code": b"007", "amount": b"7.50", "note": b"x, 7"}


def test_csv_header_with_bom_and_gb18030(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_bytes("\ufeff统一社会信用代码,名称\n91110000600037341L,测试公司\n".encode())
    rows = _rows(read_file(path))
    assert list(rows[0]) == ["统一社会信用代码", "名称"]
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("名称,住所\n通渭县某某商店,甘肃省定西市\n".encode("gb18030"))
    table = pa.Table.from_batches(list(read_file(gbk, encoding="gb18030")))
    assert table.column_names == ["名称", "住所"]
    assert table.column("名称").cast(pa.string()).to_pylist() == ["通渭县某某商店"]


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("empty.csv", b"", "FILE_EMPTY"),
        ("dup.csv", b"a,a\n1,2\n", "FILE_HEADER"),
        ("short.csv", b"a,b,c\n1,2,3\n4,5\n", "FILE_MALFORMED"),
        ("bad.parquet", b"PAR1 not really parquet", "FILE_MALFORMED"),
        ("bad.jsonl", b'{"a": 1}\n{"a": \n', "FILE_MALFORMED"),
        ("list.jsonl", b"[1, 2]\n", "FILE_MALFORMED"),
        ("data.xls", b"whatever", "FILE_FORMAT"),
    ],
)
def test_unreadable_files_raise_coded_errors(tmp_path: Path, name: str, content: bytes, code: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ExtractError) as info:
        list(read_file(path))
    assert info.value.code == code
    assert name in info.value.where
    assert info.value.message_zh and info.value.message_en


def test_jsonl_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"a": "1"}\n\n{"a": "2"}\n{oops}\n', encoding="utf-8")
    with pytest.raises(ExtractError) as info:
        list(read_file(path))
    assert info.value.where.endswith(":4")


def test_jsonl_keeps_scalars_as_text_and_missing_keys_as_null(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": "x", "b": 1}\n{"a": null, "c": true}\n', encoding="utf-8")
    rows = _rows(read_file(path))
    assert rows == [{"a": "x", "b": "1", "c": None}, {"a": None, "b": None, "c": "true"}]


def test_truncated_parquet(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": list(range(1000))}), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ExtractError) as info:
        list(read_file(path))
    assert info.value.code == "FILE_MALFORMED"


def test_sql_reads_tables_and_queries_with_mixed_types(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("create table t (k text, v)")
        conn.executemany("insert into t values (?, ?)", [("a", 1), ("b", "two"), ("c", None)])
    rows = _rows(read_sql(sqlite_url(db), table="t", batch_size=2))
    assert rows == [{"k": "a", "v": "1"}, {"k": "b", "v": "two"}, {"k": "c", "v": None}]
    rows = _rows(read_sql(sqlite_url(db), query="select k from t where v is null"))
    assert rows == [{"k": "c"}]
    with pytest.raises(ExtractError) as info:
        list(read_sql(sqlite_url(db), table="missing"))
    assert info.value.code == "SQL_NO_TABLE"
    with pytest.raises(ExtractError) as info:
        list(read_sql(sqlite_url(db), query="select nope from t"))
    assert info.value.code == "SQL_ERROR"


def test_sql_opens_sqlite_read_only(tmp_path: Path) -> None:
    db = tmp_path / "ro.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("create table t (k text)")
    with pytest.raises(ExtractError):
        list(read_sql(sqlite_url(db), query="insert into t values ('x') returning k"))
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from t").fetchone() == (0,)


def test_mapping_renames_and_translates_codes(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "dataset: population\ncolumns: {ryzt: status, xm: name}\n"
        "values:\n  status: {'10': normal, 21: moved_out}\ntimezone: Asia/Shanghai\ntable: czrk\n",
        encoding="utf-8",
    )
    mapping = load_mapping(path)
    assert mapping.dataset == "population" and mapping.table == "czrk" and mapping.timezone == "Asia/Shanghai"
    table = pa.table({"xm": ["张三", "李四", "王五"], "ryzt": ["10", " 21 ", "99"], "other": [1, 2, 3]})
    mapped = mapping.apply(table)
    assert mapped.column_names == ["name", "status", "other"]
    # Unknown local codes pass through so the contract reports them (STATUS_INVALID), never silently.
    assert mapped.column("status").to_pylist() == ["normal", "moved_out", "99"]


def test_mapping_values_on_binary_columns_from_csv(tmp_path: Path) -> None:
    mapping = Mapping(values={"status": {"存续": "active"}})
    table = pa.table({"status": pa.array(["存续".encode(), b"x"], pa.binary())})
    assert mapping.apply(table).column("status").to_pylist() == ["active", "x"]


@pytest.mark.parametrize(
    ("text", "code", "line", "word"),
    [
        ("dataset: population\ncolumns: [a, b]\n", "MAPPING_INVALID", 2, "columns"),
        ("dataset: population\nvalues: {status: normal}\n", "MAPPING_INVALID", 2, "values"),
        ("dataset: population\n\nencoding: klingon\n", "MAPPING_INVALID", 3, "encoding"),
        ("dataset: population\ncolums: {}\n", "MAPPING_INVALID", 2, "colums"),
        ("columns: {a: b\n", "MAPPING_SYNTAX", None, ""),
        ("- just\n- a list\n", "MAPPING_INVALID", 1, ""),
    ],
)
def test_mapping_errors_name_file_line_and_field(tmp_path: Path, text, code, line, word) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ExtractError) as info:
        load_mapping(path)
    err = info.value
    assert err.code == code
    assert err.where.startswith(str(path))
    if line is not None:
        assert err.where == f"{path}:{line}"
    assert word in err.message_en and word in err.message_zh


def test_missing_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(ExtractError) as info:
        load_mapping(tmp_path / "none.yaml")
    assert info.value.code == "MAPPING_NOT_FOUND"


def test_error_as_dict_is_json_ready() -> None:
    err = ExtractError("X", "中文", "english", "f.csv:3")
    assert json.loads(json.dumps(err.as_dict())) == {
        "code": "X",
        "message_zh": "中文",
        "message_en": "english",
        "where": "f.csv:3",
    }
