"""Data contracts: a dataset's fields, key, owner and Arrow schema.

A contract is declarative; :mod:`schemas.validate` runs it. Each field has a
kind that says how raw values are read (``text``, ``code``, ``identifier``,
``date``, ``timestamp``, ``decimal``, ``json``), a Chinese label, a sensitivity
and a description, all carried into the Arrow schema as field metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from schemas.validate import Checker

__all__ = ["Dataset", "Field", "Kind", "Sensitivity"]


class Kind(StrEnum):
    """How a field's raw values are read and normalized."""

    TEXT = "text"  # free text: trimmed, control characters rejected
    CODE = "code"  # a value from a code list: trimmed
    IDENTIFIER = "identifier"  # an ID number, USCC, license id: trimmed, NFKC, upper case
    DATE = "date"  # ISO 8601 calendar date
    TIMESTAMP = "timestamp"  # ISO 8601 time with a UTC offset
    DECIMAL = "decimal"  # a non-negative decimal number
    JSON = "json"  # a JSON object


class Sensitivity(StrEnum):
    """How carefully a field is handled at rest and in answers."""

    PUBLIC = "public"  # may be shown to any authorized office
    PERSONAL = "personal"  # personal data of the record's subject: masked by default
    SENSITIVE = "sensitive"  # third-party ID numbers, addresses: encrypted at rest, masked


_ARROW_TYPES: dict[Kind, pa.DataType] = {
    Kind.TEXT: pa.string(),
    Kind.CODE: pa.string(),
    Kind.IDENTIFIER: pa.string(),
    Kind.DATE: pa.date32(),
    Kind.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    Kind.DECIMAL: pa.decimal128(18, 4),
    Kind.JSON: pa.string(),
}


@dataclass(frozen=True, slots=True)
class Field:
    """One canonical column of a dataset."""

    name: str
    kind: Kind
    label: str  # Chinese label, e.g. 公民身份号码
    description: str
    required: bool = True
    sensitivity: Sensitivity = Sensitivity.PUBLIC
    max_length: int | None = None
    codes: tuple[str, ...] = ()  # allowed values for Kind.CODE (empty: no list)
    code_rule: str = "STATUS_INVALID"  # the rule a value outside ``codes`` breaks
    #: Sensitivity that follows the value: the field is personal data *unless* another field of the row
    #: has this value (a license holder's name and code are public only for a business holder, 001;
    #: for a person, or a code type nobody recognised, they are a name and an ID number).
    public_when: tuple[str, str] | None = None

    def sensitivity_in(self, row: Mapping[str, object]) -> Sensitivity:
        """The field's sensitivity in ``row``: with ``public_when``, personal unless it holds.

        >>> f = Field("holder_name", Kind.TEXT, "持证主体", "", public_when=("holder_code_type", "001"))
        >>> [f.sensitivity_in({"holder_code_type": t}).value for t in ("001", "111", "1", None)]
        ['public', 'personal', 'personal', 'personal']
        """
        if self.public_when is not None:
            other, value = self.public_when
            if str(row.get(other) or "").strip() != value:
                return Sensitivity.PERSONAL
        return self.sensitivity

    @property
    def type(self) -> pa.DataType:
        """The Arrow type of the canonical column."""
        return _ARROW_TYPES[self.kind]

    def arrow_field(self) -> pa.Field:
        """The Arrow field with its metadata."""
        meta = {
            "label_zh": self.label,
            "description": self.description,
            "sensitivity": str(self.sensitivity),
            "kind": str(self.kind),
        }
        if self.max_length:
            meta["max_length"] = str(self.max_length)
        if self.codes:
            meta["codes"] = ",".join(self.codes)
        if self.public_when:
            meta["public_when"] = "=".join(self.public_when)
        return pa.field(self.name, self.type, nullable=not self.required, metadata=meta)


@dataclass(frozen=True)
class Dataset:
    """A dataset's contract: fields, key, owner field and its own checks (those on the key first)."""

    name: str
    label: str
    description: str
    key: str
    owner_field: str  # the field holding the issuing node's division code
    fields: tuple[Field, ...]
    key_checks: Callable[[Checker], None]  # run first: they may normalize the key (15-digit IDs)
    checks: Callable[[Checker], None]  # the rest, run while duplicate keys are looked for
    _by_name: dict[str, Field] = field(init=False, repr=False, compare=False)
    _names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.fields})
        object.__setattr__(self, "_names", tuple(f.name for f in self.fields))
        if self.key not in self._by_name or self.owner_field not in self._by_name:
            raise ValueError(f"{self.name}: key and owner field must be fields of the dataset")

    def field(self, name: str) -> Field:
        """The field called ``name``."""
        return self._by_name[name]

    @property
    def names(self) -> list[str]:
        """Canonical column names, in order."""
        return list(self._names)

    @property
    def required(self) -> list[str]:
        """Names of the columns an extract must provide."""
        return [f.name for f in self.fields if f.required]

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema with field and dataset metadata."""
        return pa.schema(
            [f.arrow_field() for f in self.fields],
            metadata={
                "dataset": self.name,
                "label_zh": self.label,
                "key": self.key,
                "owner": self.owner_field,
            },
        )
