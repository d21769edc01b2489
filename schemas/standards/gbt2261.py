"""GB/T 2261.1-2003 (人的性别代码): sex codes.

>>> NAMES['1'], NAMES['2'], is_valid('3')
('男性', '女性', False)
"""

from __future__ import annotations

__all__ = ["CODES", "FEMALE", "MALE", "NAMES", "is_valid"]

NAMES: dict[str, str] = {"0": "未知的性别", "1": "男性", "2": "女性", "9": "未说明的性别"}
CODES: tuple[str, ...] = tuple(NAMES)
MALE, FEMALE = "1", "2"


def is_valid(code: str) -> bool:
    """True when ``code`` is a GB/T 2261.1 code."""
    return code in NAMES
