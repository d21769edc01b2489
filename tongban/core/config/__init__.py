"""The exchange config (``exchange.yaml``): nodes, local systems, sync edges and offices.

One YAML file describes the whole exchange (SPEC section 3)::

    version: 1
    spool: spool                # where sync tasks hand files to each other (relative to this file)
    trust: {root: "000000", list: keys/trust.json, keys: keys}
    defaults: {batch_size: 65536, lookback: 10m, schedule: "@hourly", retries: 2}
    nodes:
      - {code: "000000", name: 国家库, level: national, library: "sqlite:///libraries/000000.sqlite"}
      - {code: "630000", name: 青海省, level: province, parent: "000000", library_env: TONGBAN_LIB_630000}
      - {code: "630104", name: 城西区, level: county, parent: "630000", conn_id: lib_630104}
    systems:
      - {name: 630104-gongan, node: "630104", dataset: population, kind: sql, conn_id: gongan_630104,
         table: czrk, cursor: gxsj, mapping: systems/630104/gongan.mapping.yaml}
      - {name: 630104-license, node: "630104", dataset: license, kind: files,
         folder: systems/630104/drop/license, pattern: "*.csv", mapping: {dataset: license}}
    edges:                      # optional: derived when absent
      - {dataset: population, source: 630104-gongan, target: "630104", schedule: "@daily"}
    offices: []

Credentials never live in the file: a URL with a password is refused; use ``conn_id`` (an Airflow
connection, or ``AIRFLOW_CONN_<ID>``) or ``url_env``/``library_env`` (an environment variable), both
read when the URL is asked for, not when the file is loaded. Relative SQLite paths are taken against
the file's folder.

Without ``edges`` every system feeds its node (on the default schedule) and every node passes each
dataset it receives to its parent (no schedule: it runs when its children's assets update). An edge
written without ``schedule`` gets the same; ``schedule: null`` means "only when triggered".

Every problem is a :class:`ConfigError` with a stable ``CONFIG_*`` code (mapping problems keep their
``MAPPING_*`` code), a message in both languages naming the field (``nodes[2].parent``) and ``where``
= ``file:line``. A file past :data:`CONFIG_MAX_BYTES`, :data:`CONFIG_MAX_NODES` nodes (aliases counted
as expanded) or :data:`CONFIG_MAX_DEPTH` levels of nesting is refused before it is composed
(``CONFIG_TOO_LARGE``, ``CONFIG_TOO_DEEP``; see :mod:`connectors.yaml_bounds`).

The package has one module per job: :mod:`~tongban.core.config.model` (nodes, systems, edges, the
exchange), :mod:`~tongban.core.config.reader` (the bounded YAML reader that keeps line numbers),
:mod:`~tongban.core.config.resolve` (URLs from the file, the environment or Airflow connections),
:mod:`~tongban.core.config.topology` (levels, parents, edges derived and ordered) and
:mod:`~tongban.core.config.load` (:func:`load_exchange` and its section readers). Import from here.
"""

from __future__ import annotations

from tongban.core.config.errors import ConfigError
from tongban.core.config.load import DEFAULT_SETTLE, load_exchange
from tongban.core.config.model import KINDS, LEVELS, NATIONAL, Edge, Exchange, Node, System
from tongban.core.config.reader import (
    CONFIG_MAX_BYTES,
    CONFIG_MAX_DEPTH,
    CONFIG_MAX_NODES,
    SCHEDULE_PRESETS,
    parse_duration,
)
from tongban.core.config.resolve import CONNECTION_KINDS, connection_url, url_from_fields

__all__ = [
    "CONFIG_MAX_BYTES",
    "CONFIG_MAX_DEPTH",
    "CONFIG_MAX_NODES",
    "CONNECTION_KINDS",
    "DEFAULT_SETTLE",
    "KINDS",
    "LEVELS",
    "NATIONAL",
    "SCHEDULE_PRESETS",
    "ConfigError",
    "Edge",
    "Exchange",
    "Node",
    "System",
    "connection_url",
    "load_exchange",
    "parse_duration",
    "url_from_fields",
]
