"""Connections the Airflow way: a ``tongban`` connection type for a county's local system or a library.

An integration engineer adds a county's database on Airflow's Connections page (type *Tongban
database*): host, port, database (schema), login, password, and the **kind** of database — sqlite,
postgresql or mysql (a SQLite file's path goes in the host field) — and checks it with the page's
*Test* button (:meth:`TongbanHook.test_connection`). ``exchange.yaml`` names only the connection's id
(``conn_id``); the credentials stay in Airflow (or its secrets backend), never in the file.

Tasks resolve every ``conn_id`` through :func:`resolve_conn`: a ``tongban`` connection through its
fields, any other type (``postgres``, ``mysql``, ``sqlite``; ``AIRFLOW_CONN_<ID>`` variables included)
through its URI.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from airflow.sdk import BaseHook

from tongban.core.config import connection_url, url_from_fields

__all__ = ["CONN_TYPE", "TongbanHook", "resolve_conn"]

CONN_TYPE = "tongban"


def _kind_of(extra: dict[str, Any]) -> str:
    return str(extra.get("kind") or extra.get(f"extra__{CONN_TYPE}__kind") or "")


class TongbanHook(BaseHook):
    """A county's local system or a node's library, reached through an Airflow connection."""

    conn_name_attr = "tongban_conn_id"
    default_conn_name = "tongban_default"
    conn_type = CONN_TYPE
    hook_name = "Tongban database"

    def __init__(self, tongban_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tongban_conn_id = tongban_conn_id

    def sqlalchemy_url(self) -> str:
        """The connection's SQLAlchemy URL (password included: never log it)."""
        conn = self.get_connection(self.tongban_conn_id)
        if (conn.conn_type or "") == CONN_TYPE:
            return url_from_fields(
                _kind_of(conn.extra_dejson or {}),
                host=conn.host,
                port=conn.port,
                schema=conn.schema,
                login=conn.login,
                password=conn.password,
            )
        return connection_url(conn.get_uri())

    def test_connection(self) -> tuple[bool, str]:
        """Connect and run ``select 1`` (the Connections page's *Test* button); never shows the password."""
        try:
            url = self.sqlalchemy_url()
        except Exception as exc:
            return False, f"CONFIG_CONN_INVALID: {exc}"
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("select 1"))
        except Exception as exc:
            detail = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
            return False, f"SQL_UNREACHABLE: {detail}"
        finally:
            engine.dispose()
        return True, f"connected to {engine.url.render_as_string(hide_password=True)}"


def resolve_conn(conn_id: str) -> str:
    """A connection id as a SQLAlchemy URL, for the engine (its ``resolve_conn``)."""
    return TongbanHook(conn_id).sqlalchemy_url()
