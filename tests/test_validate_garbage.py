"""Garbage in, rule codes out: validation never raises on what an extract may hold.

Hypothesis builds tables for each dataset whose columns are text with control
characters, NULLs, empty and 10,000-character strings, CJK, emoji and
full-width characters, invalid UTF-8 bytes, and columns of the wrong Arrow
type altogether (integers, floats, booleans, lists, structs, dates,
timestamps with and without a zone, decimals, dictionaries, nulls), mixed
with valid values so that some rows pass. Every row must come out either
accepted or rejected, with codes from the catalogue, and the canonical table
must have the dataset's schema.

The second half checks the ``schemas.coerce`` readers one by one.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from stdnum.cn import ric

from schemas import business, coerce, license, population
from schemas.contract import Dataset, Kind
from schemas.rules import RULES, Severity
from schemas.standards import gb11643, gb32100, gbt36904
from schemas.validate import BatchResult, Validator

TODAY = dt.date(2026, 11, 1)

GARBAGE = settings(
    max_examples=60,
    deadline=None,
    database=None,  # nothing written to the work tree
    derandomize=True,  # the same examples on every run, so CI is reproducible
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
READERS = settings(GARBAGE, max_examples=150)

# --------------------------------------------------------------------------- valid rows, so some rows pass


def _id(area: str, birth: str, seq: str) -> str:
    body = area + birth + seq
    return body + ric.calc_check_digit(body + "0")


_T = "2024-01-01T08:00:00+08:00"
_POP = (
    "id_number",
    "name",
    "gender",
    "ethnicity",
    "birth_date",
    "household_division",
    "household_address",
    "status",
    "moved_to",
    "updated_at",
)
_BIZ = (
    "uscc",
    "name",
    "entity_type",
    "legal_representative",
    "legal_rep_id_number",
    "registered_capital",
    "established_date",
    "registration_authority",
    "division",
    "address",
    "business_scope",
    "status",
    "moved_to",
    "updated_at",
)
_LIC = (
    "license_id",
    "license_type_code",
    "license_type_name",
    "license_number",
    "holder_name",
    "holder_code",
    "holder_code_type",
    "issuer_name",
    "issuer_code",
    "issue_date",
    "valid_from",
    "valid_until",
    "division",
    "status",
    "surface",
    "updated_at",
)
_LIC_ID = gbt36904.compose("11100000000013338W001", "11630104MB0000123M", "2024000123", "001")
_LIC_ID_2 = gbt36904.compose("11100000000013338W002", "11630104MB0000123M", "2024000124", "001")

# Coherent clean rows (ID numbers agree with gender and birth date, and so on); the first of each is accepted
# without findings, the others may carry warnings (legacy ID, central-level USCC).
ROWS: dict[str, list[dict[str, str | None]]] = {
    "population": [
        dict(zip(_POP, r, strict=True))
        for r in (
            (
                "11010519491231002X",
                "张秀英",
                "2",
                "01",
                "1949-12-31",
                "110105",
                "北京市朝阳区",
                "normal",
                None,
                _T,
            ),
            (
                "360426199101010071",
                "李建国",
                "1",
                "04",
                "1991-01-01",
                "360426",
                "德安县",
                "deceased",
                None,
                "2025-06-30T23:59:59Z",
            ),
            (
                _id("630104", "19850310", "013"),
                "韩德明",
                "1",
                "01",
                "1985-03-10",
                "630104",
                "城西区",
                "moved_out",
                "630105",
                _T,
            ),
            (
                _id("630104", "20000229", "024"),
                "马海燕",
                "2",
                "03",
                "2000-02-29",
                "630104",
                "城西区",
                "normal",
                None,
                _T,
            ),
            ("630104800615024", "马秀兰", "2", "03", "1980-06-15", "630104", "城西区", "normal", None, _T),
        )
    ],
    "business": [
        dict(zip(_BIZ, r, strict=True))
        for r in (
            (
                "91110000600037341L",
                "北京某某科技有限公司",
                "有限责任公司",
                "张三",
                "360426199101010071",
                "1000",
                "2001-05-01",
                "北京市市场监督管理局",
                "110105",
                "北京市朝阳区",
                "技术开发",
                "active",
                None,
                _T,
            ),
            (
                "11630104MB0000123M",
                "某某商店",
                "个体工商户",
                "李四",
                None,
                None,
                "2015-08-20",
                "城西区市场监督管理局",
                "630104",
                "城西区",
                None,
                "moved_out",
                "360402",
                _T,
            ),
            (
                "11100000000013338W",
                "某某机关",
                "机关",
                "王五",
                None,
                "12.5",
                "1998-01-01",
                "国家市场监督管理总局",
                "110105",
                "北京市西城区",
                None,
                "active",
                None,
                _T,
            ),
        )
    ],
    "license": [
        dict(zip(_LIC, r, strict=True))
        for r in (
            (
                _LIC_ID,
                "11100000000013338W001",
                "食品经营许可证",
                "JY16301040000123",
                "张秀英",
                "11010519491231002X",
                "111",
                "城西区市场监督管理局",
                "11630104MB0000123M",
                "2024-01-10",
                "2024-01-10",
                "2029-01-09",
                "630104",
                "01",
                '{"名称": "张秀英"}',
                _T,
            ),
            (
                _LIC_ID_2,
                "11100000000013338W002",
                "营业执照",
                "91110000600037341L",
                "北京某某科技有限公司",
                "91110000600037341L",
                "001",
                "城西区市场监督管理局",
                "11630104MB0000123M",
                "2001-05-01",
                "2001-05-01",
                None,
                "630104",
                "05",
                None,
                _T,
            ),
        )
    ],
}
VALID: dict[str, dict[str, list[str]]] = {
    name: {k: sorted({r[k] for r in rows if r[k] is not None}) for k in rows[0]}
    for name, rows in ROWS.items()
}
DATASETS: dict[str, Dataset] = {
    "population": population.DATASET,
    "business": business.DATASET,
    "license": license.DATASET,
}

# --------------------------------------------------------------------------- garbage strategies

CONTROL_CHARS = st.characters(min_codepoint=0, max_codepoint=0x1F) | st.just("\x7f")
WHITESPACE = st.text(alphabet=" \t\n\r\u3000\u00a0\u2003\u200b", max_size=4)
CJK = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=12)
EMOJI = st.text(alphabet=st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF), min_size=1, max_size=6)
FULL_WIDTH = st.text(
    alphabet=st.characters(min_codepoint=0xFF01, max_codepoint=0xFF5E), min_size=1, max_size=22
)
LONG = st.builds(
    lambda ch, n: ch * n, st.sampled_from(["x", "9", "中", "😀", "１", " "]), st.sampled_from([10_000])
)
WITH_CONTROL = st.builds(
    lambda a, c, b: a + c + b,
    st.text(max_size=8),
    st.text(CONTROL_CHARS, min_size=1, max_size=3),
    st.text(max_size=8),
)
DATEISH = st.builds(
    lambda y, m, d: f"{y:04d}-{m:02d}-{d:02d}", st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32)
)
TIMEISH = st.builds(
    lambda date, sep, hh, mm, rest, zone: f"{date}{sep}{hh:02d}:{mm:02d}{rest}{zone}",
    DATEISH,
    st.sampled_from(["T", " ", "t"]),
    st.integers(0, 25),
    st.integers(0, 61),
    st.sampled_from(["", ":00", ":59", ":60", ":00.5", ":00.123456", ":00.1234567", ":00.123456789"]),
    st.sampled_from(["", "Z", "+08:00", "+0800", "+08", "-14:00", "+15:00", "z", " +08:00"]),
)
NUMBERISH = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.integers().map(str),
    st.sampled_from(
        ["1,000.5", "1e3", "-0", "0x10", "1_000", "١٢٣", "NaN", "-Infinity", "99999999999999.9999"]
    ),
)
JSONISH = st.one_of(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3),
        max_leaves=8,
    ).map(json.dumps),
    st.sampled_from(["{", "[]", "null", '{"a":', "{'a': 1}", "{}" * 3, "[" * 5000]),
)


def text_cells(valid: list[str]) -> st.SearchStrategy:
    return st.one_of(
        st.none(),
        st.just(""),
        WHITESPACE,
        st.sampled_from(valid) if valid else st.nothing(),
        st.sampled_from(valid).map(lambda v: f" {v.lower()}\u3000") if valid else st.nothing(),
        st.sampled_from(valid).map(lambda v: v.translate(_FULL)) if valid else st.nothing(),
        WITH_CONTROL,
        LONG,
        CJK,
        EMOJI,
        FULL_WIDTH,
        st.text(max_size=30),
        DATEISH,
        TIMEISH,
        NUMBERISH,
        JSONISH,
    )


_FULL = str.maketrans(
    {c: chr(ord(c) + 0xFEE0) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"}
)

INT64 = st.integers(-(2**63), 2**63 - 1)
DATES = st.dates()
TIME_UNITS = st.sampled_from(["s", "ms", "us", "ns"])
ZONES = st.sampled_from(["UTC", "Asia/Shanghai", "+08:00", "America/New_York"])
DECIMAL_TYPES = st.sampled_from(
    [pa.decimal128(10, 2), pa.decimal128(38, 10), pa.decimal128(5, 0), pa.decimal256(40, 4)]
)
_UNIT = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def stamps(unit: str) -> st.SearchStrategy:
    """Raw timestamp values in ``unit``: anywhere in the calendar, and anything an int64 holds."""
    seconds = st.integers(-62_135_596_800 + 86_400, 253_402_300_799 - 86_400)
    in_calendar = st.builds(
        lambda sec, frac: sec * _UNIT[unit] + frac, seconds, st.integers(0, _UNIT[unit] - 1)
    )
    return in_calendar.filter(lambda v: -(2**63) <= v < 2**63) | INT64


def _decimal_cells(typ: pa.Decimal128Type) -> st.SearchStrategy:
    limit = decimal.Decimal(10) ** (typ.precision - typ.scale - 1)
    return st.decimals(min_value=-limit, max_value=limit, places=typ.scale, allow_nan=False)


@st.composite
def columns(draw: st.DrawFn, name: str, n: int, valid: list[str]) -> pa.Array:
    """One raw column of ``n`` cells: text of every kind, or a column of the wrong Arrow type."""
    kind = draw(
        st.sampled_from(
            [
                "text",
                "text",
                "text",
                "valid",
                "large_string",
                "binary",
                "dictionary",
                "int64",
                "float64",
                "bool",
                "list",
                "struct",
                "date32",
                "date64",
                "naive",
                "zoned",
                "decimal",
                "null",
            ]
        )
    )

    def cells(strategy: st.SearchStrategy) -> list:
        return draw(st.lists(st.none() | strategy, min_size=n, max_size=n))

    if kind == "valid":
        return pa.array(cells(st.sampled_from(valid) if valid else st.text(max_size=5)), type=pa.string())
    if kind in ("text", "large_string", "dictionary"):
        arr = pa.array(draw(st.lists(text_cells(valid), min_size=n, max_size=n)), type=pa.string())
        if kind == "large_string":
            return arr.cast(pa.large_string())
        return arr.dictionary_encode() if kind == "dictionary" else arr
    if kind == "binary":
        raw = st.binary(max_size=24) | text_cells(valid).map(lambda s: s.encode() if s is not None else None)
        return pa.array(cells(raw), type=pa.binary())
    if kind == "int64":
        return pa.array(cells(INT64 | st.integers(0, 30_000_000)), type=pa.int64())
    if kind == "float64":
        return pa.array(cells(st.floats()), type=pa.float64())
    if kind == "bool":
        return pa.array(cells(st.booleans()), type=pa.bool_())
    if kind == "list":
        return pa.array(
            cells(st.lists(st.none() | st.integers(-5, 5), max_size=3)), type=pa.list_(pa.int64())
        )
    if kind == "struct":
        typ = pa.struct([("a", pa.int64()), ("b", pa.string())])
        return pa.array(
            cells(st.fixed_dictionaries({"a": st.integers(-5, 5), "b": st.text(max_size=5)})), type=typ
        )
    if kind == "date32":
        return pa.array(cells(DATES), type=pa.date32())
    if kind == "date64":
        return pa.array(cells(INT64.map(lambda v: v // 1000)), type=pa.date64())
    if kind == "naive":
        unit = draw(TIME_UNITS)
        return pa.array(cells(stamps(unit)), type=pa.timestamp(unit))
    if kind == "zoned":
        unit, zone = draw(TIME_UNITS), draw(ZONES)
        return pa.array(cells(stamps(unit)), type=pa.timestamp(unit, tz=zone))
    if kind == "decimal":
        typ = draw(DECIMAL_TYPES)
        return pa.array(cells(_decimal_cells(typ)), type=typ)
    return pa.nulls(n)


@st.composite
def tables(draw: st.DrawFn, name: str) -> pa.Table:
    dataset = DATASETS[name]
    n = draw(st.integers(1, 6))
    # Half the tables are clean rows with a few garbage columns, so that accepted rows occur too.
    clean = [draw(st.sampled_from(ROWS[name])) for _ in range(n)] if draw(st.booleans()) else None
    arrays, names = [], []
    for f in dataset.fields:
        if not f.required and draw(st.integers(0, 3)) == 0:
            continue  # optional columns may be missing
        if clean is not None and draw(st.integers(0, 5)) > 0:
            arrays.append(pa.array([r[f.name] for r in clean], type=pa.string()))
        else:
            arrays.append(draw(columns(f.name, n, VALID[name][f.name])))
        names.append(f.name)
    if draw(st.booleans()):
        arrays.append(pa.array(["extra"] * n))
        names.append("not_a_field")
    order = draw(st.permutations(range(len(names))))
    table = pa.table([arrays[i] for i in order], names=[names[i] for i in order])
    cut = draw(st.integers(0, n))
    if 0 < cut < n:  # several chunks, the second one sliced
        table = pa.concat_tables([table.slice(0, cut), table.slice(cut)])
    return table


# --------------------------------------------------------------------------- the invariants


def check_result(
    dataset: Dataset, table: pa.Table, result: BatchResult, v: Validator, first_row: int = 1
) -> None:
    n = table.num_rows
    reports = list(result.reports())
    assert result.first_row == first_row
    assert result.rejected.shape == (n,) and result.flagged.shape == (n,)
    assert result.rejected.dtype == bool and result.flagged.dtype == bool
    assert not (result.rejected & result.flagged).any()
    # The canonical table has the dataset's names and types, one row per input row.
    out = result.table
    assert out.num_rows == n
    assert out.schema.names == dataset.names
    assert [f.type for f in out.schema] == [f.type for f in dataset.schema]
    for finding in result.findings:
        assert finding.code in RULES, finding.code
        assert finding.field in dataset.names, finding.field
        assert finding.mask.shape == (n,) and finding.mask.dtype == bool
    reported = np.zeros(n, dtype=bool)
    for r in reports:
        i = r.row - first_row
        assert 0 <= i < n
        reported[i] = True
        assert r.findings and all(code in RULES for code, _ in r.findings)
        errors = [c for c in r.codes if RULES[c].severity is Severity.ERROR]
        assert bool(result.rejected[i]) == bool(errors), (r.codes, result.rejected[i])
        assert r.severity is (Severity.ERROR if errors else Severity.WARNING)
        assert bool(result.flagged[i]) == (not errors)
        assert r.message_zh and r.message_en
        for code, field_name in r.findings:
            assert RULES[code].en in r.message_en and field_name in r.message_en
            assert RULES[code].zh in r.message_zh
    # Rejected rows are exactly the reported rows with an error; flagged ones are the rest of the reported.
    assert not (result.rejected & ~reported).any() and not (result.flagged & ~reported).any()
    assert ((result.rejected | result.flagged) == reported).all()
    accepted = result.accepted()
    assert accepted.num_rows == n - int(result.rejected.sum())
    # Accepted rows are complete: every required field holds a value.
    for f in dataset.fields:
        if f.required:
            assert accepted.column(f.name).null_count == 0, f.name
    # Accepted keys are valid identifiers (checked with the scalar reference functions).
    keys = accepted.column(dataset.key).to_pylist()
    if dataset.name == "population":
        assert all(gb11643.is_valid(k) for k in keys), keys
    elif dataset.name == "business":
        allow = v.options["uscc_allowlist"]
        assert all(gb32100.is_valid(k) or k in allow for k in keys), keys
    else:
        assert all(gbt36904.is_valid(k) for k in keys), keys
    assert len(set(keys)) == len(keys)
    # Dates of accepted rows are not in the future (where the rule applies).
    for name in ("birth_date", "established_date", "issue_date"):
        if name in dataset.names:
            assert all(d <= TODAY for d in accepted.column(name).to_pylist() if d is not None)


def check_summary(v: Validator, rows: int) -> None:
    s = v.summary
    assert s.rows == rows == s.accepted + s.rejected
    assert 0 <= s.flagged <= s.accepted
    assert all(code in RULES for code in s.codes)
    assert s.as_dict()["rows"] == rows


def run_garbage(name: str, table: pa.Table, **kwargs) -> None:
    dataset = DATASETS[name]
    v = Validator(dataset, today=TODAY, **kwargs)
    result = v.validate(table)
    check_result(dataset, table, result, v)
    check_summary(v, table.num_rows)
    # The same rows again: row numbers continue, and every key seen before is now a duplicate.
    again = v.validate(table)
    check_result(dataset, table, again, v, first_row=table.num_rows + 1)
    check_summary(v, 2 * table.num_rows)
    keys = again.table.column(dataset.key)
    dup_rows = {r.row - table.num_rows - 1 for r in again.reports() if "KEY_DUPLICATE" in r.codes}
    assert dup_rows == {i for i, k in enumerate(keys.to_pylist()) if k is not None}


@pytest.mark.parametrize("name", list(DATASETS))
def test_clean_rows_are_accepted(name: str) -> None:
    dataset = DATASETS[name]
    table = pa.table({k: pa.array([r[k] for r in ROWS[name]], type=pa.string()) for k in ROWS[name][0]})
    v = Validator(dataset, today=TODAY)
    result = v.validate(table)
    check_result(dataset, table, result, v)
    assert not result.rejected.any(), [r.as_dict() for r in result.reports()]
    assert 1 not in {r.row for r in result.reports()}


@pytest.mark.parametrize("name", list(DATASETS))
def test_empty_table(name: str) -> None:
    dataset = DATASETS[name]
    table = pa.table({f.name: pa.array([], type=pa.string()) for f in dataset.fields})
    v = Validator(dataset, today=TODAY)
    result = v.validate(table)
    assert result.table.num_rows == 0 and list(result.reports()) == []
    check_summary(v, 0)


@GARBAGE
@given(table=tables("population"))
def test_population_garbage(table: pa.Table) -> None:
    run_garbage("population", table)


@GARBAGE
@given(table=tables("business"), allow=st.booleans())
def test_business_garbage(table: pa.Table, allow: bool) -> None:
    run_garbage("business", table, uscc_allowlist=["91110000600037341M"] if allow else ())


@GARBAGE
@given(table=tables("license"))
def test_license_garbage(table: pa.Table) -> None:
    run_garbage("license", table)


@GARBAGE
@given(table=tables("population"))
def test_population_garbage_with_timezone(table: pa.Table) -> None:
    run_garbage("population", table, timezone="Asia/Shanghai")


# --------------------------------------------------------------------------- the readers

ARBITRARY = st.lists(
    st.none() | st.text(max_size=40) | WITH_CONTROL | DATEISH | TIMEISH | NUMBERISH | JSONISH, max_size=12
)


def _check_read(
    values: pa.Array, faults: dict, n: int, typ: pa.DataType, *, nulls_on_fault: bool = True
) -> None:
    assert len(values) == n
    assert values.type == typ
    for code, mask in faults.items():
        assert code in RULES
        assert mask.dtype == bool and mask.shape == (n,)
        if nulls_on_fault and mask.any():
            assert values.filter(pa.array(mask)).null_count == int(mask.sum()), code


@READERS
@given(cells=ARBITRARY, upper=st.booleans(), max_length=st.none() | st.integers(0, 20))
def test_read_text_never_raises(cells: list, upper: bool, max_length: int | None) -> None:
    values, faults = coerce.read_text(pa.array(cells, type=pa.string()), max_length=max_length, upper=upper)
    _check_read(values, faults, len(cells), pa.string())
    for i, out in enumerate(values.to_pylist()):
        if out is None:
            continue
        assert out and out == out.strip(), repr(out)
        assert not any(ch in out for ch in "\x00\x01\x02\x7f\x1f\x1b\x0b\x0c")
        if upper:
            assert not any("a" <= ch <= "z" for ch in out)
        if max_length is not None:
            assert len(out) <= max_length
        assert cells[i] is not None


@READERS
@given(cells=ARBITRARY)
def test_read_date_never_raises(cells: list) -> None:
    values, faults = coerce.read_date(pa.array(cells, type=pa.string()))
    _check_read(values, faults, len(cells), pa.date32())


@READERS
@given(cells=ARBITRARY, zone=st.none() | st.sampled_from(["Asia/Shanghai", "UTC", "America/New_York"]))
def test_read_timestamp_never_raises(cells: list, zone: str | None) -> None:
    values, faults = coerce.read_timestamp(pa.array(cells, type=pa.string()), timezone=zone)
    _check_read(values, faults, len(cells), pa.timestamp("us", tz="UTC"))


@READERS
@given(cells=ARBITRARY)
def test_read_decimal_never_raises(cells: list) -> None:
    values, faults = coerce.read_decimal(pa.array(cells, type=pa.string()))
    _check_read(values, faults, len(cells), pa.decimal128(18, 4))
    assert all(d >= 0 for d in values.to_pylist() if d is not None)


@READERS
@given(cells=ARBITRARY)
def test_read_json_never_raises(cells: list) -> None:
    values, faults = coerce.read_json(pa.array(cells, type=pa.string()))
    _check_read(values, faults, len(cells), pa.string())
    for out in values.to_pylist():
        if out is not None:
            assert isinstance(json.loads(out), dict)


def _iso_date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


YMD = st.builds(
    lambda y, m, d: f"{y:04d}-{m:02d}-{d:02d}",
    st.one_of(st.integers(1, 9999), st.sampled_from([1, 1900, 2000, 2023, 2024, 2100, 9999])),
    st.one_of(st.integers(0, 13), st.integers(0, 99)),
    st.one_of(st.integers(0, 32), st.integers(0, 99), st.sampled_from([28, 29, 30, 31])),
)


def _read_one_date(texts: list[str]) -> list[dt.date | None]:
    values, faults = coerce.read_date(pa.array(texts, type=pa.string()))
    bad = faults.get("DATE_INVALID", np.zeros(len(texts), dtype=bool))
    out = values.to_pylist()
    assert [o is None for o in out] == bad.tolist()
    return out


@READERS
@given(text=YMD)
@example("2024-02-29")
@example("2023-02-29")
@example("1900-02-29")
@example("2000-02-29")
@example("2024-04-31")
@example("2024-00-10")
@example("2024-13-01")
@example("2024-12-00")
@example("9999-12-31")
@example("0001-01-01")
def test_read_date_agrees_with_fromisoformat(text: str) -> None:
    want = _iso_date(text)
    assert _read_one_date([text]) == [want]  # the whole batch parses (or not) at once
    assert _read_one_date([text, "not a date"])[0] == want  # row by row
    assert _read_one_date(["2024-01-01", text, "2024-01-02"])[1] == want


def test_read_date_rejects_year_zero() -> None:
    assert _read_one_date(["0000-01-01", "x"]) == [None, None]
    values, faults = coerce.read_date(pa.array(["0000-01-01"]))
    assert values.is_null().to_pylist() == [True]  # (to_pylist() would raise: year 0 is not a Python date)
    assert faults["DATE_INVALID"].tolist() == [True]


@READERS
@given(cells=st.lists(st.none() | DATEISH | st.text(max_size=12), min_size=1, max_size=8))
def test_read_date_is_batch_independent(cells: list) -> None:
    together = coerce.read_date(pa.array(cells, type=pa.string()))[0].to_pylist()
    alone = [coerce.read_date(pa.array([c], type=pa.string()))[0].to_pylist()[0] for c in cells]
    assert together == alone


def _read_one_time(texts: list[str], zone: str | None = None) -> list[int | None]:
    values, _ = coerce.read_timestamp(pa.array(texts, type=pa.string()), timezone=zone)
    return values.cast(pa.int64()).to_pylist()


TIMESTAMPS = st.builds(
    lambda date, sep, hh, mm, rest, zone: f"{date}{sep}{hh:02d}:{mm:02d}{rest}{zone}",
    st.dates(min_value=dt.date(1, 1, 2), max_value=dt.date(9999, 12, 30)).map(dt.date.isoformat),
    st.sampled_from(["T", " "]),
    st.integers(0, 23),
    st.integers(0, 59),
    st.sampled_from(["", ":00", ":59", ":00.5", ":00.123456"]),
    st.sampled_from(["Z", "+08:00", "+0800", "-05:30", "+14:00", "-00:00", ""]),
)


def _python_time(text: str, zone: str | None) -> int | None:
    """Microseconds since the epoch per Python's ISO parser, a naive time taking ``zone``."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        if zone is None:
            return None
        from zoneinfo import ZoneInfo

        value = value.replace(tzinfo=ZoneInfo(zone))
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@READERS
@given(text=TIMESTAMPS, zone=st.none() | st.sampled_from(["Asia/Shanghai", "UTC"]))
@example("2024-01-01T08:00:00+08:00", None)
@example("2024-01-01T08:00:00", None)
@example("2024-01-01T08:00:00", "Asia/Shanghai")
@example("2024-01-01 08:00+0800", None)
def test_read_timestamp_agrees_with_fromisoformat(text: str, zone: str | None) -> None:
    """Times with an offset (or without, when a zone is configured) read as Python reads them."""
    want = _python_time(text, zone)
    assert _read_one_time([text, "not a time"], zone)[0] == want
    assert _read_one_time([text], zone)[0] == want


@pytest.mark.parametrize("text", ["2024-01-01T08:00:00+08", "2024-01-01T08:00:00+15:00", "2024-01-01T08Z"])
def test_read_timestamp_is_batch_independent(text: str) -> None:
    assert _read_one_time([text]) == [_read_one_time([text, "x"])[0]]


def test_read_timestamp_nanosecond_fraction_does_not_raise() -> None:
    values, _ = coerce.read_timestamp(pa.array(["2024-01-01T08:00:00.123456789+08:00", "x"]))
    assert len(values) == 2


@pytest.mark.parametrize(
    "values",
    [
        pa.array([1], type=pa.timestamp("ns", tz="UTC")),
        pa.array([2**62], type=pa.timestamp("s", tz="UTC")),
        pa.array([1], type=pa.timestamp("ns")),
    ],
    ids=["ns-fraction", "s-out-of-range", "naive-ns-fraction"],
)
def test_read_timestamp_typed_values_do_not_raise(values: pa.Array) -> None:
    out, _ = coerce.read_timestamp(values, timezone="UTC")
    assert len(out) == 1


def test_read_date_date64_not_midnight_does_not_raise() -> None:
    out, _ = coerce.read_date(pa.array([86_400_000 + 1], type=pa.date64()))
    assert len(out) == 1


@pytest.mark.parametrize(
    "values",
    [
        pa.array([-1_000_000], type=pa.int32()).cast(pa.date32()),
        pa.array([3_000_000], type=pa.int32()).cast(pa.date32()),
        pa.array([2**62], type=pa.timestamp("s", tz="UTC")),
    ],
    ids=["date32-year-minus-768", "date32-year-10183", "timestamp-s-wraps"],
)
def test_read_date_typed_values_out_of_range(values: pa.Array) -> None:
    out, faults = coerce.read_date(values)
    assert out.is_null().to_pylist() == [True]
    assert faults["DATE_INVALID"].tolist() == [True]


@READERS
@given(
    value=st.decimals(
        min_value=0,
        max_value=decimal.Decimal("99999999999999.9999"),
        allow_nan=False,
        allow_infinity=False,
        places=4,
    )
)
def test_read_decimal_round_trips(value: decimal.Decimal) -> None:
    values, faults = coerce.read_decimal(pa.array([str(value), f"{value:,}", "-1"]))
    assert values.to_pylist() == [value, value, None]
    assert faults["NUMBER_INVALID"].tolist() == [False, False, True]


@READERS
@given(
    value=st.decimals(
        min_value=0,
        max_value=decimal.Decimal("99999999999999.99994"),
        allow_nan=False,
        allow_infinity=False,
        places=8,
    )
)
def test_read_decimal_rounds_half_even(value: decimal.Decimal) -> None:
    values, _ = coerce.read_decimal(pa.array([str(value)]))
    assert values.to_pylist() == [value.quantize(decimal.Decimal("0.0001"), rounding=decimal.ROUND_HALF_EVEN)]


def test_read_decimal_rounding_past_the_limit() -> None:
    values, faults = coerce.read_decimal(pa.array(["99999999999999.99995"]))
    assert values.to_pylist() == [None] and faults["NUMBER_INVALID"].tolist() == [True]


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
    max_leaves=12,
)


@READERS
@given(obj=JSON_VALUES, ascii_only=st.booleans())
def test_read_json_keeps_objects_rejects_the_rest(obj: object, ascii_only: bool) -> None:
    text = json.dumps(obj, ensure_ascii=ascii_only, indent=None if ascii_only else 2)
    values, faults = coerce.read_json(pa.array([text]))
    if isinstance(obj, dict):
        out = values.to_pylist()[0]
        assert json.loads(out) == obj
        assert out == json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        assert not faults["SURFACE_INVALID"].any()
    else:
        assert values.to_pylist() == [None]
        assert faults["SURFACE_INVALID"].tolist() == [True]


def test_read_json_lone_surrogate() -> None:
    values, _ = coerce.read_json(pa.array(['{"a": "\\ud800"}']))
    assert len(values) == 1


@pytest.mark.parametrize(
    "raw",
    [
        pa.array([b"\xff\xfe", b"ok", None], type=pa.binary()),
        pa.array([b"\xff", b"ok"], type=pa.large_binary()),
        pa.array([b"ab", b"\x80\x80"], type=pa.binary(2)),
        pa.array([[1], None], type=pa.list_(pa.int64())),
        pa.array([{"a": 1}, None], type=pa.struct([("a", pa.int64())])),
        pa.array([1.5, math.nan]),
        pa.array([True, None]),
        pa.nulls(2),
        pa.array(["a", "b"]).dictionary_encode(),
        pa.array(["2024-01-01", None], type=pa.string_view()),
        pa.array([dt.timedelta(seconds=5), None], type=pa.duration("s")),
    ],
    ids=[
        "binary",
        "large_binary",
        "fixed_binary",
        "list",
        "struct",
        "float",
        "bool",
        "null",
        "dictionary",
        "string_view",
        "duration",
    ],
)
@pytest.mark.parametrize("reader", ["read_text", "read_date", "read_timestamp", "read_decimal", "read_json"])
def test_readers_accept_any_arrow_type(raw: pa.Array, reader: str) -> None:
    values, faults = getattr(coerce, reader)(raw)
    assert len(values) == len(raw)
    for code, mask in faults.items():
        assert code in RULES and mask.shape == (len(raw),)
    if pa.types.is_nested(raw.type):
        assert faults["TYPE_INVALID"].tolist() == [True, False]
    if (
        pa.types.is_binary(raw.type)
        or pa.types.is_large_binary(raw.type)
        or pa.types.is_fixed_size_binary(raw.type)
    ):
        assert faults["ENCODING_INVALID"].any()


def test_every_field_kind_is_exercised() -> None:
    kinds = {f.kind for d in DATASETS.values() for f in d.fields}
    assert kinds == set(Kind)


_ROW = ROWS["population"][0]
_CRASHERS = {
    "nanosecond-fraction-text": ("updated_at", pa.array(["2024-01-01T08:00:00.123456789+08:00"])),
    "timestamp-ns-sub-microsecond": ("updated_at", pa.array([1], type=pa.timestamp("ns", tz="UTC"))),
    "date64-not-midnight": ("birth_date", pa.array([-631152000000 + 1], type=pa.date64())),
}


@pytest.mark.parametrize("case", list(_CRASHERS))
def test_validate_does_not_raise_on_one_bad_cell(case: str) -> None:
    name, raw = _CRASHERS[case]
    table = pa.table({k: pa.array([v]) for k, v in _ROW.items()}).set_column(
        population.DATASET.names.index(name), name, raw
    )
    result = Validator(population.DATASET, today=TODAY).validate(table)
    assert result.table.num_rows == 1  # accepted or rejected, but no exception


@pytest.mark.parametrize(
    ("dataset", "name", "value"),
    [("business", "registered_capital", "99999999999999.99995"), ("license", "surface", '{"a": "\\ud800"}')],
    ids=["decimal-rounds-past-limit", "json-lone-surrogate"],
)
def test_validate_does_not_raise_on_one_bad_text_cell(dataset: str, name: str, value: str) -> None:
    row = {**ROWS[dataset][0], name: value}
    table = pa.table({k: pa.array([v], type=pa.string()) for k, v in row.items()})
    result = Validator(DATASETS[dataset], today=TODAY).validate(table)
    assert result.table.num_rows == 1  # accepted or rejected, but no exception
