"""The demo counties' local systems: which kind each county runs per dataset, their data files, mappings and
the ground truth of what was planted in them (``manifest.json``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

import schemas
from tongban.demo.generate import systems_files, systems_sql
from tongban.demo.generate.business import make_businesses
from tongban.demo.generate.dates import REFERENCE_TIME
from tongban.demo.generate.defects import ground_truth
from tongban.demo.generate.drafts import Draft, holders
from tongban.demo.generate.license import make_licenses
from tongban.demo.generate.local import Layout, local_rows, write_mapping
from tongban.demo.generate.names import pools
from tongban.demo.generate.places import places_of
from tongban.demo.generate.population import helper_persons, make_people

__all__ = ["LAYOUTS", "MAX_ROWS_PER_FILE", "generate_demo"]

MAX_ROWS_PER_FILE = 500

#: Every local system's layout, by name.
LAYOUTS: dict[str, Layout] = {
    "gongan": systems_sql.GONGAN,
    "scjg": systems_sql.SCJG,
    "business_csv": systems_files.BUSINESS_CSV,
    "license": systems_files.LICENSE_DROP,
}


@dataclass(frozen=True)
class _Extract:
    """One data file (or SQLite table) of a local system, covering rows ``[start, stop)`` of a dataset."""

    county: str
    dataset: str
    kind: str  # sqlite | csv | parquet
    path: str  # relative to the work directory
    mapping: str
    table: str | None
    start: int
    stop: int


def _kind(dataset: str, index: int, county: str) -> str:
    """The local system a county runs for a dataset: 公安 SQLite everywhere, 市场监管 SQLite at every other
    county (CSV exports elsewhere), license drops as CSV (Parquet at one county)."""
    if dataset == "population" or (dataset == "business" and index % 2 == 0):
        return "sqlite"
    if dataset == "license" and county == systems_files.PARQUET_LICENSE_COUNTY:
        return "parquet"
    return "csv"


def _chunks(county: str, dataset: str, start: int, count: int, kind: str, per_file: int) -> list[_Extract]:
    """The extracts of one county's dataset: one SQLite table, or drop files of at most ``per_file`` rows."""
    base = f"systems/{county}"
    if kind == "sqlite":
        name, table = systems_sql.DATABASES[dataset]
        path, mapping = f"{base}/{name}.sqlite", f"{base}/{name}.mapping.yaml"
        return [_Extract(county, dataset, kind, path, mapping, table, start, start + count)]
    size = max(count if kind == "parquet" else per_file, 1)
    mapping = f"{base}/drop/{dataset}.mapping.yaml"
    return [
        _Extract(county, dataset, kind, f"{base}/drop/{dataset}/{dataset}-{i + 1:04d}.{kind}", mapping, None,
                 start + lo, start + min(lo + size, count))
        for i, lo in enumerate(range(0, max(count, 1), size))
    ]  # fmt: skip


def _layout_of(extract: _Extract) -> Layout:
    if extract.dataset == "population":
        return LAYOUTS["gongan"]
    if extract.dataset == "business":
        return LAYOUTS["scjg" if extract.kind == "sqlite" else "business_csv"]
    return LAYOUTS["license"]


def _write_extract(root: Path, extract: _Extract, draft: Draft, table: pa.Table) -> dict[str, Any]:
    """Write one extract and its mapping; its manifest entry (rows, planted defects and warnings)."""
    layout = _layout_of(extract)
    part = table.slice(extract.start, extract.stop - extract.start)
    rows = local_rows(part, layout, draft.text, extract.start)
    path = root / extract.path
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(layout.columns)
    if extract.kind == "sqlite":
        systems_sql.write_sqlite(path, extract.table or "", columns, rows)
    elif extract.kind == "csv":
        systems_files.write_csv(path, columns, rows)
        systems_files.as_dropped_earlier(path)
    else:
        systems_files.write_parquet(path, columns, rows)
        systems_files.as_dropped_earlier(path)
    write_mapping(root / extract.mapping, extract.dataset, layout, extract.table)
    key_index = list(layout.columns.values()).index(schemas.get(extract.dataset).key)
    keys = [row[key_index] for row in rows]
    defects, warnings = ground_truth(draft, extract.dataset, extract.start, extract.stop, keys)
    return {
        "county": extract.county,
        "dataset": extract.dataset,
        "kind": extract.kind,
        "path": extract.path,
        "table": extract.table,
        "mapping": extract.mapping,
        "rows": len(rows),
        "defects": defects,
        "warnings": warnings,
    }


def generate_demo(
    workdir: str | Path,
    *,
    seed: int = 2026,
    population_per_county: int = 2000,
    business_per_county: int = 500,
    license_per_county: int = 800,
    defect_rate: float = 0.02,
    legacy_rate: float = 0.005,
    max_rows_per_file: int = MAX_ROWS_PER_FILE,
) -> dict[str, Any]:
    """Write the demo local systems under ``workdir/systems/<county>/`` and return the manifest.

    Per county: ``gongan.sqlite`` (table ``czrk``); ``scjg.sqlite`` (table ``qydj``) for counties at an
    even index of :data:`DEMO_COUNTIES`, else CSV drops in ``drop/business/``; license CSV drops in
    ``drop/license/`` (a Parquet file for 石拐区). Each system has a ``*.mapping.yaml`` beside it. The
    manifest (also written to ``workdir/manifest.json``) lists, per data file, its rows and the 1-based
    rows carrying each injected defect and warning with the codes a validator must report.
    """
    root = Path(workdir)
    places = places_of(None)
    words = pools(seed)
    rng_pop, rng_biz, rng_lic = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    per_county = {
        "population": population_per_county,
        "business": business_per_county,
        "license": license_per_county,
    }
    extracts: dict[str, list[_Extract]] = {}
    for dataset, count in per_county.items():
        extracts[dataset] = []
        for k, place in enumerate(places):
            kind = _kind(dataset, k, place.code)
            extracts[dataset] += _chunks(place.code, dataset, k * count, count, kind, max_rows_per_file)

    def rows_of(dataset: str) -> tuple[np.ndarray, list[tuple[int, int]]]:
        county = np.repeat(np.arange(len(places)), per_county[dataset])
        return county, [(e.start, e.stop) for e in extracts[dataset]]

    county, segments = rows_of("population")
    people, people_table = make_people(
        rng_pop, county, places, words, defect_rate, legacy_rate, segments, True
    )
    persons = holders(people, people_table, "id_number", "birth")
    if not len(persons.codes):
        persons = helper_persons(rng_pop, places, words, 100)
    county, segments = rows_of("business")
    firms_draft, firms_table = make_businesses(
        rng_biz, county, places, words, persons, defect_rate, segments, True
    )
    firms = holders(firms_draft, firms_table, "uscc", "established")
    county, segments = rows_of("license")
    licenses, license_tbl = make_licenses(
        rng_lic, county, places, persons, firms, defect_rate, segments, True
    )

    for folder in {
        (root / e.path).parent for group in extracts.values() for e in group if e.kind != "sqlite"
    }:
        systems_files.remove_stale(folder)
    systems = []
    for dataset, draft, table in (
        ("population", people, people_table),
        ("business", firms_draft, firms_table),
        ("license", licenses, license_tbl),
    ):
        systems += [_write_extract(root, e, draft, table) for e in extracts[dataset]]
    counties = [place.code for place in places]
    systems.sort(key=lambda s: (counties.index(s["county"]), list(per_county).index(s["dataset"]), s["path"]))
    manifest = {
        "seed": seed,
        "defect_rate": defect_rate,
        "reference_time": REFERENCE_TIME.isoformat(),
        "systems": systems,
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return manifest
