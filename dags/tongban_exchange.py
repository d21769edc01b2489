"""The exchange's Airflow DAGs, built from ``exchange.yaml`` (``TONGBAN_EXCHANGE`` names another file).

Only a local file is read here: no Variables, database or network calls at parse time. A config error
shows as this file's import error, naming the config file, line and field.
"""

from __future__ import annotations

import os
from pathlib import Path

from tongban.airflow.factory import build_dags
from tongban.core.config import load_exchange

_CONFIG = Path(os.environ.get("TONGBAN_EXCHANGE") or Path(__file__).resolve().parent.parent / "exchange.yaml")

globals().update(build_dags(load_exchange(_CONFIG)))
