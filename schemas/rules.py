"""The catalogue of validation rules: stable codes, severities and bilingual messages.

Codes never change meaning once published: operators filter on them, scripts
branch on them, and failed transfers keep them. Add new codes; do not reuse
old ones.

>>> RULES['ID_CHECKSUM'].severity
<Severity.ERROR: 'error'>
>>> RULES['ID_LEGACY_15'].severity
<Severity.WARNING: 'warning'>
>>> RULES['REQUIRED'].message('en', 'name')
'required field is empty: name'
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["RULES", "Rule", "Severity"]


class Severity(StrEnum):
    """What happens to a row that breaks the rule."""

    ERROR = "error"  # the row is rejected and goes to failed transfers
    WARNING = "warning"  # the row loads, flagged


@dataclass(frozen=True, slots=True)
class Rule:
    """One validation rule."""

    code: str
    severity: Severity
    zh: str
    en: str

    def message(self, lang: str, field: str) -> str:
        """The rule's message in ``lang`` (``zh`` or ``en``), naming the field."""
        text = self.zh if lang == "zh" else self.en
        return f"{text}：{field}" if lang == "zh" else f"{text}: {field}"


E, W = Severity.ERROR, Severity.WARNING

_CATALOGUE: tuple[tuple[str, Severity, str, str], ...] = (
    # Any field
    ("REQUIRED", E, "必填字段为空", "required field is empty"),
    ("TYPE_INVALID", E, "值的类型不符", "value is not of the field's type"),
    ("TOO_LONG", E, "值超过最大长度", "value exceeds the maximum length"),
    ("CHAR_INVALID", E, "值含控制字符", "value contains control characters"),
    ("ENCODING_INVALID", E, "值不是有效的 UTF-8 文本", "value is not valid UTF-8 text"),
    ("DATE_INVALID", E, "不是真实的日期（YYYY-MM-DD）", "not a real date (YYYY-MM-DD)"),
    ("TIME_INVALID", E, "不是带时区的 ISO 8601 时间", "not an ISO 8601 time with a UTC offset"),
    ("DATE_FUTURE", E, "日期晚于今天", "date is in the future"),
    ("TIME_FUTURE", W, "更新时间晚于当前时间", "update time is in the future"),
    ("NUMBER_INVALID", E, "不是有效的非负数值", "not a valid non-negative number"),
    ("KEY_DUPLICATE", E, "同一批数据中主键重复", "key repeats an earlier row of this extract"),
    # Code lists
    (
        "GENDER_INVALID",
        E,
        "性别代码不在 GB/T 2261.1 中（0、1、2、9）",
        "gender code not in GB/T 2261.1 (0, 1, 2, 9)",
    ),
    ("ETHNICITY_INVALID", E, "民族代码不在 GB/T 3304 中", "ethnicity code not in GB/T 3304"),
    ("STATUS_INVALID", E, "状态代码无效", "status code is not allowed"),
    ("DIVISION_INVALID", E, "行政区划代码应为 6 位数字", "division code must be 6 digits"),
    (
        "DIVISION_UNKNOWN",
        W,
        "行政区划代码不在 GB/T 2260 现行或历史代码中",
        "division code is not a known GB/T 2260 code",
    ),
    ("MOVED_TO_MISSING", E, "状态为迁出但未填写迁往地", "status is moved out but moved_to is empty"),
    (
        "MOVED_TO_UNEXPECTED",
        W,
        "状态不是迁出却填写了迁往地",
        "moved_to is set but the status is not moved out",
    ),
    # GB 11643 identity numbers
    (
        "ID_FORMAT",
        E,
        "公民身份号码应为 17 位数字加 1 位校验码",
        "identity number must be 17 digits and a check character",
    ),
    ("ID_CHECKSUM", E, "公民身份号码校验码错误", "identity number check character does not match"),
    (
        "ID_BIRTH_DATE",
        E,
        "公民身份号码中的出生日期无效或晚于今天",
        "birth date in the identity number is not a real past date",
    ),
    ("ID_BIRTH_MISMATCH", E, "出生日期与公民身份号码不一致", "birth date differs from the identity number"),
    (
        "ID_GENDER_MISMATCH",
        E,
        "性别与公民身份号码顺序码奇偶不符",
        "gender does not match the identity number's sequence parity",
    ),
    (
        "ID_AREA_UNKNOWN",
        W,
        "公民身份号码的地址码不是已知行政区划",
        "identity number area code is not a known division",
    ),
    (
        "ID_LEGACY_15",
        W,
        "15 位旧身份号码，已转换为 18 位",
        "15-digit legacy identity number, converted to 18 characters",
    ),
    # GB 32100 / GB 11714
    (
        "USCC_FORMAT",
        E,
        "统一社会信用代码应为 18 位（前 8 位数字）",
        "USCC must be 18 characters, the first 8 digits",
    ),
    ("USCC_CHECKSUM", E, "统一社会信用代码校验码错误", "USCC check character does not match"),
    (
        "USCC_ORG_CHECKSUM",
        E,
        "统一社会信用代码中的组织机构代码校验码错误",
        "organization code inside the USCC fails its GB 11714 check",
    ),
    (
        "USCC_DIVISION_UNKNOWN",
        W,
        "统一社会信用代码的登记管理机关行政区划码未知",
        "USCC division part is not a known GB/T 2260 code",
    ),
    (
        "USCC_ALLOWLISTED",
        W,
        "统一社会信用代码未通过校验，但在早期代码白名单中",
        "USCC fails its check but is on the early-code allowlist",
    ),
    # Licenses (GB/T 36903 / 36904)
    (
        "LICENSE_ID_FORMAT",
        E,
        "证照标识不符合 GB/T 36904 格式",
        "license identifier does not follow GB/T 36904",
    ),
    (
        "LICENSE_ID_CHECKSUM",
        E,
        "证照标识校验码错误（ISO 7064 MOD 37,36）",
        "license identifier check character does not match",
    ),
    (
        "LICENSE_ID_MISMATCH",
        E,
        "证照标识中的类型代码或颁发机构代码与字段不一致",
        "license identifier's type or issuer code differs from the fields",
    ),
    (
        "LICENSE_TYPE_CODE_INVALID",
        E,
        "证照类型代码应为统一社会信用代码加 3 位数字",
        "license type code must be a USCC and 3 digits",
    ),
    ("HOLDER_CODE_TYPE_INVALID", E, "持证主体代码类型应为 111 或 001", "holder code type must be 111 or 001"),
    ("VALIDITY_ORDER", E, "有效期起始日期晚于截止日期", "valid_from is after valid_until"),
    ("EXPIRED_BUT_VALID", W, "已过有效期但状态仍为有效", "past valid_until but the status is still valid"),
    ("SURFACE_INVALID", E, "照面信息应为 JSON 对象", "surface must be a JSON object"),
)

RULES: dict[str, Rule] = {code: Rule(code, sev, zh, en) for code, sev, zh, en in _CATALOGUE}
