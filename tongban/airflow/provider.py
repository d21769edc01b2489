"""The provider entry point (``apache_airflow_provider`` in ``pyproject.toml``): Airflow finds the
``tongban`` connection type and its hook through :func:`get_provider_info`.

Importing this module imports nothing of Airflow (Airflow reads provider info early and often).
"""

from __future__ import annotations

from typing import Any

__all__ = ["get_provider_info"]


def get_provider_info() -> dict[str, Any]:
    """What Airflow's providers manager reads: the package, its hook and connection type."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("tongban")
    except PackageNotFoundError:  # pragma: no cover - only from a bare checkout
        release = "0.0.0"
    return {
        "package-name": "tongban",
        "name": "Tongban",
        "description": "通办 Tongban: the exchange's local systems and libraries as Airflow connections.\n",
        "versions": [release],
        "integrations": [
            {
                "integration-name": "Tongban",
                "external-doc-url": "https://pypi.org/project/tongban/",
                "tags": ["software"],
            }
        ],
        "hooks": [{"integration-name": "Tongban", "python-modules": ["tongban.airflow.hooks"]}],
        "connection-types": [_connection_type()],
    }


def _connection_type() -> dict[str, Any]:
    # Plain data: the hook's module imports Airflow, this one must not (tests check the two agree).
    return {
        "hook-class-name": "tongban.airflow.hooks.TongbanHook",
        "hook-name": "Tongban database",
        "connection-type": "tongban",
        "conn-fields": {
            "kind": {
                "label": "Kind of database",
                "description": "sqlite, postgresql or mysql (MariaDB too); a SQLite file's path goes in Host",
                "schema": {
                    "type": "string",
                    "enum": ["sqlite", "postgresql", "mysql"],
                    "default": "postgresql",
                },
            }
        },
        "ui-field-behaviour": {
            "hidden-fields": ["extra"],
            "relabeling": {"schema": "Database", "host": "Host (or SQLite file path)"},
            "placeholders": {
                "host": "db.county.example or /srv/tongban/630104/gongan.sqlite",
                "port": "5432 (PostgreSQL) or 3306 (MySQL)",
                "schema": "gongan",
                "login": "a read-only account",
                "password": "kept by Airflow, never in exchange.yaml",
            },
        },
    }
