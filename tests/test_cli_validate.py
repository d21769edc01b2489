"""`tongban validate`: formats, mappings, exit codes and clear errors for unusable input."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tongban.cli import main

HEADER = "sfzh,xm,xb,mz,csrq,hjdq,hjdz,ryzt,qwdq,gxsj"
GOOD = "11010519491231002X,张三,2,01,1949-12-31,110105,北京市朝阳区,10,,2024-01-01 08:00:00"
ROWS = [
    GOOD,
    "110105194912310021,李四,2,01,1949-12-31,110105,北京市朝阳区,10,,2024-01-01 08:00:00",  # ID_CHECKSUM
    "360426199101010071,王五,1,60,1991-01-01,360426,江西省,21,,2024-01-01 08:00:00",  # ETHNICITY + MOVED_TO
    "110105491231002,赵六,2,01,1949-12-31,110105,北京市朝阳区,30,,2024-01-01 08:00:00",  # legacy, duplicate
    "360426199101010071,王五,1,01,1991-01-02,360426,江西省,10,,2024-01-01 08:00:00",  # duplicate + birth
]
MAPPING = """\
dataset: population
columns: {sfzh: id_number, xm: name, xb: gender, mz: ethnicity, csrq: birth_date, hjdq: household_division,
          hjdz: household_address, ryzt: status, qwdq: moved_to, gxsj: updated_at}
values:
  status: {"10": normal, "21": moved_out, "30": deceased}
timezone: Asia/Shanghai
"""


@pytest.fixture
def extract(tmp_path: Path) -> tuple[Path, Path]:
    csv = tmp_path / "czrk.csv"
    csv.write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    mapping = tmp_path / "czrk.mapping.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    return csv, mapping


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_lines_and_summary(capsys, extract) -> None:
    csv, mapping = extract
    code, out, _ = run(
        capsys, "validate", "population", str(csv), "--mapping", str(mapping), "--format", "json", "--reveal"
    )
    assert code == 1
    lines = [json.loads(line) for line in out.splitlines()]
    reports, summary = lines[:-1], lines[-1]["summary"]
    by_row = {r["row"]: r for r in reports}
    assert set(by_row) == {2, 3, 4, 5}
    assert by_row[2]["codes"] == ["ID_CHECKSUM"] and by_row[2]["key"] == "110105194912310021"
    assert set(by_row[3]["codes"]) == {"ETHNICITY_INVALID", "MOVED_TO_MISSING"}
    # The legacy number converts to row 1's key: a warning plus a duplicate of row 1.
    assert set(by_row[4]["codes"]) == {"ID_LEGACY_15", "KEY_DUPLICATE"}
    assert by_row[4]["key"] == "11010519491231002X" and "row 1" in by_row[4]["message_en"]
    assert "KEY_DUPLICATE" in by_row[5]["codes"] and "row 3" in by_row[5]["message_en"]
    for r in reports:
        assert r["severity"] == "error" and r["message_zh"] and r["message_en"]
        assert set(r) >= {"row", "key", "severity", "codes", "message_zh", "message_en"}
    assert summary["rows"] == 5 and summary["rejected"] == 4 and summary["accepted"] == 1


def test_keys_are_masked_unless_revealed(capsys, extract) -> None:
    csv, mapping = extract
    for fmt in ("json", "text"):
        code, out, _ = run(
            capsys, "validate", "population", str(csv), "--mapping", str(mapping), "--format", fmt
        )
        assert code == 1
        assert "110105194912310021" not in out and "11010519491231002X" not in out
        assert "1101**********0021" in out


def test_text_output_and_exit_zero_when_clean(capsys, tmp_path, extract) -> None:
    csv, mapping = extract
    clean = tmp_path / "clean.csv"
    clean.write_text(f"{HEADER}\n{GOOD}\n", encoding="utf-8")
    code, out, _ = run(capsys, "validate", "population", str(clean), "--mapping", str(mapping))
    assert code == 0
    assert "1 行 rows, 1 通过 accepted" in out
    code, out, _ = run(capsys, "validate", "population", str(csv), "--mapping", str(mapping))
    assert code == 1
    assert (
        "第 2 行 row 2" in out and "ID_CHECKSUM" in out and "校验码错误" in out and "check character" in out
    )


def test_warnings_only_exit_zero(capsys, tmp_path, extract) -> None:
    _, mapping = extract
    legacy = tmp_path / "legacy.csv"
    legacy.write_text(f"{HEADER}\n{ROWS[3]}\n", encoding="utf-8")
    code, out, _ = run(
        capsys, "validate", "population", str(legacy), "--mapping", str(mapping), "--format", "json"
    )
    assert code == 0
    first = json.loads(out.splitlines()[0])
    assert first["severity"] == "warning" and first["codes"] == ["ID_LEGACY_15"]


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["validate", "nosuch", "{csv}"], "DATASET_UNKNOWN"),
        (["validate", "population", "{dir}/missing.csv"], "FILE_NOT_FOUND"),
        (["validate", "population", "{csv}"], "COLUMN_MISSING"),
        (["validate", "population", "{dir}/x.xlsx"], "FILE_FORMAT"),
        (["validate", "business", "{csv}", "--mapping", "{mapping}"], "MAPPING_DATASET"),
    ],
)
def test_unusable_input_exit_two(capsys, tmp_path, extract, argv, code) -> None:
    csv, mapping = extract
    (tmp_path / "x.xlsx").write_bytes(b"PK\x03\x04")
    filled = [a.format(csv=csv, dir=tmp_path, mapping=mapping) for a in argv]
    rc, out, err = run(capsys, *filled, "--format", "json")
    assert rc == 2
    assert json.loads(out)["error"]["code"] == code
    assert code in err and "Traceback" not in err


def test_code_table_typo_is_unusable_before_any_row(capsys, tmp_path, extract) -> None:
    # Without the check every row with local code 30 would be rejected, the bad value shown nowhere.
    csv, mapping = extract
    typo = tmp_path / "typo.mapping.yaml"
    typo.write_text(mapping.read_text(encoding="utf-8").replace(": deceased", ": decaesed"), encoding="utf-8")
    rc, out, err = run(capsys, "validate", "population", str(csv), "--mapping", str(typo), "--format", "json")
    assert rc == 2
    error = json.loads(out)["error"]
    assert error["code"] == "MAPPING_VALUE" and error["where"] == f"{typo}:5"
    assert "'decaesed'" in err and "did you mean 'deceased'" in err


def test_truncated_csv_is_unusable_with_location(capsys, tmp_path, extract) -> None:
    csv, mapping = extract
    truncated = tmp_path / "truncated.csv"
    data = csv.read_bytes()
    truncated.write_bytes(data[: len(data) - 40])
    rc, _, err = run(capsys, "validate", "population", str(truncated), "--mapping", str(mapping))
    assert rc == 2
    assert "FILE_MALFORMED" in err and "truncated.csv" in err


def test_mapping_typo_names_file_line_and_field(capsys, tmp_path, extract) -> None:
    csv, _ = extract
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: population\ncolumns: {}\ntimezon: Asia/Shanghai\n", encoding="utf-8")
    rc, _, err = run(capsys, "validate", "population", str(csv), "--mapping", str(bad))
    assert rc == 2
    assert "MAPPING_INVALID" in err and f"{bad}:3" in err and "timezon" in err
    bad.write_text("dataset: population\ntimezone: Mars/Base\n", encoding="utf-8")
    rc, _, err = run(capsys, "validate", "population", str(csv), "--mapping", str(bad))
    assert rc == 2 and f"{bad}:2" in err and "timezone" in err
    bad.write_text("dataset: [population\n", encoding="utf-8")
    rc, _, err = run(capsys, "validate", "population", str(csv), "--mapping", str(bad))
    assert rc == 2 and "MAPPING_SYNTAX" in err


def test_broken_encoding_is_a_row_finding_not_a_crash(capsys, tmp_path, extract) -> None:
    _, mapping = extract
    broken = tmp_path / "broken.csv"
    bad_row = ROWS[1].encode().replace("李四".encode(), b"\xff\xfe")
    broken.write_bytes(f"{HEADER}\n{GOOD}\n".encode() + bad_row + b"\n")
    rc, out, _ = run(
        capsys, "validate", "population", str(broken), "--mapping", str(mapping), "--format", "json"
    )
    assert rc == 1
    report = json.loads(out.splitlines()[0])
    assert report["row"] == 2 and "ENCODING_INVALID" in report["codes"]


def test_parquet_jsonl_and_sqlite_sources(capsys, tmp_path) -> None:
    row = {
        "id_number": "11010519491231002X",
        "name": "张三",
        "gender": "2",
        "ethnicity": "01",
        "birth_date": "1949-12-31",
        "household_division": "110105",
        "household_address": "北京市朝阳区",
        "status": "normal",
        "moved_to": None,
        "updated_at": "2024-01-01T08:00:00+08:00",
    }
    bad = {**row, "id_number": "360426199101010072", "birth_date": "1991-01-01"}
    pq.write_table(pa.Table.from_pylist([row, bad]), tmp_path / "p.parquet")
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [row, bad]) + "\n")
    db = tmp_path / "gongan.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute(f"create table czrk ({', '.join(row)})")
        conn.executemany(
            f"insert into czrk values ({', '.join('?' * len(row))})",
            [tuple(row.values()), tuple(bad.values())],
        )
    for path, extra in ((tmp_path / "p.parquet", []), (tmp_path / "p.jsonl", []), (db, ["--table", "czrk"])):
        rc, out, _ = run(capsys, "validate", "population", str(path), "--format", "json", *extra)
        assert rc == 1, path
        lines = [json.loads(x) for x in out.splitlines()]
        assert lines[0]["row"] == 2 and lines[0]["codes"] == ["ID_CHECKSUM"]
        assert lines[-1]["summary"]["rows"] == 2
    rc, _, err = run(capsys, "validate", "population", str(db))
    assert rc == 2 and "SQL_NO_TABLE" in err
    rc, _, err = run(capsys, "validate", "population", str(db), "--table", "nope")
    assert rc == 2 and "SQL_NO_TABLE" in err


def test_rows_number_on_across_batches(capsys, extract) -> None:
    csv, mapping = extract
    rc, out, _ = run(
        capsys,
        "validate",
        "population",
        str(csv),
        "--mapping",
        str(mapping),
        "--format",
        "json",
        "--batch-size",
        "2",
    )
    assert rc == 1
    rows = [json.loads(x)["row"] for x in out.splitlines()[:-1]]
    assert rows == [2, 3, 4, 5]


def test_console_script_help_and_no_traceback(tmp_path) -> None:
    exe = Path(sys.executable).with_name("tongban")
    done = subprocess.run([str(exe), "validate", "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "--mapping" in done.stdout and "校验" in done.stdout
    done = subprocess.run(
        [str(exe), "validate", "population", str(tmp_path / "none.csv")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "FILE_NOT_FOUND" in done.stderr and "Traceback" not in done.stderr


def test_uscc_allowlist_file(capsys, tmp_path) -> None:
    row = (
        "91110000600037341M,某某公司,有限责任公司,张三,,100,2001-05-01,北京市市场监督管理局,110000,北京市,"
        "软件开发,active,,2024-01-01T08:00:00+08:00"
    )
    header = (
        "uscc,name,entity_type,legal_representative,legal_rep_id_number,registered_capital,established_date,"
        "registration_authority,division,address,business_scope,status,moved_to,updated_at"
    )
    csv = tmp_path / "qy.csv"
    csv.write_text(f"{header}\n{row}\n", encoding="utf-8")
    rc, out, _ = run(capsys, "validate", "business", str(csv), "--format", "json")
    assert rc == 1 and json.loads(out.splitlines()[0])["codes"] == ["USCC_CHECKSUM"]
    allow = tmp_path / "allow.txt"
    allow.write_text(
        "# early codes confirmed by the registration authority\n91110000600037341m  # lower case ok\n"
    )
    rc, out, _ = run(
        capsys, "validate", "business", str(csv), "--format", "json", "--uscc-allowlist", str(allow)
    )
    assert rc == 0 and json.loads(out.splitlines()[0])["codes"] == ["USCC_ALLOWLISTED"]
    allow.write_text("not-a-code\n")
    rc, _, err = run(capsys, "validate", "business", str(csv), "--uscc-allowlist", str(allow))
    assert rc == 2 and "ALLOWLIST_INVALID" in err and f"{allow}:1" in err


def test_mapping_to_an_unknown_field_names_the_line(capsys, tmp_path, extract) -> None:
    csv, _ = extract
    typo = tmp_path / "typo.yaml"
    typo.write_text(
        "dataset: population\ncolumns:\n  sfzh: id_nubmer\n  xm: name\nvalues:\n  statuz: {'10': normal}\n",
        encoding="utf-8",
    )
    rc, _, err = run(capsys, "validate", "population", str(csv), "--mapping", str(typo))
    assert rc == 2
    assert "MAPPING_FIELD" in err and f"{typo}:3" in err and "id_nubmer" in err
    typo.write_text("dataset: population\nvalues:\n  statuz: {'10': normal}\n", encoding="utf-8")
    rc, _, err = run(capsys, "validate", "population", str(csv), "--mapping", str(typo))
    assert rc == 2 and f"{typo}:3" in err and "statuz" in err


def test_ignored_columns_and_double_mapping(capsys, tmp_path, extract) -> None:
    csv, mapping = extract
    extra = tmp_path / "extra.csv"
    extra.write_text(f"{HEADER},beizhu\n{GOOD},备注\n", encoding="utf-8")
    rc, out, _ = run(
        capsys, "validate", "population", str(extra), "--mapping", str(mapping), "--format", "json"
    )
    assert rc == 0 and json.loads(out.splitlines()[-1])["summary"]["ignored_columns"] == ["beizhu"]
    rc, out, _ = run(capsys, "validate", "population", str(extra), "--mapping", str(mapping))
    assert "ignored columns: beizhu" in out
    double = tmp_path / "double.yaml"
    double.write_text("columns:\n  sfzh: id_number\n  zjhm: id_number\n", encoding="utf-8")
    rc, _, err = run(capsys, "validate", "population", str(csv), "--mapping", str(double))
    assert rc == 2 and "MAPPING_FIELD" in err and "id_number" in err and f"{double}:" in err
