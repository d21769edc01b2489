"""Errors a connector raises for input it cannot use: a stable code, both languages, and where."""

from __future__ import annotations

__all__ = ["ExtractError"]


class ExtractError(Exception):
    """An extract, mapping or local system that cannot be read at all.

    ``where`` names the file (and line or field) so a person can go and look.
    """

    def __init__(self, code: str, message_zh: str, message_en: str, where: str = "") -> None:
        super().__init__(f"{code}: {message_en}" + (f" ({where})" if where else ""))
        self.code = code
        self.message_zh = message_zh
        self.message_en = message_en
        self.where = where

    def as_dict(self) -> dict[str, str]:
        return {
            "code": self.code,
            "message_zh": self.message_zh,
            "message_en": self.message_en,
            "where": self.where,
        }
