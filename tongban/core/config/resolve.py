"""Database URLs: written in the file, or read when asked for from an environment variable or an
Airflow connection (``conn_id``; outside Airflow the ``AIRFLOW_CONN_<ID>`` variable).

Credentials never live in ``exchange.yaml``, so no variable or connection is read when the file is
loaded: :func:`resolve_url` reads it when :meth:`~tongban.core.config.Exchange.library_url` or
:meth:`~tongban.core.config.Exchange.system_url` asks. Relative SQLite paths are taken against the
config file's folder. A value read at run time is never echoed in an error (it may hold a password).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import sqlalchemy as sa

from tongban.core.config.errors import ConfigError

__all__ = ["CONNECTION_KINDS", "connection_url", "resolve_url", "url_from_fields"]

#: The kinds of database a ``tongban`` connection reaches (its ``kind`` field), and their drivers.
CONNECTION_KINDS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}

_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
_SQLITE_URL = re.compile(r"(sqlite(?:\+\w+)?:///)(file:)?([^?]*)(\?.*)?", re.DOTALL)


def connection_url(uri: str) -> str:
    """The SQLAlchemy URL for an Airflow connection URI (PostgreSQL via psycopg 3, MySQL via PyMySQL).

    Airflow's ``__extra__`` query parameter is dropped; other parameters (``sslmode``...) stay.

    >>> connection_url("postgres://etl:s3cret@db.example:5432/library")
    'postgresql+psycopg://etl:s3cret@db.example:5432/library'
    >>> connection_url("mysql://reader@10.0.0.5/gongan?charset=utf8mb4")
    'mysql+pymysql://reader@10.0.0.5/gongan?charset=utf8mb4'
    >>> connection_url("sqlite:////srv/tongban/630104.sqlite")
    'sqlite:////srv/tongban/630104.sqlite'
    >>> connection_url("postgresql+psycopg2://u@h/db")  # already a SQLAlchemy URL: kept
    'postgresql+psycopg2://u@h/db'
    """
    scheme, sep, rest = uri.strip().partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+._-]*", scheme):
        # Never echo the URI: it may hold a password.
        raise ValueError("not a connection URI (expected scheme://user@host:port/database)")
    if scheme.lower() == "tongban":
        return _tongban_uri(uri.strip())
    driver = _DRIVERS.get(scheme.lower(), scheme)
    head, question, query = rest.partition("?")
    if question and "__extra__" in query:
        query = urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "__extra__"])
    return f"{driver}://{head}" + (f"?{query}" if query else "")


def url_from_fields(
    kind: str,
    *,
    host: str | None = None,
    port: int | None = None,
    schema: str | None = None,
    login: str | None = None,
    password: str | None = None,
) -> str:
    """The SQLAlchemy URL of a ``tongban`` connection's fields (its ``kind``: sqlite, postgresql, mysql).

    A SQLite database is a file: its path is the host field (or the schema field).

    >>> url_from_fields("postgresql", host="db", port=5432, schema="gongan", login="etl")
    'postgresql+psycopg://etl@db:5432/gongan'
    >>> url_from_fields("sqlite", host="/srv/630104/gongan.sqlite")
    'sqlite:////srv/630104/gongan.sqlite'
    >>> url_from_fields("oracle", host="db")
    Traceback (most recent call last):
    ...
    ValueError: unknown kind 'oracle' (one of: sqlite, postgresql, mysql)
    """
    kind = (kind or "").strip().lower()
    kind = {"postgres": "postgresql", "mariadb": "mysql"}.get(kind, kind)
    if kind not in CONNECTION_KINDS:
        raise ValueError(f"unknown kind {kind!r} (one of: {', '.join(CONNECTION_KINDS)})")
    if kind == "sqlite":
        path = (host or schema or "").strip()
        if not path:
            raise ValueError("a sqlite connection needs the database file's path in its host field")
        return f"sqlite:///{path}"
    url = sa.URL.create(
        CONNECTION_KINDS[kind],
        username=login or None,
        password=password or None,
        host=host or None,
        port=int(port) if port else None,
        database=schema or None,
    )
    return url.render_as_string(hide_password=False)


def _tongban_uri(uri: str) -> str:
    """A ``tongban://`` connection URI (Airflow's form of a ``tongban`` connection) as a SQLAlchemy URL."""
    url = sa.make_url(uri)
    query = dict(url.query)
    kind = str(query.pop("kind", "") or "")
    extra = query.pop("__extra__", None)
    if not kind and extra:
        try:
            kind = str(json.loads(str(extra)).get("kind") or "")
        except (ValueError, AttributeError):
            kind = ""
    out = url_from_fields(
        kind,
        host=url.host,
        port=url.port,
        schema=url.database,
        login=url.username,
        password=url.password,
    )
    return sa.make_url(out).update_query_dict(query).render_as_string(hide_password=False) if query else out


def _json_connection(text: str) -> str:
    """The URI of an Airflow connection given as JSON (``{"conn_type": "postgres", "host": ...}``)."""
    data = json.loads(text)
    if not isinstance(data, dict) or not data.get("conn_type"):
        raise ValueError("a JSON connection needs conn_type")
    conn_type = str(data["conn_type"])
    if conn_type == "tongban":
        extra = data.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra) if extra.strip() else {}
        return url_from_fields(
            str(extra.get("kind") or extra.get("extra__tongban__kind") or ""),
            host=data.get("host"),
            port=data.get("port"),
            schema=data.get("schema"),
            login=data.get("login"),
            password=data.get("password"),
        )
    if conn_type == "sqlite":
        return f"sqlite:///{data.get('host') or ''}"
    url = sa.URL.create(
        conn_type,
        username=data.get("login") or None,
        password=data.get("password") or None,
        host=data.get("host") or None,
        port=int(data["port"]) if data.get("port") else None,
        database=data.get("schema") or None,
    )
    return url.render_as_string(hide_password=False)


def _absolute_sqlite(url: str, base: Path) -> str:
    """``url`` with a relative SQLite file path taken against ``base``; any other URL unchanged."""
    match = _SQLITE_URL.fullmatch(url)
    if not match:
        return url
    prefix, file_uri, database, query = match.groups()
    if not database or database == ":memory:" or Path(database).is_absolute():
        return url
    return f"{prefix}{file_uri or ''}{Path(os.path.normpath(base / database))}{query or ''}"


def resolve_url(
    path: Path,
    base: Path,
    url: str | None,
    env: str | None,
    conn_id: str | None,
    resolve_conn: Callable[[str], str | None] | None,
    *,
    who: tuple[str, str],
    env_key: str,
    line: int,
) -> str:
    """The URL given in the file, or read now from the environment variable or connection.

    ``path`` is the config file (errors name ``path:line``) and ``base`` its folder; ``who`` names the
    node or system in both languages and ``env_key`` the field that names the variable.
    """
    who_zh, who_en = who
    where = f"{path}:{line}"
    if url is not None:
        return url
    if env is not None:
        value = os.environ.get(env, "").strip()
        if not value:
            raise ConfigError(
                "CONFIG_ENV_MISSING",
                f"{who_zh} 的 {env_key} 所需环境变量 {env} 未设置",
                f"{who_en}: {env_key} names environment variable {env}, which is not set",
                where,
            )
        return _normalize(
            value, "CONFIG_ENV_INVALID", (f"环境变量 {env}", f"environment variable {env}"), where, base
        )
    assert conn_id is not None
    uri: str | None = None
    if resolve_conn is not None:
        try:
            uri = resolve_conn(conn_id)
        except Exception as exc:
            detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise ConfigError(
                "CONFIG_CONN_MISSING",
                f"{who_zh} 的连接 {conn_id} 无法读取：{detail}",
                f"{who_en}: connection {conn_id} cannot be read: {detail}",
                where,
            ) from None
    env_name = f"AIRFLOW_CONN_{conn_id.upper()}"
    uri = (uri or os.environ.get(env_name, "")).strip()
    if not uri:
        raise ConfigError(
            "CONFIG_CONN_MISSING",
            f"{who_zh} 的连接 {conn_id} 不存在（Airflow 连接或环境变量 {env_name}）",
            f"{who_en}: connection {conn_id} not found (neither an Airflow connection nor {env_name})",
            where,
        )
    return _normalize(uri, "CONFIG_CONN_INVALID", (f"连接 {conn_id}", f"connection {conn_id}"), where, base)


def _normalize(uri: str, code: str, what: tuple[str, str], where: str, base: Path) -> str:
    """A URI read at run time (Airflow URI or JSON) as a SQLAlchemy URL; never echoes the value."""
    try:
        url = connection_url(_json_connection(uri) if uri.startswith("{") else uri)
    except ValueError as exc:
        raise ConfigError(
            code, f"{what[0]} 不是有效的连接地址", f"{what[1]} is not a connection URI: {exc}", where
        ) from None
    return _absolute_sqlite(url, base)
