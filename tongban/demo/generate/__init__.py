"""Realistic, deterministic demo data for the Tongban exchange.

Two entry points share one vectorized core (numpy + pyarrow, no per-row Faker calls):

* :func:`generate_demo` writes the demo *local systems* of the counties in :data:`DEMO_COUNTIES`
  (公安人口库 SQLite, 市场监管 SQLite or CSV drops, license CSV/Parquet drops), each with its
  mapping YAML, and a ground-truth ``manifest.json`` listing every planted defect and warning.
* :func:`population_table`, :func:`business_table` and :func:`license_table` return canonical Arrow
  tables for benchmarks (a million rows in a few seconds); :data:`LAYOUTS`, :func:`local_rows` and
  :func:`write_mapping` write them the way a local system does.

Every value derives from the seed and the fixed :data:`REFERENCE_TIME`; the wall clock is never read,
so the same seed gives byte-identical files. Identifiers are real-format and checked by the contracts'
own standards (:mod:`schemas.standards`): GB 11643 ID numbers (area codes valid in the birth year,
retired codes included), GB 32100 USCCs with their embedded GB 11714 organization codes, and GB/T 36904
license identifiers.

One module per part: :mod:`.population`, :mod:`.business` and :mod:`.license` (one per dataset);
:mod:`.systems_sql` and :mod:`.systems_files` (one per kind of local system) and :mod:`.systems` (which
county runs which, ``generate_demo``); :mod:`.defects` (planted defects); :mod:`.names` (word pools);
:mod:`.places`, :mod:`.dates`, :mod:`.identifiers` and :mod:`.columns` underneath.
"""

from __future__ import annotations

from tongban.demo.generate.business import BUSINESS_SCHEMA, business_table
from tongban.demo.generate.dates import LOCAL_TIMEZONE, REFERENCE_TIME
from tongban.demo.generate.defects import DEFECT_CODES, WARNING_CODES
from tongban.demo.generate.license import LICENSE_SCHEMA, license_table
from tongban.demo.generate.local import Layout, local_rows, write_mapping
from tongban.demo.generate.places import DEMO_COUNTIES
from tongban.demo.generate.population import POPULATION_SCHEMA, population_table
from tongban.demo.generate.systems import LAYOUTS, MAX_ROWS_PER_FILE, generate_demo

__all__ = [
    "BUSINESS_SCHEMA",
    "DEFECT_CODES",
    "DEMO_COUNTIES",
    "LAYOUTS",
    "LICENSE_SCHEMA",
    "LOCAL_TIMEZONE",
    "MAX_ROWS_PER_FILE",
    "POPULATION_SCHEMA",
    "REFERENCE_TIME",
    "WARNING_CODES",
    "Layout",
    "business_table",
    "generate_demo",
    "license_table",
    "local_rows",
    "population_table",
    "write_mapping",
]

# The names bench/sync.py imported before they were public.
_LAYOUTS, _local_rows, _write_mapping = LAYOUTS, local_rows, write_mapping
