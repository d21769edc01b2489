"""What a service window types in, checked and normalized before any lookup.

Identifiers are upper-cased and stripped of spaces; a malformed one or one whose check character is
wrong is refused with IDENTIFIER_INVALID naming the field (never echoing the value). Names are compared
after Unicode NFKC, with spaces and the middle dots of minority names (· • ・) taken out.

>>> id_number(" 11010519491231002x ")
'11010519491231002X'
>>> id_number("110105194912310021")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
tongban.core.verification.errors.VerifyError: IDENTIFIER_INVALID: ...
>>> name_key("阿卜杜·热合曼 ") == name_key("阿卜杜热合曼")
True
"""

from __future__ import annotations

import re
import unicodedata

from schemas.standards import gb11643, gb32100, gbt36904
from tongban.core.verification.errors import VerifyError

__all__ = ["holder_code", "id_number", "license_id", "license_number", "name", "name_key", "uscc"]

_SPACES = re.compile(r"[\s\u3000]+")
_DOTS = re.compile(r"[·•・‧⋅.．]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LICENSE_NUMBER = re.compile(r"^[0-9A-Za-z\u4e00-\u9fff()（）〔〕\[\]_/.\-]{1,128}$")


def _bad(field: str, zh: str, en: str) -> VerifyError:
    return VerifyError("IDENTIFIER_INVALID", f"{field}：{zh}", f"{field}: {en}", field)


def _text(value: object, field: str, limit: int) -> str:
    if not isinstance(value, str):
        raise _bad(field, "应为文本", "must be text")
    if len(value) > limit:
        raise _bad(field, f"超过 {limit} 个字符", f"longer than {limit} characters")
    if _CONTROL.search(value):
        raise _bad(field, "含有控制字符", "holds control characters")
    return value


def _code(value: object, field: str) -> str:
    return _SPACES.sub("", _text(value, field, 64)).upper()


def id_number(value: object, field: str = "id_number") -> str:
    """An 18-character citizen identity number (GB 11643) with a correct check character."""
    text = _code(value, field)
    try:
        return gb11643.validate(text)
    except ValueError:
        raise _bad(
            field, "不是有效的公民身份号码（18 位，校验位正确）", "not a valid citizen identity number"
        ) from None


def uscc(value: object, field: str = "uscc") -> str:
    """A unified social credit code (GB 32100) with correct check characters."""
    text = _code(value, field)
    try:
        return gb32100.validate(text)
    except ValueError:
        raise _bad(field, "不是有效的统一社会信用代码", "not a valid unified social credit code") from None


def holder_code(value: object, field: str = "holder_code") -> str:
    """A license holder's code: an identity number or a USCC."""
    text = _code(value, field)
    if gb11643.is_valid(text) or gb32100.is_valid(text):
        return text
    raise _bad(
        field,
        "不是有效的公民身份号码或统一社会信用代码",
        "neither a valid identity number nor a valid unified social credit code",
    )


def license_id(value: object, field: str = "license_id") -> str:
    """A GB/T 36904 license identifier with a correct check character."""
    text = _SPACES.sub("", _text(value, field, 160)).upper()
    if not gbt36904.is_valid(text):
        raise _bad(field, "不是有效的证照标识（GB/T 36904）", "not a valid license identifier (GB/T 36904)")
    return text


def license_number(value: object, field: str = "license_number") -> str:
    """The number printed on a license: letters, digits, CJK and a few separators, up to 128."""
    text = _SPACES.sub("", _text(value, field, 128))
    if not _LICENSE_NUMBER.match(text):
        raise _bad(field, "含有不允许的字符或为空", "is empty or holds characters a license number has not")
    return text


def name(value: object, field: str = "name") -> str:
    """A person's or business's name as presented (1 to 256 characters, no control characters)."""
    text = _text(value, field, 256).strip()
    if not text:
        raise _bad(field, "不能为空", "must not be empty")
    return text


def name_key(value: str) -> str:
    """The form names are compared in: NFKC, no spaces, no middle dots, case-folded."""
    return _DOTS.sub("", _SPACES.sub("", unicodedata.normalize("NFKC", value))).casefold()
