"""population (人口基础信息): residents registered in a county's household register.

>>> DATASET.key, DATASET.schema.field('id_number').metadata[b'label_zh'].decode()
('id_number', '公民身份号码')
"""

from __future__ import annotations

from schemas.contract import Dataset, Field, Kind, Sensitivity
from schemas.standards import gbt2261, gbt3304
from schemas.validate import Checker

__all__ = ["DATASET", "STATUSES"]

STATUSES = ("normal", "moved_out", "deceased")

FIELDS = (
    Field(
        "id_number",
        Kind.IDENTIFIER,
        "公民身份号码",
        "GB 11643 citizen identity number; the key",
        sensitivity=Sensitivity.PERSONAL,
        max_length=18,
    ),
    Field("name", Kind.TEXT, "姓名", "Full name", sensitivity=Sensitivity.PERSONAL, max_length=64),
    Field(
        "gender",
        Kind.CODE,
        "性别",
        "GB/T 2261.1 sex code: 1 male, 2 female, 0 unknown, 9 unstated",
        codes=gbt2261.CODES,
        code_rule="GENDER_INVALID",
    ),
    Field(
        "ethnicity",
        Kind.CODE,
        "民族",
        "GB/T 3304 ethnic group code (01-56, 97, 98)",
        codes=gbt3304.CODES,
        code_rule="ETHNICITY_INVALID",
    ),
    Field(
        "birth_date",
        Kind.DATE,
        "出生日期",
        "Birth date; equals the date in the identity number",
        sensitivity=Sensitivity.PERSONAL,
    ),
    Field(
        "household_division", Kind.CODE, "户籍地", "GB/T 2260 division of the household register; the owner"
    ),
    Field(
        "household_address",
        Kind.TEXT,
        "户籍地址",
        "Address of the household register",
        sensitivity=Sensitivity.SENSITIVE,
        max_length=256,
    ),
    Field("status", Kind.CODE, "人员状态", "normal, moved_out (户口迁出) or deceased", codes=STATUSES),
    Field(
        "moved_to",
        Kind.CODE,
        "迁往地",
        "GB/T 2260 division moved to, when status is moved_out",
        required=False,
    ),
    Field("updated_at", Kind.TIMESTAMP, "更新时间", "Last change in the source system (with UTC offset)"),
)


def _key_checks(c: Checker) -> None:
    c.check_identity("id_number", gender="gender", birth="birth_date")


def _checks(c: Checker) -> None:
    c.not_future("birth_date")
    c.check_division("household_division")
    c.check_migration()
    c.not_future_time("updated_at")


DATASET = Dataset(
    name="population",
    label="人口基础信息",
    description="Residents of a county's household register (GB 11643 identity numbers).",
    key="id_number",
    owner_field="household_division",
    fields=FIELDS,
    key_checks=_key_checks,
    checks=_checks,
)
