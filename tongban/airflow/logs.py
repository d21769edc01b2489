"""Tongban's structured log records in Airflow's task log, their fields as keys of Airflow's JSON lines.

Core logs through the standard library (:mod:`tongban.core.logs`); inside a task, Airflow renders
standard-library records but drops their fields. :func:`to_task_log` sends the ``tongban`` logger's
records through structlog (Airflow's own logging), so a task's log line carries ``edge``, ``run_id``,
``batch_id``, ``code`` and the counts as keys (and the UI shows them).
"""

from __future__ import annotations

import logging

import structlog

from tongban.core import logs

__all__ = ["to_task_log"]


#: Keys Airflow's log forwarding takes as its own arguments (a task dies if an event carries them).
_RESERVED = frozenset({"target", "level", "msg", "event", "logger", "timestamp", "logger_name"})


class _TaskLog(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = logs.fields_of(record)
            name = fields.pop("event", None) or "log"
            fields = {
                (f"{k}_node" if k == "target" else f"tb_{k}") if k in _RESERVED else k: v
                for k, v in fields.items()
            }
            structlog.get_logger(record.name).log(
                record.levelno, record.getMessage(), tongban_event=name, **fields
            )
        except Exception:  # a log line must never fail a task
            self.handleError(record)


def to_task_log() -> None:
    """Route the ``tongban`` logger into Airflow's task log (once per process)."""
    logger = logging.getLogger(logs.ROOT)
    if not any(isinstance(h, _TaskLog) for h in logger.handlers):
        logs.unconfigure()
        logger.addHandler(_TaskLog())
    logger.setLevel(logging.INFO)
    logger.propagate = False
