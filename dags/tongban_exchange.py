"""The exchange's Airflow DAGs, built from ``exchange.yaml`` (``TONGBAN_EXCHANGE`` names another file).

Only a local file is read here: no Variables, database or network calls at parse time. A config error
shows as this file's import error, naming the config file, line and field. The sync DAGs (one per
province and dataset, one national per dataset) and the maintenance DAGs (reconcile, expire licenses,
prune) come from the same file.
"""

from __future__ import annotations

import os
from pathlib import Path

from tongban.airflow.factory import build_dags, exchange
from tongban.airflow.maintenance import build_maintenance_dags

_CONFIG = Path(os.environ.get("TONGBAN_EXCHANGE") or Path(__file__).resolve().parent.parent / "exchange.yaml")

_EXCHANGE = exchange(_CONFIG)
globals().update(build_dags(_EXCHANGE))
globals().update(build_maintenance_dags(_EXCHANGE))
