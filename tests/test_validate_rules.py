"""Every rule of ``schemas.rules`` fires on the right row and field, with the right severity.

Each dataset has three clean baseline rows (built from the SPEC's known-good
values and real GB/T 2260 codes; check characters computed with python-stdnum)
and a clean template row. A case changes the template, appends it after the
baselines and checks that exactly the expected codes fire on that row and
field: error rows are rejected, warning rows are accepted and flagged, the
baselines are untouched, and the report's messages are bilingual.

``CASES`` is the table of (code, dataset, change); ``test_every_rule_has_a_case``
makes sure every code in ``RULES`` has at least one.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pytest
from stdnum.cn import ric, uscc
from stdnum.iso7064 import mod_37_36

from schemas import business, license, population
from schemas.contract import Dataset
from schemas.rules import RULES, Severity
from schemas.validate import BatchResult, ContractError, RowReport, Validator

TODAY = dt.date(2026, 11, 1)
UTC8 = dt.timezone(dt.timedelta(hours=8))
UPDATED = "2024-01-01T08:00:00+08:00"


# --------------------------------------------------------------------------- identifiers


def make_id(area: str, birth: str, seq: str) -> str:
    body = area + birth + seq
    return body + ric.calc_check_digit(body + "0")


def org_check(body8: str) -> str:
    total = sum(int(c, 36) * w for c, w in zip(body8, (3, 7, 9, 10, 5, 8, 4, 2), strict=True))
    check = 11 - total % 11
    return "X" if check == 10 else "0" if check == 11 else str(check)


def make_uscc(prefix8: str, org_body8: str, org_check_char: str | None = None) -> str:
    body = prefix8 + org_body8 + (org_check_char if org_check_char is not None else org_check(org_body8))
    return body + uscc.calc_check_digit(body)


def license_id(type_code: str, issuer: str, serial: str, version: str = "001") -> str:
    body = type_code + issuer + serial + version
    return f"1.2.156.3005.2.{type_code}.{issuer}.{serial}.{version}.{mod_37_36.calc_check_digit(body)}"


def other_check(code: str, charset: str) -> str:
    """``code`` with a wrong last character."""
    return code[:-1] + next(c for c in charset if c != code[-1])


ID_F = "11010519491231002X"  # known good, female, born 1949-12-31 in 110105
ID_M = "360426199101010071"  # known good, male, born 1991-01-01 in 360426
ID_T = make_id("630104", "19850310", "013")  # template: male, born 1985-03-10 in 630104 (城西区)
USCC_A = "91110000600037341L"  # known good
USCC_CENTRAL = "11100000000013338W"  # known good, division part 100000 (central level)
USCC_B = "11630104MB0000123M"
USCC_C = make_uscc("92360426", "L1234567")
USCC_T = make_uscc("91630104", "MA7K2D3B")
TYPE_CODE = USCC_CENTRAL + "001"
TYPE_CODE_2 = USCC_CENTRAL + "002"

assert all(ric.is_valid(v) for v in (ID_F, ID_M, ID_T))
assert all(uscc.is_valid(v) for v in (USCC_A, USCC_CENTRAL, USCC_B, USCC_C, USCC_T))


# --------------------------------------------------------------------------- baseline rows

POP_BASE = (
    {
        "id_number": ID_F,
        "name": "张秀英",
        "gender": "2",
        "ethnicity": "01",
        "birth_date": "1949-12-31",
        "household_division": "110105",
        "household_address": "北京市朝阳区建国路1号",
        "status": "normal",
        "moved_to": None,
        "updated_at": UPDATED,
    },
    {
        "id_number": ID_M,
        "name": "李建国",
        "gender": "1",
        "ethnicity": "04",
        "birth_date": "1991-01-01",
        "household_division": "360426",
        "household_address": "江西省九江市德安县蒲亭镇",
        "status": "deceased",
        "moved_to": None,
        "updated_at": "2025-06-30T23:59:59Z",
    },
    {
        "id_number": make_id("630104", "19800615", "024"),
        "name": "马海燕",
        "gender": "2",
        "ethnicity": "03",
        "birth_date": "1980-06-15",
        "household_division": "630104",
        "household_address": "青海省西宁市城西区",
        "status": "moved_out",
        "moved_to": "630105",
        "updated_at": "2026-11-01T12:00:00+08:00",
    },
)
POP_TEMPLATE = {
    "id_number": ID_T,
    "name": "韩德明",
    "gender": "1",
    "ethnicity": "01",
    "birth_date": "1985-03-10",
    "household_division": "630104",
    "household_address": "青海省西宁市城西区五四大街",
    "status": "normal",
    "moved_to": None,
    "updated_at": UPDATED,
}

BIZ_BASE = (
    {
        "uscc": USCC_A,
        "name": "北京某某科技有限公司",
        "entity_type": "有限责任公司",
        "legal_representative": "张三",
        "legal_rep_id_number": ID_M,
        "registered_capital": "1000",
        "established_date": "2001-05-01",
        "registration_authority": "北京市市场监督管理局",
        "division": "110105",
        "address": "北京市朝阳区",
        "business_scope": "技术开发",
        "status": "active",
        "moved_to": None,
        "updated_at": UPDATED,
    },
    {
        "uscc": USCC_B,
        "name": "西宁市城西区某某商店",
        "entity_type": "个体工商户",
        "legal_representative": "李四",
        "legal_rep_id_number": None,
        "registered_capital": None,
        "established_date": "2015-08-20",
        "registration_authority": "西宁市城西区市场监督管理局",
        "division": "630104",
        "address": "西宁市城西区",
        "business_scope": None,
        "status": "revoked",
        "moved_to": None,
        "updated_at": UPDATED,
    },
    {
        "uscc": USCC_C,
        "name": "德安县某某农民专业合作社",
        "entity_type": "农民专业合作社",
        "legal_representative": "王五",
        "legal_rep_id_number": ID_F,
        "registered_capital": "12.5",
        "established_date": "2010-01-01",
        "registration_authority": "德安县市场监督管理局",
        "division": "360426",
        "address": "德安县",
        "business_scope": "种植",
        "status": "moved_out",
        "moved_to": "360402",
        "updated_at": UPDATED,
    },
)
BIZ_TEMPLATE = {
    "uscc": USCC_T,
    "name": "西宁某某餐饮有限公司",
    "entity_type": "有限责任公司",
    "legal_representative": "韩德明",
    "legal_rep_id_number": ID_T,
    "registered_capital": "50",
    "established_date": "2020-03-15",
    "registration_authority": "西宁市市场监督管理局",
    "division": "630104",
    "address": "西宁市城西区",
    "business_scope": "餐饮服务",
    "status": "active",
    "moved_to": None,
    "updated_at": UPDATED,
}

LIC_BASE = (
    {
        "_serial": "2024000123",
        "license_type_code": TYPE_CODE,
        "license_type_name": "食品经营许可证",
        "license_number": "JY16301040000123",
        "holder_name": "张秀英",
        "holder_code": ID_F,
        "holder_code_type": "111",
        "issuer_name": "西宁市城西区市场监督管理局",
        "issuer_code": USCC_B,
        "issue_date": "2024-01-10",
        "valid_from": "2024-01-10",
        "valid_until": "2029-01-09",
        "division": "630104",
        "status": "01",
        "surface": '{"名称": "张秀英", "经营场所": "城西区"}',
        "updated_at": UPDATED,
    },
    {
        "_serial": "2024000124",
        "license_type_code": TYPE_CODE_2,
        "license_type_name": "营业执照",
        "license_number": "91110000600037341L",
        "holder_name": "北京某某科技有限公司",
        "holder_code": USCC_A,
        "holder_code_type": "001",
        "issuer_name": "西宁市城西区市场监督管理局",
        "issuer_code": USCC_B,
        "issue_date": "2001-05-01",
        "valid_from": "2001-05-01",
        "valid_until": None,
        "division": "630104",
        "status": "01",
        "surface": None,
        "updated_at": UPDATED,
    },
    {
        "_serial": "2019000007",
        "license_type_code": TYPE_CODE,
        "license_type_name": "食品经营许可证",
        "license_number": "JY16301040000007",
        "holder_name": "李建国",
        "holder_code": ID_M,
        "holder_code_type": "111",
        "issuer_name": "西宁市城西区市场监督管理局",
        "issuer_code": USCC_B,
        "issue_date": "2019-03-01",
        "valid_from": "2019-03-01",
        "valid_until": "2024-02-29",
        "division": "630104",
        "status": "05",
        "surface": "{}",
        "updated_at": UPDATED,
    },
)
LIC_TEMPLATE = {
    "_serial": "2024000999",
    "license_type_code": TYPE_CODE,
    "license_type_name": "食品经营许可证",
    "license_number": "JY16301040000999",
    "holder_name": "韩德明",
    "holder_code": ID_T,
    "holder_code_type": "111",
    "issuer_name": "西宁市城西区市场监督管理局",
    "issuer_code": USCC_B,
    "issue_date": "2025-05-05",
    "valid_from": "2025-05-06",
    "valid_until": "2030-05-05",
    "division": "630104",
    "status": "01",
    "surface": '{"名称": "韩德明"}',
    "updated_at": UPDATED,
}

DATASETS: dict[str, tuple[Dataset, tuple[dict, ...], dict]] = {
    "population": (population.DATASET, POP_BASE, POP_TEMPLATE),
    "business": (business.DATASET, BIZ_BASE, BIZ_TEMPLATE),
    "license": (license.DATASET, LIC_BASE, LIC_TEMPLATE),
}


def finish(row: dict) -> dict:
    """Compose a license row's identifier from its fields (unless a case sets it)."""
    row = dict(row)
    serial = row.pop("_serial", None)
    if serial is not None and "license_id" not in row:
        row["license_id"] = license_id(row["license_type_code"], row["issuer_code"], serial)
    return row


def make_table(dataset: Dataset, rows: list[dict], types: dict[str, pa.DataType] | None = None) -> pa.Table:
    types = types or {}
    rows = [finish(r) for r in rows]
    arrays, names = [], []
    for name in dataset.names:
        if not any(name in r for r in rows):
            continue  # a column the case leaves out
        values = [r.get(name) for r in rows]
        typ = types.get(name, pa.string())
        if pa.types.is_binary(typ):
            values = [v.encode() if isinstance(v, str) else v for v in values]
        arrays.append(pa.array(values, type=typ))
        names.append(name)
    return pa.table(arrays, names=names)


def validator(dataset: Dataset, **kwargs) -> Validator:
    kwargs.setdefault("today", TODAY)
    return Validator(dataset, **kwargs)


def reports_by_row(result: BatchResult) -> dict[int, RowReport]:
    return {r.row: r for r in result.reports()}


def names_row(report: RowReport, row: int) -> bool:
    """The KEY_DUPLICATE message names the earlier row, in both languages."""
    return bool(re.search(rf"\brow {row}\b", report.message_en)) and f"第 {row} 行" in report.message_zh


# --------------------------------------------------------------------------- the case table


@dataclass(frozen=True)
class Case:
    code: str
    dataset: str
    change: dict | Callable[[dict], dict]
    field: str
    also: frozenset[str] = frozenset()  # other codes expected on the same row
    kwargs: dict = field(default_factory=dict)  # Validator options
    types: dict = field(default_factory=dict)  # Arrow types of raw columns (default string)
    base: tuple[int, ...] = (0, 1, 2)  # baseline rows before the case row
    id: str = ""

    def row(self) -> dict:
        template = DATASETS[self.dataset][2]
        if callable(self.change):
            return self.change(dict(template))
        return {**template, **self.change}


def _dup_of_first(dataset: str) -> Callable[[dict], dict]:
    return lambda row: dict(DATASETS[dataset][1][0])


BAD_ORG_USCC = make_uscc("91630104", "MA7K2D3B", "0" if org_check("MA7K2D3B") != "0" else "1")
# ID numbers read as USCCs: well formed (8 digits, then USCC characters), but the check fails.
assert uscc.calc_check_digit(ID_T) != ID_T[-1] and uscc.calc_check_digit(ID_F) != ID_F[-1]

CASES: list[Case] = [
    # Any field
    Case("REQUIRED", "population", {"name": None}, "name"),
    Case("REQUIRED", "population", {"name": "   "}, "name", id="REQUIRED-blank"),
    Case("REQUIRED", "license", {"issue_date": ""}, "issue_date", id="REQUIRED-date"),
    Case(
        "TYPE_INVALID",
        "population",
        {"moved_to": ["630105"]},
        "moved_to",
        types={"moved_to": pa.list_(pa.string())},
        base=(0, 1),
    ),
    Case(
        "TYPE_INVALID",
        "license",
        {"surface": {"名称": "韩德明"}},
        "surface",
        types={"surface": pa.struct([("名称", pa.string())])},
        base=(1,),
        id="TYPE_INVALID-struct",
    ),
    Case("TOO_LONG", "population", {"name": "韩" * 65}, "name"),
    Case("TOO_LONG", "business", {"business_scope": "x" * 4001}, "business_scope", id="TOO_LONG-optional"),
    Case("CHAR_INVALID", "population", {"name": "韩\x01德明"}, "name"),
    Case("CHAR_INVALID", "license", {"holder_name": "韩德明\x7f"}, "holder_name", id="CHAR_INVALID-del"),
    Case("ENCODING_INVALID", "population", {"name": b"\xe9\x9f\xff"}, "name", types={"name": pa.binary()}),
    Case("DATE_INVALID", "population", {"birth_date": "1985-02-30"}, "birth_date"),
    Case("DATE_INVALID", "license", {"valid_until": "2030-13-01"}, "valid_until", id="DATE_INVALID-optional"),
    Case(
        "TIME_INVALID",
        "population",
        {"updated_at": "2024-01-01T08:00:00"},
        "updated_at",
        id="TIME_INVALID-naive",
    ),
    Case("TIME_INVALID", "business", {"updated_at": "yesterday"}, "updated_at", id="TIME_INVALID-text"),
    Case(
        "TIME_INVALID",
        "license",
        {"updated_at": "2024-02-30T08:00:00+08:00"},
        "updated_at",
        id="TIME_INVALID-date",
    ),
    Case("DATE_FUTURE", "business", {"established_date": "2026-11-02"}, "established_date"),
    Case(
        "DATE_FUTURE",
        "license",
        {"issue_date": "2027-01-01", "valid_from": "2027-01-01"},
        "issue_date",
        id="DATE_FUTURE-license",
    ),
    Case("TIME_FUTURE", "population", {"updated_at": "2026-11-02T00:10:00+08:00"}, "updated_at"),
    Case("NUMBER_INVALID", "business", {"registered_capital": "-5"}, "registered_capital"),
    Case(
        "NUMBER_INVALID",
        "business",
        {"registered_capital": "五十万"},
        "registered_capital",
        id="NUMBER_INVALID-text",
    ),
    Case("KEY_DUPLICATE", "population", _dup_of_first("population"), "id_number"),
    Case("KEY_DUPLICATE", "business", _dup_of_first("business"), "uscc", id="KEY_DUPLICATE-business"),
    Case("KEY_DUPLICATE", "license", _dup_of_first("license"), "license_id", id="KEY_DUPLICATE-license"),
    # Code lists
    Case("GENDER_INVALID", "population", {"gender": "3"}, "gender"),
    Case("ETHNICITY_INVALID", "population", {"ethnicity": "57"}, "ethnicity"),
    Case("ETHNICITY_INVALID", "population", {"ethnicity": "1"}, "ethnicity", id="ETHNICITY_INVALID-unpadded"),
    Case("STATUS_INVALID", "population", {"status": "dead"}, "status"),
    Case("STATUS_INVALID", "business", {"status": "closed"}, "status", id="STATUS_INVALID-business"),
    Case("STATUS_INVALID", "license", {"status": "08"}, "status", id="STATUS_INVALID-license"),
    Case("DIVISION_INVALID", "population", {"household_division": "63010A"}, "household_division"),
    Case("DIVISION_INVALID", "business", {"division": "63010"}, "division", id="DIVISION_INVALID-business"),
    Case("DIVISION_UNKNOWN", "population", {"household_division": "639999"}, "household_division"),
    Case("DIVISION_UNKNOWN", "license", {"division": "630199"}, "division", id="DIVISION_UNKNOWN-license"),
    Case("MOVED_TO_MISSING", "population", {"status": "moved_out"}, "moved_to"),
    Case("MOVED_TO_MISSING", "business", {"status": "moved_out"}, "moved_to", id="MOVED_TO_MISSING-business"),
    Case("MOVED_TO_UNEXPECTED", "population", {"moved_to": "630105"}, "moved_to"),
    Case(
        "MOVED_TO_UNEXPECTED",
        "business",
        {"status": "revoked", "moved_to": "630105"},
        "moved_to",
        id="MOVED_TO_UNEXPECTED-business",
    ),
    Case(
        "DIVISION_UNKNOWN",
        "population",
        {"status": "moved_out", "moved_to": "639999"},
        "moved_to",
        id="DIVISION_UNKNOWN-moved_to",
    ),
    Case(
        "DIVISION_INVALID",
        "population",
        {"status": "moved_out", "moved_to": "6301"},
        "moved_to",
        id="DIVISION_INVALID-moved_to",
    ),
    # GB 11643
    Case("ID_FORMAT", "population", {"id_number": ID_T[:17]}, "id_number"),
    Case("ID_FORMAT", "population", {"id_number": ID_T[:17] + "A"}, "id_number", id="ID_FORMAT-check-char"),
    Case("ID_CHECKSUM", "population", {"id_number": other_check(ID_T, "0123456789X")}, "id_number"),
    Case(
        "ID_CHECKSUM",
        "business",
        {"legal_rep_id_number": other_check(ID_T, "0123456789X")},
        "legal_rep_id_number",
        id="ID_CHECKSUM-legal_rep",
    ),
    Case("ID_BIRTH_DATE", "population", {"id_number": make_id("630104", "19850230", "013")}, "id_number"),
    Case(
        "ID_BIRTH_DATE",
        "population",
        {"id_number": make_id("630104", "20270101", "013"), "birth_date": "2027-01-01"},
        "id_number",
        also=frozenset({"DATE_FUTURE"}),
        id="ID_BIRTH_DATE-future",
    ),
    Case("ID_BIRTH_MISMATCH", "population", {"birth_date": "1985-03-11"}, "birth_date"),
    Case("ID_GENDER_MISMATCH", "population", {"gender": "2"}, "gender"),
    Case("ID_AREA_UNKNOWN", "population", {"id_number": make_id("990104", "19850310", "013")}, "id_number"),
    Case(
        "ID_AREA_UNKNOWN",
        "population",
        {"id_number": make_id("630199", "19850310", "013")},
        "id_number",
        id="ID_AREA_UNKNOWN-county",
    ),
    Case("ID_LEGACY_15", "population", {"id_number": "630104850310013"}, "id_number"),
    # GB 32100 / GB 11714
    Case("USCC_FORMAT", "business", {"uscc": "A" + USCC_T[1:]}, "uscc"),
    Case("USCC_FORMAT", "business", {"uscc": USCC_T[:17]}, "uscc", id="USCC_FORMAT-length"),
    Case(
        "USCC_FORMAT", "business", {"uscc": USCC_T[:10] + "I" + USCC_T[11:]}, "uscc", id="USCC_FORMAT-charset"
    ),
    Case(
        "USCC_CHECKSUM", "business", {"uscc": other_check(USCC_T, "0123456789ABCDEFGHJKLMNPQRTUWXY")}, "uscc"
    ),
    Case("USCC_ORG_CHECKSUM", "business", {"uscc": BAD_ORG_USCC}, "uscc"),
    Case("USCC_DIVISION_UNKNOWN", "business", {"uscc": make_uscc("91639999", "MA7K2D3B")}, "uscc"),
    Case(
        "USCC_ALLOWLISTED",
        "business",
        {"uscc": other_check(USCC_T, "0123456789ABCDEFGHJKLMNPQRTUWXY")},
        "uscc",
        kwargs={"uscc_allowlist": [other_check(USCC_T, "0123456789ABCDEFGHJKLMNPQRTUWXY")]},
    ),
    Case(
        "USCC_ALLOWLISTED",
        "business",
        {"uscc": BAD_ORG_USCC},
        "uscc",
        kwargs={"uscc_allowlist": [BAD_ORG_USCC]},
        id="USCC_ALLOWLISTED-org",
    ),
    Case(
        "USCC_CHECKSUM",
        "license",
        {"issuer_code": other_check(USCC_B, "0123456789ABCDEFGHJKLMNPQRTUWXY")},
        "issuer_code",
        id="USCC_CHECKSUM-issuer",
    ),
    # Licenses
    Case("LICENSE_ID_FORMAT", "license", {"license_id": "LIC-2024-0001"}, "license_id"),
    Case(
        "LICENSE_ID_CHECKSUM",
        "license",
        lambda row: {**finish(row), "license_id": other_check(finish(row)["license_id"], "0123456789ABCDEF")},
        "license_id",
    ),
    Case(
        "LICENSE_ID_MISMATCH",
        "license",
        lambda row: {**finish(row), "license_type_code": TYPE_CODE_2},
        "license_type_code",
    ),
    Case(
        "LICENSE_ID_MISMATCH",
        "license",
        lambda row: {**finish(row), "issuer_code": USCC_A},
        "issuer_code",
        id="LICENSE_ID_MISMATCH-issuer",
    ),
    Case(
        "LICENSE_TYPE_CODE_INVALID",
        "license",
        {"license_type_code": USCC_CENTRAL + "01A"},
        "license_type_code",
    ),
    Case(
        "LICENSE_TYPE_CODE_INVALID",
        "license",
        {"license_type_code": other_check(USCC_CENTRAL, "0123456789ABCDEFGHJKLMNPQRTUWXY") + "001"},
        "license_type_code",
        id="LICENSE_TYPE_CODE_INVALID-uscc",
    ),
    Case(
        "HOLDER_CODE_TYPE_INVALID",
        "license",
        {"holder_code_type": "002", "holder_code": other_check(ID_T, "0123456789X")},
        "holder_code_type",
    ),
    Case(
        "ID_CHECKSUM",
        "license",
        {"holder_code": other_check(ID_T, "0123456789X")},
        "holder_code",
        id="ID_CHECKSUM-holder-111",
    ),
    Case("ID_FORMAT", "license", {"holder_code": USCC_A}, "holder_code", id="ID_FORMAT-holder-111-uscc"),
    Case(
        "ID_LEGACY_15", "license", {"holder_code": "630104850310013"}, "holder_code", id="ID_LEGACY_15-holder"
    ),
    Case(
        "USCC_CHECKSUM",
        "license",
        {"holder_code_type": "001", "holder_code": other_check(USCC_T, "0123456789ABCDEFGHJKLMNPQRTUWXY")},
        "holder_code",
        id="USCC_CHECKSUM-holder-001",
    ),
    Case(
        "USCC_ORG_CHECKSUM",
        "license",
        {"holder_code_type": "001", "holder_code": BAD_ORG_USCC},
        "holder_code",
        id="USCC_ORG_CHECKSUM-holder-001",
    ),
    Case(
        "USCC_CHECKSUM",
        "license",
        {"holder_code_type": "001", "holder_code": ID_T},
        "holder_code",
        id="USCC_CHECKSUM-holder-001-with-id-number",
    ),
    Case(
        "VALIDITY_ORDER", "license", {"valid_from": "2028-01-01", "valid_until": "2027-12-31"}, "valid_until"
    ),
    Case("EXPIRED_BUT_VALID", "license", {"valid_until": "2026-10-31"}, "status"),
    Case("SURFACE_INVALID", "license", {"surface": "[1, 2]"}, "surface"),
    Case("SURFACE_INVALID", "license", {"surface": '{"名称": '}, "surface", id="SURFACE_INVALID-syntax"),
]


def _params() -> list:
    return [pytest.param(case, id=case.id or case.code) for case in CASES]


def run_case(case: Case) -> tuple[BatchResult, Validator, int]:
    dataset, base, _ = DATASETS[case.dataset]
    rows = [base[i] for i in case.base] + [case.row()]
    v = validator(dataset, **case.kwargs)
    result = v.validate(make_table(dataset, rows, case.types))
    return result, v, len(rows)


def assert_fires(case: Case, result: BatchResult, v: Validator, row: int, *, exact: bool = True) -> RowReport:
    dataset = DATASETS[case.dataset][0]
    reports = reports_by_row(result)
    assert set(reports) == {row}, {r: rep.codes for r, rep in reports.items()}
    report = reports[row]
    assert (case.code, case.field) in report.findings, report.findings
    if exact:
        assert set(report.codes) == {case.code} | case.also, report.codes
    rule = RULES[case.code]
    assert rule.message("en", case.field) in report.message_en
    label = dataset.field(case.field).label
    assert rule.message("zh", f"{label}（{case.field}）") in report.message_zh
    index = row - 1
    error = any(RULES[c].severity is Severity.ERROR for c in report.codes)
    assert report.severity is (Severity.ERROR if error else Severity.WARNING)
    assert bool(result.rejected[index]) is error
    assert bool(result.flagged[index]) is (not error)
    assert result.accepted().num_rows == row - 1 + (0 if error else 1)
    assert v.summary.rows == row and v.summary.rejected == int(error) and v.summary.flagged == int(not error)
    assert v.summary.codes[case.code] >= 1
    return report


@pytest.mark.parametrize("case", _params())
def test_rule_fires(case: Case) -> None:
    result, v, row = run_case(case)
    assert_fires(case, result, v, row)


def test_every_rule_has_a_case() -> None:
    assert {c.code for c in CASES} == set(RULES)


def test_every_rule_has_messages_in_both_languages() -> None:
    for code, rule in RULES.items():
        assert rule.code == code
        assert isinstance(rule.severity, Severity)
        assert rule.zh.strip() and rule.en.strip(), code
        assert any("\u4e00" <= ch <= "\u9fff" for ch in rule.zh), code
        assert rule.en.isascii(), code
        assert rule.message("zh", "字段") == f"{rule.zh}：字段"
        assert rule.message("en", "field") == f"{rule.en}: field"


@pytest.mark.parametrize("name", list(DATASETS))
def test_baselines_are_clean(name: str) -> None:
    dataset, base, template = DATASETS[name]
    v = validator(dataset)
    result = v.validate(make_table(dataset, [*base, template]))
    assert list(result.reports()) == []
    assert result.accepted().num_rows == 4
    assert not result.rejected.any() and not result.flagged.any()
    assert v.summary.as_dict() == {
        "dataset": name,
        "rows": 4,
        "accepted": 4,
        "rejected": 0,
        "flagged": 0,
        "codes": {},
        "ignored_columns": [],
    }
    assert result.table.schema.names == dataset.names
    assert [f.type for f in result.table.schema] == [f.type for f in dataset.schema]


# --------------------------------------------------------------------------- rules in more detail


def test_malformed_or_missing_license_id_is_not_a_mismatch() -> None:
    """A malformed (or missing) identifier has no parts to compare with the fields."""
    rows = [{**LIC_TEMPLATE, "license_id": "LIC-2024-0001"}, {**LIC_BASE[0], "license_id": None}]
    result = validator(license.DATASET).validate(make_table(license.DATASET, rows))
    assert [(r.row, r.findings) for r in result.reports()] == [
        (1, (("LICENSE_ID_FORMAT", "license_id"),)),
        (2, (("REQUIRED", "license_id"),)),
    ]


def test_time_without_offset_takes_the_configured_zone() -> None:
    row = {**POP_TEMPLATE, "updated_at": "2024-01-01T08:00:00"}
    table = make_table(population.DATASET, [*POP_BASE, row])
    rejected = validator(population.DATASET).validate(table)
    assert [r.codes for r in rejected.reports()] == [["TIME_INVALID"]]
    accepted = validator(population.DATASET, timezone="Asia/Shanghai").validate(table)
    assert list(accepted.reports()) == []
    got = accepted.table.column("updated_at")[3].as_py()
    assert got == dt.datetime(2024, 1, 1, 0, 0, tzinfo=dt.UTC)


def test_time_with_offset_is_converted_to_utc() -> None:
    rows = [
        {**POP_BASE[0], "updated_at": "2024-01-01T08:00:00+08:00"},
        {**POP_BASE[1], "updated_at": "2024-01-01 00:00:00Z"},
        {**POP_BASE[2], "updated_at": "2024-01-01T02:30:00+0230"},
    ]
    result = validator(population.DATASET).validate(make_table(population.DATASET, rows))
    assert list(result.reports()) == []
    want = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert result.table.column("updated_at").to_pylist() == [want, want, want]


def test_naive_arrow_timestamps_need_a_zone() -> None:
    stamps = pa.array(
        [dt.datetime(2024, 1, 1, 8), dt.datetime(2024, 6, 1, 8), dt.datetime(2025, 1, 1, 8)],
        type=pa.timestamp("us"),
    )
    table = make_table(population.DATASET, list(POP_BASE)).set_column(9, "updated_at", stamps)
    result = validator(population.DATASET).validate(table)
    assert [(r.row, r.codes) for r in result.reports()] == [(i, ["TIME_INVALID"]) for i in (1, 2, 3)]
    result = validator(population.DATASET, timezone="Asia/Shanghai").validate(table)
    assert list(result.reports()) == []
    assert result.table.column("updated_at")[0].as_py() == dt.datetime(2024, 1, 1, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("stamp", "future"),
    [
        ("2026-11-01T23:59:59+08:00", False),
        ("2026-11-02T00:04:59+08:00", False),
        ("2026-11-02T00:05:01+08:00", True),
        ("2030-01-01T00:00:00Z", True),
    ],
)
def test_time_future_allows_five_minutes_of_clock_skew(stamp: str, future: bool) -> None:
    row = {**POP_TEMPLATE, "updated_at": stamp}
    result = validator(population.DATASET).validate(make_table(population.DATASET, [row]))
    assert [r.codes for r in result.reports()] == ([["TIME_FUTURE"]] if future else [])
    assert result.accepted().num_rows == 1


@pytest.mark.parametrize(
    ("date", "future"), [("2026-10-31", False), ("2026-11-01", False), ("2026-11-02", True)]
)
def test_date_future_boundary(date: str, future: bool) -> None:
    row = {**BIZ_TEMPLATE, "established_date": date}
    result = validator(business.DATASET).validate(make_table(business.DATASET, [row]))
    assert [r.codes for r in result.reports()] == ([["DATE_FUTURE"]] if future else [])


@pytest.mark.parametrize(("until", "expired"), [("2026-10-31", True), ("2026-11-01", False), (None, False)])
def test_expired_but_valid_boundary(until: str | None, expired: bool) -> None:
    row = {**LIC_TEMPLATE, "valid_until": until}
    result = validator(license.DATASET).validate(make_table(license.DATASET, [row]))
    assert [r.codes for r in result.reports()] == ([["EXPIRED_BUT_VALID"]] if expired else [])
    # Expired but no longer "valid" (05 失效): nothing to flag.
    row = {**row, "status": "05"}
    assert list(validator(license.DATASET).validate(make_table(license.DATASET, [row])).reports()) == []


def test_too_long_counts_characters_not_bytes() -> None:
    ok = {**POP_TEMPLATE, "name": "韩" * 64}  # 192 bytes, 64 characters: allowed
    long_ = {**POP_BASE[0], "name": "a" * 65}
    result = validator(population.DATASET).validate(make_table(population.DATASET, [ok, long_]))
    assert [(r.row, r.codes) for r in result.reports()] == [(2, ["TOO_LONG"])]
    assert result.table.column("name")[0].as_py() == "韩" * 64


def test_text_is_trimmed_and_tabs_are_not_control_characters() -> None:
    row = {**POP_TEMPLATE, "name": "\u3000 韩德明 \t", "household_address": "青海省\t西宁市\n城西区"}
    result = validator(population.DATASET).validate(make_table(population.DATASET, [row]))
    assert list(result.reports()) == []
    assert result.table.column("name")[0].as_py() == "韩德明"


def test_key_duplicate_within_a_batch_names_the_earlier_row() -> None:
    rows = [POP_BASE[0], POP_BASE[1], POP_TEMPLATE, POP_BASE[1], POP_BASE[1]]
    result = validator(population.DATASET).validate(make_table(population.DATASET, rows))
    reports = reports_by_row(result)
    assert sorted(reports) == [4, 5]
    for row in (4, 5):
        assert reports[row].codes == ["KEY_DUPLICATE"]
        assert reports[row].key == ID_M
        assert names_row(reports[row], 2)
    assert result.accepted().num_rows == 3


def test_key_duplicate_across_batches_and_row_numbers_continue() -> None:
    v = validator(population.DATASET)
    first = v.validate(make_table(population.DATASET, [POP_BASE[0], POP_BASE[1]]))
    assert list(first.reports()) == []
    second_rows = [POP_TEMPLATE, {**POP_BASE[2], "gender": "3"}, POP_BASE[1]]
    second = v.validate(make_table(population.DATASET, second_rows))
    assert second.first_row == 3
    reports = reports_by_row(second)
    assert sorted(reports) == [4, 5]
    assert reports[4].codes == ["GENDER_INVALID"]
    assert reports[5].codes == ["KEY_DUPLICATE"]
    assert names_row(reports[5], 2)
    assert v.summary.rows == 5 and v.summary.accepted == 3 and v.summary.rejected == 2
    # A third batch: duplicates of rows of both earlier batches.
    # A third batch: duplicates of rows of both earlier batches (a rejected row's key counts too),
    # and one within the batch, named by its extract-wide row number.
    new = {
        **POP_TEMPLATE,
        "id_number": make_id("630104", "19900101", "020"),
        "gender": "2",
        "birth_date": "1990-01-01",
    }
    third = v.validate(make_table(population.DATASET, [POP_BASE[0], POP_TEMPLATE, POP_BASE[2], new, new]))
    reports = reports_by_row(third)
    assert sorted(reports) == [6, 7, 8, 10]
    assert all(reports[r].codes == ["KEY_DUPLICATE"] for r in reports)
    assert names_row(reports[6], 1) and names_row(reports[7], 3) and names_row(reports[8], 4)
    assert names_row(reports[10], 9)


def test_key_duplicate_after_legacy_conversion() -> None:
    legacy = {**POP_TEMPLATE, "id_number": "630104850310013"}
    result = validator(population.DATASET).validate(make_table(population.DATASET, [POP_TEMPLATE, legacy]))
    reports = reports_by_row(result)
    assert sorted(reports) == [2]
    assert set(reports[2].codes) == {"ID_LEGACY_15", "KEY_DUPLICATE"}
    assert names_row(reports[2], 1)


def test_key_duplicate_can_be_switched_off() -> None:
    rows = [POP_BASE[0], POP_BASE[0]]
    result = validator(population.DATASET, check_duplicates=False).validate(
        make_table(population.DATASET, rows)
    )
    assert list(result.reports()) == []


def test_missing_key_is_required_not_duplicate() -> None:
    rows = [{**POP_BASE[0], "id_number": None}, {**POP_BASE[1], "id_number": ""}]
    result = validator(population.DATASET).validate(make_table(population.DATASET, rows))
    assert [(r.row, r.codes, r.key) for r in result.reports()] == [
        (1, ["REQUIRED"], None),
        (2, ["REQUIRED"], None),
    ]


def test_legacy_id_is_converted_in_the_output() -> None:
    row = {**POP_TEMPLATE, "id_number": "630104850310013"}
    result = validator(population.DATASET).validate(make_table(population.DATASET, [*POP_BASE, row]))
    report = reports_by_row(result)[4]
    assert report.codes == ["ID_LEGACY_15"] and report.severity is Severity.WARNING
    assert report.key == ID_T
    assert result.table.column("id_number")[3].as_py() == ID_T
    assert result.accepted().column("id_number")[3].as_py() == ID_T
    # The converted number is checked like any other: gender and birth date must match.
    bad = {**POP_TEMPLATE, "id_number": "630104850310013", "gender": "2", "birth_date": "1985-03-11"}
    result = validator(population.DATASET).validate(make_table(population.DATASET, [bad]))
    assert set(next(result.reports()).codes) == {"ID_LEGACY_15", "ID_GENDER_MISMATCH", "ID_BIRTH_MISMATCH"}


def test_full_width_and_lower_case_identifiers_are_normalized() -> None:
    full = str.maketrans({c: chr(ord(c) + 0xFEE0) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"})
    pop_row = {**POP_BASE[0], "id_number": ID_F.translate(full)}
    pop_lower = {**POP_BASE[1], "id_number": " " + ID_M.lower() + " "}
    pop_x = {**POP_TEMPLATE, "id_number": ID_T.lower()}  # ...13x
    result = validator(population.DATASET).validate(
        make_table(population.DATASET, [pop_row, pop_lower, pop_x])
    )
    assert list(result.reports()) == []
    assert result.table.column("id_number").to_pylist() == [ID_F, ID_M, ID_T]
    assert ID_F.translate(full) == "１１０１０５１９４９１２３１００２Ｘ"
    lower_x = {**POP_BASE[0], "id_number": ID_F.lower()}
    result = validator(population.DATASET).validate(make_table(population.DATASET, [lower_x]))
    assert list(result.reports()) == [] and result.table.column("id_number")[0].as_py() == ID_F

    biz = {
        **BIZ_TEMPLATE,
        "uscc": USCC_T.translate(full).lower(),
        "legal_rep_id_number": ID_T.translate(full),
    }
    result = validator(business.DATASET).validate(make_table(business.DATASET, [biz]))
    assert list(result.reports()) == []
    assert result.table.column("uscc")[0].as_py() == USCC_T
    assert result.table.column("legal_rep_id_number")[0].as_py() == ID_T

    lic = finish(LIC_TEMPLATE)
    lic = {
        **lic,
        "license_id": lic["license_id"].translate(full),
        "holder_code": ID_T.translate(full),
        "issuer_code": USCC_B.lower(),
    }
    result = validator(license.DATASET).validate(make_table(license.DATASET, [lic]))
    assert list(result.reports()) == []
    assert result.table.column("license_id")[0].as_py() == finish(LIC_TEMPLATE)["license_id"]


def test_holder_code_is_checked_by_its_type() -> None:
    """111: GB 11643 rules on holder_code; 001: GB 32100 rules; other types: neither."""
    cases = [
        ("111", ID_T, []),
        ("111", USCC_A, ["ID_FORMAT"]),
        ("111", other_check(ID_T, "0123456789X"), ["ID_CHECKSUM"]),
        ("001", USCC_A, []),
        ("001", ID_F, ["USCC_CHECKSUM"]),
        ("001", "123", ["USCC_FORMAT"]),
        ("001", BAD_ORG_USCC, ["USCC_ORG_CHECKSUM"]),
        ("002", "123", ["HOLDER_CODE_TYPE_INVALID"]),
        ("002", ID_T, ["HOLDER_CODE_TYPE_INVALID"]),
    ]
    rows = [
        {**LIC_TEMPLATE, "_serial": f"S{i}", "holder_code_type": t, "holder_code": c}
        for i, (t, c, _) in enumerate(cases)
    ]
    result = validator(license.DATASET).validate(make_table(license.DATASET, rows))
    reports = reports_by_row(result)
    for i, (t, c, codes) in enumerate(cases, start=1):
        got = reports[i].codes if i in reports else []
        assert got == codes, (t, c, got)
        for code in codes:
            field_name = "holder_code_type" if code == "HOLDER_CODE_TYPE_INVALID" else "holder_code"
            assert (code, field_name) in reports[i].findings


def test_allowlisted_uscc_loads_with_a_warning() -> None:
    bad = other_check(USCC_T, "0123456789ABCDEFGHJKLMNPQRTUWXY")
    rows = [BIZ_BASE[0], {**BIZ_TEMPLATE, "uscc": bad}]
    without = validator(business.DATASET).validate(make_table(business.DATASET, rows))
    assert [r.codes for r in without.reports()] == [["USCC_CHECKSUM"]]
    with_list = validator(business.DATASET, uscc_allowlist=[bad]).validate(make_table(business.DATASET, rows))
    report = next(with_list.reports())
    assert report.codes == ["USCC_ALLOWLISTED"] and report.severity is Severity.WARNING
    assert with_list.accepted().num_rows == 2
    # The allowlist also covers USCCs in license fields.
    lic = {**LIC_TEMPLATE, "issuer_code": bad}
    result = validator(license.DATASET, uscc_allowlist=[bad]).validate(make_table(license.DATASET, [lic]))
    assert [(code, f) for r in result.reports() for code, f in r.findings] == [
        ("USCC_ALLOWLISTED", "issuer_code")
    ]


def test_missing_required_column_raises_contract_error() -> None:
    rows = [dict(r) for r in POP_BASE]
    for r in rows:
        del r["name"]
    with pytest.raises(ContractError) as info:
        validator(population.DATASET).validate(make_table(population.DATASET, rows))
    assert info.value.code == "COLUMN_MISSING"
    assert "name" in info.value.message_en and "name" in info.value.message_zh
    assert "name" in str(info.value)

    rows = [{k: v for k, v in r.items() if k not in ("uscc", "updated_at")} for r in BIZ_BASE]
    with pytest.raises(ContractError) as info:
        validator(business.DATASET).validate(make_table(business.DATASET, rows))
    assert info.value.code == "COLUMN_MISSING"
    assert "uscc" in info.value.message_en and "updated_at" in info.value.message_en


def test_missing_optional_columns_are_null() -> None:
    optional = [f.name for f in license.DATASET.fields if not f.required]
    rows = [{k: v for k, v in finish(r).items() if k not in optional} for r in LIC_BASE]
    result = validator(license.DATASET).validate(make_table(license.DATASET, rows))
    assert list(result.reports()) == []
    for name in optional:
        assert result.table.column(name).null_count == 3


def test_record_batches_are_accepted() -> None:
    table = make_table(population.DATASET, [*POP_BASE, {**POP_TEMPLATE, "gender": "3"}])
    result = validator(population.DATASET).validate(table.to_batches()[0])
    assert [(r.row, r.codes) for r in result.reports()] == [(4, ["GENDER_INVALID"])]


def test_report_as_dict() -> None:
    row = {**POP_TEMPLATE, "gender": "3", "household_division": "639999"}
    result = validator(population.DATASET).validate(make_table(population.DATASET, [row]))
    d = next(result.reports()).as_dict()
    assert d["row"] == 1 and d["key"] == ID_T and d["severity"] == "error"
    assert sorted(zip(d["codes"], d["fields"], strict=True)) == [
        ("DIVISION_UNKNOWN", "household_division"),
        ("GENDER_INVALID", "gender"),
    ]
    assert "；" in d["message_zh"] and "; " in d["message_en"]


def test_known_good_central_uscc_is_not_flagged() -> None:
    row = {**BIZ_TEMPLATE, "uscc": USCC_CENTRAL, "division": "110105"}
    result = validator(business.DATASET).validate(make_table(business.DATASET, [row]))
    assert list(result.reports()) == []
