"""Run every DAG of an exchange once through Airflow (``dag.test()``), provinces first, then national.

``tongban demo`` starts this module in a child process whose environment points ``AIRFLOW_HOME`` at
the demo's folder (Airflow reads its configuration when first imported). Airflow's own log goes to
stdout/stderr; one JSON line per finished DAG goes to the file descriptor named by
``TONGBAN_PROGRESS_FD`` (or stdout), so the caller can show progress.

A run ends in bounded time: ``dag.test()`` runs each task once (no retries: it would wait out their
backoff, looping on "No tasks to run"), in a child process, and a DAG still running after ``--timeout``
seconds is killed with all it started and reported ``failed`` with the code ``DAG_RUN_TIMEOUT``; a DAG
whose run failed is reported with ``DAG_RUN_FAILED``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

__all__ = ["main"]

#: Seconds one DAG's ``dag.test()`` may take before it is stopped (``--timeout``).
DEFAULT_TIMEOUT = 900


def _progress() -> TextIO:
    fd = os.environ.get("TONGBAN_PROGRESS_FD")
    return os.fdopen(int(fd), "w", buffering=1) if fd else sys.stdout


def _test_in_child(dag: Any, write: int) -> None:  # pragma: no cover - runs in the forked child
    """The child's side: its own process group, the parent's database connections left alone."""
    os.setsid()
    state = "failed"
    try:
        from airflow import settings

        if getattr(settings, "engine", None) is not None:
            settings.engine.dispose(close=False)  # the parent's pooled connections are not ours
        run = dag.test()
        state = str(getattr(run, "state", "unknown")).split(".")[-1]
    except BaseException:
        state = "failed"
    finally:
        os.write(write, state.encode())
        os._exit(0)


def run_once(dag: Any, timeout: float) -> dict[str, Any]:
    """``dag.test()`` with no retries in a child process, killed after ``timeout`` seconds.

    The child is this process forked (the DAGs are built already), in its own process group: a DAG
    that hangs — a task that never returns, ``dag.test()`` looping on "No tasks to run" — is ended
    with everything it started, and reported ``failed`` with ``DAG_RUN_TIMEOUT``.
    """
    for t in dag.tasks:
        t.retries = 0
    started = time.monotonic()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        _test_in_child(dag, write)
    os.close(write)
    state, code = "failed", "DAG_RUN_TIMEOUT"
    while True:
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done:
            with os.fdopen(read, "rb") as fh:
                state = fh.read().decode() or "failed"
            code = None if state == "success" else "DAG_RUN_FAILED"
            break
        if time.monotonic() - started > timeout:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read)
            break
        time.sleep(0.2)
    out: dict[str, Any] = {"dag": dag.dag_id, "state": state, "seconds": round(time.monotonic() - started, 1)}
    if code:
        out["code"] = code
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the DAGs of ``--exchange`` (all, or those named by ``--dag``); 0 when every run succeeded."""
    parser = argparse.ArgumentParser(prog="python -m tongban.airflow.runner")
    parser.add_argument("--exchange", required=True, type=Path)
    parser.add_argument("--dag", action="append", default=[])
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per DAG")
    args = parser.parse_args(argv)
    os.environ["TONGBAN_EXCHANGE"] = str(args.exchange.resolve())

    from tongban.airflow.factory import build_dags, exchange

    dags = build_dags(exchange(args.exchange))
    order = sorted(dags, key=lambda d: (d.endswith("_national"), d))
    if args.dag:
        order = [d for d in order if d in args.dag]
    out = _progress()
    ok = True
    for dag_id in order:
        result = run_once(dags[dag_id], args.timeout)
        ok = ok and result["state"] == "success"
        out.write(json.dumps(result) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
