"""What an office may ask and see: datasets, divisions, search, and fields shown unmasked.

A division scope is a GB/T 2260 code read as a prefix (``630000`` every division of Qinghai,
``630100`` those of Xining, ``630104`` that county alone, ``000000`` everywhere).

>>> s = Scope(datasets=("license",), divisions=("630000",))
>>> s.covers_division("632523"), s.covers_division("430981")
(True, False)
>>> Scope.from_dict({"datasets": ["license"], "search": True}).search
True
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

import schemas
from tongban.core.masking import mask_row
from tongban.core.verification.errors import VerifyError

__all__ = ["DIVISION_FIELD", "Scope"]

#: The field naming a record's division, per dataset.
DIVISION_FIELD = {"license": "division", "business": "division", "population": "household_division"}
_DIVISION = re.compile(r"^\d{6}$")


@functools.cache
def _known_fields() -> frozenset[str]:
    return frozenset(n for d in schemas.DATASETS.values() for n in d.names)


def _prefix(code: str) -> str:
    while code.endswith("00"):
        code = code[:-2]
    return code


@dataclass(frozen=True)
class Scope:
    """An office's scope. Empty ``datasets`` or ``divisions`` mean none and all, respectively."""

    datasets: tuple[str, ...] = ()
    divisions: tuple[str, ...] = ()
    search: bool = False
    reveal: tuple[str, ...] = field(default=())  # fields shown unmasked

    def to_dict(self) -> dict[str, Any]:
        return {
            "datasets": list(self.datasets),
            "divisions": list(self.divisions),
            "search": self.search,
            "reveal": list(self.reveal),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Scope:
        """Read and check a scope; VerifyError OFFICE_INVALID naming the bad part."""

        def bad(zh: str, en: str) -> VerifyError:
            return VerifyError("OFFICE_INVALID", f"授权范围无效：{zh}", f"invalid scope: {en}", "scopes")

        if not isinstance(data, dict):
            raise bad("应为对象", "must be an object")
        datasets = tuple(data.get("datasets") or ())
        unknown = [d for d in datasets if d not in schemas.DATASETS]
        if unknown:
            raise bad(f"未知数据集 {unknown}", f"unknown datasets {unknown}")
        divisions = tuple(data.get("divisions") or ())
        if any(not isinstance(d, str) or not _DIVISION.match(d) for d in divisions):
            raise bad("行政区划应为 6 位代码", "divisions must be 6-digit codes")
        reveal = tuple(data.get("reveal") or ())
        if any(r not in _known_fields() for r in reveal):
            raise bad("reveal 含未知字段", "reveal names an unknown field")
        if not isinstance(data.get("search", False), bool):
            raise bad("search 应为 true 或 false", "search must be true or false")
        return cls(datasets, divisions, bool(data.get("search", False)), reveal)

    def covers_dataset(self, dataset: str) -> bool:
        return dataset in self.datasets

    def covers_division(self, division: object) -> bool:
        if not self.divisions:
            return True
        code = str(division or "")
        return any(code.startswith(_prefix(d)) for d in self.divisions)

    def require_dataset(self, dataset: str) -> None:
        if not self.covers_dataset(dataset):
            raise VerifyError(
                "SCOPE_DATASET",
                f"本窗口无权核验数据集 {dataset}",
                f"this office may not verify dataset {dataset}",
                dataset,
            )

    def require_search(self) -> None:
        if not self.search:
            raise VerifyError("SCOPE_SEARCH", "本窗口无检索权限", "this office may not search", "search")

    def covers_record(self, dataset: str, record: dict[str, Any]) -> bool:
        return self.covers_division(record.get(DIVISION_FIELD[dataset])) and self.covers_division(
            record.get("_owner")
        )

    def show(self, dataset: str, record: dict[str, Any]) -> dict[str, Any]:
        """The record's dataset fields, masked except those the scope reveals."""
        names = schemas.get(dataset).names
        plain = {n: _jsonable(record.get(n)) for n in names}
        masked = mask_row(dataset, plain)
        for n in self.reveal:
            if n in plain:
                masked[n] = plain[n]
        return masked


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
