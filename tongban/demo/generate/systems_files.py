"""File-drop local systems: business CSV exports with Chinese headers and license drops (CSV, or Parquet for
one county) in the canonical columns, a file per at most ``max_rows_per_file`` rows, ready to load."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from connectors.dropfolder import DEFAULT_SETTLE_SECONDS
from schemas.license import DATASET as LICENSE
from tongban.demo.generate.local import Layout
from tongban.demo.generate.systems_sql import BUSINESS_CODES

# fmt: off
_BUSINESS_CSV_COLUMNS = {  # business CSV drops: Chinese headers
    "统一社会信用代码": "uscc", "企业名称": "name", "企业类型": "entity_type",
    "法定代表人": "legal_representative", "法定代表人身份证号": "legal_rep_id_number",
    "注册资本(万元)": "registered_capital", "成立日期": "established_date",
    "登记机关": "registration_authority", "行政区划": "division", "住所": "address",
    "经营范围": "business_scope", "登记状态": "status", "迁往地区": "moved_to", "更新时间": "updated_at",
}
# fmt: on

#: Business registrations exported as CSV with Chinese headers and local status words.
BUSINESS_CSV = Layout(_BUSINESS_CSV_COLUMNS, {"status": BUSINESS_CODES}, False)
#: License drops: the canonical columns and codes, times with their +08:00 offset.
LICENSE_DROP = Layout({name: name for name in LICENSE.names}, {}, False)
#: The county whose license drop is Parquet rather than CSV.
PARQUET_LICENSE_COUNTY = "150205"


def write_csv(path: Path, columns: Sequence[str], rows: list[list]) -> None:
    """A UTF-8 CSV file with a header row; nulls as empty fields."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else v for v in row] for row in rows])


def write_parquet(path: Path, columns: Sequence[str], rows: list[list]) -> None:
    """A Parquet file of text columns."""
    arrays = [pa.array([row[i] for row in rows], pa.string()) for i in range(len(columns))]
    pq.write_table(pa.Table.from_arrays(arrays, names=list(columns)), path)


def as_dropped_earlier(path: Path) -> None:
    """Date a drop file back past the drop folder's settle time: it is complete, ready to load at once.

    (A drop folder leaves a file that changed in the last minute alone: it may still be being written.)
    Only the file's times move, by a fixed amount, so the drops keep their order.
    """
    info = path.stat()
    back = int(2 * DEFAULT_SETTLE_SECONDS * 1e9)
    os.utime(path, ns=(info.st_atime_ns - back, info.st_mtime_ns - back))


def remove_stale(folder: Path) -> None:
    """Remove the numbered drop files of an earlier, larger run (``<folder>-0001.csv`` ...)."""
    for stale in folder.glob(f"{folder.name}-*.*"):
        stale.unlink()
