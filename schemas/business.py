"""business (市场主体登记): registered market entities.

>>> DATASET.key, DATASET.field('legal_rep_id_number').sensitivity.value
('uscc', 'sensitive')
"""

from __future__ import annotations

from schemas.contract import Dataset, Field, Kind, Sensitivity
from schemas.validate import Checker

__all__ = ["DATASET", "STATUSES"]

STATUSES = ("active", "revoked", "deregistered", "moved_out")

FIELDS = (
    Field(
        "uscc",
        Kind.IDENTIFIER,
        "统一社会信用代码",
        "GB 32100 unified social credit code; the key",
        max_length=18,
    ),
    Field("name", Kind.TEXT, "名称", "Registered name", max_length=256),
    Field(
        "entity_type", Kind.TEXT, "市场主体类型", "Entity type, e.g. 有限责任公司, 个体工商户", max_length=64
    ),
    Field(
        "legal_representative",
        Kind.TEXT,
        "法定代表人",
        "Legal representative or operator",
        sensitivity=Sensitivity.PERSONAL,
        max_length=64,
    ),
    Field(
        "legal_rep_id_number",
        Kind.IDENTIFIER,
        "法定代表人身份证号",
        "GB 11643 number of the representative",
        required=False,
        sensitivity=Sensitivity.SENSITIVE,
        max_length=18,
    ),
    Field(
        "registered_capital",
        Kind.DECIMAL,
        "注册资本（万元）",
        "Registered capital in 10,000 yuan",
        required=False,
    ),
    Field("established_date", Kind.DATE, "成立日期", "Date of establishment"),
    Field("registration_authority", Kind.TEXT, "登记机关", "Registering authority", max_length=128),
    Field("division", Kind.CODE, "行政区划", "GB/T 2260 division of registration; the owner"),
    Field(
        "address", Kind.TEXT, "住所", "Registered address", sensitivity=Sensitivity.SENSITIVE, max_length=256
    ),
    Field("business_scope", Kind.TEXT, "经营范围", "Business scope", required=False, max_length=4000),
    Field(
        "status",
        Kind.CODE,
        "登记状态",
        "active, revoked (吊销), deregistered (注销) or moved_out (迁出)",
        codes=STATUSES,
    ),
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
    c.check_uscc("uscc")


def _checks(c: Checker) -> None:
    c.check_identity("legal_rep_id_number")
    c.not_future("established_date")
    c.check_division("division")
    c.check_migration()
    c.not_future_time("updated_at")


DATASET = Dataset(
    name="business",
    label="市场主体登记",
    description="Registered market entities (GB 32100 unified social credit codes).",
    key="uscc",
    owner_field="division",
    fields=FIELDS,
    key_checks=_key_checks,
    checks=_checks,
)
