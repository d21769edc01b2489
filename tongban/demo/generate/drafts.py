"""What every dataset's generator shares: a draft (numpy columns and a defect plan, before rendering to
Arrow) and the clean people or businesses that other datasets draw from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from schemas.contract import Dataset

Cols = dict[str, np.ndarray]


@dataclass
class Draft:
    """Column arrays of one dataset before rendering, plus its defect plan."""

    cols: Cols
    kind: np.ndarray  # index into the dataset's defect kinds; -1 = clean
    source: np.ndarray  # row whose key a duplicate repeats; -1 otherwise
    kinds: tuple[str, ...] = ()
    text: dict[str, dict[int, str]] = field(default_factory=dict)  # impossible dates, by field and row
    legacy: np.ndarray | None = None  # population rows written as 15-digit IDs

    @property
    def n(self) -> int:
        return len(self.kind)

    def rows(self, kind: str) -> np.ndarray:
        """Rows planted with a defect ``kind``."""
        return (
            np.flatnonzero(self.kind == self.kinds.index(kind))
            if kind in self.kinds
            else np.zeros(0, np.int64)
        )

    def clean(self) -> np.ndarray:
        """Mask of rows that carry no defect and no warning."""
        mask = self.kind < 0
        if self.legacy is not None:
            mask &= ~self.legacy
        return mask


@dataclass(frozen=True)
class Holders:
    """Clean people or businesses usable as legal representatives or license holders."""

    names: pa.Array
    codes: pa.Array  # ID numbers or USCCs
    since: np.ndarray  # birth or establishment day
    county: np.ndarray
    status: np.ndarray


def holders(draft: Draft, table: pa.Table, code: str, since: str) -> Holders:
    """The clean rows of a dataset as holders: their name, ``code`` column and ``since`` day."""
    keep = np.flatnonzero(draft.clean())
    index = pa.array(keep)
    return Holders(
        table.column("name").take(index).combine_chunks(),
        table.column(code).take(index).combine_chunks(),
        draft.cols[since][keep],
        draft.cols["county"][keep],
        draft.cols["status"][keep],
    )


def bulk_rngs(seed: int) -> list[np.random.Generator]:
    """Four independent random streams of a seed, which the bulk tables assign to their parts."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]


def arrow_schema(dataset: Dataset) -> pa.Schema:
    """A contract's columns and types, without field metadata (the tables the generator returns)."""
    return pa.schema([(f.name, f.type) for f in dataset.fields])
