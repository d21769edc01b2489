"""A small synced demo exchange for the verification tests: nine counties' generated local systems
synced up to the national library, without Airflow (one process, SQLite libraries)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

import schemas
from tongban.core import engine
from tongban.core.config import Exchange, load_exchange
from tongban.core.initialize import initialize


def build_world(root: Path, *, licenses: int = 30, population: int = 25, business: int = 10) -> Exchange:
    from tongban.demo.exchange_yaml import demo_exchange_yaml
    from tongban.demo.generate import DEMO_COUNTIES, generate_demo

    root.mkdir(parents=True, exist_ok=True)
    manifest = generate_demo(
        root,
        population_per_county=population,
        business_per_county=business,
        license_per_county=licenses,
    )
    text = demo_exchange_yaml(root, manifest["systems"], DEMO_COUNTIES)
    (root / "exchange.yaml").write_text(text, encoding="utf-8")
    ex = load_exchange(root / "exchange.yaml")
    initialize(ex)
    with engine.Libraries(ex) as libs:
        for edge in ex.edges:
            engine.sync_edge(ex, edge.id, libs=libs)
    return ex


class Row(SimpleNamespace):
    """A row read for a test, its sealed fields opened (attribute access, like SQLAlchemy's rows)."""

    @property
    def _mapping(self) -> dict[str, Any]:
        return vars(self)


def rows(lib: Any, sql: str, **params: Any) -> list[Any]:
    """The rows of ``sql``; a dataset's records come with their sealed fields opened (encryption at
    rest: the raw columns hold ciphertext)."""
    table = re.search(r"\bfrom\s+(\w+)", sql, re.I)
    dataset = table.group(1) if table and table.group(1) in schemas.DATASETS else None
    with lib.connect() as conn:
        found = [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]
    if dataset is not None:
        found = [lib.open_row(dataset, r) for r in found]
    return [Row(**r) for r in found]
