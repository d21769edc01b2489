"""The purposes (用证事由) a verification may name: every call gives one, and the audit log keeps it.

>>> PURPOSES["social_insurance"]
('社会保险业务', 'social insurance')
>>> check_purpose("tax")
'tax'
"""

from __future__ import annotations

from tongban.core.verification.errors import VerifyError

__all__ = ["PURPOSES", "check_purpose"]

PURPOSES: dict[str, tuple[str, str]] = {
    "administrative_licensing": ("行政许可办理", "administrative licensing"),
    "market_registration": ("市场主体登记", "market entity registration"),
    "social_insurance": ("社会保险业务", "social insurance"),
    "medical_insurance": ("医疗保障业务", "medical insurance"),
    "household_registration": ("户籍业务办理", "household registration"),
    "tax": ("税务办理", "tax affairs"),
    "real_estate": ("不动产登记", "real estate registration"),
    "education": ("教育入学", "school enrolment"),
    "civil_affairs": ("民政业务", "civil affairs"),
    "public_resources": ("公共资源交易", "public resource trading"),
    "other_statutory": ("其他法定事由", "other statutory purpose"),
}


def check_purpose(purpose: object) -> str:
    """``purpose`` if it is listed; VerifyError PURPOSE_REQUIRED or PURPOSE_UNKNOWN otherwise."""
    if purpose is None or (isinstance(purpose, str) and not purpose.strip()):
        raise VerifyError(
            "PURPOSE_REQUIRED", "核验须选择用证事由", "a verification needs a purpose", "purpose"
        )
    if not isinstance(purpose, str) or purpose not in PURPOSES:
        raise VerifyError(
            "PURPOSE_UNKNOWN",
            f"用证事由不在列表中（可用：{', '.join(PURPOSES)}）",
            f"unknown purpose (known: {', '.join(PURPOSES)})",
            "purpose",
        )
    return purpose
