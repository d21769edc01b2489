"""connectors/: files, SQL and mappings read what they should and fail clearly on what they can't."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import schemas
from connectors import files
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


GBK_ROW = "张三,110105194912310021\n".encode("gbk")


@pytest.mark.parametrize(
    ("name", "content", "encoding", "line", "hint"),
    [
        ("header.csv", "姓名,身份证号\n".encode("gbk") + GBK_ROW, "utf-8", 1, "set `encoding: gb18030`"),
        ("body.csv", b"xm,sfzh\n" + b"a,1\n" * 3 + GBK_ROW, "ascii", 5, "set `encoding: gb18030`"),
        (
            "cut.csv",
            b"xm,sfzh\n" + GBK_ROW + b"\x81\x20,1\n",
            "gb18030",
            3,
            "mapping's encoding is the file's",
        ),
        (
            "rows.jsonl",
            b'{"a": 1}\n' + '{"xm": "张三"}\n'.encode("gbk"),
            "utf-8",
            2,
            "set `encoding: gb18030`",
        ),
    ],
    ids=["gbk-csv-header", "csv-body", "gb18030-csv-cut", "gbk-jsonl"],
)
def test_text_not_in_the_declared_encoding_says_how_to_declare_it(
    tmp_path: Path, name: str, content: bytes, encoding: str, line: int, hint: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ExtractError) as info:
        list(read_file(path, encoding=encoding))
    err = info.value
    assert (err.code, err.where) == ("FILE_ENCODING", f"{path}:{line}")
    assert hint in err.message_en and f"{encoding} text" in err.message_en
    assert "gb18030" in err.message_zh or "encoding" in err.message_zh
    # Never the row's content (personal data), raw or misread.
    shown = json.dumps(err.as_dict(), ensure_ascii=False)
    assert not any(s in shown for s in ("张三", "110105194912310021", "\\x", "0x", "Õ"))
    if encoding != "gb18030":  # declared as the hint says, the file reads
        values = [v for row in _rows(read_file(path, encoding="gb18030")) for v in row.values()]
        assert "张三" in values or "张三".encode() in values


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


def test_mapping_code_table_is_checked_against_the_code_list(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "dataset: population\nvalues:\n  gender: {男: '1', 女: '2'}\n  status:\n"
        "    '10': normal\n    '21': Moved_Out\n  moved_to: {x: '630104'}\n",
        encoding="utf-8",
    )
    mapping = load_mapping(path)  # a mapping read alone is not tied to a dataset's code lists
    with pytest.raises(ExtractError) as info:
        mapping.check_dataset(schemas.get("population"))
    err = info.value
    assert (err.code, err.where) == ("MAPPING_VALUE", f"{path}:6")
    assert "local code '21' maps to 'Moved_Out'" in err.message_en
    assert "did you mean 'moved_out'" in err.message_en and "normal, moved_out, deceased" in err.message_en
    assert "values.status" in err.message_zh and "moved_out" in err.message_zh
    # Codes of a field without a closed list (moved_to), or blank (no value), are not checked here.
    Mapping(values={"status": {"99": " "}, "moved_to": {"x": "y"}}).check_dataset(schemas.get("population"))
    long = Mapping(values={"ethnicity": {"汉": "1", "藏": "x4"}}, source="e.yaml")
    with pytest.raises(ExtractError) as info:
        long.check_dataset(schemas.get("population"))
    assert "did you mean '01'" in info.value.message_en and ", ...)" in info.value.message_en
    assert info.value.where == "e.yaml"


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


# --- hostile and oversized files: a coded error naming the place, or the rows, never a stack trace ------


def test_deep_jsonl_line_is_a_coded_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    deep = '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path.write_text('{"a": "1"}\n' + deep + "\n", encoding="utf-8")
    with pytest.raises(ExtractError) as info:
        list(read_file(path))
    assert info.value.code == "FILE_TOO_DEEP"
    assert info.value.where == f"{path}:2"
    assert info.value.message_zh and info.value.message_en


def test_jsonl_line_over_the_limit_is_refused_with_a_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "JSONL_MAX_LINE_BYTES", 1000)
    path = tmp_path / "long.jsonl"
    at_limit = '{"a": "' + "x" * (1000 - 9) + '"}'
    assert len(at_limit) == 1000
    path.write_text(at_limit + "\n" + '{"a": "' + "y" * 5000 + '"}\n', encoding="utf-8")
    with pytest.raises(ExtractError) as info:
        list(read_file(path))
    assert info.value.code == "FILE_LINE_TOO_LONG"
    assert info.value.where == f"{path}:2"
    # A line of exactly the limit, the last one without its newline, is read.
    path.write_text(at_limit + "\n" + at_limit, encoding="utf-8")
    assert len(_rows(read_file(path))) == 2
    # The limit counts bytes, not characters.
    path.write_bytes(('{"a": "' + "名" * 400 + '"}\n').encode())
    with pytest.raises(ExtractError) as info:
        list(read_file(path))
    assert info.value.code == "FILE_LINE_TOO_LONG" and info.value.where == f"{path}:1"


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b'{"a": "\\ud800"}', "FILE_ENCODING"),  # a lone surrogate cannot be UTF-8 text
        (b'{"\\udfff": 1}', "FILE_ENCODING"),
        (b'{"a": ' + b"1" * 5000 + b"}", "FILE_MALFORMED"),  # over Python's integer digit limit
        (b'{"a": "\xff\xfe"}', "FILE_ENCODING"),
        (b'{"a": ' + b'{"b": ' * 5000 + b"1" + b"}" * 5000 + b"}", "FILE_TOO_DEEP"),
        (b'{"a": NaN, "b": Infinity}', None),
        (b'\xef\xbb\xbf{"a": "bom"}', None),  # a UTF-8 byte order mark before the first line
    ],
)
def test_jsonl_bad_content_only_raises_coded_errors(tmp_path: Path, line: bytes, code: str | None) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_bytes(line + b"\n" + b'{"a": "2"}\n')
    if code is None:
        assert len(_rows(read_file(path))) == 2
        return
    with pytest.raises(ExtractError) as info:
        list(read_file(path))
    assert (info.value.code, info.value.where) == (code, f"{path}:1")


def test_jsonl_batches_stay_bounded_for_wide_or_long_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "wide.jsonl"
    path.write_text(
        "".join(json.dumps({"k": i, "v": "x" * 1000}) + "\n" for i in range(50)), encoding="utf-8"
    )
    monkeypatch.setattr(files, "JSONL_BATCH_BYTES", 10_000)
    batches = list(read_file(path, batch_size=40))
    assert max(b.num_rows for b in batches) < 40
    assert [r["k"] for r in _rows(batches)] == [str(i) for i in range(50)]
    monkeypatch.setattr(files, "JSONL_MAX_COLUMNS", 100)
    path.write_text(json.dumps({f"c{i}": i for i in range(101)}) + "\n", encoding="utf-8")
    with pytest.raises(ExtractError) as info:
        list(read_file(path))
    assert (info.value.code, info.value.where) == ("FILE_TOO_MANY_COLUMNS", f"{path}:1")


def _csv_with_long_fields(path: Path, long: dict[int, int], n: int = 60_000) -> None:
    """``n`` rows keyed 0..n-1; row ``i`` in ``long`` has a quoted note of that many bytes (with a comma)."""
    with path.open("w", encoding="utf-8") as fh:
        fh.write("k,note,tail\n")
        for i in range(n):
            note = f'"{"长" * (long[i] // 3 - 1)},"' if i in long else f"short {i}"
            fh.write(f"{i},{note},t{i}\n")


def test_csv_field_of_10_mb_is_read_with_the_rows_around_it(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    # The first long row lies beyond the first 1 MiB block, after rows already handed out.
    _csv_with_long_fields(path, {50_000: 10 << 20, 50_001: 3 << 20, 55_000: 20 << 20})
    keys: list[int] = []
    notes: dict[int, bytes] = {}
    for batch in read_file(path, batch_size=1000):
        for row in batch.to_pylist():
            keys.append(int(row["k"]))
            if len(row["note"]) > 100:
                notes[int(row["k"])] = row["note"]
            assert row["tail"] == f"t{row['k'].decode()}".encode()
    assert keys == list(range(60_000))  # every row once, in order
    assert sorted(notes) == [50_000, 50_001, 55_000]
    assert notes[50_000] == ("长" * ((10 << 20) // 3 - 1) + ",").encode()
    assert len(notes[55_000]) == (20 << 20) // 3 * 3 - 2


def test_csv_field_over_the_maximum_is_a_coded_error_naming_the_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "CSV_MAX_BLOCK_BYTES", 4 << 20)
    path = tmp_path / "huge.csv"
    _csv_with_long_fields(path, {2: 3 << 20, 30_000: 5 << 20}, n=30_005)
    with pytest.raises(ExtractError) as info:
        list(read_file(path, batch_size=1000))
    err = info.value
    assert err.code == "FILE_FIELD_TOO_LARGE"
    assert err.where == f"{path}: data row 30001"
    assert "4 MiB" in err.message_en and "4 MiB" in err.message_zh


def test_csv_parse_error_does_not_echo_the_row(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text("name,id\n张三,110101199003074514\n李四\n", encoding="utf-8")
    with pytest.raises(ExtractError) as info:
        list(read_file(path))
    assert info.value.code == "FILE_MALFORMED"
    assert "李四" not in str(info.value) and "李四" not in info.value.message_zh


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (pa.ArrowNotImplementedError("unsupported"), "FILE_MALFORMED"),
        (pa.ArrowCapacityError("too big"), "FILE_MALFORMED"),
        (pa.ArrowTypeError("type"), "FILE_MALFORMED"),
        (OSError(5, "Input/output error"), "FILE_UNREADABLE"),
        (PermissionError(13, "Permission denied"), "FILE_UNREADABLE"),
        (RecursionError("deep"), "FILE_TOO_DEEP"),
        (ValueError("odd"), "FILE_MALFORMED"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "FILE_ENCODING"),
        (LookupError("unknown encoding: klingon"), "FILE_ENCODING"),
        (csv.Error("new-line character seen in unquoted field"), "FILE_MALFORMED"),
        (MemoryError(), "FILE_TOO_LARGE"),
    ],
)
@pytest.mark.parametrize("name", ["x.csv", "x.parquet", "x.jsonl"])
def test_unexpected_reader_failures_become_coded_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, exc: Exception, code: str
) -> None:
    path = tmp_path / name
    path.write_bytes(b"a\n1\n")

    def broken(*args: object, **kwargs: object):
        yield pa.record_batch({"a": pa.array([b"1"], pa.binary())})
        raise exc

    fmt = files.detect_format(path)
    monkeypatch.setattr(files, f"_read_{fmt}", broken)
    with pytest.raises(ExtractError) as info:
        list(read_file(path))
    assert info.value.code == code
    assert info.value.where.startswith(str(path))
    assert info.value.message_zh and info.value.message_en


def test_unexpected_failures_in_real_readers(tmp_path: Path) -> None:
    # A Parquet column type the reader cannot turn into batches, an unknown encoding, a folder named .csv.
    bad_enc = tmp_path / "a.csv"
    bad_enc.write_text("a\n1\n", encoding="utf-8")
    with pytest.raises(ExtractError) as info:
        list(read_file(bad_enc, encoding="klingon"))
    assert info.value.code == "FILE_ENCODING" and info.value.where.startswith(str(bad_enc))
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"a": 1}\n', encoding="utf-8")
    with pytest.raises(ExtractError) as info:
        list(read_file(jsonl, encoding="klingon"))
    assert info.value.code == "FILE_ENCODING" and info.value.where.startswith(str(jsonl))


def test_rebatch_bounds_the_bytes_it_holds() -> None:
    small = [pa.record_batch({"a": pa.array([b"x" * 100] * 10, pa.binary())}) for _ in range(10)]
    sizes = [b.num_rows for b in files.rebatch(small, 1000, max_bytes=2500)]
    assert sum(sizes) == 100 and max(sizes) <= 30


def test_csv_with_a_stray_quote_and_a_long_value_is_read(tmp_path: Path) -> None:
    # An odd number of quotes sends the file through the csv module's check, whose default field limit
    # (128 KiB) must not make a long but complete value look like a cut one.
    path = tmp_path / "stray.csv"
    long = "长" * 100_000
    path.write_text(f'k,note\n1,5" pipe\n2,"{long}"\n3,x\n', encoding="utf-8")
    rows = _rows(read_file(path))
    assert [r["k"] for r in rows] == [b"1", b"2", b"3"]
    assert rows[0]["note"] == b'5" pipe' and rows[1]["note"] == long.encode()


def test_jsonl_key_first_seen_in_a_later_batch_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "late.jsonl"
    lines = [{"a": str(i)} for i in range(5)] + [{"a": "5", "late": "x"}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    batches = list(read_file(path, batch_size=2))
    assert all(b.schema.names == ["a", "late"] for b in batches)
    assert pa.Table.from_batches(batches).column("late").to_pylist() == [None] * 5 + ["x"]
