"""Create the PostgreSQL schema of every library named by a ``TONGBAN_LIB_<code>`` variable.

Each node's library is a schema of one database, named in its URL's ``options=-csearch_path=<schema>``
(docker-compose.yml, ``make airflow``). ``tongban init`` then creates the tables in it, the signing keys
and the trust list. Run by the compose file's ``airflow-init`` service before ``tongban init``.
"""

from __future__ import annotations

import os
import re
import sys

import sqlalchemy as sa


def schema_of(url: sa.URL) -> str | None:
    """The schema a URL's ``options=-csearch_path=...`` names, if any."""
    options = str(url.query.get("options") or "")
    found = re.search(r"search_path=([A-Za-z_][A-Za-z0-9_]*)", options)
    return found.group(1) if found else None


def main() -> int:
    made = []
    for name, value in sorted(os.environ.items()):
        if not name.startswith("TONGBAN_LIB_") or not value.strip():
            continue
        url = sa.make_url(value.strip())
        schema = schema_of(url)
        if not url.drivername.startswith("postgresql") or not schema:
            continue
        engine = sa.create_engine(url.update_query_dict({"options": ""}), poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            conn.execute(sa.text(f'create schema if not exists "{schema}"'))
        engine.dispose()
        made.append(schema)
    print(f"library schemas: {', '.join(made) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
