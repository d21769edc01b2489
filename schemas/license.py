"""license (电子证照): electronic licenses and certificates, GB/T 36903 metadata.

>>> DATASET.key, DATASET.field('status').codes[:3]
('license_id', ('01', '02', '03'))
"""

from __future__ import annotations

import pyarrow.compute as pc

from schemas.contract import Dataset, Field, Kind
from schemas.standards import gb32100, gbt36904
from schemas.standards.arrays import valid_mask
from schemas.validate import Checker

__all__ = ["BUSINESS_HOLDER", "DATASET", "HOLDER_CODE_TYPES", "STATUSES"]

STATUSES = {
    "01": "有效",
    "02": "暂扣",
    "03": "撤销",
    "04": "注销",
    "05": "失效",
    "06": "转出",
    "07": "吊销",
    "99": "其他",
}
HOLDER_CODE_TYPES = {"111": "公民身份号码", "001": "统一社会信用代码"}
VALID = "01"
#: Only a business holder's name, code and printed fields are public; a person's (111) are personal data,
#: and so are those of a holder whose code type is not recognised (masked when in doubt).
BUSINESS_HOLDER = ("holder_code_type", "001")

FIELDS = (
    Field(
        "license_id", Kind.IDENTIFIER, "证照标识", "GB/T 36904 license identifier; the key", max_length=160
    ),
    Field(
        "license_type_code",
        Kind.IDENTIFIER,
        "证照类型代码",
        "USCC of the defining body and 3 digits",
        max_length=21,
    ),
    Field("license_type_name", Kind.TEXT, "证照类型名称", "e.g. 食品经营许可证, 营业执照", max_length=128),
    Field("license_number", Kind.TEXT, "证照编号", "Number printed on the license", max_length=128),
    Field(
        "holder_name",
        Kind.TEXT,
        "持证主体",
        "Holder's name (public only for a business holder, holder_code_type 001)",
        max_length=256,
        public_when=BUSINESS_HOLDER,
    ),
    Field(
        "holder_code",
        Kind.IDENTIFIER,
        "持证主体代码",
        "Holder's ID number or USCC (public only for a business holder, holder_code_type 001)",
        max_length=18,
        public_when=BUSINESS_HOLDER,
    ),
    Field(
        "holder_code_type",
        Kind.CODE,
        "持证主体代码类型",
        "111 identity number, 001 USCC",
        codes=tuple(HOLDER_CODE_TYPES),
        code_rule="HOLDER_CODE_TYPE_INVALID",
    ),
    Field("issuer_name", Kind.TEXT, "发证机构", "Issuing authority", max_length=128),
    Field("issuer_code", Kind.IDENTIFIER, "发证机构代码", "USCC of the issuing authority", max_length=18),
    Field("issue_date", Kind.DATE, "发证日期", "Date of issue"),
    Field("valid_from", Kind.DATE, "有效期起始日期", "Start of validity"),
    Field("valid_until", Kind.DATE, "有效期截止日期", "End of validity; empty for long-term", required=False),
    Field("division", Kind.CODE, "行政区划", "GB/T 2260 division of the issuer; the owner"),
    Field(
        "status",
        Kind.CODE,
        "证照状态",
        "01 有效 02 暂扣 03 撤销 04 注销 05 失效 06 转出 07 吊销 99 其他",
        codes=tuple(STATUSES),
    ),
    Field(
        "surface",
        Kind.JSON,
        "照面信息",
        "JSON object of the printed fields (public only for a business holder, holder_code_type 001)",
        required=False,
        public_when=BUSINESS_HOLDER,
    ),
    Field("updated_at", Kind.TIMESTAMP, "更新时间", "Last change in the source system (with UTC offset)"),
)


def _type_code(c: Checker) -> None:
    col = c.columns["license_type_code"]
    present = c.present("license_type_code")
    length_ok = pc.fill_null(pc.equal(pc.binary_length(col), 21), False).to_numpy(zero_copy_only=False)
    suffix_ok = pc.fill_null(pc.ascii_is_decimal(pc.utf8_slice_codeunits(col, 18, 21)), False)
    uscc_part = gb32100.check(pc.utf8_slice_codeunits(col, 0, 18))
    good = length_ok & suffix_ok.to_numpy(zero_copy_only=False) & (uscc_part.faults == gb32100.OK)
    c.flag("LICENSE_TYPE_CODE_INVALID", "license_type_code", present & ~good)


def _identifier(c: Checker) -> None:
    result = gbt36904.check(c.columns["license_id"])
    c.flag("LICENSE_ID_FORMAT", "license_id", result.faults == gbt36904.BAD_FORMAT)
    c.flag("LICENSE_ID_CHECKSUM", "license_id", result.faults == gbt36904.BAD_CHECKSUM)
    well_formed = valid_mask(result.type_code)
    for part, name in ((result.type_code, "license_type_code"), (result.issuer_code, "issuer_code")):
        col = c.columns[name]
        same = pc.fill_null(pc.equal(part, col), False).to_numpy(zero_copy_only=False)
        c.flag("LICENSE_ID_MISMATCH", name, well_formed & c.present(name) & ~same)


def _checks(c: Checker) -> None:
    _type_code(c)
    c.check_uscc("issuer_code")
    c.check_identity("holder_code", rows=c.equals("holder_code_type", "111"))
    c.check_uscc("holder_code", rows=c.equals("holder_code_type", "001"))
    c.not_future("issue_date")
    both = c.present("valid_from") & c.present("valid_until")
    c.flag("VALIDITY_ORDER", "valid_until", both & (c.days("valid_from") > c.days("valid_until")))
    expired = c.present("valid_until") & (c.days("valid_until") < c.today) & c.equals("status", VALID)
    c.flag("EXPIRED_BUT_VALID", "status", expired)
    c.check_division("division")
    c.not_future_time("updated_at")


DATASET = Dataset(
    name="license",
    label="电子证照",
    description="Electronic licenses and certificates (GB/T 36903 metadata, GB/T 36904 identifiers).",
    key="license_id",
    owner_field="division",
    fields=FIELDS,
    key_checks=_identifier,
    checks=_checks,
)
