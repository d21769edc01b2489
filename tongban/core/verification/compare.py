"""Match what was presented against the stored record: ``match``, ``mismatch`` (naming which presented
field differs, never the stored value) or ``not_found``.

- license: ``license_id`` or ``license_number`` (either or both), and ``holder_code``;
- person: ``id_number`` and ``name``;
- business: ``uscc`` and, optionally, ``name``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tongban.core.store import Library
from tongban.core.trust.canonical import rfc8785_bytes
from tongban.core.verification import identifiers as ids
from tongban.core.verification.errors import VerifyError
from tongban.core.verification.records import find

__all__ = ["DATASET_OF", "Claim", "Outcome", "claim_for", "compare"]

#: The kind of verification -> the dataset it reads.
DATASET_OF = {"license": "license", "person": "population", "business": "business"}


@dataclass(frozen=True)
class Claim:
    """What was presented, checked and normalized (:func:`claim_for`)."""

    kind: str  # license | person | business
    fields: dict[str, str]

    @property
    def dataset(self) -> str:
        return DATASET_OF[self.kind]

    def digest(self) -> str:
        """sha256 hex over the RFC 8785 canonical JSON of the kind and the normalized fields."""
        return hashlib.sha256(rfc8785_bytes({"kind": self.kind, "claim": self.fields})).hexdigest()


@dataclass
class Outcome:
    """The comparison's result; ``record`` is the stored record (unmasked: mask before showing)."""

    result: str  # match | mismatch | not_found
    record: dict[str, Any] | None = None
    mismatched: list[str] = field(default_factory=list)


def _opt(data: dict[str, Any], name: str, check: Callable[[object, str], str]) -> str | None:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return check(value, name)


def claim_for(kind: str, data: dict[str, Any]) -> Claim:
    """Check and normalize a presented claim; VerifyError IDENTIFIER_INVALID naming the field."""
    fields: dict[str, str | None]
    if kind == "license":
        fields = {
            "license_id": _opt(data, "license_id", ids.license_id),
            "license_number": _opt(data, "license_number", ids.license_number),
            "holder_code": _opt(data, "holder_code", ids.holder_code),
        }
        if not (fields["license_id"] or fields["license_number"]):
            raise VerifyError(
                "IDENTIFIER_INVALID",
                "须给出证照标识或证照编号",
                "give the license id or the license number",
                "license_id",
            )
        if not fields["holder_code"]:
            raise VerifyError(
                "IDENTIFIER_INVALID", "须给出持证主体代码", "give the holder's code", "holder_code"
            )
    elif kind == "person":
        fields = {"id_number": _opt(data, "id_number", ids.id_number), "name": _opt(data, "name", ids.name)}
        for name in ("id_number", "name"):
            if not fields[name]:
                raise VerifyError("IDENTIFIER_INVALID", f"须给出 {name}", f"give {name}", name)
    elif kind == "business":
        fields = {"uscc": _opt(data, "uscc", ids.uscc), "name": _opt(data, "name", ids.name)}
        if not fields["uscc"]:
            raise VerifyError("IDENTIFIER_INVALID", "须给出统一社会信用代码", "give the USCC", "uscc")
    else:
        raise VerifyError("IDENTIFIER_INVALID", f"未知核验类型 {kind}", f"unknown kind {kind}", "kind")
    return Claim(kind, {k: v for k, v in fields.items() if v is not None})


def _same_name(presented: str, stored: object) -> bool:
    return isinstance(stored, str) and ids.name_key(presented) == ids.name_key(stored)


def _same_code(presented: str, stored: object) -> bool:
    return isinstance(stored, str) and presented == stored.strip().upper()


def compare(library: Library, claim: Claim) -> Outcome:
    """Look the claim's record up and compare every presented field with it."""
    f = claim.fields
    if claim.kind == "license":
        if "license_id" in f:
            found = find(library, "license", "license_id", f["license_id"])
            if not found:
                return Outcome("not_found")
            record = found[0]
            wrong = [
                name
                for name in ("license_number", "holder_code")
                if name in f
                and not (
                    _same_code(f[name], record.get(name))
                    if name == "holder_code"
                    else f[name] == str(record.get(name) or "").replace(" ", "")
                )
            ]
            return Outcome("mismatch" if wrong else "match", record, wrong)
        found = find(library, "license", "license_number", f["license_number"])
        if not found:
            return Outcome("not_found")
        for record in found:
            if _same_code(f["holder_code"], record.get("holder_code")):
                return Outcome("match", record)
        # The number exists but belongs to another holder: say which field differs, show no record.
        return Outcome("mismatch", None, ["holder_code"])
    if claim.kind == "person":
        found = find(library, "population", "id_number", f["id_number"])
        if not found:
            return Outcome("not_found")
        record = found[0]
        wrong = [] if _same_name(f["name"], record.get("name")) else ["name"]
        return Outcome("mismatch" if wrong else "match", record, wrong)
    found = find(library, "business", "uscc", f["uscc"])
    if not found:
        return Outcome("not_found")
    record = found[0]
    wrong = ["name"] if "name" in f and not _same_name(f["name"], record.get("name")) else []
    return Outcome("mismatch" if wrong else "match", record, wrong)
