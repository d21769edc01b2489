"""Run every DAG of an exchange once through Airflow (``dag.test()``), provinces first, then national.

``tongban demo`` starts this module in a child process whose environment points ``AIRFLOW_HOME`` at
the demo's folder (Airflow reads its configuration when first imported). Airflow's own log goes to
stdout/stderr; one JSON line per finished DAG goes to the file descriptor named by
``TONGBAN_PROGRESS_FD`` (or stdout), so the caller can show progress.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TextIO


def _progress() -> TextIO:
    fd = os.environ.get("TONGBAN_PROGRESS_FD")
    return os.fdopen(int(fd), "w", buffering=1) if fd else sys.stdout


def main(argv: list[str] | None = None) -> int:
    """Run the DAGs of ``--exchange`` (all, or those named by ``--dag``); 0 when every run succeeded."""
    parser = argparse.ArgumentParser(prog="python -m tongban.airflow.runner")
    parser.add_argument("--exchange", required=True, type=Path)
    parser.add_argument("--dag", action="append", default=[])
    args = parser.parse_args(argv)
    os.environ["TONGBAN_EXCHANGE"] = str(args.exchange.resolve())

    from tongban.airflow.factory import build_dags
    from tongban.core.config import load_exchange

    dags = build_dags(load_exchange(args.exchange))
    order = sorted(dags, key=lambda d: (d.endswith("_national"), d))
    if args.dag:
        order = [d for d in order if d in args.dag]
    out = _progress()
    ok = True
    for dag_id in order:
        started = time.monotonic()
        run = dags[dag_id].test()
        state = str(getattr(run, "state", "unknown"))
        ok = ok and state.endswith("success")
        seconds = round(time.monotonic() - started, 1)
        out.write(json.dumps({"dag": dag_id, "state": state.split(".")[-1], "seconds": seconds}) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
