"""SQL local systems: the 公安 population register (table ``czrk``) and the 市场监管 business register (table
``qydj``) as SQLite databases, with pinyin column names, local status codes and naive Beijing times."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from schemas.business import STATUSES as BUSINESS_STATUSES
from schemas.population import STATUSES as POPULATION_STATUSES
from tongban.demo.generate.local import Layout

# fmt: off
_GONGAN_COLUMNS = {  # 公安人口库 czrk: pinyin abbreviations
    "sfzh": "id_number", "xm": "name", "xb": "gender", "mz": "ethnicity", "csrq": "birth_date",
    "hjdq": "household_division", "hjdz": "household_address", "ryzt": "status", "qwdq": "moved_to",
    "gxsj": "updated_at",
}
_SCJG_COLUMNS = {  # 市场监管 qydj: pinyin abbreviations
    "tyshxydm": "uscc", "qymc": "name", "qylx": "entity_type", "fddbr": "legal_representative",
    "fddbrsfzh": "legal_rep_id_number", "zczb": "registered_capital", "clrq": "established_date",
    "djjg": "registration_authority", "xzqh": "division", "zs": "address", "jyfw": "business_scope",
    "djzt": "status", "qwdq": "moved_to", "gxsj": "updated_at",
}
# fmt: on
_POPULATION_CODES = dict(zip(POPULATION_STATUSES, ("10", "21", "30"), strict=True))
#: Local business status words, shared by the register and its CSV exports.
BUSINESS_CODES = dict(zip(BUSINESS_STATUSES, ("存续", "吊销", "注销", "迁出"), strict=True))

#: The 公安 population register: ``gongan.sqlite``, table ``czrk``.
GONGAN = Layout(_GONGAN_COLUMNS, {"status": _POPULATION_CODES}, True)
#: The 市场监管 business register: ``scjg.sqlite``, table ``qydj``.
SCJG = Layout(_SCJG_COLUMNS, {"status": BUSINESS_CODES}, True)
#: Per dataset: (system name, table) of its database.
DATABASES = {"population": ("gongan", "czrk"), "business": ("scjg", "qydj")}


def write_sqlite(path: Path, table: str, columns: Sequence[str], rows: list[list]) -> None:
    """(Re)create a SQLite database holding one table of text columns."""
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        con.execute(f"CREATE TABLE {table} ({', '.join(f'{c} TEXT' for c in columns)})")
        con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))})", rows)
        con.commit()
    finally:
        con.close()
