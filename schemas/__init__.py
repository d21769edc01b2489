"""Data contracts of the exchange: the datasets, their national-standard checks and validation."""

from __future__ import annotations

from schemas.contract import Dataset

__all__ = ["DATASETS", "get"]


def _load() -> dict[str, Dataset]:
    from schemas import business, license, population

    return {d.name: d for d in (population.DATASET, business.DATASET, license.DATASET)}


DATASETS: dict[str, Dataset] = _load()


def get(name: str) -> Dataset:
    """The dataset called ``name``; KeyError naming the known ones otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None
